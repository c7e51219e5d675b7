"""Replay records from the history store's ``ExecutionTrace`` rows.

Only successful runs with a measured peak are replayed: usage =
``peak_rss_bytes`` (or ``features["rss"]`` for the Sizey protocol, when the
row has it), runtime = ``wall_seconds``, request = ``allocated_memory_bytes``
(else ``default_request``), input size = ``input_size_bytes``; the workflow is
the task's ``pipeline_id``. Rows are replayed in submit order: the
``submit_ms`` feature where the trace kept one (Nextflow imports do: sizing is
decided when a task is submitted), else ``started_at``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mirrorscale.replay.records import LoadedTraces, ReplayTask, UsageColumn

if TYPE_CHECKING:
    from mirrorscale.store.history import HistoryStore


def _usage(trace, usage: UsageColumn) -> float | None:
    if usage == "rss":
        value = (trace.features or {}).get("rss")
        return None if value is None else float(value)
    return None if trace.peak_rss_bytes is None else float(trace.peak_rss_bytes)


def _order_ms(trace) -> float:
    submit = (trace.features or {}).get("submit_ms") if isinstance(trace.features, dict) else None
    if isinstance(submit, (int, float)) and not isinstance(submit, bool):
        return float(submit)
    return trace.started_at.timestamp() * 1000.0


def from_store(store: HistoryStore, *, pipeline: str | None = None, default_request: float | None = None,
               usage: UsageColumn = "peak_rss") -> LoadedTraces:
    """Successful store traces (of ``pipeline``, or all) as replay records, in submit order.

    Rows without the usage or a wall time are skipped and counted per pipeline.
    """
    from sqlalchemy import select

    from mirrorscale.store.models import ExecutionTrace, Task

    query = (select(ExecutionTrace, Task.pipeline_id, Task.task_id)
             .join(Task, ExecutionTrace.task_pk == Task.id)
             .where(ExecutionTrace.outcome == "success")
             .order_by(ExecutionTrace.started_at, ExecutionTrace.id))
    if pipeline is not None:
        query = query.where(Task.pipeline_id == pipeline)
    loaded = LoadedTraces()
    with store.reading() as session:
        for trace, pipeline_id, task_id in session.execute(query):
            used = _usage(trace, usage)
            if used is None or trace.wall_seconds is None:
                loaded.skipped[pipeline_id] = loaded.skipped.get(pipeline_id, 0) + 1
                continue
            request = trace.allocated_memory_bytes or default_request
            peak = trace.peak_rss_bytes if usage == "rss" else None
            loaded.tasks.append(ReplayTask(
                workflow=pipeline_id,
                task=task_id,
                order=_order_ms(trace),
                usage=used,
                runtime_ms=round(trace.wall_seconds * 1000.0, 6),
                request=None if request is None else float(request),
                input_size=None if trace.input_size_bytes is None else float(trace.input_size_bytes),
                peak=None if peak is None else float(peak),
                run_id=trace.run_id,
            ))
    return loaded
