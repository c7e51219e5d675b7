"""Extrapolation: from what mirrors cost on samples to what the full input will cost.

Each metric (peak RSS increase, CPU seconds, wall seconds) is fitted on its
own, against the input size in bytes:

======================  ===========================================  ============================
points                  model                                        example (x20 target)
======================  ===========================================  ============================
one size                proportional, band from exponents 0.85..1.15  10 MB -> 200 (127..313)
slope ~ 1 (or near 0)   ``fixed + rate * size`` (both >= 0)           1%: 5, 2.5%: 8, 5%: 13 -> 203
slope clearly > 1       power law ``c * size ** p`` on log-log        1%: 1, 2.5%: 4, 5%: 9 -> 579
slope clearly < 1       whichever of fixed + proportional and the     1%: 10, 2.5%: 16, 5%: 22 ->
                        power law fits the points better (log space)  power law p=0.49 -> 97
======================  ===========================================  ============================

"Clearly" means more than two standard errors of the log-log slope, computed
from a measurement noise of 5 % per point (more near the metric's absolute
noise floor) or from the points' scatter around the line when that is larger;
points within five noise floors of zero show no shape and are fitted as fixed
+ proportional. So the growth law is picked by the measured points, never by
the task: a fixed + proportional cost with both parts non-negative can never
grow faster than linearly, and a sub-linear one (distinct keys of skewed data,
workspace that saturates) is either a fixed cost plus a linear part or a power
law below one, whichever the points say. The band comes from the same noise
(or residual) on every point, pushed through the fit.

History (full-size runs of the task: ``(input_size, peak, cpu, wall)``) is
fitted the same way. When both mirror and history are given, their estimates
are combined in log space weighted by the inverse square of their band widths;
``evidence`` names the share of each, and which one dominated.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

__all__ = ["METRICS", "CostPoint", "Estimate", "Extrapolation", "combine", "extrapolate", "fit_scaling"]

METRICS = ("peak_rss_bytes", "cpu_seconds", "wall_seconds")
"""The metrics extrapolated, in the order of :class:`CostPoint`'s fields."""

_NOISE = 0.05
_FLOOR = {"peak_rss_bytes": 2 * 2**20, "cpu_seconds": 0.01, "wall_seconds": 0.01}
_ONE_SIZE_EXPONENTS = (0.85, 1.15)
_SLOPE_SIGMAS = 2.0  # a log-log slope this many standard errors from 1 is read as a power law
_POWER_FLOORS = 5  # a power law needs every point this many noise floors above zero


@dataclass(frozen=True)
class CostPoint:
    """What one run cost at one input size (a mirror on a sample, or a past full run)."""

    size: float
    peak_rss_bytes: float
    cpu_seconds: float
    wall_seconds: float

    def value(self, metric: str) -> float:
        """The cost of ``metric`` (one of :data:`METRICS`)."""
        return float(getattr(self, metric))


@dataclass(frozen=True)
class Estimate:
    """One extrapolated metric: point value, low/high band, model and the evidence shares."""

    value: float
    low: float
    high: float
    model: str
    shares: tuple[tuple[str, float], ...]

    @property
    def dominant(self) -> str:
        """The evidence with the largest share (``mirror`` or ``history``)."""
        return max(self.shares, key=lambda share: share[1])[0]

    def describe(self) -> str:
        """``model, mirror 80% + history 20%``."""
        parts = " + ".join(f"{name} {share:.0%}" for name, share in self.shares)
        return f"{self.model}, {parts}"


@dataclass(frozen=True)
class Extrapolation:
    """The three extrapolated metrics for one target input size."""

    target_size: float
    peak_rss_bytes: Estimate
    cpu_seconds: Estimate
    wall_seconds: Estimate

    def evidence(self) -> str:
        """One line per metric saying which model and which evidence produced it."""
        lines = [f"{metric}: {getattr(self, metric).describe()}" for metric in METRICS]
        dominant = {getattr(self, metric).dominant for metric in METRICS}
        head = f"dominated by {' and '.join(sorted(dominant))}"
        return "; ".join([head, *lines])


