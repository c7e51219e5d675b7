"""Command-line interface: ``mirrorscale db|traces|history|policy|replay ...``.

Each command group lives in its own module and registers itself on
:data:`mirrorscale.cli.app.app`; importing them here wires the CLI.
"""

from __future__ import annotations

import importlib

from mirrorscale.cli.app import app

_COMMAND_MODULES = ("db", "traces", "history", "policy", "replay", "airflow", "preview", "explain", "ui")


def _load_commands() -> None:
    for name in _COMMAND_MODULES:
        try:
            importlib.import_module(f"mirrorscale.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"mirrorscale.cli.{name}":
                raise


def main() -> None:
    """Entry point of the ``mirrorscale`` console script."""
    _load_commands()
    app()


__all__ = ["app", "main"]
