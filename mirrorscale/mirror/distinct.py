"""How many distinct keys will the full input hold? Estimated from a sample's frequency profile.

A task whose memory follows the number of distinct values it sees (a group-by
hash table, a set, a vocabulary) is mis-read by a uniform row sample: a 5 %
sample of 9 M rows drawn from 3 M keys holds 418 k distinct keys, 15 % of the
full input's 2.85 M, not 5 %. Scaling the sample's cost by twenty then predicts
three times the memory. :class:`DistinctProfile` measures that from the sample
alone, in the caller, in time proportional to the sample: ``S`` distinct keys
among ``n`` sampled rows, ``f1`` of them seen once and ``f2`` twice, and

* ``chao``: the Chao1 estimate of the keys not yet seen, ``f0 = (n-1)/n * f1**2 / (2 f2)``,
  extended to the full input's ``N`` rows by Chao et al. (2014, "Rarefaction
  and extrapolation with Hill numbers")::

      D(N) = S + f0 * (1 - (1 - f1 / (n f0 + f1)) ** (N - n))

* ``gee``: the guaranteed-error estimator of Charikar et al. (2000),
  ``sqrt(N / n) * f1 + sum_{j >= 2} f_j`` (its ratio error is at most ``sqrt(N / n)``);
* ``linear``: ``S * N / n``, what scaling the sample implicitly assumes.

Both estimators are recorded as evidence; ``chao`` decides. Measured on
synthetic inputs (5 % samples; the last column is what scaling assumes):

=========================================  ===========  ============  ===========  ============
keys of the full input                     true D       chao          gee          linear
=========================================  ===========  ============  ===========  ============
9 M rows, uniform over 3 M values          2.85 M       2.87 M (+1 %) 1.77 M       8.36 M
6 M rows, Zipf(1.2) over 1.5 M values      507 k        259 k (-49 %) 186 k        964 k
12 M rows, uniform over 50 k values        50 k         50 k          50 k         1.0 M
4 M rows, all distinct                     4.0 M        4.0 M         0.89 M       4.0 M
=========================================  ===========  ============  ===========  ============

Chao1 is a lower bound: heavy-tailed keys (Zipf) are under-estimated, but far
less wrong than scaling. :attr:`DistinctProfile.sublinear` is true when
scaling would over-count the distinct keys by more than a quarter; a keyed
sample (:mod:`.keyed`) is worth its cost when those extra keys are also at
least :data:`OVERCOUNT_SHARE` of the full rows (:attr:`DistinctProfile.worth_keying`:
a 50 k-item column of 12 M rows is sub-linear, but its extra keys are 8 % of
the rows; 3 M keys in 9 M rows: 61 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["OVERCOUNT_SHARE", "SUBLINEAR_RATIO", "DistinctProfile", "chao_distinct", "distinct_count", "gee_distinct"]

SUBLINEAR_RATIO = 1.25
"""Scaling must over-count the distinct keys by more than this factor to call their growth sub-linear."""
OVERCOUNT_SHARE = 0.15
"""Scaling must over-count distinct keys by this share of the full rows for a keyed sample to pay off."""


def chao_distinct(n: int, full_rows: int, distinct: int, f1: int, f2: int) -> float:
    """Expected distinct keys in ``full_rows`` rows from a sample of ``n`` rows (Chao1, extrapolated)."""
    if n <= 0 or distinct <= 0:
        return 0.0
    if full_rows <= n:
        return float(distinct)
    f0 = (n - 1) / n * (f1 * f1 / (2 * f2) if f2 > 0 else f1 * (f1 - 1) / 2)
    if f0 <= 0:
        return float(distinct)
    step = f1 / (n * f0 + f1)
    return distinct + f0 * -math.expm1((full_rows - n) * math.log1p(-step)) if step < 1 else distinct + f0


def gee_distinct(n: int, full_rows: int, distinct: int, f1: int) -> float:
    """Charikar et al.'s GEE: ``sqrt(N / n) * f1 + (S - f1)``."""
    if n <= 0:
        return 0.0
    return math.sqrt(max(full_rows, n) / n) * f1 + (distinct - f1)


