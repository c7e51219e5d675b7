"""``preview``: mirror a task on sampled input and return its :class:`ResourceShadow`.

::

    from mirrorscale.mirror import preview
    shadow = preview(etl.transform, (rows,), sample_fraction=0.05)
    shadow.predicted_peak_rss_bytes, shadow.predicted_wall_seconds, shadow.evidence

``preview`` samples the input at ``sample_fraction`` (keyed by a key column
when the distinct keys grow sub-linearly, see :mod:`.keyed`; the evidence's
``keyed`` names the key and the distinct-key estimates) and draws smaller samples
from that one: a *probe* (2 % of it, 0.1 % of the input by default) that
measures what a call costs whatever its input, and 20 % of it (1 % of the
input), so the growth law is read over a factor of fifty in size. When the
task's history already spans input sizes, its full-size runs inform the
growth and the estimate and the 1 % mirror is left out; when one of the
task's newest past previews (:data:`PROBE_REUSE_RUNS`) measured a probe on the
same code (:func:`code_version`), that probe stands for today's, which is not
run (a call's fixed cost belongs to the code, not to the day's data), so only
the 5 % mirror runs. It runs one sandboxed mirror per sample, smallest first, each with
the allocator and collector scaled to the sample (see
:func:`~mirrorscale.mirror.sandbox.mimic_full_scale`), stops at the first
mirror that fails (a probe that raises only drops the probe: a tiny sample can
be too small for some code), and extrapolates to the full input size with a
fixed part plus a power law fitted to the points (see :mod:`.extrapolate`),
with the task's history as a prior when given. A mirror whose call imported
modules the warm forkserver did not have is run once more (the server now
preloads them), so import time is not read as the task's cost. The shadow is a *transient* ORM instance: store it with
``HistoryStore.save((engine, pipeline_id, task_id), shadow)``. :func:`mirror_task`
does the same only when the task's policy allows mirrors.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from mirrorscale.mirror.extrapolate import (CostPoint, Extrapolation, MirroredRun, extrapolate,
                                            history_shows_growth, peak_prior_from_keys)
from mirrorscale.mirror.samplers import SampledInput, Sampler, sample_inputs, subsample
from mirrorscale.mirror.sandbox import SandboxResult, callable_reference, run_sandboxed
from mirrorscale.mirror.transport import UnsendableInput
from mirrorscale.policy import TaskPolicy, parse_byte_size
from mirrorscale.store.models import ResourceShadow, utcnow

__all__ = ["DEFAULT_TIMEOUT", "FLEET_RUNS", "HISTORY_RUNS", "PROBE_REUSE_RUNS", "MirrorError", "default_memory_cap",
           "code_version", "measured_probe", "mirror_task", "mirrored_run", "mirrored_run_of", "past_evidence",
           "past_full_runs", "past_mirrored_runs", "peak_increase", "preview", "shadow_points"]

DEFAULT_TIMEOUT = 300.0
"""Seconds a single mirror may run before it is killed."""
HISTORY_RUNS = 20
"""Newest successful full-size runs of a task handed to the extrapolation beside its mirrors."""
FLEET_RUNS = 50
"""Other tasks' newest mirrored runs that calibrate a task with none of its own."""
PROBE_REUSE_RUNS = 5
"""A probe measured by one of the task's newest this many past previews stands for today's; else one is run."""
_FRACTION_SHARES = (0.02, 0.2, 1.0)  # the mirrors run at these shares of sample_fraction; the first probes
_WITH_HISTORY_SHARES = (0.02, 1.0)  # when past runs already show how cost grows: no 1 % mirror


class MirrorError(ValueError):
    """``preview`` was called with something that cannot be mirrored (not what the mirror did)."""


