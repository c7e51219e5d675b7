"""How a mirror's sampled input reaches the mirror process (:mod:`mirrorscale.mirror.transport`)."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest

from mirrorscale.mirror.transport import UnsendableInput, pack, unpack


def test_every_kind_of_argument_arrives_equal() -> None:
    words = [f"w{i}" for i in range(5000)]
    frame = pd.DataFrame({"key": np.arange(1000), "value": np.linspace(0, 1, 1000)})
    matrix = np.arange(12.0).reshape(4, 3)
    parts = pack((words, frame, 7), {"matrix": matrix, "partitions": {"a": [1, 2], "b": (3.5, None)}})
    args, kwargs = unpack(parts)
    assert args[0] == words and args[2] == 7
    pd.testing.assert_frame_equal(args[1], frame)
    np.testing.assert_array_equal(kwargs["matrix"], matrix)
    assert kwargs["partitions"] == {"a": [1, 2], "b": (3.5, None)}
    assert parts == []  # emptied, so the mirror does not hold its input twice


def test_a_list_of_plain_values_travels_apart_and_keeps_its_type() -> None:
    rows = tuple(range(1000))
    parts = pack((rows,), {"names": ["x"] * 300})
    assert len(parts) == 3  # the tuple and the list each pickled apart from the rest
    args, kwargs = unpack(parts)
    assert args == (rows,) and type(args[0]) is tuple and kwargs == {"names": ["x"] * 300}


def test_shared_objects_among_other_arguments_stay_shared() -> None:
    lookup = {"a": 1}
    args, kwargs = unpack(pack((lookup,), {"again": lookup}))
    assert args[0] is kwargs["again"]


def test_a_list_that_holds_itself_still_arrives() -> None:
    looped: list = [str(i) for i in range(1000)]
    looped.append(looped)
    (arrived,), _ = unpack(pack((looped,), {}))
    assert arrived[:1000] == looped[:1000] and arrived[1000] is arrived


def test_an_argument_that_cannot_be_pickled_is_named() -> None:
    with pytest.raises(UnsendableInput, match=r"argument connection \(a lock\) cannot be sent") as caught:
        pack(([1, 2, 3],), {"connection": threading.Lock()})
    assert "name a sampler for 'connection'" in str(caught.value)
