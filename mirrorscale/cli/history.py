"""``mirrorscale history``: recent runs of one task or of every task, and per-task summaries."""

from __future__ import annotations

from typing import Any

import typer

from mirrorscale.cli.app import app, fail, print_json, print_table
from mirrorscale.policy import format_bytes
from mirrorscale.store.history import HistoryStore, TaskSummary
from mirrorscale.store.models import ExecutionTrace


def trace_dict(trace: ExecutionTrace) -> dict[str, Any]:
    """A JSON-ready view of one trace, naming its engine, pipeline and task."""
    return {
        "id": trace.id, "engine": trace.task.engine, "pipeline_id": trace.task.pipeline_id,
        "task_id": trace.task.task_id, "run_id": trace.run_id, "try_number": trace.try_number,
        "started_at": trace.started_at.isoformat(),
        "ended_at": trace.ended_at.isoformat() if trace.ended_at else None,
        "outcome": trace.outcome, "peak_rss_bytes": trace.peak_rss_bytes,
        "cpu_seconds": trace.cpu_seconds, "wall_seconds": trace.wall_seconds,
        "read_bytes": trace.read_bytes, "write_bytes": trace.write_bytes,
        "input_size_bytes": trace.input_size_bytes, "branch": trace.branch,
        "allocated_memory_bytes": trace.allocated_memory_bytes, "source": trace.source,
        "features": trace.features,
    }


def _trace_row(trace: ExecutionTrace) -> dict[str, Any]:
    return {
        "started": trace.started_at.strftime("%Y-%m-%d %H:%M:%S"), "engine": trace.task.engine,
        "pipeline": trace.task.pipeline_id, "task": trace.task.task_id, "run": trace.run_id,
        "try": trace.try_number, "outcome": trace.outcome,
        "peak RSS": _bytes(trace.peak_rss_bytes), "allocated": _bytes(trace.allocated_memory_bytes),
        "CPU s": _num(trace.cpu_seconds), "wall s": _num(trace.wall_seconds),
        "input": _bytes(trace.input_size_bytes),
    }


def _summary_row(s: TaskSummary) -> dict[str, Any]:
    return {
        "engine": s.engine, "pipeline": s.pipeline_id, "task": s.task_id, "runs": s.runs,
        "failed": s.failures, "mean peak RSS": _bytes(s.mean_peak_rss_bytes),
        "max peak RSS": _bytes(s.max_peak_rss_bytes), "mean wall s": _num(s.mean_wall_seconds),
        "mean CPU s": _num(s.mean_cpu_seconds),
    }


def _bytes(value: float | None) -> str:
    return "" if value is None else format_bytes(int(value))


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


@app.command("history")
def history(
    task: str = typer.Argument(None, help="Task id, pipeline_id.task_id, or a glob; all tasks if omitted."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many runs to list."),
    summary: bool = typer.Option(False, "--summary", help="One line per task instead of one per run."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """List the recent runs of one task or of every task (newest first)."""
    store = HistoryStore.open()
    if summary:
        summaries = store.task_summaries()
        if task:
            keys = {(t.engine, t.pipeline_id, t.task_id) for t in store.find_tasks(task)}
            summaries = [s for s in summaries if (s.engine, s.pipeline_id, s.task_id) in keys]
        if as_json:
            print_json({"tasks": [s.__dict__ for s in summaries]})
        else:
            print_table(f"{len(summaries)} task(s)", [_summary_row(s) for s in summaries])
        return
    task_pks = None
    if task:
        matches = store.find_tasks(task)
        if not matches:
            raise fail(f"no task named {task!r} in the store; `mirrorscale history --summary` lists them")
        task_pks = [t.id for t in matches]
    traces = store.recent_traces(limit=limit, task_pks=task_pks)
    if as_json:
        print_json({"traces": [trace_dict(t) for t in traces]})
    else:
        print_table(f"latest {len(traces)} run(s)", [_trace_row(t) for t in traces])
