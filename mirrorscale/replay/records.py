"""The engine-neutral record that replay scores, and adapters that produce it.

A :class:`ReplayTask` is one finished run of one task type: what it used, how
long it ran, what the workflow asked for, and the features known before it
started. Adapters turn engine traces into these records; the Nextflow one is
here, and one from the store's ``ExecutionTrace`` rows is a few lines::

    ReplayTask(workflow=t.dag_id, task=t.task_id, order=t.started_at.timestamp() * 1000,
               usage=t.peak_rss_bytes, runtime_ms=t.wall_seconds * 1000,
               request=t.allocated_memory_bytes, input_size=t.input_size_bytes)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

from mirrorscale.nextflow import NextflowTrace, TraceFormatError, read_nextflow_trace

UsageColumn = Literal["peak_rss", "rss"]


@dataclass(frozen=True, slots=True)
class ReplayTask:
    """One finished run of a task, as replay sees it (bytes and milliseconds)."""

    workflow: str
    task: str
    order: float
    """Sort key of the chronological protocol (submit time in epoch ms)."""
    usage: float
    """The memory an allocation must cover (bytes)."""
    runtime_ms: float
    request: float | None = None
    """The workflow's own memory request (bytes), the default a user would keep."""
    input_size: float | None = None
    peak: float | None = None
    """The kernel high-water mark when ``usage`` is another metric (else None)."""
    features: dict[str, float] = field(default_factory=dict)
    """Other numeric features known before the run starts."""
    run_id: str = ""


@dataclass
class LoadedTraces:
    """Replay records from several files, with what had to be left out and why."""

    tasks: list[ReplayTask] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    row_errors: list[str] = field(default_factory=list)


def from_nextflow(trace: NextflowTrace, usage: UsageColumn = "peak_rss") -> tuple[list[ReplayTask], int]:
    """COMPLETED rows of ``trace`` as replay records, in file order; also the count skipped.

    ``usage`` picks the column scored (``peak_rss``, or ``rss`` for the Sizey
    protocol); the request is ``memory`` and the input size ``rchar``. Rows
    without the usage or ``realtime`` value, or with a usage of 0 (a task too
    short for Nextflow to measure, as the Sizey harness also drops), are
    skipped (counted).
    """
    records: list[ReplayTask] = []
    skipped = 0
    for row in trace.completed():
        used = getattr(row, usage)
        if used is None or used <= 0 or row.realtime_ms is None:
            skipped += 1
            continue
        features = {name: float(value) for name, value in (("cpus", row.cpus), ("read_bytes", row.read_bytes))
                    if value is not None}
        records.append(ReplayTask(
            workflow=trace.workflow,
            task=row.process,
            order=float(row.submit_ms if row.submit_ms is not None else row.line),
            usage=float(used),
            runtime_ms=float(row.realtime_ms),
            request=None if row.memory is None else float(row.memory),
            input_size=None if row.rchar is None else float(row.rchar),
            peak=None if usage == "peak_rss" or row.peak_rss is None else float(row.peak_rss),
            features=features,
            run_id=row.run_key,
        ))
    return records, skipped


def load_nextflow_traces(paths: Iterable[str | Path], usage: UsageColumn = "peak_rss") -> LoadedTraces:
    """Read Nextflow trace files into replay records.

    Raises :class:`~mirrorscale.nextflow.TraceFormatError` (naming the file and
    column) when a file cannot be used at all, including when none of its rows
    parse; row errors of otherwise good files are collected.
    """
    loaded = LoadedTraces()
    for path in paths:
        trace = read_nextflow_trace(path)
        if trace.errors and not trace.tasks:
            raise TraceFormatError(path, f"no row could be read; first problem: {trace.errors[0]}")
        loaded.row_errors.extend(str(e) for e in trace.errors)
        records, skipped = from_nextflow(trace, usage)
        loaded.tasks.extend(records)
        if skipped:
            loaded.skipped[trace.workflow] = loaded.skipped.get(trace.workflow, 0) + skipped
    return loaded
