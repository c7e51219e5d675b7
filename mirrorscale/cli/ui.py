"""``mirrorscale ui``: serve the engine-neutral dashboard (:mod:`mirrorscale.web`) on its own.

For Prefect users (Airflow mounts the same app on its api-server, behind its own
login). Standalone there is **no authentication**: anyone who can reach the port sees
every recorded task, so it binds to ``127.0.0.1`` by default; pass ``--host 0.0.0.0``
only behind a proxy that authenticates. FastAPI and uvicorn (the ``ui`` extra) are
imported only when the command runs, so the rest of the CLI loads without them.
"""

from __future__ import annotations

import typer

from mirrorscale.cli.app import app, console, fail

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


@app.command("ui")
def ui(
    host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to bind (default: this machine only)."),
    port: int = typer.Option(DEFAULT_PORT, "--port", help="TCP port to listen on."),
    engine: str = typer.Option(None, "--engine", help="Show only this engine's tasks (prefect, airflow, ...)."),
) -> None:
    """Serve the dashboard (history, forecast vs. actual, allocations, mirrors) with uvicorn. No login: local only."""
    try:
        import uvicorn

        from mirrorscale.web import create_app
    except ModuleNotFoundError as exc:
        raise fail(f"mirrorscale ui needs the 'ui' extra ({exc.name} is missing): "
                   "pip install 'mirrorscale[ui]'") from None
    from mirrorscale import config

    web_app = create_app(engine=engine, title="mirrorscale")
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[bold yellow]warning:[/] serving without authentication on {host}; anyone who reaches "
                      "this port sees every recorded task", highlight=False)
    console.print(f"mirrorscale ui: http://{host}:{port}/ (history store {_shown(config.database_url())}; "
                  "no authentication, Ctrl-C to stop)", highlight=False, soft_wrap=True)
    uvicorn.run(web_app, host=host, port=port, log_level="warning")


def _shown(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
