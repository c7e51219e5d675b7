"""Per-flow-run artifacts: forecast vs. actual per task run, and what each task used.

Two artifacts with stable keys are attached to every flow run the
:class:`~mirrorscale.plugins.prefect.runner.PredictiveTaskRunner` measured, so the
Prefect UI's Artifacts page shows their history across runs:

=========================  =========  ==================================================
key                        type       content
=========================  =========  ==================================================
``mirrorscale-forecast``   table      one row per task run: forecast, actual peak, CPU,
                                      wall time, input size, outcome
``mirrorscale-usage``      markdown   per task: what was recorded and how to read it
=========================  =========  ==================================================

Until the allocator exists the forecast is *naive*: the largest peak among the
task's last 20 recorded runs, read before this flow run's first run of the task
(column ``forecast source`` says so). Tasks in ``enforce`` mode also show the memory
they were admitted with (column ``allocated``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any, Mapping
from uuid import UUID

from mirrorscale.policy import format_bytes

__all__ = ["FORECAST_KEY", "USAGE_KEY", "forecast_rows", "publish_run_artifacts", "run_traces", "usage_markdown"]

FORECAST_KEY = "mirrorscale-forecast"
USAGE_KEY = "mirrorscale-usage"
NAIVE = "naive: largest peak of the last 20 runs"


def run_traces(store: Any, run_ids: list[str]) -> list[Any]:
    """The stored traces of the given task run ids, oldest first."""
    from sqlalchemy import select

    from mirrorscale.store.models import ExecutionTrace, Task

    if not run_ids:
        return []
    query = (select(ExecutionTrace).join(Task)
             .where(Task.engine == "prefect", ExecutionTrace.run_id.in_(run_ids))
             .order_by(ExecutionTrace.started_at, ExecutionTrace.id))
    with store.reading() as session:
        return list(session.scalars(query))


def _size(value: float | None) -> str:
    return "n/a" if value is None else format_bytes(int(value))


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def forecast_rows(traces: list[Any], forecasts: Mapping[str, int | None]) -> list[dict[str, Any]]:
    """One table row per trace: forecast (naive) vs. actual."""
    rows = []
    for t in traces:
        forecast = forecasts.get(t.task.task_id)
        source = NAIVE if forecast is not None else "n/a (no history)"
        if (t.features or {}).get("forecast_bytes") is not None:
            forecast, source = t.features["forecast_bytes"], t.features.get("forecast_source", "mirror")
        error = None
        if forecast is not None and t.peak_rss_bytes is not None:
            error = format_bytes(int(forecast) - int(t.peak_rss_bytes))
        rows.append({
            "task": t.task.task_id, "task run": t.run_id, "try": t.try_number, "outcome": t.outcome,
            "forecast peak": _size(forecast), "forecast source": source,
            "actual peak": _size(t.peak_rss_bytes), "forecast - actual": error or "n/a",
            "allocated": _size(t.allocated_memory_bytes),
            "CPU s": _seconds(t.cpu_seconds), "wall s": _seconds(t.wall_seconds),
            "input": _size(t.input_size_bytes),
        })
    return rows


def usage_markdown(flow_name: str, traces: list[Any], notes: Mapping[str, str] | None = None) -> str:
    """A markdown explanation of each task's recorded usage in this flow run."""
    by_task: dict[str, list[Any]] = defaultdict(list)
    for t in traces:
        by_task[t.task.task_id].append(t)
    lines = [f"# mirrorscale: resource use of flow `{flow_name}`", ""]
    if not traces:
        lines.append("No task of this run was measured (only `.submit()` / `.map()` calls reach the task runner).")
    for task, runs in by_task.items():
        peaks = [r.peak_rss_bytes for r in runs if r.peak_rss_bytes is not None]
        failed = sum(r.outcome != "success" for r in runs)
        first = runs[0].features or {}
        lines += [f"## `{task}`", "",
                  f"- runs: {len(runs)} ({failed} not successful)",
                  f"- peak RSS rise: max {_size(max(peaks) if peaks else None)}, "
                  f"min {_size(min(peaks) if peaks else None)}",
                  f"- CPU: {sum(r.cpu_seconds or 0 for r in runs):.2f} s in total; "
                  f"wall: {max((r.wall_seconds or 0) for r in runs):.2f} s longest",
                  f"- input (estimated size of the parameters): {_size(runs[0].input_size_bytes)}"
                  + (" (first run)" if len(runs) > 1 else ""),
                  f"- measured in the {first.get('measured_in', 'unknown')} by runner "
                  f"`{first.get('runner', '?')}`; at most {max(r.features.get('overlapping_tasks', 1) for r in runs)} "
                  "measured task(s) ran at once in one process"]
        admitted = [r.features["admission"] for r in runs if "admission" in (r.features or {})]
        if admitted:
            lines.append(f"- admitted with {_size(runs[-1].allocated_memory_bytes)}: {admitted[-1]['reason']}")
        if notes and task in notes:
            lines.append(f"- mirror: {notes[task]}")
        lines.append("")
    lines += ["## How to read this", "",
              "*Peak RSS rise* is how far the resident memory of the process that ran the task rose above "
              "its level when the task started. With a thread pool (or Dask threads) tasks that run at "
              "the same time share one process, so their rises overlap; with a process pool each worker "
              "runs one task at a time. The forecast is naive until the allocator is enabled: the largest "
              "peak among the task's last 20 recorded runs. *Allocated* is the memory an enforce-mode task "
              "was admitted with (slots of the machine's memory limit)."]
    return "\n".join(lines)


def _create(client: Any, *, kind: str, key: str, data: str, flow_run_id: Any, description: str) -> None:
    from prefect.client.schemas.actions import ArtifactCreate

    run_id = flow_run_id if isinstance(flow_run_id, UUID) or flow_run_id is None else UUID(str(flow_run_id))
    client.create_artifact(artifact=ArtifactCreate(type=kind, key=key, description=description,
                                                   flow_run_id=run_id, data=data))


def publish_run_artifacts(store: Any, *, flow_name: str, flow_run_id: Any, submitted: Mapping[str, str],
                          forecasts: Mapping[str, int | None],
                          notes: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Create the forecast table and the usage markdown for one flow run; return the table rows."""
    from prefect.client.orchestration import get_client

    traces = run_traces(store, list(submitted))
    rows = forecast_rows(traces, forecasts)
    with get_client(sync_client=True) as client:
        _create(client, kind="table", key=FORECAST_KEY, data=json.dumps(rows), flow_run_id=flow_run_id,
                description=f"mirrorscale: forecast vs. actual peak memory per task run of `{flow_name}`")
        _create(client, kind="markdown", key=USAGE_KEY, data=usage_markdown(flow_name, traces, notes),
                flow_run_id=flow_run_id, description=f"mirrorscale: recorded resource use of `{flow_name}`")
    return rows
