"""Extrapolation from mirror samples (and history) to the full input size."""

from __future__ import annotations

import pytest

from mirrorscale.mirror.extrapolate import (METRICS, CostPoint, MirroredRun, content_drift, extrapolate, fit_growth,
                                            fit_scaling, history_noise, memory_envelope, mirror_bias,
                                            peak_prior_from_keys)

SIZES = [0.1, 1, 5]  # probe, 1 % and 5 % of an input of size 100


def test_a_fixed_cost_seen_by_the_probe_is_kept_fixed() -> None:
    value, low, high, model = fit_scaling(SIZES, [0.5 + 0.1 * s for s in SIZES], 100, noise=0.08, prior=(1, 0.1))
    assert model == "fixed + proportional"
    assert value == pytest.approx(10.5, rel=0.02)  # not 20 x the 5 % point (20.0)
    assert low <= value <= high


def test_without_a_fixed_cost_a_sublinear_growth_is_read_as_a_power_law() -> None:
    costs = [3 * s**0.7 for s in SIZES]  # distinct keys of skewed data
    value, low, high, model = fit_scaling(SIZES, costs, 100, noise=0.05, prior=(1, 0.3))
    assert model == "sublinear power law"
    assert value == pytest.approx(3 * 100**0.7, rel=0.1)  # the prior leans a little towards linear
    assert low <= value <= high


def test_the_same_three_larger_points_with_a_fixed_probe_are_linear() -> None:
    # 1 % and 5 % alone cannot tell a fixed part from sub-linear growth; the probe can
    fixed = fit_growth(SIZES, [2.0, 2.2, 3.0], noise=0.05, prior=(1, 0.3))[0][1]
    power = fit_growth(SIZES, [0.2, 2.2, 3.0], noise=0.05, prior=(1, 0.3))[0][1]
    assert fixed.fixed == pytest.approx(2.0, rel=0.1) and fixed.exponent == pytest.approx(1.0, abs=0.05)
    assert fixed.at(100) == pytest.approx(22, rel=0.1)
    assert power.fixed < 0.5 and power.exponent < 0.8


def test_superlinear_cost_selects_the_power_law() -> None:
    value, _, _, model = fit_scaling(SIZES, [0.01 * s**1.5 for s in SIZES], 100, noise=0.05, prior=(1, 0.3))
    assert model == "power law"
    assert value == pytest.approx(0.01 * 100**1.5, rel=0.05)


def test_noise_around_linear_stays_close_to_linear() -> None:
    costs = [s * f for s, f in zip(SIZES, (1.1, 0.95, 1.03))]
    value, _, _, _ = fit_scaling(SIZES, costs, 100, noise=0.08, floor=0.005, prior=(1, 0.1))
    assert value == pytest.approx(100, rel=0.15)


def test_points_near_the_noise_floor_do_not_make_a_steep_law() -> None:
    value, _, _, _ = fit_scaling(SIZES, [0.001, 0.002, 0.012], 100, floor=0.01, noise=0.08, prior=(1, 0.1))
    assert value < 1.0  # the 5 % point (0.012) extrapolated about twenty-fold, not a power law of noise


def test_one_size_is_proportional_with_a_band() -> None:
    value, low, high, model = fit_scaling([10], [10], 200)
    assert (model, value) == ("proportional", 200)
    assert low < 200 < high


def test_extrapolation_names_the_model_and_the_exponent() -> None:
    points = [CostPoint(s, 1e6 * s, 0.01 * s, 0.01 * s) for s in SIZES]
    fit = extrapolate(points, 100)
    assert fit.cpu_seconds.value == pytest.approx(1.0, rel=0.05)
    assert fit.cpu_seconds.exponent == pytest.approx(1.0, abs=0.02)
    assert "p=1.00" in fit.evidence() and fit.evidence().startswith("dominated by mirror")


