"""Read-only queries the web pages need beyond :class:`~mirrorscale.store.history.HistoryStore`.

Forecasts are :class:`~mirrorscale.store.models.Prediction` rows with target
``memory`` (bytes) matched to a trace by run id (for a mapped run
``"<run>#<index>"`` the run's own forecast is used when there is none for the
index). Allocations and mirror shadows are listed newest first with their
reasons.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from mirrorscale.store.history import HistoryStore
from mirrorscale.store.models import Allocation, ExecutionTrace, Prediction, ResourceShadow, Task

__all__ = ["TaskView", "MEMORY_TARGETS", "load_task_view", "pipeline_tasks"]

MEMORY_TARGETS = ("memory", "peak_rss_bytes", "memory_bytes")
"""Prediction targets read as memory forecasts."""


@dataclass
class TaskView:
    """Everything the task page shows."""

    task: Task
    traces: list[ExecutionTrace]
    forecasts: dict[str, Prediction]
    allocations: list[Allocation]
    shadows: list[ResourceShadow]

    def forecast_for(self, run_id: str) -> Prediction | None:
        """The memory forecast made for ``run_id`` (or for its DAG run, for a mapped index)."""
        found = self.forecasts.get(run_id)
        if found is None and "#" in run_id:
            found = self.forecasts.get(run_id.rsplit("#", 1)[0])
        return found


def _task(store: HistoryStore, engine: str | None, pipeline_id: str, task_id: str) -> Task | None:
    with store.reading() as session:
        query = select(Task).where(Task.pipeline_id == pipeline_id, Task.task_id == task_id)
        if engine:
            query = query.where(Task.engine == engine)
        return session.scalars(query.order_by(Task.engine)).first()


def pipeline_tasks(store: HistoryStore, pipeline_id: str, engine: str | None = None) -> list[Task]:
    """The tasks of one pipeline the store knows, by task id."""
    with store.reading() as session:
        query = select(Task).where(Task.pipeline_id == pipeline_id)
        if engine:
            query = query.where(Task.engine == engine)
        return list(session.scalars(query.order_by(Task.task_id)))


def load_task_view(store: HistoryStore, pipeline_id: str, task_id: str, *, engine: str | None = None,
                   limit: int = 100) -> TaskView | None:
    """The last ``limit`` runs of a task with their forecasts, allocations and shadows; None if unknown."""
    task = _task(store, engine, pipeline_id, task_id)
    if task is None:
        return None
    traces = store.latest_traces(task.engine, pipeline_id, task_id, limit=limit)
    traces.reverse()  # oldest first, for the plot
    with store.reading() as session:
        predictions = session.scalars(
            select(Prediction).where(Prediction.task_pk == task.id, Prediction.target.in_(MEMORY_TARGETS))
            .order_by(Prediction.created_at, Prediction.id)
        ).all()
        allocations = list(session.scalars(
            select(Allocation).where(Allocation.task_pk == task.id)
            .order_by(Allocation.created_at.desc(), Allocation.id.desc()).limit(limit)
        ))
        shadows = list(session.scalars(
            select(ResourceShadow).where(ResourceShadow.task_pk == task.id)
            .order_by(ResourceShadow.created_at.desc(), ResourceShadow.id.desc()).limit(limit)
        ))
    forecasts = {p.run_id: p for p in predictions}  # the newest forecast per run wins
    return TaskView(task=task, traces=traces, forecasts=forecasts, allocations=allocations, shadows=shadows)
