"""The feeder and aggregate state of the allocator: one cached, incrementally fed model per task.

A :class:`TaskModel` wraps a sizer of the registry (``METHODS["mirrorscale"]``,
the project's online selector) and remembers the newest trace it has seen. Each
``decide`` asks the store only for traces started at or after that moment
(:meth:`HistoryStore.traces_since`, one range scan of the ``(task_pk,
started_at)`` index), so a task with thousands of runs costs a handful of rows
per decision, not a table scan. The first fit reads at most :data:`WINDOW` runs.

What it keeps besides the sizer (all bounded):

===================  ============================================================
state                used for
===================  ============================================================
``errors``           the sizer's own out-of-sample log errors on the last 20
                     runs: the history *band* compared with a shadow's
``cpu_ratio``        CPU seconds / wall seconds of recent runs -> CPU request
``wall``             recent wall seconds -> priority
``baseline``         process RSS before the task code (``baseline_rss_bytes``)
                     -> added to a shadow's predicted *increase*
``tail``             the newest traces of any outcome -> OOM bump
===================  ============================================================

A trace recorded later with an older ``started_at`` than the newest one seen
is not picked up until the model is rebuilt (:meth:`Allocator.forget`).

A stored row the model cannot trust (an outcome this version does not know,
e.g. written by a newer one; ``features`` that is not a JSON object; a
negative or non-finite measurement) is skipped with one warning and counted
in ``skipped``; the model learns from the other rows as usual.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mirrorscale.predictors.methods import METHODS
from mirrorscale.store.models import OUTCOMES

logger = logging.getLogger("mirrorscale.allocator")

WINDOW = 200
"""Runs read on a task's first fit (the newest ones)."""
RECENT = 20
"""Runs behind the band, CPU ratio, wall time and baseline statistics."""
SIZER_SETTINGS = {"floor": 0.0}
"""Sizer parameters the allocator sets its own way: the least memory of an allocation is the policy's
(``min_allowed``, else :data:`~mirrorscale.allocator.post.MEMORY_FLOOR`), not the replay's 250 MiB,
which would give a 20 MiB task 250 MiB."""


@dataclass(frozen=True, slots=True)
class SizerRun:
    """A run as the sizers read it (:class:`~mirrorscale.predictors.sizing.Run`)."""

    usage: float
    runtime_ms: float
    input_size: float | None
    request: float | None = None


@dataclass(frozen=True)
class HistoryEstimate:
    """What the history model says about the next run."""

    memory_bytes: int | None
    """The sizer's allocation (already an upper bound); None in cold start."""
    band: float | None
    """Median relative miss of the sizer on recent runs (0.1 ~ +-10 %); None before 3 scored runs."""
    runs: int
    """Successful runs the sizer has learned from."""
    reason: str
    cpu: float | None
    """Median CPU seconds per wall second of recent runs (cores)."""
    wall_seconds: float | None
    """Median wall seconds of recent runs."""
    baseline_bytes: int
    """Median process RSS before task code (0 when traces store the increase only)."""


_NUMBERS = ("input_size_bytes", "peak_rss_bytes", "cpu_seconds", "wall_seconds")


def trace_problem(trace: Any) -> str | None:
    """Why a stored trace cannot be learned from (corrupt, or written by another schema version); None if fine."""
    if trace.outcome not in OUTCOMES:
        return f"outcome {trace.outcome!r} is not one of {', '.join(OUTCOMES)} (written by another version?)"
    features = trace.features
    if features is not None and not isinstance(features, dict):
        return f"features is a JSON {type(features).__name__}, not an object"
    for name in _NUMBERS:
        value = getattr(trace, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < 0):
            return f"{name} = {value!r} is not a non-negative number"
    baseline = (features or {}).get("baseline_rss_bytes")
    if baseline is not None and (isinstance(baseline, bool) or not isinstance(baseline, (int, float))
                                 or not math.isfinite(baseline)):
        return f"features.baseline_rss_bytes = {baseline!r} is not a number"
    return None


def usable_traces(traces: Iterable[Any], warned: set[Any] | None = None) -> list[Any]:
    """``traces`` without the ones :func:`trace_problem` rejects, warning once per row id in ``warned``."""
    usable = []
    for trace in traces:
        problem = trace_problem(trace)
        if problem is None:
            usable.append(trace)
        elif warned is None or trace.id not in warned:
            if warned is not None and len(warned) < 100_000:
                warned.add(trace.id)
            logger.warning("mirrorscale: skipped stored trace %s (run %s): %s", trace.id, trace.run_id, problem)
    return usable


