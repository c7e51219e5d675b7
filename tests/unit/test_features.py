"""Input sizes and features shared by the engines and the mirrors."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from mirrorscale.features import MAX_ITEMS, is_path_list, named_value, time_features, value_size


def test_scalars_carry_no_volume_and_text_counts_bytes() -> None:
    assert [value_size(v) for v in (None, True, 3, 2.5)] == [0, 0, 0, 0]
    assert value_size("héllo") == 6
    assert value_size(b"abc") == 3 and value_size(bytearray(10)) == 10
    assert value_size(memoryview(bytes(64))) == 64


def test_arrays_count_their_buffers() -> None:
    assert value_size(np.zeros((100, 10))) == 8000


def test_dataframes_count_deep_memory_without_index() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"a": np.arange(1000, dtype="int64")})
    assert value_size(frame) == 8000
    assert value_size(frame.iloc[np.arange(0, 1000, 10)]) == 800  # a sample's index is not counted


def test_containers_sum_their_items_and_extrapolate_long_ones() -> None:
    assert value_size(["ab", "cde"]) == 5
    assert value_size({"k": b"1234"}) == 5
    long = [b"x" * 10] * (MAX_ITEMS * 5)
    assert value_size(long) == 10 * MAX_ITEMS * 5
    nested = {"rows": [np.zeros(10)] * 3}
    assert value_size(nested) == 4 + 240
    numbers = list(range(10_000, 20_000))  # numbers inside a container are data
    assert value_size(numbers) == sum(map(sys.getsizeof, numbers))


def test_files_count_their_size_on_disk(tmp_path: Path) -> None:
    files = []
    for i, size in enumerate((100, 250)):
        path = tmp_path / f"part{i}.csv"
        path.write_bytes(b"x" * size)
        files.append(path)
    assert value_size(files[0]) == 100
    assert is_path_list([str(p) for p in files])
    assert value_size([str(p) for p in files]) == 350
    assert value_size(tmp_path / "missing.csv") == 0
    assert not is_path_list(["not a file", "neither"])


def test_value_size_never_raises() -> None:
    class Hostile:
        def __len__(self) -> int:
            raise RuntimeError("no")

        nbytes = property(lambda self: 1 / 0)

    assert isinstance(value_size(Hostile()), int)


def test_time_features_and_named_values() -> None:
    assert time_features(datetime(2026, 11, 27, 14, 5, tzinfo=timezone.utc)) == {"hour": 14, "weekday": 4}
    assert named_value(42) == 42 and named_value("2026-01-01") == "2026-01-01"
    assert named_value(["a", "b", "c"]) == 3 and named_value("x" * 500) == 500
