"""The online selector (method ``mirrorscale``), in the spirit of Sizey.

For each task it keeps several point models (:mod:`~mirrorscale.predictors.quantile`),
each with an online upper prediction bound on its own out-of-sample errors
(:mod:`~mirrorscale.predictors.bounds`), and before every run it picks the one
whose allocations would have cost least on the task's recent runs, a failed
attempt counted at its full price. Stages, each small:

==============  =============================================================
stage           what it does (numeric effect on an example)
==============  =============================================================
cold start      0 runs: the workflow's request (e.g. 8 GB); until a model
                has ``min_residuals`` out-of-sample errors (3 runs): the
                largest usage x (1 + 0.5 / n), VPA's confidence scaling
                (1.0 GB, 2 runs -> 1.25 GB); scaled linearly with the input
                when it is larger than any seen
select          the model with the least decayed hypothetical cost
young model     while the chosen model has fewer than ``few_runs`` (10)
                errors, at most the cold-start rule (max seen x (1 + 0.5 /
                n)): 2 early errors of 10 % would put a t bound at x 1.4
bound           prediction x exp(the margin that minimises expected
                wastage, a failure costing ``failure_cost`` allocations
                (default: the failed attempt's own, times the retry's
                first step over it, ~1.02-1.1; a number prices the delay),
                :meth:`~.bounds.ResidualBound.cost_bound`: 30 errors of sd
                6 % -> x 1.12 where the 1/961 bound gives x 1.18, sd 1 % ->
                x 1.03); while the model has fewer than ``few_runs`` (10)
                errors, at least the upper bound at miscoverage
                ``min(alpha, 1 / (n + 1)^2)`` (5 errors of sd 2.5 % -> x
                1.07); centred on the median error,
                or on the median of the newest 5 when higher (upward drift).
                Models with a slope (``size``, ``linear``) are scored only
                once fitted on 3 runs or more
drift           after a new largest error of the chosen model, the bound is
                at least that error for ``drift_runs`` runs
monotone floor  where usage ranks with the input (Kendall's tau, one-sided
                1 %: 6 runs in the inputs' order, tau 1 >= 0.83), at least
                the largest usage of earlier runs whose input was no larger
                (within 1 %: one input's byte counts jitter), x exp(spread):
                memory rarely shrinks as input grows (earlier run with less
                input used 1.90 GB, spread 1 % -> >= 1.92 GB); where it does
                not, only runs of the same input (within 1 %) count, since a
                heavy run at a smaller input is noise there, not a law (a
                noisy task such as QUALIMAP, usage 14-19 GB whatever the
                input, was otherwise sized at its largest run); with fewer
                than ``few_runs`` (10) runs and no such order, of any run
guard           where the models cannot be trusted, at least the plain VPA
                rule (p90 + 15 %): beyond the largest input seen when usage
                grows with the input (log-log slope >= 0.1; then also the
                largest-input run's usage grown with the input at the upper
                bound of the slope among the larger half of the inputs,
                linearly until 10 runs are known: input 1.05 x the largest,
                which used 4.0 GB -> >= 4.2 GB linearly; an aligner whose
                memory plateaus at its index, 11.6 GB from mid-size inputs
                on, upper slope ~0 -> ~11.6 GB instead of 15.8 GB at 1.36 x
                the largest), and on a noisy task (upside spread > 10 %)
floor, cap      at least ``floor`` (250 MiB, VPA's minimum); at most the
                request while every earlier run fitted in its own request
                (a Nextflow ``memory`` was a real limit); once one did not,
                at most 2 x the largest usage seen (one doubling beyond it)
retry           first retry not 2x: the largest error seen, widened by (1 + failures)
                upside spreads (1.1 GB failed, largest ratio 1.15, spread
                2 % -> ~1.2 GB), and at least the smallest earlier usage
                above the failed allocation, widened (the run used more
                than that: 0.94 GB failed, an earlier run used 0.98 GB ->
                >= 0.99 GB); never more than 2x; capped like allocations.
                A first retry steps further where the workflow's pooled
                overshoots of earlier failures make that cheaper
                (:mod:`~mirrorscale.predictors.pool`; before any, VPA's
                +20 % counts as one). A second failure of the same run means
                it is outside everything the history knows: 2x from then on
==============  =============================================================
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Sequence

import numpy as np

from mirrorscale.predictors.bounds import DEFAULT_PRIOR_EXCESS, DEFAULT_RECENT, DEFAULT_WINDOW, ResidualBound
from mirrorscale.predictors.pool import WorkflowPool
from mirrorscale.predictors.quantile import DEFAULT_HALF_LIFE, POINT_MODELS, decay_weights, fit_loglinear, log_size
from mirrorscale.predictors.sizing import MIB, History, Run, request_or_fallback

DEFAULT_MODELS = ("level", "size", "nearest", "linear")
STATE_VERSION = 2
"""Version of :meth:`SelectorSizer.get_state`'s layout; bumped when it changes incompatibly (2: the ``linear`` model)."""
DEFAULT_ALPHA = 0.01
"""Target probability that a run exceeds its allocation (one failed attempt per 100 runs)."""
EXTRA_PARAMETERS = {"size": 1, "linear": 1}
"""Point models that fit a slope besides a level (their first errors come from fits on too few runs)."""
DEFAULT_INPUT_SLOPE = 0.1
"""Log-log slope of usage on input above which more input is a risk (doubling the input: +7 % memory)."""
DEFAULT_FEW_RUNS = 10
"""Below this many runs the monotone floor is the largest usage of any run (input effects not yet known)."""
DEFAULT_INPUT_TOLERANCE = 0.01
"""Inputs within 1 % of each other count as the same size (byte counts of one input jitter)."""
DEFAULT_NOISY_SPREAD = 0.10
"""Upside spread (mean log excess) above which a task's models explain too little to undercut the reference."""
KENDALL_Z = 2.326
"""One-sided 1 % normal quantile of Kendall's tau test (usage grows with input)."""
REFERENCE_PERCENTILE, REFERENCE_MARGIN = 90.0, 0.15
"""The plain VPA rule (p90 of usages + 15 %), the guard where the models cannot be trusted."""