class TaskModel:
    """Per-task aggregate state: a sizer fed oldest first, plus bounded recent statistics."""

    def __init__(self, *, method: str = "mirrorscale") -> None:
        self.method = method
        self.sizer = METHODS[method].new_sizer()
        self.adopt(self.sizer)
        self.runs = 0
        self.last_started: datetime | None = None
        self._ids_at_last: set[int] = set()
        self.errors: deque[float] = deque(maxlen=RECENT)
        self.cpu_ratio: deque[float] = deque(maxlen=RECENT)
        self.wall: deque[float] = deque(maxlen=RECENT)
        self.baseline: deque[int] = deque(maxlen=RECENT)
        self.tail: deque[Any] = deque(maxlen=RECENT)
        self.last_input_size: float | None = None
        """Input size of the newest run that recorded one (the guess when a decision is not told)."""
        self.skipped = 0
        self._warned: set[int] = set()
        """Stored rows skipped as corrupt or from another schema version (see the module doc)."""

    def adopt(self, sizer: Any) -> None:
        """Use ``sizer`` (new or restored), with the allocator's :data:`SIZER_SETTINGS` where it has them."""
        for name, value in SIZER_SETTINGS.items():
            if hasattr(sizer, name):
                setattr(sizer, name, value)
        self.sizer = sizer

    def feed(self, traces: Iterable[Any]) -> int:
        """Learn from ``traces`` (oldest first), skipping ones already seen; returns how many were new."""
        new = [t for t in traces if self._is_new(t)]
        for index, trace in enumerate(new):
            if trace.started_at != self.last_started:
                self.last_started, self._ids_at_last = trace.started_at, set()
            self._ids_at_last.add(trace.id)
            if not usable_traces([trace], self._warned):
                self.skipped += 1
                continue
            self.tail.append(trace)
            if trace.input_size_bytes is not None:
                self.last_input_size = float(trace.input_size_bytes)
            self._learn(trace, score=index >= len(new) - RECENT)
        return len(new)

    def _is_new(self, trace: Any) -> bool:
        last = self.last_started
        if last is None or trace.started_at > last:
            return True
        return trace.started_at == last and trace.id not in self._ids_at_last

    def _learn(self, trace: Any, *, score: bool = True) -> None:
        """Learn one successful run: its timing always, its memory when it raised the process's RSS.

        A run with no peak rise (a task in a thread of a long-lived process that reused
        freed heap, as under Prefect's thread runner) still says how long the task takes
        and how many CPUs it keeps busy; only the memory sizer, which needs a usage above
        zero, does not see it.
        """
        if trace.outcome != "success" or trace.wall_seconds is None:
            return
        if trace.wall_seconds > 0 and trace.cpu_seconds is not None:
            self.cpu_ratio.append(trace.cpu_seconds / trace.wall_seconds)
        self.wall.append(trace.wall_seconds)
        self.baseline.append(int((trace.features or {}).get("baseline_rss_bytes") or 0))
        if not trace.peak_rss_bytes:
            return
        run = SizerRun(float(trace.peak_rss_bytes), trace.wall_seconds * 1000.0,
                       None if trace.input_size_bytes is None else float(trace.input_size_bytes))
        if score and self.runs >= 2:  # score the sizer out of sample before it sees the run (only the newest)
            predicted = self.sizer.allocate(run)
            self.errors.append(abs(math.log(run.usage / predicted)))
        self.sizer.observe(run)
        self.runs += 1

    def estimate(self, input_size: float | None) -> HistoryEstimate:
        """The sizer's allocation for a run of ``input_size`` with the recent statistics."""
        memory = None
        reason = "no successful run yet"
        if self.runs:
            memory = int(self.sizer.allocate(SizerRun(0.0, 0.0, input_size)))
            reason = str(getattr(self.sizer, "reason", self.method))
        band = math.expm1(statistics.median(self.errors)) if len(self.errors) >= 3 else None
        return HistoryEstimate(
            memory_bytes=memory, band=band, runs=self.runs, reason=reason,
            cpu=statistics.median(self.cpu_ratio) if self.cpu_ratio else None,
            wall_seconds=statistics.median(self.wall) if self.wall else None,
            baseline_bytes=int(statistics.median(self.baseline)) if self.baseline else 0)

    def retry(self, input_size: float | None, failed: float, failures: int) -> int | None:
        """The sizer's own allocation after ``failures`` OOM kills at ``failed`` bytes (None in cold start)."""
        if not self.runs:
            return None
        return int(self.sizer.retry(SizerRun(0.0, 0.0, input_size), failed, failures))

    def oom_streak(self, run_id: str | None = None) -> tuple[int, Any | None]:
        """How many newest traces (of ``run_id``, else of the task) were OOM-killed in a row, and the newest one."""
        tail = [t for t in self.tail if run_id is None or t.run_id == run_id]
        streak, last = 0, None
        for trace in reversed(tail):
            if trace.outcome != "oom_killed":
                break
            streak, last = streak + 1, last or trace
        return streak, last
