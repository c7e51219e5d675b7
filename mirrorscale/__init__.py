"""mirrorscale: predictive resource sizing for Airflow 3 and Prefect 3.

mirrorscale learns from past task runs (``ExecutionTrace`` rows in SQL) which
pipeline steps are volatile, runs cheap *mirror* executions of them on sampled
input, and sizes downstream tasks (``Allocation``) before they start.

The core package never imports Airflow or Prefect; only
``mirrorscale.plugins.*`` does.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
