"""Size each Prefect task run from the allocator, in the process that runs it.

For a task in mode ``enforce`` or ``recommend`` the measured wrapper asks, before the
task is admitted, for the :class:`~mirrorscale.store.models.Allocation` of *this run*::

    features  = task_features(resolved parameters)   # args_bytes = input_size_bytes
    decision  = MirrorLifecycle.step(key)            # enforce + mirror = true only
    shadow    = run_mirror(...) if decision.mirror_now else None
    allocation = Allocator.decide(key, task_run_id, features={"input_size_bytes": args_bytes},
                                  shadow=shadow, try_number=attempt)

=================  ===============================================================
what               comes from the allocation (mode ``enforce``)
=================  ===============================================================
admission          ``occupy = ceil(memory / unit)`` slots of the memory limit
                   (at most the limit's size)
Dask               ``dask.annotate(resources={resource: memory})``, decided when the
                   task is submitted (the parameters are resolved there when they
                   hold no futures; else the latest run's input size is assumed)
guard              :class:`~mirrorscale.guard.MemoryGuard` limit = memory
=================  ===============================================================

In mode ``recommend`` the allocation is computed and stored (``applied=False``) and
shown in the artifacts, but nothing holds the task back. One :class:`Allocator` and
one :class:`MirrorLifecycle` are kept per process and store (their per-task models are
fed incrementally, so a decision reads only the traces recorded since the last one).

A shadow sizes only the run it was taken for (``use_stored_shadow=False``): mapped
runs of one task differ in input, so another run's shadow would mislead; runs the
life cycle does not mirror are sized from history.

Nothing here may fail a task: any error logs one warning per process and the run
goes ahead as the inner runner would run it (no admission, no guard).
"""

from __future__ import annotations

import inspect
import math
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

__all__ = ["RunSizing", "SizingSpec", "decide_run", "sizer_for"]


@dataclass(frozen=True)
class SizingSpec:
    """How one task's runs are sized; built by the runner, travels with the task (picklable).

    ``limit``/``unit_bytes``/``capacity_units`` describe the memory concurrency limit
    (``limit`` None: no admission, e.g. ``admission=False`` or Dask resources).
    ``fixed`` is a sizing already decided at submit time (Dask annotations).
    """

    policy: Any
    capacity_bytes: int | None = None
    limit: str | None = None
    unit_bytes: int = 1024 * 1024
    capacity_units: int = 0
    mirror: Any = None  # a mirroring.MirrorPlan when the task may be mirrored
    fixed: RunSizing | None = None


@dataclass(frozen=True)
class RunSizing:
    """What was decided for one run: the allocation's memory, the admission to hold, and why."""

    memory_bytes: int | None
    applied: bool
    admission: Any = None  # admission.Admission or None
    info: dict[str, Any] = field(default_factory=dict)  # stored in the trace's features["allocation"]
    mirror: Any = None  # mirroring.MirrorResult when a mirror ran
    lifecycle: dict[str, Any] | None = None


class _Policies:
    """The policies the allocator and life cycle read: each task's resolved policy (code + files)."""

    def __init__(self) -> None:
        self._by_task: dict[tuple[str, str], Any] = {}

    def register(self, flow_name: str, task_name: str, policy: Any) -> None:
        self._by_task[(flow_name, task_name)] = policy

    def for_task(self, pipeline_id: str, task_id: str) -> Any:
        from mirrorscale.policy import TaskPolicy

        return self._by_task.get((pipeline_id, task_id)) or TaskPolicy()


class _Sizer:
    """The per-process allocator and mirror life cycle of one store."""

    def __init__(self, store: Any, capacity: int | None) -> None:
        from mirrorscale.allocator import Allocator
        from mirrorscale.lifecycle import MirrorLifecycle

        self.store = store
        self.policies = _Policies()
        self.allocator = Allocator(store, self.policies, capacity=capacity, use_stored_shadow=False)
        self.lifecycle = MirrorLifecycle(store, self.policies)
        self.lock = threading.Lock()


_SIZERS: dict[str, _Sizer] = {}
_SIZERS_LOCK = threading.Lock()


def sizer_for(store_url: str, capacity: int | None = None) -> _Sizer:
    """The cached :class:`_Sizer` of this process for ``store_url``."""
    with _SIZERS_LOCK:
        sizer = _SIZERS.get(store_url)
        if sizer is None:
            from mirrorscale.plugins.prefect.measure import open_store

            sizer = _SIZERS[store_url] = _Sizer(open_store(store_url), capacity)
        return sizer


def evidence_of(source: str | None) -> str:
    """The evidence behind an allocation's source, in one word for the forecast table."""
    return {"shadow": "mirror", "history": "history", "default": "policy default",
            "oom-bump": "OOM bump"}.get(source or "", source or "n/a")


