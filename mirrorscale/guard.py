"""Make a memory allocation bite: stop a task that outgrows it, as a container's OOM killer would.

Under a local executor nothing limits a task's memory, so an allocation is only
a number. :class:`MemoryGuard` watches the task from a thread in its own
process and, once ``usage()`` exceeds ``limit_bytes``:

1. SIGKILLs the task's child processes when ``kill_children`` is set (a
   container would have lost them too);
2. raises :class:`MemoryLimitExceeded` (a ``MemoryError``) in the task's
   thread, so the task fails through the engine's normal path and its trace
   is recorded as ``oom_killed``;
3. with ``grace_seconds`` set, if usage is still over the limit that much
   later (a C call that never returns to Python cannot receive the
   exception), calls ``on_breach`` and SIGKILLs the task process itself.

Two ways to measure, one per engine:

========================  ====================================================
``usage``                 counts
========================  ====================================================
:func:`tree_usage`        RSS of the process and its descendants (Airflow: one
                          task per process; the limit covers the whole process)
:func:`rise_usage`        growth of this process's RSS since the guard started
                          (Prefect: tasks share a worker; pair it with
                          ``attributable`` so a task never pays for another's)
========================  ====================================================

Limits of doing this in Python: the exception lands at the task thread's next
bytecode, so one long C call finishes first; code that catches ``MemoryError``
itself can swallow it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

__all__ = ["MemoryGuard", "MemoryLimitExceeded", "rise_usage", "tree_usage"]

log = logging.getLogger("mirrorscale.guard")

INTERVAL = 0.05
"""Seconds between two readings of the guard."""


class MemoryLimitExceeded(MemoryError):
    """Raised in a task that used more memory than it was allocated."""


def tree_usage(pid: int | None = None) -> Callable[[], int]:
    """A ``usage`` that reads the RSS of ``pid`` (default: this process) and its descendants."""
    import psutil

    root = os.getpid() if pid is None else pid

    def usage() -> int:
        try:
            process = psutil.Process(root)
            procs = [process, *process.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total

    return usage


def _own_rss() -> int:
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def rise_usage() -> Callable[[], int]:
    """A ``usage`` that reads how much this process's RSS grew since this call."""
    baseline = _own_rss()
    return lambda: max(0, _own_rss() - baseline)


def _raise_in_thread(thread_id: int, exc_type: type[BaseException] | None) -> None:
    """Schedule ``exc_type`` in thread ``thread_id`` (None cancels a pending one)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), None if exc_type is None else ctypes.py_object(exc_type)
    )


class MemoryGuard:
    """Watch the calling thread's task against ``limit_bytes`` (see the module docstring)."""

    def __init__(
        self,
        limit_bytes: int,
        *,
        usage: Callable[[], int] | None = None,
        attributable: Callable[[], bool] = lambda: True,
        kill_children: bool = False,
        grace_seconds: float | None = None,
        on_breach: Callable[[int], None] | None = None,
        interval: float = INTERVAL,
        thread_id: int | None = None,
    ) -> None:
        if limit_bytes <= 0:
            raise ValueError("limit_bytes must be positive")
        self.limit_bytes = int(limit_bytes)
        self.usage = usage or tree_usage()
        self.attributable = attributable
        self.kill_children = kill_children
        self.grace_seconds = grace_seconds
        self.on_breach = on_breach
        self.interval = interval
        self.thread_id = threading.get_ident() if thread_id is None else thread_id
        self.breach_bytes: int | None = None
        """The usage that tripped the guard (None while within the limit)."""
        self._breached_at = 0.0
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def breached(self) -> bool:
        """True once the task went over its limit."""
        return self.breach_bytes is not None

    def start(self) -> MemoryGuard:
        """Start watching; returns self."""
        self._watcher = threading.Thread(target=self._watch, name="mirrorscale-memory-guard", daemon=True)
        self._watcher.start()
        return self

    def stop(self) -> None:
        """Stop watching; call from the task's thread when the task ends (safe to call twice).

        A stop exception the task outran (raised but not yet delivered) is cancelled.
        """
        try:
            with self._lock:
                self._stopped.set()
                if self.breached:
                    _raise_in_thread(self.thread_id, None)
        except MemoryLimitExceeded:  # delivered right here, after the task had finished: dropped
            self._stopped.set()
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join()

    def describe(self) -> str:
        """Why the task was stopped, in one sentence."""
        from mirrorscale.policy import format_bytes

        return (f"task memory reached {format_bytes(self.breach_bytes or 0)}, above its allocation of "
                f"{format_bytes(self.limit_bytes)}: stopped as a container would be (OOM)")

    def _watch(self) -> None:
        while not self._stopped.wait(self.interval):
            used = self.usage()
            if used <= self.limit_bytes or not self.attributable():
                continue
            if not self.breached:
                self._first_breach(used)
                if self.grace_seconds is None:
                    return
            elif time.monotonic() - self._breached_at >= self.grace_seconds:
                self._last_resort(used)
                return

    def _first_breach(self, used: int) -> None:
        with self._lock:
            if self._stopped.is_set():
                return
            self.breach_bytes, self._breached_at = used, time.monotonic()
            log.warning("mirrorscale: %s; stopping it", self.describe())
            if self.kill_children:
                _kill_children(os.getpid())
            _raise_in_thread(self.thread_id, MemoryLimitExceeded)

    def _last_resort(self, used: int) -> None:
        self.breach_bytes = max(self.breach_bytes or 0, used)
        if self.on_breach is not None:
            try:
                self.on_breach(self.breach_bytes)
            except Exception as exc:  # noqa: BLE001 - the kill must happen anyway
                log.warning("mirrorscale: could not record the memory kill: %s: %s", type(exc).__name__, exc)
        if not self._stopped.is_set():  # not if the task ended meanwhile
            log.error("mirrorscale: task still over its memory allocation after %.1f s; killing it",
                      self.grace_seconds)
            os.kill(os.getpid(), signal.SIGKILL)


def _kill_children(pid: int) -> None:
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            continue
