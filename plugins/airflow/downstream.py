"""Size a downstream task as soon as its inputs are known: mirror it at the end of its upstream.

When a task finishes, the inputs of its direct downstream tasks that read its
return value are known. For each downstream task whose policy mode is
``enforce`` or ``recommend`` (and that is not mapped: mapped instances are
sized by the policy hook when they expand), the upstream's task process

1. resolves the downstream's arguments (this task's result; other upstreams'
   XComs when they are already there; literals),
2. runs the downstream's own callable on a sample of them
   (:func:`~mirrorscale.mirror.mirror_task`) and stores the shadow (with this
   run's id), when the policy has ``mirror = true`` and the mirror life cycle
   (:class:`~mirrorscale.lifecycle.MirrorLifecycle`: a hotspot, on the predicted
   path, due) says so; a downstream already sized from a mirror in this run
   (by another of its upstreams) is skipped, and so is one whose mirror
   another upstream has claimed: before mirroring, the upstream claims the
   downstream at the api-server (:func:`mirrorscale.plugins.airflow.web.claim_mirror`,
   claim-once under the task instance's row lock), so two upstreams finishing at
   once on two workers never mirror it twice. When the claim cannot be asked
   for (api-server down), the upstream mirrors anyway (its post fails the same way),
3. posts the input size and the shadow id to the plugin's endpoint on the
   api-server (:func:`mirrorscale.plugins.airflow.web.allocate_waiting`), which
   decides the allocation and, in mode ``enforce``, updates the waiting task
   instance through Airflow's ORM.

This happens *inside* the upstream's ``execute``, after the task's own code
returned and before Airflow reports it successful: the downstream task cannot
be queued before its allocation is applied (Airflow calls success listeners
only after reporting the state, which would race with the scheduler).

The mirror callable must be importable in a fresh process (a module-level
function of an importable module, not a function defined inside the DAG
file); otherwise only the input size is posted.

Credentials for the api-server: ``MIRRORSCALE_AIRFLOW_API_TOKEN`` (a JWT), or
``MIRRORSCALE_AIRFLOW_API_USER`` and ``MIRRORSCALE_AIRFLOW_API_PASSWORD``
(exchanged at ``/auth/token``); the URL is ``MIRRORSCALE_AIRFLOW_API_URL``,
else Airflow's ``[api] base_url``. The whole step is bounded by
``MIRRORSCALE_AIRFLOW_MIRROR_TIMEOUT`` seconds (60) and never fails the task:
on any problem one warning is logged and the downstream keeps its settings.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from typing import Any

from mirrorscale.plugins.airflow.api_client import post_task_route

__all__ = ["wrap_execute", "mirror_downstream", "post_allocation", "claim_mirror", "mirrored_in_run"]

log = logging.getLogger("mirrorscale.airflow")

TIMEOUT_ENV = "MIRRORSCALE_AIRFLOW_MIRROR_TIMEOUT"


def _targets(ti: Any, policies: Any) -> list[tuple[Any, Any]]:
    """Direct downstream tasks (not mapped) in mode enforce/recommend, with their policies."""
    out = []
    for down in getattr(ti.task, "downstream_list", None) or []:
        if type(down).__name__.endswith("MappedOperator") or getattr(down, "is_mapped", False):
            continue
        policy = policies.for_task(ti.dag_id, down.task_id)
        if policy.mode in ("enforce", "recommend"):
            out.append((down, policy))
    return out


def wrap_execute(ti: Any) -> bool:
    """Make ``ti``'s operator size its downstream tasks right after its own code returns; True if wrapped."""
    from mirrorscale.policy import load_policies

    task = getattr(ti, "task", None)
    if task is None or not getattr(task, "downstream_list", None):
        return False
    policies = load_policies()
    if not _targets(ti, policies):
        return False
    original = task.execute

    def execute(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        mirror_downstream(ti, result, policies)
        return result

    task.execute = execute
    return True


def mirror_downstream(ti: Any, result: Any, policies: Any) -> list[dict[str, Any]]:
    """Mirror and size every target downstream of ``ti`` (bounded; never raises)."""
    answers: list[dict[str, Any]] = []
    timeout = float(os.environ.get(TIMEOUT_ENV, "60") or 60)

    def work() -> None:
        for down, policy in _targets(ti, policies):
            try:
                answers.append(_one(ti, result, down, policy, policies))
            except Exception as exc:  # noqa: BLE001 - the upstream succeeded; sizing is a bonus
                log.warning("mirrorscale could not size %s.%s before it starts: %s: %s; it keeps its own "
                            "settings", ti.dag_id, down.task_id, type(exc).__name__, exc)

    thread = threading.Thread(target=work, name="mirrorscale-downstream", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        log.warning("mirrorscale sizing of the tasks downstream of %s.%s took over %g s; they keep their own "
                    "settings", ti.dag_id, ti.task_id, timeout)
    return answers


def _inputs(ti: Any, result: Any, down: Any) -> tuple[list[Any], dict[str, Any]] | None:
    """The downstream's ``(args, kwargs)`` with XCom references resolved; None when one is not available."""
    from mirrorscale.plugins.airflow.features import _is_xcom_ref

    def resolve(value: Any) -> Any:
        if not _is_xcom_ref(value):
            return value
        operator = getattr(value, "operator", None)
        key = getattr(value, "key", "return_value")
        if operator is not None and operator.task_id == ti.task_id and key == "return_value":
            return result
        pulled = ti.xcom_pull(task_ids=operator.task_id, key=key)
        if pulled is None:
            raise LookupError(f"{operator.task_id} has not pushed {key} yet")
        return pulled

    args = getattr(down, "op_args", None) or []
    kwargs = getattr(down, "op_kwargs", None) or {}
    try:
        args = resolve(args) if _is_xcom_ref(args) else [resolve(a) for a in args]
        kwargs = resolve(kwargs) if _is_xcom_ref(kwargs) else {k: resolve(v) for k, v in dict(kwargs).items()}
    except LookupError:
        return None
    return list(args), dict(kwargs) if isinstance(kwargs, Mapping) else {}


def _one(ti: Any, result: Any, down: Any, policy: Any, policies: Any) -> dict[str, Any]:
    from mirrorscale.features import value_size

    inputs = _inputs(ti, result, down)
    if inputs is None:
        return {"task_id": down.task_id, "skipped": "inputs not known yet"}
    done = _already_mirrored(ti, down)
    if done is not None:
        return {"task_id": down.task_id, "skipped": f"already sized from mirror shadow {done} in this run"}
    args, kwargs = inputs
    size = sum(value_size(a) for a in args) + sum(value_size(v) for v in kwargs.values())
    shadow_id = None
    lifecycle: dict[str, Any] | None = None
    fn = getattr(down, "python_callable", None)
    if policy.mirror and fn is not None:
        claim = claim_mirror(ti, down)
        if claim is not None and not claim.get("claimed"):
            return {"task_id": down.task_id, "skipped": f"mirror claimed by {claim.get('by') or 'another upstream'}"
                    if claim.get("by") else f"already sized from mirror shadow {claim.get('shadow_id')} in this run"}
        decision = _lifecycle_step(ti, down, result, policies)
        lifecycle = {"state": decision.state, "mirror_now": decision.mirror_now, "reason": decision.reason}
        if decision.mirror_now:
            shadow_id = _mirror(ti, down, fn, args, kwargs, policy)
    body = {"map_index": -1, "input_size_bytes": size, "shadow_id": shadow_id}
    answer = post_allocation(ti.dag_id, ti.run_id, down.task_id, body)
    log.info("mirrorscale sized %s.%s before it starts: %s (mirror: %s)", ti.dag_id, down.task_id,
             {k: answer.get(k) for k in ("applied", "memory_bytes", "pool_slots", "source", "shadow_id")},
             "not allowed by the policy" if lifecycle is None else lifecycle["reason"])
    return {"task_id": down.task_id, "lifecycle": lifecycle, **answer}


_LIFECYCLES: dict[int, Any] = {}


def _already_mirrored(ti: Any, down: Any) -> int | None:
    """The shadow id when another upstream already sized ``down`` from a mirror in this run, else None.

    A task with several upstreams is sized by the first one that finishes with
    all its inputs known; the others see the stored allocation and do not mirror again.
    """
    from mirrorscale.plugins.airflow.listener import _store

    return mirrored_in_run(_store(), str(ti.dag_id), str(down.task_id), str(ti.run_id))


def mirrored_in_run(store: Any, dag_id: str, task_id: str, run_id: str) -> int | None:
    """The id of the shadow of ``run_id`` that ``task_id`` was last sized from, else None."""
    from mirrorscale.plugins.airflow.listener import run_allocation

    allocation = run_allocation(store, dag_id, task_id, run_id)
    if allocation is None or allocation.source != "shadow" or allocation.shadow_id is None:
        return None
    shadow = store.shadow(int(allocation.shadow_id))  # this run's mirror, not an earlier run's fresh shadow
    return None if shadow is None or shadow.run_id != run_id else int(shadow.id)


def on_path(ti: Any, result: Any, task_id: str) -> bool:
    """False when ``ti`` is a branch operator whose result does not follow ``task_id``; else True."""
    task = getattr(ti, "task", None)
    if not getattr(task, "inherits_from_skipmixin", False) or result is None:
        return True
    followed = {result} if isinstance(result, str) else set(result) if isinstance(result, (list, tuple, set)) else None
    return followed is None or task_id in followed


def _lifecycle_step(ti: Any, down: Any, result: Any, policies: Any) -> Any:
    """Advance the downstream's mirror life cycle (:class:`~mirrorscale.lifecycle.MirrorLifecycle`)."""
    from mirrorscale.lifecycle import MirrorLifecycle
    from mirrorscale.plugins.airflow.listener import _store

    store = _store()
    lifecycle = _LIFECYCLES.get(id(store))
    if lifecycle is None or lifecycle.store is not store:
        lifecycle = _LIFECYCLES[id(store)] = MirrorLifecycle(store, policies)
    lifecycle.policies = policies
    key = ("airflow", str(ti.dag_id), str(down.task_id))
    return lifecycle.step(key, on_path=on_path(ti, result, down.task_id))


def _past_runs(key: tuple[str, str, str]) -> dict[str, tuple[Any, ...]]:
    """The downstream's past full and mirrored runs for the extrapolation; none when the store cannot say."""
    from mirrorscale.mirror.shadow import past_evidence
    from mirrorscale.plugins.airflow.listener import _store

    try:
        return past_evidence(_store(), key)
    except Exception as exc:  # noqa: BLE001 - the mirror still runs, on its samples alone
        log.warning("mirrorscale could not read the history of %s for its mirror: %s", key, exc)
        return {}


def _mirror(ti: Any, down: Any, fn: Any, args: list[Any], kwargs: dict[str, Any], policy: Any) -> int | None:
    """Run the downstream's mirror and store its shadow; its id (None when it could not run)."""
    from mirrorscale.mirror import MirrorError, mirror_task
    from mirrorscale.plugins.airflow.listener import _store

    key = ("airflow", str(ti.dag_id), str(down.task_id))
    try:
        shadow = mirror_task(fn, args, kwargs, policy=policy, **_past_runs(key))
    except MirrorError as exc:
        log.warning("mirrorscale cannot mirror %s.%s: %s", ti.dag_id, down.task_id, exc)
        return None
    if shadow is None:
        return None
    shadow.run_id = str(ti.run_id)  # the life cycle compares each shadow with its run's trace
    _store().save(key, shadow)
    return shadow.id


def claim_mirror(ti: Any, down: Any) -> dict[str, Any] | None:
    """Claim mirroring ``down`` in ``ti``'s run at the api-server; its answer, or None when it cannot answer.

    The claimant is this upstream task instance on this host and process.
    None (api-server unreachable, refused, an older server without the route)
    lets the caller go on as before: it mirrors, and its post fails the same way.
    """
    claimant = f"{ti.task_id}[{getattr(ti, 'map_index', -1)}]@{socket.gethostname()}:{os.getpid()}"
    try:
        return post_task_route(str(ti.dag_id), str(ti.run_id), str(down.task_id), "mirror-claim",
                     {"map_index": -1, "by": claimant}, timeout=10)
    except (OSError, RuntimeError, ValueError) as exc:
        log.info("mirrorscale could not claim the mirror of %s.%s (%s); mirroring without a claim",
                 ti.dag_id, down.task_id, exc)
        return None


def post_allocation(dag_id: str, run_id: str, task_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST to the plugin's allocation endpoint on the api-server; the JSON answer (raises on HTTP errors)."""
    return post_task_route(dag_id, run_id, task_id, "allocation", body)