def retry_widening(spread: float, leverage: float, failures: int) -> float:
    """Log step of a retry above the largest error seen: ``(1 + failures)`` upside spreads (at least 1 %)."""
    return (1.0 + failures) * max(spread, 0.01) * leverage


class Expert:
    """One point model with the bound on its own errors and its hypothetical cost, for one task.

    ``observe`` scores the model's out-of-sample prediction for a finished run
    (before the run joins the shared history): the log error joins the bound,
    and the cost its allocation would have had joins a decayed score.
    """

    def __init__(self, name: str, *, half_life: float | None = DEFAULT_HALF_LIFE,
                 prior_excess: float = DEFAULT_PRIOR_EXCESS, window: int = DEFAULT_WINDOW,
                 recent: int = DEFAULT_RECENT, failure_cost: float | None = None,
                 few_errors: int = DEFAULT_FEW_RUNS) -> None:
        self.name = name
        self.failure_cost = failure_cost
        self.few_errors = few_errors
        self.predict_raw = POINT_MODELS[name]
        self.half_life = half_life
        self.errors = ResidualBound(window=window, prior_excess=prior_excess, recent=recent)
        self.extra_parameters = EXTRA_PARAMETERS.get(name, 0)
        """Parameters beyond a level: the model is scored only once it is fitted on more than twice as many runs."""
        self.score = 0.0
        self._decay = math.exp2(-1.0 / half_life) if half_life else 1.0

    def raw(self, history: History, input_size: float | None) -> tuple[float, float]:
        """The point prediction for a run of ``input_size`` and its leverage factor."""
        return self.predict_raw(history, input_size, decay_weights(len(history), self.half_life))

    def log_margin(self, alpha: float, leverage: float = 1.0) -> float:
        """log(allocation / prediction): the cost-optimal margin, and while the model has fewer
        than ``few_errors`` errors also at least the bound at miscoverage ``alpha``."""
        price = self.failure_cost
        if price is None:  # what the replay charges: the failed attempt, whose retry then asks this much more
            price = math.exp(retry_widening(self.errors.spread, leverage, 1))
        margin = self.errors.cost_bound(price, leverage)
        if self.errors.n < self.few_errors:
            margin = max(margin, self.errors.bound(alpha, leverage))
        return margin

    def observe(self, history: History, run, alpha: float, min_residuals: int) -> None:
        """Score this model on ``run`` (before the run joins ``history``)."""
        if len(history) <= 2 * self.extra_parameters:  # a slope fitted on one or two runs says nothing yet
            return
        raw, leverage = self.raw(history, run.input_size)
        if self.errors.n >= min_residuals:
            allocation = raw * math.exp(self.log_margin(alpha, leverage))
            if allocation >= run.usage:
                cost = allocation - run.usage
            else:  # the failed attempt, then a retry that fits with the usual slack
                cost = allocation + (allocation - run.usage * (1.0 - math.expm1(self.errors.spread)))
            self.score = self.score * self._decay + cost * run.runtime_ms
        self.errors.add(math.log(run.usage / raw))


