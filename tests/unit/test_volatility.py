"""Volatility detector: trends, change points, hotspot verdicts and reasons."""

from __future__ import annotations

import numpy as np

from mirrorscale.predictors.volatility import assess, holt_slope, page_hinkley


def _noisy(level, n, seed=0, noise=0.05):
    return level * np.exp(np.random.default_rng(seed).normal(0, noise, n))


def test_flat_noisy_series_is_stable_even_with_spread():
    report = assess({"peak_rss": _noisy(1e9, 60, noise=0.1), "input_size": _noisy(1e8, 60, seed=1)})
    assert not report.hotspot
    assert report.reason.startswith("stable")


def test_growing_input_is_a_hotspot_with_a_rate():
    growing = 1e8 * 1.03 ** np.arange(60) * np.exp(np.random.default_rng(2).normal(0, 0.01, 60))
    report = assess({"input_size": growing, "peak_rss": _noisy(1e9, 60)})
    assert report.hotspot
    assert "input size is growing" in report.reason and "per run" in report.reason
    assert abs(report.series["input_size"].slope - np.log(1.03)) < 0.01


def test_recent_jump_is_found_by_page_hinkley():
    values = np.concatenate([_noisy(1e9, 50, seed=3, noise=0.02), _noisy(1.5e9, 5, seed=4, noise=0.02)])
    report = assess({"peak_rss": values})
    assert report.hotspot
    assert "peak memory jumped" in report.reason
    assert 49 <= report.series["peak_rss"].change_at <= 54


def test_few_runs_are_not_worth_mirroring():
    report = assess({"peak_rss": [1e9, 2e9, 4e9]})
    assert not report.hotspot and "only 3 run(s)" in report.reason


def test_building_blocks():
    assert abs(holt_slope(np.arange(30) * 0.1) - 0.1) < 1e-6
    assert page_hinkley(np.zeros(40), 0.05, 1.0) is None
