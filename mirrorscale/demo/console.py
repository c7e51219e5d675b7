"""What the demo prints: one line per pipeline run, then the summary table (rich)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table

from mirrorscale.demo.metrics import PhaseTotals, totals, volatile_tasks
from mirrorscale.demo.runs import PipelineRun, TaskRun

__all__ = ["print_run", "print_summary", "summary_rows"]

PHASE_LABEL = {"static": "[yellow]static [/]", "enforce": "[cyan]enforce[/]"}
KIND_WORD = {"grow": "grows", "shrink": "shrinks", "spike": "spike", "": ""}
KIND_STYLE = {"spike": "bold magenta"}


def _mib(value: int | None) -> str:
    """Bytes as whole MiB (``183 MiB``), short enough for one line per run."""
    return "n/a" if value is None else f"{int(value) / (1 << 20):.0f} MiB"


def _task_phrase(run: PipelineRun, tasks: list[TaskRun]) -> str:
    """What happened to one focus task over the run's attempts."""
    first, last = tasks[0], tasks[-1]
    name = f"[bold]{first.task}[/]"
    if len(tasks) > 1 and first.task == "crunch":
        return _fanout_phrase(run, tasks)
    parts = []
    for t in tasks:
        if t.oom:
            parts.append(f"{name} [red]OOM-killed[/] at {_mib(t.allocated)} (reached {_mib(t.peak)})")
        elif run.phase == "static":
            parts.append(f"{name} limit {_mib(t.allocated)}, peak {_mib(t.peak)}")
        else:
            parts.append(_enforce_phrase(name, t))
    if len(tasks) > 1 and not last.oom:
        parts[-1] = f"rerun {last.attempt}: " + parts[-1]
    return "; ".join(parts)


def _enforce_phrase(name: str, t: TaskRun) -> str:
    life = t.lifecycle or {}
    steps = []
    if t.mirror is not None:
        steps.append(f"volatile ({life.get('volatility') or 0:.1f}): [green]mirror[/] {t.mirror['seconds']:.1f} s "
                     f"says {_mib(t.mirror.get('predicted_peak_bytes'))}")
    elif life.get("state") == "active":
        steps.append("volatile, mirror not due")
    if t.allocated is None:
        steps.append(f"not sized ({t.evidence or 'observe'})")
    else:
        steps.append(f"[green]allocated {_mib(t.allocated)}[/] ({t.evidence})")
    steps.append(f"peak {_mib(t.peak)}")
    return f"{name} " + " -> ".join(steps)


def _fanout_phrase(run: PipelineRun, tasks: list[TaskRun]) -> str:
    ok = [t for t in tasks if not t.oom]
    allocated = [t.allocated for t in tasks if t.allocated]
    peaks = [t.peak for t in ok if t.peak]
    waited = sum(t.waited for t in tasks)
    alloc = (f"{_mib(min(allocated))}..{_mib(max(allocated))}" if allocated and min(allocated) != max(allocated)
             else _mib(allocated[0]) if allocated else "n/a")
    oom = sum(t.oom for t in tasks)
    tail = f", [red]{oom} OOM-killed[/]" if oom else ""
    return (f"[bold]crunch[/] x{len(tasks)}: allocated {alloc}, peaks "
            f"{_mib(min(peaks)) if peaks else 'n/a'}..{_mib(max(peaks)) if peaks else 'n/a'}, "
            f"{waited:.1f} s waiting for memory{tail}")


def print_run(console: Console, run: PipelineRun, focus: Sequence[str]) -> None:
    """One line for one pipeline run: its input, what happened to its focus tasks, outcome and time."""
    by_task: dict[str, list[TaskRun]] = {}
    for t in run.tasks:
        by_task.setdefault(t.task, []).append(t)
    shown = [name for name in focus if name in by_task][:1]
    oom_elsewhere = [t for name, ts in by_task.items() if name not in shown for t in ts if t.oom]
    phrases = [_task_phrase(run, by_task[name]) for name in shown]
    phrases += [f"[bold]{t.task}[/] [red]OOM-killed[/] at {_mib(t.allocated)}" for t in oom_elsewhere]
    status = "[green]ok[/]" if run.ok else "[red]FAILED[/]"
    if run.attempts > 1:
        status += f" ({run.attempts} attempts)"
    word = KIND_WORD[run.run.kind]
    kind = f"[{KIND_STYLE.get(run.run.kind, 'dim')}]{word:<7}[/]"
    console.print(f"{PHASE_LABEL[run.phase]} {run.pipeline:<16} {run.run.label:<27} {kind} "
                  f"{'; '.join(phrases)} | {status} {run.seconds:.1f} s", highlight=False)


def summary_rows(runs: Sequence[PipelineRun]) -> list[dict[str, object]]:
    """Per pipeline and overall: the figures of both phases side by side."""
    names = list(dict.fromkeys(r.pipeline for r in runs)) + ["all pipelines"]
    rows = []
    for name in names:
        mine = [r for r in runs if name == "all pipelines" or r.pipeline == name]
        static = totals(r for r in mine if r.phase == "static")
        enforce = totals(r for r in mine if r.phase == "enforce")
        rows.append({"pipeline": name, "static": static, "enforce": enforce})
    return rows


def _change(before: float, after: float) -> str:
    """``after`` relative to ``before`` (``-40%``: 40 % less)."""
    return "n/a" if before <= 0 else f"{(after - before) / before:+.0%}"


def print_summary(console: Console, runs: Sequence[PipelineRun]) -> list[dict[str, object]]:
    """The final table (without vs. with mirrorscale) and the decisions behind it; returns its rows."""
    rows = summary_rows(runs)
    table = Table(title="without mirrorscale (static settings) -> with mirrorscale (enforce), as measured above")
    for header in ("pipeline", "OOM kills", "reruns", "makespan s", "change", "of it mirrors s", "mem. wastage GiB*s",
                   "change"):
        table.add_column(header, justify="left" if header == "pipeline" else "right")
    for row in rows:
        s, e = row["static"], row["enforce"]
        assert isinstance(s, PhaseTotals) and isinstance(e, PhaseTotals)
        table.add_row(str(row["pipeline"]), f"{s.oom_kills} -> {e.oom_kills}", f"{s.reruns} -> {e.reruns}",
                      f"{s.makespan:.1f} -> {e.makespan:.1f}", _change(s.makespan, e.makespan),
                      f"{e.mirror_seconds:.1f}",
                      f"{s.wasted_gib_s:.2f} -> {e.wasted_gib_s:.2f}", _change(s.wasted_gib_s, e.wasted_gib_s))
    console.print(table)
    enforce_runs = [r for r in runs if r.phase == "enforce"]
    overall = rows[-1]["enforce"]
    assert isinstance(overall, PhaseTotals)
    volatile = volatile_tasks(enforce_runs)
    shown = ", ".join(f"{name} ({score:.2f})" for name, score in sorted(volatile.items())) or "none"
    mirrors = ", ".join(f"{name} x{n}" for name, n in sorted(overall.mirrored_tasks.items())) or "none"
    console.print(f"volatile steps detected (volatility score): {shown}", highlight=False)
    console.print(f"mirrors launched on the branch each run took: {mirrors}", highlight=False)
    console.print(f"allocations applied before tasks started: {overall.sized} task runs sized by mirrorscale",
                  highlight=False)
    return rows
