"""What the sizers of one workflow's tasks share: how far failed runs overshot (empirical Bayes).

A failed attempt says only that the run needs more than it got; by how much,
one task's history rarely tells (it has failed once or twice, if ever). The
tasks of one workflow share tools, inputs and infrastructure, so
:class:`WorkflowPool` pools the *overshoots* of every task's first failed
attempt, ``log(usage / failed allocation)``, as soon as the run finishes
(replay stays causal), and the first retry of any task picks its step by a
newsvendor rule over them:

==================  ==========================================================
step ``q``          retry at ``failed x exp(q)``; candidates: the task's own
                    step (its largest error, widened) and every pooled
                    overshoot + ``widening`` above it, at most ``log 2``
cost of ``q``       ``exp(q) x (1 + S(q))``: the retry's allocation, plus
                    another failed attempt of that size with probability
                    ``S(q) = (#{overshoots >= q} + 0.5) / (m + 1)``
example             own step 3 %; pooled overshoots 1 %, 2 %, 15 %: 3 % costs
                    1.03 x 1.375, 16 % costs 1.17 x 1.125 -> 16 %
none pooled         ``S`` is 1/2 everywhere: the task's own step
==================  ==========================================================
"""

from __future__ import annotations

import bisect
import math

from mirrorscale.predictors.vpa import OOM_BUMP_RATIO

MAX_STEP = math.log(2.0)
"""A retry never steps more than doubling (what the replay falls back to)."""


class WorkflowPool:
    """The log overshoots of first failed attempts across one workflow's tasks, sorted."""

    def __init__(self, *, prior: float | None = math.log(OOM_BUMP_RATIO)) -> None:
        self.prior = prior
        self.overshoots: list[float] = [] if prior is None else [prior]
        """Sorted log overshoots, the prior's pseudo-observation among them."""

    def report_overshoot(self, log_ratio: float) -> None:
        """A run whose first attempt failed finished using ``exp(log_ratio)`` x that attempt."""
        if math.isfinite(log_ratio) and log_ratio > 0:
            bisect.insort(self.overshoots, log_ratio)

    def exceed(self, step: float) -> float:
        """``S(step)``: the chance a retry ``step`` above the failed attempt fails again."""
        m = len(self.overshoots)
        return (m - bisect.bisect_left(self.overshoots, step) + 0.5) / (m + 1)

    def retry_step(self, own: float, widening: float) -> float:
        """The log step of a first retry: ``own``, or a pooled overshoot + ``widening`` where that costs less."""
        best, best_cost = own, math.exp(own) * (1.0 + self.exceed(own))
        for overshoot in self.overshoots:
            step = overshoot + widening
            if own < step <= MAX_STEP:
                cost = math.exp(step) * (1.0 + self.exceed(step))
                if cost < best_cost:
                    best, best_cost = step, cost
        return best
