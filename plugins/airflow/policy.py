"""Cluster policy (entry point ``airflow.policy``): the hook that sizes task instances before they start.

Airflow calls :func:`task_instance_mutation_hook` in the scheduler when a DAG
run creates its task instances, and again for each mapped instance when a
mapped task expands (its upstream has finished, so each item's input is
known). For tasks whose policy mode is

* ``enforce``: the allocator decides (history, a fresh mirror shadow, OOM
  bumps) and the hook sets ``pool``, ``pool_slots``, ``priority_weight``,
  ``queue`` and ``executor_config``;
* ``recommend``: the allocation is computed and stored (shown in the UI), the
  task instance is left as it is;
* ``observe``: nothing happens here.

What lands on the task instance (mode ``enforce``):

====================  ==================================================================
field                 value
====================  ==================================================================
``pool``              the policy's ``pool`` (created or resized on the fly, see below)
``pool_slots``        ``ceil(memory / pool_slot_memory)`` (1 without ``pool_slot_memory``)
``priority_weight``   longest and largest first (:mod:`mirrorscale.allocator.post`)
``queue``             the policy's ``queue``; else the size class (``small``/``medium``/
                      ``large``) when ``MIRRORSCALE_AIRFLOW_ROUTE_BY_SIZE=1`` (CeleryExecutor
                      workers must listen on those queues)
``executor_config``   a copy of the task's, plus ``"mirrorscale": {"memory_bytes", "cpu",
                      "allocation_id"}``; for KubernetesExecutor also ``"pod_override"``, a
                      ``kubernetes.client.V1Pod`` whose ``base`` container requests memory
                      and CPU and is limited to that memory
====================  ==================================================================

Pools in memory units: a policy with ``pool`` and ``pool_slot_memory`` gets a
pool of ``floor(capacity / pool_slot_memory)`` slots
(:func:`~mirrorscale.allocator.pool_size`; capacity from
``MIRRORSCALE_AIRFLOW_CAPACITY``, e.g. ``12GiB``, else this machine's memory
minus a reserve). The hook creates the pool when it is missing and resizes it
when its size is wrong, in the scheduler's own session.

Mapped tasks: the hook sizes each expanded instance from *its own* input (the
item of the upstream's XCom list that the instance will receive), so a fan-out
over skewed partitions packs small items densely and gives big ones room.

Hand-set allocations win: a task whose own ``executor_config["mirrorscale"]``
has ``memory_bytes`` is left alone, and so is a run whose ``conf`` says
``{"mirrorscale": {"mode": "off"}}``. A run's ``conf["mirrorscale"]["pin"]``
(``memory_bytes``, ``pool_slots``, optionally ``cpu``, ``priority_weight``)
applies a fixed allocation instead of the allocator's (benchmarks' static
baselines use it). ``MIRRORSCALE_AIRFLOW_ALLOCATE=0`` switches the hook off.

Pitfall (Airflow 3.3): registered by entry point alone, without any
``airflow_local_settings`` module, the hook is treated as a no-op and its
changes are dropped. ``mirrorscale airflow setup`` writes that module.

The hook never raises: on any error the task instance keeps its own settings
and one warning is logged (per task instance). Inside the scheduler it only
uses the scheduler's own session (the DAG run's) and never commits: Airflow's
scheduler forbids commits in its loop.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from airflow.policies import hookimpl

__all__ = ["task_instance_mutation_hook", "CALLS", "reset", "pod_override", "ensure_pool", "apply_allocation"]

log = logging.getLogger("mirrorscale.airflow")

CALLS = 0
"""How many task instances this process's hook has seen."""

ALLOCATE_ENV = "MIRRORSCALE_AIRFLOW_ALLOCATE"
KUBERNETES_ENV = "MIRRORSCALE_AIRFLOW_KUBERNETES"
ROUTE_ENV = "MIRRORSCALE_AIRFLOW_ROUTE_BY_SIZE"
CAPACITY_ENV = "MIRRORSCALE_AIRFLOW_CAPACITY"
POD_CONTAINER = "base"
"""The container KubernetesExecutor runs the task in (``pod_override`` merges by name)."""

_LOCK = threading.RLock()
_CONTEXT: dict[str, Any] = {}
_DECIDED: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_DECIDED_MAX = 20_000
_POOLS: dict[str, tuple[int, float]] = {}
_POOL_RECHECK = 60.0


def _truthy(name: str, default: str) -> bool:
    return os.environ.get(name, default).strip().lower() not in ("0", "false", "no", "off", "")


