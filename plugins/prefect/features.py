"""Input features of one Prefect task run: parameter sizes, named parameters, time of day.

Prefect records no parameters itself, so mirrorscale describes them when the task
starts. The features of one run look like this::

    {"param_bytes": {"rows": 80056, "factor": 32},   # estimated size of each parameter
     "params": {"n_rows": 10000},                    # values of the parameters the policy names
     "hour": 14, "weekday": 2}                       # UTC hour and weekday (Monday = 0)

Sizes are estimates made without copying: ``nbytes`` of arrays, ``memory_usage``
of data frames, lengths of ``bytes``/``str``, and ``sys.getsizeof`` summed over the
first :data:`MAX_ITEMS` items of containers (scaled up for longer ones).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Iterable

__all__ = ["MAX_DEPTH", "MAX_ITEMS", "estimate_size", "named_param_value", "task_features"]

MAX_ITEMS = 1000
"""Items of a container looked at; the size of the rest is extrapolated from them."""
MAX_DEPTH = 4
"""Nesting depth followed into containers."""


def estimate_size(value: Any, *, _depth: int = 0) -> int:
    """The approximate number of bytes ``value`` holds (never raises, never copies)."""
    try:
        return _estimate(value, _depth)
    except Exception:  # noqa: BLE001 - a feature must never fail a task
        return _getsizeof(value)


def _getsizeof(value: Any) -> int:
    try:
        return int(sys.getsizeof(value))
    except Exception:  # noqa: BLE001
        return 0


def _estimate(value: Any, depth: int) -> int:
    if value is None or isinstance(value, (bool, int, float, complex)):
        return _getsizeof(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value) if not isinstance(value, memoryview) else value.nbytes
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) if len(value) < 1_000_000 else len(value)
    usage = getattr(value, "memory_usage", None)  # pandas DataFrame / Series
    if callable(usage) and (hasattr(value, "columns") or hasattr(value, "dtype")):
        total = usage(deep=True)
        return int(total.sum() if hasattr(total, "sum") else total)
    nbytes = getattr(value, "nbytes", None)  # numpy arrays, pyarrow tables
    if isinstance(nbytes, int):
        return nbytes
    if hasattr(value, "stat") and hasattr(value, "is_file"):  # pathlib.Path: the file's size
        return value.stat().st_size if value.is_file() else 0
    if depth >= MAX_DEPTH:
        return _getsizeof(value)
    if isinstance(value, Mapping):
        items: Iterable[Any] = value.items()
        count = len(value)
        pair = True
    elif isinstance(value, (list, tuple, set, frozenset)):
        items, count, pair = value, len(value), False
    else:
        return _getsizeof(value)
    total, seen = _getsizeof(value), 0
    for item in items:
        if seen >= MAX_ITEMS:
            break
        if pair:
            total += _estimate(item[0], depth + 1) + _estimate(item[1], depth + 1)
        else:
            total += _estimate(item, depth + 1)
        seen += 1
    if seen and count > seen:  # extrapolate from the items looked at
        base = _getsizeof(value)
        total = base + (total - base) * count // seen
    return int(total)


def named_param_value(value: Any) -> Any:
    """A JSON-safe stand-in for a parameter the policy names: scalars as they are,
    containers by their length, anything else by its estimated size."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value if not isinstance(value, str) or len(value) <= 200 else len(value)
    try:
        return len(value)
    except Exception:  # noqa: BLE001
        return estimate_size(value)


def task_features(parameters: Mapping[str, Any], named: Iterable[str], started_at: datetime) -> tuple[dict[str, Any], int]:
    """The features of one task run and the total input size in bytes.

    ``parameters`` are the resolved call parameters, ``named`` the parameter names the
    task's policy lists (``features = ["n_rows"]``), ``started_at`` an aware datetime.
    """
    sizes = {name: estimate_size(value) for name, value in parameters.items()}
    features: dict[str, Any] = {"param_bytes": sizes}
    chosen = {name: named_param_value(parameters[name]) for name in named if name in parameters}
    if chosen:
        features["params"] = chosen
    features["hour"] = started_at.hour
    features["weekday"] = started_at.weekday()
    return features, sum(sizes.values())
