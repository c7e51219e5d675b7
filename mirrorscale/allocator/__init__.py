"""The allocator: sizes task runs before they start (memory, CPU, pool slots, priority, queue).

See :mod:`.core` for :class:`Allocator` and the modes, :mod:`.estimate` for the
history-or-shadow choice and the OOM bump, :mod:`.post` for headroom, bounds and
the rest, and :mod:`.plan` for planning many tasks against a memory capacity.
"""

from __future__ import annotations

from mirrorscale.allocator.core import Allocator, Request
from mirrorscale.allocator.estimate import MemoryEstimate
from mirrorscale.allocator.history import HistoryEstimate, TaskModel
from mirrorscale.allocator.plan import default_capacity, plan, waves
from mirrorscale.allocator.post import pool_size, size_class

__all__ = ["Allocator", "HistoryEstimate", "MemoryEstimate", "Request", "TaskModel", "default_capacity",
           "plan", "pool_size", "size_class", "waves"]
