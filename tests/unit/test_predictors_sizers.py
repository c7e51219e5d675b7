"""The sizers replay and the allocator use: cold start, selection, retry, caps."""

from __future__ import annotations

import numpy as np
import pytest

from mirrorscale.predictors.quantile import cost_optimal_margin
from mirrorscale.predictors.selector import SelectorSizer
from mirrorscale.predictors.sizing import MIB
from mirrorscale.predictors.vpa import DecayingHistogram, VPASizer, oom_bump
from mirrorscale.replay.records import ReplayTask

GB = 1e9


def _run(usage, size=None, request=8 * GB):
    return ReplayTask("w", "t", 0, usage=usage, runtime_ms=60_000, request=request, input_size=size)


def test_cold_start_uses_request_then_max_seen_with_confidence():
    sizer = SelectorSizer()
    assert sizer.allocate(_run(1 * GB)) == 8 * GB
    sizer.observe(_run(1 * GB))
    assert sizer.allocate(_run(1 * GB)) == pytest.approx(1 * GB * 1.5)  # 1 run: x (1 + 0.5 / 1)
    assert sizer.allocate(_run(1 * GB, request=1.2 * GB)) == pytest.approx(1.2 * GB)  # capped by the request


def test_size_aware_selection_beats_level_on_a_power_law():
    rng = np.random.default_rng(0)
    sizer = SelectorSizer()
    for size in rng.uniform(1e8, 1e10, 200):
        sizer.observe(_run(0.5 * size * rng.lognormal(0, 0.02), size, request=64 * GB))
    allocation = sizer.allocate(_run(0, 2e9, request=64 * GB))
    assert sizer.chosen.name in ("size", "nearest")
    assert 1.0 * GB <= allocation <= 1.2 * GB


def test_retry_is_smarter_than_doubling():
    sizer = SelectorSizer()
    for usage in np.linspace(0.9, 1.1, 30) * GB:
        sizer.observe(_run(usage))
    run = _run(1.15 * GB)
    first = sizer.allocate(run)
    second = sizer.retry(run, first, 1)
    assert first < second < 2 * first


def test_retry_uses_the_request_when_it_is_above_the_failure():
    sizer = SelectorSizer()
    run = _run(3 * GB, request=4 * GB)
    assert sizer.retry(run, 3.5 * GB, 1) == pytest.approx(4 * GB)


def test_cost_optimal_margin_prices_failures():
    ratios = np.array([0.9, 1.0, 1.05, 1.1, 2.0])
    ones = np.ones(5)
    # cheap failures (no retry premium): a low margin; priced failures push it up to cover more runs
    assert cost_optimal_margin(ratios, ones, ones, retry_ratio=0.0) == 0.9
    assert cost_optimal_margin(ratios, ones, ones, failure_cost=10.0) == 2.0


def test_vpa_histogram_and_oom_bump():
    histogram = DecayingHistogram(half_life=None)
    for value in np.linspace(0.5, 1.0, 100) * GB:
        histogram.add(value)
    assert 0.95 * GB <= histogram.percentile(90) <= 1.0 * GB
    assert oom_bump(1 * GB) == pytest.approx(1.2 * GB)
    assert oom_bump(100 * MIB) == pytest.approx(200 * MIB)
    sizer = VPASizer()
    assert sizer.retry(_run(2 * GB), 1 * GB, 1) == pytest.approx(1.2 * GB)


def test_residual_bound_ignores_downward_outliers_and_tightens_with_runs():
    from mirrorscale.predictors.bounds import ResidualBound

    rng = np.random.default_rng(1)
    clean, spiky = ResidualBound(), ResidualBound()
    for error in rng.normal(0, 0.02, 100):
        clean.add(error)
        spiky.add(error)
    for _ in range(5):
        spiky.add(-2.3)  # five runs that used a tenth of the prediction: no risk of failing
    assert spiky.bound(0.01) == pytest.approx(clean.bound(0.01), rel=0.25)
    few = ResidualBound()
    for error in rng.normal(0, 0.02, 4):
        few.add(error)
    assert few.bound(0.01) > clean.bound(0.01)  # fewer errors: a wider Student-t bound


def test_miscoverage_shrinks_so_lifetime_failures_stay_bounded():
    sizer = SelectorSizer(alpha=0.01)
    for usage in np.linspace(0.9, 1.1, 30) * GB:
        sizer.observe(_run(usage))
    assert sizer.miscoverage() == pytest.approx(1 / 31**2)
    assert sum(1 / (n + 1) ** 2 for n in range(3, 10_000)) < 0.3


def test_size_model_does_not_extrapolate_below_the_smallest_input():
    sizer = SelectorSizer(models=("size",))
    for size in np.linspace(4e9, 5e9, 30):
        sizer.observe(_run(5 * GB + size, size, request=64 * GB))
    far_below = sizer.allocate(_run(0, 1e8, request=64 * GB))
    assert far_below >= 9 * GB  # the usage of the smallest input seen, not a log-log extrapolation


