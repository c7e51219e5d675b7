"""The demo's figures, all computed from what was measured and stored during the run.

=====================  ==========================================================
figure                 how
=====================  ==========================================================
OOM kills              task attempts stopped for outgrowing their allocation
reruns                 pipeline runs that had to be run again after a failure
makespan               wall time of every attempt of every pipeline run, summed
                       (mirror runs included: they run before their task)
memory wastage         per task attempt: (allocation - peak) x wall time for a
                       success, allocation x wall time for a killed attempt
                       (the replay's accounting); in GiB x seconds
allocated              allocation x wall time, summed (GiB x seconds)
=====================  ==========================================================
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from mirrorscale.demo.runs import PipelineRun

__all__ = ["GiB", "PhaseTotals", "totals", "volatile_tasks", "write_summary"]

GiB = float(1 << 30)


@dataclass
class PhaseTotals:
    """The figures of one phase (optionally of one pipeline)."""

    runs: int = 0
    reruns: int = 0
    failed: int = 0
    oom_kills: int = 0
    makespan: float = 0.0
    wasted_gib_s: float = 0.0
    allocated_gib_s: float = 0.0
    mirrors: int = 0
    mirror_seconds: float = 0.0
    sized: int = 0
    mirrored_tasks: dict[str, int] = field(default_factory=dict)


def totals(runs: Iterable[PipelineRun]) -> PhaseTotals:
    """Add up ``runs`` (see the module docstring)."""
    out = PhaseTotals()
    for run in runs:
        out.runs += 1
        out.reruns += run.attempts - 1
        out.failed += not run.ok
        out.makespan += run.seconds
        for task in run.tasks:
            out.oom_kills += task.oom
            out.wasted_gib_s += task.wasted_byte_seconds / GiB
            out.allocated_gib_s += (task.allocated or 0) * task.wall / GiB
            out.sized += task.allocated is not None
            if task.mirror is not None:
                out.mirrors += 1
                out.mirror_seconds += float(task.mirror.get("seconds") or 0.0)
                name = f"{run.pipeline}.{task.task}"
                out.mirrored_tasks[name] = out.mirrored_tasks.get(name, 0) + 1
    return out


def volatile_tasks(runs: Iterable[PipelineRun]) -> dict[str, float]:
    """``pipeline.task -> highest volatility score`` of the tasks the mirror life cycle found volatile."""
    found: dict[str, float] = {}
    for run in runs:
        for task in run.tasks:
            life = task.lifecycle or {}
            if life.get("state") == "active" and life.get("volatility") is not None:
                name = f"{run.pipeline}.{task.task}"
                found[name] = max(found.get(name, 0.0), float(life["volatility"]))
    return found


def write_summary(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    """Write the summary rows (``pipeline``, ``static``, ``enforce`` totals) as JSON; returns the path."""
    out = [{"pipeline": r["pipeline"], "static": asdict(r["static"]), "enforce": asdict(r["enforce"])} for r in rows]
    path.write_text(json.dumps(out, indent=2) + "\n")
    return path
