"""``PredictiveTaskRunner``: wrap any Prefect task runner and record every task it runs.

::

    from prefect import flow
    from prefect.task_runners import ProcessPoolTaskRunner
    from mirrorscale.plugins.prefect import PredictiveTaskRunner

    @flow(task_runner=PredictiveTaskRunner(inner=ProcessPoolTaskRunner(max_workers=2)))
    def etl(): ...

The wrapper hands every ``.submit()``/``.map()`` to the inner runner (thread pool by
default; process pool, ``DaskTaskRunner`` and others work the same way) with the task's
function wrapped by :func:`~mirrorscale.plugins.prefect.measure.measured`, so each
attempt is measured in the process that runs it and stored as an ``ExecutionTrace``
(engine ``prefect``, pipeline = flow name, task = task name, run id = task run id).
Direct calls (``my_task(x)``) do not reach a task runner and are not recorded.

Tasks whose policy mode is ``enforce`` or ``recommend`` are sized per run by the
allocator from their resolved parameters (:mod:`mirrorscale.plugins.prefect.sizing`;
volatile ones are mirrored first when the mirror life cycle says so). Enforce-mode
runs are admitted by memory: they hold ``ceil(allocation / 1 MiB)`` slots of a global
concurrency limit sized to the workers' capacity
(:mod:`mirrorscale.plugins.prefect.admission`); with a ``RayTaskRunner`` they are
submitted with Ray's ``memory``/``num_cpus`` options, with a ``DaskTaskRunner`` and
``dask_resource`` with a Dask resource annotation, and the cluster admits them
(:mod:`mirrorscale.plugins.prefect.placement`). A memory guard stops a run that
outgrows its allocation. A process pool on Prefect's temporary API server gets that
server shared with its workers (:mod:`mirrorscale.plugins.prefect.shared_api`), or
admission would not be shared between them.

When the flow run ends it publishes the run's forecast-vs-actual table and a markdown
explanation as artifacts (:mod:`mirrorscale.plugins.prefect.artifacts`).

If the store cannot be opened (unreachable server, unwritable SQLite file) the runner
logs one warning and behaves exactly like its inner runner.
"""

from __future__ import annotations

import copy
import logging
import os
import threading
from typing import Any, Iterable

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from mirrorscale.plugins.prefect.admission import MemoryAdmission
from mirrorscale.plugins.prefect.measure import MEASURED_ATTRIBUTE, MeasureSpec, measured, trace_recorder, warn_once
from mirrorscale.plugins.prefect.mirroring import plan_mirror
from mirrorscale.plugins.prefect.placement import placement_for
from mirrorscale.plugins.prefect.policy import resolve_policy
from mirrorscale.plugins.prefect.shared_api import flow_api_for_workers
from mirrorscale.plugins.prefect.sizing import SizingSpec

__all__ = ["PredictiveTaskRunner", "STORE_OPEN_TIMEOUT"]

logger = logging.getLogger("mirrorscale.prefect")

STORE_OPEN_TIMEOUT = 15.0
"""Seconds the runner waits for the store to open before running without it."""


def _open_store_or_none(url: str, timeout: float) -> Any:
    """The store at ``url`` (schema created or upgraded), or None.

    Through this process's trace recorder (:func:`~mirrorscale.plugins.prefect.measure.trace_recorder`):
    an outage logs one warning, and for ``STORE_RETRY_SECONDS`` after a failure flow
    runs do not wait for an unreachable server again.
    """
    recorder = trace_recorder(url, migrate=True, timeout=timeout)
    return recorder.call("this flow run", lambda store: store)


