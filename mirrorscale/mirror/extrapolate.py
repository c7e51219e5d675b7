"""Extrapolation: from what mirrors cost on samples to what the full input will cost.

Each metric (peak RSS increase, CPU seconds, wall seconds) is fitted on its
own, against the input size in bytes, with one growth law::

    cost(size) = fixed + rate * size ** p        (fixed >= 0, rate >= 0, 0.25 <= p <= 2)

``fixed`` is what a call costs whatever its input (start-up work, per-call
set-up, BLAS threads spinning up); ``rate * size ** p`` the part that grows,
linearly (``p = 1``), slower (``p < 1``: distinct keys of skewed data,
workspace that saturates) or faster (``p > 1``: sorting, pairwise work).
:func:`~mirrorscale.mirror.preview` measures ``fixed`` directly with a tiny
probe (0.1 % of the input, a fiftieth of the default 5 % sample) next to the
1 % and 5 % samples, so a fixed cost and a sub-linear growth, which look alike
on the two larger points alone, are told apart. Examples (points at 0.1, 1 and
5 % of the input; the last column is the estimate for the whole input):

==============================  ==============================  ===============================
mirror points                   fit                             estimate
==============================  ==============================  ===============================
cpu 0.51, 0.60, 1.00 s          fixed 0.5 s + proportional       10.5 s
peak 0.74, 4.19, 14.0 MiB       sublinear power law (p = 0.77)  141 MiB (the true law: 132)
cpu 0.011, 0.157, 1.00 s        power law (p = 1.09)             26.4 s (the true law, p = 1.15:
                                                                 31.3; the prior leans linear)
==============================  ==============================  ===============================

For each exponent on a grid the fixed part and the rate are a weighted least
squares (each point's noise: ``noise`` of its value, at least ``floor``); the
exponent minimises the residual plus a prior ``((p - p0) / sigma) ** 2``.
Without history the prior is ``p0 = 1``: with sigma 0.1 for CPU and wall time
(a niced mirror's CPU time on a shared machine varies by 10-20 % from run to
run, enough to tilt an exponent read over a factor of fifty by 0.1, which
extrapolated twenty-fold is 35 %), 0.3 for memory (RSS varies less, and
distinct keys make sub-linear growth common), plus ``((p - 1) / 0.1) ** 2``
above 1: memory that grows faster than the input needs a pairwise structure,
rare in data tasks, while hash tables that double (power-of-two capacities,
CPython sets growing four-fold below 50 k entries) make small samples *look*
super-linear (a keyed 5 % sample of a 9 M-row group-by sits just past a
doubling: its tracemalloc peak per row is 1.9 times the full run's, at 4.5 %
1.1 times; read over 1 % to 5 % that is ``p = 1.44``, now 1.17). Three points
cannot tell the two apart, so the price is paid by true quadratic memory: a
pairwise matrix (``p = 2``) reads as ``p = 1.62``, 72 % under at twenty-fold.
A memory prior from the input's distinct keys (:func:`peak_prior_from_keys`)
replaces ``p0``. Wall time takes the CPU fit's exponent as its ``p0``. The band spans the exponents the points allow (objective
within 1 of the best, one standard error) widened by the noise.

History (full-size runs of the task: ``(input_size, peak, cpu, wall)``) is
fitted the same way, under the same prior. Runs at several sizes measure the
growth near the target (caches, page faults and collections of a large heap
that a 5 % sample cannot show), so the exponent they leave (the prior updated
by their points: many runs far apart move it all the way, two noisy runs
close in size only a little; runs that scatter around their fit more than the
default noise are weighted by the scatter they show, see :func:`history_noise`)
becomes the mirror fit's prior; then the mirror's and
the history's estimates at the target are combined in log space, weighted by
the inverse square of their band widths. ``evidence`` names the share of each
and which one dominated.

Past runs that were mirrored before they ran (:class:`MirroredRun`) say how far
this task's mirrors miss at full size: a 5 % sample fits caches and a heap the
full run does not, so mirrors under-read CPU and wall time by a factor that
belongs to the task and the machine rather than to today's input. Their
geometric-mean miss (:func:`mirror_bias`) scales today's mirror estimate of
those two metrics, and its uncertainty widens the band (so a few runs that
disagree count for little).

The same past mirrored runs also tell whether today's input differs from
theirs in *content*, not only in size (more distinct keys, longer records,
data that arrives sorted): their mirrors sampled yesterday's input the way
today's mirror samples today's, so what today's largest mirror cost over what
theirs would have cost at its sample size (:func:`content_drift`) is the
change, with the mirrors' own errors cancelled. History, which knows only
yesterday's content, is scaled by it (all three metrics) when it exceeds the
noise of that comparison.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

__all__ = ["CALIBRATED", "DRIFT_REACH", "DRIFT_SIGMAS", "METRICS", "MIN_FLEET_RUNS", "MIN_KEY_EXPONENT",
           "MIN_SCATTER_RUNS", "Bias", "CostPoint", "Drift", "Estimate", "Extrapolation", "Growth", "MirroredRun",
           "combine", "content_drift", "extrapolate", "fit_growth", "fit_scaling", "history_noise",
           "history_shows_growth", "memory_envelope", "mirror_bias", "peak_prior_from_keys"]

METRICS = ("peak_rss_bytes", "cpu_seconds", "wall_seconds")
"""The metrics extrapolated, in the order of :class:`CostPoint`'s fields."""