def test_monotone_floor_covers_more_input_than_a_heavier_run_only_where_usage_grows_with_input():
    sizes = np.random.default_rng(1).uniform(1e9, 2e9, 40)
    noise = np.random.default_rng(2).lognormal(0, 0.003, 40)  # the same noise for every task below
    heavy_at = float(sizes[20])

    def feed(sizer, usage_of):
        for i, size in enumerate(sizes):
            sizer.observe(_run(usage_of(size) * (1.3 if i == 20 else 1.0) * noise[i], size))
        return sizer

    growing = feed(SelectorSizer(), lambda size: 0.5 * GB + 0.5 * size)  # memory follows the input
    grown_heavy = max(growing.history.usage[growing.history.input_size <= heavy_at])
    assert growing.grows_with_input()
    assert growing.allocate(_run(0, heavy_at * 1.005)) >= grown_heavy  # a bit more input than the heavy run

    flat = feed(SelectorSizer(), lambda size: 1.0 * GB)  # memory ignores the input: the heavy run is noise
    heavy = max(flat.history.usage)
    assert not flat.grows_with_input()
    assert flat.monotone_lower(_run(0, 2.5e9)) < heavy  # a larger input is not floored at a one-off spike
    assert flat.monotone_lower(_run(0, heavy_at * 1.005)) == pytest.approx(heavy)  # the same input (1 %) is
    off = feed(SelectorSizer(monotone_floor=False), lambda size: 1.0 * GB)
    assert off.monotone_lower(_run(0, heavy_at)) == 0.0


def test_retry_jumps_to_the_next_usage_level_the_history_knows():
    sizer = SelectorSizer()
    for usage in [0.980] + [0.929] * 27:  # the larger run came first: no model error remembers it
        sizer.observe(_run(usage * GB))
    run = _run(0.975 * GB)
    failed = sizer.allocate(run)
    assert failed < 0.975 * GB  # tight history: the bound sits below the one larger run
    assert sizer.retry(run, failed, 1) >= 0.98 * GB  # one retry reaches the level seen before


def test_request_caps_only_while_runs_fit_in_it():
    sizer = SelectorSizer()
    for _ in range(10):
        sizer.observe(_run(1 * GB, request=4 * GB))
    assert sizer.allocate(_run(1 * GB, request=0.5 * GB)) == pytest.approx(0.5 * GB)  # request held so far
    sizer.observe(_run(5 * GB, request=4 * GB))  # a run used more than its own request
    allocation = sizer.allocate(_run(1 * GB, request=0.5 * GB))
    assert allocation > 0.5 * GB
    assert allocation <= 2 * 5 * GB  # without a trustworthy request: one doubling beyond the largest usage


def test_more_input_than_ever_seen_is_sized_for_growth_at_the_slope_of_the_larger_inputs():
    linear, growing, flat = SelectorSizer(), SelectorSizer(), SelectorSizer()
    for size in np.linspace(1e9, 2e9, 30):
        linear.observe(_run(1 * GB * size / 1e9, size, request=64 * GB))  # proportional to the input
        growing.observe(_run(2 * GB * (size / 2e9) ** 0.3, size, request=64 * GB))  # slope 0.3: grows
        flat.observe(_run(2 * GB, size, request=64 * GB))  # the input makes no difference
    assert linear.allocate(_run(0, 3e9, request=64 * GB)) >= 3 * GB  # the largest-input run's 2 GB x 1.5
    assert linear.growth_beyond(1.5)[1] == pytest.approx(1.0)
    assert growing.allocate(_run(0, 3e9, request=64 * GB)) >= 2 * GB * 1.5**0.3  # at least the law itself
    assert growing.allocate(_run(0, 1.5e9, request=64 * GB)) < 2.2 * GB  # inside the inputs seen: the model
    assert flat.allocate(_run(0, 3e9, request=64 * GB)) < 2.2 * GB  # flat: more input is no risk


def test_memory_that_plateaus_is_not_grown_linearly_beyond_the_largest_input():
    """An aligner loads its index whole: usage grows with small inputs, then stays at the index size
    (from 0.6 GB of input on; the inputs' median is 0.9 GB)."""
    rng = np.random.default_rng(5)
    sizer = SelectorSizer()
    for size in np.exp(rng.uniform(np.log(2e8), np.log(4e9), 60)):
        sizer.observe(_run(min(2.5 * size, 1.5 * GB) * rng.lognormal(0, 0.005), size, request=64 * GB))
    assert sizer.input_dependence() >= sizer.input_slope  # over all runs, usage grows with the input
    factor, slope = sizer.growth_beyond(1.5)
    assert slope < 0.1 and factor < 1.05  # but not among the larger inputs
    allocation = sizer.allocate(_run(0, 6e9, request=64 * GB))  # 1.5 x the largest input
    assert 1.5 * GB <= allocation <= 1.5 * GB * 1.25  # about the plain VPA rule, not 1.5 x 1.5 GB (linear)


