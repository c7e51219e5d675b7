"""Command-line interface: ``mirrorscale db|traces|history|policy|replay|preview|explain|ui|airflow ...``.

Each command group lives in its own module and registers itself on
:data:`mirrorscale.cli.app.app`; importing them here wires the CLI.
"""

from __future__ import annotations

import importlib

from mirrorscale.cli.app import app

_COMMAND_MODULES = ("db", "traces", "history", "policy", "replay", "airflow", "preview", "explain", "ui")


def _load_commands() -> None:
    for name in _COMMAND_MODULES:
        importlib.import_module(f"mirrorscale.cli.{name}")


def main() -> None:
    """Entry point of the ``mirrorscale`` console script."""
    _load_commands()
    app()


__all__ = ["app", "main"]