MIN_FLEET_RUNS = 3
"""Other tasks' mirrored runs needed before they calibrate a task that has none of its own."""
MIN_SCATTER_RUNS = 3
"""A task's own mirrored runs needed before their scatter, not the fit, sets a calibrated mirror's band."""
DRIFT_REACH = 4.0
"""Today's largest mirror may sample at most this many times more than the past mirrors did to be compared."""
DRIFT_SIGMAS = 2.0
"""A content drift counts only beyond this many spreads of its comparison (:func:`content_drift`)."""
CALIBRATED = ("cpu_seconds", "wall_seconds")
"""The metrics whose mirror estimates past mirrored runs scale (:func:`mirror_bias`)."""
_NOISE = {"peak_rss_bytes": 0.05, "cpu_seconds": 0.08, "wall_seconds": 0.1}
_FLOOR = {"peak_rss_bytes": 2**18, "cpu_seconds": 0.005, "wall_seconds": 0.005}
_PRIOR_SIGMA = {"peak_rss_bytes": 0.3, "cpu_seconds": 0.1, "wall_seconds": 0.1}
MIN_KEY_EXPONENT = 0.5
"""Keys growing slower than this (nearly saturated) give the memory fit no prior."""
_DEFAULT_PRIOR = {"peak_rss_bytes": (1.0, _PRIOR_SIGMA["peak_rss_bytes"], 0.1),  # (p0, sigma, sigma_super)
                  "cpu_seconds": (1.0, _PRIOR_SIGMA["cpu_seconds"]), "wall_seconds": (1.0, _PRIOR_SIGMA["wall_seconds"])}
_EXPONENTS = tuple(round(0.25 + 0.01 * i, 2) for i in range(176))  # 0.25 .. 2.0
_ONE_SIZE_EXPONENTS = (0.85, 1.15)
_BAND_CHI2 = 1.0  # exponents whose objective is within this of the best make the band (one standard error)
_LINEAR = 0.025  # |p - 1| below this is called proportional
_HISTORY_SPREAD = 1.5  # history sizes must span this ratio to say how cost grows


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
class MirroredRun:
    """A past full run that was mirrored before it started: its mirrors' points and what it cost in full.

    Such runs calibrate today's mirrors (see :func:`mirror_bias`).
    """

    mirror: tuple[CostPoint, ...]
    actual: CostPoint
    own: bool = True
    """A run of the task being mirrored; False: another task's (the fleet's), used when it has none."""
    probe: CostPoint | None = None
    """The fixed-cost probe this run's preview measured (None: it had none, or reused an earlier run's)."""
    code_version: str | None = None
    """A digest of the task's module when it was mirrored (:func:`~mirrorscale.mirror.shadow.code_version`)."""


