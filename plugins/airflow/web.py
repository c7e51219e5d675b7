"""The mirrorscale web app on Airflow's api-server, behind Airflow's own authentication.

Airflow mounts a plugin's FastAPI app as is, so anonymous requests would reach
it; every route therefore depends on :func:`airflow_access`: the user must be
logged in (JWT from ``Authorization: Bearer`` or the UI's ``_token`` cookie),
may see plugin views (``AccessView.PLUGINS``) and, on pages of one pipeline,
may read that DAG (``requires_access_dag("GET")`` with the page's
``pipeline_id``). No token → 401, not allowed → 403.

One write route sizes a task instance that has not started yet (see
:func:`allocate_waiting`): ``POST /mirrorscale/airflow/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/allocation``
with ``{"map_index": -1, "input_size_bytes": n, "shadow_id": id}`` (all
optional). It needs ``PUT`` on the DAG's task instances. The allocator decides
(with the given input size and mirror shadow) and, in mode ``enforce``, the
task instance's ``pool``, ``pool_slots``, ``priority_weight``, ``queue`` and
``executor_config`` are updated through Airflow's ORM; the scheduler honours
them when it queues the task. A task instance that is already queued or
running answers 409 and is left alone.

A second write route makes mirroring a downstream task claim-once (see
:func:`claim_mirror`): ``POST .../tasks/{task_id}/mirror-claim`` with
``{"map_index": -1, "by": "<claimant>"}`` answers ``{"claimed": true}`` to
exactly one of several upstreams (on several workers) that finish at once;
the others get ``{"claimed": false, "by": ...}`` and neither mirror nor size it.

A third stores the trace of a worker that cannot reach the store itself
(:mod:`mirrorscale.plugins.airflow.trace_api`): ``POST .../tasks/{task_id}/trace``,
strictly validated, idempotent (``{"stored": true|false}``). Every POST body is
capped at 256 KiB (413).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fastapi import Body, Depends, HTTPException, Request
from fastapi.applications import FastAPI

from airflow.api_fastapi.auth.managers.models.resource_details import AccessView, DagAccessEntity
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag, requires_access_view
from mirrorscale.plugins.airflow.trace_api import BodyCap, trace_route

__all__ = ["airflow_access", "allocate_waiting", "claim_mirror", "create_airflow_app", "WAITING_STATES",
           "CLAIM_KEY", "CLAIM_SECONDS"]

WAITING_STATES = (None, "none", "scheduled", "up_for_retry", "up_for_reschedule")
"""Task-instance states that have not been queued yet: their allocation may still change."""

CLAIM_KEY = "mirrorscale_mirror_claim"
"""Key of a mirror claim in a waiting task instance's ``executor_config``: ``{"by": ..., "at": epoch s}``."""
CLAIM_SECONDS = 180.0
"""A claim older than this is stale (its claimant died mid-mirror): another upstream may take it over."""

_CLAIM_LOCK = threading.Lock()


def airflow_access(request: Request, user: GetUserDep) -> None:
    """Airflow's checks for one request to the mirrorscale app (raises 401/403)."""
    requires_access_view(AccessView.PLUGINS)(request, user)
    pipeline_id = request.path_params.get("pipeline_id")
    if pipeline_id:
        requires_access_dag("GET", param_dag_id=pipeline_id)(request, user)


def create_airflow_app() -> FastAPI:
    """The engine-neutral app restricted to Airflow tasks and guarded by :func:`airflow_access`."""
    from mirrorscale.web import create_app

    app = create_app(dependencies=[Depends(airflow_access)], engine="airflow", title="mirrorscale for Airflow")
    app.add_api_route("/airflow/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/allocation", _allocation_route,
                      methods=["POST"], dependencies=[Depends(_may_edit_task_instances)],
                      name="mirrorscale_allocate_waiting")
    app.add_api_route("/airflow/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mirror-claim", _claim_route,
                      methods=["POST"], dependencies=[Depends(_may_edit_task_instances)],
                      name="mirrorscale_claim_mirror")
    app.add_api_route("/airflow/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/trace", trace_route,
                      methods=["POST"], dependencies=[Depends(_may_edit_task_instances)],
                      name="mirrorscale_record_trace")
    app.add_middleware(BodyCap)
    return app


def _may_edit_task_instances(request: Request, user: GetUserDep) -> None:
    """``PUT`` on the task instances of the path's ``dag_id`` (Airflow's own check)."""
    requires_access_dag("PUT", DagAccessEntity.TASK_INSTANCE,
                        param_dag_id=request.path_params.get("dag_id"))(request, user)


def _allocation_route(dag_id: str, run_id: str, task_id: str,
                      body: dict[str, Any] = Body(default_factory=dict)) -> dict[str, Any]:  # noqa: B008
    try:
        return allocate_waiting(dag_id, run_id, task_id, map_index=int(body.get("map_index", -1)),
                                input_size_bytes=body.get("input_size_bytes"), shadow_id=body.get("shadow_id"))
    except LookupError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except _TooLate as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None


