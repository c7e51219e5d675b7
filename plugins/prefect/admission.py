"""Memory admission: start a task only when its predicted memory fits the worker.

A Prefect *global concurrency limit* counts memory instead of tasks: its size is the
worker's capacity in units (MiB by default), and every admitted task holds
``occupy = ceil(predicted need / unit)`` slots while it runs. Prefect starts a task
only when its slots are free, so the sum of the running tasks' allocations never
exceeds the capacity::

    capacity 8 GiB, unit 1 MiB  ->  limit "mirrorscale-memory-HOST" of 8192 slots
    task A predicted 3 GiB      ->  holds 3072 slots
    task B predicted 6 GiB      ->  waits until A has released its slots

Only tasks whose policy mode is ``enforce`` are admitted this way. Their need is the
memory of the run's :class:`~mirrorscale.store.models.Allocation`, decided by the
allocator from the run's resolved parameters (:mod:`mirrorscale.plugins.prefect.sizing`);
a run the allocator cannot size (cold start without ``default_memory``) holds no slots.
A single run larger than the whole capacity holds all of it (it runs alone).

With a ``RayTaskRunner``, or a ``DaskTaskRunner`` and
``PredictiveTaskRunner(dask_resource="MEMORY")``, the cluster's scheduler admits
instead: the need is set as Ray's ``memory``/``num_cpus`` options or a Dask resource
annotation when the task is submitted (:mod:`mirrorscale.plugins.prefect.placement`).

If the limit cannot be created or acquired (API trouble), the task runs anyway and
one warning is logged per process.
"""

from __future__ import annotations

import math
import re
import socket
import time
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Iterator

__all__ = ["Admission", "MemoryAdmission", "admitted", "admitted_async"]

MiB = 1024 * 1024


def _default_limit_name() -> str:
    host = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().lower()).strip("-") or "local"
    return f"mirrorscale-memory-{host}"


@dataclass(frozen=True)
class Admission:
    """What one task holds while it runs: ``units`` slots of the limit ``limit``.

    ``via`` is ``"concurrency-limit"`` (a Prefect global concurrency limit, held by
    the task's wrapper), ``"dask-resources"`` (``limit`` is then a Dask worker
    resource, ``units`` bytes, set as an annotation when the task is submitted) or
    ``"ray-options"`` (``units`` bytes of Ray's ``memory``, ``cpu`` its ``num_cpus``).
    """

    limit: str
    units: int
    unit_bytes: int
    reason: str
    via: str = "concurrency-limit"
    capacity_units: int = 0  # the limit's size (0: unknown); no admission may exceed it
    memory_bytes: int | None = None  # the allocation's memory (else units x unit_bytes)
    cpu: float | None = None  # cores requested from the cluster (Ray's num_cpus), None: its default

    @property
    def allocated_bytes(self) -> int:
        """The memory this admission stands for: the allocation's, else its slots'."""
        return self.memory_bytes if self.memory_bytes is not None else self.units * self.unit_bytes


class MemoryAdmission:
    """The memory limit of one worker, as a Prefect global concurrency limit.

    ``capacity`` is a byte count or size string (default: ``psutil.virtual_memory().total``),
    ``unit`` the bytes one slot stands for (default 1 MiB), ``name`` the limit's name
    (default ``mirrorscale-memory-<hostname>``: one limit per machine).
    """

    def __init__(self, *, capacity: int | str | None = None, unit: int | str = MiB, name: str | None = None) -> None:
        from mirrorscale.policy import parse_byte_size

        self.capacity = parse_byte_size(capacity) if capacity is not None else None
        self.unit = parse_byte_size(unit)
        if self.unit <= 0:
            raise ValueError("unit must be a positive byte size")
        self.name = name or _default_limit_name()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MemoryAdmission):
            return NotImplemented
        return (self.capacity, self.unit, self.name) == (other.capacity, other.unit, other.name)

    __hash__ = object.__hash__

    def capacity_bytes(self) -> int:
        """The configured capacity, or the machine's total memory."""
        if self.capacity is not None:
            return self.capacity
        import psutil

        return int(psutil.virtual_memory().total)

    @property
    def slots(self) -> int:
        """The size of the limit: whole units of capacity."""
        return max(1, self.capacity_bytes() // self.unit)

    def ensure_limit(self) -> None:
        """Create the global concurrency limit, or set its size to the current capacity."""
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            client.upsert_global_concurrency_limit_by_name(self.name, self.slots)

    def admission_for(self, need_bytes: int | None, reason: str) -> Admission | None:
        """The admission for a task needing ``need_bytes`` (None: not admission-controlled)."""
        if need_bytes is None:
            return None
        slots = self.slots
        units = min(slots, max(1, math.ceil(need_bytes / self.unit)))
        return Admission(limit=self.name, units=units, unit_bytes=self.unit, reason=reason, capacity_units=slots)


def _by_limit(admission: Admission | None) -> bool:
    """Whether ``admission`` is held on a Prefect global concurrency limit (else nothing to hold here)."""
    return admission is not None and admission.via == "concurrency-limit"


def _unavailable(admission: Admission, exc: BaseException) -> None:
    from mirrorscale.plugins.prefect.measure import warn_once

    warn_once(f"admission:{admission.limit}", "mirrorscale: memory admission on %s unavailable (%r); "
              "tasks run without it", admission.limit, exc)


@contextmanager
def admitted(admission: Admission | None) -> Iterator[float]:
    """Hold ``admission``'s slots around the block; yields the seconds spent waiting.

    If the limit cannot be acquired (API trouble) the block runs anyway, after one warning.
    """
    if not _by_limit(admission):
        yield 0.0
        return
    from prefect.concurrency.sync import concurrency

    started, held = time.perf_counter(), concurrency(admission.limit, occupy=admission.units)
    try:
        held.__enter__()
    except Exception as exc:  # noqa: BLE001 - admission trouble must not fail the task
        _unavailable(admission, exc)
        yield 0.0
        return
    with ExitStack() as release:
        release.push(held)  # released however the block ends
        yield time.perf_counter() - started


@asynccontextmanager
async def admitted_async(admission: Admission | None) -> AsyncIterator[float]:
    """:func:`admitted` for async tasks."""
    if not _by_limit(admission):
        yield 0.0
        return
    from prefect.concurrency.asyncio import concurrency

    started, held = time.perf_counter(), concurrency(admission.limit, occupy=admission.units)
    try:
        await held.__aenter__()
    except Exception as exc:  # noqa: BLE001 - admission trouble must not fail the task
        _unavailable(admission, exc)
        yield 0.0
        return
    async with AsyncExitStack() as release:
        release.push_async_exit(held)
        yield time.perf_counter() - started
