"""Mirror volatile enforce-mode tasks before they run, and admit them by the mirror's estimate.

When a flow run first submits a task whose policy says ``mode = "enforce"`` and
``mirror = true``, the runner scores the task's history with
:func:`mirrorscale.predictors.volatility.assess` (input size and peak memory, oldest
run first). A *hotspot* (run often enough, and changing fast) gets a
:class:`MirrorPlan`; a stable task does not, so mirrors retire by themselves once a
task settles.

In the process that runs the task, before it is admitted, the wrapper calls
:func:`mirrorscale.mirror.preview` on the task's own function with its resolved
parameters: sampled slices run in a sandboxed, capped process and their cost is
extrapolated to the full input (together with the task's full-size history). The
:class:`~mirrorscale.store.models.ResourceShadow` is saved; its upper estimate plus
the policy's headroom becomes the task's memory admission, and a progress artifact
(key ``mirrorscale-mirror-<task>``) shows the mirror running in the Prefect UI.

A mirror needs the task's function importable in a new process: tasks defined in a
module (``my_flows.etl:transform``), not in a script run as ``__main__``. Tasks that
cannot be mirrored are admitted by the naive forecast, and the reason is recorded.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, replace
from typing import Any, Callable

__all__ = ["MirrorPlan", "MirrorResult", "mirror_reference", "plan_mirror", "run_mirror"]


@dataclass(frozen=True)
class MirrorPlan:
    """What a worker needs to mirror one task: where its function is and how to size it."""

    reference: str
    sample_fraction: float
    memory_cap: int | None
    headroom: float
    min_bytes: int | None
    max_bytes: int | None
    history: tuple[tuple[float, float, float, float], ...]
    reason: str


@dataclass(frozen=True)
class MirrorResult:
    """The outcome of one mirror: the saved shadow's id, the memory it implies, and why."""

    shadow_id: int | None
    outcome: str
    need_bytes: int | None
    seconds: float
    reason: str


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


def plan_mirror(policy: Any, traces: list[Any], fn: Callable[..., Any]) -> tuple[MirrorPlan | None, str]:
    """Decide from the task's recent ``traces`` (newest first) whether to mirror it, and why."""
    if policy.mode != "enforce" or not policy.mirror:
        return None, "mirrors off in the policy (needs mode enforce and mirror = true)"
    from mirrorscale.predictors.volatility import assess

    runs = [t for t in reversed(traces) if t.outcome == "success" and t.peak_rss_bytes is not None]
    series = {"input_size": [float(t.input_size_bytes or 0) for t in runs],
              "peak_rss": [float(t.peak_rss_bytes) for t in runs]}
    report = assess(series)
    if not report.hotspot:
        return None, f"not mirrored: {report.reason}"
    reference = mirror_reference(fn)
    if reference is None:
        return None, (f"volatile ({report.reason}) but not mirrored: {getattr(fn, '__qualname__', fn)!r} is not "
                      "importable from a module (tasks in a script run as __main__ cannot be mirrored)")
    history = tuple((float(t.input_size_bytes or 0), float(t.peak_rss_bytes), float(t.cpu_seconds or 0),
                     float(t.wall_seconds or 0)) for t in runs if t.input_size_bytes)
    plan = MirrorPlan(reference=reference, sample_fraction=policy.sample_fraction,
                      memory_cap=policy.memory.max_allowed, headroom=policy.headroom,
                      min_bytes=policy.memory.min_allowed, max_bytes=policy.memory.max_allowed,
                      history=history[-20:], reason=report.reason)
    return plan, f"mirrored: {report.reason}"


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
               key: tuple[str, str, str], run_id: str | None) -> MirrorResult:
    """Mirror the task on samples of ``args``/``kwargs``, save the shadow, size the need."""
    import time

    from mirrorscale.mirror import preview

    progress = _progress(key[2])
    started = time.perf_counter()
    shadow = preview(plan.reference, args, kwargs, sample_fraction=plan.sample_fraction,
                     memory_cap=plan.memory_cap, history=plan.history)
    seconds = time.perf_counter() - started
    progress(100.0)
    shadow.run_id = run_id
    shadow_id = store.save(key, shadow)
    estimate = shadow.predicted_peak_rss_high or shadow.predicted_peak_rss_bytes
    if shadow.outcome != "ok" or estimate is None:
        return MirrorResult(shadow_id, shadow.outcome, None, seconds,
                            f"mirror {shadow.outcome}: {shadow.error or 'no estimate'}")
    need = int(estimate * (1 + plan.headroom))
    if plan.min_bytes is not None:
        need = max(need, plan.min_bytes)
    if plan.max_bytes is not None:
        need = min(need, plan.max_bytes)
    from mirrorscale.policy import format_bytes

    reason = (f"mirror at {plan.sample_fraction:.0%}: upper estimate {format_bytes(estimate)} "
              f"+{plan.headroom:.0%} headroom ({plan.reason})")
    return MirrorResult(shadow_id, shadow.outcome, need, seconds, reason)


def admission_from_mirror(admission: Any, result: MirrorResult) -> Any:
    """``admission`` re-sized to the mirror's need (unchanged when the mirror gave none)."""
    if admission is None or result.need_bytes is None or admission.via != "concurrency-limit":
        return admission
    units = max(1, math.ceil(result.need_bytes / admission.unit_bytes))
    if admission.capacity_units:
        units = min(units, admission.capacity_units)
    return replace(admission, units=units, reason=result.reason)
