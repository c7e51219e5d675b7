"""Measure one Prefect task attempt where it runs and store it as an ``ExecutionTrace``.

:func:`measured` wraps a task's function; the wrapper travels with the task to the
thread, worker process or Dask worker that runs it (it is cloudpickled like the
task), so psutil reads the process that actually does the work:

===================  ===========================================================
runner               what ``peak_rss_bytes`` means
===================  ===========================================================
thread pool          the rise of the *flow process's* RSS above its level when the
                     task started. Tasks running at the same time in other threads
                     share that process, so their rises overlap: each one also sees
                     what the others allocate (``features["overlapping_tasks"]``
                     says how many ran at once), and memory another task frees
                     meanwhile hides this one's: a task that touched 40 MiB after
                     a 32 MiB neighbour had finished measured 15 MiB. Only a trace
                     with ``overlapping_tasks == 1`` is the task's own.
process pool         the rise of the worker process's RSS above its level when the
                     task started (the worker's own ~100 MB of imports excluded); a
                     worker runs one task at a time, so nothing overlaps.
Dask                 like the thread pool, per Dask worker process.
===================  ===========================================================

In the flow process (thread pools) only the process itself is measured, not its
children: they are the temporary Prefect API server, process-pool workers and the
like, and their memory is not the task's (a subprocess the task starts itself is
missed there). In a worker process the whole process tree is measured.

Tasks in mode ``enforce`` or ``recommend`` are sized per run by the allocator before
they start (:mod:`mirrorscale.plugins.prefect.sizing`; the decision and its reason
are kept in ``features["allocation"]``). Enforce-mode runs are admitted by that
allocation and run under a memory guard with the allocation as its limit
(:mod:`mirrorscale.guard`; sync tasks only); a run that outgrows it is stopped and
its trace says ``oom_killed``.

The process's full peak and its baseline are kept in the features
(``process_peak_rss_bytes``, ``rss_baseline_bytes``); the stored time series is
relative to the baseline as well.

Reused processes (process-pool and Dask/Ray workers, the flow process itself) keep
memory that earlier tasks freed: glibc's malloc holds freed heap chunks below a
live one instead of returning them, and a later task reuses them without any rise
in RSS or in the kernel's high-water mark, so neither a ``clear_refs`` reset nor a
rise above the baseline sees it (a worker that ran a 100 MiB task once measured
the same task again as 0 MiB). Each attempt therefore first hands the heap's free
memory back to the kernel (``malloc_trim(0)``, :func:`release_free_heap`; a no-op
without glibc) and then reads its baseline; what that released is kept in
``features["heap_released_bytes"]``. The memory guard's baseline is taken after it
too, so a task that reuses retained memory is still stopped at its allocation. A failure to measure or to store never changes
what the task does: the task's result or exception passes through unchanged, and a
store that cannot be written logs one warning per process.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from mirrorscale.monitor import ProcessMonitor, ResourceUsage

__all__ = ["MEASURED_ATTRIBUTE", "MeasureSpec", "measured", "open_store", "outcome_of", "release_free_heap",
           "trace_recorder"]

MEASURED_ATTRIBUTE = "__mirrorscale_measured__"
SOURCE = "prefect-runner"
logger = logging.getLogger("mirrorscale.prefect")

STORE_TIMEOUT = 15.0
"""Seconds a task or flow run waits for the history store at most (per open or write)."""
STORE_RETRY_SECONDS = 60.0
"""After the store failed, writes and opens in this process are skipped for this long."""
_WARNED: set[str] = set()
_ACTIVE: set[_Attempt] = set()
_ACTIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class MeasureSpec:
    """What the wrapper needs to know about its task; small and picklable."""

    store_url: str
    flow_name: str
    task_name: str
    features: tuple[str, ...] = ()
    runner: str = "threadpool"
    submit_pid: int = 0
    interval: float = 0.1
    sizing: Any = None  # a sizing.SizingSpec: size each run by the allocator (modes enforce/recommend)


def warn_once(key: str, message: str, *args: Any) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this process."""
    if key in _WARNED:
        return
    _WARNED.add(key)
    logger.warning(message, *args)


def trace_recorder(url: str, **options: Any) -> Any:
    """This process's :class:`~mirrorscale.recorder.TraceRecorder` for the store at ``url``.

    Created on first use with ``options`` (:data:`STORE_TIMEOUT`, :data:`STORE_RETRY_SECONDS`,
    no migration, warnings on the ``mirrorscale.prefect`` logger unless given): a store
    that is down costs a task at most the timeout and one warning per outage, and
    recording resumes when it is back.
    """
    from mirrorscale.recorder import recorder_for

    settings = {"timeout": STORE_TIMEOUT, "retry_after": STORE_RETRY_SECONDS, "migrate": False, "log": logger}
    return recorder_for(url, **{**settings, **options})


def open_store(url: str, *, migrate: bool = False) -> Any:
    """The :class:`~mirrorscale.store.history.HistoryStore` at ``url``, opened once per process (raises on trouble)."""
    return trace_recorder(url, migrate=migrate).store()