def test_history_near_the_target_dominates_a_noisy_mirror() -> None:
    mirror = [CostPoint(2, 4e6, 0.1, 0.1), CostPoint(5, 12e6, 0.2, 0.3)]
    history = [(95, 200e6, 4.0, 4.0), (100, 210e6, 4.2, 4.3), (105, 220e6, 4.4, 4.5)]
    only_mirror = extrapolate(mirror, 100)
    both = extrapolate(mirror, 100, history=history)
    assert only_mirror.peak_rss_bytes.dominant == "mirror"
    assert both.peak_rss_bytes.dominant == "history"
    assert both.peak_rss_bytes.value == pytest.approx(210e6, rel=0.05)
    assert "dominated by history" in both.evidence()


def test_history_at_several_sizes_sets_the_growth_the_mirror_is_read_with() -> None:
    # the mirror's points look linear; past full runs show cost growing as size ** 1.3 near the target
    mirror = [CostPoint(s, 1e6 * s, 0.01 * s, 0.01 * s) for s in SIZES]
    history = [(n, 1e6 * n, 0.01 * 5 * (n / 5) ** 1.3, 0.01 * 5 * (n / 5) ** 1.3) for n in (20, 40, 60, 80)]
    alone = extrapolate(mirror, 100).cpu_seconds
    guided = extrapolate(mirror, 100, history=history).cpu_seconds
    assert alone.exponent == pytest.approx(1.0, abs=0.02)
    assert guided.exponent > 1.15
    assert guided.value > 1.5 * alone.value


def test_two_noisy_runs_close_in_size_do_not_set_the_growth_alone() -> None:
    # the same task twice, 2x apart in size; the larger run was slowed down (the machine was busy): 2.9x the CPU
    mirror = [CostPoint(s, 1e6 * s, 0.01 * s, 0.01 * s) for s in SIZES]
    history = [(30, 30e6, 0.30, 0.30), (60, 60e6, 0.87, 0.87)]
    guided = extrapolate(mirror, 100, history=history).cpu_seconds
    assert guided.exponent < 1.2  # two points alone would say 1.5
    assert guided.value < 1.6  # 0.87 grown 1.67x at p = 1.5 is 1.9; the mirror says 1.0


def test_history_that_scatters_is_trusted_less_than_history_that_repeats() -> None:
    import random

    mirror = [CostPoint(s, 1e6 * s, 0.01 * s, 0.01 * s) for s in SIZES]
    estimates, noises = {}, {}
    for scatter in (0.02, 0.3):  # 13 runs from 30 to 90, CPU growing as size ** 1.3, +-2 % or +-30 % per run
        rng = random.Random(4)
        history = [CostPoint(n, 1e6 * n, 0.05 * (n / 5) ** 1.3 * (1 + rng.uniform(-scatter, scatter)), 0.05)
                   for n in range(30, 91, 5)]
        noises[scatter] = history_noise(history, "cpu_seconds")
        estimates[scatter] = extrapolate(mirror, 100, history=history).cpu_seconds
    assert noises[0.02] == pytest.approx(0.08)  # the default: the runs repeat within it
    assert noises[0.3] > 0.15
    clean, noisy = estimates[0.02], estimates[0.3]
    assert dict(noisy.shares)["history"] < dict(clean.shares)["history"] - 0.15
    assert noisy.high / noisy.low > 1.3 * (clean.high / clean.low)
    assert history_noise(history[:3], "cpu_seconds") == pytest.approx(0.08)  # 3 runs: no estimate


def test_a_larger_run_that_peaked_lower_does_not_make_memory_fall() -> None:
    # deduplicating Zipf strings (measured): 3 M rows peaked at 15.5 MiB, 6 M at 12.7, 12 M at 24.7
    mib = 2**20
    mirror = [CostPoint(0.12, 0.39 * mib, 0.001, 0.001), CostPoint(6, 3.3 * mib, 0.06, 0.05)]
    history = [(30, 15.5 * mib, 0.2, 0.2), (60, 12.7 * mib, 0.4, 0.4)]
    assert [p.peak_rss_bytes for p in memory_envelope([CostPoint(*h) for h in history])] == [15.5 * mib] * 2
    peak = extrapolate(mirror, 120, history=history).peak_rss_bytes
    assert peak.value >= 15.5 * mib