def _admission_for(spec: SizingSpec, memory: int, reason: str) -> Any:
    from mirrorscale.plugins.prefect.admission import Admission

    if spec.limit is None:
        return None
    units = max(1, math.ceil(memory / spec.unit_bytes))
    if spec.capacity_units:
        units = min(units, spec.capacity_units)
    return Admission(limit=spec.limit, units=units, unit_bytes=spec.unit_bytes, reason=reason,
                     capacity_units=spec.capacity_units, memory_bytes=memory)


def _from_allocation(spec: SizingSpec, allocation: Any, mirror: Any = None,
                     lifecycle: dict[str, Any] | None = None) -> RunSizing:
    estimate = (allocation.executor_options or {}).get("estimate_bytes")
    info = {"memory_bytes": allocation.memory_bytes, "forecast_bytes": estimate, "cpu": allocation.cpu,
            "source": allocation.source, "evidence": evidence_of(allocation.source), "reason": allocation.reason,
            "mode": allocation.mode, "applied": bool(allocation.applied), "shadow_id": allocation.shadow_id}
    applied = bool(allocation.applied) and bool(allocation.memory_bytes)
    admission = _admission_for(spec, int(allocation.memory_bytes), allocation.reason) if applied else None
    return RunSizing(int(allocation.memory_bytes) if allocation.memory_bytes else None, applied, admission, info,
                     mirror, lifecycle)


def _no_allocation(policy: Any, lifecycle: dict[str, Any] | None, mirror: Any) -> RunSizing:
    reason = "cold start: no successful run, no usable shadow and no default_memory: not sized"
    return RunSizing(None, False, None, {"memory_bytes": None, "forecast_bytes": None, "source": None,
                                         "evidence": "n/a", "reason": reason, "mode": policy.mode,
                                         "applied": False}, mirror, lifecycle)


def decide_run(spec: SizingSpec, store_url: str, key: tuple[str, str, str], *, run_id: str | None,
               try_number: int, input_size: int | None, call: tuple[Any, ...] | None = None,
               on_mirror: Callable[[], None] | None = None) -> RunSizing:
    """The sizing of one run (raises on trouble; the caller falls back).

    ``call`` is ``(args, kwargs)`` of the resolved call when a mirror may run on it.
    """
    sizer = sizer_for(store_url, spec.capacity_bytes)
    policy = spec.policy
    run_id = run_id or f"local-{datetime.now(timezone.utc).timestamp()}"
    shadow = mirror = lifecycle = None
    with sizer.lock:
        sizer.policies.register(key[1], key[2], policy)
        if spec.mirror is not None and policy.mode == "enforce" and policy.mirror and call is not None:
            decision = sizer.lifecycle.step(key)
            lifecycle = {"state": decision.state, "mirror_now": decision.mirror_now, "reason": decision.reason,
                         "volatility": decision.volatility}
    if lifecycle is not None and lifecycle["mirror_now"]:
        from mirrorscale.plugins.prefect.mirroring import run_mirror

        if on_mirror is not None:
            on_mirror()
        shadow, mirror = run_mirror(spec.mirror, call[0], call[1], store=sizer.store, key=key, run_id=run_id,
                                    reason=lifecycle["reason"])
    features = {} if input_size is None else {"input_size_bytes": input_size}
    with sizer.lock:
        allocation = sizer.allocator.decide(key, run_id, features=features, shadow=shadow, try_number=try_number)
    if allocation is None:
        return _no_allocation(policy, lifecycle, mirror)
    return _from_allocation(spec, allocation, mirror, lifecycle)


def size_call(spec: Any, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
              features: dict[str, Any], run_ids: tuple[str | None, int, str | None]) -> RunSizing | None:
    """:func:`decide_run` for a measured call (``spec`` a MeasureSpec); None when the task is not sized.

    Never raises: on trouble one warning per process, and the run is not sized.
    """
    sizing: SizingSpec | None = spec.sizing
    if sizing is None:
        return None
    if sizing.fixed is not None:
        return sizing.fixed
    try:
        call = None
        if sizing.mirror is not None:
            bound = inspect.signature(fn).bind_partial(*args, **kwargs)
            call = (tuple(bound.args), dict(bound.kwargs))
        return decide_run(sizing, spec.store_url, ("prefect", spec.flow_name, spec.task_name), run_id=run_ids[0],
                          try_number=run_ids[1], input_size=features.get("args_bytes"), call=call)
    except Exception as exc:  # noqa: BLE001 - sizing must never fail the task
        from mirrorscale.plugins.prefect.measure import warn_once

        warn_once(f"allocator:{spec.task_name}:{type(exc).__name__}", "mirrorscale: could not size %s.%s (%r); "
                  "it runs as the inner task runner would run it", spec.flow_name, spec.task_name, exc)
        return None