def outcome_of(exc: BaseException | None) -> str:
    """The trace outcome for an attempt that raised ``exc`` (None: success)."""
    if exc is None:
        return "success"
    if isinstance(exc, MemoryError):
        return "oom_killed"
    if isinstance(exc, TimeoutError):
        return "timed_out"
    return "failed"


def _run_ids() -> tuple[str | None, int, str | None]:
    """(task run id, attempt number, flow run id) from Prefect's task run context."""
    try:
        from prefect.context import TaskRunContext

        ctx = TaskRunContext.get()
    except Exception:  # noqa: BLE001
        ctx = None
    if ctx is None:
        return None, 1, None
    run = ctx.task_run
    flow_run = str(run.flow_run_id) if run.flow_run_id else None
    return str(run.id), max(1, int(run.run_count or 1)), flow_run


_MALLOC_TRIM: Any = None


def release_free_heap() -> int:
    """Return the C heap's free memory to the kernel (glibc ``malloc_trim(0)``); the RSS it released.

    0 without glibc (musl, macOS) or when nothing was held. Safe while other threads
    allocate: only free chunks are released.
    """
    global _MALLOC_TRIM
    if _MALLOC_TRIM is None:
        try:
            import ctypes

            _MALLOC_TRIM = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _MALLOC_TRIM = False
    if not _MALLOC_TRIM:
        return 0
    import psutil

    me = psutil.Process()
    before = me.memory_info().rss
    _MALLOC_TRIM(0)
    return max(0, before - me.memory_info().rss)


class _Attempt:
    """One measured attempt: started by :meth:`begin`, stored by :meth:`end`."""

    def __init__(self, spec: MeasureSpec, described: tuple[dict[str, Any], int | None], waited: float = 0.0,
                 sizing: Any = None):
        self.spec = spec
        self.waited = waited
        self.sizing = sizing
        self.started_at = datetime.now(timezone.utc)
        self.run_id, self.try_number, self.flow_run_id = _run_ids()
        self.features, self.input_size = described
        self.overlap = 1
        with _ACTIVE_LOCK:
            _ACTIVE.add(self)
            for attempt in _ACTIVE:
                attempt.overlap = max(attempt.overlap, len(_ACTIVE))
        self.monitor: ProcessMonitor | None = None
        self.heap_released = 0
        try:
            self.heap_released = release_free_heap()
            in_worker = os.getpid() != spec.submit_pid  # the flow process's children are not ours
            self.monitor = ProcessMonitor(interval=spec.interval, include_children=in_worker).start()
        except Exception as exc:  # noqa: BLE001
            warn_once(f"monitor:{exc!r}", "mirrorscale: cannot measure task %s: %r", spec.task_name, exc)

    def end(self, exc: BaseException | None) -> None:
        """Stop measuring and store the trace (never raises)."""
        with _ACTIVE_LOCK:
            _ACTIVE.discard(self)
        try:
            usage = self.monitor.stop() if self.monitor is not None else None
            trace = self._trace(usage, outcome_of(exc))
        except Exception as error:  # noqa: BLE001 - the task's own outcome must pass through
            warn_once(f"trace:{error!r}", "mirrorscale: could not describe a run of %s.%s (%r); the task is "
                      "not affected", self.spec.flow_name, self.spec.task_name, error)
            return
        trace_recorder(self.spec.store_url).record(**trace)  # never raises: one warning per outage

    def _trace(self, usage: ResourceUsage | None, outcome: str) -> dict[str, Any]:
        from mirrorscale.store.models import TraceSamples

        spec, ended_at = self.spec, datetime.now(timezone.utc)
        features = dict(self.features)
        features.update(runner=spec.runner, overlapping_tasks=self.overlap,
                        measured_in="flow process" if os.getpid() == spec.submit_pid else "worker process",
                        heap_released_bytes=self.heap_released, pid=os.getpid())
        if self.flow_run_id:
            features["flow_run_id"] = self.flow_run_id
        columns: dict[str, Any] = {}
        sizing = self.sizing
        if sizing is not None:
            features["allocation"] = dict(sizing.info)
            if sizing.info.get("forecast_bytes") is not None:
                features["forecast_bytes"] = sizing.info["forecast_bytes"]
                features["forecast_source"] = sizing.info["evidence"]
            if sizing.applied:
                columns["allocated_memory_bytes"] = sizing.memory_bytes
            if sizing.lifecycle is not None:
                features["mirror_lifecycle"] = sizing.lifecycle
            admission, mirror = sizing.admission, sizing.mirror
            if admission is not None:
                features["admission"] = {"via": admission.via, "limit": admission.limit, "units": admission.units,
                                         "waited_seconds": round(self.waited, 3), "reason": admission.reason}
                if admission.cpu is not None:
                    features["admission"]["cpu"] = admission.cpu
            if mirror is not None:
                features["mirror"] = {"shadow_id": mirror.shadow_id, "outcome": mirror.outcome,
                                      "seconds": round(mirror.seconds, 3),
                                      "predicted_peak_bytes": mirror.predicted_peak_bytes, "reason": mirror.reason}
        samples = None
        if usage is not None:
            base = usage.baseline_rss_bytes
            features.update(rss_baseline_bytes=base, process_peak_rss_bytes=usage.peak_rss_bytes,
                            peak_source=usage.peak_source)
            columns.update(peak_rss_bytes=usage.peak_rss_increase_bytes, cpu_seconds=usage.cpu_seconds,
                           wall_seconds=usage.wall_seconds, read_bytes=usage.read_bytes,
                           write_bytes=usage.write_bytes)
            samples = TraceSamples(t_seconds=[s.t_seconds for s in usage.samples],
                                   rss_bytes=[max(0, s.rss_bytes - base) for s in usage.samples],
                                   cpu_seconds=[s.cpu_seconds for s in usage.samples])
        else:
            columns["wall_seconds"] = (ended_at - self.started_at).total_seconds()
        return dict(
            engine="prefect", pipeline_id=spec.flow_name, task_id=spec.task_name,
            run_id=self.run_id or f"local-{id(self)}-{self.started_at.timestamp()}",
            try_number=self.try_number, started_at=self.started_at, ended_at=ended_at,
            features=features, input_size_bytes=self.input_size, outcome=outcome, source=SOURCE,
            samples=samples, **columns,
        )


