"""How well does a 5 % mirror predict the full run? Prints one row per workload.

    .venvs/core/bin/python benchmarks/mirror_accuracy.py [--only NAME ...] [--fraction 0.05]

For each workload of :mod:`workloads`, ``preview()`` mirrors the task with its
defaults (samples at 2 % and 5 %, niceness +10), then the full input runs in the
same sandbox (a separate process, same monitor, niceness 0) so both are measured
the same way. Columns:

* ``peak err``: predicted peak RSS increase / measured - 1;
* ``wall err``: predicted wall time / measured wall - 1; ``wall* err`` compares
  with the full run's wall minus the time it waited for a CPU (this machine is
  shared, so both are printed);
* ``mirror cpu``: what the mirror processes cost (start-up, sampling excluded,
  both fractions) as a share of the full call's CPU seconds.

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
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workloads import WORKLOADS, Workload

from mirrorscale.mirror import preview
from mirrorscale.mirror.sandbox import run_sandboxed, warm_up_seconds

MIB = 2**20


def measure(workload: Workload, fraction: float, seed: int, args: Any, kwargs: Any) -> dict[str, Any]:
    """Mirror one workload, run it in full, and compare."""
    started, parent0 = time.perf_counter(), time.process_time()
    shadow = preview(workload.fn, args, kwargs, sample_fraction=fraction, samplers=workload.samplers or None)
    preview_seconds, parent_cpu = time.perf_counter() - started, time.process_time() - parent0
    full = run_sandboxed(workload.fn, args, kwargs, mirror=False, niceness=0)
    row: dict[str, Any] = {"workload": workload.name, "outcome": shadow.outcome}
    if shadow.outcome != "ok" or full.outcome != "ok" or full.call is None:
        row["error"] = shadow.error or full.error
        return row
    call, mirrors = full.call, json.loads(shadow.evidence)["mirrors"]
    fair_wall = max(call.uncontended_wall_seconds, 1e-6)
    row.update(
        x=shadow.full_input_bytes / shadow.sampled_input_bytes,
        actual_peak=call.peak_rss_increase_bytes, predicted_peak=shadow.predicted_peak_rss_bytes,
        peak_err=shadow.predicted_peak_rss_bytes / max(call.peak_rss_increase_bytes, 1) - 1,
        actual_wall=call.wall_seconds, fair_wall=fair_wall, predicted_wall=shadow.predicted_wall_seconds,
        raw_wall_err=shadow.predicted_wall_seconds / call.wall_seconds - 1,
        wall_err=shadow.predicted_wall_seconds / fair_wall - 1,
        actual_cpu=call.cpu_seconds, predicted_cpu=shadow.predicted_cpu_seconds,
        cpu_err=shadow.predicted_cpu_seconds / max(call.cpu_seconds, 1e-6) - 1,
        mirror_call_cpu_s=sum(m["cpu_seconds"] for m in mirrors),
        mirror_cpu_s=shadow.cost_cpu_seconds, mirror_cpu=shadow.cost_cpu_seconds / call.cpu_seconds,
        parent_cpu_s=parent_cpu, preview_seconds=preview_seconds, model=_models(shadow.evidence),
    )
    return row


def _models(evidence: str | None) -> str:
    models = json.loads(evidence or "{}").get("models", {})
    short = {"fixed + proportional": "lin", "power law": "pow", "sublinear power law": "sub", "proportional": "prop"}
    return "/".join(short.get(models.get(m, {}).get("model", ""), "?")
                    for m in ("peak_rss_bytes", "cpu_seconds", "wall_seconds"))


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
                values = sorted((r[key] for r in done), key=abs if key.endswith("_err") else float)
                merged[key] = values[(len(values) - 1) // 2] if key.endswith("_err") else statistics.median(values)
        merged["runs"] = len(done)
        out.append(merged)
    return out


def print_table(rows: list[dict[str, Any]]) -> None:
    """The benchmark table and the summary against the targets."""
    head = (f"{'workload':<15} {'x':>4} {'peak MiB':>8} {'pred MiB':>8} {'peak err':>8} {'wall s':>6} "
            f"{'wall* s':>7} {'pred s':>6} {'wall* err':>9} {'raw err':>7} {'cpu s':>6} {'cpu err':>7} "
            f"{'call s':>6} {'mirror s':>8} {'mirror cpu':>10}  models")
    print(head)
    print("-" * len(head))
    for r in rows:
        if "peak_err" not in r:
            print(f"{r['workload']:<15} FAILED ({r['outcome']}): {r.get('error')}")
            continue
        print(f"{r['workload']:<15} {r['x']:>4.0f} {r['actual_peak'] / MIB:>8.1f} {r['predicted_peak'] / MIB:>8.1f} "
              f"{_pct(r['peak_err']):>8} {r['actual_wall']:>6.2f} {r['fair_wall']:>7.2f} {r['predicted_wall']:>6.2f} "
              f"{_pct(r['wall_err']):>9} {_pct(r['raw_wall_err']):>7} {r['actual_cpu']:>6.2f} "
              f"{_pct(r['cpu_err']):>7} {r['mirror_call_cpu_s']:>6.2f} {r['mirror_cpu_s']:>8.2f} "
              f"{r['mirror_cpu']:>10.1%}  {r['model']}")
    done = [r for r in rows if "peak_err" in r]
    if not done:
        return
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
          f"{statistics.median(raw):.1%} (the mirror is niced +10 on a shared machine)")
    print(f"mirror CPU / full CPU: median {statistics.median(cpu):.1%} (target <= 10%), worst "
          f"{worst['mirror_cpu']:.1%} ({worst['workload']}); mirror CPU = all CPU of the mirror processes "
          f"(fork, unpickling, monitor, the calls); the calls alone: median "
          f"{statistics.median(r['mirror_call_cpu_s'] / r['actual_cpu'] for r in done):.1%}")


def main(argv: list[str] | None = None) -> None:
    """Run the suite (or ``--only`` some workloads) ``--repeat`` times and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="workload names to run")
    parser.add_argument("--fraction", type=float, default=0.05, help="sample fraction (default 0.05)")
    parser.add_argument("--seed", type=int, default=1, help="input generator seed")
    parser.add_argument("--repeat", type=int, default=1, help="runs per workload; the table shows medians")
    options = parser.parse_args(argv)
    import pandas  # noqa: F401 - the harness uses pandas, so the mirror forkserver preloads it

    chosen = [w for w in WORKLOADS if not options.only or w.name in options.only]
    started, load0 = time.perf_counter(), os.getloadavg()[0]
    runs: list[list[dict[str, Any]]] = [[] for _ in range(options.repeat)]
    parent = 0.0
    for workload in chosen:
        args, kwargs = workload.make_input(options.seed)
        for i in range(options.repeat):
            row = measure(workload, options.fraction, options.seed, args, kwargs)
            runs[i].append(row)
            parent += row.get("parent_cpu_s", 0.0)
            print(f"  {workload.name} run {i + 1}: peak {_pct(row.get('peak_err', float('nan')))} wall* "
                  f"{_pct(row.get('wall_err', float('nan')))} mirror cpu {row.get('mirror_cpu', float('nan')):.1%}",
                  file=sys.stderr, flush=True)
        del args, kwargs
    rows = _median_rows(runs) if options.repeat > 1 else runs[0]
    if options.repeat > 1:
        print(f"medians over {options.repeat} runs per workload")
    print_table(rows)
    print(f"{len([r for r in rows if 'peak_err' in r])}/{len(rows)} workloads measured in "
          f"{time.perf_counter() - started:.0f} s; load average {load0:.2f} at start, {os.getloadavg()[0]:.2f} "
          f"at end, on {os.cpu_count()} CPUs; not in mirror CPU: sampling and supervision in the caller "
          f"{parent:.2f} s, warm forkserver {warm_up_seconds():.2f} s (imports once, and forking)")


if __name__ == "__main__":
    main()
