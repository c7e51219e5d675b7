"""Synthetic traces for checking that sizing generalises beyond the two shared workflows.

    .venvs/core/bin/python benchmarks/synthetic_traces.py [--seed N] [--shared [TRACE.csv ...]]

Each synthetic workflow has tasks whose memory follows a different law of the
input size (none of them fitted to the shared traces):

==========  ==================================================================
task        memory (bytes) for input size x (input: log-uniform 0.1..10 GB)
==========  ==================================================================
flat        2 GB x lognormal(0, 5 %)  (ignores the input)
grows       0.5 GB + 1.5 x (lognormal 3 %)
sublinear   1 GB x (x / 1 GB)^0.4 x lognormal(0, 4 %)
shrinks     4 GB - 0.2 x, at least 0.5 GB (more input, less memory), jitter 3 %
jumps       1 GB x lognormal(0, 3 %), x 2.5 from the middle run on (a new version)
spiky       1.5 GB x lognormal(0, 2 %), one run in 20 at 0.2 GB (a downward outlier)
==========  ==================================================================

Requests are a fixed workflow default (3 x the median usage of the task) and
runtimes grow with the input. It prints the chronological replay of the
plain VPA reference and of ``mirrorscale`` per workflow.

``--shared [TRACE.csv ...]`` instead checks the shared nf-core traces split and
perturbed, so that nothing rests on their exact numbers (default traces:
../shared/traces/nfcore/*.csv):

* ``early``/``late``: each workflow's runs before / after its median submit time,
  replayed as separate workflows (every task starts cold again in ``late``);
* ``scaled``: every task's usage, request and input multiplied by its own
  random factor (log-normal, sd 0.7: about 0.25x to 4x), and every run's usage
  by a further 3 % jitter.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

from mirrorscale.predictors.methods import get_methods
from mirrorscale.replay.protocols import chronological
from mirrorscale.replay.records import ReplayTask

GB = 1e9


def _laws(rng: np.random.Generator, n: int):
    def jitter(sd):
        return rng.lognormal(0.0, sd, n)

    def jumps(x):
        level = np.where(np.arange(n) >= n // 2, 2.5, 1.0)
        return GB * level * jitter(0.03)

    def spiky(x):
        usage = 1.5 * GB * jitter(0.02)
        usage[rng.random(n) < 0.05] = 0.2 * GB
        return usage

    return {
        "flat": lambda x: 2 * GB * jitter(0.05),
        "grows": lambda x: (0.5 * GB + 1.5 * x) * jitter(0.03),
        "sublinear": lambda x: GB * (x / GB) ** 0.4 * jitter(0.04),
        "shrinks": lambda x: np.maximum(4 * GB - 0.2 * x, 0.5 * GB) * jitter(0.03),
        "jumps": jumps,
        "spiky": spiky,
    }


def synthetic_workflow(name: str, runs: int, seed: int) -> list[ReplayTask]:
    """One synthetic workflow: ``runs`` runs of each task, interleaved in submit order."""
    rng = np.random.default_rng(seed)
    tasks: list[ReplayTask] = []
    for t, (task, law) in enumerate(_laws(rng, runs).items()):
        x = np.exp(rng.uniform(np.log(0.1 * GB), np.log(10 * GB), runs))
        usage = law(x)
        request = 3.0 * float(np.median(usage))
        runtime = 60_000 * (1 + x / GB) * rng.lognormal(0, 0.1, runs)
        tasks += [ReplayTask(name, task, order=i * 10 + t, usage=float(u), runtime_ms=float(r), request=request,
                             input_size=float(s)) for i, (u, r, s) in enumerate(zip(usage, runtime, x))]
    return tasks


def perturbed_shared(tasks: list[ReplayTask], seed: int) -> list[ReplayTask]:
    """The shared traces split in time (``early``/``late``) and rescaled per task (``scaled``)."""
    rng = np.random.default_rng(seed)
    out: list[ReplayTask] = []
    for workflow in sorted({t.workflow for t in tasks}):
        runs = [t for t in tasks if t.workflow == workflow]
        middle = float(np.median([t.order for t in runs]))
        out += [dataclasses.replace(t, workflow=f"{workflow}-early") for t in runs if t.order <= middle]
        out += [dataclasses.replace(t, workflow=f"{workflow}-late") for t in runs if t.order > middle]
        factor = {name: float(rng.lognormal(0.0, 0.7)) for name in sorted({t.task for t in runs})}
        for t in runs:
            f = factor[t.task]
            out.append(dataclasses.replace(
                t, workflow=f"{workflow}-scaled", usage=t.usage * f * float(rng.lognormal(0.0, 0.03)),
                request=None if t.request is None else t.request * f,
                input_size=None if t.input_size is None else t.input_size * f))
    return out


def main(argv: list[str]) -> int:
    seed = int(argv[argv.index("--seed") + 1]) if "--seed" in argv else 0
    if "--shared" in argv:
        from mirrorscale.replay.records import load_nextflow_traces

        paths = [a for a in argv if a.endswith(".csv")] or sorted(
            (Path(__file__).resolve().parents[2] / "shared/traces/nfcore").glob("*.csv"))
        tasks = perturbed_shared(load_nextflow_traces(paths, "peak_rss").tasks, seed)
    else:
        tasks = [t for k, runs in enumerate((20, 60, 300))
                 for t in synthetic_workflow(f"synthetic-{runs}", runs, seed + k)]
    tallies = chronological(tasks, get_methods(["vpa-reference", "mirrorscale", "oracle"]))
    ref = {t.workflow: t for t in tallies if t.method == "vpa-reference"}
    print(f"{'workflow':16s} {'method':14s} {'wastage GB·h':>13s} {'failed':>7s} {'x ref':>6s}")
    for t in tallies:
        ratio = t.wastage_gbh / ref[t.workflow].wastage_gbh if ref[t.workflow].wastage_gbh else float("nan")
        print(f"{t.workflow:16s} {t.method:14s} {t.wastage_gbh:13.3f} {t.failures:7d} {ratio:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
