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
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from workloads import WORKLOADS, Workload  # noqa: E402

from mirrorscale.mirror import preview  # noqa: E402
from mirrorscale.mirror.sandbox import run_sandboxed  # noqa: E402

MIB = 2**20


def measure(workload: Workload, fraction: float, seed: int) -> dict[str, object]:
    """Mirror one workload, run it in full, and compare."""
    import pandas  # noqa: F401 - the harness uses pandas, so the mirror forkserver preloads it

    args, kwargs = workload.make_input(seed)
    started = time.perf_counter()
    shadow = preview(workload.fn, args, kwargs, sample_fraction=fraction, samplers=workload.samplers or None)
    preview_seconds = time.perf_counter() - started
    full = run_sandboxed(workload.fn, args, kwargs, mirror=False, niceness=0)
    row: dict[str, object] = {"workload": workload.name, "outcome": shadow.outcome}
    if shadow.outcome != "ok" or full.outcome != "ok" or full.call is None:
        row["error"] = shadow.error or full.error
        return row
    call = full.call
    row.update(
        x=shadow.full_input_bytes / shadow.sampled_input_bytes,
        actual_peak=call.peak_rss_increase_bytes, predicted_peak=shadow.predicted_peak_rss_bytes,
        peak_err=shadow.predicted_peak_rss_bytes / call.peak_rss_increase_bytes - 1,
        actual_wall=call.wall_seconds, predicted_wall=shadow.predicted_wall_seconds,
        wall_err=shadow.predicted_wall_seconds / call.wall_seconds - 1,
        wall_u_err=shadow.predicted_wall_seconds / max(call.uncontended_wall_seconds, 1e-6) - 1,
        actual_cpu=call.cpu_seconds, predicted_cpu=shadow.predicted_cpu_seconds,
        mirror_cpu=shadow.cost_cpu_seconds / call.cpu_seconds, mirror_cpu_s=shadow.cost_cpu_seconds,
        preview_seconds=preview_seconds,
        model=_peak_model(shadow.evidence),
    )
    return row


def _peak_model(evidence: str | None) -> str:
    import json

    return json.loads(evidence or "{}").get("models", {}).get("peak_rss_bytes", {}).get("model", "")


def _pct(value: float) -> str:
    return f"{value:+.0%}"


def print_table(rows: list[dict[str, object]]) -> None:
    """The benchmark table and the summary against the targets."""
    head = (f"{'workload':<15} {'x':>5} {'peak MiB':>9} {'pred MiB':>9} {'peak err':>8} {'wall s':>7} "
            f"{'pred s':>7} {'wall err':>8} {'wall* err':>9} {'cpu s':>6} {'mirror s':>8} {'mirror cpu':>10}  peak model")
    print(head)
    print("-" * len(head))
    for r in rows:
        if "peak_err" not in r:
            print(f"{r['workload']:<15} FAILED ({r['outcome']}): {r.get('error')}")
            continue
        print(f"{r['workload']:<15} {r['x']:>5.0f} {r['actual_peak'] / MIB:>9.1f} {r['predicted_peak'] / MIB:>9.1f} "
              f"{_pct(r['peak_err']):>8} {r['actual_wall']:>7.2f} {r['predicted_wall']:>7.2f} "
              f"{_pct(r['wall_err']):>8} {_pct(r['wall_u_err']):>9} {r['actual_cpu']:>6.2f} "
              f"{r['mirror_cpu_s']:>8.2f} {r['mirror_cpu']:>10.1%}  {r['model']}")
    done = [r for r in rows if "peak_err" in r]
    if not done:
        return
    peak = [abs(r["peak_err"]) for r in done]
    wall = [abs(r["wall_err"]) for r in done]
    wall_u = [abs(r["wall_u_err"]) for r in done]
    cpu = [r["mirror_cpu"] for r in done]
    worst = max(done, key=lambda r: r["mirror_cpu"])
    print()
    print(f"peak RSS |err|: median {statistics.median(peak):.1%} (target <= 15%), worst {max(peak):.1%} (target <= 40%)")
    print(f"wall |err|:     median {statistics.median(wall):.1%} (target <= 25%); "
          f"against uncontended wall: median {statistics.median(wall_u):.1%}")
    print(f"mirror CPU / full CPU: median {statistics.median(cpu):.1%} (target <= 10%), "
          f"worst {worst['mirror_cpu']:.1%} ({worst['workload']})")
    print(f"{len(done)}/{len(rows)} workloads measured; load average now {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")


def main(argv: list[str] | None = None) -> None:
    """Run the suite (or ``--only`` some workloads) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="workload names to run")
    parser.add_argument("--fraction", type=float, default=0.05, help="sample fraction (default 0.05)")
    parser.add_argument("--seed", type=int, default=1, help="input generator seed")
    options = parser.parse_args(argv)
    chosen = [w for w in WORKLOADS if not options.only or w.name in options.only]
    rows = []
    for workload in chosen:
        rows.append(measure(workload, options.fraction, options.seed))
        print(f"  measured {workload.name}", file=sys.stderr, flush=True)
    print_table(rows)


if __name__ == "__main__":
    main()