def _describe(spec: MeasureSpec, fn: Callable[..., Any], args: tuple[Any, ...],
              kwargs: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """The run's features and input size from its resolved parameters (best effort)."""
    try:
        from mirrorscale.plugins.prefect.features import task_features

        bound = inspect.signature(fn).bind_partial(*args, **kwargs).arguments
        return task_features(bound, spec.features, datetime.now(timezone.utc))
    except Exception as exc:  # noqa: BLE001 - features are best effort
        warn_once(f"features:{exc!r}", "mirrorscale: could not describe the parameters of %s: %r",
                  spec.task_name, exc)
        return {}, None


def _size(spec: MeasureSpec, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
          described: tuple[dict[str, Any], int | None]) -> Any:
    """The run's :class:`~mirrorscale.plugins.prefect.sizing.RunSizing` (None: not sized; never raises)."""
    if spec.sizing is None:
        return None
    from mirrorscale.plugins.prefect.sizing import size_call

    return size_call(spec, fn, args, kwargs, described[0], _run_ids())


def _attributable() -> bool:
    """True while exactly one measured task runs in this process."""
    return len(_ACTIVE) == 1


def _guarded_call(sizing: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``fn``; with an applied allocation, under a :class:`~mirrorscale.guard.MemoryGuard` at its memory.

    Tasks may share this process, so the guard counts this process's growth since
    the task started and acts only while the task is the only one measured here.
    """
    if sizing is None or not sizing.applied or not sizing.memory_bytes:
        return fn(*args, **kwargs)
    from mirrorscale.guard import MemoryGuard, MemoryLimitExceeded, rise_usage

    guard = MemoryGuard(sizing.memory_bytes, usage=rise_usage(), attributable=_attributable).start()
    try:
        result = fn(*args, **kwargs)
        guard.stop()
        return result
    except MemoryLimitExceeded:
        guard.stop()
        if not guard.breached:
            raise
        raise MemoryLimitExceeded(guard.describe()) from None
    except BaseException:
        guard.stop()
        raise


def measured(fn: Callable[..., Any], spec: MeasureSpec) -> Callable[..., Any]:
    """``fn`` wrapped so that every call is measured and stored as a trace of ``spec``'s task.

    Keeps ``fn``'s name, signature and source (``functools.wraps``), so Prefect binds
    parameters and computes cache keys exactly as for ``fn``.
    """
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def measured_async(*args: Any, **kwargs: Any) -> Any:
            import asyncio

            from mirrorscale.plugins.prefect.admission import admitted_async

            described = _describe(spec, fn, args, kwargs)
            sizing = await asyncio.to_thread(_size, spec, fn, args, kwargs, described) if spec.sizing else None
            async with admitted_async(getattr(sizing, "admission", None)) as waited:
                attempt = _Attempt(spec, described, waited, sizing)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    attempt.end(exc)
                    raise
                attempt.end(None)
                return result

        wrapper: Callable[..., Any] = measured_async
    else:

        @functools.wraps(fn)
        def measured_sync(*args: Any, **kwargs: Any) -> Any:
            from mirrorscale.plugins.prefect.admission import admitted

            described = _describe(spec, fn, args, kwargs)
            sizing = _size(spec, fn, args, kwargs, described)
            with admitted(getattr(sizing, "admission", None)) as waited:
                attempt = _Attempt(spec, described, waited, sizing)
                try:
                    result = _guarded_call(sizing, fn, args, kwargs)
                except BaseException as exc:
                    attempt.end(exc)
                    raise
                attempt.end(None)
                return result

        wrapper = measured_sync
    setattr(wrapper, MEASURED_ATTRIBUTE, spec)
    return wrapper