@dataclass(frozen=True)
class Growth:
    """``fixed + rate * (size / unit) ** exponent``: one fitted growth law."""

    fixed: float
    rate: float
    exponent: float
    unit: float = 1.0

    def at(self, size: float) -> float:
        """The cost this law gives at ``size``."""
        return self.fixed + self.rate * (size / self.unit) ** self.exponent

    def name(self, target: float) -> str:
        """``fixed + power law`` and the like, as seen at ``target``."""
        if abs(self.exponent - 1) <= _LINEAR:
            law = "proportional"
        else:
            law = "power law" if self.exponent > 1 else "sublinear power law"
        total = self.at(target)
        if self.rate <= 0:
            return "fixed"
        return f"fixed + {law}" if total > 0 and self.fixed / total >= 0.01 else law


@dataclass(frozen=True)
class Estimate:
    """One extrapolated metric: point value, low/high band, model and the evidence shares."""

    value: float
    low: float
    high: float
    model: str
    shares: tuple[tuple[str, float], ...]
    exponent: float | None = None

    @property
    def dominant(self) -> str:
        """The evidence with the largest share (``mirror`` or ``history``)."""
        return max(self.shares, key=lambda share: share[1])[0]

    def describe(self) -> str:
        """``fixed + proportional p=1.00, mirror 80% + history 20%``."""
        parts = " + ".join(f"{name} {share:.0%}" for name, share in self.shares)
        exponent = f" p={self.exponent:.2f}" if self.exponent is not None else ""
        return f"{self.model}{exponent}, {parts}"


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


def _weighted_lines(xs: np.ndarray, ys: np.ndarray, ws: np.ndarray) -> tuple[np.ndarray, ...]:
    """Weighted least squares ``y = a + b x`` with ``a, b >= 0``, one line per row of ``xs``: ``(a, b, residual)``.

    A line that falls with size becomes the constant ``mean(y)``; one whose
    intercept would be negative goes through the origin.
    """
    sw = ws.sum()
    mx = xs @ ws / sw
    my = float(ys @ ws / sw)
    dx = xs - mx[:, None]
    sxx = (dx**2) @ ws
    sxy = (dx * (ys - my)) @ ws
    b = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), 0.0)
    a = my - b * mx
    falling, through_origin = b < 0, (b >= 0) & (a < 0)
    sxx0 = (xs**2) @ ws
    b0 = np.where(sxx0 > 0, (xs * ys) @ ws / np.where(sxx0 > 0, sxx0, 1.0), 0.0)
    a = np.where(falling, my, np.where(through_origin, 0.0, a))
    b = np.where(falling, 0.0, np.where(through_origin, b0, b))
    residual = ((ys - a[:, None] - b[:, None] * xs) ** 2) @ ws
    return a, b, residual


def fit_growth(sizes: Sequence[float], costs: Sequence[float], *, noise: float = 0.05, floor: float = 0.0,
               prior: tuple[float, ...] = (1.0, 0.3)) -> list[tuple[float, Growth]]:
    """Every exponent of the grid with its objective (residual + prior), best first.

    ``sizes`` must hold at least two distinct positive values. ``noise`` is the
    relative measurement noise of one point and ``floor`` its absolute minimum;
    ``prior`` is ``(p0, sigma)`` of the exponent, or ``(p0, sigma, sigma_super)``
    adding ``((p - 1) / sigma_super) ** 2`` for super-linear exponents.
    """
    unit = max(sizes)
    xs0 = np.array([s / unit for s in sizes], dtype=float)
    ys = np.array([max(0.0, float(c)) for c in costs], dtype=float)
    ws = 1.0 / np.maximum((noise * ys) ** 2 + floor**2, 1e-300)
    p0, sigma, *above = prior
    exponents = np.array(_EXPONENTS)
    a, b, residual = _weighted_lines(xs0[None, :] ** exponents[:, None], ys, ws)
    objective = residual + ((exponents - p0) / sigma) ** 2
    if above:
        objective = objective + np.where(exponents > 1, ((exponents - 1) / above[0]) ** 2, 0.0)
    order = np.argsort(objective, kind="stable")
    return [(float(objective[i]), Growth(float(a[i]), float(b[i]), _EXPONENTS[i], unit)) for i in order]


