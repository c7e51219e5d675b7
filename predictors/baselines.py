"""Baseline sizing methods, so every comparison is side by side.

=================  ==========================================================
method             allocation for the next run of a task
=================  ==========================================================
``workflow``       the workflow's own request (Nextflow ``memory``); retry 2x
``max-seen``       the largest usage seen so far (request when none); retry 2x
``vpa-reference``  p90 of earlier usages + 15 %, at least 250 MiB, the request
                   until 3 runs are known, retry 2x, no decay (the plain
                   reference the targets are measured against)
``witt-percentile`` p95 of all earlier usages (Witt et al.); retry 2x
``oracle``         exactly the usage (no waste, no failure: the lower bound)
=================  ==========================================================

The fuller VPA-style recommender (decaying histogram, confidence scaling,
OOM bump) is in :mod:`mirrorscale.predictors.vpa`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from mirrorscale.predictors.sizing import MIB, History, Run, Sizer, doubled, request_or_fallback


@dataclass(frozen=True)
class Method:
    """A named sizing method built from a sizer factory (see :class:`~.sizing.SizingMethod`)."""

    name: str
    description: str
    factory: Callable[[], Sizer] = field(repr=False)
    workflow_factory: Callable[[], object] | None = field(default=None, repr=False)
    """Makes what the sizers of one workflow share (None: they share nothing)."""

    def new_workflow(self) -> object | None:
        """What the sizers of a new workflow's tasks share (pass it to :meth:`new_sizer`), or None."""
        return None if self.workflow_factory is None else self.workflow_factory()

    def new_sizer(self, workflow: object | None = None) -> Sizer:
        """A fresh sizer for a task type with no history, joined to ``workflow`` when given."""
        sizer = self.factory()
        return sizer if workflow is None else sizer.share(workflow)


class WorkflowDefaultSizer:
    """Allocate what the workflow itself asks for; double after a failure."""

    def allocate(self, run: Run) -> float:
        """The run's request (or the fallback when it has none)."""
        return request_or_fallback(run)

    def retry(self, run: Run, failed: float, failures: int) -> float:
        """Twice the failed allocation."""
        return doubled(failed)

    def observe(self, run: Run) -> None:
        """Nothing is learned."""


class PercentileSizer:
    """A percentile of earlier usages times ``1 + margin``, with a floor.

    Until ``min_runs`` runs are known the run's own request is used. After a
    failed attempt the allocation doubles. Usages are not decayed.
    """

    def __init__(self, *, percentile: float, margin: float = 0.0, floor: float = 0.0, min_runs: int = 1) -> None:
        self.percentile = percentile
        self.margin = margin
        self.floor = floor
        self.min_runs = min_runs
        self.history = History()

    def allocate(self, run: Run) -> float:
        """Percentile x (1 + margin), at least ``floor``; the request while history is short."""
        if len(self.history) < max(self.min_runs, 1):
            return request_or_fallback(run)
        value = float(np.percentile(self.history.usage, self.percentile)) * (1.0 + self.margin)
        return max(value, self.floor)

    def retry(self, run: Run, failed: float, failures: int) -> float:
        """Twice the failed allocation."""
        return doubled(failed)

    def observe(self, run: Run) -> None:
        """Remember the run's usage."""
        self.history.append(run)


class OracleSizer:
    """Allocates exactly what the run will use: the unreachable lower bound."""

    def allocate(self, run: Run) -> float:
        """The run's true usage (only replay knows it in advance)."""
        return float(run.usage)

    def retry(self, run: Run, failed: float, failures: int) -> float:
        """Never needed; the true usage."""
        return float(run.usage)

    def observe(self, run: Run) -> None:
        """Nothing to learn."""


def vpa_reference_sizer() -> PercentileSizer:
    """The plain VPA-style reference of the targets (p90 + 15 %, >= 250 MiB, request until 3 runs)."""
    return PercentileSizer(percentile=90, margin=0.15, floor=250 * MIB, min_runs=3)


BASELINES: tuple[Method, ...] = (
    Method("workflow", "the workflow's own request; 2x after a failure", WorkflowDefaultSizer),
    Method("max-seen", "largest usage seen so far; 2x after a failure",
           lambda: PercentileSizer(percentile=100)),
    Method("vpa-reference", "p90 of earlier usages +15 %, >=250 MiB, request until 3 runs; 2x",
           vpa_reference_sizer),
    Method("witt-percentile", "p95 of all earlier usages (Witt et al.); 2x after a failure",
           lambda: PercentileSizer(percentile=95)),
    Method("oracle", "exactly the usage: zero waste, the lower bound", OracleSizer),
)
"""The baseline methods, in the order the replay report lists them."""
