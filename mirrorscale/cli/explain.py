"""``mirrorscale explain TASK``: why the task's last allocation is what it is.

Shows the allocation with its reason, the history summary behind it, the
shadow it used (else the newest one), the volatility score with the hotspot
reason, and the mirror life-cycle state. Heavy modules (numpy through the
predictors) are imported inside the command, never when the CLI loads.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

import typer

from mirrorscale.cli.app import app, console, fail, print_json
from mirrorscale.policy import format_bytes

_RECENT = 50


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def allocation_dict(allocation: Any) -> dict[str, Any] | None:
    """A JSON-ready view of an :class:`Allocation` (None stays None)."""
    if allocation is None:
        return None
    keys = ("id", "run_id", "try_number", "mode", "applied", "memory_bytes", "cpu", "pool", "pool_slots",
            "priority_weight", "queue", "executor_options", "source", "reason", "shadow_id")
    return {**{k: getattr(allocation, k) for k in keys}, "created_at": _when(allocation.created_at)}


def history_dict(traces: list[Any]) -> dict[str, Any]:
    """Summary of the task's recent runs (oldest first in ``traces``)."""
    ok = [t for t in traces if t.outcome == "success" and t.peak_rss_bytes]
    outcomes: dict[str, int] = {}
    for t in traces:
        outcomes[t.outcome] = outcomes.get(t.outcome, 0) + 1
    last = traces[-1] if traces else None
    walls = [t.wall_seconds for t in ok if t.wall_seconds is not None]
    return {
        "runs": len(traces), "window": _RECENT, "outcomes": outcomes,
        "median_peak_rss_bytes": int(statistics.median(t.peak_rss_bytes for t in ok)) if ok else None,
        "max_peak_rss_bytes": max((t.peak_rss_bytes for t in ok), default=None),
        "median_wall_seconds": statistics.median(walls) if walls else None,
        "last": None if last is None else {"run_id": last.run_id, "outcome": last.outcome,
                                           "started_at": _when(last.started_at),
                                           "peak_rss_bytes": last.peak_rss_bytes,
                                           "allocated_memory_bytes": last.allocated_memory_bytes},
    }


def shadow_dict(shadow: Any, used: bool) -> dict[str, Any] | None:
    """A JSON-ready view of a shadow and whether the allocation used it."""
    if shadow is None:
        return None
    evidence = json.loads(shadow.evidence) if shadow.evidence else {}
    keys = ("id", "run_id", "outcome", "error", "sample_fraction", "predicted_peak_rss_bytes",
            "predicted_peak_rss_low", "predicted_peak_rss_high", "predicted_cpu_seconds", "predicted_wall_seconds",
            "cost_cpu_seconds")
    return {**{k: getattr(shadow, k) for k in keys}, "created_at": _when(shadow.created_at), "used": used,
            "evidence": evidence.get("summary") if isinstance(evidence, dict) else None}


def mirror_dict(state: Any) -> dict[str, Any]:
    """The current mirror life-cycle state (``none`` when never mirrored)."""
    if state is None:
        return {"state": "none", "reason": "never mirrored", "since": None, "volatility": None, "details": {}}
    return {"state": state.state, "reason": state.reason, "since": _when(state.created_at),
            "volatility": state.volatility, "details": state.details}


def explanation(store: Any, key: tuple[str, str, str], policies: Any) -> dict[str, Any]:
    """Everything ``explain`` shows for task ``key``, as one JSON-ready dict."""
    from mirrorscale.lifecycle import MirrorLifecycle

    allocation = store.latest_allocation(key)
    traces = store.traces_since(key, None, limit=_RECENT)
    shadow_id = allocation.shadow_id if allocation is not None else None
    shadow = store.shadow(shadow_id) if shadow_id else store.latest_shadow(key)
    report = MirrorLifecycle(store, policies).assess(traces)
    policy = policies.for_task(key[1], key[2])
    out = {
        "task": {"engine": key[0], "pipeline_id": key[1], "task_id": key[2]},
        "policy": policy.model_dump(mode="json"),
        "allocation": allocation_dict(allocation),
        "history": history_dict(traces),
        "shadow": shadow_dict(shadow, used=bool(shadow_id)),
        "volatility": {"score": report.score, "hotspot": report.hotspot, "reason": report.reason},
        "mirror": mirror_dict(store.latest_mirror_state(key)),
        "would_decide": None,
    }
    if allocation is None:  # mode observe stores nothing: show what the allocator would decide now
        from mirrorscale.allocator import Allocator

        out["would_decide"] = allocation_dict(Allocator(store, policies).decide(key, "(explain)", save=False))
    return out


