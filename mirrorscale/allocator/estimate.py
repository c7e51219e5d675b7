"""The estimator chain of the allocator: history, shadow, the choice between them, the OOM bump.

=====================  ===================================================  ==============================
stage                  rule                                                 example
=====================  ===================================================  ==============================
history                the ``mirrorscale`` sizer's allocation (already a    1.6 GiB, band +-8 %
                       bound); band = its median recent miss
shadow                 ``predicted_peak_rss_high`` + the process baseline   1.5 GiB +- 12 % + 150 MiB
                       (traces of engines that store full peaks carry
                       ``baseline_rss_bytes``); band = half its low..high
                       range over the value
choice                 shadow when fresh (``<= max_age``, outcome ok) and   +-12 % vs +-8 %: history;
                       its band is narrower than history's, or history has  cold start: shadow
                       no model yet; else history
OOM bump               after an OOM kill of this run (or, for a new run,    killed at 1 GiB ->
                       the task's latest run): max(1.2 x used, used +       max(1.2, 1.1) GiB, the
                       100 MiB, the sizer's retry rule, the estimate)       sizer's retry, the estimate
=====================  ===================================================  ==============================
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mirrorscale.allocator.history import HistoryEstimate, TaskModel
from mirrorscale.policy import format_bytes

MIB = 1024**2
OOM_FACTOR = 1.2
"""After an OOM kill: at least this times what the killed attempt used."""
OOM_STEP = 100 * MIB
"""After an OOM kill: at least this much more than what the killed attempt used."""
SHADOW_MAX_AGE = timedelta(hours=6)
"""A shadow older than this is stale: the input it sampled is not today's any more."""


@dataclass(frozen=True)
class MemoryEstimate:
    """The chosen memory need before headroom and bounds, with where it came from and why."""

    memory_bytes: int
    source: str
    """``history``, ``shadow``, ``default`` or ``oom-bump``."""
    text: str
    """How it was chosen, in words (becomes the start of the allocation's reason)."""
    shadow_id: int | None = None
    cpu: float | None = None
    wall_seconds: float | None = None


def shadow_band(shadow: Any) -> float | None:
    """Relative half-width of the shadow's peak band: (high - low) / 2 / value."""
    value, low, high = shadow.predicted_peak_rss_bytes, shadow.predicted_peak_rss_low, shadow.predicted_peak_rss_high
    if not value or low is None or high is None:
        return None
    return max(0.0, (high - low) / 2.0 / value)


def usable_shadow(shadow: Any, now: datetime, max_age: timedelta = SHADOW_MAX_AGE) -> str | None:
    """None when ``shadow`` can size a run; else why not (in words)."""
    if shadow is None:
        return "no shadow"
    if shadow.outcome != "ok" or not shadow.predicted_peak_rss_bytes:
        return f"shadow unusable (mirror {shadow.outcome})"
    created = shadow.created_at
    if created is not None and now - created > max_age:
        return f"shadow stale ({_age(now - created)} old)"
    return None


def _age(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours >= 1 else f"{delta.total_seconds() / 60:.0f} min"


def _pct(band: float | None) -> str:
    return "?" if band is None else f"+-{band:.0%}"


def _shadow_estimate(shadow: Any, history: HistoryEstimate, why: str) -> MemoryEstimate:
    need = int(shadow.predicted_peak_rss_high or shadow.predicted_peak_rss_bytes) + history.baseline_bytes
    base = f" + baseline {format_bytes(history.baseline_bytes)}" if history.baseline_bytes else ""
    text = (f"mirror {shadow.sample_fraction:.0%} sample -> {format_bytes(need)} "
            f"(high end of {_pct(shadow_band(shadow))}{base}; {why})")
    cpu = wall = None
    if shadow.predicted_cpu_seconds is not None and shadow.predicted_wall_seconds:
        cpu = shadow.predicted_cpu_seconds / shadow.predicted_wall_seconds
        wall = shadow.predicted_wall_seconds
    return MemoryEstimate(need, "shadow", text, getattr(shadow, "id", None), cpu, wall)


def _history_estimate(history: HistoryEstimate, why: str) -> MemoryEstimate:
    assert history.memory_bytes is not None
    text = (f"history of {history.runs} run(s) -> {format_bytes(history.memory_bytes)} "
            f"({history.reason}; {why})")
    return MemoryEstimate(history.memory_bytes, "history", text, None, history.cpu, history.wall_seconds)


def choose(history: HistoryEstimate, shadow: Any, now: datetime, *, max_age: timedelta = SHADOW_MAX_AGE,
           default_memory: int | None = None) -> MemoryEstimate | None:
    """History or shadow (see the module table); ``default_memory`` in cold start; None when nothing is known."""
    unusable = usable_shadow(shadow, now, max_age)
    if history.memory_bytes is None:
        if unusable is None:
            return _shadow_estimate(shadow, history, "no history yet")
        if default_memory:
            return MemoryEstimate(default_memory, "default", f"cold start: policy default_memory "
                                  f"{format_bytes(default_memory)} ({unusable})", None,
                                  history.cpu, history.wall_seconds)
        return None
    if unusable is not None:
        return _history_estimate(history, unusable)
    s_band, h_band = shadow_band(shadow), history.band
    if s_band is not None and (h_band is None or s_band < h_band):
        return _shadow_estimate(shadow, history, f"shadow wins: band {_pct(s_band)} vs history {_pct(h_band)}")
    return _history_estimate(history, f"history wins: band {_pct(h_band)} vs shadow {_pct(s_band)}")


def _clearly_larger(killed_input: float | None, input_size: float | None) -> bool:
    """True when the killed run's input exceeded this run's by more than 10 %."""
    return bool(killed_input and input_size and killed_input > 1.1 * input_size)


def oom_bump(estimate: MemoryEstimate | None, model: TaskModel, run_id: str,
             input_size: float | None) -> MemoryEstimate | None:
    """Raise ``estimate`` after an OOM kill of this run's earlier try (else of the task's latest run).

    The task's latest run counts only when its input was not clearly larger than
    this run's (an instance of a fan-out killed on a big item says nothing about
    a small one).
    """
    streak, killed = model.oom_streak(run_id)
    scope = "this run"
    if not streak:
        streak, killed = model.oom_streak()
        scope = "the task's latest run"
        if streak and _clearly_larger(killed.input_size_bytes, input_size):
            return estimate
    if not streak:
        return estimate
    used = max(killed.allocated_memory_bytes or 0, killed.peak_rss_bytes or 0)
    if not used:
        return estimate
    rule = max(math.ceil(OOM_FACTOR * used), used + OOM_STEP)  # "at least": round up
    retry = model.retry(input_size, float(used), streak) or 0
    bumped = max(rule, retry, estimate.memory_bytes if estimate else 0)
    which = "sizer retry" if bumped == retry and retry > rule else "max(1.2 x used, used + 100 MiB)"
    if estimate is not None and bumped == estimate.memory_bytes and bumped > max(rule, retry):
        which = "the estimate, already above the bump"
    text = (f"OOM bump: {scope} was killed {streak}x at {format_bytes(used)} -> {format_bytes(bumped)} ({which})"
            + (f"; before the bump: {estimate.text}" if estimate else ""))
    return MemoryEstimate(bumped, "oom-bump", text, estimate.shadow_id if estimate else None,
                          estimate.cpu if estimate else None, estimate.wall_seconds if estimate else None)
