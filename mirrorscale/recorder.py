"""Engine-neutral recording of traces that never hurts the task: warn once, carry on, resume.

A task's own result must never depend on the history store. :class:`TraceRecorder`
wraps :meth:`HistoryStore.record_trace` so that

* a store that cannot be opened or written (server gone, connection cut, SQLite
  file locked by another writer or read-only) costs the task at most ``timeout``
  seconds and **one** warning per outage, never an exception;
* the next write after an outage is tried again (at most every ``retry_after``
  seconds), and when it succeeds an info line says that recording resumed;
* a write that timed out keeps going in its background thread and still lands
  if the store comes back (writes are idempotent: same task, run id and try).

::

    recorder = TraceRecorder(url)                 # or TraceRecorder(store=an_open_store)
    result = run_the_task()                       # the task's own result, untouched
    recorder.record(engine="airflow", pipeline_id="etl", task_id="load",
                    run_id=run_id, started_at=started, peak_rss_bytes=peak)

:func:`recorder_for` keeps one recorder per store URL and process (the Prefect
plugin's flow process and each of its worker processes share theirs).

=====================  =========================================================
store state            what ``record`` does
=====================  =========================================================
up                     stores the trace, returns its id (None: already stored)
down (first failure)   logs one warning, returns None
still down             logs at debug level only, returns None
back                   stores, logs "recording resumed" (info), returns the id
=====================  =========================================================
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_TIMEOUT", "TraceRecorder", "recorder_for"]

logger = logging.getLogger("mirrorscale.recorder")

DEFAULT_TIMEOUT = 20.0
"""Seconds a task waits for the store at most (the SQLite busy timeout is longer)."""


class TraceRecorder:
    """Records traces into the history store at ``url`` (or ``store``), never raising (see the module table).

    ``timeout`` bounds each write; ``retry_after`` (seconds) skips writes for a
    while after a failure, so a store that hangs does not cost every task the
    full timeout (0: try every write; it applies to :meth:`call` too). ``migrate``
    is passed to :meth:`HistoryStore.open`.
    """

    def __init__(self, url: str | None = None, *, store: Any = None, timeout: float = DEFAULT_TIMEOUT,
                 retry_after: float = 0.0, migrate: bool = True, log: logging.Logger | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self.timeout = timeout
        self.retry_after = retry_after
        self.migrate = migrate
        self.log = log or logger
        self._clock = clock
        self._store = store
        self._lock = threading.Lock()
        self._open_lock = threading.Lock()  # held while opening, which may hang: never by the caller's thread
        self.down_since: float | None = None
        """Monotonic time of the first failure of the current outage (None while the store is up)."""
        self.warnings = 0
        """Warnings logged so far (one per outage)."""
        self.failures = 0
        """Writes that failed or were skipped (over all outages)."""

    @property
    def down(self) -> bool:
        """True while the last write failed."""
        return self.down_since is not None

    def store(self) -> Any:
        """The open :class:`~mirrorscale.store.history.HistoryStore` (opened on first use)."""
        with self._open_lock:
            if self._store is None:
                from mirrorscale.store.history import HistoryStore

                self._store = HistoryStore.open(self.url, migrate=self.migrate)
            return self._store

    def record(self, **trace: Any) -> int | None:
        """:meth:`HistoryStore.record_trace` with ``trace``; the id, or None when not stored (never raises)."""
        if self._skipping():
            return None
        try:
            trace_id = self._bounded(lambda: self.store().record_trace(**trace))
        except Exception as exc:  # noqa: BLE001 - the task's own outcome must pass through
            self._failed(trace, exc)
            return None
        self._succeeded()
        return trace_id

    def call(self, what: str, write: Callable[[Any], Any]) -> Any:
        """Run ``write(store)`` under the same rules (e.g. ``lambda s: s.save(key, allocation)``); None on failure."""
        if self._skipping():
            return None
        try:
            result = self._bounded(lambda: write(self.store()))
        except Exception as exc:  # noqa: BLE001
            self._failed({"what": what}, exc)
            return None
        self._succeeded()
        return result

    # -- internals -----------------------------------------------------------

    _last_failure: float = 0.0

    def _skipping(self) -> bool:
        """True (and counted as a failure) while a recent failure says not to try yet."""
        if self.down_since is None or not self.retry_after or self._clock() - self._last_failure >= self.retry_after:
            return False
        with self._lock:
            self.failures += 1
        return True

    def _bounded(self, write: Callable[[], Any]) -> Any:
        """Run ``write`` in a daemon thread; its result, its error, or TimeoutError after ``timeout``."""
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = write()
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                outcome["error"] = exc

        thread = threading.Thread(target=target, name="mirrorscale-recorder", daemon=True)
        thread.start()
        thread.join(self.timeout)
        if thread.is_alive():
            raise TimeoutError(f"the history store did not answer within {self.timeout:g} s")
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    def _failed(self, trace: dict[str, Any], exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self._last_failure = self._clock()
            first = self.down_since is None
            if first:
                self.down_since = self._last_failure
                self.warnings += 1
        task = ".".join(str(trace.get(k, "?")) for k in ("pipeline_id", "task_id")) if "task_id" in trace else \
            str(trace.get("what", "a write"))
        if first:
            self.log.warning("mirrorscale: the history store is unavailable (%s: %s); %s is not recorded, tasks "
                             "run with their own settings, recording resumes when the store is back",
                             type(exc).__name__, _short(exc), task)
        else:
            self.log.debug("mirrorscale: still cannot record %s: %s", task, _short(exc))

    def _succeeded(self) -> None:
        if self.down_since is None:
            return
        with self._lock:
            if self.down_since is None:
                return
            seconds = self._clock() - self.down_since
            self.down_since = None
        self.log.info("mirrorscale: the history store is back after %.1f s; recording resumed", seconds)


_RECORDERS: dict[str, TraceRecorder] = {}
_RECORDERS_LOCK = threading.Lock()


def recorder_for(url: str, **options: Any) -> TraceRecorder:
    """This process's :class:`TraceRecorder` for the store at ``url``, created with ``options`` on first use
    (later calls get the same recorder whatever their ``options``)."""
    with _RECORDERS_LOCK:
        recorder = _RECORDERS.get(url)
        if recorder is None:
            recorder = _RECORDERS[url] = TraceRecorder(url, **options)
        return recorder


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
