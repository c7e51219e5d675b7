"""Task-instance listener: measure every Airflow task in its own process and store its trace.

Registered by :class:`mirrorscale.plugins.airflow.plugin.MirrorscalePlugin`.
Airflow 3 calls task-instance listeners inside the task's own process (the
task SDK's runner), so :class:`~mirrorscale.monitor.ProcessMonitor` watches
the process and its children from ``on_task_instance_running`` until the task
succeeds, fails or skips itself. The trace is then written with
:meth:`~mirrorscale.store.history.HistoryStore.record_trace` (``source =
"airflow-listener"``).

Outcomes: success (skipped tasks too, with ``features["skipped"] = True``);
``oom_killed`` when the task raised ``MemoryError``; ``timed_out`` for
Airflow's task timeout; ``failed`` otherwise. A task SIGKILLed from outside
gets no listener call at all (see DESIGN.md): in real task processes a
detached watcher (:mod:`mirrorscale.plugins.airflow.exit_watch`) stores it as
``oom_killed`` when the kernel's OOM killer took it (``features["killed_by"] =
"kernel-oom"``); other such endings are not recorded.

Mode ``enforce`` with a memory allocation (``executor_config["mirrorscale"]
["memory_bytes"]``): a :class:`~mirrorscale.guard.MemoryGuard`
stops the task when its process tree outgrows the allocation, as a container
limit would, and the run is recorded as ``oom_killed`` (also when the guard has
to SIGKILL the process: it stores the trace first).

Mapped task instances share one task in the store: each map index is one run,
stored as ``run_id = "<dag run id>#<map index>"`` (``features["map_index"]``).

Never in the way: every call is guarded. When anything in mirrorscale fails
(store unreachable, bad policy file, an unexpected attribute), the task runs
on untouched and **one** warning per task run is logged on the
``mirrorscale.airflow`` logger. Writing the trace is bounded by
``MIRRORSCALE_AIRFLOW_STORE_TIMEOUT`` seconds (default 20).

Workers that cannot write the store: when the direct write fails (unreachable,
timed out, read-only), the same trace is posted to the plugin's endpoint on
the api-server (:mod:`mirrorscale.plugins.airflow.relay`, bounded by
``MIRRORSCALE_AIRFLOW_RELAY_TIMEOUT``, 10 s), which stores it in its own store;
only when that fails too is the one warning logged, naming both failures.
``MIRRORSCALE_AIRFLOW_RELAY=0`` switches the relay off.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from airflow.listeners import hookimpl

__all__ = ["TaskRecorder", "recorder", "on_task_instance_running", "on_task_instance_success",
           "on_task_instance_failed", "on_task_instance_skipped"]

log = logging.getLogger("mirrorscale.airflow")

SOURCE = "airflow-listener"
STORE_TIMEOUT_ENV = "MIRRORSCALE_AIRFLOW_STORE_TIMEOUT"
DISABLE_ENV = "MIRRORSCALE_AIRFLOW_RECORD"
"""Set to ``0``/``false`` to switch recording off without uninstalling the plugin."""

RunKey = tuple[str, str, str, int, int]
"""``(dag_id, task_id, run_id, map_index, try_number)``."""


@dataclass
class _Run:
    """One task run being measured."""

    key: RunKey
    started_at: datetime
    monitor: Any = None
    features: dict[str, Any] = field(default_factory=dict)
    allocated: dict[str, Any] = field(default_factory=dict)
    mode: str = "observe"
    guard: Any = None
    watch: Any = None
    warned: bool = False


def _key(ti: Any) -> RunKey:
    map_index = getattr(ti, "map_index", -1)
    return (str(ti.dag_id), str(ti.task_id), str(ti.run_id),
            -1 if map_index is None else int(map_index), int(getattr(ti, "try_number", 1) or 1))


def store_run_id(key: RunKey) -> str:
    """The ``run_id`` stored for a run: the DAG run id, plus ``#<map index>`` for mapped instances."""
    _, _, run_id, map_index, _ = key
    return run_id if map_index < 0 else f"{run_id}#{map_index}"