def _exponent_spread(fits: list[tuple[float, Growth]]) -> float:
    """Half the range of exponents within 1 of the best objective (one standard error)."""
    best = fits[0][0]
    near = [g.exponent for obj, g in fits if obj <= best + 1.0]
    return max(0.02, (max(near) - min(near)) / 2)


def _band(fits: list[tuple[float, Growth]], target: float, noise: float) -> tuple[float, float]:
    best = fits[0][0]
    values = [g.at(target) for obj, g in fits if obj <= best + _BAND_CHI2]
    return min(values) * (1 - noise), max(values) * (1 + noise)


def fit_scaling(sizes: Sequence[float], costs: Sequence[float], target: float, *, floor: float = 0.0,
                noise: float = 0.05, prior: tuple[float, ...] = (1.0, 0.3)) -> tuple[float, float, float, str]:
    """``(value, low, high, model)`` of a cost at ``target`` size from points at ``sizes``.

    One size only: proportional, with a band from exponents 0.85 to 1.15.
    """
    fit = _fit(sizes, costs, target, floor=floor, noise=noise, prior=prior)
    return fit.value, fit.low, fit.high, fit.model


class _Fit(NamedTuple):
    """One source's estimate at the target; ``exponent`` and its ``spread`` are None from a single size."""

    value: float
    low: float
    high: float
    model: str
    exponent: float | None
    spread: float | None


def _fit(sizes: Sequence[float], costs: Sequence[float], target: float, *, floor: float, noise: float,
         prior: tuple[float, ...]) -> _Fit:
    xs, ys = [float(s) for s in sizes], [max(0.0, float(c)) for c in costs]
    if not xs or any(x <= 0 for x in xs):
        raise ValueError("sizes must be positive")
    if len(set(xs)) == 1:
        ratio = target / xs[0]
        value = sum(ys) / len(ys) * ratio
        low, high = min(ys) * ratio ** _ONE_SIZE_EXPONENTS[0], max(ys) * ratio ** _ONE_SIZE_EXPONENTS[1]
        return _Fit(value, min(low, value), max(high, value), "proportional", None, None)
    fits = fit_growth(xs, ys, noise=noise, floor=floor, prior=prior)
    best = fits[0][1]
    value = best.at(target)
    low, high = _band(fits, target, noise)
    return _Fit(value, min(low, value), max(high, value), best.name(target), best.exponent, _exponent_spread(fits))


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


def history_shows_growth(history: Sequence[CostPoint | tuple[float, float, float, float]]) -> bool:
    """Whether past full runs span input sizes enough (1.5x) to say how cost grows with the input."""
    sizes = {float(p.size if isinstance(p, CostPoint) else p[0]) for p in history}
    sizes.discard(0.0)
    return len(sizes) >= 2 and min(sizes) > 0 and max(sizes) / min(sizes) >= _HISTORY_SPREAD


