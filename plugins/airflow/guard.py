"""Memory enforcement for local executors: stop a task that outgrows its memory allocation.

Under LocalExecutor nothing limits a task's memory, so an allocation is only a
number. :class:`MemoryGuard` makes it bite, the way a container limit would:
a thread in the task process polls the RSS of the process tree every
``interval`` seconds and, once it exceeds ``limit_bytes``,

1. SIGKILLs the task's child processes (they hold the memory a container would
   have lost with them) and raises :class:`MemoryLimitExceeded` (a
   ``MemoryError``) in the thread running the task, so the task fails through
   Airflow's normal path and the listener records ``oom_killed``;
2. if the task is still over the limit ``grace_seconds`` later (a C call that
   never returns to Python cannot receive the exception), calls ``on_breach``
   (the listener stores the ``oom_killed`` trace there) and SIGKILLs the task
   process itself, unless ``kill_self`` is off (``airflow dags test``, where the
   process is the whole CLI).

Limits: the check runs between samples, and a thread cannot run while one C
call holds the GIL, so one huge allocation overshoots until it returns. The
limit covers the whole task process (about 150 MB before task code runs).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

import psutil

__all__ = ["MemoryGuard", "MemoryLimitExceeded", "tree_rss"]

log = logging.getLogger("mirrorscale.airflow")


class MemoryLimitExceeded(MemoryError):
    """Raised in the task's thread when the task outgrew its memory allocation."""


def tree_rss(pid: int) -> int:
    """RSS of ``pid`` and its descendants, in bytes (processes that vanish count 0)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total


def _raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> bool:
    """Schedule ``exc_type`` in thread ``thread_id`` (delivered at its next Python bytecode)."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(exc_type))
    return done == 1


class MemoryGuard:
    """Watches this process tree's memory against ``limit_bytes`` (see the module docstring)."""

    def __init__(self, limit_bytes: int, *, thread_id: int | None = None, interval: float = 0.05,
                 grace_seconds: float = 5.0, kill_self: bool = True,
                 on_breach: Callable[[int], None] | None = None) -> None:
        if limit_bytes <= 0:
            raise ValueError("limit_bytes must be positive")
        self.limit_bytes = int(limit_bytes)
        self.thread_id = threading.get_ident() if thread_id is None else thread_id
        self.interval = interval
        self.grace_seconds = grace_seconds
        self.kill_self = kill_self
        self.on_breach = on_breach
        self.breached_at: float | None = None
        self.breach_rss_bytes = 0
        self._pid = os.getpid()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def breached(self) -> bool:
        """True once the tree went over the limit."""
        return self.breached_at is not None

    def start(self) -> MemoryGuard:
        """Start watching; returns self."""
        self._thread = threading.Thread(target=self._run, name="mirrorscale-memory-guard", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (the task ended); safe to call twice and from the guard's own callback."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            rss = tree_rss(self._pid)
            if rss <= self.limit_bytes:
                continue
            if self.breached_at is None:
                self._first_breach(rss)
            elif time.monotonic() - self.breached_at >= self.grace_seconds:
                self._last_resort(rss)
                return

    def _first_breach(self, rss: int) -> None:
        self.breached_at, self.breach_rss_bytes = time.monotonic(), rss
        log.warning("mirrorscale: task memory %d MiB exceeds its allocation of %d MiB; stopping it",
                    rss >> 20, self.limit_bytes >> 20)
        _kill_children(self._pid)
        _raise_in_thread(self.thread_id, MemoryLimitExceeded)

    def _last_resort(self, rss: int) -> None:
        self.breach_rss_bytes = max(self.breach_rss_bytes, rss)
        if self.on_breach is not None:
            try:
                self.on_breach(self.breach_rss_bytes)
            except Exception as exc:  # noqa: BLE001 - the kill must happen anyway
                log.warning("mirrorscale: could not record the memory kill: %s: %s", type(exc).__name__, exc)
        if self.kill_self and not self._stop.is_set():  # not if the task ended meanwhile
            log.error("mirrorscale: task still over its memory allocation after %.1f s; killing it",
                      self.grace_seconds)
            os.kill(self._pid, signal.SIGKILL)


def _kill_children(pid: int) -> None:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            continue
