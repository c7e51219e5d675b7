"""mirrorscale: predictive resource sizing for Airflow 3 and Prefect 3.

mirrorscale learns from past task runs (``ExecutionTrace`` rows in SQL) which
pipeline steps are volatile, runs cheap *mirror* executions of them on sampled
input, and sizes downstream tasks (``Allocation``) before they start.

The core package never imports Airflow or Prefect; only
``mirrorscale.plugins.*`` does.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "is_mirror", "scratch_dir"]

_LAZY = {"is_mirror": "mirrorscale.mirror.sandbox", "scratch_dir": "mirrorscale.mirror.sandbox"}


def __getattr__(name: str) -> Any:
    """Lazy exports: ``mirrorscale.is_mirror()`` and ``mirrorscale.scratch_dir()`` (see :mod:`mirrorscale.mirror`)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