def memory_envelope(past: Sequence[CostPoint]) -> list[CostPoint]:
    """Past runs with each peak raised to the largest peak of any run no larger: memory never shrinks with input.

    A hash table's power-of-two capacity or the allocator's luck can make a
    larger run peak lower than a smaller one (deduplicating 3 M Zipf strings:
    15.5 MiB; 6 M of them: 12.7 MiB; 12 M: 24.7 MiB). Read as it is, such a
    pair says memory is falling and the history would predict 14 MiB for the
    12 M; the envelope reads it as flat and predicts no less than what was
    already needed.
    """
    ordered = sorted(past, key=lambda p: p.size)
    out, highest = [], 0.0
    for point in ordered:
        highest = max(highest, point.peak_rss_bytes)
        out.append(replace(point, peak_rss_bytes=highest))
    return out


def history_noise(past: Sequence[CostPoint], metric: str) -> float:
    """The relative noise of one past run of ``metric``: the default, or the scatter the runs show if wider.

    With more runs than the growth law has parameters (three) at sizes that
    differ, the runs' root-mean-square relative residual around the law that
    fits them best (the prior left out, so that it cannot pass for scatter;
    corrected for the three parameters) measures how much one run varies: a task
    whose identical inputs take 1.0 s one day and 1.5 s the next says less
    about its growth than one that repeats within 2 %. Fewer runs cannot tell
    noise from growth, and get the default (:data:`_NOISE`). Whatever their
    number, a run that cost less than a smaller one shows scatter at least as
    wide as that fall (:func:`_largest_drop`). At most 1.
    """
    sizes, costs = [p.size for p in past], [p.value(metric) for p in past]
    noise = max(_NOISE[metric], _largest_drop(past, metric))
    if len(past) <= 3 or len(set(sizes)) < 2:
        return min(1.0, noise)
    best = fit_growth(sizes, costs, noise=_NOISE[metric], floor=_FLOOR[metric], prior=(1.0, 1e3))[0][1]
    residuals = [(cost - best.at(size)) / max(best.at(size), _FLOOR[metric]) for size, cost in zip(sizes, costs)]
    return min(1.0, max(noise, math.sqrt(sum(r * r for r in residuals) / (len(past) - 3))))


def _largest_drop(past: Sequence[CostPoint], metric: str) -> float:
    """The largest share by which a run cost less than a run no larger (0 when cost never fell with size).

    Cost that grows with the input never falls, so a fall is scatter: a hash
    table's power-of-two steps (deduplicating 6 M Zipf strings peaked at
    12.7 MiB where 3 M of them peaked at 15.5: 18 %), a busy machine.
    """
    highest, drop = 0.0, 0.0
    for point in sorted(past, key=lambda p: p.size):
        value = point.value(metric)
        if highest > _FLOOR[metric]:
            drop = max(drop, 1.0 - max(value, 0.0) / highest)
        highest = max(highest, value)
    return drop


def _history_fit(past: Sequence[CostPoint], metric: str, target: float, prior: tuple[float, ...],
                 noise: float) -> _Fit | None:
    """History's own estimate of ``metric`` at ``target``: its runs updating ``prior``, each run's ``noise`` given.

    Its exponent and spread become the mirror fit's prior when the runs'
    sizes differ enough (:func:`history_shows_growth`). A few runs close in
    size move the exponent only as far as their noise allows (two runs 2x
    apart, 8 % noise each: about 0.16), so a noisy pair cannot set the growth
    of a twenty-fold extrapolation on its own. None without runs.
    """
    if not past:
        return None
    return _fit([p.size for p in past], [p.value(metric) for p in past], target, floor=_FLOOR[metric],
                noise=noise, prior=prior)


class Bias(NamedTuple):
    """How far a task's mirrors have missed its full runs: ``factor`` (actual / mirror) and its log ``spread``."""

    factor: float
    spread: float
    runs: int
    own: bool = True
    """Read from the task's own runs; False: from other tasks' (the fleet's)."""
    scatter: float = 0.0
    """How far one calibrated past run missed (log space, at least the metric's noise)."""

    def miss(self) -> float:
        """The half-width (log space) of a calibrated mirror's band on the task's own runs: one run's
        scatter and the factor's own uncertainty together, ``sqrt(scatter**2 + spread**2)``."""
        return math.hypot(self.scatter, self.spread)


