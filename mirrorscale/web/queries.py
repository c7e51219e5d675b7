"""Read-only queries the web pages need beyond :class:`~mirrorscale.store.history.HistoryStore`.

A run's forecast is its :class:`~mirrorscale.store.models.Prediction` with a
memory target (bytes), else the estimate the allocator sized it from (the
``estimate_bytes`` of its :class:`~mirrorscale.store.models.Allocation`,
before headroom; the engine plugins record these in every mode but
``observe``). Both are matched to a trace by run id (for a mapped run
``"<run>#<index>"`` the run's own forecast is used when there is none for the
index). Allocations and mirror shadows are listed newest first with their
reasons.

:func:`wastage` scores the shown runs the way ``mirrorscale replay`` does: an
allocation below the run's peak (or a run killed for memory) wastes
``allocation x wall time``, a sufficient one ``(allocation - peak) x wall
time``; MAQ = used / (used + wasted). It is computed twice: for what was
applied to each run, and for what was decided for it (in mode ``recommend``
nothing is applied, so this shows what following the advice would have cost).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from mirrorscale.store.history import HistoryStore
from mirrorscale.store.models import Allocation, ExecutionTrace, MirrorState, Prediction, ResourceShadow, Task

__all__ = ["Forecast", "TaskView", "Wastage", "wastage", "MEMORY_TARGETS", "load_task_view", "pipeline_tasks"]

MEMORY_TARGETS = ("memory", "peak_rss_bytes", "memory_bytes")
"""Prediction targets read as memory forecasts."""


@dataclass(frozen=True)
class Forecast:
    """The memory forecast made before one run (bytes); ``source`` is ``prediction`` or ``allocation``."""

    value: float | None
    low: float | None = None
    high: float | None = None
    source: str = "prediction"


@dataclass
class TaskView:
    """Everything the task page shows."""

    task: Task
    traces: list[ExecutionTrace]
    forecasts: dict[str, Forecast]
    allocations: list[Allocation]
    shadows: list[ResourceShadow]
    mirror_state: MirrorState | None = None

    def forecast_for(self, run_id: str) -> Forecast | None:
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
    forecasts = _allocation_estimates(store, task, {t.run_id for t in traces})
    forecasts.update({p.run_id: Forecast(p.value, p.low, p.high) for p in predictions})  # newest per run wins
    return TaskView(task=task, traces=traces, forecasts=forecasts, allocations=allocations, shadows=shadows,
                    mirror_state=store.latest_mirror_state((task.engine, pipeline_id, task_id)))


@dataclass(frozen=True)
class Wastage:
    """Replay-style memory wastage of some runs under one set of allocations (GB·h, decimal GB)."""

    runs: int
    under_allocated: int
    wasted_gbh: float
    used_gbh: float

    @property
    def maq(self) -> float | None:
        """Memory allocation quality: used / (used + wasted); None without runs."""
        total = self.used_gbh + self.wasted_gbh
        return self.used_gbh / total if total > 0 else None


def wastage(view: TaskView, *, decided: bool = False) -> Wastage:
    """Wastage of the shown runs under what was applied to them (or, ``decided``, what was decided for them)."""
    decisions: dict[str, int] = {}
    if decided:
        for a in sorted(view.allocations, key=lambda a: (a.created_at, a.id)):  # the newest decision per run
            if a.memory_bytes:
                decisions[a.run_id] = int(a.memory_bytes)
    runs = under = 0
    wasted = used = 0.0
    for t in view.traces:
        allocation = decisions.get(t.run_id) if decided else t.allocated_memory_bytes
        if not allocation or t.peak_rss_bytes is None or t.wall_seconds is None:
            continue
        runs += 1
        hours = t.wall_seconds / 3600
        if t.outcome == "oom_killed" or allocation < t.peak_rss_bytes:
            under += 1
            wasted += allocation * hours
        else:
            wasted += (allocation - t.peak_rss_bytes) * hours
        used += t.peak_rss_bytes * hours
    return Wastage(runs=runs, under_allocated=under, wasted_gbh=wasted / 1e9, used_gbh=used / 1e9)


def _allocation_estimates(store: HistoryStore, task: Task, run_ids: set[str]) -> dict[str, Forecast]:
    """The allocator's estimate per run (the newest decision of a run wins), for runs without a prediction."""
    wanted = run_ids | {r.rsplit("#", 1)[0] for r in run_ids if "#" in r}
    found: dict[str, Forecast] = {}
    if not wanted:
        return found
    with store.reading() as session:
        rows = session.execute(
            select(Allocation.run_id, Allocation.executor_options)
            .where(Allocation.task_pk == task.id, Allocation.run_id.in_(sorted(wanted)))
            .order_by(Allocation.created_at, Allocation.id)).all()
    for run_id, options in rows:
        estimate = (options or {}).get("estimate_bytes")
        if isinstance(estimate, (int, float)) and estimate > 0:
            found[run_id] = Forecast(float(estimate), source="allocation")
    return found
