"""Distinct-key estimates from a sample's frequency profile, checked on distributions with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from mirrorscale.mirror.distinct import DistinctProfile, chao_distinct, gee_distinct


def _profile(keys: np.ndarray, fraction: float, seed: int = 0) -> DistinctProfile:
    rng = np.random.default_rng(seed)
    sample = keys[rng.choice(len(keys), int(len(keys) * fraction), replace=False)]
    return DistinctProfile.from_counts(np.unique(sample, return_counts=True)[1], len(keys))


def test_uniform_keys_are_estimated_within_five_percent_and_called_sublinear() -> None:
    keys = np.random.default_rng(1).integers(0, 300_000, 900_000)
    truth = len(np.unique(keys))
    profile = _profile(keys, 0.05)
    assert profile.chao == pytest.approx(truth, rel=0.05)
    assert profile.linear > 2.5 * truth  # what scaling the sample assumes
    assert profile.sublinear


def test_all_distinct_keys_grow_linearly() -> None:
    profile = _profile(np.arange(400_000), 0.05)
    assert profile.singletons == profile.distinct == profile.sample_rows
    assert profile.chao == pytest.approx(400_000, rel=0.01)
    assert not profile.sublinear


def test_saturated_keys_stay_at_what_the_sample_saw() -> None:
    keys = np.random.default_rng(2).integers(0, 500, 1_000_000)
    profile = _profile(keys, 0.05)
    assert profile.distinct == 500 and profile.singletons == 0
    assert profile.chao == 500 and profile.sublinear


def test_zipf_keys_are_bracketed_between_the_sample_and_scaling() -> None:
    keys = np.random.default_rng(3).zipf(1.2, 2_000_000) % 500_000
    truth = len(np.unique(keys))
    profile = _profile(keys, 0.05)
    assert profile.distinct < profile.chao <= truth < profile.linear  # Chao1 is a lower bound
    assert profile.sublinear and profile.chao > 0.4 * truth


def test_formulas_on_hand_computed_profiles() -> None:
    assert gee_distinct(100, 10_000, 60, 40) == pytest.approx(10 * 40 + 20)
    assert chao_distinct(100, 100, 60, 40, 10) == 60  # no rows beyond the sample
    assert chao_distinct(0, 100, 0, 0, 0) == 0
    # f0 = 99/100 * 40**2 / 20 = 79.2 unseen keys, nearly all met in a million more rows
    assert chao_distinct(100, 1_000_000, 60, 40, 10) == pytest.approx(60 + 79.2, rel=1e-3)
    evidence = DistinctProfile(100, 10_000, 60, 40, 10).evidence()
    assert evidence["linear"] == 6000 and evidence["sublinear"] is True


def test_heaps_exponent_reads_how_fast_keys_grow_now() -> None:
    rng = np.random.default_rng(4)
    unique = DistinctProfile.from_keys(rng.permutation(100_000), 2_000_000)
    assert unique.heaps_exponent == pytest.approx(1.0, abs=0.01)
    zipf = DistinctProfile.from_keys(rng.zipf(1.2, 300_000) % 1_500_000, 6_000_000)
    assert 0.7 < zipf.heaps_exponent < 0.9  # vocabulary-like growth
    saturated = DistinctProfile.from_keys(rng.integers(0, 100, 50_000), 1_000_000)
    assert saturated.heaps_exponent == pytest.approx(0.0, abs=0.01)
    assert DistinctProfile(10, 100, 5, 2, 1).heaps_exponent is None  # not measured


def test_keying_pays_off_only_when_scaling_overcounts_many_rows() -> None:
    many = _profile(np.random.default_rng(1).integers(0, 300_000, 900_000), 0.05)
    few = _profile(np.random.default_rng(1).integers(0, 5_000, 2_000_000), 0.05)
    assert many.worth_keying and many.overcount > 0.5
    assert few.sublinear and not few.worth_keying and few.overcount < 0.15


def test_distinct_count_matches_a_set() -> None:
    from mirrorscale.mirror.distinct import distinct_count

    values = np.random.default_rng(3).integers(0, 5000, 20_000).astype(np.uint64)
    assert distinct_count(values) == len(set(values.tolist()))
    assert distinct_count(values[:1]) == 1 and distinct_count(values[:0]) == 0
