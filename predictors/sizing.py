"""The sizing interface shared by replay and the allocator.

A *sizing method* sizes one task type. For every task type it hands out a
fresh :class:`Sizer`, which lives through that task's runs in order:

1. ``allocate(run)`` — memory (bytes) for the next run, from earlier runs and
   the features of this run known before it starts (input size, request);
2. ``retry(run, failed, failures)`` — after an attempt with ``failed`` bytes
   was killed (the ``failures``-th failure of this run), the next allocation;
3. ``observe(run)`` — the run finished: its measured ``usage`` and runtime join
   the history.

Runs are duck-typed (:class:`Run`): anything with ``usage``, ``runtime_ms``,
``input_size`` and ``request`` attributes works, so replay records and the
store's ``ExecutionTrace`` rows can both be fed in.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

MIB = 1024**2
"""One mebibyte in bytes."""

FALLBACK_REQUEST = 2 * 1024**3
"""Allocation used when a run has no request and nothing is known yet (2 GiB)."""


class Run(Protocol):
    """What a sizer reads from a run (``usage`` and ``runtime_ms`` only in ``observe``)."""

    usage: float
    runtime_ms: float
    input_size: float | None
    request: float | None


@runtime_checkable
class Sizer(Protocol):
    """Per-task sizing state: allocate, retry after a failure, observe the result."""

    def allocate(self, run: Run) -> float:
        """Bytes to allocate for ``run`` before it starts."""

    def retry(self, run: Run, failed: float, failures: int) -> float:
        """Bytes for the next attempt after an attempt with ``failed`` bytes was killed."""

    def observe(self, run: Run) -> None:
        """Record the finished ``run`` (its usage and runtime are now known)."""


class SizingMethod(Protocol):
    """A named way of sizing tasks; makes one :class:`Sizer` per task type."""

    name: str
    description: str

    def new_sizer(self) -> Sizer:
        """A fresh sizer for a task type with no history."""


def request_or_fallback(run: Run, fallback: float = FALLBACK_REQUEST) -> float:
    """The run's own request (the workflow default), or ``fallback`` when it has none."""
    request = getattr(run, "request", None)
    return float(request) if request and request > 0 else float(fallback)


def doubled(failed: float) -> float:
    """The classic retry rule: twice the failed allocation."""
    return 2.0 * failed


class History:
    """Growable per-task arrays of finished runs (usage, runtime, input size, request).

    Appending is amortised O(1); the ``usage``/``runtime``/``input_size``/
    ``request`` properties are views of the filled part (missing values NaN).
    """

    __slots__ = ("_data", "n")
    _COLUMNS = ("usage", "runtime", "input_size", "request")

    def __init__(self, capacity: int = 64) -> None:
        self._data = np.full((len(self._COLUMNS), capacity), np.nan)
        self.n = 0

    def append(self, run: Run) -> None:
        """Add one finished run."""
        if self.n == self._data.shape[1]:
            grown = np.full((self._data.shape[0], 2 * self.n), np.nan)
            grown[:, : self.n] = self._data
            self._data = grown
        column = self._data[:, self.n]
        column[0] = run.usage
        column[1] = run.runtime_ms
        column[2] = np.nan if run.input_size is None else run.input_size
        column[3] = np.nan if run.request is None else run.request
        self.n += 1

    def extend(self, runs) -> History:
        """Add many finished runs; returns ``self``."""
        for run in runs:
            self.append(run)
        return self

    def __len__(self) -> int:
        return self.n

    def get_state(self) -> dict:
        """The runs as plain JSON lists (``None`` for unknown values), column name -> list."""
        return {name: [None if v != v else float(v) for v in self._data[i, : self.n]]
                for i, name in enumerate(self._COLUMNS)}

    @classmethod
    def from_state(cls, state: dict) -> History:
        """A history rebuilt from :meth:`get_state`; ``ValueError`` naming the bad column."""
        if not isinstance(state, dict):
            raise ValueError(f"history state must be a dict of columns {cls._COLUMNS}, got {type(state).__name__}")
        columns = []
        for name in cls._COLUMNS:
            values = state.get(name)
            if not isinstance(values, list):
                raise ValueError(f"history state: column {name!r} must be a list")
            try:
                columns.append([np.nan if v is None else float(v) for v in values])
            except (TypeError, ValueError):
                raise ValueError(f"history state: column {name!r} holds a non-number") from None
        if len({len(c) for c in columns}) != 1:
            raise ValueError(f"history state: columns {cls._COLUMNS} must have the same length")
        n = len(columns[0])
        if n and not np.all(np.isfinite(columns[0])):
            raise ValueError("history state: column 'usage' must hold finite numbers")
        history = cls(capacity=max(64, n))
        if n:
            history._data[:, :n] = np.array(columns)
        history.n = n
        return history

    @property
    def usage(self) -> np.ndarray:
        """Measured usage (bytes) of every run, oldest first."""
        return self._data[0, : self.n]

    @property
    def runtime(self) -> np.ndarray:
        """Runtime (ms) of every run, oldest first."""
        return self._data[1, : self.n]

    @property
    def input_size(self) -> np.ndarray:
        """Input size (bytes, NaN when unknown) of every run, oldest first."""
        return self._data[2, : self.n]

    @property
    def request(self) -> np.ndarray:
        """The workflow's own request (bytes, NaN when unknown) of every run."""
        return self._data[3, : self.n]
