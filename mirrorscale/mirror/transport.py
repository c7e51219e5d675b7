"""How a mirror's sampled input travels to its process: pickled once, with protocol 5.

multiprocessing pickles a process's arguments with the default protocol (4
before Python 3.14), which copies every numpy array and DataFrame column
through ``tobytes``; protocol 5 writes their buffers as they are (a 450 k-row,
three-column DataFrame: 14 ms of the caller's CPU with protocol 4, 1.2 ms with 5).

A top-level list or tuple argument of plain values (strings, bytes, numbers,
None: checked on :data:`SPOT_CHECKS` evenly spaced items) is pickled apart and
without the pickler's memo, which costs more than the values themselves (200 k
strings: 56 ms with the memo, 21 ms without). Inside such a list, repeated
references arrive as equal copies, which plain values cannot tell apart; one
that holds a cycle is pickled with the memo after all. Everything else is
pickled together with the memo, so shared references among them survive.

:func:`pack` runs in the caller, :func:`unpack` in the mirror. An argument that
cannot be pickled raises :class:`UnsendableInput`, naming it.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

__all__ = ["SPOT_CHECKS", "UnsendableInput", "pack", "unpack"]

SPOT_CHECKS = 64
"""Items of a list or tuple whose types are checked before it is pickled without the memo."""
_PLAIN_ITEMS = (str, bytes, int, float, bool, type(None))
_MIN_ITEMS = 256  # below this the memo costs nothing worth saving


class UnsendableInput(ValueError):
    """An argument of the call cannot be pickled, so no mirror process can receive it."""


class _Apart(NamedTuple):
    """Stands in the main pickle for the argument pickled on its own as ``parts[index]``."""

    index: int


def _plain(value: Any) -> bool:
    """A list or tuple long enough to matter whose spot-checked items are all plain values."""
    if type(value) not in (list, tuple) or len(value) < _MIN_ITEMS:
        return False
    step = max(1, len(value) // SPOT_CHECKS)
    return all(type(value[i]) in _PLAIN_ITEMS for i in range(0, len(value), step))


def _dumps(value: Any, memo: bool) -> bytes:
    from multiprocessing.reduction import ForkingPickler

    buffer = io.BytesIO()
    pickler = ForkingPickler(buffer, 5)
    pickler.fast = not memo
    pickler.dump(value)
    return buffer.getvalue()


def _apart(value: Any) -> bytes:
    """``value`` pickled without the memo, or with it when it turns out to hold a cycle."""
    try:
        return _dumps(value, memo=False)
    except (ValueError, RecursionError):
        return _dumps(value, memo=True)


def _unsendable(names: Sequence[str], values: Sequence[Any], exc: Exception) -> UnsendableInput:
    """The error naming the first argument that does not pickle on its own (or all of them together)."""
    for name, value in zip(names, values):
        try:
            _dumps(value, memo=True)
        except Exception as own:  # noqa: BLE001 - any pickling failure names the argument
            kind = type(value).__name__
            return UnsendableInput(
                f"argument {name} (a {kind}) cannot be sent to a mirror process: {type(own).__name__}: {own}; "
                f"pass it as a list, DataFrame or array, or name a sampler for {name!r} that returns one")
    return UnsendableInput(f"the arguments cannot be sent to a mirror process: {type(exc).__name__}: {exc}")


def pack(args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[bytes]:
    """The call's arguments as pickles: the first holds them all except plain lists, which follow apart."""
    names = [str(i) for i in range(len(args))] + list(kwargs)
    values = list(args) + list(kwargs.values())
    parts: list[bytes] = [b""]
    kept = []
    try:
        for value in values:
            if _plain(value):
                parts.append(_apart(value))
                kept.append(_Apart(len(parts) - 1))
            else:
                kept.append(value)
        parts[0] = _dumps((kept[: len(args)], dict(zip(list(kwargs), kept[len(args):]))), memo=True)
    except Exception as exc:  # noqa: BLE001 - reported with the argument's name
        raise _unsendable(names, values, exc) from exc
    return parts


def unpack(parts: list[bytes]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``(args, kwargs)`` back from :func:`pack`'s pickles; empties ``parts`` so their bytes can be freed."""
    args, kwargs = pickle.loads(parts[0])
    apart = [pickle.loads(part) for part in parts[1:]]
    parts.clear()

    def restored(value: Any) -> Any:
        return apart[value.index - 1] if type(value) is _Apart else value

    return tuple(restored(v) for v in args), {k: restored(v) for k, v in kwargs.items()}
