"""The ``mirrorscale`` Typer application and helpers shared by its commands."""

from __future__ import annotations

import json
import sys
from typing import Any, Iterable

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    name="mirrorscale",
    help="Predictive resource sizing for Airflow and Prefect tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Piped output gets a wide fixed width instead of rich's 80 columns.
console = Console(width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True)


def print_json(payload: Any) -> None:
    """Print ``payload`` as JSON on stdout and nothing else."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def print_table(title: str, rows: Iterable[dict[str, Any]], columns: list[str] | None = None) -> None:
    """Print ``rows`` (dicts) as a rich table; ``columns`` picks and orders keys."""
    rows = list(rows)
    keys = columns or (list(rows[0].keys()) if rows else [])
    table = Table(title=title, show_lines=False)
    for key in keys:
        table.add_column(key, overflow="fold")
    for row in rows:
        table.add_row(*("" if row.get(k) is None else str(row.get(k)) for k in keys))
    console.print(table)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` as an error and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@app.callback()
def _global_options(
    database_url: str = typer.Option(
        None, "--database-url", help="History store URL (default: $MIRRORSCALE_DATABASE_URL, else SQLite)."
    ),
) -> None:
    """Predictive resource sizing for Airflow and Prefect tasks."""
    if database_url:
        import os

        from mirrorscale.config import DATABASE_URL_ENV

        os.environ[DATABASE_URL_ENV] = database_url