def _b(value: Any) -> str:
    return "-" if value is None else format_bytes(value)


def _allocation_lines(label: str, a: dict[str, Any]) -> list[str]:
    applied = "applied" if a["applied"] else "not applied"
    cpu = a["cpu"] if a["cpu"] is not None else "-"
    sizes = (f"  memory {_b(a['memory_bytes'])}, cpu {cpu}, pool {a['pool'] or '-'} x{a['pool_slots']}, "
             f"priority {a['priority_weight']}, queue {a['queue'] or '-'}, source {a['source']}")
    return [f"{label} #{a['id'] or '-'} for run {a['run_id']} (try {a['try_number']}), mode {a['mode']}, {applied}",
            sizes, f"  reason: {a['reason']}"]


def render(doc: dict[str, Any]) -> str:
    """The explanation as plain text."""
    t, p, h, v, m = doc["task"], doc["policy"], doc["history"], doc["volatility"], doc["mirror"]
    head = (f"task {t['engine']} {t['pipeline_id']}.{t['task_id']}: policy mode {p['mode']}, "
            f"mirror {'on' if p['mirror'] else 'off'}, headroom {p['headroom']:.0%}, "
            f"memory [{_b(p['memory']['min_allowed'])}, {_b(p['memory']['max_allowed'])}]")
    lines = [head]
    if doc["allocation"]:
        lines += _allocation_lines("allocation", doc["allocation"])
    else:
        lines.append("allocation: none stored (mode observe stores none, or no run was sized yet)")
        if doc["would_decide"]:
            lines += _allocation_lines("would decide now", doc["would_decide"])
    outcomes = ", ".join(f"{n} {o}" for o, n in sorted(h["outcomes"].items())) or "no runs"
    wall = "-" if h["median_wall_seconds"] is None else f"{h['median_wall_seconds']:.1f} s"
    lines.append(f"history: {h['runs']} recent run(s) ({outcomes}); peak median {_b(h['median_peak_rss_bytes'])}, "
                 f"max {_b(h['max_peak_rss_bytes'])}; wall median {wall}")
    s = doc["shadow"]
    if s:
        lines.append(f"shadow #{s['id']} ({'used by this allocation' if s['used'] else 'newest, not used'}): "
                     f"{s['sample_fraction']:.0%} sample, {s['outcome']}, peak {_b(s['predicted_peak_rss_bytes'])} "
                     f"({_b(s['predicted_peak_rss_low'])}..{_b(s['predicted_peak_rss_high'])}); {s['evidence'] or ''}")
    else:
        lines.append("shadow: none")
    lines.append(f"volatility: {v['score']:.3f} ({v['reason']})")
    lines.append(f"mirror: {m['state']}" + (f" since {m['since']}" if m["since"] else "") + f": {m['reason']}")
    return "\n".join(lines)


@app.command("explain")
def explain_command(
    task: str = typer.Argument(..., help="Task id, pipeline_id.task_id, or a glob matching one task."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON only."),
) -> None:
    """Why the last allocation of TASK is what it is: reason, history, shadow, volatility, mirror state."""
    from mirrorscale.policy import PolicyError, load_policies
    from mirrorscale.store.history import HistoryStore

    store = HistoryStore.open()
    matches = store.find_tasks(task)
    if not matches:
        raise fail(f"no task named {task!r} in the store; `mirrorscale history --summary` lists them")
    if len(matches) > 1:
        names = ", ".join(f"{m.engine}:{m.key}" for m in matches[:10])
        raise fail(f"{task!r} matches {len(matches)} tasks ({names}); name one as pipeline_id.task_id")
    found = matches[0]
    try:
        policies = load_policies()
    except PolicyError as exc:
        raise fail(str(exc)) from None
    doc = explanation(store, (found.engine, found.pipeline_id, found.task_id), policies)
    if as_json:
        print_json(doc)
    else:
        console.print(render(doc), highlight=False, soft_wrap=True, markup=False)
