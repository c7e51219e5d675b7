"""Prefect 3 integration (``mirrorscale.plugins.prefect``).

:class:`PredictiveTaskRunner` wraps any Prefect task runner and records an
``ExecutionTrace`` of every task run it executes; :func:`mirrorscale_policy` sets a
task's policy in code; :class:`MemoryAdmission` sizes the memory limit that
enforce-mode tasks are admitted by. Importing this package imports Prefect.
"""

from __future__ import annotations

from mirrorscale.plugins.prefect.admission import MemoryAdmission
from mirrorscale.plugins.prefect.policy import mirrorscale_policy
from mirrorscale.plugins.prefect.runner import PredictiveTaskRunner

__all__ = ["MemoryAdmission", "PredictiveTaskRunner", "mirrorscale_policy"]
