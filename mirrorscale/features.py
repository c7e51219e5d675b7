"""Input features shared by every engine: how big a task's inputs are, and when it ran.

One size function serves the Airflow listener, the Prefect runner and the
mirror samplers, so that the input size recorded for a real run and the size
of a mirror's sampled slice are measured the same way (extrapolating a mirror
to the full input depends on it).

:func:`value_size` estimates the bytes of data a Python value carries, without
copying it:

=============================  ==========================================================
value                          size
=============================  ==========================================================
``None``, bool, numbers        0 as a parameter (name it as a feature); inside a
                               container, its ``sys.getsizeof``
``str``                        UTF-8 length
``bytes``, ``bytearray``       length; ``memoryview``: ``nbytes``
pandas DataFrame / Series      ``memory_usage(deep=True, index=False)``
numpy array, pyarrow table     ``nbytes``
``pathlib.Path``/``PathLike``  the file's size on disk (0 for a missing file or a folder)
list of existing file paths    the sum of the files' sizes
dict                           sum over keys and values
list, tuple, set               sum over items; > :data:`MAX_ITEMS` items: extrapolated
                               from :data:`MAX_ITEMS` evenly spaced ones
other sequences (lazy)         extrapolated from the first :data:`LAZY_ITEMS` items
anything else                  ``sys.getsizeof``
=============================  ==========================================================

Nothing here raises: a size is a hint, never a reason to fail a task.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

MAX_ITEMS = 1000
"""Items of a container measured; the rest is extrapolated from them."""
MAX_DEPTH = 6
"""Nesting depth followed into containers; deeper values count ``sys.getsizeof``."""
LAZY_ITEMS = 4
"""Items read from a lazy sequence (each may be a round trip to a server)."""


def value_size(value: Any) -> int:
    """Estimated bytes of data ``value`` carries (see the module's table); never raises."""
    try:
        return _size(value, 0)
    except Exception:  # noqa: BLE001 - a size is a hint
        return _getsizeof(value)


def _getsizeof(value: Any) -> int:
    try:
        return int(sys.getsizeof(value))
    except Exception:  # noqa: BLE001
        return 0


def _size(value: Any, depth: int) -> int:
    if value is None or isinstance(value, (bool, int, float, complex)):
        return 0
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass")) if len(value) < 1 << 20 else len(value)
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, memoryview):
        return value.nbytes
    if _is_pandas(value):
        usage = value.memory_usage(deep=True, index=False)
        return int(usage.sum()) if hasattr(usage, "sum") else int(usage)
    nbytes = getattr(value, "nbytes", None)  # numpy arrays, pyarrow tables
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(value, os.PathLike):
        return file_size(value)
    if depth >= MAX_DEPTH:
        return _getsizeof(value)
    if isinstance(value, Mapping):
        pairs = [item for _, item in zip(range(MAX_ITEMS), value.items())]
        walked = sum(_item_size(k, depth) + _item_size(v, depth) for k, v in pairs)
        return _extrapolate(walked, len(pairs), len(value))
    if isinstance(value, (list, tuple, set, frozenset)):
        items = value if isinstance(value, (list, tuple)) else list(value)
        if is_path_list(items):
            return sum(file_size(p) for p in items)
        probe = _evenly_spaced(items, MAX_ITEMS)
        return _extrapolate(sum(_item_size(v, depth) for v in probe), len(probe), len(items))
    if isinstance(value, Sequence):  # e.g. Airflow's lazy XCom sequence: every item is a fetch
        total = len(value)
        probe = [value[i] for i in range(min(total, LAZY_ITEMS))]
        return _extrapolate(sum(_item_size(v, depth) for v in probe), len(probe), total)
    return _getsizeof(value)


def _item_size(item: Any, depth: int) -> int:
    """An item of a container: scalars count their object size (a list of numbers is data)."""
    return _size(item, depth + 1) or _getsizeof(item)


def _is_pandas(value: Any) -> bool:
    module = type(value).__module__ or ""
    return module.startswith("pandas") and callable(getattr(value, "memory_usage", None))


def file_size(path: Any) -> int:
    """The size of the file at ``path`` in bytes; 0 for a missing file, a folder or a bad path."""
    try:
        return os.path.getsize(path) if os.path.isfile(path) else 0
    except (OSError, TypeError, ValueError):
        return 0


def is_path_list(items: Sequence[Any]) -> bool:
    """True for a non-empty list of file paths (``str`` or ``PathLike``) that exist as files.

    At most the first :data:`MAX_ITEMS` items are checked on disk.
    """
    head = items[:MAX_ITEMS]
    return bool(head) and all(isinstance(p, (str, os.PathLike)) and _looks_like_file(p) for p in head)


def _looks_like_file(path: str | os.PathLike[str]) -> bool:
    text = os.fspath(path)
    return len(text) < 4096 and "\n" not in text and os.path.isfile(text)


def _evenly_spaced(items: Sequence[Any], limit: int) -> Sequence[Any]:
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def _extrapolate(walked: int, seen: int, total: int) -> int:
    return walked if seen == 0 or seen >= total else int(walked * total / seen)


def time_features(started_at: datetime) -> dict[str, int]:
    """``hour`` (0-23) and ``weekday`` (0 = Monday) of a run's start, in its own timezone."""
    return {"hour": started_at.hour, "weekday": started_at.weekday()}


def named_value(value: Any) -> Any:
    """A JSON-safe stand-in for a parameter a policy names as a feature.

    Numbers, booleans and short strings stay as they are; containers become
    their length; anything else its :func:`value_size`.
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return value if len(value) <= 200 else len(value)
    try:
        return len(value)
    except Exception:  # noqa: BLE001
        return value_size(value)
