"""The mirror life cycle of a task: none -> active -> retired, each transition stored with its reason.

:meth:`MirrorLifecycle.step` is called before a run of a task; it reads the
task's recent traces and shadows, decides whether the mirror's state changes
(and stores the transition, :meth:`HistoryStore.record_mirror_state`), and
whether a mirror should run *now*::

    lifecycle = MirrorLifecycle(store, policies)
    decision = lifecycle.step(key, on_path=on_predicted_path(path_predictor, context, key[2]))
    if decision.mirror_now:
        shadow = mirror_task(fn, args, kwargs, policy=policy, store=store, key=key)

========================  ===========================================================
transition                when (defaults)
========================  ===========================================================
none/retired -> active    the volatility detector flags a hotspot (run often enough and
                          input size, dependency latency or cost changing fast), the
                          policy allows mirrors and the task is on the predicted path;
                          after a retirement for missing, only ``cooldown_runs`` (20)
                          runs later
active -> retired (a)     behaviour stabilised: volatility below the threshold at each
                          of the last ``stable_runs`` (5) runs
active -> retired (b)     allocations sufficient and stable: the last
                          ``sufficient_runs`` (10) runs all succeeded within their
                          allocation, allocations within 10 % of each other
active -> retired (c)     predictions keep missing: each of the last ``miss_runs`` (3)
                          shadows failed or missed its run's real peak by more than
                          ``miss_error`` (40 %)
active -> retired         the policy no longer allows mirrors
========================  ===========================================================

Refresh rate while active (``T`` = the detector's threshold, 0.2; ``k`` runs
between mirrors): volatility ``>= 2T`` -> every run; else ``ceil(2T / score)``,
at most ``max_interval`` (10):

=========  ===  =====  =====  ======
score      0.4  0.3    0.1    0.04
every k    1    2      4      10
=========  ===  =====  =====  ======

Only tasks on the predicted path are mirrored (and pre-sized from a shadow,
see the allocator's ``on_path`` feature); the others keep history-based
allocation and their state does not change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mirrorscale.allocator.history import usable_traces
from mirrorscale.predictors.volatility import VolatilityReport, assess
from mirrorscale.store.models import utcnow

LATENCY_FEATURE = "dependency_latency_seconds"
"""Trace feature read as the dependency-latency series, when an engine records it."""


@dataclass(frozen=True)
class MirrorDecision:
    """What :meth:`MirrorLifecycle.step` decided for one upcoming run."""

    state: str
    """The state after the step: ``none``, ``active`` or ``retired``."""
    mirror_now: bool
    reason: str
    volatility: float | None = None
    interval: int | None = None
    """Runs between mirrors while active."""
    changed: bool = False
    """True when this step stored a transition."""
    details: dict[str, Any] = field(default_factory=dict)


def volatility_series(traces: Sequence[Any]) -> dict[str, list[float]]:
    """Per-run series the detector reads (oldest first): input size, latency, peak memory, wall, CPU."""
    pick = {
        "input_size": lambda t: t.input_size_bytes,
        "latency": lambda t: (t.features or {}).get(LATENCY_FEATURE),
        "peak_rss": lambda t: t.peak_rss_bytes if t.outcome == "success" else None,
        "wall": lambda t: t.wall_seconds if t.outcome == "success" else None,
        "cpu": lambda t: t.cpu_seconds if t.outcome == "success" else None,
    }
    series = {name: [v for v in (get(t) for t in traces) if v is not None] for name, get in pick.items()}
    return {name: values for name, values in series.items() if values}


def refresh_interval(score: float, threshold: float, max_interval: int = 10) -> int:
    """Runs between mirrors for a volatility ``score`` (see the module table)."""
    if score >= 2 * threshold:
        return 1
    return min(max_interval, max(1, math.ceil(2 * threshold / max(score, 1e-9))))


def on_predicted_path(predictor: Any, context: Mapping[str, Any], task_id: str) -> bool:
    """True when ``task_id`` is in the branch a fitted :class:`PathPredictor` expects for ``context``.

    Branch labels name their tasks joined by ``+`` (:func:`~mirrorscale.predictors.path.branch_label`).
    An unfitted predictor (no history) puts every task on the path.
    """
    if predictor is None or getattr(predictor, "most_frequent_", None) is None:
        return True
    (branch,) = predictor.predict([context])
    return task_id in str(branch).split("+")


class MirrorLifecycle:
    """Creates, refreshes and retires a task's mirror (see the module tables); keyword settings stored as given."""

    def __init__(self, store: Any, policies: Any, *, window: int = 50, threshold: float = 0.2, min_runs: int = 10,
                 stable_runs: int = 5, sufficient_runs: int = 10, stable_tolerance: float = 0.10,
                 miss_runs: int = 3, miss_error: float = 0.4, cooldown_runs: int = 20, max_interval: int = 10) -> None:
        self.store = store
        self.policies = policies
        self.window = window
        self.threshold = threshold
        self.min_runs = min_runs
        self.stable_runs = stable_runs
        self.sufficient_runs = sufficient_runs
        self.stable_tolerance = stable_tolerance
        self.miss_runs = miss_runs
        self.miss_error = miss_error
        self.cooldown_runs = cooldown_runs
        self.max_interval = max_interval
        self._warned: set[int] = set()

    def assess(self, traces: Sequence[Any]) -> VolatilityReport:
        """The detector's report on ``traces`` (oldest first)."""
        traces = usable_traces(traces, self._warned)  # corrupt rows or another version's: skipped, warned once
        return assess(volatility_series(traces), threshold=self.threshold, min_runs=self.min_runs)

    def step(self, key: tuple[str, str, str], *, on_path: bool = True, now: datetime | None = None) -> MirrorDecision:
        """Advance the life cycle of task ``key`` before a run; store a transition when the state changes."""
        now = now or utcnow()
        traces = usable_traces(self.store.traces_since(key, None, limit=self.window), self._warned)  # corrupt: skipped
        report = self.assess(traces)
        current = self.store.latest_mirror_state(key)
        state = current.state if current is not None else "none"
        policy = self.policies.for_task(key[1], key[2])
        if state == "active":
            retire = self._retire_reason(key, traces, current, policy)
            if retire is not None:
                return self._transition(key, "retired", retire, report, now)
            return self._active(key, traces, report, on_path)
        if not on_path:
            return MirrorDecision(state, False, "off the predicted path: history-based allocation", report.score)
        create = self._create_reason(traces, current, report, policy)
        if create is None:
            why = report.reason if not report.hotspot else "mirrors not allowed by the policy"
            if current is not None and state == "retired" and report.hotspot and policy.mirror:
                why = f"retired ({current.reason}); cooling down"
            return MirrorDecision(state, False, why, report.score)
        return self._transition(key, "active", create, report, now)

    # -- rules -------------------------------------------------------------

    def _create_reason(self, traces: Sequence[Any], current: Any, report: VolatilityReport, policy: Any) -> str | None:
        if not report.hotspot or not policy.mirror:
            return None
        if current is not None and current.details.get("rule") == "missing":
            since = _runs_after(traces, current.created_at)
            if since < self.cooldown_runs:
                return None
        return report.reason

    def _retire_reason(self, key: Any, traces: Sequence[Any], current: Any, policy: Any) -> tuple[str, str] | None:
        if not policy.mirror:
            return "policy", "the policy no longer allows mirrors"
        since = [t for t in traces if t.started_at > current.created_at]
        return (self._stabilised(traces, len(since)) or self._sufficient(since)
                or self._missing(key, traces, current.created_at))

    def _stabilised(self, traces: Sequence[Any], runs_since: int) -> tuple[str, str] | None:
        if runs_since < self.stable_runs:
            return None
        scores = [self.assess(traces[: len(traces) - j]).score for j in range(self.stable_runs)]
        if max(scores) >= self.threshold:
            return None
        return "stable", (f"behaviour stabilised: volatility below {self.threshold:g} for {self.stable_runs} runs "
                          f"(largest {max(scores):.3f})")

    def _sufficient(self, since: Sequence[Any]) -> tuple[str, str] | None:
        last = list(since)[-self.sufficient_runs:]
        if len(last) < self.sufficient_runs:
            return None
        allocated = [t.allocated_memory_bytes for t in last]
        if any(t.outcome != "success" for t in last) or not all(allocated):
            return None
        if any((t.peak_rss_bytes or 0) > a for t, a in zip(last, allocated)):
            return None
        if max(allocated) > min(allocated) * (1 + self.stable_tolerance):
            return None
        return "sufficient", (f"allocations sufficient and stable for {self.sufficient_runs} runs "
                              f"(all fitted, within {self.stable_tolerance:.0%} of each other)")

    def _missing(self, key: Any, traces: Sequence[Any], active_since: datetime) -> tuple[str, str] | None:
        shadows = [s for s in self.store.recent_shadows(key, limit=self.miss_runs) if s.created_at > active_since]
        if len(shadows) < self.miss_runs:  # only this activation's shadows count
            return None
        by_run = {t.run_id: t for t in traces if t.outcome == "success"}
        errors = [shadow_error(s, by_run.get(s.run_id)) for s in shadows]
        if any(e is None or e <= self.miss_error for e in errors):
            return None
        shown = ", ".join("failed" if math.isinf(e) else f"{e:.0%}" for e in errors)
        return "missing", f"predictions keep missing: the last {self.miss_runs} shadows were off by {shown}"

    # -- results -----------------------------------------------------------

    def _active(self, key: Any, traces: Sequence[Any], report: VolatilityReport, on_path: bool) -> MirrorDecision:
        interval = refresh_interval(report.score, self.threshold, self.max_interval)
        if not on_path:
            return MirrorDecision("active", False, "active, but off the predicted path this run", report.score,
                                  interval)
        latest = self.store.latest_shadow(key)
        since = None if latest is None else _runs_after(traces, latest.created_at)
        due = since is None or since + 1 >= interval
        shown = "no shadow yet" if since is None else f"{since} run(s) since the last shadow"
        verb = "mirror now" if due else "not due"
        return MirrorDecision("active", due, f"active, refresh every {interval} run(s); {shown}: {verb}",
                              report.score, interval)

    def _transition(self, key: Any, state: str, why: str | tuple[str, str], report: VolatilityReport,
                    now: datetime) -> MirrorDecision:
        rule, reason = ("hotspot", why) if isinstance(why, str) else why
        interval = refresh_interval(report.score, self.threshold, self.max_interval) if state == "active" else None
        details = {"rule": rule, "runs": report.runs, "interval": interval,
                   "series": {n: round(s.score, 4) for n, s in report.series.items()}}
        self.store.record_mirror_state(key, state=state, reason=reason, volatility=report.score, details=details,
                                       created_at=now)
        return MirrorDecision(state, state == "active", reason, report.score, interval, True, details)


def shadow_error(shadow: Any, trace: Any) -> float | None:
    """Relative miss of a shadow on its run: |predicted - actual| / actual (inf: mirror failed; None: no run).

    The shadow predicts the peak *increase*; a trace holding the full process
    peak carries ``baseline_rss_bytes``, which is added to the prediction.
    """
    if shadow.outcome != "ok" or not shadow.predicted_peak_rss_bytes:
        return math.inf
    if trace is None or not trace.peak_rss_bytes:
        return None
    predicted = shadow.predicted_peak_rss_bytes + int((trace.features or {}).get("baseline_rss_bytes") or 0)
    return abs(predicted - trace.peak_rss_bytes) / trace.peak_rss_bytes


def _runs_after(traces: Sequence[Any], moment: datetime) -> int:
    return sum(1 for t in traces if t.started_at > moment)
