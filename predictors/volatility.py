"""Volatility: how fast a task's input size, dependency latency and cost change.

Spread alone is not volatility: a task whose memory varies widely but not
over time is predictable from its history. For every series (oldest run
first) the detector measures

* the **trend**: Holt's double-exponential smoothing on the log scale; the
  smoothed slope is the relative change per run (0.05 = +5 % per run);
* **change points**: a two-sided Page–Hinkley test on the log values, with
  tolerance ``0.5 sigma`` and threshold ``5 sigma`` (sigma from the median
  absolute run-to-run difference, so a level shift does not inflate it).

The score is the largest expected change over ``horizon`` runs: ``|slope| x
horizon``, or the size of a change point seen in the last ``horizon`` runs
(log units; 0.1 is about 10 %). A task is a **hotspot worth mirroring** when it
has run at least ``min_runs`` times and its score reaches ``threshold``.

==========================  ==========  =============================
series (example)            score       verdict
==========================  ==========  =============================
flat +- 10 % noise          ~0.02       stable
+3 % per run                ~0.3        hotspot: growing 3 %/run
steady, then x 1.5 jump     ~0.4        hotspot: jumped +50 % at run k
==========================  ==========  =============================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

SERIES_LABELS = {
    "input_size": "input size",
    "latency": "dependency latency",
    "peak_rss": "peak memory",
    "wall": "wall time",
    "cpu": "CPU time",
}
"""Human names of the series the detector knows (others are shown by key)."""


@dataclass(frozen=True)
class SeriesVolatility:
    """Trend and change point of one series."""

    name: str
    slope: float
    """Smoothed change of the log value per run (0.05 ~ +5 % per run)."""
    change_at: int | None
    """Index of the run where the last change point was detected (None if none)."""
    shift: float
    """Log-size of that change (mean after minus mean before), 0 if none."""
    score: float


@dataclass(frozen=True)
class VolatilityReport:
    """A task's volatility score, whether it is a hotspot, and why (in words)."""

    score: float
    hotspot: bool
    runs: int
    reason: str
    series: dict[str, SeriesVolatility] = field(default_factory=dict)


def holt_slope(y: np.ndarray, alpha: float = 0.3, beta: float = 0.1) -> float:
    """Final trend of Holt's linear (double exponential) smoothing of ``y``."""
    if len(y) < 2:
        return 0.0
    level, trend = float(y[0]), float(y[1] - y[0])
    for value in y[1:]:
        previous = level
        level = alpha * float(value) + (1 - alpha) * (level + trend)
        trend = beta * (level - previous) + (1 - beta) * trend
    return trend


def robust_sigma(y: np.ndarray) -> float:
    """Noise level from run-to-run differences: 1.4826 x MAD(diff) / sqrt(2)."""
    if len(y) < 3:
        return 0.0
    diffs = np.diff(y)
    return float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / math.sqrt(2))


def page_hinkley(y: np.ndarray, delta: float, threshold: float) -> int | None:
    """Index of the last change point found by a two-sided Page–Hinkley test (None if none).

    After an alarm the test restarts from the alarm, so several shifts can be
    found; the last one is returned.
    """
    last, start = None, 0
    while start < len(y) - 1:
        mean, up, down, up_min, down_max, alarm = 0.0, 0.0, 0.0, 0.0, 0.0, None
        for i in range(start, len(y)):
            mean += (y[i] - mean) / (i - start + 1)
            up += y[i] - mean - delta
            down += y[i] - mean + delta
            up_min, down_max = min(up_min, up), max(down_max, down)
            if up - up_min > threshold or down_max - down > threshold:
                alarm = i
                break
        if alarm is None:
            break
        last, start = alarm, alarm + 1
    return last


def series_volatility(name: str, values: Sequence[float], horizon: int = 10) -> SeriesVolatility:
    """Trend, change point and score of one series (non-positive or missing values are dropped)."""
    arr = np.asarray([v for v in values if v is not None and v > 0], dtype=float)
    y = np.log(arr)
    slope = holt_slope(y)
    sigma = max(robust_sigma(y), 0.01)
    change_at = page_hinkley(y, 0.5 * sigma, 5 * sigma) if len(y) >= 6 else None
    shift = 0.0
    if change_at is not None:
        before, after = y[max(0, change_at - horizon):change_at], y[change_at:]
        shift = float(after.mean() - before.mean()) if len(before) else 0.0
        if len(y) - change_at > horizon:  # an old change point is history, not volatility
            shift = 0.0
    return SeriesVolatility(name, slope, change_at, shift, max(abs(slope) * horizon, abs(shift)))


def _describe(s: SeriesVolatility) -> str:
    label = SERIES_LABELS.get(s.name, s.name)
    if abs(s.shift) >= abs(s.slope) * 10 and s.change_at is not None:
        return f"{label} {'jumped' if s.shift > 0 else 'dropped'} {math.expm1(s.shift):+.0%} at run {s.change_at + 1}"
    return f"{label} is {'growing' if s.slope > 0 else 'shrinking'} {math.expm1(abs(s.slope)):.1%} per run"


def assess(series: Mapping[str, Sequence[float]], *, threshold: float = 0.2, min_runs: int = 10,
           horizon: int = 10) -> VolatilityReport:
    """Score a task from its per-run series (e.g. ``{"input_size": [...], "peak_rss": [...]}``)."""
    runs = max((len(v) for v in series.values()), default=0)
    measured = {name: series_volatility(name, values, horizon) for name, values in series.items()}
    worst = max(measured.values(), key=lambda s: s.score, default=None)
    score = worst.score if worst else 0.0
    if runs < min_runs:
        reason = f"only {runs} run(s): not run often enough to be worth mirroring (needs {min_runs})"
        return VolatilityReport(score, False, runs, reason, measured)
    if worst is None or score < threshold:
        reason = (f"stable: no series is expected to change more than {math.expm1(threshold):.0%} "
                  f"over {horizon} runs (largest: {math.expm1(score):.1%})")
        return VolatilityReport(score, False, runs, reason, measured)
    movers = sorted((s for s in measured.values() if s.score >= threshold), key=lambda s: -s.score)
    reason = "hotspot: " + "; ".join(_describe(s) for s in movers)
    return VolatilityReport(score, True, runs, reason, measured)
