"""Mirror volatile enforce-mode tasks before they run; the shadow sizes the run through the allocator.

A task whose policy says ``mode = "enforce"`` and ``mirror = true`` and whose function
is importable gets a :class:`MirrorPlan` when the runner first prepares it. Whether a
run is mirrored is the mirror *life cycle*'s call
(:meth:`mirrorscale.lifecycle.MirrorLifecycle.step`, made per run in
:mod:`mirrorscale.plugins.prefect.sizing`): a hotspot (run often enough and changing
fast) gets an active mirror, refreshed as often as its volatility demands and retired
when the task is stable, its allocations are sufficient, or its mirrors keep missing.

When the life cycle says *mirror now*, the wrapper calls
:func:`mirrorscale.mirror.preview` on the task's own function with its resolved
parameters, in the process that runs the task and before it is admitted: sampled
slices run in a sandboxed, capped process and their cost is extrapolated to the full
input (together with the task's full-size history). The
:class:`~mirrorscale.store.models.ResourceShadow` is saved and handed to
:meth:`mirrorscale.allocator.Allocator.decide`, which sizes the run from it (or from
history, when history's band is narrower). A progress artifact (key
``mirrorscale-mirror-<task>``) shows the mirror running in the Prefect UI.

A mirror needs the task's function importable in a new process: tasks defined in a
module (``my_flows.etl:transform``), not in a script run as ``__main__``. Tasks that
cannot be mirrored are sized from history, and the reason is recorded.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["MirrorPlan", "MirrorResult", "mirror_reference", "plan_mirror", "run_mirror"]


@dataclass(frozen=True)
class MirrorPlan:
    """What a worker needs to mirror one task: where its function is, how much to sample, the cap."""

    reference: str
    sample_fraction: float
    memory_cap: int | None
    samplers: tuple[tuple[str, str], ...] = ()
    """The policy's per-argument samplers (argument name or position, sampler spec)."""


@dataclass(frozen=True)
class MirrorResult:
    """The outcome of one mirror: the saved shadow's id, how long it took, and why it ran."""

    shadow_id: int | None
    outcome: str
    seconds: float
    reason: str
    predicted_peak_bytes: int | None = None


def mirror_reference(fn: Callable[..., Any]) -> str | None:
    """``"module:qualname"`` under which a new process finds ``fn`` (None: it cannot).

    A function decorated with ``@task`` is found through the task: ``"module:name.fn"``.
    """
    module_name, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    module = sys.modules.get(module_name or "")
    if module is None or module_name == "__main__" or "<" in qualname or not qualname:
        return None
    target: Any = module
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is fn:
        return f"{module_name}:{qualname}"
    if getattr(target, "fn", None) is fn:
        return f"{module_name}:{qualname}.fn"
    return None


def plan_mirror(policy: Any, fn: Callable[..., Any]) -> tuple[MirrorPlan | None, str]:
    """A :class:`MirrorPlan` when ``policy`` and ``fn`` allow mirrors (the life cycle decides per run), and why."""
    if policy.mode != "enforce" or not policy.mirror:
        return None, "mirrors off in the policy (needs mode enforce and mirror = true)"
    reference = mirror_reference(fn)
    if reference is None:
        return None, (f"not mirrored: {getattr(fn, '__qualname__', fn)!r} is not importable from a module "
                      "(tasks in a script run as __main__ cannot be mirrored)")
    plan = MirrorPlan(reference=reference, sample_fraction=policy.sample_fraction,
                      memory_cap=policy.memory.max_allowed, samplers=tuple(policy.samplers))
    return plan, "mirrors allowed: the mirror life cycle decides per run"


def _progress_key(task_name: str) -> str:
    return "mirrorscale-mirror-" + (re.sub(r"[^a-z0-9-]+", "-", task_name.lower()).strip("-") or "task")


def _progress(task_name: str) -> Callable[[float], None]:
    """A progress artifact for the running mirror; returns a setter (no-op without a run context)."""
    try:
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        artifact_id = create_progress_artifact(progress=0.0, key=_progress_key(task_name),
                                               description=f"mirrorscale: mirror of `{task_name}` running")
    except Exception:  # noqa: BLE001 - the UI is a nicety
        return lambda _value: None

    def update(value: float) -> None:
        try:
            update_progress_artifact(artifact_id=artifact_id, progress=value)
        except Exception:  # noqa: BLE001
            pass

    return update


def run_mirror(plan: MirrorPlan, args: tuple[Any, ...], kwargs: dict[str, Any], *, store: Any,
               key: tuple[str, str, str], run_id: str | None, reason: str = "") -> tuple[Any, MirrorResult]:
    """Mirror the task on samples of ``args``/``kwargs`` and save the shadow; returns (shadow, result)."""
    import time

    from mirrorscale.mirror import preview
    from mirrorscale.mirror.shadow import past_evidence

    progress = _progress(key[2])
    started = time.perf_counter()
    shadow = preview(plan.reference, args, kwargs, sample_fraction=plan.sample_fraction,
                     memory_cap=plan.memory_cap, samplers=dict(plan.samplers) or None, **past_evidence(store, key))
    seconds = time.perf_counter() - started
    progress(100.0)
    shadow.run_id = run_id
    shadow_id = store.save(key, shadow)
    estimate = shadow.predicted_peak_rss_high or shadow.predicted_peak_rss_bytes
    if shadow.outcome != "ok":
        reason = f"mirror {shadow.outcome}: {shadow.error or 'no estimate'}; {reason}"
    return shadow, MirrorResult(shadow_id, shadow.outcome, seconds, reason, estimate)