class PredictiveTaskRunner(TaskRunner):  # type: ignore[type-arg]
    """A task runner that records an ``ExecutionTrace`` of every task its inner runner runs.

    ``inner`` is any Prefect task runner (default: ``ThreadPoolTaskRunner()``).
    ``store_url`` overrides ``MIRRORSCALE_DATABASE_URL``; ``policy_file`` overrides the
    default policy lookup (:func:`mirrorscale.policy.load_policies`). ``artifacts``
    turns the per-flow-run artifacts on or off. ``interval`` is the psutil sampling
    period in seconds. ``admission`` is the memory admission applied to tasks whose
    policy mode is ``enforce`` (:mod:`mirrorscale.plugins.prefect.admission`):
    ``True`` for this machine's memory, a :class:`MemoryAdmission` to configure it,
    ``False`` for none. ``dask_resource`` names a Dask worker resource counted in bytes:
    with a ``DaskTaskRunner`` inner runner, enforce-mode tasks are then annotated with
    their predicted need of it instead of holding the concurrency limit. With a
    ``RayTaskRunner`` inner runner they are always submitted with Ray's ``memory`` (and,
    when the allocation names one, ``num_cpus``) options instead.
    """

    def __init__(self, inner: TaskRunner | None = None, *, store_url: str | None = None,  # type: ignore[type-arg]
                 policy_file: str | None = None, artifacts: bool = True, interval: float = 0.1,
                 admission: MemoryAdmission | bool = True, dask_resource: str | None = None) -> None:
        super().__init__()
        self.inner = inner if inner is not None else ThreadPoolTaskRunner()
        self.store_url = store_url
        self.policy_file = policy_file
        self.artifacts = artifacts
        self.interval = interval
        self.admission = admission
        self.dask_resource = dask_resource
        self._reset()

    def _reset(self) -> None:
        self._store: Any = None
        self._url: str | None = None
        self._policies: Any = None
        self._flow_run_id: Any = None
        self._flow_name: str | None = None
        self._flow_input: int | None = None  # the flow run's parameters' size
        self._meter: Any = None  # flow_runs.FlowRunMeter while the store is available
        self._wrapped: dict[int, tuple[Any, Any]] = {}
        self._submitted: dict[str, str] = {}  # task run id -> task name
        self._notes: dict[str, str] = {}  # task name -> why it may (not) be mirrored
        self._memory: MemoryAdmission | None = None  # set once the limit exists for this run
        self._memory_checked = False
        self._placement: Any = None  # placement.DaskPlacement/RayPlacement, False: none (per flow run)
        self._workers_api: Any = None  # shared_api.flow_api_for_workers while started
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Flows (and with them this runner) are cloudpickled into process-pool workers
        # and subprocess flow runs: keep the configuration, drop the per-run state.
        keep = ("inner", "store_url", "policy_file", "artifacts", "interval", "admission", "dask_resource",
                "logger", "_started")
        return {key: self.__dict__[key] for key in keep if key in self.__dict__}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PredictiveTaskRunner):
            return NotImplemented
        mine = (self.inner, self.store_url, self.policy_file, self.artifacts, self.interval, self.admission,
                self.dask_resource)
        theirs = (other.inner, other.store_url, other.policy_file, other.artifacts, other.interval, other.admission,
                  other.dask_resource)
        return mine == theirs

    __hash__ = object.__hash__

    @property
    def name(self) -> str:
        """``predictive`` (the inner runner's name is in :attr:`inner`)."""
        return "predictive"

    def duplicate(self) -> PredictiveTaskRunner:
        """A fresh, unstarted copy with the same configuration (Prefect calls it per flow run)."""
        return type(self)(inner=self.inner.duplicate(), store_url=self.store_url, policy_file=self.policy_file,
                          artifacts=self.artifacts, interval=self.interval, admission=self.admission,
                          dask_resource=self.dask_resource)

    def __enter__(self) -> PredictiveTaskRunner:
        super().__enter__()
        workers_api = flow_api_for_workers(self.inner)
        workers_api.__enter__()
        try:
            self.inner.__enter__()
        except BaseException as exc:
            self._started = False
            workers_api.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._reset()
        self._workers_api = workers_api
        from mirrorscale import config

        self._url = self.store_url or config.database_url()
        self._store = _open_store_or_none(self._url, STORE_OPEN_TIMEOUT)
        if self._store is not None:
            self._policies = self._load_policies()
            from mirrorscale.plugins.prefect.flow_runs import FlowRunMeter

            self._meter = FlowRunMeter(self.interval).start()
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        try:
            self.inner.__exit__(exc_type, exc_value, traceback)  # waits for running tasks
        finally:
            super().__exit__(exc_type, exc_value, traceback)
            if self._workers_api is not None:
                self._workers_api.__exit__(exc_type, exc_value, traceback)
                self._workers_api = None
            if self._store is not None and self._submitted:
                self._record_flow_run("failed" if exc_type is not None else "success")
                if self.artifacts:
                    self._publish()
            if self._meter is not None:
                self._meter.stop()

    def cancel_all(self) -> None:
        """Cancel the inner runner's tasks (Prefect calls this when a flow run is cancelled)."""
        cancel = getattr(self.inner, "cancel_all", None)
        if callable(cancel):
            cancel()

    def submit(self, task: Any, parameters: dict[str, Any], wait_for: Iterable[Any] | None = None,
               dependencies: dict[str, Any] | None = None) -> Any:
        """Submit ``task`` to the inner runner, measured when the store is available."""
        if not self._started:
            raise RuntimeError("The task runner must be started before submitting work.")
        prepared = self._prepare(task)
        spec = getattr(prepared.fn, MEASURED_ATTRIBUTE, None) if prepared is not task else None
        placement = self._cluster() if getattr(spec, "sizing", None) is not None else None
        admission = None
        if placement is not None:
            prepared, admission = self._placed(task, prepared, spec, parameters, placement)
        if admission is not None:
            with placement.options(admission):
                future = self.inner.submit(prepared, parameters, wait_for=wait_for, dependencies=dependencies)
        else:
            future = self.inner.submit(prepared, parameters, wait_for=wait_for, dependencies=dependencies)
        if prepared is not task:
            with self._lock:
                self._submitted[str(future.task_run_id)] = task.name
        return future

    # -- internals ----------------------------------------------------------

    def _load_policies(self) -> Any:
        from mirrorscale.policy import PolicyError, PolicySet, load_policies

        try:
            return load_policies(self.policy_file)
        except PolicyError as exc:
            warn_once(f"policy:{exc}", "mirrorscale: %s; using the built-in defaults", exc)
            return PolicySet()

    def _current_flow(self) -> str:
        if self._flow_name is None:
            from prefect.context import FlowRunContext

            ctx = FlowRunContext.get()
            if ctx is not None and ctx.flow is not None:
                self._flow_name = ctx.flow.name
                self._flow_run_id = ctx.flow_run.id if ctx.flow_run is not None else None
                self._flow_input = _flow_input(ctx.parameters)
            else:
                self._flow_name = "(no flow)"
        return self._flow_name

    def _prepare(self, task: Any) -> Any:
        """The task with its function wrapped for measuring (cached per task object)."""
        if self._store is None or getattr(task, "isgenerator", False) or getattr(task, "isasync_generator", False):
            return task
        if getattr(task.fn, MEASURED_ATTRIBUTE, None) is not None:
            return task
        with self._lock:
            cached = self._wrapped.get(id(task))
            if cached is not None and cached[0] is task:
                return cached[1]
            flow_name = self._current_flow()
            policy = resolve_policy(self._policies, flow_name, task.name, task)
            sizing = self._sizing(policy, task) if policy.mode in ("enforce", "recommend") else None
            spec = MeasureSpec(store_url=self._url or "", flow_name=flow_name, task_name=task.name,
                               features=tuple(policy.features), runner=self.inner.name,
                               submit_pid=os.getpid(), interval=self.interval, sizing=sizing)
            wrapped = copy.copy(task)
            wrapped.fn = measured(task.fn, spec)
            self._wrapped[id(task)] = (task, wrapped)
            return wrapped

    def _cluster(self) -> Any:
        """The inner runner's cluster placement (Ray, Dask with ``dask_resource``), None for pools."""
        if self._placement is None:
            self._placement = placement_for(self.inner, self.dask_resource) or False
        return self._placement or None

    def _sizing(self, policy: Any, task: Any) -> SizingSpec:
        """How runs of ``task`` are sized: the policy, the memory limit to hold, and a mirror plan."""
        plan = None
        if policy.mode == "enforce" and policy.mirror:
            plan, self._notes[task.name] = plan_mirror(policy, task.fn)
        memory = self._memory_admission() if policy.mode == "enforce" and self._cluster() is None else None
        if memory is None:
            return SizingSpec(policy=policy, mirror=plan)
        return SizingSpec(policy=policy, capacity_bytes=memory.capacity_bytes(), limit=memory.name,
                          unit_bytes=memory.unit, capacity_units=memory.slots, mirror=plan)

    def _placed(self, task: Any, prepared: Any, spec: MeasureSpec, parameters: dict[str, Any],
                placement: Any) -> tuple[Any, Any]:
        """With a cluster placement, size the run now (its options are set at submit): a per-run copy
        of the task carrying its fixed sizing, and the cluster admission (None: submitted as is)."""
        from dataclasses import replace

        from mirrorscale.plugins.prefect.sizing import decide_run

        try:
            run_sizing = decide_run(spec.sizing, spec.store_url, ("prefect", spec.flow_name, spec.task_name),
                                    run_id=None, try_number=1, input_size=_resolved_size(parameters))
            admission = None
            if run_sizing.applied:
                admission = placement.admission(run_sizing.memory_bytes, run_sizing.info.get("cpu"),
                                                run_sizing.info.get("reason", ""))
            run_sizing = replace(run_sizing, admission=admission)
        except Exception as exc:  # noqa: BLE001 - sizing must never fail the flow
            warn_once(f"{placement.via}:{exc!r}", "mirrorscale: could not size %s for %s (%r); submitted "
                      "without memory options", spec.task_name, placement.via, exc)
            return task, None
        wrapped = copy.copy(task)
        wrapped.fn = measured(task.fn, replace(spec, sizing=replace(spec.sizing, fixed=run_sizing)))
        return wrapped, admission

    def _memory_admission(self) -> MemoryAdmission | None:
        """The admission to use in this flow run, its limit created on first use (None: off)."""
        if not self._memory_checked:
            self._memory_checked = True
            if self.admission is not False:
                memory = self.admission if isinstance(self.admission, MemoryAdmission) else MemoryAdmission()
                try:
                    memory.ensure_limit()
                    self._memory = memory
                except Exception as exc:  # noqa: BLE001
                    warn_once(f"admission:{memory.name}", "mirrorscale: cannot set up memory admission "
                              "(%r); enforce-mode tasks run without it", exc)
        return self._memory

    def _record_flow_run(self, outcome: str) -> None:
        """Record the flow run's footprint (:mod:`mirrorscale.plugins.prefect.flow_runs`; never raises)."""
        if self._meter is None or self._flow_run_id is None or self._flow_name is None:
            return
        try:
            from mirrorscale.plugins.prefect.artifacts import run_traces

            traces = run_traces(self._store, list(self._submitted))
            self._meter.finish(trace_recorder(self._url or ""), flow_name=self._flow_name,
                               flow_run_id=str(self._flow_run_id), input_size=self._flow_input, traces=traces,
                               runner=self.inner.name, outcome=outcome)
        except Exception as exc:  # noqa: BLE001 - the flow's own outcome must pass through
            warn_once(f"flow-run:{exc!r}", "mirrorscale: could not record the flow run of %s: %r",
                      self._flow_name, exc)

    def _publish(self) -> None:
        try:
            from mirrorscale.plugins.prefect.artifacts import publish_run_artifacts

            publish_run_artifacts(self._store, flow_name=self._flow_name or "(no flow)",
                                  flow_run_id=self._flow_run_id, submitted=dict(self._submitted),
                                  notes=dict(self._notes))
        except Exception as exc:  # noqa: BLE001 - artifacts must never fail a flow
            warn_once(f"artifacts:{exc!r}", "mirrorscale: could not publish artifacts: %r", exc)


def _flow_input(parameters: Any) -> int | None:
    """The size of a flow run's parameters (None when they cannot be sized)."""
    from mirrorscale.plugins.prefect.flow_runs import parameters_size

    try:
        return parameters_size(parameters)
    except Exception:  # noqa: BLE001 - best effort, like task features
        return None


def _resolved_size(parameters: dict[str, Any]) -> int | None:
    """The input size of ``parameters`` when they hold no futures yet (else None: the allocator assumes
    the latest run's)."""
    from prefect.futures import PrefectFuture
    from prefect.utilities.collections import visit_collection

    pending: list[Any] = []

    def spot(value: Any) -> Any:
        if isinstance(value, PrefectFuture):
            pending.append(value)
        return value

    visit_collection(parameters, visit_fn=spot, return_data=False)
    if pending:
        return None
    from mirrorscale.features import value_size

    return sum(value_size(value) for value in parameters.values())
