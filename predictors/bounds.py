"""Online upper prediction bounds on a point model's errors, per task.

A point model predicts ``p`` for the next run; the run then uses ``u``. The
*log error* ``e = log(u / p)`` of every out-of-sample prediction is kept (the
last ``window`` of them), and the allocation is ``p x exp(B)`` with ``B`` an
upper bound on the next error that is exceeded with probability ``alpha``.

Only the upside matters: a run fails only when it uses *more* than its
allocation, and downward outliers (a run that used a tenth of the usual)
must not widen the margin. So the spread is estimated from the errors above
their median ``m`` alone: ``beta``, the mean excess ``e - m`` of the upper
half (plus ``prior_weight`` pseudo-excesses of ``prior_excess``), is turned
into a normal spread ``sd = beta sqrt(pi / 2)``, and the bound is the
Student-t prediction bound with ``k'`` = upper-half errors + prior weight as
degrees of freedom (few errors: wide):

``B = m + leverage x t(k', 1 - alpha) x sd``

Numeric effect (upside excess ``beta`` = 2 %, i.e. sd 2.5 %):

==========  =========  ===========  ==========================================
errors      alpha      t(k', 1-a)   bound above the median error
==========  =========  ===========  ==========================================
3 (k'=2.5)  1/16       2.3          x 1.06
10 (k'=6)   1/121      3.3          x 1.09
30 (k'=16)  1/961      3.7          x 1.10
300         1/90601    4.4          x 1.12
==========  =========  ===========  ==========================================

(``alpha`` as the selector schedules it: 1 / (n + 1)^2.)
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

DEFAULT_PRIOR_EXCESS = 0.03
"""Prior mean upside excess of log errors: peak RSS jitters by a few per cent run to run."""

DEFAULT_PRIOR_WEIGHT = 1.0
"""Pseudo-excesses the prior counts for (one: overridden after a few runs)."""

DEFAULT_RECENT = 5
"""Newest errors whose median can raise the centre: a task drifting upwards shows it there first."""

DEFAULT_WINDOW = 200
"""Errors kept: older ones are forgotten, so a task that changed is re-learned."""

HALF_NORMAL_SCALE = math.sqrt(math.pi / 2.0)
"""sd / mean excess above the median of a normal distribution: turns ``beta`` into a spread."""

MAX_LOG_BOUND = 10.0
"""Bounds are clipped at exp(10) x the prediction (the request caps them long before)."""


class ResidualBound:
    """The last ``window`` log errors of one point model and their upper prediction bound."""

    __slots__ = ("window", "prior_excess", "prior_weight", "recent", "_errors", "n", "max_seen", "last", "_stats")

    def __init__(self, *, window: int = DEFAULT_WINDOW, prior_excess: float = DEFAULT_PRIOR_EXCESS,
                 prior_weight: float | None = None, recent: int = DEFAULT_RECENT) -> None:
        self.window = window
        self.recent = recent
        self.prior_excess = prior_excess
        self.prior_weight = DEFAULT_PRIOR_WEIGHT if prior_weight is None else prior_weight
        self._errors = np.empty(2 * window)
        self.n = 0
        self.max_seen = -math.inf
        self.last = 0.0
        self._stats: tuple[float, float, float] | None = None

    def add(self, error: float) -> None:
        """Add one out-of-sample log error ``log(usage / prediction)``."""
        if self.n >= len(self._errors):
            keep = self._errors[-(self.window - 1):].copy()
            self._errors[: len(keep)] = keep
            self.n = len(keep)
        self._errors[self.n] = error
        self.n += 1
        self.max_seen = max(self.max_seen, error)
        self.last = error
        self._stats = None

    def get_state(self) -> dict:
        """The window's errors and running maxima as plain JSON types."""
        return {"errors": [float(e) for e in self.errors],
                "max_seen": None if self.max_seen == -math.inf else float(self.max_seen), "last": float(self.last)}

    def set_state(self, state: dict) -> None:
        """Restore :meth:`get_state` output (the window and prior are this object's own)."""
        try:
            errors = [float(e) for e in state["errors"]][-self.window:]
            max_seen = -math.inf if state["max_seen"] is None else float(state["max_seen"])
            last = float(state["last"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"residual bound state needs 'errors' (list of numbers), 'max_seen' and 'last': {exc}") from None
        self.n = len(errors)
        self._errors[: self.n] = errors
        self.max_seen, self.last, self._stats = max_seen, last, None

    @property
    def errors(self) -> np.ndarray:
        """The errors in the window, oldest first."""
        return self._errors[max(0, self.n - self.window): self.n]

    def stats(self) -> tuple[float, float, float]:
        """``(centre, beta, k')``: centre, mean upside excess (with the prior) and its weight.

        The centre is the median error, or the median of the newest ``recent``
        errors when that is higher (usage drifting upwards: the older errors
        would centre the bound too low).
        """
        if self._stats is None:
            errors = self.errors
            if len(errors) == 0:
                self._stats = (0.0, self.prior_excess, self.prior_weight)
            else:
                median = _median(errors)
                excess = errors[errors > median] - median
                k = len(excess) + 0.5 * np.count_nonzero(errors == median)
                weight = k + self.prior_weight
                beta = (float(excess.sum()) + self.prior_weight * self.prior_excess) / weight
                if self.recent and len(errors) > self.recent:
                    newest = sorted(errors[-self.recent:].tolist())  # a handful: faster than np.median
                    k = len(newest)
                    median = max(median, 0.5 * (newest[(k - 1) // 2] + newest[k // 2]))
                self._stats = (median, beta, weight)
        return self._stats

    @property
    def spread(self) -> float:
        """The mean upside excess ``beta`` (log scale), a robust upside dispersion."""
        return self.stats()[1]

    def bound(self, alpha: float, leverage: float = 1.0) -> float:
        """Upper bound on the next log error, exceeded with probability about ``alpha``."""
        median, beta, weight = self.stats()
        tail = beta * HALF_NORMAL_SCALE * t_quantile(weight, 1.0 - alpha)
        return min(median + leverage * tail, MAX_LOG_BOUND)


    def cost_bound(self, failure_cost: float, leverage: float = 1.0) -> float:
        """The log margin that minimises the expected wastage of the next run (a newsvendor rule).

        Over-allocating by ``dm`` wastes about ``dm`` (in allocations x
        runtime); a failure wastes ``failure_cost`` allocations (the failed
        attempt and the retry's slack: 2 by default; more to price the delay).
        The optimum is where the density of the next error (Student-t, scale
        ``leverage x sd``, ``k'`` degrees of freedom) equals ``1 / failure_cost``:
        ``z = sqrt(k' ((K failure_cost / s)^(2 / (k' + 1)) - 1))``. Wide spreads
        get a smaller ``z`` (a failure is cheap next to the margin), tight ones
        a larger ``z``: 30 errors of sd 6 % -> x 1.12, of sd 1 % -> x 1.03.
        """
        median, beta, weight = self.stats()
        scale = max(beta * HALF_NORMAL_SCALE * leverage, 1e-9)
        ratio = _t_density_peak(weight) * failure_cost / scale
        z = math.sqrt(weight * (ratio ** (2.0 / (weight + 1.0)) - 1.0)) if ratio > 1.0 else 0.0
        return min(median + scale * z, MAX_LOG_BOUND)


def _t_density_peak(df: float) -> float:
    """The Student-t density at 0 with ``df`` degrees of freedom."""
    return math.exp(math.lgamma((df + 1.0) / 2.0) - math.lgamma(df / 2.0)) / math.sqrt(df * math.pi)


def _median(values: np.ndarray) -> float:
    """The median (``np.median`` without its overhead: one partition)."""
    k = len(values)
    part = np.partition(values, [(k - 1) // 2, k // 2])
    return 0.5 * float(part[(k - 1) // 2] + part[k // 2])


@lru_cache(maxsize=4096)
def _t_quantile(df_tenths: int, q_millionths: int) -> float:
    from scipy.special import stdtrit  # scipy comes with scikit-learn; imported only when bounds are used

    return float(stdtrit(df_tenths / 10.0, q_millionths / 1e6))


def t_quantile(df: float, q: float) -> float:
    """Student-t quantile ``q`` with ``df`` degrees of freedom (cached on a 0.1-df grid)."""
    return _t_quantile(max(1, int(round(df * 10))), int(round(q * 1e6)))
