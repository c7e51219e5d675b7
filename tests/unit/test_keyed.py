"""Keyed samples: every row of a fraction of the keys, reproducible, nested, with a steady row share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mirrorscale.mirror import keyed
from mirrorscale.mirror.samplers import sample_inputs, subsample


def _frame(n: int = 400_000, keys: int = 100_000, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"key": rng.integers(0, keys, n), "small": rng.integers(0, 7, n), "x": rng.random(n)})


def test_a_frame_with_repeated_keys_is_keyed_by_its_widest_key_column() -> None:
    df = _frame()
    out = sample_inputs((df,), fraction=0.05, seed=3)
    plan = out.plans["0"]
    assert plan.column == "key" and plan.chosen_by == "default"  # not "small" (7 values) nor the floats
    sample = out.args[0]
    full_keys, keys = df["key"].nunique(), sample["key"].nunique()
    assert keys / full_keys == pytest.approx(0.05, rel=0.15)  # a row sample would hold ~16 % of the keys
    assert len(sample) / len(df) == pytest.approx(0.05, rel=0.1)
    assert df[df["key"].isin(sample["key"].unique())].shape[0] == len(sample)  # every row of a kept key
    assert list(sample.index) == sorted(sample.index)  # original order
    assert out.features()["keyed"]["0"]["distinct"]["sublinear"] is True


def test_keyed_samples_are_reproducible_and_nested() -> None:
    df = _frame()
    a = sample_inputs((df,), fraction=0.05, seed=3)
    assert a.args[0].equals(sample_inputs((df,), fraction=0.05, seed=3).args[0])
    assert not a.args[0].equals(sample_inputs((df,), fraction=0.05, seed=4).args[0])
    small = subsample(a, 0.01)
    assert set(small.args[0].index) <= set(a.args[0].index)
    assert small.args[0]["key"].nunique() / df["key"].nunique() == pytest.approx(0.01, rel=0.25)
    assert small.args[0].equals(subsample(a, 0.01).args[0])
    with pytest.raises(ValueError):
        keyed.subsample_by_key(a.args[0], a.plans["0"], 0.2)


def test_heavy_hitters_are_row_sampled_so_the_row_share_stays_steady() -> None:
    values = np.random.default_rng(5).zipf(1.2, 600_000) % 150_000  # the top key is ~18 % of the rows
    shares, heavy = [], []
    for seed in range(8):
        out = sample_inputs((values,), fraction=0.05, seed=seed)
        shares.append(len(out.args[0]) / len(values))
        heavy.append(out.plans["0"].evidence()["heavy_keys"])
    assert min(heavy) > 0
    assert max(abs(s / 0.05 - 1) for s in shares) < 0.08  # without stratification: 0.04 or 0.23
    assert len(np.unique(out.args[0])) / len(np.unique(values)) == pytest.approx(0.05, abs=0.02)


def test_unique_keys_aligned_arguments_and_float_columns_use_the_row_sample() -> None:
    unique = pd.DataFrame({"id": np.arange(100_000), "x": np.random.default_rng(0).random(100_000)})
    assert sample_inputs((unique,), fraction=0.05, seed=1).plans == {}
    labels = np.random.default_rng(0).integers(0, 1000, 50_000)
    aligned = sample_inputs((np.random.default_rng(1).random((50_000, 3)), labels), fraction=0.05, seed=1)
    assert aligned.plans == {} and len(aligned.args[1]) == len(aligned.args[0]) == 2500


def test_lists_of_strings_are_keyed_only_when_named() -> None:
    rng = np.random.default_rng(2)
    words = [f"w{r}" for r in rng.integers(0, 20_000, 200_000).tolist()]
    default = sample_inputs((words,), fraction=0.05, seed=1)
    assert default.plans == {} and default.profiles == {}  # neither keyed nor profiled unless named
    counted = sample_inputs((words,), fraction=0.05, seed=1, samplers={0: "keys"})
    assert default.counted == () and counted.counted == ("0",)
    assert counted.profiles["0"].sublinear and counted.profiles["0"].heaps_exponent < 0.9
    out = sample_inputs((words,), fraction=0.05, seed=1, samplers={0: "hash"})
    assert out.plans["0"].chosen_by == "policy"
    assert len(set(out.args[0])) / len(set(words)) == pytest.approx(0.05, rel=0.2)
    assert out.args[0] == sample_inputs((words,), fraction=0.05, seed=1, samplers={0: "hash"}).args[0]


def test_named_key_column_and_bad_specs() -> None:
    df = _frame(50_000)
    out = sample_inputs((), {"df": df}, fraction=0.1, seed=0, samplers={"df": "hash:small"})
    assert out.plans["df"].column == "small"
    assert sample_inputs((df,), fraction=0.1, seed=0, samplers={0: "rows"}).plans == {}
    with pytest.raises(ValueError):
        sample_inputs((df,), fraction=0.1, seed=0, samplers={0: "hash:missing"})
    with pytest.raises(ValueError):
        sample_inputs(([0.5, 1.5] * 100,), fraction=0.1, seed=0, samplers={0: "hash"})


def test_hashes_of_sequential_integers_are_uniform() -> None:
    for keys in (np.arange(200_000), np.arange(0, 2_000_000, 10), np.arange(200_000) * 4096):
        hashes = keyed.key_hashes(keys, seed=7)
        counts = np.histogram((hashes >> np.uint64(11)).astype(float) * 2.0**-53, bins=10, range=(0, 1))[0]
        assert counts.min() > 0.97 * len(keys) / 10


def test_a_named_sampler_can_name_the_keys_its_task_counts() -> None:
    lines = [" ".join(f"w{r}" for r in row) for row in np.random.default_rng(3).zipf(1.3, (20_000, 10)).tolist()]

    def rows(value, fraction, seed):
        return value[: int(len(value) * fraction)]

    rows.keys = lambda sampled: [word for line in sampled for word in line.split()]
    out = sample_inputs((lines,), fraction=0.1, seed=0, samplers={0: rows})
    assert sample_inputs((lines,), fraction=0.1, seed=0).profiles == {}  # every line differs
    profile = out.profiles["0"]
    assert profile.sample_rows == 20_000 and 0.5 < profile.heaps_exponent < 0.95 and out.counted == ("0",)
    frame = pd.DataFrame({"item": np.random.default_rng(0).integers(0, 500, 100_000), "x": 1.0})
    assert sample_inputs((frame,), fraction=0.05, seed=0).profiles == {}  # a frame's rows are more than its keys
