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
``witt-lr``        Witt et al.'s feedback regression: least squares of usage on
                   input size x (1 + the spread of the relative errors of
                   every prediction in the workflow so far); ``witt-lr``
                   counts all errors (offset STD), ``witt-lr-under`` only the
                   under-predictions (STDUNDER); retry 2x (the largest usage
                   seen after a prediction below zero)
``oracle``         exactly the usage (no waste, no failure: the lower bound)
=================  ==========================================================

The fuller VPA-style recommender (decaying histogram, confidence scaling,
OOM bump) is in :mod:`mirrorscale.predictors.vpa`.
"""

from __future__ import annotations

import math
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


class RelativeErrors:
    """The relative errors ``(usage - prediction) / usage`` of one workflow's regression predictions.

    Witt et al. offset every task's prediction by the spread of the errors of
    all predictions made so far (the Sizey harness keeps them in one list per
    run of a workflow); running sums give the population standard deviation.
    """

    def __init__(self) -> None:
        self.all = [0, 0.0, 0.0]  # count, sum, sum of squares
        self.under = [0, 0.0, 0.0]  # the same over the positive errors (under-predictions)

    def add(self, error: float) -> None:
        """One more prediction's relative error."""
        for sums in (self.all, self.under) if error > 0 else (self.all,):
            sums[0] += 1
            sums[1] += error
            sums[2] += error * error

    def spread(self, under_only: bool) -> float:
        """``np.std`` of the errors (of the positive ones with ``under_only``); 0 when there are none."""
        n, total, squares = self.under if under_only else self.all
        return math.sqrt(max(squares / n - (total / n) ** 2, 0.0)) if n else 0.0


class WittRegressionSizer:
    """Witt et al.'s linear regression of usage on input size with an error-spread offset (see the table).

    Least squares over every earlier run of the task (running sums); the mean
    usage while the inputs have no spread; the request before any run.
    """

    def __init__(self, *, under_only: bool) -> None:
        self.under_only = under_only
        self.errors = RelativeErrors()
        self.sums = np.zeros(5)  # n, sum x, sum y, sum xx, sum xy
        self.largest = 0.0
        self._pending: float | None = None  # the prediction of the run being sized
        self._below_zero = False

    def share(self, errors: RelativeErrors) -> WittRegressionSizer:
        """Use the workflow's shared error list; returns self."""
        self.errors = errors
        return self

    def predict(self, input_size: float | None) -> float | None:
        """The regression's usage for ``input_size`` (None before any run)."""
        n, sx, sy, sxx, sxy = self.sums
        if not n:
            return None
        var = n * sxx - sx * sx
        if input_size is None or not math.isfinite(input_size) or var <= 1e-12 * max(n * sxx, 1.0):
            return sy / n
        slope = (n * sxy - sx * sy) / var
        return (sy - slope * sx) / n + slope * input_size

    def allocate(self, run: Run) -> float:
        """The prediction x (1 + offset); the request before any run."""
        self._pending = self.predict(run.input_size)
        if self._pending is None:
            return request_or_fallback(run)
        allocation = self._pending * (1.0 + self.errors.spread(self.under_only))
        self._below_zero = allocation <= 0
        return allocation

    def retry(self, run: Run, failed: float, failures: int) -> float:
        """Twice the failed allocation; the largest usage seen when the prediction was below zero."""
        return self.largest if self._below_zero and failures == 1 and self.largest > failed else doubled(failed)

    def observe(self, run: Run) -> None:
        """Record the prediction's error and refit with ``run``."""
        if self._pending is not None and run.usage > 0:
            self.errors.add((run.usage - self._pending) / run.usage)
        self._pending = None
        x = float(run.input_size) if run.input_size is not None and math.isfinite(run.input_size) else math.nan
        if math.isfinite(x):
            self.sums += (1.0, x, run.usage, x * x, x * run.usage)
        self.largest = max(self.largest, float(run.usage))


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
    Method("witt-lr", "least squares on input x (1 + std of the workflow's relative errors) (Witt et al.); 2x",
           lambda: WittRegressionSizer(under_only=False), RelativeErrors),
    Method("witt-lr-under", "witt-lr with the std of under-predictions only (STDUNDER); 2x",
           lambda: WittRegressionSizer(under_only=True), RelativeErrors),
    Method("oracle", "exactly the usage: zero waste, the lower bound", OracleSizer),
)
"""The baseline methods, in the order the replay report lists them."""