class SelectorSizer:
    """Per-task online selector over bounded point models (see the module table)."""

    def __init__(self, *, models: Sequence[str] = DEFAULT_MODELS, alpha: float = DEFAULT_ALPHA,
                 min_residuals: int = 2, half_life: float | None = DEFAULT_HALF_LIFE,
                 prior_excess: float = DEFAULT_PRIOR_EXCESS, window: int = DEFAULT_WINDOW, drift_runs: int = 5,
                 trust_request: bool = True, floor: float = 250 * MIB, confidence: float = 0.5,
                 monotone_floor: bool = True, input_tolerance: float = DEFAULT_INPUT_TOLERANCE,
                 noisy_spread: float = DEFAULT_NOISY_SPREAD, recent: int = DEFAULT_RECENT,
                 few_runs: int = DEFAULT_FEW_RUNS, failure_cost: float | None = None,
                 input_slope: float = DEFAULT_INPUT_SLOPE) -> None:
        self.models = tuple(models)
        self.alpha = alpha
        self.min_residuals = min_residuals
        self.half_life = half_life
        self.prior_excess = prior_excess
        self.window = window
        self.drift_runs = drift_runs
        self.trust_request = trust_request
        self.floor = floor
        self.confidence = confidence
        self.monotone_floor = monotone_floor
        self.input_tolerance = input_tolerance
        self.few_runs = few_runs
        self.failure_cost = failure_cost
        self.input_slope = input_slope
        self.noisy_spread = noisy_spread
        self.recent = recent
        self.history = History()
        self.request_held = True
        """Whether every run so far fitted in its own request (then the request is a valid cap)."""
        self.experts = [Expert(name, half_life=half_life, prior_excess=prior_excess, window=window, recent=recent,
                               failure_cost=failure_cost, few_errors=few_runs) for name in self.models]
        self.chosen: Expert | None = None
        self.reason = "no runs yet: the workflow's request"
        self._since_jump = drift_runs
        self._grows: tuple[int, bool] = (-1, False)  # grows_with_input() for a history of this length
        self.workflow: WorkflowPool | None = None
        """What this workflow's tasks share (:meth:`share`); None: this task alone."""
        self._first_failed: float | None = None

    def share(self, workflow: WorkflowPool) -> SelectorSizer:
        """Join ``workflow``: first retries learn from its tasks' overshoots, and report this one's; returns self."""
        self.workflow = workflow
        return self

    def _cap(self, run: Run, allocation: float, above: float = 0.0) -> float:
        allocation = max(allocation, self.floor)
        request = run.request
        if self.trust_request and self.request_held and request and request > above:
            allocation = min(allocation, float(request))
        elif len(self.history):  # no trustworthy request: one doubling beyond anything seen (or failed)
            allocation = min(allocation, 2.0 * max(float(self.history.usage.max()), above))
        return allocation

    def monotone_lower(self, run: Run) -> float:
        """The largest usage of earlier runs with no more input than ``run`` where usage grows with the
        input, else with the same input (see the module table; 0 when none or unknown)."""
        if not self.monotone_floor or run.input_size is None or not len(self.history):
            return 0.0
        grows = self.grows_with_input()
        if len(self.history) < self.few_runs and not grows:
            return float(self.history.usage.max())  # too few runs to tell how usage depends on the input
        if grows:
            counted = self.history.input_size <= run.input_size * (1.0 + self.input_tolerance)
        else:
            counted = np.abs(self.history.input_size - run.input_size) <= run.input_size * self.input_tolerance
        return float(self.history.usage[counted].max()) if counted.any() else 0.0

    def grows_with_input(self) -> bool:
        """Whether usage rises with the input beyond chance (Kendall's tau, one-sided 1 % test).

        Few runs cannot fit a size model, but they can show a clear order: 6
        runs whose usage ranks exactly as their inputs (tau = 1 >= 0.83) come
        by chance less than once in 100 if usage ignored the input. Tested on
        the newest ``window`` runs, once per run observed.
        """
        if self._grows[0] == len(self.history):
            return self._grows[1]
        x, u = self.history.input_size[-self.window:], self.history.usage[-self.window:]
        n = len(x)
        grows = False
        if n >= 4 and np.all(np.isfinite(x)):
            tau = float(np.sum(np.sign(x[:, None] - x[None, :]) * np.sign(u[:, None] - u[None, :]))) / (n * (n - 1))
            grows = tau >= KENDALL_Z * math.sqrt(2.0 * (2 * n + 5) / (9.0 * n * (n - 1)))
        self._grows = (len(self.history), grows)
        return grows

    def beyond_inputs(self, run: Run) -> float:
        """How many times larger ``run``'s input is than any seen (0 when it is not, or unknown)."""
        if run.input_size is None or not len(self.history):
            return 0.0
        sizes = self.history.input_size
        known = np.isfinite(sizes)
        if not known.any():
            return 0.0
        largest = float(sizes[known].max())
        return run.input_size / largest if largest > 0 and run.input_size > largest else 0.0

    def input_dependence(self) -> float:
        """Log-log slope of usage on input size over all runs (0 without spread in the inputs)."""
        x = log_size(self.history.input_size)
        return fit_loglinear(x, np.log(self.history.usage), np.ones(len(x)))[1]

    def growth_beyond(self, ratio: float) -> tuple[float, float]:
        """``(factor, slope)``: how much more memory an input ``ratio`` x the largest seen may need.

        ``factor = ratio ** slope`` with ``slope`` the upper bound (estimate +
        2 standard errors, within [0, 1]) of the log-log slope of usage on input
        among the runs with the larger half of the inputs: what happens near
        the largest input says more about just beyond it than the whole range
        does (memory that plateaus, an index loaded whole, grows no more
        however the small inputs ranked). Linear (slope 1) until
        ``few_runs`` runs are known or while that half has fewer than 5 runs
        or no spread in its inputs.
        """
        x, u = self.history.input_size, self.history.usage
        known = np.isfinite(x) & (x > 0)
        slope = 1.0
        if known.sum() >= self.few_runs:
            x, u = np.log(x[known]), np.log(u[known])
            upper = x >= np.median(x)
            x, u = x[upper], u[upper]
            if len(x) >= 5 and np.ptp(x) > 0:
                a, b = fit_loglinear(x, u, np.ones(len(x)))
                dx = x - x.mean()
                se = math.sqrt(float(np.sum((u - a - b * x) ** 2)) / (len(x) - 2) / float(dx @ dx))
                slope = min(1.0, max(0.0, b + 2.0 * se))
        return ratio**slope, slope

    def _largest_input_usage(self) -> float:
        sizes = np.where(np.isfinite(self.history.input_size), self.history.input_size, -np.inf)
        return float(self.history.usage[int(np.argmax(sizes))])

    def guard(self, run: Run) -> tuple[float, str]:
        """A lower bound where the models cannot be trusted, and why ("" and 0 when they can).

        Beyond the largest input seen, the size relation is unknown: at least
        the usage of the largest-input run grown with the input as
        :meth:`growth_beyond` allows, and at least the plain VPA rule (p90 +
        15 %). On a noisy task (upside spread
        above ``noisy_spread``) also at least the plain VPA rule: the models
        explain too little to take more risk than the reference does.
        """
        if not len(self.history):
            return 0.0, ""
        usage = self.history.usage
        reference = float(np.percentile(usage, REFERENCE_PERCENTILE)) * (1.0 + REFERENCE_MARGIN)
        ratio = self.beyond_inputs(run)
        if ratio and self.input_dependence() >= self.input_slope:
            growth, slope = self.growth_beyond(ratio)
            return (max(reference, self._largest_input_usage() * growth),
                    f"input {ratio:.2f} x the largest seen: at least p90 + 15 % and growth at slope {slope:.2f}")
        if self.chosen is not None and self.chosen.errors.spread > self.noisy_spread:
            return reference, f"noisy task (spread {self.chosen.errors.spread:.0%}): at least p90 + 15 %"
        return 0.0, ""

    def best(self) -> Expert | None:
        """The ready model with the least recent hypothetical cost (None in cold start)."""
        ready = [e for e in self.experts if e.errors.n >= self.min_residuals]
        return min(ready, key=lambda e: e.score) if ready else None

    def _log_margin(self, expert: Expert, alpha: float, leverage: float) -> float:
        margin = expert.log_margin(alpha, leverage)
        if self._since_jump < self.drift_runs:
            margin = max(margin, expert.errors.max_seen)
        return margin

    def miscoverage(self) -> float:
        """Target failure probability of the next run: ``min(alpha, 1 / (n + 1)^2)``.

        Shrinking with the runs known ``n`` keeps a task's expected failed
        attempts over its whole life bounded (sum of 1/(n+1)^2 for n >= 3 is
        0.28), instead of growing with every run as a fixed rate would.
        """
        return min(self.alpha, 1.0 / (len(self.history) + 1) ** 2)

    def max_seen_rule(self, run: Run) -> tuple[float, str]:
        """The largest usage x (1 + confidence / n) (scaled linearly with more input than any seen), and why."""
        n = len(self.history)
        reason = f"{n} run(s) known: max seen x (1 + {self.confidence:g} / {n})"
        allocation = float(self.history.usage.max())
        ratio = self.beyond_inputs(run)
        if ratio:  # more input than any run so far: assume usage grows (at most) linearly with it
            allocation = max(allocation, self._largest_input_usage() * ratio)
            reason += f", input {ratio:.2f} x the largest seen (linear growth)"
        return allocation * (1.0 + self.confidence / n), reason

    def allocate(self, run: Run) -> float:
        """Bytes for ``run``: the request in cold start, else the best model's bound, capped."""
        self.chosen = self.best()
        if self.chosen is None:
            if len(self.history):
                allocation, self.reason = self.max_seen_rule(run)
                return self._cap(run, allocation)
            self.reason = f"{len(self.history)} run(s) known: the workflow's request"
            return request_or_fallback(run)
        raw, leverage = self.chosen.raw(self.history, run.input_size)
        alpha = self.miscoverage()
        margin = self._log_margin(self.chosen, alpha, leverage)
        allocation = raw * math.exp(margin)
        self.reason = f"model {self.chosen.name} x {math.exp(margin):.3f} (alpha {alpha:.2g})"
        if self.chosen.errors.n < self.few_runs:
            cold, why = self.max_seen_rule(run)
            if cold < allocation:  # few errors: the model's bound is no tighter than max seen
                allocation, self.reason = cold, f"{why} (below the young model {self.chosen.name}'s bound)"
        lower = self.monotone_lower(run) * math.exp(self.chosen.errors.spread)
        if lower > allocation:
            allocation = lower
            self.reason += "; raised to an earlier run with less input"
        guard, why = self.guard(run)
        if guard > allocation:
            allocation = guard
            self.reason += f"; {why}"
        return self._cap(run, allocation)

    def retry(self, run: Run, failed: float, failures: int) -> float:
        """After a failure: the largest error seen, widened per failure, and at least the
        smallest earlier usage above ``failed`` (the run needs more than ``failed``); a first
        retry may step further where the workflow's pooled overshoots make that cheaper
        (:class:`~mirrorscale.predictors.pool.WorkflowPool`); capped."""
        target = 2.0 * failed
        if self.chosen is not None:
            raw, leverage = self.chosen.raw(self.history, run.input_size)
            widen = retry_widening(self.chosen.errors.spread, leverage, failures)
            target = max(raw * math.exp(self.chosen.errors.max_seen + widen), failed * math.exp(widen))
            usage = self.history.usage
            above = usage[usage > failed]
            if len(above):  # conditional on usage > failed: the next level the history knows
                target = max(target, float(above.min()) * math.exp(self.chosen.errors.spread))
            target = min(target, 2.0 * failed)  # never a bigger step than doubling
            if failures == 1 and self.workflow is not None:  # how far this workflow's failed runs overshot
                step = self.workflow.retry_step(math.log(target / failed), max(self.chosen.errors.spread, 0.01))
                target = failed * math.exp(step)
            if failures >= 2:  # the history's largest error did not cover it: the run is outside it, double
                target = 2.0 * failed
        elif len(self.history):
            target = max(target / 2.0 * 1.25, float(self.history.usage.max()) * 1.25)
        if failures == 1:
            self._first_failed = failed
        return self._cap(run, target, above=failed)

    def observe(self, run: Run) -> None:
        """Score every model on ``run``, note a jump (a new largest error), then add it to the history.

        A run without a positive usage (not measured) teaches nothing and is ignored.
        """
        if not run.usage > 0:
            return
        jumps = False
        for expert in self.experts:
            before = expert.errors.max_seen
            expert.observe(self.history, run, self.miscoverage(), self.min_residuals)
            jumps |= expert is self.chosen and expert.errors.n > self.min_residuals and expert.errors.last > before
        self._since_jump = 0 if jumps else self._since_jump + 1
        if run.request and run.usage > run.request:
            self.request_held = False
        self.history.append(run)
        if self._first_failed is not None and self.workflow is not None:
            self.workflow.report_overshoot(math.log(run.usage / self._first_failed))
        self._first_failed = None

    # -- JSON-safe persistence ---------------------------------------------------------------

    @classmethod
    def _param_names(cls) -> list[str]:
        return [name for name, p in inspect.signature(cls.__init__).parameters.items() if p.kind is p.KEYWORD_ONLY]

    def get_state(self) -> dict[str, Any]:
        """Everything this sizer learned, as plain JSON types (dict/list/str/float/int/bool/None).

        ``json.dumps(sizer.get_state())`` works; :meth:`from_state` rebuilds a
        sizer that gives the same allocations for the next runs. The layout has
        a ``"version"`` key (:data:`STATE_VERSION`).
        """
        params = {name: getattr(self, name) for name in self._param_names()}
        params["models"] = list(self.models)
        return {
            "version": STATE_VERSION,
            "params": params,
            "history": self.history.get_state(),
            "request_held": self.request_held,
            "since_jump": self._since_jump,
            "chosen": None if self.chosen is None else self.chosen.name,
            "reason": self.reason,
            "experts": [{"name": e.name, "score": e.score, "errors": e.errors.get_state()} for e in self.experts],
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Replace this sizer's parameters and learned state with :meth:`get_state` output.

        Raises ``ValueError`` naming the problem when ``state`` has another
        version or is malformed (nothing is changed then).
        """
        restored = type(self).from_state(state)
        self.__dict__.update(restored.__dict__)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SelectorSizer:
        """A new sizer rebuilt from :meth:`get_state` output (``ValueError`` when malformed)."""
        if not isinstance(state, dict):
            raise ValueError(f"selector state must be a dict from SelectorSizer.get_state(), got {type(state).__name__}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"selector state has version {state.get('version')!r}; this mirrorscale reads version "
                             f"{STATE_VERSION} only: refit the sizer from the stored runs")
        missing = [k for k in ("params", "history", "request_held", "since_jump", "chosen", "reason", "experts")
                   if k not in state]
        if missing:
            raise ValueError(f"selector state lacks {', '.join(repr(k) for k in missing)}")
        params = state["params"]
        if not isinstance(params, dict) or set(params) - set(cls._param_names()):
            raise ValueError(f"selector state: 'params' must be a dict with keys among {cls._param_names()}")
        try:
            sizer = cls(**params)
        except (TypeError, KeyError) as exc:
            raise ValueError(f"selector state: bad 'params': {exc}") from None
        sizer.history = History.from_state(state["history"])
        experts = state["experts"]
        if not isinstance(experts, list) or [e.get("name") if isinstance(e, dict) else None
                                             for e in experts] != list(sizer.models):
            raise ValueError(f"selector state: 'experts' must list the models {list(sizer.models)} in order")
        for expert, saved in zip(sizer.experts, experts):
            try:
                expert.score = float(saved["score"])
            except (KeyError, TypeError, ValueError):
                raise ValueError(f"selector state: expert {expert.name!r} needs a numeric 'score'") from None
            expert.errors.set_state(saved.get("errors"))
        chosen = state["chosen"]
        if chosen is not None and chosen not in sizer.models:
            raise ValueError(f"selector state: 'chosen' is {chosen!r}, not one of {list(sizer.models)}")
        sizer.chosen = None if chosen is None else sizer.experts[sizer.models.index(chosen)]
        if not isinstance(state["request_held"], bool) or not isinstance(state["since_jump"], int):
            raise ValueError("selector state: 'request_held' must be a bool and 'since_jump' an int")
        sizer.request_held = state["request_held"]
        sizer._since_jump = state["since_jump"]
        sizer.reason = str(state["reason"])
        return sizer
