"""Extrapolation from mirror samples (and history) to the full input size."""

from __future__ import annotations

import pytest

from mirrorscale.mirror.extrapolate import CostPoint, extrapolate, fit_scaling


def test_fixed_plus_proportional_recovers_a_linear_cost() -> None:
    value, low, high, model = fit_scaling([2, 5], [5 + 2 * 2, 5 + 2 * 5], 100)
    assert model == "fixed + proportional"
    assert value == pytest.approx(205)
    assert low < value < high


def test_superlinear_cost_selects_the_power_law() -> None:
    value, _, _, model = fit_scaling([1, 2, 4], [1, 4, 16], 20)
    assert model == "power law"
    assert value == pytest.approx(400, rel=1e-6)


def test_sublinear_growth_is_detected_from_three_mirror_points() -> None:
    sizes = [1, 2.5, 5]
    value, low, high, model = fit_scaling(sizes, [100 * s**0.6 for s in sizes], 100)
    assert model == "sublinear power law"
    assert value == pytest.approx(100 * 100**0.6, rel=1e-6)
    assert low <= value <= high


def test_a_fixed_cost_is_not_mistaken_for_a_power_law() -> None:
    value, _, _, model = fit_scaling([1, 2.5, 5], [50 + 10 * s for s in (1, 2.5, 5)], 100)
    assert model == "fixed + proportional"
    assert value == pytest.approx(1050)


def test_noise_around_linear_stays_linear() -> None:
    sizes = [1, 2.5, 5]
    value, _, _, model = fit_scaling(sizes, [10 * s * f for s, f in zip(sizes, (1.03, 0.97, 1.02))], 100)
    assert model == "fixed + proportional"
    assert value == pytest.approx(1000, rel=0.1)


def test_points_near_the_noise_floor_are_read_as_linear() -> None:
    _, _, _, model = fit_scaling([1, 2.5, 5], [0.02, 0.03, 0.04], 100, floor=0.01)
    assert model == "fixed + proportional"


def test_one_size_is_proportional_with_a_band() -> None:
    value, low, high, model = fit_scaling([10], [10], 200)
    assert (model, value) == ("proportional", 200)
    assert low < 200 < high


def test_history_near_the_target_dominates_a_noisy_mirror() -> None:
    mirror = [CostPoint(2, 4e6, 0.1, 0.1), CostPoint(5, 12e6, 0.2, 0.3)]
    history = [(95, 200e6, 4.0, 4.0), (100, 210e6, 4.2, 4.3), (105, 220e6, 4.4, 4.5)]
    only_mirror = extrapolate(mirror, 100)
    both = extrapolate(mirror, 100, history=history)
    assert only_mirror.peak_rss_bytes.dominant == "mirror"
    assert both.peak_rss_bytes.dominant == "history"
    assert both.peak_rss_bytes.value == pytest.approx(210e6, rel=0.05)
    assert "dominated by history" in both.evidence()


def test_needs_some_evidence() -> None:
    with pytest.raises(ValueError):
        extrapolate([], 100)
