"""Cluster policy (entry point ``airflow.policy``): the hook that sizes task instances.

Airflow calls :func:`task_instance_mutation_hook` in the scheduler when a DAG
run creates its task instances. For tasks in mode ``enforce`` it will set
``pool``, ``pool_slots``, ``priority_weight``, ``queue`` and
``executor_config`` from the allocator's decision; until the allocator lands it
only counts its calls (``CALLS``), which ``mirrorscale airflow doctor`` uses to
prove the hook is live.

Pitfall (Airflow 3.3): registered by entry point alone, without any
``airflow_local_settings`` module, the hook is treated as a no-op and its
changes are dropped. ``mirrorscale airflow setup`` writes that module.

The hook never raises: on any error the task instance keeps its own settings
and one warning is logged.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.policies import hookimpl

__all__ = ["task_instance_mutation_hook", "CALLS"]

log = logging.getLogger("mirrorscale.airflow")

CALLS = 0
"""How many task instances this process's hook has seen."""


@hookimpl
def task_instance_mutation_hook(task_instance: Any, dag_run: Any) -> None:
    """Apply mirrorscale's allocation to a new task instance (mode ``enforce`` only)."""
    global CALLS
    CALLS += 1
    if CALLS == 1:
        log.info("mirrorscale policy hook live (first task instance: %s.%s)",
                 getattr(task_instance, "dag_id", "?"), getattr(task_instance, "task_id", "?"))
    try:
        _apply(task_instance, dag_run)
    except Exception as exc:  # noqa: BLE001 - never block scheduling
        log.warning("mirrorscale policy hook skipped %s.%s: %s: %s", getattr(task_instance, "dag_id", "?"),
                    getattr(task_instance, "task_id", "?"), type(exc).__name__, exc)


def _apply(task_instance: Any, dag_run: Any) -> None:
    """Placeholder for the allocator's decision (issue 5, step 3): observe only for now."""
    return None
