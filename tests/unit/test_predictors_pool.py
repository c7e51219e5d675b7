"""Young models, small-sample input dependence, and the workflow's pooled overshoots."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mirrorscale.predictors.baselines import Method
from mirrorscale.predictors.methods import METHODS
from mirrorscale.predictors.pool import MAX_STEP, WorkflowPool
from mirrorscale.predictors.selector import SelectorSizer
from mirrorscale.replay.protocols import chronological, sizey
from mirrorscale.replay.records import ReplayTask

GB = 1e9


def _run(usage, size=None, request=64 * GB, task="t", order=0):
    return ReplayTask("w", task, order, usage=usage, runtime_ms=60_000, request=request, input_size=size)


def test_a_young_model_is_never_looser_than_max_seen_with_confidence():
    sizer = SelectorSizer(models=("level",))
    for usage in (1.0, 1.3, 0.8, 1.1):  # wide early errors: the young t bound would be far above the runs
        sizer.observe(_run(usage * GB))
    allocation = sizer.allocate(_run(1 * GB))
    assert allocation == pytest.approx(1.3 * GB * (1 + 0.5 / 4))
    assert "below the young model" in sizer.reason


def test_kendall_order_lets_few_runs_show_that_usage_grows_with_input():
    growing, shuffled = SelectorSizer(), SelectorSizer()
    sizes = [1e9, 2e9, 3e9, 4e9, 5e9, 6e9]
    for size, usage in zip(sizes, [1, 2, 3, 4, 5, 6]):
        growing.observe(_run(usage * GB, size))
    for size, usage in zip(sizes, [4, 1, 6, 2, 5, 3]):
        shuffled.observe(_run(usage * GB, size))
    assert growing.grows_with_input() and not shuffled.grows_with_input()
    small = _run(0, 1.5e9)
    assert growing.monotone_lower(small) == pytest.approx(1 * GB)  # only runs with no more input count
    assert shuffled.monotone_lower(small) == pytest.approx(6 * GB)  # unknown relation: the largest of all
    assert growing.allocate(small) < 3 * GB


def test_pool_without_overshoots_steps_like_vpa_and_learns_small_ones():
    pool = WorkflowPool()
    assert pool.retry_step(0.02, 0.01) == pytest.approx(math.log(1.2) + 0.01)  # the prior: VPA's 20 % bump
    assert WorkflowPool(prior=None).retry_step(0.02, 0.01) == 0.02  # no prior, nothing pooled: the task's own
    for overshoot in (0.005, 0.01, 0.012, 0.008, 0.006, 0.01, 0.009, 0.011):
        pool.report_overshoot(overshoot)
    assert pool.retry_step(0.02, 0.01) == 0.02  # eight small overshoots: the own step covers them
    pool.report_overshoot(-0.1)  # not an overshoot: ignored
    assert len(pool.overshoots) == 9


def test_pool_covers_a_large_overshoot_seen_elsewhere_but_never_beyond_doubling():
    pool = WorkflowPool(prior=None)
    pool.report_overshoot(0.15)
    assert pool.retry_step(0.03, 0.01) == pytest.approx(0.16)  # 1.17 x 1.25 < 1.03 x 1.75
    pool.report_overshoot(1.5)
    assert pool.retry_step(0.03, 0.01) <= MAX_STEP


def test_first_failures_report_their_overshoot_to_the_shared_pool():
    pool = WorkflowPool(prior=None)
    a, b = METHODS["mirrorscale"].new_sizer(pool), METHODS["mirrorscale"].new_sizer(pool)
    assert a.workflow is pool and b.workflow is pool
    for usage in np.linspace(0.99, 1.01, 20):
        a.observe(_run(usage * GB))
        b.observe(_run(usage * GB))
    run = _run(1.3 * GB)
    failed = a.allocate(run)
    assert failed < 1.3 * GB
    a.retry(run, failed, 1)
    a.observe(run)
    assert pool.overshoots == [pytest.approx(math.log(1.3 * GB / failed))]
    again = b.allocate(run)
    assert b.retry(run, again, 1) >= 1.3 * GB  # task b's first retry reaches what a's run needed


@pytest.mark.parametrize("protocol", [chronological, sizey])
def test_protocols_give_each_workflow_its_own_pool(protocol):
    pools: list[WorkflowPool] = []

    def new_pool():
        pools.append(WorkflowPool())
        return pools[-1]

    method = Method("spy", "mirrorscale with its pools recorded", SelectorSizer, new_pool)
    rng = np.random.default_rng(0)
    tasks = [ReplayTask(w, "t", i, usage=float(GB * rng.lognormal(0, 0.05)), runtime_ms=1.0, request=4 * GB)
             for w in ("x", "y") for i in range(40)]
    protocol(tasks, [method, METHODS["vpa-reference"]])
    assert len(pools) == 2 and pools[0] is not pools[1]
    assert METHODS["vpa-reference"].new_workflow() is None
