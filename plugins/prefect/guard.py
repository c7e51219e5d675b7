"""Stop a task whose memory outgrows its allocation, as a container's OOM killer would.

An enforce-mode task is admitted with an allocation (see
:mod:`mirrorscale.plugins.prefect.admission`). While it runs, a watchdog thread reads
the process's RSS every :data:`INTERVAL` seconds; when the rise above the task's
start exceeds the allocation, it raises :class:`TaskOutOfMemory` (a ``MemoryError``)
in the task's thread. The task fails, and its trace is recorded with outcome
``oom_killed``, so the next allocation can be bumped.

Limits of doing this in Python, stated plainly:

- the exception is delivered when the task's thread next runs Python bytecode, so a
  single long C call (one huge ``numpy`` operation) finishes first;
- the rise is the whole process's: the guard acts only while the task is the only
  measured task in its process (process-pool workers always; thread pools when tasks
  do not overlap), so one task never pays for another's memory;
- code that catches ``MemoryError`` (or bare ``Exception``) itself can swallow it.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Callable

__all__ = ["INTERVAL", "MemoryGuard", "TaskOutOfMemory"]

INTERVAL = 0.05
"""Seconds between two RSS readings of the guard."""


class TaskOutOfMemory(MemoryError):
    """Raised in a task that used more memory than it was allocated."""


def _rss() -> int:
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


class MemoryGuard:
    """Watch the calling thread's task; see the module docstring.

    ``limit_bytes`` is the allocation; ``attributable()`` says whether the process's
    rise may be blamed on this task right now.
    """

    def __init__(self, limit_bytes: int, *, attributable: Callable[[], bool], interval: float = INTERVAL) -> None:
        self.limit_bytes = int(limit_bytes)
        self.attributable = attributable
        self.interval = interval
        self.tripped_at: int | None = None  # the rise (bytes) that tripped the guard
        self._thread_id = threading.get_ident()
        self._baseline = 0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._watcher: threading.Thread | None = None

    def start(self) -> MemoryGuard:
        """Read the baseline and start watching (only Linux ``/proc`` is supported)."""
        self._baseline = _rss()
        if self._baseline:
            self._watcher = threading.Thread(target=self._watch, name="mirrorscale-memory-guard", daemon=True)
            self._watcher.start()
        return self

    def _watch(self) -> None:
        while not self._stopped.wait(self.interval):
            rise = _rss() - self._baseline
            if rise <= self.limit_bytes or not self.attributable():
                continue
            with self._lock:
                if self._stopped.is_set():
                    return
                self.tripped_at = rise
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id),
                                                           ctypes.py_object(TaskOutOfMemory))
            return

    def stop(self) -> None:
        """Stop watching; a stop that the task outran is cancelled (call from the task's thread)."""
        try:
            with self._lock:
                self._stopped.set()
                if self.tripped_at is not None:  # raised but maybe not delivered yet: cancel it
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id), None)
        except TaskOutOfMemory:  # delivered right here, after the task had finished: dropped
            self._stopped.set()
        if self._watcher is not None:
            self._watcher.join()

    def describe(self) -> str:
        """Why the task was stopped."""
        from mirrorscale.policy import format_bytes

        return (f"task used {format_bytes(self.tripped_at or 0)} more than when it started, above its "
                f"allocation of {format_bytes(self.limit_bytes)}: stopped as a container would be (OOM)")