def mirror_bias(mirrored: Sequence[MirroredRun], metric: str, prior: tuple[float, ...]) -> Bias | None:
    """The factor by which full runs of ``metric`` exceeded what their mirrors alone predicted.

    A 5 % sample fits the caches a full run no longer fits, and the collector
    scans a heap twenty times smaller; so a mirror under-reads the CPU of
    most data tasks at full size, by a factor that belongs to the task on this
    kind of machine, not to today's input (measured: a fifth to a half for
    sorting, JSON parsing, group-bys, forests). Each past mirrored run is
    extrapolated again as today's mirror is (under ``prior``) to its own full
    size; the factor is the geometric mean of actual / estimate over the runs,
    and ``spread`` is the uncertainty of that mean in log space: the runs'
    scatter (at least the metric's noise) over the square root of their number.

    The task's own runs are used when there are any. Otherwise other tasks'
    (``own=False``, at least :data:`MIN_FLEET_RUNS`) give the machine's usual
    miss, and ``spread`` is their whole scatter: how far a task may differ
    from the rest, not how well the rest's mean is known. None without usable runs.
    """
    own = [run for run in mirrored if run.own]
    runs = own or [run for run in mirrored if not run.own]
    logs = []
    for run in runs:
        points = [p for p in run.mirror if p.size > 0]
        actual = run.actual.value(metric)
        if not points or run.actual.size <= 0 or actual <= _FLOOR[metric]:
            continue
        estimate = _fit([p.size for p in points], [p.value(metric) for p in points], run.actual.size,
                        floor=_FLOOR[metric], noise=_NOISE[metric], prior=prior).value
        if estimate > _FLOOR[metric]:
            logs.append(math.log(actual / estimate))
    if not logs or (not own and len(logs) < MIN_FLEET_RUNS):
        return None
    mean = sum(logs) / len(logs)
    scatter = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1)) if len(logs) > 1 else 0.0
    scatter = max(scatter, _NOISE[metric])
    spread = scatter / (math.sqrt(len(logs)) if own else 1.0)
    return Bias(math.exp(mean), spread, len(logs), bool(own), scatter)


class Drift(NamedTuple):
    """How today's input differs in content from the past runs', as today's mirror reads it against theirs.

    ``factor`` is what today's largest mirror cost over what the task's past
    mirrors cost at that sample size (their growth law); ``spread`` the log
    uncertainty of that comparison; ``weight`` the share of the factor that
    is applied (0 when the difference is within the noise).
    """

    factor: float
    spread: float
    weight: float

    def applied(self) -> float:
        """The factor as applied to history: ``factor ** weight``."""
        return self.factor**self.weight


