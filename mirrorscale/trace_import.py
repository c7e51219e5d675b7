"""Import Nextflow traces into the history store.

Each task attempt becomes one :class:`~mirrorscale.store.models.ExecutionTrace`
with engine ``nextflow``, pipeline id = the workflow (from the file name,
``trace_rnaseq.csv`` -> ``rnaseq``), task id = the ``process``, run id = the
task ``hash`` and try = ``attempt``. Importing the same file twice adds
nothing. A file with malformed rows is refused whole unless ``skip_bad`` is
set; either way every bad row is reported with its line number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from mirrorscale.nextflow import NextflowTask, NextflowTrace, TraceRowError, read_nextflow_trace
from mirrorscale.store.history import HistoryStore

OOM_EXIT_CODES = frozenset({137, 247})
"""Exit codes Nextflow reports for tasks killed for memory (SIGKILL, LSF/Slurm OOM)."""

_OUTCOME = {"COMPLETED": "success", "FAILED": "failed", "ABORTED": "failed"}


@dataclass
class ImportReport:
    """What one import did: rows read, inserted, already present, skipped, and the errors."""

    files: int = 0
    rows: int = 0
    inserted: int = 0
    already_present: int = 0
    skipped: int = 0
    errors: list[TraceRowError] = field(default_factory=list)


class TraceImportError(ValueError):
    """Malformed rows were found; nothing was written."""

    def __init__(self, errors: list[TraceRowError]) -> None:
        shown = "\n".join(f"  {e}" for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(
            f"{len(errors)} malformed row(s); nothing was imported "
            f"(fix them, or pass --skip-bad to import the good rows):\n{shown}{more}"
        )
        self.errors = errors


def _epoch_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def trace_row(task: NextflowTask, workflow: str, path: str) -> dict[str, Any] | TraceRowError:
    """The store row of one Nextflow task attempt, or the error that prevents it."""
    started = task.start_ms if task.start_ms is not None else task.submit_ms
    if started is None:
        return TraceRowError(path, task.line, "start", "-", "a task needs a start or submit time")
    outcome = _OUTCOME.get(task.status, "failed")
    if outcome == "failed" and task.exit_code in OOM_EXIT_CODES:
        outcome = "oom_killed"
    wall = task.realtime_ms / 1000 if task.realtime_ms is not None else None
    cpu = wall * task.pct_cpu / 100 if wall is not None and task.pct_cpu is not None else None
    features = {k: v for k, v in (("rchar", task.rchar), ("wchar", task.wchar), ("rss", task.rss),
                                  ("cpus", task.cpus), ("memory_request", task.memory),
                                  ("submit_ms", task.submit_ms)) if v is not None}
    features["name"] = task.name
    return {
        "engine": "nextflow",
        "pipeline_id": workflow,
        "task_id": task.process,
        "run_id": task.run_key,
        "try_number": task.attempt,
        "started_at": _epoch_ms(started),
        "ended_at": _epoch_ms(task.complete_ms),
        "source": "nextflow-import",
        "features": features,
        "input_size_bytes": task.rchar,
        "peak_rss_bytes": task.peak_rss,
        "cpu_seconds": cpu,
        "wall_seconds": wall,
        "read_bytes": task.read_bytes,
        "write_bytes": task.write_bytes,
        "outcome": outcome,
        "allocated_memory_bytes": task.memory,
        "allocated_cpu": task.cpus,
    }


def _rows_of(trace: NextflowTrace, workflow: str) -> tuple[list[dict[str, Any]], list[TraceRowError], int]:
    rows, errors, skipped = [], list(trace.errors), 0
    for task in trace.tasks:
        if task.status == "CACHED":  # a cached result was not run: nothing was measured
            skipped += 1
            continue
        row = trace_row(task, workflow, trace.path)
        (errors if isinstance(row, TraceRowError) else rows).append(row)
    return rows, errors, skipped


def import_traces(
    store: HistoryStore,
    paths: Iterable[str | Path],
    *,
    pipeline_id: str | None = None,
    skip_bad: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import Nextflow trace files into ``store`` in one transaction.

    ``pipeline_id`` overrides the workflow name taken from each file name.
    Raises :class:`TraceImportError` (writing nothing) when rows are malformed
    and ``skip_bad`` is false; ``TraceFormatError`` when a file is unusable.
    ``progress`` is called with the number of rows handled since the last call.
    """
    report = ImportReport()
    rows: list[dict[str, Any]] = []
    for path in paths:
        trace = read_nextflow_trace(path)
        found, errors, skipped = _rows_of(trace, pipeline_id or trace.workflow)
        report.files += 1
        report.rows += len(trace.tasks) + len(trace.errors)
        report.skipped += skipped + (len(errors) if skip_bad else 0)
        report.errors.extend(errors)
        rows.extend(found)
    if report.errors and not skip_bad:
        raise TraceImportError(report.errors)
    report.inserted = store.add_traces(_counting(rows, progress))
    report.already_present = len(rows) - report.inserted
    return report


def _counting(rows: list[dict[str, Any]], progress: Callable[[int], None] | None, every: int = 200):
    for index, row in enumerate(rows, start=1):
        yield row
        if progress is not None and (index % every == 0 or index == len(rows)):
            progress(every if index % every == 0 else index % every)
