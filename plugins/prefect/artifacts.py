"""Per-flow-run artifacts: forecast vs. actual per task run, and what each task used.

Two artifacts with stable keys are attached to every flow run the
:class:`~mirrorscale.plugins.prefect.runner.PredictiveTaskRunner` measured, so the
Prefect UI's Artifacts page shows their history across runs:

=========================  =========  ==================================================
key                        type       content
=========================  =========  ==================================================
``mirrorscale-forecast``   table      one row per task run: the allocator's forecast and
                                      its evidence (history or mirror), the allocation,
                                      the actual peak, CPU, wall time, input, outcome
``mirrorscale-usage``      markdown   per task: what was recorded, each run's allocation
                                      with its reason, mirrors, and how to read it
=========================  =========  ==================================================

The forecast is the allocator's estimate of the run's peak memory before headroom
and bounds (``Allocation.executor_options["estimate_bytes"]``), made from the run's
own input before it started; ``evidence`` says what it rests on: ``history`` (the
task's recorded runs), ``mirror`` (a shadow taken on a sample of this run's input),
``policy default`` (cold start) or ``OOM bump``. Tasks in mode ``observe`` are not
sized. ``allocation`` is the memory the run was given (mode ``enforce``) or would
have been given (``recommend``, marked so).
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


def _allocation(trace: Any) -> dict[str, Any]:
    return dict((trace.features or {}).get("allocation") or {})


def _allocated(allocation: dict[str, Any]) -> str:
    memory = allocation.get("memory_bytes")
    if memory is None:
        return "n/a"
    return _size(memory) if allocation.get("applied") else f"{_size(memory)} (recommended)"


def forecast_rows(traces: list[Any]) -> list[dict[str, Any]]:
    """One table row per trace: the allocator's forecast (and its evidence) vs. the actual peak."""
    rows = []
    for t in traces:
        allocation = _allocation(t)
        forecast = allocation.get("forecast_bytes")
        if allocation:
            evidence = allocation.get("evidence", "n/a")
        else:
            evidence = "n/a (mode observe: not sized)"
        error = None
        if forecast is not None and t.peak_rss_bytes is not None:
            error = format_bytes(int(forecast) - int(t.peak_rss_bytes))
        rows.append({
            "task": t.task.task_id, "task run": t.run_id, "try": t.try_number, "outcome": t.outcome,
            "forecast peak": _size(forecast), "evidence": evidence,
            "allocation": _allocated(allocation), "actual peak": _size(t.peak_rss_bytes),
            "forecast - actual": error or "n/a",
            "CPU s": _seconds(t.cpu_seconds), "wall s": _seconds(t.wall_seconds),
            "input": _size(t.input_size_bytes), "reason": allocation.get("reason", ""),
        })
    return rows


def _allocation_lines(runs: list[Any]) -> list[str]:
    """One bullet per sized run: memory, mode, evidence, admission wait, mirror, and the allocator's reason."""
    lines = []
    for r in runs:
        allocation = _allocation(r)
        if not allocation:
            continue
        features = r.features or {}
        what = _allocated(allocation)
        extra = []
        if "admission" in features:
            extra.append(f"held {features['admission']['units']} slot(s) of `{features['admission']['limit']}`, "
                         f"waited {features['admission']['waited_seconds']:.2f} s")
        if "mirror" in features:
            m = features["mirror"]
            extra.append(f"mirrored first ({m['outcome']}, {m['seconds']:.1f} s, shadow #{m['shadow_id']})")
        elif "mirror_lifecycle" in features:
            extra.append(f"not mirrored: {features['mirror_lifecycle']['reason']}")
        tail = f" ({'; '.join(extra)})" if extra else ""
        lines.append(f"  - run `{r.run_id}` try {r.try_number}, input {_size(r.input_size_bytes)}: **{what}** "
                     f"from {allocation.get('evidence', 'n/a')}, actual {_size(r.peak_rss_bytes)}, "
                     f"{r.outcome}{tail}. Reason: {allocation.get('reason', '')}")
    return lines


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
        allocations = _allocation_lines(runs)
        if allocations:
            lines.append("- allocations (decided by the allocator before each run started):")
            lines += allocations
        if notes and task in notes:
            lines.append(f"- mirror: {notes[task]}")
        lines.append("")
    lines += ["## How to read this", "",
              "*Peak RSS rise* is how far the resident memory of the process that ran the task rose above "
              "its level when the task started. With a thread pool (or Dask threads) tasks that run at "
              "the same time share one process, so their rises overlap; with a process pool each worker "
              "runs one task at a time. Tasks in mode `enforce` or `recommend` are sized per run by the "
              "allocator from the run's input size: from the task's *history* (its recorded runs), or from a "
              "*mirror* (a shadow taken on a sample of this run's input, when the mirror life cycle says the "
              "task is volatile), plus the policy's headroom and bounds. In mode `enforce` the allocation is "
              "applied: the run holds that much of the memory limit while it runs, and a run that outgrows it "
              "is stopped and recorded as `oom_killed`; in mode `recommend` it is only shown."]
    return "\n".join(lines)


def _create(client: Any, *, kind: str, key: str, data: str, flow_run_id: Any, description: str) -> None:
    from prefect.client.schemas.actions import ArtifactCreate

    run_id = flow_run_id if isinstance(flow_run_id, UUID) or flow_run_id is None else UUID(str(flow_run_id))
    client.create_artifact(artifact=ArtifactCreate(type=kind, key=key, description=description,
                                                   flow_run_id=run_id, data=data))


def publish_run_artifacts(store: Any, *, flow_name: str, flow_run_id: Any, submitted: Mapping[str, str],
                          notes: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Create the forecast table and the usage markdown for one flow run; return the table rows."""
    from prefect.client.orchestration import get_client

    traces = run_traces(store, list(submitted))
    rows = forecast_rows(traces)
    with get_client(sync_client=True) as client:
        _create(client, kind="table", key=FORECAST_KEY, data=json.dumps(rows), flow_run_id=flow_run_id,
                description=f"mirrorscale: forecast vs. actual peak memory per task run of `{flow_name}`")
        _create(client, kind="markdown", key=USAGE_KEY, data=usage_markdown(flow_name, traces, notes),
                flow_run_id=flow_run_id, description=f"mirrorscale: allocations and resource use of `{flow_name}`")
    return rows