def content_drift(mirrored: Sequence[MirroredRun], now: Sequence[CostPoint], metric: str,
                  prior: tuple[float, ...]) -> Drift | None:
    """Has the input's content changed since the task's past runs? Today's mirror against the past mirrors.

    History extrapolates what inputs *like the past ones* cost; when today's
    has more distinct keys, longer records or arrives sorted, its full run
    costs more or less than its size says, and only today's mirror sees it.
    The task's own past mirrored runs sampled yesterday's input the same way,
    so their mirrors' points, pooled and fitted (under ``prior``), say what
    today's largest mirror would have cost on yesterday's content; the ratio
    is the drift, and the mirrors' own errors (small caches, hash tables that
    double) cancel in it, which they do not between a mirror and a full run.
    Its ``spread`` is the pooled points' scatter around their law (at least
    the metric's noise) with the law's band at today's size. A difference
    within :data:`DRIFT_SIGMAS` spreads is noise; beyond, it counts the more
    the farther: ``weight = max(0, 1 - (DRIFT_SIGMAS * spread /
    log(factor))**2)`` (measured on the benchmark's runs without drift, one
    spread let noise through: the median wall error rose from 14.8 to 16.2 %).
    None without own mirrored runs at two sizes.
    """
    pool = [p for run in mirrored if run.own for p in run.mirror if p.size > 0]
    sized = [p for p in now if p.size > 0]
    if not sized or len({p.size for p in pool}) < 2:
        return None
    today = max(sized, key=lambda p: p.size)
    if today.size > DRIFT_REACH * max(p.size for p in pool):
        return None  # the past mirrors sampled far less: comparing would be an extrapolation of its own
    sizes, costs = [p.size for p in pool], [p.value(metric) for p in pool]
    fits = fit_growth(sizes, costs, noise=_NOISE[metric], floor=_FLOOR[metric], prior=prior)
    law, (low, high) = fits[0][1], _band(fits, today.size, _NOISE[metric])
    floor = _FLOOR[metric]  # costs below it are read as it: a mirror too quick to time says "at most this"
    logs = [math.log(max(c, floor) / max(law.at(s), floor)) for s, c in zip(sizes, costs)]
    scatter = math.sqrt(sum(x * x for x in logs) / max(len(logs) - 3, 1)) if len(logs) > 3 else 0.0
    spread = math.hypot(max(scatter, _NOISE[metric]), math.log(max(high, floor) / max(low, floor)) / 2)
    shift = math.log(max(today.value(metric), floor) / max(law.at(today.size), floor))
    weight = max(0.0, 1.0 - (DRIFT_SIGMAS * spread / shift) ** 2) if shift else 0.0
    return Drift(math.exp(shift), spread, weight)


def _metric(now: Sequence[CostPoint], history: _Fit | None, metric: str, target: float,
            prior: tuple[float, ...], bias: Bias | None = None, drift: Drift | None = None) -> Estimate:
    """One metric: the mirror fit under ``prior`` (scaled by the mirrors' past ``bias``) and history's fit
    (scaled by the input's content ``drift``), combined."""
    sources, exponent = [], None
    if now:
        mirror = _fit([p.size for p in now], [p.value(metric) for p in now], target,
                      floor=_FLOOR[metric], noise=_NOISE[metric], prior=prior)
        if bias is not None:
            value = mirror.value * bias.factor
            if bias.own and bias.runs >= MIN_SCATTER_RUNS:  # the band its own runs showed: how far it misses
                low, high = value / math.exp(bias.miss()), value * math.exp(bias.miss())
            else:  # too few runs to show a scatter, or other tasks': the fit's band, widened by the factor's doubt
                low, high = mirror.low * bias.factor / math.exp(bias.spread), mirror.high * bias.factor * math.exp(
                    bias.spread)
            mirror = mirror._replace(
                value=value, low=low, high=high,
                model=f"{mirror.model} x{bias.factor:.2f} (mirrors on {bias.runs} past run(s) of "
                      f"{'this task' if bias.own else 'other tasks'})")
        sources.append(("mirror", mirror.value, mirror.low, mirror.high, mirror.model))
        exponent = mirror.exponent
    if history is not None and drift is not None and drift.weight > 0:
        scale, doubt = drift.applied(), math.exp(drift.spread * drift.weight)
        history = history._replace(
            value=history.value * scale, low=history.low * scale / doubt, high=history.high * scale * doubt,
            model=f"{history.model} x{scale:.2f} (today's content: its mirror read x{drift.factor:.2f} what past "
                  f"mirrors did)")
    if history is not None:
        sources.append(("history", history.value, history.low, history.high, history.model))
        exponent = exponent if exponent is not None else history.exponent
    estimate = combine(sources)
    return Estimate(estimate.value, estimate.low, estimate.high, estimate.model, estimate.shares, exponent)