def test_growth_beyond_is_linear_until_enough_runs_are_known():
    sizer = SelectorSizer()
    for size in np.linspace(1e9, 2e9, 5):
        sizer.observe(_run(2 * GB, size, request=64 * GB))
    assert sizer.growth_beyond(2.0) == (2.0, 1.0)


def test_linear_model_follows_a_fixed_plus_per_byte_law():
    rng = np.random.default_rng(3)
    sizer = SelectorSizer(models=("linear",))
    for size in np.exp(rng.uniform(np.log(1e8), np.log(1e10), 100)):
        sizer.observe(_run((0.5 * GB + 1.5 * size) * rng.lognormal(0, 0.01), size, request=64 * GB))
    allocation = sizer.allocate(_run(0, 5e9, request=64 * GB))
    assert 8.0 * GB <= allocation <= 8.0 * GB * 1.12


def test_a_second_failure_of_the_same_run_doubles():
    sizer = SelectorSizer()
    for usage in np.linspace(0.9, 1.1, 30) * GB:
        sizer.observe(_run(usage))
    run = _run(5 * GB)  # far outside everything the history knows
    first = sizer.allocate(run)
    second = sizer.retry(run, first, 1)
    assert second < 2 * first
    assert sizer.retry(run, second, 2) == pytest.approx(2 * second)


def test_cost_optimal_margin_prices_failures_and_is_leaner_than_a_tiny_miscoverage_on_noisy_tasks():
    from mirrorscale.predictors.bounds import ResidualBound

    noisy = ResidualBound()
    for error in np.random.default_rng(0).normal(0, 0.06, 30):
        noisy.add(error)
    cheap, dear = noisy.cost_bound(2.0), noisy.cost_bound(50.0)
    assert 0.0 < cheap < noisy.bound(1 / 961)  # x 1.12 instead of x 1.18: a failure costs less than that margin
    assert dear > cheap  # a higher failure price buys more margin
    assert SelectorSizer(failure_cost=50.0).experts[0].failure_cost == 50.0


def test_witt_regression_offsets_the_least_squares_line_by_the_workflows_error_spread():
    from mirrorscale.predictors.baselines import RelativeErrors, WittRegressionSizer

    errors = RelativeErrors()
    for error in (0.2, 0.4, -0.5):  # two under-predictions (usage above the prediction), one over
        errors.add(error)
    assert errors.spread(under_only=True) == pytest.approx(np.std([0.2, 0.4]))
    assert errors.spread(under_only=False) == pytest.approx(np.std([0.2, 0.4, -0.5]))
    under, both = WittRegressionSizer(under_only=True).share(errors), WittRegressionSizer(under_only=False)
    both.share(errors)
    assert under.allocate(_run(0, 2e9)) == 8 * GB  # no run yet: the request
    for sizer in (under, both):
        sizer.observe(_run(1 * GB, 1e9))
        sizer.observe(_run(3 * GB, 3e9))
    assert under.allocate(_run(0, 2e9)) == pytest.approx(2 * GB * 1.1)  # the line at 2e9, + std 0.1
    assert both.allocate(_run(0, 2e9)) == pytest.approx(2 * GB * (1 + np.std([0.2, 0.4, -0.5])))
    under.observe(_run(2.5 * GB, 2e9))  # predicted 2 GB: relative error 0.2 joins the shared list
    assert errors.under[0] == 3 and both.errors is errors


def test_witt_regression_retries_at_the_largest_usage_after_a_prediction_below_zero():
    from mirrorscale.predictors.baselines import WittRegressionSizer

    sizer = WittRegressionSizer(under_only=True)
    sizer.observe(_run(3 * GB, 1e9))
    sizer.observe(_run(1 * GB, 2e9))  # usage falls 2 GB per GB of input
    run = _run(2 * GB, 4e9)
    assert sizer.allocate(run) < 0  # the line at 4e9: -3 GB
    assert sizer.retry(run, 1e6, 1) == 3 * GB  # the largest usage seen, not 2 MB
    sizer.allocate(_run(1 * GB, 1e9))
    assert sizer.retry(run, 1 * GB, 1) == 2 * GB  # a positive prediction that failed: doubled


def test_a_run_without_a_measured_usage_is_ignored():
    sizer = SelectorSizer()
    for _ in range(5):
        sizer.observe(_run(1 * GB))
    sizer.observe(_run(0.0))  # a task too short to measure: no log(0), nothing learned
    assert len(sizer.history) == 5
