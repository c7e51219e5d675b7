"""``mirrorscale airflow setup|doctor``: install and check the Airflow integration.

Airflow is imported only inside the commands (and only by ``doctor``), so the
CLI keeps working in an environment without Airflow.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from mirrorscale.cli.app import app, console, fail, print_json, print_table

airflow_app = typer.Typer(help="Install and check the Airflow 3 integration.", no_args_is_help=True)
app.add_typer(airflow_app, name="airflow")

_STYLE = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}


@airflow_app.command("setup")
def setup(
    airflow_home: Path = typer.Option(None, "--airflow-home", help="Airflow's home (default: $AIRFLOW_HOME, else ~/airflow)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only say what would be written."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Write the airflow_local_settings.py Airflow 3.3 needs for mirrorscale's policy hook.

    The plugin and the cluster policy are registered by ``pip install
    'mirrorscale[airflow]'`` (entry points). Without an ``airflow_local_settings``
    module Airflow ignores the policy hook's changes; this command writes a
    minimal one into ``$AIRFLOW_HOME/config`` unless you already have one.
    Restart the scheduler afterwards; check with ``mirrorscale airflow doctor``.
    """
    from mirrorscale.plugins.airflow.setup import install_local_settings

    try:
        result = install_local_settings(airflow_home.expanduser() if airflow_home else None, dry_run=dry_run)
    except OSError as exc:
        raise fail(f"could not write airflow_local_settings.py: {exc}") from exc
    if as_json:
        print_json({"path": str(result.path), "action": result.action, "detail": result.detail})
        return
    console.print(f"airflow_local_settings: [bold]{result.action}[/] {escape(str(result.path))}\n  {result.detail}",
                  highlight=False, soft_wrap=True)
    if result.action == "created":
        console.print("Restart Airflow's scheduler, then run `mirrorscale airflow doctor`.", highlight=False)


@airflow_app.command("doctor")
def doctor(as_json: bool = typer.Option(False, "--json", help="Print JSON only.")) -> None:
    """Check that the plugin is registered, the policy hook is live and the store is reachable and current.

    Exits with status 1 when a check fails (warnings do not fail).
    """
    from mirrorscale.plugins.airflow.doctor import run_checks

    checks = run_checks()
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        print_json({"ok": not failed, "checks": [c.as_dict() for c in checks]})
    else:
        rows = [{"check": c.name, "status": _STYLE.get(c.status, c.status), "detail": escape(c.detail),
                 "fix": escape(c.fix)}
                for c in checks]
        print_table("mirrorscale airflow doctor", rows, ["check", "status", "detail", "fix"])
    if failed:
        raise typer.Exit(1)