def reset() -> None:
    """Forget the cached allocator, policies, decisions and pool checks (tests; policy reloads are automatic)."""
    with _LOCK:
        _CONTEXT.clear()
        _DECIDED.clear()
        _POOLS.clear()


@hookimpl
def task_instance_mutation_hook(task_instance: Any, dag_run: Any) -> None:
    """Apply mirrorscale's allocation to a new task instance (mode ``enforce``; ``recommend`` only stores it)."""
    global CALLS
    CALLS += 1
    if CALLS == 1:
        log.info("mirrorscale policy hook live (first task instance: %s.%s)",
                 getattr(task_instance, "dag_id", "?"), getattr(task_instance, "task_id", "?"))
    try:
        _apply(task_instance, dag_run)
    except Exception as exc:  # noqa: BLE001 - never block scheduling
        log.warning("mirrorscale policy hook skipped %s.%s: %s: %s; the task keeps its own settings",
                    getattr(task_instance, "dag_id", "?"), getattr(task_instance, "task_id", "?"),
                    type(exc).__name__, exc)


# -- the allocator, cached per scheduler process ------------------------------


def _policy_path() -> Path | None:
    env = (os.environ.get("MIRRORSCALE_POLICY_FILE") or "").strip()
    if env:
        return Path(env)
    for name in ("mirrorscale.toml", "pyproject.toml"):
        if (Path.cwd() / name).is_file():
            return Path.cwd() / name
    return None


def context() -> tuple[Any, Any]:
    """``(policies, allocator)`` of this process: one :class:`Allocator`, rebuilt when the store URL or policy file changes."""
    from mirrorscale import config

    path = _policy_path()
    try:
        stamp = path.stat().st_mtime_ns if path is not None else None
    except OSError:
        stamp = None
    env = tuple(os.environ.get(k, "") for k in ("MIRRORSCALE_MODE", "MIRRORSCALE_MIRROR", "MIRRORSCALE_HEADROOM",
                                                 ROUTE_ENV, CAPACITY_ENV))
    key = (config.database_url(), str(path), stamp, env)
    with _LOCK:
        if _CONTEXT.get("key") != key:
            from mirrorscale.allocator import Allocator
            from mirrorscale.policy import load_policies

            policies = load_policies()
            store = _CONTEXT.get("store") if _CONTEXT.get("url") == key[0] else None
            if store is None:
                from mirrorscale.store.history import HistoryStore

                store = HistoryStore.open(key[0])
            allocator = Allocator(store, policies, capacity=capacity(), route_by_size=_truthy(ROUTE_ENV, "0"))
            _CONTEXT.update(key=key, url=key[0], store=store, policies=policies, allocator=allocator)
        return _CONTEXT["policies"], _CONTEXT["allocator"]


def capacity() -> int:
    """Memory the workers have for pools: ``MIRRORSCALE_AIRFLOW_CAPACITY`` or this machine's minus a reserve."""
    raw = (os.environ.get(CAPACITY_ENV) or "").strip()
    if raw:
        from mirrorscale.policy import parse_byte_size

        return parse_byte_size(raw)
    from mirrorscale.allocator import default_capacity

    return default_capacity()


# -- the hook's work -----------------------------------------------------------


def _store_run_id(run_id: str, map_index: int) -> str:
    return run_id if map_index is None or map_index < 0 else f"{run_id}#{map_index}"


def _conf(dag_run: Any) -> dict[str, Any]:
    conf = getattr(dag_run, "conf", None) or {}
    ours = conf.get("mirrorscale") if isinstance(conf, dict) else None
    return ours if isinstance(ours, dict) else {}


def _is_mapped(task: Any) -> bool:
    return bool(getattr(task, "is_mapped", False)) or type(task).__name__.endswith("MappedOperator")


