"""The wastage accounting shared by every protocol and method.

One run is replayed as a sequence of attempts. An attempt whose allocation is
below the usage fails: it wastes ``allocation x runtime`` (the full runtime,
as in the Sizey paper's harness) and the sizer's retry rule picks the next
allocation. The successful attempt wastes ``(allocation - usage) x runtime``.
Used memory-time is ``usage x runtime``; MAQ = used / (used + wasted).

Units: bytes x milliseconds internally; :func:`gbh` converts to GB·h as the
paper does (``bytes * 1e-9 * ms / 3.6e6``, decimal gigabytes).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mirrorscale.predictors.sizing import Sizer

MAX_ATTEMPTS = 64
"""Attempts after which a run is given up (only reachable by a broken retry rule)."""

MIN_ALLOCATION = 1024**2
"""Allocations are clamped to at least 1 MiB so that retries can grow."""


def gbh(byte_ms: float) -> float:
    """Convert bytes x milliseconds into GB·h (decimal GB, as the Sizey harness)."""
    return byte_ms * 1e-9 / 3.6e6


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """The attempts replay made for one run and what they cost."""

    allocations: tuple[float, ...]
    usage: float
    runtime_ms: float

    @property
    def failures(self) -> int:
        """Failed attempts (all attempts but the last)."""
        return len(self.allocations) - 1

    @property
    def wasted(self) -> float:
        """Wasted bytes x ms: every failed allocation in full, plus the final slack."""
        failed = sum(self.allocations[:-1])
        return (failed + self.allocations[-1] - self.usage) * self.runtime_ms

    @property
    def used(self) -> float:
        """Used bytes x ms."""
        return self.usage * self.runtime_ms


def replay_run(sizer: Sizer, run, usage: float | None = None) -> RunOutcome:
    """Size ``run`` with ``sizer`` until an attempt fits; score against ``usage`` (default ``run.usage``).

    A retry that does not grow the allocation is replaced by doubling, so a
    replay always terminates.
    """
    need = float(run.usage if usage is None else usage)
    allocation = max(float(sizer.allocate(run)), MIN_ALLOCATION)
    allocations = [allocation]
    while allocation < need and len(allocations) < MAX_ATTEMPTS:
        proposed = float(sizer.retry(run, allocation, len(allocations)))
        allocation = proposed if proposed > allocation else 2.0 * allocation
        allocations.append(allocation)
    if allocation < need:  # give up: charge a final attempt at the usage itself
        allocations.append(need)
    return RunOutcome(tuple(allocations), need, float(run.runtime_ms))


@dataclass
class Tally:
    """Running totals of one method on one workflow."""

    workflow: str
    method: str
    tasks: int = 0
    failures: int = 0
    wasted: float = 0.0
    used: float = 0.0
    cumulative: list[float] = field(default_factory=list)
    """Cumulative wastage in GB·h after each replayed run (for the plot)."""

    def add(self, outcome: RunOutcome) -> None:
        """Count one replayed run."""
        self.tasks += 1
        self.failures += outcome.failures
        self.wasted += outcome.wasted
        self.used += outcome.used
        self.cumulative.append(gbh(self.wasted))

    @property
    def wastage_gbh(self) -> float:
        """Total wastage in GB·h."""
        return gbh(self.wasted)

    @property
    def maq(self) -> float:
        """Memory allocation quality: used / (used + wasted); 1.0 when nothing ran."""
        total = self.used + self.wasted
        return self.used / total if total > 0 else 1.0

    def cumulative_array(self) -> np.ndarray:
        """The cumulative wastage series as an array."""
        return np.asarray(self.cumulative, dtype=float)
