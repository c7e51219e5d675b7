"""The demo's HTML report: the summary, the decisions, and plots of forecast vs. actual and wastage over time.

Everything in it comes from the pipeline runs of this demo (:class:`PipelineRun`,
read back from the history store); the page is written by
:class:`mirrorscale.report.HtmlReport` and needs no network to open.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path

from mirrorscale.demo.metrics import GiB, PhaseTotals, totals, volatile_tasks
from mirrorscale.demo.runs import PipelineRun
from mirrorscale.demo.scenario import Pipeline
from mirrorscale.policy import format_bytes
from mirrorscale.report import HtmlReport, png_data_uri

__all__ = ["forecast_points", "wastage_figure", "write_report"]


def forecast_points(runs: Sequence[PipelineRun], task: str) -> list:
    """One plot point per attempt of ``task``: ``S3`` = static run 3, ``E3`` = enforce run 3.

    The forecast is drawn for the enforce phase only (in the static phase the
    allocation is the task's own setting, whatever was forecast).
    """
    from mirrorscale.web.plots import PlotPoint

    points = []
    for run in runs:
        for t in run.tasks:
            if t.task != task:
                continue
            label = f"{run.phase[0].upper()}{run.index + 1}" + (f"/{t.attempt}" if t.attempt > 1 else "")
            forecast = t.forecast if run.phase == "enforce" else None
            points.append(PlotPoint(label=label, actual=t.peak, forecast=forecast, allocated=t.allocated,
                                    failed=t.oom))
    return points


def wastage_figure(runs: Sequence[PipelineRun]) -> str:
    """Cumulative memory wastage and makespan over the pipeline runs of each phase, as a PNG data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for phase, color, name in (("static", "#d62728", "without mirrorscale (static)"),
                               ("enforce", "#2ca02c", "with mirrorscale (enforce)")):
        mine = [r for r in runs if r.phase == phase]
        wasted, spent, total_w, total_s = [], [], 0.0, 0.0
        for run in mine:
            total_w += run.wasted_byte_seconds / GiB
            total_s += run.seconds
            wasted.append(total_w)
            spent.append(total_s)
        xs = list(range(1, len(mine) + 1))
        left.plot(xs, wasted, color=color, label=name, marker=".")
        right.plot(xs, spent, color=color, label=name, marker=".")
        for x, run in zip(xs, mine):
            if run.oom_kills:
                left.plot([x], [wasted[x - 1]], "x", color="black", markersize=8)
    left.set(title="memory wastage over time (x: a run with an OOM kill)", xlabel="pipeline run, in order",
             ylabel="cumulative GiB x s")
    right.set(title="makespan over time", xlabel="pipeline run, in order", ylabel="cumulative seconds")
    for axis in (left, right):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    return png_data_uri(figure)


def _phase_rows(runs: Sequence[PipelineRun]) -> list[list[str]]:
    rows = []
    for pipeline in dict.fromkeys(r.pipeline for r in runs):
        s = totals(r for r in runs if r.pipeline == pipeline and r.phase == "static")
        e = totals(r for r in runs if r.pipeline == pipeline and r.phase == "enforce")
        rows.append(_row(pipeline, s, e))
    rows.append(_row("all pipelines", totals(r for r in runs if r.phase == "static"),
                     totals(r for r in runs if r.phase == "enforce")))
    return rows


def _row(name: str, s: PhaseTotals, e: PhaseTotals) -> list[str]:
    return [name, f"{s.oom_kills} -> {e.oom_kills}", f"{s.reruns} -> {e.reruns}",
            f"{s.makespan:.1f} -> {e.makespan:.1f}", f"{e.mirror_seconds:.1f}",
            f"{s.wasted_gib_s:.2f} -> {e.wasted_gib_s:.2f}",
            f"{s.allocated_gib_s:.2f} -> {e.allocated_gib_s:.2f}"]


def _run_rows(runs: Sequence[PipelineRun]) -> list[list[str]]:
    rows = []
    for r in runs:
        mirrors = sum(t.mirror is not None for t in r.tasks)
        rows.append([r.phase, r.pipeline, r.run.label, r.run.kind, str(r.attempts), str(r.oom_kills), str(mirrors),
                     f"{r.seconds:.1f}", f"{r.wasted_byte_seconds / GiB:.2f}"])
    return rows


def write_report(path: Path, runs: Sequence[PipelineRun], pipelines: Sequence[Pipeline], *, store_url: str,
                 wall_seconds: float, extra_png: Path | None = None, commands: Sequence[str] = ()) -> Path:
    """Write the demo's report to ``path`` and return it."""
    from mirrorscale.web.plots import forecast_vs_actual_svg

    report = HtmlReport("mirrorscale demo: the example pipelines without and with mirrorscale")
    enforce = totals(r for r in runs if r.phase == "enforce")
    report.paragraph(
        f"Each Prefect example pipeline ran its schedule of inputs (growing, shrinking and spiking) twice on this "
        f"machine, in {wall_seconds:.0f} s in all: first without mirrorscale (every task held to its own static "
        "memory setting, and stopped above it like a container's OOM killer would; a failed run is rerun with the "
        "limits times the attempt number), then with mirrorscale in mode enforce (each task sized before it "
        "starts, from its history and, for volatile tasks, from a mirror run on a sample of today's input). "
        f"History store: {store_url}.")
    report.heading("Summary (without -> with mirrorscale)")
    report.table(["pipeline", "OOM kills", "reruns", "makespan s", "of it mirrors s", "memory wastage GiB*s",
                  "memory allocated GiB*s"],
                 _phase_rows(runs))
    volatile = volatile_tasks(r for r in runs if r.phase == "enforce")
    report.bullets([
        "volatile steps detected: " + (", ".join(f"{k} (score {v:.2f})" for k, v in sorted(volatile.items()))
                                      or "none"),
        "mirrors launched: " + (", ".join(f"{k} x{n}" for k, n in sorted(enforce.mirrored_tasks.items())) or "none"),
        f"task runs sized by mirrorscale before they started: {enforce.sized}",
        "wastage = (allocation - peak) x wall time per task attempt; a killed attempt wastes its whole allocation",
    ])
    report.heading("Wastage and makespan over time")
    report.figure_png(wastage_figure(runs), caption="Cumulative memory wastage (left) and wall time (right) of the "
                      "pipeline runs, in the order they ran, for each phase.")
    report.heading("Forecast vs. actual peak memory")
    for pipeline in pipelines:
        for task in pipeline.focus:
            points = forecast_points([r for r in runs if r.pipeline == pipeline.name], task)
            if not points:
                continue
            svg = forecast_vs_actual_svg(points, title=f"{pipeline.name}.{task}: peak memory per run")
            report.figure_svg(svg, caption=f"{pipeline.name}.{task}: measured peak (blue), forecast made before "
                              "the run (orange, enforce phase), allocation (green steps), OOM-killed attempts "
                              "(red crosses). S = without mirrorscale, E = with; /2 = second attempt.")
    report.heading("Every pipeline run")
    report.table(["phase", "pipeline", "input", "change", "attempts", "OOM kills", "mirrors", "seconds",
                  "wastage GiB*s"], _run_rows(runs))
    if extra_png is not None and extra_png.exists():
        report.heading("Replay of recorded nf-core traces")
        uri = "data:image/png;base64," + base64.b64encode(extra_png.read_bytes()).decode("ascii")
        report.figure_png(uri, caption="Cumulative memory wastage per sizing method when recorded nf-core "
                          "Nextflow traces are replayed (mirrorscale replay FILES).")
    report.heading("Look further")
    report.bullets(list(commands))
    report.paragraph(f"Peak memory is the rise of the task process's resident memory while it ran; sizes like "
                     f"{format_bytes(64 << 20)} are binary (MiB).", note=True)
    return report.write(path)