def distinct_count(hashes: Any) -> int:
    """How many distinct values a numpy array holds, counted on a sorted copy.

    Sorting 90 k hashes and counting the changes takes 3.5 ms; ``np.unique``
    (hash-based since numpy 2.3) took 17 ms.
    """
    import numpy as np

    ordered = np.sort(hashes)
    return int(np.count_nonzero(ordered[1:] != ordered[:-1])) + 1 if len(ordered) else 0


@dataclass(frozen=True)
class DistinctProfile:
    """The frequency profile of a row sample's keys and the distinct count it implies for the full input."""

    sample_rows: int
    full_rows: int
    distinct: int
    singletons: int
    doubletons: int
    fifth_distinct: int = 0
    """Distinct keys among every fifth row of the sample (0: not measured)."""

    @classmethod
    def from_counts(cls, counts: Any, full_rows: int, fifth_distinct: int = 0) -> DistinctProfile:
        """From the number of times each distinct key occurs in the sample (a numpy array or a sequence)."""
        import numpy as np

        counts = np.asarray(counts)
        return cls(sample_rows=int(counts.sum()), full_rows=int(full_rows), distinct=int(len(counts)),
                   singletons=int((counts == 1).sum()), doubletons=int((counts == 2).sum()),
                   fifth_distinct=int(fifth_distinct))

    @classmethod
    def from_keys(cls, hashes: Any, full_rows: int) -> DistinctProfile:
        """From the sample's key hashes (a numpy array, in sample order)."""
        import numpy as np

        counts = np.unique(hashes, return_counts=True)[1]
        return cls.from_counts(counts, full_rows, fifth_distinct=distinct_count(hashes[::5]))

    @property
    def heaps_exponent(self) -> float | None:
        """How fast distinct keys grow with rows right now: ``ln(S / S_fifth) / ln 5`` (Heaps' law).

        Read between a fifth of the sample and the whole sample. Keys that
        saturate keep growing slower than this further on, so as an exponent
        for extrapolation it errs towards more keys (more memory).
        """
        if self.fifth_distinct <= 0 or self.distinct <= 0 or self.sample_rows < 5:
            return None
        return min(1.0, max(0.0, math.log(self.distinct / self.fifth_distinct) / math.log(5)))

    @property
    def linear(self) -> float:
        """The distinct keys that scaling the sample to the full rows assumes."""
        return self.distinct * self.full_rows / self.sample_rows if self.sample_rows else 0.0

    @property
    def chao(self) -> float:
        """The Chao1 estimate extrapolated to the full rows (see the module docstring)."""
        return chao_distinct(self.sample_rows, self.full_rows, self.distinct, self.singletons, self.doubletons)

    @property
    def gee(self) -> float:
        """The GEE estimate."""
        return gee_distinct(self.sample_rows, self.full_rows, self.distinct, self.singletons)

    @property
    def overcount(self) -> float:
        """The keys scaling would count too many (``linear - chao``), as a share of the full rows.

        With a table entry per key costing about what a row costs, this is the
        share by which a row sample over-predicts memory that follows keys.
        """
        return max(0.0, self.linear - self.chao) / self.full_rows if self.full_rows else 0.0

    @property
    def worth_keying(self) -> bool:
        """Sub-linear, and scaling would over-count keys by at least :data:`OVERCOUNT_SHARE` of the rows."""
        return self.sublinear and self.overcount >= OVERCOUNT_SHARE

    @property
    def sublinear(self) -> bool:
        """Scaling would over-count the distinct keys by more than :data:`SUBLINEAR_RATIO`."""
        return self.linear > SUBLINEAR_RATIO * max(self.chao, 1.0)

    def evidence(self) -> dict[str, Any]:
        """The profile and both estimates, for a shadow's evidence."""
        heaps = self.heaps_exponent
        return {"sample_rows": self.sample_rows, "full_rows": self.full_rows, "distinct": self.distinct,
                "f1": self.singletons, "f2": self.doubletons, "chao": round(self.chao),
                "gee": round(self.gee), "linear": round(self.linear), "sublinear": self.sublinear,
                "overcount": round(self.overcount, 3),
                "heaps_exponent": None if heaps is None else round(heaps, 3)}