def default_memory_cap() -> int:
    """The cap used when none is given: a quarter of the memory available right now."""
    import psutil

    return int(psutil.virtual_memory().available // 4)


def _fractions(sample_fraction: float, fractions: Sequence[float] | None, shares: Sequence[float]) -> list[float]:
    chosen = sorted(set(fractions or (round(sample_fraction * share, 8) for share in shares)))
    if not chosen or any(not 0 < f <= 1 for f in chosen):
        raise MirrorError(f"sample fractions must be in (0, 1], got {chosen}")
    return chosen


def _point(sample: SampledInput, run: SandboxResult, unsized: bool) -> CostPoint:
    call = run.call
    assert call is not None
    size = 1.0 if unsized else float(max(sample.sampled_bytes, 1))
    return CostPoint(size, call.peak_rss_increase_bytes, call.cpu_seconds, call.uncontended_wall_seconds)


def _reused_entry(probe: CostPoint) -> dict[str, Any]:
    """A past run's probe as it stands in today's evidence: its point, marked ``reused``, nothing spent today."""
    return {"fraction": None, "effective_fraction": None, "probe": True, "reused": True,
            "sampled_input_bytes": probe.size, "outcome": "ok", "peak_rss_increase_bytes": probe.peak_rss_bytes,
            "cpu_seconds": probe.cpu_seconds, "wall_seconds": probe.wall_seconds, "runqueue_wait_seconds": None,
            "uncontended_wall_seconds": probe.wall_seconds, "process_cpu_seconds": 0.0, "process_wall_seconds": 0.0}


def code_version(reference: str) -> str | None:
    """A short digest of the source file of ``reference``'s module (``"module:function"``), None if not found.

    Previews record it, so a probe measured before the task's code changed is
    not reused after (a new version may cost more per call).
    """
    try:
        spec = importlib.util.find_spec(reference.split(":", 1)[0])
        origin = spec.origin if spec is not None else None
        if not origin or not origin.endswith(".py"):
            return None
        with open(origin, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()[:16]
    except Exception:  # noqa: BLE001 - finding the module imports its parents, whose errors are not the preview's
        return None


def _evidence(samples: list[SampledInput], runs: list[SandboxResult], fit: Extrapolation | None,
              note: str | None, reused: CostPoint | None = None, version: str | None = None) -> str:
    """The shadow's ``evidence``: a JSON document whose ``summary`` is one readable line."""
    mirrors = [_reused_entry(reused)] if reused is not None else []
    mirrors += [{"fraction": s.fraction, "effective_fraction": round(s.effective_fraction, 6),
                "probe": _is_probe(i, samples),
                "sampled_input_bytes": s.sampled_bytes, "outcome": r.outcome,
                "peak_rss_increase_bytes": r.call.peak_rss_increase_bytes if r.call else None,
                "cpu_seconds": r.call.cpu_seconds if r.call else None,
                "wall_seconds": r.call.wall_seconds if r.call else None,
                "runqueue_wait_seconds": r.call.runqueue_wait_seconds if r.call else None,
                "uncontended_wall_seconds": r.call.uncontended_wall_seconds if r.call else None,
                "process_cpu_seconds": r.process_cpu_seconds, "process_wall_seconds": r.process_wall_seconds}
               for i, (s, r) in enumerate(zip(samples, runs))]
    summary = fit.evidence() if fit else (note or "no estimate: the mirror did not finish")
    doc = {"summary": summary, "mirrors": mirrors, "sampled_arguments": list(samples[0].sampled) if samples else [],
           "enforcement": list(runs[-1].enforcement) if runs else [], "note": note,
           "keyed": samples[-1].features().get("keyed", {}) if samples else {}, "code_version": version,
           "distinct": samples[-1].features().get("distinct", {}) if samples else {}}
    if fit:
        doc["models"] = {m: {"model": getattr(fit, m).model, "exponent": getattr(fit, m).exponent,
                             "shares": dict(getattr(fit, m).shares), "dominant": getattr(fit, m).dominant}
                         for m in ("peak_rss_bytes", "cpu_seconds", "wall_seconds")}
    return json.dumps(doc, sort_keys=True)


def _shadow(sample_fraction: float, samples: list[SampledInput], runs: list[SandboxResult],
            fit: Extrapolation | None, note: str | None, spent: list[SandboxResult],
            reused: CostPoint | None = None, version: str | None = None) -> ResourceShadow:
    failed = next((r for r in runs if r.outcome != "ok"), None)
    main = samples[-1] if samples else None
    main_run = runs[-1] if runs else None
    columns: dict[str, Any] = {
        "created_at": utcnow(), "outcome": failed.outcome if failed else "ok",
        "error": failed.error if failed else None, "sample_fraction": sample_fraction,
        "sampled_input_bytes": main.sampled_bytes if main else None,
        "full_input_bytes": main.full_bytes if main else None,
        "cost_peak_rss_bytes": max((r.process_peak_rss_bytes for r in spent), default=None),
        "cost_cpu_seconds": sum(r.process_cpu_seconds for r in spent),
        "cost_wall_seconds": sum(r.process_wall_seconds for r in spent),
        "measured_peak_rss_increase_bytes": main_run.call.peak_rss_increase_bytes
        if main_run and main_run.call else None,
        "evidence": _evidence(samples, runs, fit, note, reused, version),
    }
    if fit is not None:
        peak, cpu, wall = fit.peak_rss_bytes, fit.cpu_seconds, fit.wall_seconds
        columns.update(
            predicted_peak_rss_bytes=round(peak.value), predicted_peak_rss_low=round(peak.low),
            predicted_peak_rss_high=round(peak.high), predicted_cpu_seconds=cpu.value, predicted_cpu_low=cpu.low,
            predicted_cpu_high=cpu.high, predicted_wall_seconds=wall.value, predicted_wall_low=wall.low,
            predicted_wall_high=wall.high)
    return ResourceShadow(**columns)


def _run(reference: str, sample: SampledInput, cap: int, timeout: float | None, niceness: int,
         preload: tuple[str, ...]) -> SandboxResult:
    """One mirror; again (once) when its call imported modules, now preloaded, so imports are not its cost."""
    scale = sample.effective_fraction if sample.sampled and sample.full_bytes else None
    options = {"memory_cap": cap, "timeout": timeout, "niceness": niceness, "preload": preload, "scale": scale}
    try:
        run = run_sandboxed(reference, sample.args, sample.kwargs, **options)
    except UnsendableInput as exc:
        raise MirrorError(str(exc)) from None
    if run.outcome == "ok" and run.call is not None and run.call.imported:
        again = run_sandboxed(reference, sample.args, sample.kwargs, **options)
        cost = run.process_cpu_seconds + again.process_cpu_seconds
        wall = run.process_wall_seconds + again.process_wall_seconds
        run = replace(again, process_cpu_seconds=cost, process_wall_seconds=wall)
    return run


def _samples(args: Sequence[Any], kwargs: Mapping[str, Any] | None, chosen: list[float], seed: int,
             samplers: Mapping[str | int, Sampler | str] | None) -> list[SampledInput]:
    """The samples of every fraction, smallest first: the largest from the input, the rest from it."""
    largest = sample_inputs(args, kwargs, fraction=chosen[-1], seed=seed, samplers=samplers)
    if not largest.sampled:
        return [largest]  # nothing sized: one run of the whole input
    return [subsample(largest, f, samplers) for f in chosen[:-1]] + [largest]


def _is_probe(index: int, samples: list[SampledInput]) -> bool:
    """The smallest of several samples, far smaller than the next: it measures the fixed cost."""
    return index == 0 and len(samples) >= 2 and samples[0].fraction * 5 <= samples[1].fraction


def preview(fn: Callable[..., Any] | str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None, *,
            sample_fraction: float = 0.05, fractions: Sequence[float] | None = None,
            samplers: Mapping[str | int, Sampler | str] | None = None, seed: int = 0,
            timeout: float | None = DEFAULT_TIMEOUT, memory_cap: int | str | None = None, niceness: int = 10,
            history: Sequence[CostPoint | tuple[float, float, float, float]] = (),
            mirrored: Sequence[MirroredRun] = (), preload: Sequence[str] = ()) -> ResourceShadow:
    """Mirror ``fn(*args, **kwargs)`` on samples of its input and return the extrapolated shadow.

    ``fn`` is an importable module-level callable (or ``"module:function"``).
    ``fractions`` overrides the sample fractions (default 0.02, 0.2 and 1 times
    ``sample_fraction``; 0.02 and 1 times when ``history`` spans input sizes by
    1.5x or more, since its full-size runs then inform the growth and a middle
    mirror would mostly cost CPU; only 1 times when, besides, one of the newest
    :data:`PROBE_REUSE_RUNS` of ``mirrored`` measured a probe on the same
    :func:`code_version`, which then stands for today's); ``samplers`` names custom samplers per argument (see
    :func:`~mirrorscale.mirror.samplers.sample_inputs`). ``memory_cap`` (bytes or
    ``"512MiB"``; default :func:`default_memory_cap`) limits each mirror's RSS
    increase and ``timeout`` its seconds; ``niceness`` is added to the mirror's.
    ``history`` holds past full runs as ``(input_size, peak, cpu, wall)``;
    ``mirrored`` past runs that were mirrored too, whose misses calibrate the
    mirrors' CPU and wall time (see :func:`~mirrorscale.mirror.extrapolate.mirror_bias`).

    Never raises for what the mirror does: a mirror that exceeds its cap or
    timeout is killed and reported (outcome ``memory_cap`` / ``timeout``), one
    that raises is reported with outcome ``error`` and the message. Raises
    :class:`MirrorError` only for arguments that cannot be mirrored (a callable
    that is not importable, fractions out of range, an argument that cannot be
    pickled to reach the mirror process).
    """
    try:
        reference = callable_reference(fn)
    except ValueError as exc:
        raise MirrorError(str(exc)) from None
    cap = default_memory_cap() if memory_cap is None else parse_byte_size(memory_cap)
    grew, version = history_shows_growth(history), code_version(reference)
    reused = _reusable_probe(mirrored, version) if grew and fractions is None else None
    shares = (1.0,) if reused is not None else _WITH_HISTORY_SHARES if grew else _FRACTION_SHARES
    chosen = _fractions(sample_fraction, fractions, shares)
    planned = _samples(args, kwargs, chosen, seed, samplers)
    samples: list[SampledInput] = []
    runs: list[SandboxResult] = []
    spent: list[SandboxResult] = []  # every mirror run, a dropped probe included
    note = None
    for index, sample in enumerate(planned):
        run = _run(reference, sample, cap, timeout, niceness, tuple(preload))
        spent.append(run)
        if run.outcome == "error" and _is_probe(index, planned):
            note = f"the probe on {sample.fraction:.4%} of the input failed ({run.error}); fixed cost not measured"
            continue
        samples.append(sample)
        runs.append(run)
        if run.outcome != "ok":
            break  # a failure ends the preview
    unsized = not planned[-1].sampled
    if unsized:
        note, reused = "nothing to sample: the mirror ran the full input", None
    elif reused is not None:
        note = "the probe is a past preview's (a call's fixed cost belongs to the code): not run today"
    fit = None
    if runs and all(r.outcome == "ok" for r in runs):
        points = [reused] if reused is not None else []
        points += [_point(s, r, unsized) for s, r in zip(samples, runs)]
        target = 1.0 if unsized else float(max(samples[-1].full_bytes, 1))
        main = planned[-1]
        peak_prior = peak_prior_from_keys((main.profiles[name].heaps_exponent for name in main.counted),
                                          keyed=bool(main.plans))
        fit = extrapolate(points, target, history=[] if unsized else history,
                          priors={"peak_rss_bytes": peak_prior} if peak_prior else None,
                          mirrored=() if unsized else mirrored)
    return _shadow(sample_fraction, samples, runs, fit, note, spent, reused, version)


def _reusable_probe(mirrored: Sequence[MirroredRun], version: str | None) -> CostPoint | None:
    """The newest probe measured on code ``version`` among the task's own newest :data:`PROBE_REUSE_RUNS`
    mirrored runs, or None.

    Older probes are not reused, so a probe is measured again at least every
    that many previews, and at once after the task's module changed.
    """
    own = [run for run in mirrored if run.own][-PROBE_REUSE_RUNS:]
    return next((run.probe for run in reversed(own) if run.probe is not None and run.code_version == version), None)


def past_full_runs(store: Any, key: tuple[str, str, str], limit: int = HISTORY_RUNS,
                   ) -> tuple[tuple[float, float, float, float], ...]:
    """``(input_size, peak, cpu, wall)`` of task ``key``'s newest successful runs in ``store``, oldest first.

    What :func:`preview` takes as ``history``. ``peak`` is the run's peak RSS
    *increase*, as a mirror measures it: a trace that holds its process's whole
    peak (Airflow's, with ``features.baseline_rss_bytes``) has that baseline
    taken off. Runs without a measured peak rise or input size say nothing about
    growth and are left out.
    """
    return _full_runs(_recent_traces(store, key, limit), limit)


def _recent_traces(store: Any, key: tuple[str, str, str], limit: int) -> list[Any]:
    """The task's newest traces that :func:`past_full_runs` and :func:`past_mirrored_runs` read (one query)."""
    return store.traces_since(key, None, limit=max(50, 2 * limit))


def _full_runs(traces: Sequence[Any], limit: int) -> tuple[tuple[float, float, float, float], ...]:
    runs = ((t, peak_increase(t)) for t in traces if t.outcome == "success" and t.input_size_bytes)
    return tuple((float(t.input_size_bytes), float(peak), float(t.cpu_seconds or 0), float(t.wall_seconds or 0))
                 for t, peak in runs if peak)[-limit:]


def past_mirrored_runs(store: Any, key: tuple[str, str, str], limit: int = HISTORY_RUNS) -> tuple[MirroredRun, ...]:
    """Task ``key``'s newest runs that were mirrored before they ran, oldest first (see :func:`mirrored_run`).

    A task with none of its own gets other tasks' newest ones (``own=False``,
    up to :data:`FLEET_RUNS`): their mirrors' usual miss on this installation.
    """
    return _mirrored_runs(store, key, _recent_traces(store, key, limit), limit)


def _mirrored_runs(store: Any, key: tuple[str, str, str], traces: Sequence[Any],
                   limit: int) -> tuple[MirroredRun, ...]:
    shadows = store.recent_shadows(key, limit=limit)
    by_run = {t.run_id: t for t in traces if t.outcome == "success"}
    runs = (mirrored_run(shadow, by_run.get(shadow.run_id)) for shadow in reversed(shadows) if shadow.run_id)
    own = tuple(run for run in runs if run is not None)
    if own:
        return own
    fleet = (mirrored_run(shadow, trace) for shadow, trace in reversed(
        store.recent_mirrored_runs(limit=FLEET_RUNS, exclude=key)))
    return tuple(replace(run, own=False) for run in fleet if run is not None)


def mirrored_run(shadow: Any, trace: Any) -> MirroredRun | None:
    """A stored shadow and its run's trace as a :class:`MirroredRun`; None when either cannot say.

    The mirrors' points come from the shadow's evidence; the run's size is the
    shadow's ``full_input_bytes`` (measured as its samples were), its cost the
    trace's CPU, wall time and peak increase (:func:`peak_increase`).
    """
    if (shadow.outcome != "ok" or not shadow.full_input_bytes or trace is None or trace.outcome != "success"
            or trace.cpu_seconds is None or trace.wall_seconds is None):
        return None
    actual = CostPoint(float(shadow.full_input_bytes), float(peak_increase(trace)), float(trace.cpu_seconds),
                       float(trace.wall_seconds))
    run = mirrored_run_of(shadow, actual)
    return run if run.mirror else None


def mirrored_run_of(shadow: Any, actual: CostPoint) -> MirroredRun:
    """The :class:`MirroredRun` of a shadow whose run cost ``actual``: its points, measured probe and code version.

    The shadow's evidence is read once for all three.
    """
    doc = _evidence_of(shadow)
    finished = _finished_mirrors(doc)
    version = doc.get("code_version")
    return MirroredRun(tuple(point for _, point in finished), actual, probe=_measured(finished),
                       code_version=version if isinstance(version, str) else None)


def _evidence_of(shadow: Any) -> dict[str, Any]:
    """A shadow's evidence document ({} when it holds none or cannot be read)."""
    try:
        doc = json.loads(shadow.evidence or "{}")
    except (ValueError, TypeError, AttributeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _finished_mirrors(doc: dict[str, Any]) -> list[tuple[dict[str, Any], CostPoint]]:
    """Each finished mirror of an evidence document with its point ([] for evidence of another layout)."""
    try:
        return [(m, CostPoint(float(m["sampled_input_bytes"]), float(m["peak_rss_increase_bytes"]),
                              float(m["cpu_seconds"]), float(m["uncontended_wall_seconds"])))
                for m in doc.get("mirrors") or [] if m.get("outcome") == "ok"]
    except (ValueError, TypeError, KeyError, AttributeError):
        return []


def _measured(finished: list[tuple[dict[str, Any], CostPoint]]) -> CostPoint | None:
    return next((point for m, point in finished if m.get("probe") and not m.get("reused")), None)


def shadow_points(shadow: Any) -> tuple[CostPoint, ...]:
    """The points a shadow's fit used, read back from its evidence (() if it holds none): its finished
    mirrors and a probe it reused from a past preview."""
    return tuple(point for _, point in _finished_mirrors(_evidence_of(shadow)))


def measured_probe(shadow: Any) -> CostPoint | None:
    """The point of the probe the shadow's preview ran itself (None when it had none or reused one)."""
    return _measured(_finished_mirrors(_evidence_of(shadow)))


def past_evidence(store: Any, key: tuple[str, str, str]) -> dict[str, tuple[Any, ...]]:
    """What :func:`preview` takes from task ``key``'s past: ``history`` and ``mirrored`` (as keywords).

    The task's traces are read once for both.
    """
    traces = _recent_traces(store, key, HISTORY_RUNS)
    return {"history": _full_runs(traces, HISTORY_RUNS),
            "mirrored": _mirrored_runs(store, key, traces, HISTORY_RUNS)}


def peak_increase(trace: Any) -> int:
    """How far ``trace``'s run raised its process's RSS: its peak less ``features.baseline_rss_bytes`` (0 if none)."""
    baseline = (trace.features or {}).get("baseline_rss_bytes") or 0
    if isinstance(baseline, bool) or not isinstance(baseline, (int, float)) or not math.isfinite(baseline):
        baseline = 0  # a malformed feature (the allocator skips such traces with a warning)
    return max(0, int(trace.peak_rss_bytes or 0) - int(baseline))


def mirror_task(fn: Callable[..., Any] | str, args: Sequence[Any] = (), kwargs: Mapping[str, Any] | None = None,
                *, policy: TaskPolicy, store: Any = None, key: tuple[str, str, str] | None = None,
                **options: Any) -> ResourceShadow | None:
    """:func:`preview` a task only when ``policy.mirror`` allows it; None otherwise.

    Uses the policy's ``sample_fraction`` and ``samplers`` and caps the mirror at the policy's
    ``memory.max_allowed`` when set. With ``store`` and ``key`` the task's past
    full runs (:func:`past_full_runs`) are the extrapolation's ``history`` and its
    past mirrored runs (:func:`past_mirrored_runs`) its ``mirrored``, unless given,
    and the shadow is saved through ``store.save(key, shadow)``.
    """
    if not policy.mirror:
        return None
    options.setdefault("sample_fraction", policy.sample_fraction)
    if policy.samplers:
        options.setdefault("samplers", dict(policy.samplers))
    if policy.memory.max_allowed is not None:
        options.setdefault("memory_cap", policy.memory.max_allowed)
    if store is not None and key is not None:
        for name, value in past_evidence(store, key).items():
            options.setdefault(name, value)
    shadow = preview(fn, args, kwargs, **options)
    if store is not None and key is not None:
        store.save(key, shadow)
    return shadow
