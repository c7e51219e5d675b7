"""A fuller VPA-style recommender: decaying histogram, estimator chain, OOM bump.

Stages follow the Kubernetes VPA recommender, scaled to task runs:

==================  ==========================================================
stage               numeric effect (example: usages around 1.0 GB)
==================  ==========================================================
aggregate state     exponential-bucket histogram (first bucket 10 MB, each
                    5 % wider); a run's weight halves every ``half_life`` runs
percentile          the end of the bucket holding p90 -> ~1.03 GB
with_margin         x (1 + 0.15) -> ~1.19 GB
with_confidence     x (1 + 1/n): 1 run -> 2.37 GB, 10 runs -> 1.31 GB,
                    100 runs -> 1.20 GB
clip                >= 250 MiB (VPA's default minimum), <= the request
OOM bump            a failed attempt at A adds a sample of
                    max(1.2 A, A + 100 MiB) and retries there (1.0 GB -> 1.2 GB)
==================  ==========================================================

Decay is by runs, not wall time, so the same recommender works on shuffled
replays; the history has no clock of its own.
"""

from __future__ import annotations

import math

import numpy as np

from mirrorscale.predictors.sizing import MIB, Run, request_or_fallback

OOM_MIN_BUMP = 100 * MIB
OOM_BUMP_RATIO = 1.2


def oom_bump(failed: float) -> float:
    """VPA's memory after an OOM kill at ``failed`` bytes: max(1.2 x, x + 100 MiB)."""
    return max(OOM_BUMP_RATIO * failed, failed + OOM_MIN_BUMP)


class DecayingHistogram:
    """VPA's aggregate state: weights in exponentially growing buckets, newest runs weigh most.

    Bucket ``i`` covers ``[start_i, start_{i+1})`` with ``start_i = first *
    (ratio**i - 1) / (ratio - 1)``. Instead of decaying old weights, each new
    sample weighs ``2 ** (k / half_life)`` for the ``k``-th sample (same ratios,
    renormalised when weights grow large).
    """

    def __init__(self, *, first_bucket: float = 1e7, ratio: float = 1.05, max_value: float = 1e15,
                 half_life: float | None = 100.0) -> None:
        self.first_bucket = first_bucket
        self.ratio = ratio
        self.half_life = half_life
        n_buckets = int(math.ceil(math.log(max_value * (ratio - 1) / first_bucket + 1, ratio))) + 1
        self.weights = np.zeros(n_buckets)
        self.count = 0
        self._next_weight = 1.0

    def bucket(self, value: float) -> int:
        """Index of the bucket holding ``value`` (values <= 0 go to bucket 0)."""
        if value <= 0:
            return 0
        index = int(math.log(value * (self.ratio - 1) / self.first_bucket + 1, self.ratio))
        return min(index, len(self.weights) - 1)

    def bucket_start(self, index: int) -> float:
        """Lower edge of bucket ``index``."""
        return self.first_bucket * (self.ratio**index - 1) / (self.ratio - 1)

    def add(self, value: float, weight: float = 1.0) -> None:
        """Add one sample (newer samples weigh more when ``half_life`` is set)."""
        self.weights[self.bucket(value)] += weight * self._next_weight
        self.count += 1
        if self.half_life:
            self._next_weight *= 2.0 ** (1.0 / self.half_life)
            if self._next_weight > 1e100:
                self.weights /= self._next_weight
                self._next_weight = 1.0

    def percentile(self, q: float) -> float:
        """The end of the bucket holding the ``q``-th percentile (0 when empty)."""
        total = self.weights.sum()
        if total <= 0:
            return 0.0
        index = int(np.searchsorted(np.cumsum(self.weights), q / 100.0 * total))
        return self.bucket_start(min(index, len(self.weights) - 1) + 1)


def with_margin(value: float, margin: float) -> float:
    """Estimator stage: ``value x (1 + margin)``."""
    return value * (1.0 + margin)


def with_confidence(value: float, n: int, multiplier: float = 1.0, exponent: float = 1.0) -> float:
    """Estimator stage: ``value x (1 + multiplier / n) ** exponent`` (few runs -> larger)."""
    return value * (1.0 + multiplier / max(n, 1)) ** exponent


class VPASizer:
    """The fuller VPA-style recommender as a replay sizer (see the module table)."""

    def __init__(self, *, percentile: float = 90.0, margin: float = 0.15, confidence: float = 1.0,
                 min_allowed: float = 250 * MIB, half_life: float | None = 100.0) -> None:
        self.percentile = percentile
        self.margin = margin
        self.confidence = confidence
        self.min_allowed = min_allowed
        self.histogram = DecayingHistogram(half_life=half_life)
        self.runs = 0

    def allocate(self, run: Run) -> float:
        """with_confidence(with_margin(percentile)), clipped to [min_allowed, request]."""
        if self.runs == 0:
            return request_or_fallback(run)
        value = with_confidence(with_margin(self.histogram.percentile(self.percentile), self.margin),
                                self.runs, self.confidence)
        return min(max(value, self.min_allowed), request_or_fallback(run, math.inf))

    def retry(self, run: Run, failed: float, failures: int) -> float:
        """OOM bump: remember max(1.2 x, x + 100 MiB) as a sample and retry with it."""
        bumped = oom_bump(failed)
        self.histogram.add(bumped)
        return bumped

    def observe(self, run: Run) -> None:
        """Add the run's usage to the histogram."""
        self.histogram.add(run.usage)
        self.runs += 1