def test_needs_some_evidence() -> None:
    with pytest.raises(ValueError):
        extrapolate([], 100)


MIB = 2**20
# a keyed 5 % sample of a 9 M-row group-by (probe, 1 %, 5 %; bytes, peak RSS increase): the 5 % sample sits
# just past a hash-table doubling, so 1 % -> 5 % looks like p = 1.44
STEPPED_PEAKS = [CostPoint(219_696, 7.0 * MIB, 0.01, 0.01), CostPoint(2_190_624, 8.5 * MIB, 0.015, 0.015),
                 CostPoint(10_840_248, 29.5 * MIB, 0.06, 0.06)]


def test_a_capacity_step_is_not_read_as_superlinear_memory() -> None:
    fit = extrapolate(STEPPED_PEAKS, 216_000_000)
    assert fit.peak_rss_bytes.exponent <= 1.2
    assert fit.peak_rss_bytes.value < 800 * MIB  # p = 1.44 would say 1.7 GiB (the full run: 256 MiB)
    keyed = extrapolate(STEPPED_PEAKS, 216_000_000, priors={"peak_rss_bytes": peak_prior_from_keys([], keyed=True)})
    assert keyed.peak_rss_bytes.exponent < fit.peak_rss_bytes.exponent  # keyed: rows and keys scale alike
    assert peak_prior_from_keys([], keyed=True) == (1.0, 0.1, 0.1)
    assert peak_prior_from_keys([0.8], keyed=True)[0] == 0.8  # row-sampled keys say more


def test_quadratic_memory_is_still_read_as_superlinear() -> None:
    points = [CostPoint(s, 4 * MIB + 4 * MIB * s**2, 0.1 * s, 0.1 * s) for s in SIZES]  # a pairwise matrix
    fit = extrapolate(points, 100)
    assert 1.5 <= fit.peak_rss_bytes.exponent < 2  # the price of the prior: 72 % under at twenty-fold
    assert fit.peak_rss_bytes.value > 10 * 20 * points[-1].peak_rss_bytes / 25  # far above proportional


def test_a_key_prior_bends_memory_that_the_points_cannot_tell() -> None:
    # 0.34, 0.9, 3.1 MiB: fixed + linear or sub-linear, the three points fit both (dedupe of Zipf strings)
    points = [CostPoint(s, c * MIB, 0.01 * s, 0.01 * s) for s, c in zip(SIZES, [0.34, 0.905, 3.13])]
    plain = extrapolate(points, 100).peak_rss_bytes
    prior = peak_prior_from_keys([None, 0.82, 0.9])
    assert prior == (0.82, 0.3, 0.1)
    keyed = extrapolate(points, 100, priors={"peak_rss_bytes": prior}).peak_rss_bytes
    assert plain.exponent >= 0.95 and keyed.exponent == pytest.approx(0.82, abs=0.06)
    assert keyed.value < 0.8 * plain.value
    assert peak_prior_from_keys([None]) is None
    assert peak_prior_from_keys([0.1]) is None  # saturated keys: a fixed cost, not a growth law


def test_proportional_points_override_a_key_prior() -> None:
    points = [CostPoint(s, 4 * MIB + 8 * MIB * s, 0.01 * s, 0.01 * s) for s in SIZES]
    fit = extrapolate(points, 100, priors={"peak_rss_bytes": (0.6, 0.3, 0.05)})
    assert fit.peak_rss_bytes.exponent >= 0.95


def _mirrored(full: float, factor: float) -> MirroredRun:
    """A past run of size ``full`` whose mirrors (a linear law, 0.01 s per unit) under-read its CPU by ``factor``."""
    points = tuple(CostPoint(full * f, 1e6 * full * f, 0.01 * full * f, 0.01 * full * f) for f in (0.001, 0.01, 0.05))
    return MirroredRun(points, CostPoint(full, 1e6 * full, 0.01 * full * factor, 0.01 * full * factor))


