"""Print mirrorscale's replay targets and timings (not a timed test).

    .venvs/core/bin/python benchmarks/replay_targets.py [TRACE.csv ...]

Default traces: ../shared/traces/nfcore/*.csv. Prints, per workflow:
* chronological: mirrorscale's wastage vs 0.6 x the plain VPA reference, and
  its failed attempts vs the reference's;
* sizey: mirrorscale's wastage vs 0.7 x the best of the paper's baselines
  (the reference figures of the shared traces' README where known, else the
  best of our own witt-percentile / witt-lr / witt-lr-under replays);
* fit + predict time of the mirrorscale sizer for a task with 1,000 runs;
* the time to replay 15,000 tasks (the traces repeated with shifted times).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from mirrorscale.predictors.methods import get_methods
from mirrorscale.predictors.selector import SelectorSizer
from mirrorscale.replay.protocols import chronological, sizey
from mirrorscale.replay.records import ReplayTask, load_nextflow_traces

DEFAULT_TRACES = sorted((Path(__file__).resolve().parents[2] / "shared/traces/nfcore").glob("*.csv"))
PAPER_BEST = {"iwd": ("Witt-Percentile", 1.4389), "rnaseq": ("Witt-LR (STDUNDER)", 57.9054)}
"""Best baseline of the Sizey paper's harness per workflow (shared traces README)."""
OWN_PAPER_BASELINES = ("witt-percentile", "witt-lr", "witt-lr-under")
"""Our implementations of the paper's Witt baselines: the best of them stands in for a workflow without
paper figures (measured on the shared traces: witt-percentile exact, witt-lr-under 58.44 vs 57.91 GB·h
on rnaseq and 2.79 vs 2.94 on iwd, witt-lr 79.68 vs 80.99 on rnaseq)."""


def _by(tallies):
    return {(t.workflow, t.method): t for t in tallies}


def chronological_targets(paths) -> bool:
    tasks = load_nextflow_traces(paths, "peak_rss").tasks
    got = _by(chronological(tasks, get_methods(["vpa-reference", "mirrorscale"])))
    ok = True
    print("chronological: wastage <= 0.6 x vpa-reference and no more failed attempts")
    for workflow in sorted({w for w, _ in got}):
        ref, own = got[(workflow, "vpa-reference")], got[(workflow, "mirrorscale")]
        met_w = own.wastage_gbh <= 0.6 * ref.wastage_gbh
        met_f = own.failures <= ref.failures
        ok &= met_w and met_f
        print(f"  {workflow:10s} mirrorscale {own.wastage_gbh:9.3f} GB·h ({own.wastage_gbh / ref.wastage_gbh:.2f} x ref "
              f"{ref.wastage_gbh:.3f}) {'MET' if met_w else 'NOT MET'};"
              f" failed attempts {own.failures} vs {ref.failures} {'MET' if met_f else 'NOT MET'}")
    return ok


def sizey_targets(paths) -> bool:
    tasks = load_nextflow_traces(paths, "rss").tasks
    got = _by(sizey(tasks, get_methods([*OWN_PAPER_BASELINES, "mirrorscale"])))
    ok = True
    print("sizey: wastage <= 0.7 x the best of the paper's baselines")
    for workflow in sorted({w for w, _ in got}):
        own = got[(workflow, "mirrorscale")]
        ours = min(OWN_PAPER_BASELINES, key=lambda m: got[(workflow, m)].wastage_gbh)
        name, best = PAPER_BEST.get(workflow, (f"{ours} (ours)", got[(workflow, ours)].wastage_gbh))
        met = own.wastage_gbh <= 0.7 * best
        ok &= met
        print(f"  {workflow:10s} mirrorscale {own.wastage_gbh:9.3f} GB·h ({own.wastage_gbh / best:.2f} x {name} "
              f"{best:.3f}), {own.failures} failed attempts: {'MET' if met else 'NOT MET'}")
    return ok


def fit_predict_timing(runs: int = 1000) -> None:
    rng = np.random.default_rng(0)
    size = rng.uniform(1e8, 1e10, runs)
    history = [ReplayTask("w", "t", i, usage=2 * s**0.9 * rng.lognormal(0, 0.1), runtime_ms=6e4, request=64e9,
                          input_size=s) for i, s in enumerate(size)]
    warm = SelectorSizer()  # load scipy's t quantile (first use imports it) outside the timing
    for run in history[:20]:
        warm.observe(run)
    sizer = SelectorSizer()
    start = time.perf_counter()
    for run in history:
        sizer.observe(run)
    learn = time.perf_counter() - start
    probe = dataclasses.replace(history[0], input_size=5e9)
    start = time.perf_counter()
    for _ in range(100):
        sizer.allocate(probe)
    predict = (time.perf_counter() - start) / 100
    print(f"timing: learning 1,000 runs online {learn * 1e3:.0f} ms ({learn / runs * 1e6:.0f} us per run); "
          f"one allocation with 1,000 runs known {predict * 1e3:.2f} ms")


def replay_timing(paths, target: int = 15_000) -> None:
    base = load_nextflow_traces(paths, "peak_rss").tasks
    copies = -(-target // len(base))
    span = max(t.order for t in base) - min(t.order for t in base) + 1
    tasks = [dataclasses.replace(t, order=t.order + k * span) for k in range(copies) for t in base][:target]
    for methods in (get_methods(["mirrorscale"]), get_methods()):
        start = time.perf_counter()
        chronological(tasks, methods)
        elapsed = time.perf_counter() - start
        print(f"timing: chronological replay of {len(tasks):,} tasks with {len(methods)} method(s): {elapsed:.1f} s")


def main(argv: list[str]) -> int:
    paths = argv or [str(p) for p in DEFAULT_TRACES]
    if not paths:
        print("no traces given and ../shared/traces/nfcore not found", file=sys.stderr)
        return 2
    met = chronological_targets(paths)
    met &= sizey_targets(paths)
    fit_predict_timing()
    replay_timing(paths)
    print("all targets met" if met else "some targets NOT met (see above)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
