"""The online selector (method ``mirrorscale``), in the spirit of Sizey.

For each task it keeps several point models with their own cost-optimal
margins (:mod:`mirrorscale.predictors.quantile`) and, before every run, picks
the one whose allocations would have wasted least on the task's recent runs,
counting a failed attempt at its full cost (the failed allocation plus the
retry). Stages, each small:

==============  =============================================================
stage           what it does (numeric effect on an example)
==============  =============================================================
cold start      0 runs: the workflow's request (e.g. 8 GB); 1..3 runs: the
                largest usage seen (e.g. 1.0 GB)
select          the model with the least decayed hypothetical wastage
margin          cost-optimal ratio usage/prediction of that model (ratios
                0.95..1.08, failures priced in -> 1.08 x 1.0 GB = 1.08 GB)
confidence      x (1 + confidence / n), n = runs known (0.5, 5 runs: x 1.10)
floor, cap      at least ``floor`` (250 MiB, VPA's minimum), at most the
                request, which every run fitted in (9 GB, request 8 GB -> 8 GB)
retry           not 2x: largest ratio seen x prediction x confidence (failed
                at 1.1 GB, largest ratio 1.3 -> 1.3 GB, not 2.2 GB); above
                every ratio seen: x 1.25, x 1.25^2, ...; capped by the request
                while that is larger than the failed attempt
==============  =============================================================
"""

from __future__ import annotations

from typing import Sequence

from mirrorscale.predictors.quantile import DEFAULT_HALF_LIFE, MarginModel
from mirrorscale.predictors.sizing import MIB, History, Run, request_or_fallback

DEFAULT_MODELS = ("level", "size", "nearest")


class SelectorSizer:
    """Per-task online selector over cost-optimal margin models (see module docs)."""

    def __init__(self, *, models: Sequence[str] = DEFAULT_MODELS, min_ratios: int = 3,
                 half_life: float | None = DEFAULT_HALF_LIFE, failure_cost: float = 0.0,
                 trust_request: bool = True, floor: float = 250 * MIB, confidence: float = 0.5,
                 retry_growth: float = 1.25) -> None:
        self.models = tuple(models)
        self.min_ratios = min_ratios
        self.half_life = half_life
        self.failure_cost = failure_cost
        self.trust_request = trust_request
        self.floor = floor
        self.confidence = confidence
        self.retry_growth = retry_growth
        self.history = History()
        self.experts = [MarginModel(name, min_ratios=min_ratios, half_life=half_life,
                                    failure_cost=failure_cost) for name in self.models]
        self.chosen: MarginModel | None = None
        self.reason = "no runs yet: the workflow's request"

    def _cap(self, run: Run, allocation: float, above: float = 0.0) -> float:
        allocation = max(allocation, self.floor)
        request = run.request
        if self.trust_request and request and request > above:
            allocation = min(allocation, float(request))
        return allocation

    def best(self) -> MarginModel | None:
        """The ready model with the least recent hypothetical wastage (None in cold start)."""
        ready = [e for e in self.experts if e.ready()]
        return min(ready, key=lambda e: e.score) if ready else None

    def allocate(self, run: Run) -> float:
        """Bytes for ``run``: cold start, else the best model's margin x prediction, capped."""
        n = len(self.history)
        self.chosen = self.best()
        if n == 0:
            self.reason = "no runs yet: the workflow's request"
            return request_or_fallback(run)
        return self._cap(run, self._estimate(run) * self._confidence_factor())

    def _confidence_factor(self) -> float:
        """VPA-style confidence scaling: ``1 + confidence / n`` for ``n`` known runs."""
        return 1.0 + self.confidence / max(len(self.history), 1)

    def _estimate(self, run: Run) -> float:
        if self.chosen is None:
            self.reason = f"{len(self.history)} run(s): max seen"
            return float(self.history.usage.max())
        margin = self.chosen.margin()
        self.reason = f"model {self.chosen.name} x margin {margin:.3f}"
        return margin * self.chosen.raw(self.history, run.input_size)

    def retry(self, run: Run, failed: float, failures: int) -> float:
        """After a failure: the largest seen ratio x prediction, else grow geometrically; capped by the request."""
        target = failed * self.retry_growth**failures
        if len(self.history):
            if self.chosen is not None:
                candidate = self.chosen.max_ratio() * self.chosen.raw(self.history, run.input_size)
            else:
                candidate = float(self.history.usage.max())
            candidate *= self._confidence_factor()
            if candidate > failed * 1.01:
                target = candidate
        return self._cap(run, target, above=failed)

    def observe(self, run: Run) -> None:
        """Score every model on ``run``, then add it to the history."""
        for expert in self.experts:
            expert.observe(self.history, run, self.retry_growth)
        self.history.append(run)
