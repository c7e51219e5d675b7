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
``linear``    usage ~ a + b input bytes (weighted least squares, b >= 0)
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


def predict_level(history: History, input_size: float | None, w: np.ndarray) -> tuple[float, float]:
    """Weighted geometric mean of earlier usages (leverage 1: the input size is ignored)."""
    return math.exp(float(w @ np.log(history.usage) / w.sum())), 1.0


def predict_size(history: History, input_size: float | None, w: np.ndarray) -> tuple[float, float]:
    """Log-log weighted regression of usage on input size at ``input_size``, and its leverage.

    The leverage factor ``sqrt((1 + 1/n + (x - mean)^2 / Sxx) / (1 + 2/n))``
    (at least 1) widens the bound when ``x`` lies outside the sizes seen: the
    residuals the bound learned from were made near the middle of the data.
    """
    x = log_size(history.input_size)
    a, b = fit_loglinear(x, np.log(history.usage), w)
    at = float(log_size(input_size if input_size is not None else np.nan))
    if len(x):  # extrapolate only towards more memory: beyond the sizes seen, hold the edge's prediction
        at = max(at, float(x.min())) if b > 0 else min(at, float(x.max()))
    return math.exp(a + b * at), _leverage(x, w, at)


def _leverage(x: np.ndarray, w: np.ndarray, at: float) -> float:
    sw = w.sum()
    mx = float(w @ x / sw)
    sxx = float(w @ ((x - mx) ** 2))
    n = len(x)
    if sxx <= 1e-12 * max(sw, 1.0):
        return 1.0
    return max(1.0, math.sqrt((1.0 + 1.0 / n + (at - mx) ** 2 * sw / sxx / n) / (1.0 + 2.0 / n)))


def predict_nearest(history: History, input_size: float | None, w: np.ndarray) -> tuple[float, float]:
    """Median usage of the ``max(3, sqrt(n))`` runs whose input size is nearest (leverage 1)."""
    n = len(history)
    k = min(n, max(3, int(math.sqrt(n))))
    distance = np.abs(log_size(history.input_size) - log_size(input_size if input_size is not None else np.nan))
    nearest = np.argpartition(distance, k - 1)[:k] if k < n else np.arange(n)
    return float(np.median(history.usage[nearest])), 1.0


def predict_linear(history: History, input_size: float | None, w: np.ndarray) -> tuple[float, float]:
    """Weighted least squares of usage on input bytes (``u ~ a + b x``, a fixed part plus a per-byte
    part) at ``input_size``, and its leverage; never below the smallest usage seen, never a negative slope.

    Tools that hold their input (or a fixed fraction of it) in memory follow
    this law, which the log-log ``size`` model bends. Unknown sizes count as 0.
    """
    x = np.where(np.isfinite(history.input_size), history.input_size, 0.0)
    u = history.usage
    a, b = fit_loglinear(x, u, w)
    if b < 0:
        a, b = float(w @ u / w.sum()), 0.0
    at = float(input_size) if input_size is not None and math.isfinite(input_size) else 0.0
    scale = float(x.max()) or 1.0
    prediction = max(a + b * at, float(u.min()))
    return prediction, _leverage(x / scale, w, at / scale)


POINT_MODELS = {"level": predict_level, "size": predict_size, "nearest": predict_nearest, "linear": predict_linear}
"""Name -> point model ``f(history, input_size, weights) -> (bytes, leverage)``."""


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