def test_past_mirrors_that_under_read_the_cpu_scale_todays_mirror_but_not_its_memory() -> None:
    today = [CostPoint(s, 1e6 * s, 0.01 * s, 0.01 * s) for s in SIZES]
    alone = extrapolate(today, 100)
    calibrated = extrapolate(today, 100, mirrored=[_mirrored(40, 1.3), _mirrored(60, 1.3), _mirrored(80, 1.3)])
    assert calibrated.cpu_seconds.value == pytest.approx(1.3 * alone.cpu_seconds.value, rel=0.02)
    assert calibrated.wall_seconds.value == pytest.approx(1.3 * alone.wall_seconds.value, rel=0.02)
    assert calibrated.peak_rss_bytes.value == pytest.approx(alone.peak_rss_bytes.value)
    assert "x1.30 (mirrors on 3 past run(s) of this task)" in calibrated.cpu_seconds.model


def test_past_mirrors_that_disagree_calibrate_less_surely_than_ones_that_agree() -> None:
    today = [CostPoint(s, 1e6 * s, 0.01 * s, 0.01 * s) for s in SIZES]
    agree = mirror_bias([_mirrored(40, 1.2), _mirrored(60, 1.2)], "cpu_seconds", (1.0, 0.1))
    disagree = mirror_bias([_mirrored(40, 0.8), _mirrored(60, 1.8)], "cpu_seconds", (1.0, 0.1))
    assert agree is not None and disagree is not None
    assert agree.factor == pytest.approx(1.2, rel=0.01) and disagree.factor == pytest.approx(1.2, rel=0.01)
    assert disagree.spread > 3 * agree.spread
    history = [(50, 50e6, 0.6, 0.6), (70, 70e6, 0.84, 0.84)]
    sure = extrapolate(today, 100, history=history, mirrored=[_mirrored(40, 1.2), _mirrored(60, 1.2)]).cpu_seconds
    unsure = extrapolate(today, 100, history=history, mirrored=[_mirrored(40, 0.8), _mirrored(60, 1.8)]).cpu_seconds
    assert dict(sure.shares)["mirror"] > dict(unsure.shares)["mirror"]


def test_a_past_run_without_usable_mirrors_does_not_calibrate() -> None:
    empty = MirroredRun((), CostPoint(50, 5e7, 0.5, 0.5))
    idle = MirroredRun((CostPoint(1, 1e6, 0.01, 0.01),), CostPoint(50, 5e7, 0.0, 0.0))  # no CPU: below the floor
    assert mirror_bias([empty, idle], "cpu_seconds", (1.0, 0.1)) is None


def test_a_larger_run_that_peaked_lower_makes_history_count_less_against_the_mirror() -> None:
    # the same pair of past runs, once rising smoothly and once with the larger run 18 % lower (a set's table)
    mib = 2**20
    mirror = [CostPoint(0.12, 0.39 * mib, 0.001, 0.001), CostPoint(6, 3.3 * mib, 0.06, 0.05)]
    smooth = [CostPoint(30, 12.7 * mib, 0.2, 0.2), CostPoint(60, 15.5 * mib, 0.4, 0.4)]
    stepped = [CostPoint(30, 15.5 * mib, 0.2, 0.2), CostPoint(60, 12.7 * mib, 0.4, 0.4)]
    assert history_noise(smooth, "peak_rss_bytes") == pytest.approx(0.05)
    assert history_noise(stepped, "peak_rss_bytes") == pytest.approx(1 - 12.7 / 15.5)
    assert history_noise(stepped, "cpu_seconds") == pytest.approx(0.08)  # the CPU rose: no scatter shown
    calm = dict(extrapolate(mirror, 120, history=smooth).peak_rss_bytes.shares)["history"]
    wary = dict(extrapolate(mirror, 120, history=stepped).peak_rss_bytes.shares)["history"]
    assert wary < calm - 0.05  # 98 % -> 92 % (the mirror, 20x away, stays far less sure than history)