def _apply(ti: Any, dag_run: Any) -> None:
    if not _truthy(ALLOCATE_ENV, "1") or dag_run is None:
        return  # without its run (the TaskInstance constructor's call) Airflow calls again with it
    task = getattr(ti, "task", None)
    run_conf = _conf(dag_run)
    if run_conf.get("mode") == "off":
        return
    own = getattr(task, "executor_config", None) or {}
    if isinstance(own, dict) and isinstance(own.get("mirrorscale"), dict) and own["mirrorscale"].get("memory_bytes"):
        return  # allocated by hand in the DAG: never overridden
    map_index = getattr(ti, "map_index", -1)
    map_index = -1 if map_index is None else int(map_index)
    if task is not None and _is_mapped(task) and map_index < 0:
        return  # the unexpanded placeholder: its instances are sized when the task expands
    policies, allocator = context()
    policy = policies.for_task(ti.dag_id, ti.task_id)
    if policy.mode == "observe" and not run_conf.get("pin"):
        return
    memo = (ti.dag_id, ti.run_id, ti.task_id, map_index, int(getattr(ti, "try_number", 0) or 0))
    with _LOCK:
        allocation = _DECIDED.get(memo)
    if allocation is None:  # the hook runs twice per instance (constructor and creation): decide once
        key = ("airflow", str(ti.dag_id), str(ti.task_id))
        run_id = _store_run_id(str(ti.run_id), map_index)
        if run_conf.get("pin"):
            allocation = _pinned(allocator, key, run_id, policy, run_conf["pin"])
        else:
            features = {"critical_path": False}
            size = _mapped_input_size(ti, dag_run) if map_index >= 0 else None
            if size is not None:
                features["input_size_bytes"] = size
            allocation = allocator.decide(key, run_id, features=features,
                                          try_number=max(1, int(getattr(ti, "try_number", 0) or 0)))
        if allocation is None:
            return  # cold start without default_memory: nothing to size
        with _LOCK:
            _DECIDED[memo] = allocation
            while len(_DECIDED) > _DECIDED_MAX:
                _DECIDED.popitem(last=False)
    if allocation.mode != "enforce":
        return
    session = _session_of(dag_run)
    if allocation.pool:
        ensure_pool(allocation.pool, policy.pool_slot_memory, session=session)
    apply_allocation(ti, allocation, executor=_executor_of(ti))


def _pinned(allocator: Any, key: tuple[str, str, str], run_id: str, policy: Any, pin: dict[str, Any]) -> Any:
    """A fixed allocation from the run's ``conf`` (stored like any other, source ``pinned``)."""
    from mirrorscale.policy import parse_byte_size
    from mirrorscale.store.models import Allocation, utcnow

    memory = parse_byte_size(pin["memory_bytes"])
    allocation = Allocation(
        run_id=run_id, try_number=1, created_at=utcnow(), mode="enforce", applied=True, memory_bytes=memory,
        cpu=pin.get("cpu"), pool=pin.get("pool", policy.pool),
        pool_slots=int(pin.get("pool_slots") or policy.pool_slots_for(memory)),
        priority_weight=int(pin.get("priority_weight") or 1), queue=pin.get("queue") or policy.queue,
        executor_options={"pinned": True}, source="pinned", reason="pinned by the run's conf")
    allocator.store.save(key, allocation)
    return allocation


def _session_of(dag_run: Any) -> Any:
    try:
        from sqlalchemy.orm import object_session

        return object_session(dag_run) if dag_run is not None else None
    except Exception:  # noqa: BLE001 - not a mapped object (tests)
        return None


def _executor_of(ti: Any) -> str:
    """The executor that will run ``ti``: its own, else Airflow's default."""
    name = getattr(ti, "executor", None) or getattr(getattr(ti, "task", None), "executor", None)
    if not name:
        try:
            from airflow.configuration import conf

            name = conf.get("core", "executor", fallback="") or ""
        except Exception:  # noqa: BLE001
            name = ""
    return str(name).split(",")[0]


def apply_allocation(ti: Any, allocation: Any, *, executor: str = "") -> None:
    """Write ``allocation`` onto a task instance (hook time, or the api-server endpoint for a waiting one)."""
    if allocation.pool:
        ti.pool = allocation.pool
    if allocation.pool_slots:
        ti.pool_slots = int(allocation.pool_slots)
    if allocation.priority_weight:
        ti.priority_weight = int(allocation.priority_weight)
    if allocation.queue:
        ti.queue = allocation.queue
    config = dict(getattr(ti, "executor_config", None) or {})  # a copy: the task's dict is shared
    config["mirrorscale"] = {"memory_bytes": int(allocation.memory_bytes),
                             "cpu": None if allocation.cpu is None else float(allocation.cpu),
                             "allocation_id": getattr(allocation, "id", None)}
    if "kubernetes" in executor.lower() or _truthy(KUBERNETES_ENV, "0"):
        config["pod_override"] = pod_override(int(allocation.memory_bytes), allocation.cpu)
    ti.executor_config = config