def _affine(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares ``y = a + b x``."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx else 0.0
    return my - b * mx, b


def _predict_affine(xs: Sequence[float], ys: Sequence[float], target: float) -> float:
    a, b = _affine(xs, ys)
    if b < 0:  # shrinking with size: noise around a constant
        return sum(ys) / len(ys)
    if a < 0:
        a, b = 0.0, sum(ys) / sum(xs)  # rate through the origin
    return a + b * target


def _loglog(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float, float]:
    """Least squares on ``log y = a + p log x``: ``(a, p, residual sum of squares, sxx)``."""
    us, vs = [math.log(x) for x in xs], [math.log(max(y, 1e-12)) for y in ys]
    a, p = _affine(us, vs)
    mean = sum(us) / len(us)
    sse = sum((v - a - p * u) ** 2 for u, v in zip(us, vs))
    return a, p, sse, sum((u - mean) ** 2 for u in us)


def _predict_power(xs: Sequence[float], ys: Sequence[float], target: float) -> float:
    a, p, _, _ = _loglog(xs, ys)
    return math.exp(a + p * math.log(target))


def _slope_error(ys: Sequence[float], sse: float, sxx: float, floor: float) -> float:
    """Standard error of the log-log slope: measurement noise (5 %, or the floor near zero)
    or the scatter the points show around the line, whichever is larger."""
    model = max(max(_NOISE, floor / y) for y in ys)
    scatter = math.sqrt(sse / (len(ys) - 2)) if len(ys) > 2 else 0.0
    return max(model, scatter) / math.sqrt(sxx)


def _log_sse(xs: Sequence[float], ys: Sequence[float], predict: Callable[[float], float]) -> float:
    return sum((math.log(max(predict(x), 1e-12)) - math.log(y)) ** 2 for x, y in zip(xs, ys))


def _fit_one(xs: Sequence[float], ys: Sequence[float], target: float, floor: float = 0.0) -> tuple[float, str]:
    """The point estimate at ``target`` and the name of the growth law the points chose."""
    if len(set(xs)) == 1:
        return sum(ys) / len(ys) * target / xs[0], "proportional"
    if min(ys) <= _POWER_FLOORS * floor:  # within the noise floor: no shape to read
        return _predict_affine(xs, ys, target), "fixed + proportional"
    _, slope, sse, sxx = _loglog(xs, ys)
    if abs(slope - 1) <= _SLOPE_SIGMAS * _slope_error(ys, sse, sxx, floor):
        return _predict_affine(xs, ys, target), "fixed + proportional"
    if slope > 1:  # fixed + proportional (both >= 0) cannot grow faster than linear
        return _predict_power(xs, ys, target), "power law"
    affine = _log_sse(xs, ys, lambda x: _predict_affine(xs, ys, x))
    power = _log_sse(xs, ys, lambda x: _predict_power(xs, ys, x))
    if affine <= power:
        return _predict_affine(xs, ys, target), "fixed + proportional"
    return _predict_power(xs, ys, target), "sublinear power law"


def fit_scaling(sizes: Sequence[float], costs: Sequence[float], target: float, *,
                floor: float = 0.0) -> tuple[float, float, float, str]:
    """``(value, low, high, model)`` of a cost at ``target`` size from points at ``sizes``.

    The band refits with every point moved by ±5 % (at least ``floor``), lowest
    points down and highest up and the reverse, and keeps the extremes.
    """
    xs, ys = [float(s) for s in sizes], [max(0.0, float(c)) for c in costs]
    if not xs or any(x <= 0 for x in xs):
        raise ValueError("sizes must be positive")
    value, model = _fit_one(xs, ys, target, floor)
    if len(set(xs)) == 1:
        ratio = target / xs[0]
        low, high = min(ys) * ratio ** _ONE_SIZE_EXPONENTS[0], max(ys) * ratio ** _ONE_SIZE_EXPONENTS[1]
        return value, min(low, value), max(high, value), model
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    half = len(xs) / 2
    residual = [abs(y - _fit_one(xs, ys, x, floor)[0]) for x, y in zip(xs, ys)]
    noise = [max(_NOISE * y, floor, r) for y, r in zip(ys, residual)]
    tilted = []
    for sign in (1, -1):
        moved = [ys[i] + sign * noise[i] * (1 if rank >= half else -1) for rank, i in enumerate(order)]
        tilted.append(_fit_one(xs, [max(m, 0.0) for m in moved], target, floor)[0])
    return value, min(value, *tilted), max(value, *tilted), model


def combine(estimates: Iterable[tuple[str, float, float, float, str]]) -> Estimate:
    """Combine ``(source, value, low, high, model)`` estimates by inverse band width in log space."""
    rows = [(s, max(v, 1e-12), max(lo, 1e-12), max(hi, 1e-12), m) for s, v, lo, hi, m in estimates]
    if not rows:
        raise ValueError("nothing to combine")
    weights = [1.0 / max(math.log(hi / lo) / 2, 0.02) ** 2 for _, _, lo, hi, _ in rows]
    total = sum(weights)
    value = math.exp(sum(w * math.log(v) for w, (_, v, _, _, _) in zip(weights, rows)) / total)
    low = math.exp(sum(w * math.log(lo) for w, (_, _, lo, _, _) in zip(weights, rows)) / total)
    high = math.exp(sum(w * math.log(hi) for w, (_, _, _, hi, _) in zip(weights, rows)) / total)
    shares = tuple((source, w / total) for w, (source, *_rest) in zip(weights, rows))
    model = " | ".join(f"{s}: {m}" for s, _, _, _, m in rows) if len(rows) > 1 else rows[0][4]
    return Estimate(value, min(low, value), max(high, value), model, shares)


def _source_estimate(points: Sequence[CostPoint], metric: str, target: float, source: str,
                     ) -> tuple[str, float, float, float, str]:
    value, low, high, model = fit_scaling([p.size for p in points], [p.value(metric) for p in points],
                                          target, floor=_FLOOR[metric])
    return source, value, low, high, model


def extrapolate(mirror: Sequence[CostPoint], target_size: float, *,
                history: Sequence[CostPoint | tuple[float, float, float, float]] = ()) -> Extrapolation:
    """Estimate the full-size cost at ``target_size`` from mirror points and past full runs.

    ``history`` items may be :class:`CostPoint` or ``(input_size, peak, cpu, wall)``
    tuples; points without a positive size are ignored.
    """
    past = [p if isinstance(p, CostPoint) else CostPoint(*map(float, p)) for p in history]
    past = [p for p in past if p.size > 0]
    now = [p for p in mirror if p.size > 0]
    if not now and not past:
        raise ValueError("need at least one mirror point or one past run with a positive input size")
    metrics = {}
    for metric in METRICS:
        sources = []
        if now:
            sources.append(_source_estimate(now, metric, target_size, "mirror"))
        if past:
            sources.append(_source_estimate(past, metric, target_size, "history"))
        metrics[metric] = combine(sources)
    return Extrapolation(target_size=target_size, **metrics)