def _claim_route(dag_id: str, run_id: str, task_id: str,
                 body: dict[str, Any] = Body(default_factory=dict)) -> dict[str, Any]:  # noqa: B008
    claimant = str(body.get("by") or "").strip()
    if not claimant:
        raise HTTPException(status_code=422, detail='"by" (who claims the mirror, e.g. the upstream task id) '
                                                    "is required")
    try:
        return claim_mirror(dag_id, run_id, task_id, map_index=int(body.get("map_index", -1)), claimant=claimant)
    except LookupError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except _TooLate as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None


class _TooLate(RuntimeError):
    """The task instance was already queued or started."""


def allocate_waiting(dag_id: str, run_id: str, task_id: str, *, map_index: int = -1,
                     input_size_bytes: int | None = None, shadow_id: int | None = None) -> dict[str, Any]:
    """Decide an allocation for a waiting task instance and, in mode ``enforce``, apply it (api-server side)."""
    from airflow.utils.session import create_session
    from mirrorscale.plugins.airflow import policy as hook

    policies, allocator = hook.context()
    task_policy = policies.for_task(dag_id, task_id)
    key = ("airflow", dag_id, task_id)
    with create_session() as session:
        ti, state = _waiting_ti(session, dag_id, run_id, task_id, map_index)
        if CLAIM_KEY in (ti.executor_config or {}):  # sized now: a later upstream may claim a new mirror
            ti.executor_config = {k: v for k, v in ti.executor_config.items() if k != CLAIM_KEY}
        shadow = allocator.store.shadow(int(shadow_id)) if shadow_id is not None else None
        features = {} if input_size_bytes is None else {"input_size_bytes": int(input_size_bytes)}
        store_run = run_id if map_index < 0 else f"{run_id}#{map_index}"
        allocation = allocator.decide(key, store_run, features=features, shadow=shadow,
                                      try_number=max(1, int(ti.try_number or 0)))
        if allocation is None:
            return {"applied": False, "mode": task_policy.mode, "reason": "nothing to size yet (cold start)"}
        applied = allocation.mode == "enforce"
        if applied:
            if allocation.pool:
                hook.ensure_pool(allocation.pool, task_policy.pool_slot_memory, session=session)
            hook.apply_allocation(ti, allocation, executor=str(ti.executor or hook._executor_of(ti)))
        return {"applied": applied, "mode": allocation.mode, "allocation_id": allocation.id,
                "memory_bytes": allocation.memory_bytes, "cpu": allocation.cpu, "pool": allocation.pool,
                "pool_slots": allocation.pool_slots, "priority_weight": allocation.priority_weight,
                "queue": allocation.queue, "source": allocation.source, "shadow_id": allocation.shadow_id,
                "reason": allocation.reason, "state": state}


def _waiting_ti(session: Any, dag_id: str, run_id: str, task_id: str, map_index: int) -> tuple[Any, str | None]:
    """The task instance, row-locked for this transaction, and its state; raises unless it is still waiting."""
    from sqlalchemy import select

    from airflow.models.taskinstance import TaskInstance

    ti = session.scalar(select(TaskInstance).where(
        TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id, TaskInstance.task_id == task_id,
        TaskInstance.map_index == map_index).with_for_update())
    if ti is None:
        raise LookupError(f"no task instance {dag_id}.{task_id} in run {run_id} (map index {map_index})")
    state = None if ti.state is None else str(getattr(ti.state, "value", ti.state))
    if state not in WAITING_STATES:
        raise _TooLate(f"{dag_id}.{task_id} is already {state}")
    return ti, state


def claim_mirror(dag_id: str, run_id: str, task_id: str, *, map_index: int = -1, claimant: str,
                 now: float | None = None) -> dict[str, Any]:
    """Let exactly one claimant mirror a waiting task instance in this run (api-server side).

    Claimants are serialized by the task instance's row lock (``SELECT ... FOR
    UPDATE`` on PostgreSQL and MySQL) and, within one api-server process, by a
    lock (SQLite has no row locks). Refused when another claimant holds a claim
    younger than :data:`CLAIM_SECONDS`, or when the task was already sized from
    a mirror of this run (the claim itself is dropped when the allocation is
    posted). The same claimant may claim again.
    """
    from airflow.utils.session import create_session
    from mirrorscale.plugins.airflow.downstream import mirrored_in_run
    from mirrorscale.plugins.airflow.listener import _store

    now = time.time() if now is None else now
    with _CLAIM_LOCK, create_session() as session:
        ti, _ = _waiting_ti(session, dag_id, run_id, task_id, map_index)
        config = dict(ti.executor_config or {})
        held = config.get(CLAIM_KEY)
        if isinstance(held, dict) and held.get("by") != claimant and now - float(held.get("at", 0)) < CLAIM_SECONDS:
            return {"claimed": False, "by": held.get("by"), "age_seconds": round(now - float(held["at"]), 1)}
        shadow_id = mirrored_in_run(_store(), dag_id, task_id, run_id)
        if shadow_id is not None:
            return {"claimed": False, "shadow_id": shadow_id, "reason": "already sized from a mirror in this run"}
        config[CLAIM_KEY] = {"by": claimant, "at": now}
        ti.executor_config = config
        return {"claimed": True, "by": claimant}
