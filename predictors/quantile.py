"""Size-aware high-quantile memory models and the cost-optimal margin.

The cost of under-allocating is a failed attempt (its whole allocation is
wasted, then a retry); the cost of over-allocating is idle memory. So these
models do not predict the mean: each *point model* makes a raw prediction
``p`` and the allocation is ``m * p``, where the margin ``m`` is chosen online,
per task, to minimise the wastage it would have caused on the task's own
recent runs (:func:`cost_optimal_margin`, a newsvendor rule on the ratios
``usage / p`` of earlier out-of-sample predictions).

Point models (all on log scale, weighted towards recent runs):

============  ===============================================================
``level``     geometric mean of earlier usages (ignores the input size)
``size``      log usage ~ a + b log input size (weighted least squares)
``nearest``   median usage of the runs with the nearest input sizes
============  ===============================================================
"""

from __future__ import annotations

import math

import numpy as np

from mirrorscale.predictors.sizing import History

DEFAULT_HALF_LIFE = 100.0
"""Runs after which an observation counts half (adapts to drift, slowly)."""


def decay_weights(n: int, half_life: float | None = DEFAULT_HALF_LIFE) -> np.ndarray:
    """Weights of ``n`` observations, oldest first, halving every ``half_life`` runs."""
    if n == 0:
        return np.empty(0)
    if not half_life:
        return np.ones(n)
    return np.exp2((np.arange(n) - (n - 1)) / half_life)


def log_size(values: np.ndarray | float) -> np.ndarray:
    """Signed ``log1p`` of sizes (``sign(x) log(1 + |x|)``); unknown (NaN) sizes map to 0."""
    arr = np.asarray(values, dtype=float)
    arr = np.where(np.isfinite(arr), arr, 0.0)
    return np.sign(arr) * np.log1p(np.abs(arr))


def fit_loglinear(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """Weighted least squares of ``y ~ a + b x``; returns ``(a, b)`` (``b`` = 0 without spread in x)."""
    sw = w.sum()
    mx = float(w @ x / sw)
    my = float(w @ y / sw)
    dx = x - mx
    sxx = float(w @ (dx * dx))
    if sxx <= 1e-12 * max(sw, 1.0):
        return my, 0.0
    b = float(w @ (dx * (y - my))) / sxx
    return my - b * mx, b


def predict_level(history: History, input_size: float | None, w: np.ndarray) -> float:
    """Weighted geometric mean of earlier usages."""
    return math.exp(float(w @ np.log(history.usage) / w.sum()))


def predict_size(history: History, input_size: float | None, w: np.ndarray) -> float:
    """Log-log weighted regression of usage on input size, evaluated at ``input_size``."""
    a, b = fit_loglinear(log_size(history.input_size), np.log(history.usage), w)
    return math.exp(a + b * float(log_size(input_size if input_size is not None else np.nan)))


def predict_nearest(history: History, input_size: float | None, w: np.ndarray) -> float:
    """Median usage of the ``max(3, sqrt(n))`` runs whose input size is nearest."""
    n = len(history)
    k = min(n, max(3, int(math.sqrt(n))))
    distance = np.abs(log_size(history.input_size) - log_size(input_size if input_size is not None else np.nan))
    nearest = np.argpartition(distance, k - 1)[:k] if k < n else np.arange(n)
    return float(np.median(history.usage[nearest]))


POINT_MODELS = {"level": predict_level, "size": predict_size, "nearest": predict_nearest}
"""Name -> point model ``f(history, input_size, weights) -> bytes``."""


def cost_optimal_margin(ratios: np.ndarray, scale: np.ndarray, weights: np.ndarray,
                        retry_ratio: float | None = None, failure_cost: float = 0.0) -> float:
    """The margin ``m`` (one of ``ratios``) that would have wasted least on these runs.

    Run ``i`` had raw prediction ``p_i``, usage ``u_i = r_i p_i`` and runtime
    ``t_i``; ``scale_i = p_i t_i``. Allocating ``m p_i`` wastes
    ``(m p_i - u_i) t_i`` when ``r_i <= m``; otherwise the failed attempt
    wastes ``m p_i t_i`` and the retry (at ``retry_ratio`` x ``p_i``, default
    the largest ratio) ``(retry_ratio p_i - u_i) t_i``. Up to a constant the
    total is ``m * sum(w s) + (retry_ratio + failure_cost) * sum_{r_i > m} w s``;
    ``failure_cost`` adds a price for the delay of a failure, in allocations.
    """
    order = np.argsort(ratios, kind="stable")
    r = ratios[order]
    ws = (weights * scale)[order]
    total = ws.sum()
    above = total - np.cumsum(ws)
    retry = float(r[-1]) if retry_ratio is None else retry_ratio
    cost = r * total + (retry + failure_cost) * above
    return float(r[int(np.argmin(cost))])


class MarginModel:
    """One point model plus its online cost-optimal margin, for one task.

    ``observe`` first scores the model's out-of-sample prediction for the new
    run (its ratio and the allocation it would have made), then the caller adds
    the run to the shared history. ``score`` keeps a decayed sum of the
    wastage those allocations would have caused, which the selector compares.
    """

    def __init__(self, name: str, *, min_ratios: int = 3, half_life: float | None = DEFAULT_HALF_LIFE,
                 failure_cost: float = 0.0) -> None:
        self.name = name
        self.predict_raw = POINT_MODELS[name]
        self.min_ratios = min_ratios
        self.half_life = half_life
        self.failure_cost = failure_cost
        self._ratios: list[float] = []
        self._scale: list[float] = []
        self.score = 0.0
        self.scored = 0

    def ready(self) -> bool:
        """Whether enough out-of-sample ratios are known to choose a margin."""
        return len(self._ratios) >= self.min_ratios

    def raw(self, history: History, input_size: float | None) -> float:
        """The point prediction for a run of ``input_size``."""
        return self.predict_raw(history, input_size, decay_weights(len(history), self.half_life))

    def margin(self) -> float:
        """The current cost-optimal margin (1.0 before any ratio is known)."""
        if not self._ratios:
            return 1.0
        ratios = np.asarray(self._ratios)
        return cost_optimal_margin(ratios, np.asarray(self._scale), decay_weights(len(ratios), self.half_life),
                                   failure_cost=self.failure_cost)

    def max_ratio(self) -> float:
        """The largest ratio usage / prediction seen (where retries go)."""
        return max(self._ratios) if self._ratios else 1.0

    def allocation(self, history: History, input_size: float | None) -> float:
        """Margin x point prediction."""
        return self.margin() * self.raw(history, input_size)

    def observe(self, history: History, run, retry_growth: float = 1.25) -> None:
        """Score this model on ``run`` (before the run joins ``history``)."""
        if len(history) == 0:
            return
        raw = self.raw(history, run.input_size)
        if self.ready():
            allocation = self.margin() * raw
            retry = self.max_ratio() * raw
            retry = retry if retry > 1.01 * allocation else retry_growth * allocation
            wasted = allocation - run.usage if allocation >= run.usage else allocation + retry - run.usage
            decay = math.exp2(-1.0 / self.half_life) if self.half_life else 1.0
            self.score = self.score * decay + wasted * run.runtime_ms
            self.scored += 1
        self._ratios.append(run.usage / raw)
        self._scale.append(raw * run.runtime_ms)
