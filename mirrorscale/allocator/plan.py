"""Capacity planning across the tasks about to run: waves, never more memory at once than the capacity.

``plan(decisions, capacity)`` shrinks *concurrency*, never allocations. Tasks
are ordered by priority (then memory, largest first) and placed first-fit into
**waves**: a wave is a set of tasks that may run at the same time, and the
memory of every wave sums to at most ``capacity``. Wave 1 starts now; a task
of wave k starts when memory of earlier waves is freed. A task whose own
allocation exceeds the whole capacity is **held** (no wave): running it would
break the promise, and shrinking it below its prediction would kill it.

The plan is written into each allocation's ``executor_options["plan"]``
(``wave``, ``waves``, ``capacity``, ``wave_memory``, ``held``) and, when it had
to split, appended to the reason. Engines enforce it through memory pools:
with ``pool_slots = ceil(memory / unit)`` and a pool of ``floor(capacity /
unit)`` slots (:func:`~mirrorscale.allocator.post.pool_size`) the pool admits
only sets whose slots fit, and slots over-count memory, so the running memory
never exceeds the capacity either: the waves are what that pool would do.

====================================  =====================================
tasks (capacity 10 GiB)               plan
====================================  =====================================
4 + 3 + 2 GiB                         one wave (9 GiB): nothing changes
6 + 5 + 4 + 3 GiB                     wave 1: 6 + 4 (10), wave 2: 5 + 3 (8)
12 GiB + 2 GiB                        12 GiB held; wave 1: 2 GiB
====================================  =====================================
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mirrorscale.policy import format_bytes

GIB = 1024**3
DEFAULT_RESERVE_FRACTION = 0.10
DEFAULT_RESERVE_MIN = 1 * GIB


def default_capacity(*, reserve: int | None = None) -> int:
    """Memory the workers have: this machine's total minus a reserve (default max(1 GiB, 10 %))."""
    import psutil

    total = int(psutil.virtual_memory().total)
    if reserve is None:
        reserve = max(DEFAULT_RESERVE_MIN, int(total * DEFAULT_RESERVE_FRACTION))
    return max(0, total - reserve)


def _order(decisions: Sequence[Any]) -> list[Any]:
    return sorted((a for a in decisions if a.memory_bytes), key=lambda a: (-(a.priority_weight or 0), -a.memory_bytes))


def waves(decisions: Sequence[Any], capacity: int) -> tuple[list[list[Any]], list[Any]]:
    """First-fit decreasing into waves whose memory sums to at most ``capacity``; also the held tasks."""
    placed: list[list[Any]] = []
    sums: list[int] = []
    held = []
    for allocation in _order(decisions):
        need = int(allocation.memory_bytes)
        if need > capacity:
            held.append(allocation)
            continue
        slot = next((i for i, used in enumerate(sums) if used + need <= capacity), None)
        if slot is None:
            placed.append([])
            sums.append(0)
            slot = len(placed) - 1
        placed[slot].append(allocation)
        sums[slot] += need
    return placed, held


def plan(decisions: Sequence[Any], capacity: int) -> list[Any]:
    """Annotate ``decisions`` (allocations, changed in place and returned in their order) with waves.

    Allocations without memory (mode observe in cold start) are left as they are.
    """
    capacity = int(capacity)
    placed, held = waves(decisions, capacity)
    total = sum(int(a.memory_bytes or 0) for a in decisions)
    split = len(placed) > 1 or bool(held)
    for number, wave in enumerate(placed, start=1):
        wave_memory = sum(int(a.memory_bytes) for a in wave)
        for allocation in wave:
            _annotate(allocation, {"wave": number, "waves": len(placed), "capacity": capacity,
                                   "wave_memory": wave_memory, "held": False})
            if split:
                _note(allocation, f"plan: wave {number} of {len(placed)} ({format_bytes(total)} predicted "
                                  f"> capacity {format_bytes(capacity)})")
    for allocation in held:
        _annotate(allocation, {"wave": None, "waves": len(placed), "capacity": capacity,
                               "wave_memory": int(allocation.memory_bytes), "held": True})
        _note(allocation, f"plan: held, needs {format_bytes(allocation.memory_bytes)} alone, more than "
                          f"the capacity {format_bytes(capacity)}")
    return list(decisions)


def _annotate(allocation: Any, plan_info: dict[str, Any]) -> None:
    allocation.executor_options = {**(allocation.executor_options or {}), "plan": plan_info}


def _note(allocation: Any, text: str) -> None:
    allocation.reason = f"{allocation.reason}; {text}" if allocation.reason else text
