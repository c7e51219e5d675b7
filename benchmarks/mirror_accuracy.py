"""How well does a 5 % mirror predict the full run? Prints one row per workload.

    .venvs/core/bin/python benchmarks/mirror_accuracy.py [--only NAME ...] [--fraction 0.05] [--repeat 3]
        [--rows-only] [--history [SHARE ...] [--drift]] [--no-calibration] [--json FILE]
        [--plot PNG [--compare OTHER.json ...] [--plot-only]]

For each workload of :mod:`workloads`, ``preview()`` mirrors the task with its
defaults (a probe on 0.1 % of the input, samples at 1 % and 5 %, niceness +10;
with ``--history`` the 1 % sample is left out and a past preview's probe stands for today's;
a DataFrame whose integer keys grow sub-linearly is sampled by key, a list of
keys is profiled: see :mod:`mirrorscale.mirror.keyed` and :mod:`mirrorscale.mirror.distinct`), then the full input runs in the same sandbox (a separate
process, same monitor, niceness 0, nothing scaled) so both are measured the
same way, twice in a row. The table judges the second full run: on this VM
memory that has been free for a few seconds is handed back to the host, and
faulting it in again costs about ten times more system time (measured: 768 MB
of fresh numpy pages took 1.3-1.6 s of system time in a process started cold,
0.08-0.1 s right after another process freed 1.2 GB). A full run that needs
more fresh memory than was freed recently pays that; a 5 % mirror never does,
and no sample can show it. The second run starts with the first run's memory
just freed, as on a host that keeps its free memory; ``cold err`` compares
with the first run. Columns:

* ``peak err``: predicted peak RSS increase / measured - 1;
* ``wall* err``: predicted wall time / the full run's wall minus the time its
  threads waited for a CPU - 1 (this machine is shared); ``raw err`` uses the
  measured wall; ``cold err`` is ``wall* err`` against the first (cold) full run;
* ``mirror cpu``: what the preview cost as a share of the full call's CPU
  seconds: every mirror process (unpickling, monitor, the calls), the warm
  forkserver's CPU while it forked them (``fork s``), and the caller's own CPU for
  sampling, pickling and supervising them (``caller s``). Only the forkserver's
  one-time imports are left out (printed at the end); ``fork s`` is ``?`` and
  not counted when the server restarted during the preview to load modules.
* ``p``: the growth exponents the fit chose for peak / CPU / wall.

``--rows-only`` samples every argument by position (no keyed samples, no key
profiles), to compare; ``--history`` first runs the task on 25 % and 50 % of
its input (or on the shares given: ``--history 0.125 0.25 0.375 0.5``; row
samples, each run twice and the second measured, like the full run), previews
each of those runs first (``--no-calibration``: not), and gives them to
``preview`` as the task's past full runs and past mirrored runs. The summary
then also says what history alone and today's mirrors alone (uncalibrated and
calibrated) would have predicted; without history, what each workload's
mirrors read when calibrated by the other workloads' mirrored runs (leave one
out). ``--drift`` (with ``--history``) gives the past runs yesterday's input
and today's preview and full run an input changed in content (each
workload's ``drifted`` input: more distinct keys, a larger dimension table,
already sorted, ...; about as many bytes): what history alone cannot know, and
what a mirror is for. ``--json`` writes the median rows and every run's rows with their points,
so an estimator can be re-run on the same measurements. A
workload marked ``variant_of`` (another workload with samplers a user would
name) is shown but not counted in the summary's medians.

Targets (issue 4): peak within 15 % median and 40 % worst; wall within 25 %
median; mirror CPU <= 10 % of the full run's (median). Not a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import astuple, replace
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workloads import WORKLOADS, Workload

from mirrorscale.mirror import preview
from mirrorscale.mirror.extrapolate import CostPoint, MirroredRun, extrapolate
from mirrorscale.mirror.samplers import sample_inputs
from mirrorscale.mirror.sandbox import forkserver_usage, run_sandboxed, warm_up_seconds
from mirrorscale.mirror.shadow import mirrored_run_of, shadow_points

MIB = 2**20


HISTORY_FRACTIONS = (0.25, 0.5)
"""``--history``: earlier runs of the task on these shares of the input (row samples), as its history."""


def past_runs(workload: Workload, args: Any, kwargs: Any, shares: tuple[float, ...] = HISTORY_FRACTIONS,
              fraction: float = 0.05, calibrate: bool = True) -> tuple[list[CostPoint], list[MirroredRun]]:
    """Run the task on ``shares`` of its input, measured like the judged full run: its history.

    Each share runs twice and the second run counts, as for the full run (see
    the module docstring: a first run may pay for faulting in fresh memory).
    With ``calibrate`` each share is first previewed as production previews a
    run (its own samples, the history before it), so today's preview also gets
    the task's past mirrored runs.
    """
    rows = {**{str(i): "rows" for i in range(len(args))}, **{k: "rows" for k in kwargs}, **workload.samplers}
    points: list[CostPoint] = []
    calibration: list[MirroredRun] = []
    for share in shares:
        part = sample_inputs(args, kwargs, fraction=share, seed=1, samplers=rows)
        shadow = preview(workload.fn, part.args, part.kwargs, sample_fraction=fraction,
                         samplers=workload.samplers or None, history=points) if calibrate else None
        run_sandboxed(workload.fn, part.args, part.kwargs, mirror=False, niceness=0)
        call = run_sandboxed(workload.fn, part.args, part.kwargs, mirror=False, niceness=0).call
        if call is None:
            continue
        point = CostPoint(part.sampled_bytes, call.peak_rss_increase_bytes, call.cpu_seconds,
                          call.uncontended_wall_seconds)
        if shadow is not None and shadow.outcome == "ok":
            full = replace(point, size=float(shadow.full_input_bytes))  # measured as the mirrors' samples were
            run = mirrored_run_of(shadow, full)
            if run.mirror:
                calibration.append(run)
        points.append(point)
    return points, calibration


def measure(workload: Workload, fraction: float, seed: int, args: Any, kwargs: Any,
            rows_only: bool = False, history: tuple[float, ...] = (), calibrate: bool = True,
            past_input: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """Mirror one workload, run it in full, and compare.

    ``rows_only``: positional samples, never keyed; ``history``: the task's
    earlier runs on a quarter and a half of the input are given to ``preview``,
    and with ``calibrate`` their own previews too (:func:`past_runs`);
    ``past_input``: those runs' input when it is not today's (``--drift``).
    """
    samplers = dict(workload.samplers)
    if rows_only:
        samplers = {**{str(i): "rows" for i in range(len(args))}, **{k: "rows" for k in kwargs}, **samplers}
    past_args, past_kwargs = past_input or (args, kwargs)
    past, calibration = past_runs(workload, past_args, past_kwargs, history, fraction,
                                  calibrate) if history else ([], [])
    server0, started, parent0 = forkserver_usage(), time.perf_counter(), time.process_time()
    shadow = preview(workload.fn, args, kwargs, sample_fraction=fraction, samplers=samplers or None, history=past,
                     mirrored=calibration)
    preview_seconds, parent_cpu = time.perf_counter() - started, time.process_time() - parent0
    server1 = forkserver_usage()
    # forking the mirrors: what the warm forkserver spent meanwhile (unknown when it restarted to load modules)
    fork_cpu = server1[1] - server0[1] if server0[0] is not None and server1[0] == server0[0] else None
    cold = run_sandboxed(workload.fn, args, kwargs, mirror=False, niceness=0)
    full = run_sandboxed(workload.fn, args, kwargs, mirror=False, niceness=0)  # the first run's memory recycled
    row: dict[str, Any] = {"workload": workload.name, "outcome": shadow.outcome, "variant": bool(workload.variant_of)}
    if shadow.outcome != "ok" or full.outcome != "ok" or full.call is None or cold.call is None:
        row["error"] = shadow.error or full.error or cold.error
        return row
    call, mirrors = full.call, json.loads(shadow.evidence)["mirrors"]
    fair_wall = max(call.uncontended_wall_seconds, 1e-6)
    cold_wall = max(cold.call.uncontended_wall_seconds, 1e-6)
    row.update(
        x=shadow.full_input_bytes / shadow.sampled_input_bytes,
        actual_peak=call.peak_rss_increase_bytes, predicted_peak=shadow.predicted_peak_rss_bytes,
        peak_err=shadow.predicted_peak_rss_bytes / max(call.peak_rss_increase_bytes, 1) - 1,
        actual_wall=call.wall_seconds, fair_wall=fair_wall, predicted_wall=shadow.predicted_wall_seconds,
        raw_wall_err=shadow.predicted_wall_seconds / call.wall_seconds - 1,
        wall_err=shadow.predicted_wall_seconds / fair_wall - 1,
        cold_wall=cold_wall, cold_wall_err=shadow.predicted_wall_seconds / cold_wall - 1,
        actual_cpu=call.cpu_seconds, predicted_cpu=shadow.predicted_cpu_seconds,
        cpu_err=shadow.predicted_cpu_seconds / max(call.cpu_seconds, 1e-6) - 1,
        mirror_call_cpu_s=sum(m["cpu_seconds"] for m in mirrors if not m.get("reused")),  # run today
        mirror_cpu_s=shadow.cost_cpu_seconds + parent_cpu + (fork_cpu or 0.0),
        mirror_cpu=(shadow.cost_cpu_seconds + parent_cpu + (fork_cpu or 0.0)) / call.cpu_seconds,
        parent_cpu_s=parent_cpu, fork_cpu_s=fork_cpu, preview_seconds=preview_seconds,
        model=_models(shadow.evidence),
    )
    if past:  # what the past runs alone would have predicted: the mirror's worth is the difference
        alone = extrapolate([], shadow.full_input_bytes, history=past)
        row.update(history_peak_err=alone.peak_rss_bytes.value / max(call.peak_rss_increase_bytes, 1) - 1,
                   history_wall_err=alone.wall_seconds.value / fair_wall - 1)
    today = list(shadow_points(shadow))
    row.update(history_points=[list(astuple(p)) for p in past],
               calibration=[[[list(astuple(p)) for p in run.mirror], list(astuple(run.actual))]
                            for run in calibration],
               mirror_points=[list(astuple(p)) for p in today],
               full_point=[float(shadow.full_input_bytes), float(call.peak_rss_increase_bytes), call.cpu_seconds,
                           fair_wall])
    if calibration:  # today's mirrors without the history, without and with their past runs' calibration
        for name, given in (("mirror_wall_err", ()), ("calibrated_wall_err", calibration)):
            row[name] = extrapolate(today, shadow.full_input_bytes, mirrored=given).wall_seconds.value / fair_wall - 1
    return row


def add_fleet_errors(rows: list[dict[str, Any]]) -> None:
    """Without history: each workload's mirror calibrated by the *other* base workloads' mirrored runs.

    What a task that never ran gets on an installation where other tasks have
    been mirrored (:func:`~mirrorscale.mirror.shadow.past_mirrored_runs` falls
    back to them): leave one out, so no workload calibrates itself.
    """
    done = [r for r in rows if "mirror_points" in r]
    runs = {r["workload"]: MirroredRun(tuple(CostPoint(*p) for p in r["mirror_points"]), CostPoint(*r["full_point"]),
                                       own=False) for r in done if not r.get("variant")}
    for row in done:
        fleet = [run for name, run in runs.items() if name != row["workload"]]
        points = [CostPoint(*p) for p in row["mirror_points"]]
        fit = extrapolate(points, row["full_point"][0], mirrored=fleet)
        row["fleet_wall_err"] = fit.wall_seconds.value / row["fair_wall"] - 1
        row["fleet_cpu_err"] = fit.cpu_seconds.value / max(row["actual_cpu"], 1e-6) - 1


def _models(evidence: str | None) -> str:
    models = json.loads(evidence or "{}").get("models", {})
    exponents = [models.get(m, {}).get("exponent") for m in ("peak_rss_bytes", "cpu_seconds", "wall_seconds")]
    return "/".join("?" if p is None else f"{p:.2f}" for p in exponents)


def _pct(value: float) -> str:
    return f"{value:+.0%}"


def _median_rows(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per workload, the median of every number over the runs (errors by absolute value, sign kept)."""
    out = []
    for rows in zip(*runs):
        done = [r for r in rows if "peak_err" in r]
        if not done:
            out.append(rows[0])
            continue
        merged = dict(done[0])
        for key, value in done[0].items():
            if isinstance(value, float) or isinstance(value, int) and not isinstance(value, bool):
                values = sorted((r[key] for r in done if r.get(key) is not None),
                                key=abs if key.endswith("_err") else float)
                merged[key] = values[(len(values) - 1) // 2] if key.endswith("_err") else statistics.median(values)
        merged["runs"] = len(done)
        out.append(merged)
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    """The benchmark table and the summary against the targets."""
    head = (f"{'workload':<15} {'x':>4} {'peak MiB':>8} {'pred MiB':>8} {'peak err':>8} {'wall s':>6} "
            f"{'wall* s':>7} {'pred s':>6} {'wall* err':>9} {'raw err':>7} {'cold err':>8} {'cpu s':>6} {'cpu err':>7} "
            f"{'call s':>6} {'caller s':>8} {'fork s':>6} {'mirror s':>8} {'mirror cpu':>10}  p peak/cpu/wall")
    print(head)
    print("-" * len(head))
    for r in rows:
        if "peak_err" not in r:
            print(f"{r['workload']:<15} FAILED ({r['outcome']}): {r.get('error')}")
            continue
        print(f"{r['workload']:<15} {r['x']:>4.0f} {r['actual_peak'] / MIB:>8.1f} {r['predicted_peak'] / MIB:>8.1f} "
              f"{_pct(r['peak_err']):>8} {r['actual_wall']:>6.2f} {r['fair_wall']:>7.2f} {r['predicted_wall']:>6.2f} "
              f"{_pct(r['wall_err']):>9} {_pct(r['raw_wall_err']):>7} {_pct(r['cold_wall_err']):>8} "
              f"{r['actual_cpu']:>6.2f} "
              f"{_pct(r['cpu_err']):>7} {r['mirror_call_cpu_s']:>6.2f} {r['parent_cpu_s']:>8.2f} "
              f"{'?' if r.get('fork_cpu_s') is None else format(r['fork_cpu_s'], '.3f'):>6} {r['mirror_cpu_s']:>8.2f} "
              f"{r['mirror_cpu']:>10.1%}  {r['model']}")
    done = [r for r in rows if "peak_err" in r and not r.get("variant")]
    if not done:
        return
    if any("drift" in r for r in done):
        print("\ntoday's input changed in content since the past runs: "
              + "; ".join(f"{r['workload']}: {r['drift']}" for r in done if "drift" in r))
    if len(done) < len([r for r in rows if "peak_err" in r]):
        print(f"\nsummary over the {len(done)} base workloads (variants, which name other samplers, not counted)")
    peak = [abs(r["peak_err"]) for r in done]
    wall = [abs(r["wall_err"]) for r in done]
    raw = [abs(r["raw_wall_err"]) for r in done]
    cpu = [r["mirror_cpu"] for r in done]
    worst = max(done, key=lambda r: r["mirror_cpu"])
    print()
    print(f"peak RSS |err|: median {statistics.median(peak):.1%} (target <= 15%), worst {max(peak):.1%} "
          f"(target <= 40%)")
    print(f"wall* |err|:    median {statistics.median(wall):.1%} (target <= 25%), judged on wall* = wall minus "
          f"the time the full run's threads waited for a CPU (schedstat run_delay); raw wall |err| median "
          f"{statistics.median(raw):.1%}; against the cold first full run: median "
          f"{statistics.median(abs(r['cold_wall_err']) for r in done):.1%}")
    alone = [r for r in done if "history_peak_err" in r]
    if alone:
        hist_peak = [abs(r["history_peak_err"]) for r in alone]
        print(f"history alone (the past runs extrapolated without the mirrors): peak |err| median "
              f"{statistics.median(hist_peak):.1%}, worst {max(hist_peak):.1%}; wall* |err| median "
              f"{statistics.median(abs(r['history_wall_err']) for r in alone):.1%}; per workload (peak / wall*): "
              + ", ".join(f"{r['workload']} {_pct(r['history_peak_err'])} / {_pct(r['history_wall_err'])}"
                          for r in alone))
    fleet = [r for r in done if "fleet_wall_err" in r]
    if fleet:
        print(f"calibrated by the other workloads' mirrored runs (leave one out, as a task that never ran is): "
              f"wall* |err| median {statistics.median(abs(r['fleet_wall_err']) for r in fleet):.1%}, CPU |err| "
              f"median {statistics.median(abs(r['fleet_cpu_err']) for r in fleet):.1%} (uncalibrated "
              f"{statistics.median(abs(r['cpu_err']) for r in fleet):.1%}); per workload (wall*): "
              + ", ".join(f"{r['workload']} {_pct(r['wall_err'])} -> {_pct(r['fleet_wall_err'])}" for r in fleet))
    calibrated = [r for r in done if "calibrated_wall_err" in r]
    if calibrated:
        print(f"today's mirrors without the history: wall* |err| median "
              f"{statistics.median(abs(r['mirror_wall_err']) for r in calibrated):.1%}, calibrated by their past "
              f"mirrored runs {statistics.median(abs(r['calibrated_wall_err']) for r in calibrated):.1%}; per "
              f"workload: " + ", ".join(f"{r['workload']} {_pct(r['mirror_wall_err'])} -> "
                                         f"{_pct(r['calibrated_wall_err'])}" for r in calibrated))
    print(f"mirror CPU / full CPU: median {statistics.median(cpu):.1%} (target <= 10%), worst "
          f"{worst['mirror_cpu']:.1%} ({worst['workload']}); mirror CPU = all CPU of the mirror processes "
          f"(unpickling, monitor, the calls), the forkserver forking them and the caller's sampling, pickling "
          f"and supervision; "
          f"the calls alone: median {statistics.median(r['mirror_call_cpu_s'] / r['actual_cpu'] for r in done):.1%}")


TARGETS = {"peak_err": (0.15, 0.40), "wall_err": (0.25, None), "mirror_cpu": (0.10, None)}
"""Per column: the target for the suite's median (and for its worst, when there is one)."""


def plot(runs: list[dict[str, Any]], path: str) -> str:
    """Draw each run's per-workload peak error, wall* error and mirror CPU share against the targets.

    ``runs`` are documents as ``--json`` writes them (``label`` and ``rows``);
    each is one colour, so a run without history and one with it compare at a
    glance. Writes a PNG to ``path`` and returns it.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["workload"] for r in runs[0]["rows"] if not r.get("variant")]
    panels = [("peak_err", "peak RSS: predicted / measured - 1"), ("wall_err", "wall*: predicted / measured - 1"),
              ("mirror_cpu", "mirror CPU / full run's CPU")]
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.45 * len(names) + 3.0), sharey=True)
    ys = range(len(names))
    for ax, (key, title) in zip(axes, panels):
        median, worst = TARGETS[key]
        if key == "mirror_cpu":
            ax.axvspan(0, median, color="tab:green", alpha=0.12, label=f"median target <= {median:.0%}")
        else:
            ax.axvspan(-median, median, color="tab:green", alpha=0.12, label=f"median target: within {median:.0%}")
            if worst:
                for edge in (-worst, worst):
                    ax.axvline(edge, color="tab:red", lw=0.8, ls="--",
                               label=f"worst target: within {worst:.0%}" if edge > 0 else None)
            ax.axvline(0, color="black", lw=0.6)
        low, high = (0.0, 1.0) if key == "mirror_cpu" else (-1.0, 1.5)
        for offset, run in zip((-0.15, 0.15, 0.0, 0.3), runs):
            by_name = {r["workload"]: r for r in run["rows"] if key in r}
            values = [by_name[n][key] if n in by_name else float("nan") for n in names]
            done = [abs(v) for v in values if v == v]
            summary = f"median {'|err| ' if key != 'mirror_cpu' else ''}{statistics.median(done):.1%}" if done else "no data"
            shown = [min(max(v, low), high) for v in values]
            ax.scatter(shown, [y + offset for y in ys], s=28, label=f"{run['label']}: {summary}", zorder=3)
            for v, x, y in zip(values, shown, ys):
                if v == v and x != v:  # off the scale: drawn at the edge, its value written beside it
                    ax.annotate(f"{v:+.0%}", (x, y + offset), xytext=(-4, 0), textcoords="offset points",
                                ha="right", va="center", fontsize=7)
        ax.set_xlim(low - 0.05, high + 0.05)
        ax.set_title(title, fontsize=10)
        ax.xaxis.set_major_formatter(matplotlib.ticker.PercentFormatter(1.0, decimals=0))
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)
    axes[0].set_yticks(list(ys), names)
    axes[0].invert_yaxis()
    fig.suptitle("mirrors on a 5 % sample vs the full run (benchmarks/mirror_accuracy.py)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> None:
    """Run the suite (or ``--only`` some workloads) ``--repeat`` times and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="workload names to run")
    parser.add_argument("--fraction", type=float, default=0.05, help="sample fraction (default 0.05)")
    parser.add_argument("--seed", type=int, default=1, help="input generator seed")
    parser.add_argument("--repeat", type=int, default=1, help="runs per workload; the table shows medians")
    parser.add_argument("--rows-only", action="store_true",
                        help="sample every argument by position (no keyed samples), to compare")
    parser.add_argument("--history", nargs="*", type=float, metavar="SHARE",
                        help="give preview the task's runs on these shares of the input as its history "
                             "(without shares: 0.25 0.5)")
    parser.add_argument("--drift", action="store_true",
                        help="with --history: the past runs see yesterday's input, today's has changed in content "
                             "(each workload's drifted input, about as many bytes)")
    parser.add_argument("--no-calibration", action="store_true",
                        help="with --history: do not preview the past runs, so preview gets no past mirrored runs")
    parser.add_argument("--json", metavar="FILE", help="also write the table's rows (and the run's label) as JSON")
    parser.add_argument("--plot", metavar="PNG", help="draw the errors and CPU shares against the targets")
    parser.add_argument("--compare", metavar="JSON", nargs="*", default=[],
                        help="with --plot: other runs' --json files to draw beside this one")
    parser.add_argument("--plot-only", action="store_true", help="with --plot: draw the --compare files, run nothing")
    options = parser.parse_args(argv)
    others = [json.loads(Path(path).read_text()) for path in options.compare]
    if options.plot_only:
        if not options.plot or not others:
            parser.error("--plot-only needs --plot and at least one --compare file")
        print(f"wrote {plot(others, options.plot)}")
        return
    import pandas  # noqa: F401 - the harness uses pandas, so the mirror forkserver preloads it

    history = () if options.history is None else tuple(options.history or HISTORY_FRACTIONS)
    if any(not 0 < share < 1 for share in history):
        parser.error(f"--history shares must be between 0 and 1, got {list(history)}")
    if options.drift and not history:
        parser.error("--drift needs --history: it changes today's input against the past runs'")
    chosen = [w for w in WORKLOADS if (not options.only or w.name in options.only)
              and (w.drifted is not None or not options.drift)]
    preview(len, ([0] * 1000,))  # one-time imports of the caller and the warm forkserver, not any workload's cost
    started, loads = time.perf_counter(), []
    runs: list[list[dict[str, Any]]] = [[] for _ in range(options.repeat)]
    for workload in chosen:
        args, kwargs = workload.make_input(options.seed)
        past_input = None
        if options.drift and workload.drifted is not None:
            past_input, (args, kwargs) = (args, kwargs), workload.drifted(options.seed)
        for i in range(options.repeat):
            loads.append(os.getloadavg()[0])
            row = measure(workload, options.fraction, options.seed, args, kwargs, options.rows_only, history,
                          not options.no_calibration, past_input)
            if past_input is not None:
                row["drift"] = workload.drift
            runs[i].append(row)
            print(f"  {workload.name} run {i + 1}: peak {_pct(row.get('peak_err', float('nan')))} wall* "
                  f"{_pct(row.get('wall_err', float('nan')))} mirror cpu {row.get('mirror_cpu', float('nan')):.1%}",
                  file=sys.stderr, flush=True)
        del args, kwargs, past_input
    if not history:
        for rows in runs:
            add_fleet_errors(rows)
    rows = _median_rows(runs) if options.repeat > 1 else runs[0]
    if options.repeat > 1:
        print(f"medians over {options.repeat} runs per workload")
    print_table(rows)
    loads.append(os.getloadavg()[0])
    print(f"{len([r for r in rows if 'peak_err' in r])}/{len(rows)} workloads measured in "
          f"{time.perf_counter() - started:.0f} s; 1-minute load average while measuring: median "
          f"{statistics.median(loads):.1f} (min {min(loads):.1f}, max {max(loads):.1f}) on {os.cpu_count()} CPUs; "
          f"the warm forkserver used {warm_up_seconds():.2f} s in all (its imports, once per start, are not in "
          f"mirror CPU; forking the previews' mirrors is)")
    label = f"history ({', '.join(f'{share:.1%}' for share in history)} runs)" if history else "no history"
    if history and options.no_calibration:
        label += " without past mirrors"
    if options.drift:
        label += ", today's content changed"
    document = {"label": label + (" rows only" if options.rows_only else ""), "repeat": options.repeat,
                "rows": rows, "runs": runs}  # every run's rows too: estimators can be re-run on their points
    if options.json:
        Path(options.json).write_text(json.dumps(document, indent=1))
        print(f"wrote {options.json}")
    if options.plot:
        print(f"wrote {plot([document, *others], options.plot)}")


if __name__ == "__main__":
    main()
