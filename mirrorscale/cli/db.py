"""``mirrorscale db``: create, upgrade, downgrade and inspect the history store's schema."""

from __future__ import annotations

import typer
from sqlalchemy.engine import make_url

from mirrorscale import config
from mirrorscale.cli.app import app, console, print_json
from mirrorscale.store import schema
from mirrorscale.store.engine import make_engine

db_app = typer.Typer(help="Manage the history store's schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _engine():  # type: ignore[no-untyped-def]
    return make_engine(config.database_url())


def _shown_url() -> str:
    return make_url(config.database_url()).render_as_string(hide_password=True)


@db_app.command("upgrade")
def upgrade(revision: str = typer.Argument("head", help="Target revision (default: newest).")) -> None:
    """Create the store or migrate it forward."""
    schema.upgrade(_engine(), revision)
    console.print(f"store {_shown_url()} is at revision {schema.current_revision(_engine())}")


@db_app.command("downgrade")
def downgrade(
    revision: str = typer.Argument("-1", help="Target revision; 'base' removes every mirrorscale table."),
) -> None:
    """Migrate the store back (default: one revision)."""
    schema.downgrade(_engine(), revision)
    console.print(f"store {_shown_url()} is at revision {schema.current_revision(_engine()) or 'base (empty)'}")


@db_app.command("current")
def current(as_json: bool = typer.Option(False, "--json", help="Print JSON only.")) -> None:
    """Show the store's URL, its revision and the revision this mirrorscale expects."""
    found = schema.current_revision(_engine())
    info = {"url": _shown_url(), "revision": found, "expected": schema.SCHEMA_REVISION,
            "up_to_date": found == schema.SCHEMA_REVISION}
    if as_json:
        print_json(info)
        return
    state = "up to date" if info["up_to_date"] else "run `mirrorscale db upgrade`"
    console.print(f"{info['url']}: revision {found or 'none (empty)'} ({state})")
