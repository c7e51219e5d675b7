"""``mirrorscale airflow setup``: write what Airflow needs beyond the entry points.

Airflow 3.3 loads cluster policies from the ``airflow.policy`` entry point, but
marks ``task_instance_mutation_hook`` as a no-op (and drops its changes) unless
it could import an ``airflow_local_settings`` module. Airflow looks for that
module on ``sys.path``, to which it appends ``$AIRFLOW_HOME/config`` (and the
plugins folder) at start-up (``airflow.settings.prepare_syspath_for_config_and_plugins``).

:func:`install_local_settings` writes a minimal module there unless one
already exists anywhere Airflow would find it (an existing module of the user's
is enough: mirrorscale's hooks come from the entry point, not from the file).

This module does not import Airflow, so it works before Airflow is configured.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MARKER", "LOCAL_SETTINGS_TEXT", "SetupResult", "airflow_home", "config_dir",
           "find_local_settings", "install_local_settings"]

MARKER = "# written by `mirrorscale airflow setup`"
LOCAL_SETTINGS_TEXT = f'''{MARKER}
"""Airflow local settings.

Airflow 3.3 runs cluster policies registered by entry point (mirrorscale's
``task_instance_mutation_hook``) only when an ``airflow_local_settings`` module
exists; without one the hook is treated as a no-op and its changes are lost.
This file exists for that reason. You may add your own settings and policies
here: list their names in ``__all__`` (or delete the ``__all__`` line).
"""

__all__: list[str] = []
'''


@dataclass(frozen=True)
class SetupResult:
    """What :func:`install_local_settings` found or did."""

    path: Path
    action: str  # "created" | "exists" | "foreign" | "would-create"
    detail: str


def airflow_home(environ: dict[str, str] | None = None) -> Path:
    """``$AIRFLOW_HOME`` (default ``~/airflow``), expanded as Airflow does."""
    env = os.environ if environ is None else environ
    return Path(os.path.expandvars(os.path.expanduser(env.get("AIRFLOW_HOME") or "~/airflow")))


def config_dir(home: Path | None = None) -> Path:
    """The folder Airflow appends to ``sys.path`` for ``airflow_local_settings``."""
    return (home or airflow_home()) / "config"


def _plugins_dir(home: Path) -> Path:
    folder = os.environ.get("AIRFLOW__CORE__PLUGINS_FOLDER")
    return Path(os.path.expanduser(folder)) if folder else home / "plugins"


def find_local_settings(home: Path | None = None) -> Path | None:
    """The ``airflow_local_settings`` module Airflow would import, if any.

    Looks on the current ``sys.path`` first (it comes first for Airflow too), then
    in ``$AIRFLOW_HOME/config`` and the plugins folder.
    """
    home = home or airflow_home()
    saved = list(sys.path)
    try:
        for extra in (config_dir(home), _plugins_dir(home)):
            if str(extra) not in sys.path:
                sys.path.append(str(extra))
        importlib.invalidate_caches()
        spec = importlib.util.find_spec("airflow_local_settings") if "airflow_local_settings" not in sys.modules \
            else sys.modules["airflow_local_settings"].__spec__
    except (ImportError, ValueError):
        spec = None
    finally:
        sys.path[:] = saved
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin)


def install_local_settings(home: Path | None = None, *, dry_run: bool = False) -> SetupResult:
    """Make sure Airflow finds an ``airflow_local_settings`` module; write one if needed."""
    home = home or airflow_home()
    target = config_dir(home) / "airflow_local_settings.py"
    found = find_local_settings(home)
    if found is not None:
        try:
            ours = MARKER in found.read_text(encoding="utf-8", errors="replace")
        except OSError:
            ours = False
        if ours:
            return SetupResult(found, "exists", "written by mirrorscale earlier; nothing to do")
        return SetupResult(found, "foreign", "your own airflow_local_settings is used as is; "
                           "it enables the policy hook, nothing to do")
    if dry_run:
        return SetupResult(target, "would-create", "would write a minimal airflow_local_settings.py")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(LOCAL_SETTINGS_TEXT, encoding="utf-8")
    return SetupResult(target, "created", "wrote a minimal airflow_local_settings.py")