def _enabled() -> bool:
    return os.environ.get(DISABLE_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


class TaskRecorder:
    """Measures task runs between the running and the terminal listener calls."""

    def __init__(self) -> None:
        self._runs: dict[RunKey, _Run] = {}
        self._lock = threading.Lock()

    # -- listener entry points -------------------------------------------

    def running(self, ti: Any) -> None:
        """Start measuring ``ti`` (called from ``on_task_instance_running``)."""
        if not _enabled() or getattr(ti, "task", None) is None:
            return  # switched off, or called outside a task process (no operator to measure)
        run = None
        try:
            run = _Run(key=_key(ti), started_at=datetime.now(timezone.utc))
            with self._lock:
                self._runs[run.key] = run
            run.watch = _start_exit_watch(run)  # before the monitor: the watcher is not part of the task
            run.monitor = _start_monitor()
            run.features, run.allocated, run.mode = _describe(ti, run)
            run.guard = self._guard(run)
            if run.watch is not None:
                run.watch.describe({"key": list(run.key), "started_at": run.started_at.isoformat(),
                                    "features": run.features, "allocated": run.allocated})
        except Exception as exc:  # noqa: BLE001 - never fail the task
            self._warn(run, "could not start measuring", exc)
        try:
            if _supervised_task_process():  # a real worker: size the downstream tasks before they start
                from mirrorscale.plugins.airflow.downstream import wrap_execute

                if wrap_execute(ti) and run is not None:
                    run.features["sizes_downstream"] = True
        except Exception as exc:  # noqa: BLE001 - never fail the task
            self._warn(run, "could not prepare downstream sizing", exc)

    def _guard(self, run: _Run) -> Any:
        """A :class:`MemoryGuard` when the task runs in mode ``enforce`` with a memory allocation."""
        limit = run.allocated.get("memory_bytes")
        if run.mode != "enforce" or not limit:
            return None
        from mirrorscale.guard import MemoryGuard

        run.features["memory_limit_bytes"] = int(limit)
        # Under `airflow dags test` the process is the CLI itself: never SIGKILL it.
        grace = 5.0 if _supervised_task_process() else None
        return MemoryGuard(int(limit), kill_children=True, grace_seconds=grace,
                           on_breach=lambda rss: self._killed(run, rss)).start()

    def _killed(self, run: _Run, rss: int) -> None:
        """The guard is about to SIGKILL the task: store its trace as ``oom_killed`` now."""
        with self._lock:
            if self._runs.pop(run.key, None) is None:
                return  # the task already ended and was recorded
        _watch_done(run)
        run.features["breach_rss_bytes"] = rss
        usage = run.monitor.stop()
        _record(run, _trace_row(run, usage, datetime.now(timezone.utc), "oom_killed", None))

    def finished(self, ti: Any, outcome: str, *, skipped: bool = False) -> None:
        """Stop measuring ``ti`` and store its trace with ``outcome``."""
        run = None
        try:
            with self._lock:
                run = self._runs.pop(_key(ti), None)
            if run is not None:
                _watch_done(run)  # a terminal call: the exit watcher has nothing to record
            if run is None or run.monitor is None:
                return  # not measured (disabled, or starting failed and already warned)
            ended_at = datetime.now(timezone.utc)
            if run.guard is not None:
                run.guard.stop()
                if run.guard.breached:  # whatever the task raised, it was stopped for memory
                    outcome = "oom_killed"
                    run.features["breach_rss_bytes"] = run.guard.breach_bytes
            usage = run.monitor.stop()
            if skipped:
                run.features["skipped"] = True
            branch = _branch(ti)
            _record(run, _trace_row(run, usage, ended_at, outcome, branch))
        except Exception as exc:  # noqa: BLE001 - never fail the task
            self._warn(run, "could not store the trace", exc)

    # -- helpers -----------------------------------------------------------

    @staticmethod
    def _warn(run: _Run | None, what: str, exc: BaseException) -> None:
        if run is not None:
            if run.warned:
                return
            run.warned = True
        where = "" if run is None else f" of {run.key[0]}.{run.key[1]} ({store_run_id(run.key)})"
        log.warning("mirrorscale %s%s: %s: %s; the task runs with its own settings",
                    what, where, type(exc).__name__, exc)


def _start_exit_watch(run: _Run) -> Any:
    """A :class:`~mirrorscale.plugins.airflow.exit_watch.Watch` of this task process, or None (see its ENV)."""
    from mirrorscale.plugins.airflow import exit_watch

    wanted = (os.environ.get(exit_watch.ENV) or "auto").strip().lower()
    if wanted in ("0", "false", "no", "off") or (wanted == "auto" and not _supervised_task_process()):
        return None
    try:
        return exit_watch.start()
    except Exception as exc:  # noqa: BLE001 - the task runs on; only kernel OOM kills go unrecorded
        TaskRecorder._warn(run, "could not watch for kernel OOM kills", exc)
        return None


def _watch_done(run: _Run) -> None:
    """Tell the exit watcher the run is recorded here (it then leaves without writing)."""
    if run.watch is not None:
        try:
            run.watch.done()
        except OSError:
            pass  # the watcher is gone: nothing would record twice


def _start_monitor() -> Any:
    from mirrorscale.monitor import ProcessMonitor

    return ProcessMonitor().start()


def _describe(ti: Any, run: _Run) -> tuple[dict[str, Any], dict[str, Any], str]:
    """Features (with the policy's named params), what Airflow allocated, and the policy's mode."""
    from mirrorscale.plugins.airflow.features import task_features

    names: tuple[str, ...] = ()
    mode = "observe"
    problem: Exception | None = None
    try:
        from mirrorscale.policy import load_policies

        policy = load_policies().for_task(run.key[0], run.key[1])
        names, mode = tuple(policy.features), policy.mode
    except Exception as exc:  # noqa: BLE001 - bad policy: record without its features, warn once
        problem = exc
    features = task_features(ti, run.started_at, names)
    allocated = _allocated(ti)
    if mode == "enforce" and "memory_bytes" not in allocated:
        try:  # the scheduler's hook or the api-server set it: the task SDK does not ship executor_config
            allocated.update(_stored_allocation(run))
        except Exception as exc:  # noqa: BLE001 - no allocation known: the task runs unguarded
            problem = problem or exc
    features.update({k: v for k, v in allocated.items() if k in ("priority_weight", "queue")})
    if run.key[3] >= 0:
        features["dag_run_id"] = run.key[2]
    if _in_process_test():
        features["in_process"] = True  # `airflow dags test`: the process is the whole CLI, not a worker
    if problem is not None:
        TaskRecorder._warn(run, "could not read the policy", problem)
    return features, allocated, mode


def _supervisor_comms_kind() -> str:
    """``"in-process"`` under ``airflow dags test``, ``"supervised"`` in a real task process, else ``""``."""
    try:
        from airflow.sdk.execution_time import task_runner

        comms = getattr(task_runner, "SUPERVISOR_COMMS", None)
    except Exception:  # noqa: BLE001
        return ""
    if comms is None:
        return ""
    return "in-process" if type(comms).__name__.startswith("InProcess") else "supervised"


def _in_process_test() -> bool:
    """True under ``airflow dags test`` (tasks run inside the CLI process, not a task process)."""
    return _supervisor_comms_kind() == "in-process"


def _supervised_task_process() -> bool:
    """True in a task process of its own (forked by the supervisor): the guard may SIGKILL it."""
    return _supervisor_comms_kind() == "supervised"


def _allocated(ti: Any) -> dict[str, Any]:
    """Pool, slots, priority, queue and any memory/CPU mirrorscale put into ``executor_config``."""
    task = ti.task
    found: dict[str, Any] = {}
    for name, attr in (("pool", "pool"), ("pool_slots", "pool_slots"), ("queue", "queue"),
                       ("priority_weight", "priority_weight")):
        value = getattr(ti, attr, None) or getattr(task, attr, None)
        if value is not None:
            found[name] = value
    config = getattr(task, "executor_config", None) or getattr(ti, "executor_config", None) or {}
    ours = config.get("mirrorscale") if isinstance(config, dict) else None
    if isinstance(ours, dict):
        for name in ("memory_bytes", "cpu"):
            if ours.get(name) is not None:
                found[name] = ours[name]
    return found


def _stored_allocation(run: _Run) -> dict[str, Any]:
    """The applied allocation of this very run from the store (memory, CPU, pool, slots), else nothing.

    Airflow 3 does not send a task instance's ``executor_config`` to the task
    process, so what the policy hook or the api-server endpoint applied is read
    back from the store, where the allocator saved it.
    """
    found: list[Any] = []
    _write_bounded(lambda: found.append(run_allocation(_store(), run.key[0], run.key[1], store_run_id(run.key))))
    allocation = found[0] if found else None
    if allocation is None or not allocation.applied:
        return {}
    out = {"memory_bytes": allocation.memory_bytes, "cpu": allocation.cpu, "allocation_id": allocation.id}
    if allocation.pool:
        out["pool"] = allocation.pool
    if allocation.pool_slots:
        out["pool_slots"] = allocation.pool_slots
    return {k: v for k, v in out.items() if v is not None}


def run_allocation(store: Any, dag_id: str, task_id: str, run_id: str) -> Any:
    """The newest :class:`~mirrorscale.store.models.Allocation` stored for one run of a task, or None."""
    from sqlalchemy import select

    from mirrorscale.store.models import Allocation, Task

    with store.reading() as session:
        return session.scalar(
            select(Allocation).join(Task)
            .where(Task.engine == "airflow", Task.pipeline_id == dag_id, Task.task_id == task_id,
                   Allocation.run_id == run_id)
            .order_by(Allocation.created_at.desc(), Allocation.id.desc()).limit(1))


def _branch(ti: Any) -> str | None:
    """The task ids a branch operator followed, comma-separated; None for other tasks."""
    task = ti.task
    if not getattr(task, "inherits_from_skipmixin", False) and not hasattr(task, "do_branch"):
        return None
    try:
        pushed = ti.xcom_pull(task_ids=ti.task_id, key="skipmixin_key", map_indexes=ti.map_index)
    except Exception:  # noqa: BLE001
        pushed = None
    if isinstance(pushed, dict) and "followed" in pushed:
        followed = pushed["followed"]
        return ",".join(sorted(str(t) for t in followed)) if followed else ""
    return None


def _write_bounded(write: Any, *, timeout: float | None = None, what: str = "the history store") -> None:
    """Run ``write`` in a thread; raise its error, or TimeoutError after ``timeout`` (default: the store timeout)."""
    if timeout is None:
        timeout = float(os.environ.get(STORE_TIMEOUT_ENV, "20") or 20)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            write()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            errors.append(exc)

    thread = threading.Thread(target=target, name="mirrorscale-store", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TimeoutError(f"{what} did not answer within {timeout:g} s")
    if errors:
        raise errors[0]


_STORES: dict[str, Any] = {}
_STORE_LOCK = threading.Lock()


def _store() -> Any:
    """One :class:`HistoryStore` per store URL and process (the schema is checked once)."""
    from mirrorscale import config

    url = config.database_url()
    with _STORE_LOCK:
        store = _STORES.get(url)
        if store is None:
            from mirrorscale.store.history import HistoryStore

            store = _STORES[url] = HistoryStore.open(url)
        return store


def _trace_row(run: _Run, usage: Any, ended_at: datetime, outcome: str, branch: str | None) -> dict[str, Any]:
    """The keywords of :meth:`~mirrorscale.store.history.HistoryStore.record_trace` for one run (samples as lists)."""
    from mirrorscale.plugins.airflow.features import input_size

    dag_id, task_id, _, _, try_number = run.key
    features = dict(run.features)
    features["baseline_rss_bytes"] = usage.baseline_rss_bytes
    features["peak_source"] = usage.peak_source
    samples = {"t_seconds": [round(s.t_seconds, 3) for s in usage.samples],
               "rss_bytes": [int(s.rss_bytes) for s in usage.samples],
               "cpu_seconds": [round(s.cpu_seconds, 4) for s in usage.samples]}
    allocated = run.allocated
    return {
        "engine": "airflow", "pipeline_id": dag_id, "task_id": task_id, "run_id": store_run_id(run.key),
        "try_number": try_number, "started_at": run.started_at, "ended_at": ended_at, "features": features,
        "input_size_bytes": input_size(features), "peak_rss_bytes": int(usage.peak_rss_bytes),
        "cpu_seconds": float(usage.cpu_seconds), "wall_seconds": float(usage.wall_seconds),
        "read_bytes": int(usage.read_bytes), "write_bytes": int(usage.write_bytes), "outcome": outcome,
        "branch": branch, "source": SOURCE, "samples": samples,
        "allocated_pool": allocated.get("pool"), "allocated_pool_slots": allocated.get("pool_slots"),
        "allocated_memory_bytes": allocated.get("memory_bytes"), "allocated_cpu": allocated.get("cpu"),
    }


def _record(run: _Run, row: dict[str, Any]) -> None:
    """Store the trace (bounded); when the store fails, relay it to the api-server (see :mod:`.relay`).

    Raises the store's error when relaying is off, :class:`~.relay.RelayFailed`
    naming both failures when the relay fails too.
    """
    from mirrorscale.store.models import TraceSamples

    try:
        _write_bounded(lambda: _store().record_trace(**{**row, "samples": TraceSamples(**row["samples"])}))
        return
    except Exception as store_error:  # noqa: BLE001 - unreachable, timed out, read-only: try the api-server
        from mirrorscale.plugins.airflow import relay

        if not relay.enabled():
            raise
        dag_id, task_id, dag_run_id, map_index, _ = run.key
        try:
            body = relay.payload(row, map_index)
            answer: list[Any] = []
            _write_bounded(lambda: answer.append(relay.relay_trace(dag_id, dag_run_id, task_id, body)),
                           timeout=relay.timeout() + 1, what="the api-server")
        except Exception as relay_error:  # noqa: BLE001 - both failed: the caller warns once
            raise relay.RelayFailed(store_error, relay_error) from None
        log.info("mirrorscale relayed the trace of %s.%s (%s) to the api-server (stored: %s); the store failed: "
                 "%s: %s", dag_id, task_id, row["run_id"], answer[0].get("stored"), type(store_error).__name__,
                 store_error)


def failure_outcome(error: Any) -> str:
    """``oom_killed`` for ``MemoryError``, ``timed_out`` for a task timeout, else ``failed``."""
    if isinstance(error, MemoryError):
        return "oom_killed"
    name = type(error).__name__ if isinstance(error, BaseException) else str(error or "")
    if "Timeout" in name and "Task" in name:
        return "timed_out"
    if isinstance(error, str) and "MemoryError" in error:
        return "oom_killed"
    return "failed"


recorder = TaskRecorder()
"""The process-wide recorder behind the hook functions below."""


@hookimpl
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    """Start measuring the task (Airflow calls this in the task's process before ``execute``)."""
    recorder.running(task_instance)


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    """Store the trace of a successful run."""
    recorder.finished(task_instance, "success")


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    """Store the trace of a failed run (``oom_killed`` / ``timed_out`` when the error says so)."""
    recorder.finished(task_instance, failure_outcome(error))


@hookimpl
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    """Store the trace of a run that skipped itself (it ran, so it cost something)."""
    recorder.finished(task_instance, "success", skipped=True)