def pod_override(memory_bytes: int, cpu: float | None) -> Any:
    """A ``V1Pod`` for KubernetesExecutor: the ``base`` container requests (and is limited to) the memory.

    CPU is requested, not limited (a CPU limit throttles; memory is what kills).
    """
    from kubernetes.client import models as k8s

    mib = math.ceil(int(memory_bytes) / (1 << 20))
    requests = {"memory": f"{mib}Mi"}
    if cpu:
        requests["cpu"] = f"{math.ceil(float(cpu) * 1000)}m"
    resources = k8s.V1ResourceRequirements(requests=requests, limits={"memory": f"{mib}Mi"})
    return k8s.V1Pod(spec=k8s.V1PodSpec(containers=[k8s.V1Container(name=POD_CONTAINER, resources=resources)]))


def ensure_pool(name: str, pool_slot_memory: int | None, *, session: Any = None) -> int | None:
    """Create ``name`` or resize it to ``pool_size(capacity, pool_slot_memory)`` slots; the slots (None: not sized).

    Without ``pool_slot_memory`` the pool is only created when missing (128 slots).
    Checked at most once a minute per pool and process. With ``session`` the pool
    is written in it (never committed); when that session is in the middle of a
    flush (Airflow creates a REST-triggered run's task instances there), in a
    short session of its own instead.
    """
    from mirrorscale.allocator import pool_size

    slots = pool_size(capacity(), pool_slot_memory) if pool_slot_memory else None
    with _LOCK:
        seen = _POOLS.get(name)
        if seen is not None and seen[0] == slots and time.monotonic() - seen[1] < _POOL_RECHECK:
            return slots
    from airflow.models.pool import Pool
    from mirrorscale.policy import format_bytes

    def work(s: Any) -> None:
        from sqlalchemy import select

        pool = s.scalar(select(Pool).filter_by(pool=name))
        if slots is None:
            if pool is None:
                Pool.create_or_update_pool(name, 128, "created by mirrorscale", False, session=s)
            return
        if pool is None or pool.slots != slots:
            text = f"mirrorscale: memory units of {format_bytes(pool_slot_memory)} ({format_bytes(capacity())})"
            Pool.create_or_update_pool(name, slots, text, False, session=s)
            log.info("mirrorscale %s pool %s: %d slots of %s", "created" if pool is None else "resized", name,
                     slots, format_bytes(pool_slot_memory))

    if session is not None and not getattr(session, "_flushing", False):
        work(session)
        session.flush()
    else:  # no session, or called from inside its flush (a DAG run triggered through the REST API)
        from airflow.utils.session import create_session

        with create_session() as s:
            work(s)
    with _LOCK:
        _POOLS[name] = (slots, time.monotonic())
    return slots


# -- the input of one mapped instance ------------------------------------------


def _mapped_input_size(ti: Any, dag_run: Any) -> int | None:
    """Bytes of the arguments the expanded instance ``ti`` will receive (None when unknown)."""
    from mirrorscale.features import value_size

    task = ti.task
    specified = getattr(task, "_get_specified_expand_input", None)
    if callable(specified):  # @task: op_kwargs_expand_input; classic operators: expand_input
        expand = specified()
    else:
        expand = getattr(task, "op_kwargs_expand_input", None) or getattr(task, "expand_input", None)
    value = getattr(expand, "value", None)
    if not isinstance(value, dict) or len(value) != 1:
        return None  # expand_kwargs or a product of several lists: not resolved here
    (name, ref), = value.items()
    items = _resolve(ref, ti, dag_run) if hasattr(ref, "operator") else ref
    if isinstance(items, dict):
        items = list(items.items())
    if not isinstance(items, (list, tuple)) or ti.map_index >= len(items):
        return None
    return value_size(items[ti.map_index])


def _resolve(ref: Any, ti: Any, dag_run: Any) -> Any:
    """The upstream's XCom value behind ``ref`` (a plain XComArg), read with the scheduler's session."""
    from airflow.models.xcom import XComModel

    operator = getattr(ref, "operator", None)
    key = getattr(ref, "key", None) or "return_value"
    if operator is None or type(ref).__name__ not in ("SchedulerPlainXComArg", "PlainXComArg"):
        return None
    query = XComModel.get_many(run_id=ti.run_id, key=key, task_ids=operator.task_id, dag_ids=ti.dag_id,
                               map_indexes=-1, limit=1)
    session = _session_of(dag_run)
    if session is None:
        return None  # never open (and commit) a session of our own inside the scheduler loop
    row = session.scalars(query).first()
    return None if row is None else XComModel.deserialize_value(row)
