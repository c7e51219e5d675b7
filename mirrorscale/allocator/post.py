"""Post-processors of the allocator: headroom, policy bounds, pool slots, CPU, priority, queue.

Each is a small pure function of the estimate and the task's policy, applied in
this order (numeric effect on an example with ``headroom = 0.15``,
``memory = {min_allowed = 256MiB, max_allowed = 8GiB}``, ``pool_slot_memory = 1GiB``):

===============  ===================================================  ===========================
step             rule                                                 1.8 GiB estimate
===============  ===================================================  ===========================
headroom         x (1 + headroom)                                     2.07 GiB
bounds           clamp to [min_allowed, max_allowed] (always; VPA),   2.07 GiB (inside)
                 never below MEMORY_FLOOR (16 MiB)
pool slots       ceil(memory / pool_slot_memory), >= 1; 1 if unset    3 slots
CPU              predicted CPU s / wall s, up to 0.1 core, >= 0.1,    1.63 -> 1.7 cores
                 clamped to the cpu bounds
priority         1 + ceil(log2(1 + wall min)) + ceil(log2(1 + GiB)),  10 min, 2.07 GiB: 1 + 4 + 2
                 x 2 on the critical path, clamped to priority bounds = 7
size class       small < 1 GiB <= medium < 8 GiB <= large             medium
queue            the policy's queue; else the size class only when    None (or "medium")
                 the allocator routes by size (workers must listen)
===============  ===================================================  ===========================

Priority is "longest and largest first": starting long tasks early shortens
the run (longest-processing-time first), and placing large ones first packs
memory better (first-fit decreasing); tasks on the critical path count double.
"""

from __future__ import annotations

import math

from mirrorscale.policy import TaskPolicy, format_bytes

GIB = 1024**3
SIZE_CLASSES: tuple[tuple[str, float], ...] = (("small", 1 * GIB), ("medium", 8 * GIB), ("large", math.inf))
"""Size class of an allocation: the first class whose upper bound (exclusive) exceeds its memory."""
CPU_STEP = 0.1
"""CPU requests are rounded up to this many cores."""
MEMORY_FLOOR = 16 * 1024**2
"""The least memory an allocation gives when the policy sets no ``min_allowed`` (or the task's own
``default_memory``, when that is smaller: a user's own figure is never raised). Below it a task's RSS
rise is mostly noise (allocator arenas, a lazily imported module): a task whose history shows a few KiB
would be stopped by its memory guard for a 1 MiB log buffer. VPA's own floor is far higher (250 MiB
per pod); a task's rise measured by Prefect is often a few MiB, so the floor stays small."""


def with_headroom(memory: int, policy: TaskPolicy) -> int:
    """``memory`` x (1 + ``policy.headroom``)."""
    return math.ceil(memory * (1.0 + policy.headroom))


def within_bounds(memory: int, policy: TaskPolicy) -> tuple[int, str]:
    """``memory`` clamped to the policy's memory bounds (no lower bound: :data:`MEMORY_FLOOR`), and the
    phrase for the reason."""
    bounds = policy.memory
    floor = bounds.min_allowed
    if floor is None:
        floor = MEMORY_FLOOR if policy.default_memory is None else min(MEMORY_FLOOR, policy.default_memory)
    clamped = int(bounds.clamp(max(memory, floor)))
    lo = format_bytes(floor)
    hi = "inf" if bounds.max_allowed is None else format_bytes(bounds.max_allowed)
    if clamped > memory:
        return clamped, f"raised to {'min_allowed' if bounds.min_allowed is not None else 'the floor'} {lo}"
    if clamped < memory:
        return clamped, f"capped at max_allowed {hi}"
    return clamped, f"within [{lo}, {hi}]"


def pool_phrase(memory: int, policy: TaskPolicy) -> tuple[int, str]:
    """Pool slots for ``memory`` (:meth:`TaskPolicy.pool_slots_for`) and the phrase for the reason."""
    slots = policy.pool_slots_for(memory)
    if not policy.pool_slot_memory:
        return slots, f"1 slot of pool {policy.pool}" if policy.pool else "1 pool slot"
    pool = f" of pool {policy.pool}" if policy.pool else ""
    return slots, f"{slots} pool slot(s){pool} of {format_bytes(policy.pool_slot_memory)}"


def pool_size(capacity: int, pool_slot_memory: int) -> int:
    """Slots a memory pool should have so that it never admits more than ``capacity``: floor(capacity / unit)."""
    return max(1, int(capacity) // int(pool_slot_memory))


def cpu_request(cores: float | None, policy: TaskPolicy) -> float | None:
    """Cores to request: ``cores`` rounded up to :data:`CPU_STEP`, at least one step, clamped; None when unknown."""
    if cores is None or not math.isfinite(cores):
        return policy.cpu.clamp(policy.cpu.min_allowed) if policy.cpu.min_allowed is not None else None
    stepped = round(max(CPU_STEP, math.ceil(round(cores / CPU_STEP, 6)) * CPU_STEP), 3)
    return float(policy.cpu.clamp(stepped))  # clamp last: bounds hold exactly


def priority_weight(memory: int, wall_seconds: float | None, policy: TaskPolicy, *,
                    critical_path: bool = False) -> int:
    """Longest and largest first (see the module table), clamped to the policy's priority bounds."""
    wall_term = math.ceil(math.log2(1.0 + (wall_seconds or 0.0) / 60.0))
    memory_term = math.ceil(math.log2(1.0 + memory / GIB))
    weight = (1 + wall_term + memory_term) * (2 if critical_path else 1)
    return int(policy.priority.clamp(weight))


def size_class(memory: int) -> str:
    """``small``, ``medium`` or ``large`` (:data:`SIZE_CLASSES`)."""
    return next(name for name, upper in SIZE_CLASSES if memory < upper)


def queue_for(memory: int, policy: TaskPolicy, *, route_by_size: bool) -> str | None:
    """The policy's queue; else the size class when routing by size; else None (the engine's default)."""
    if policy.queue:
        return policy.queue
    return size_class(memory) if route_by_size else None