def extrapolate(mirror: Sequence[CostPoint], target_size: float, *,
                history: Sequence[CostPoint | tuple[float, float, float, float]] = (),
                priors: Mapping[str, tuple[float, ...]] | None = None,
                mirrored: Sequence[MirroredRun] = ()) -> Extrapolation:
    """Estimate the full-size cost at ``target_size`` from mirror points and past full runs.

    ``history`` items may be :class:`CostPoint` or ``(input_size, peak, cpu, wall)``
    tuples; points without a positive size are ignored. ``priors`` replaces the
    default exponent prior of a metric (``(p0, sigma[, sigma_above])``), as
    :func:`peak_prior_from_keys` does for memory; history's runs update it.
    ``mirrored`` are past runs that were mirrored too: how far their mirrors
    missed them (:func:`mirror_bias`) scales today's mirror estimate of CPU and
    wall time. Memory is not scaled: a hash table's power-of-two steps make one
    run's miss say little about another size's.
    """
    past = [p if isinstance(p, CostPoint) else CostPoint(*map(float, p)) for p in history]
    past = [p for p in past if p.size > 0]
    now = [p for p in mirror if p.size > 0]
    if not now and not past:
        raise ValueError("need at least one mirror point or one past run with a positive input size")
    metrics: dict[str, Estimate] = {}
    for metric in METRICS:
        base = (priors or {}).get(metric) or _DEFAULT_PRIOR[metric]
        runs = memory_envelope(past) if metric == "peak_rss_bytes" else past
        past_fit = _history_fit(runs, metric, target_size, base, history_noise(past, metric))  # before the envelope
        grew = past_fit is not None and past_fit.spread is not None and history_shows_growth(runs)
        prior = (past_fit.exponent, past_fit.spread) if grew else base
        if metric == "wall_seconds" and metrics["cpu_seconds"].exponent is not None and not past:
            prior = (metrics["cpu_seconds"].exponent, _PRIOR_SIGMA[metric])  # wall grows like the CPU it needs
        bias = mirror_bias(mirrored, metric, prior) if metric in CALIBRATED and now else None
        drift = content_drift(mirrored, now, metric, prior) if past_fit is not None else None
        metrics[metric] = _metric(now, past_fit, metric, target_size, prior, bias, drift)
    return Extrapolation(target_size=target_size, **metrics)


def peak_prior_from_keys(exponents: Iterable[float | None], *, keyed: bool = False) -> tuple[float, float, float] | None:
    """The memory exponent's prior from the keys a task counts: the slowest of their Heaps exponents.

    Only for keys the task is *said* to count (a sampler spec ``"keys"``, a
    sampler's ``keys``): memory that follows distinct keys (a set, a counter)
    grows like them, but memory that follows rows does not, and the three
    mirror points often cannot tell the two apart. Measured: deduplicating 6 M
    Zipf(1.2) strings is over-predicted by +142 % without the prior (+28 % to
    +77 % with it), while *sorting* 4 M such strings is predicted +13 % without
    and -17 % with it; so a list of keys is only profiled by default, never
    bent. Exponents below
    :data:`MIN_KEY_EXPONENT` are ignored: keys that have nearly stopped growing
    cost a fixed amount, which the probe measures, and a prior near 0 would
    only bend memory that follows rows. ``exponents`` are the arguments'
    :attr:`~mirrorscale.mirror.distinct.DistinctProfile.heaps_exponent`.

    Without such keys but with a ``keyed`` sample (:mod:`.keyed`), rows and
    keys both scale with the sample, so memory that follows either grows
    linearly: the prior is ``1`` with sigma 0.1, as for CPU, instead of the
    0.3 that sub-linear keys called for. None otherwise (the default prior).
    """
    known = [e for e in exponents if e is not None and e >= MIN_KEY_EXPONENT]
    _, sigma, above = _DEFAULT_PRIOR["peak_rss_bytes"]
    if known:
        return (max(_EXPONENTS[0], min(known)), sigma, above)
    return (1.0, _PRIOR_SIGMA["cpu_seconds"], above) if keyed else None