def test_a_mirror_calibrated_by_runs_it_predicted_well_outweighs_history_extrapolated_far() -> None:
    # four past runs whose mirrors all missed by the same 1.25x: the calibrated mirror's band is what they showed
    today = [CostPoint(s, 1e6 * s, 0.01 * s, 0.01 * s) for s in SIZES]
    history = [(10, 10e6, 0.125, 0.125), (20, 20e6, 0.25, 0.25)]  # five-fold away from the target
    plain = extrapolate(today, 100, history=history).cpu_seconds
    calibrated = extrapolate(today, 100, history=history,
                             mirrored=[_mirrored(n, 1.25) for n in (10, 12, 16, 20)]).cpu_seconds
    assert dict(calibrated.shares)["mirror"] > dict(plain.shares)["mirror"] + 0.2
    assert calibrated.high / calibrated.low < plain.high / plain.low
    two = extrapolate(today, 100, history=history, mirrored=[_mirrored(n, 1.25) for n in (10, 20)]).cpu_seconds
    assert dict(two.shares)["mirror"] < dict(calibrated.shares)["mirror"]  # two runs cannot show a scatter yet


def _past(full: float, per_unit: float = 1.0) -> MirroredRun:
    """A past run of size ``full`` whose content cost ``per_unit`` times the base, its mirrors at 0.1 %, 1 % and 5 %."""
    def cost(size: float) -> CostPoint:
        return CostPoint(size, 1e6 * size * per_unit, 0.01 * size * per_unit, 0.01 * size * per_unit)

    return MirroredRun(tuple(cost(full * f) for f in (0.001, 0.01, 0.05)), cost(full))


def test_todays_content_that_costs_twice_as_much_moves_history_with_it() -> None:
    # past runs (and their mirrors) on yesterday's content; today's input has as many bytes, each costing double
    past = [_past(n) for n in (60, 80, 90)]
    history = [run.actual for run in past]
    today = [CostPoint(s, 2e6 * s, 0.02 * s, 0.02 * s) for s in SIZES]
    same = [CostPoint(s, 1e6 * s, 0.01 * s, 0.01 * s) for s in SIZES]
    drifted = extrapolate(today, 100, history=history, mirrored=past)
    unchanged = extrapolate(same, 100, history=history, mirrored=past)
    blind = extrapolate(today, 100, history=history)  # no past mirrors: nothing to compare today's with
    plain = extrapolate(same, 100, history=history)
    for metric in METRICS:
        assert getattr(drifted, metric).value == pytest.approx(2 * getattr(unchanged, metric).value, rel=0.1)
        assert getattr(blind, metric).value < 1.5 * getattr(unchanged, metric).value  # history held it back
        assert getattr(unchanged, metric).value == pytest.approx(getattr(plain, metric).value, rel=0.02)
    assert "today's content: its mirror read x2.00" in drifted.peak_rss_bytes.model


def test_a_difference_within_the_noise_is_not_read_as_drift() -> None:
    past = [_past(n) for n in (60, 80, 90)]
    today = [CostPoint(s, 1.03e6 * s, 0.0103 * s, 0.0103 * s) for s in SIZES]
    drift = content_drift(past, today, "peak_rss_bytes", (1.0, 0.3))
    assert drift is not None and drift.factor == pytest.approx(1.03, rel=0.01)
    assert drift.weight == 0 and drift.applied() == 1
    with_past = extrapolate(today, 100, history=[run.actual for run in past], mirrored=past).peak_rss_bytes
    without = extrapolate(today, 100, history=[run.actual for run in past]).peak_rss_bytes
    assert with_past.value == pytest.approx(without.value)  # memory is not calibrated either


def test_other_tasks_runs_and_far_smaller_past_samples_say_nothing_of_todays_content() -> None:
    today = [CostPoint(s, 2e6 * s, 0.02 * s, 0.02 * s) for s in SIZES]
    fleet = [MirroredRun(run.mirror, run.actual, own=False) for run in (_past(n) for n in (60, 80, 90))]
    assert content_drift(fleet, today, "cpu_seconds", (1.0, 0.1)) is None
    small = [_past(n) for n in (10, 15)]  # their 5 % mirrors sampled 0.75 units; today's 5: beyond DRIFT_REACH
    assert content_drift(small, today, "cpu_seconds", (1.0, 0.1)) is None
    assert content_drift([_past(80)], today, "cpu_seconds", (1.0, 0.1)).weight > 0.8
