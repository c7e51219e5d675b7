"""Samplers: reproducible, fraction-sized samples of every kind of input."""

from __future__ import annotations

import numpy as np
import pytest

from mirrorscale.features import value_size
from mirrorscale.mirror.samplers import (
    sample_count,
    sample_inputs,
    sample_paths_by_bytes,
    sample_paths_by_count,
    sample_value,
    subsample,
)


def test_same_seed_same_sample_and_different_fraction_different_size() -> None:
    rows = list(range(10_000))
    a = sample_value(rows, 0.05, seed=3)
    assert a == sample_value(rows, 0.05, seed=3)
    assert a != sample_value(rows, 0.05, seed=4)
    assert len(a) == 500 and len(sample_value(rows, 0.02, seed=3)) == 200
    assert a == sorted(a)  # original order kept


def test_subsample_is_part_of_the_larger_sample_and_keeps_full_size() -> None:
    rows = list(range(10_000))
    large = sample_inputs((rows,), {"n": 3}, fraction=0.05, seed=3)
    small = subsample(large, 0.01)
    assert len(small.args[0]) == 100 and set(small.args[0]) <= set(large.args[0])
    assert small.kwargs == {"n": 3} and small.fraction == 0.01
    assert small.full_bytes == large.full_bytes and small.effective_fraction == pytest.approx(0.01, rel=0.3)
    assert small == subsample(large, 0.01)  # reproducible
    with pytest.raises(ValueError):
        subsample(large, 0.1)  # cannot grow a sample


def test_scalars_are_left_alone_and_sized_arguments_share_the_fraction() -> None:
    out = sample_inputs((list(range(1000)), "name", 7), {"parts": {"a": list(range(200)), "b": 3.5}},
                        fraction=0.1, seed=1)
    assert len(out.args[0]) == 100
    assert out.args[1:] == ("name", 7)
    assert len(out.kwargs["parts"]["a"]) == 20 and out.kwargs["parts"]["b"] == 3.5
    assert out.sampled == ("0", "parts")
    assert 0 < out.sampled_bytes < out.full_bytes
    assert out.effective_fraction == pytest.approx(0.1, rel=0.3)
    assert out.features()["sampled_input_bytes"] == out.sampled_bytes


def test_tuple_stays_tuple_and_tiny_inputs_keep_one_item() -> None:
    assert sample_value((1, 2, 3), 0.01, 0) in ((1,), (2,), (3,))
    assert sample_value([], 0.5, 0) == []
    assert sample_count(0, 0.5) == 0
    with pytest.raises(ValueError):
        sample_count(10, 0)


def test_numpy_rows_in_order() -> None:
    x = np.arange(2000).reshape(1000, 2)
    s = sample_value(x, 0.05, 0)
    assert s.shape == (50, 2)
    assert np.all(np.diff(s[:, 0]) > 0)
    assert np.array_equal(s, sample_value(x, 0.05, 0))
    assert value_size(x) == x.nbytes


def test_pandas_frame_rows() -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"k": np.arange(1000) % 7, "v": np.arange(1000.0)})
    s = sample_value(df, 0.1, 5)
    assert len(s) == 100 and list(s.columns) == ["k", "v"]
    assert s.index.is_monotonic_increasing
    assert s.equals(sample_value(df, 0.1, 5))
    assert 0 < value_size(s) < value_size(df)


def test_file_paths_by_count_and_by_bytes(tmp_path) -> None:
    paths = []
    for i in range(40):
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(b"x" * (1000 if i < 36 else 100_000))  # four big files
        paths.append(str(p))
    by_count = sample_paths_by_count(paths, 0.25, 0)
    assert len(by_count) == 10
    by_bytes = sample_paths_by_bytes(paths, 0.25, 0)
    total = value_size(paths)
    assert total == 36 * 1000 + 4 * 100_000
    assert value_size(by_bytes) == pytest.approx(0.25 * total, rel=0.3)
    assert sample_value(paths, 0.25, 0) == by_bytes  # default for path lists: by bytes
    assert sample_paths_by_bytes(paths, 0.25, 0) == by_bytes


def first_three(value, fraction, seed):
    """A custom sampler referenced by name, as a policy would."""
    return value[:3]


def test_custom_sampler_by_name_or_position() -> None:
    out = sample_inputs((list(range(100)),), {"rows": list(range(100))}, fraction=0.5,
                        samplers={0: f"{__name__}:first_three", "rows": first_three})
    assert out.args[0] == [0, 1, 2] and out.kwargs["rows"] == [0, 1, 2]
    with pytest.raises(ValueError):
        sample_inputs((), {}, fraction=0.5, samplers={"x": "no_colon"})


def test_arguments_of_equal_length_stay_aligned() -> None:
    x = np.arange(1000)
    out = sample_inputs((x, list(range(1000))), {"parts": {"a": list(range(1000))}}, fraction=0.05, seed=9)
    assert list(out.args[0]) == out.args[1] == out.kwargs["parts"]["a"]


def test_a_long_list_is_sampled_in_runs_of_neighbours_spread_over_all_of_it() -> None:
    from mirrorscale.mirror.samplers import BLOCK_ITEMS, sample_blocks

    rows = list(range(1_000_000))
    a = sample_blocks(rows, 0.05, seed=3)
    assert a == sample_blocks(rows, 0.05, seed=3) and a != sample_blocks(rows, 0.05, seed=4)
    assert a == sorted(a) and len(a) == 50_000
    starts = a[::BLOCK_ITEMS]
    assert a == [start + i for start in starts for i in range(BLOCK_ITEMS)]  # each run: neighbours
    assert starts[0] < 20_000 and starts[-1] > 980_000  # the runs cover the whole list
    # the default takes a long list this way; a small sample item by item; an aligned list item by item
    assert sample_inputs((rows,), fraction=0.05, seed=3).args[0] == a
    assert sample_blocks(rows[:20_000], 0.05, seed=3) == sample_value(rows[:20_000], 0.05, seed=3)
    aligned = sample_inputs((rows, np.arange(1_000_000)), fraction=0.05, seed=3)
    assert aligned.args[0] == sample_value(rows, 0.05, seed=3) == aligned.args[1].tolist()
    assert sample_inputs((rows,), fraction=0.05, seed=3, samplers={0: "rows"}).args[0] == aligned.args[0]
