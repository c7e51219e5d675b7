"""Memory-heavy fan-out on Prefect, three ways: static worst case, static average, mirrorscale enforce.

::

    .venvs/prefect/bin/python benchmarks/prefect_fanout.py [--items 24] [--hold 1.5] [--capacity 2GiB]

The fan-out maps ``crunch`` over ``--items`` chunks; a chunk of ``n`` input bytes
holds ``FACTOR x n`` bytes of memory for ``--hold`` seconds (heavy tail: most chunks
need 16-64 MiB, one in six needs 640-800 MiB). Every way runs the *same* inputs on a
``ProcessPoolTaskRunner`` wrapped by ``PredictiveTaskRunner``, with memory admission
on one global concurrency limit of ``--capacity`` (so admission decides how many run
at once) and the memory guard on (a process-pool worker runs one task at a time, so
the guard's "rise of this process's RSS" is exactly the task's memory: admission and
guard are honest; a thread pool would share one process between tasks).

==============  ===============================================================
way             every ``crunch`` run is allocated ...
==============  ===============================================================
static worst    the largest peak of the warm-up runs + 15 % (policy bounds
                min = max = that), so nothing is killed but few fit at once
static average  the mean peak of the warm-up runs + 15 %: more fit at once, and
                the guard stops (OOM-kills) every chunk above it; not retried
enforce         the allocator's per-run decision from the chunk's own input size
                and the warm-up history (mode ``enforce``, default headroom)
==============  ===============================================================

Warm-up: ``--warmups`` runs of the enforce flow in mode ``observe`` on other random
chunks (same distribution) give the history. Makespan is measured inside the flow
from the fan-out's submission to its last result, after the pool's workers were
started (so process start-up does not count); the flow run's wall time is shown too.
A temporary history store is used, and a temporary Prefect API server started for
the benchmark unless ``PREFECT_API_URL`` is set (one server for the three ways;
``PredictiveTaskRunner`` would otherwise share the flow's temporary server with its
process-pool workers, see :mod:`mirrorscale.plugins.prefect.shared_api`).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
FACTOR = 32
"""Memory held per input byte."""
WORKERS = 8
LIMIT = "mirrorscale-memory-bench-fanout"


def chunk_needs(items: int, seed: int) -> list[int]:
    """Memory (bytes) of each chunk: one in six large (640-800 MiB), the rest small (16-64 MiB)."""
    rng = random.Random(seed)
    needs = [int(rng.uniform(640, 800) * MiB) if i % 6 == 0 else int(rng.uniform(16, 64) * MiB)
             for i in range(items)]
    rng.shuffle(needs)
    return needs


def crunch(rows: bytes, hold: float) -> int:
    """Hold ``FACTOR x len(rows)`` bytes (every page touched) for ``hold`` seconds.

    The buffer is an anonymous mmap, returned to the system when the task ends: a
    ``bytearray`` of up to 32 MiB may come from malloc's heap instead, which a reused
    worker keeps resident, so the next task's RSS *rise* (what is measured and guarded)
    would miss it.
    """
    import mmap

    size = FACTOR * len(rows)
    buffer = mmap.mmap(-1, size)
    try:
        for offset in range(0, size, 4096):
            buffer[offset] = 1
        deadline = time.monotonic() + hold
        while time.monotonic() < deadline:  # short sleeps: a guard's MemoryError lands within 50 ms
            time.sleep(0.05)
        return size
    finally:
        buffer.close()


def warm(i: int) -> int:
    """Keep a worker busy for a moment, so that every worker of the pool is started."""
    time.sleep(1.0)
    return os.getpid()


def _write_policy(path: Path, flow_name: str, fields: dict[str, Any]) -> str:
    lines = [f'[tasks."{flow_name}.crunch"]']
    for key, value in fields.items():
        if isinstance(value, dict):
            inner = ", ".join(f'{k} = "{v}"' for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        elif isinstance(value, str):
            lines.append(f'{key} = "{value}"')
        else:
            lines.append(f"{key} = {value}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def run_way(flow_name: str, needs: list[int], hold: float, policy_file: str, capacity: int,
            workers: int = WORKERS) -> dict[str, Any]:
    """Run the fan-out once as ``flow_name``; return makespan, wall time and outcomes."""
    from prefect import flow, task, unmapped
    from prefect.task_runners import ProcessPoolTaskRunner

    from mirrorscale.plugins.prefect import MemoryAdmission, PredictiveTaskRunner

    crunch_task = task(crunch, name="crunch")
    warm_task = task(warm, name="warm")
    runner = PredictiveTaskRunner(inner=ProcessPoolTaskRunner(max_workers=workers), policy_file=policy_file,
                                  admission=MemoryAdmission(capacity=capacity, name=LIMIT), artifacts=False)

    @flow(name=flow_name, task_runner=runner)
    def fanout(needs: list[int], hold: float) -> dict[str, Any]:
        [f.result() for f in warm_task.map(range(workers))]
        chunks = [bytes(n // FACTOR) for n in needs]
        started = time.perf_counter()
        futures = crunch_task.map(chunks, hold=unmapped(hold))
        states = [f.wait() or f.state for f in futures]
        return {"makespan": time.perf_counter() - started, "failed": sum(s.is_failed() for s in states),
                "run_ids": [str(f.task_run_id) for f in futures]}

    began = time.perf_counter()
    out = fanout(needs, hold)
    out["wall"] = time.perf_counter() - began
    return out


def outcomes(store: Any, flow_name: str, run_ids: list[str]) -> dict[str, Any]:
    """OOM kills, peaks and allocations of the given crunch runs, from the history store."""
    traces = [t for t in store.latest_traces("prefect", flow_name, "crunch", limit=10_000) if t.run_id in run_ids]
    return {"oom": sum(t.outcome == "oom_killed" for t in traces), "traces": traces,
            "allocated": [t.allocated_memory_bytes for t in traces if t.allocated_memory_bytes]}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; exit 1 when the target is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--hold", type=float, default=1.5, help="seconds each chunk holds its memory")
    parser.add_argument("--capacity", default="2GiB", help="memory admission capacity")
    parser.add_argument("--warmups", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="mirrorscale-bench-fanout-"))
    os.environ.setdefault("MIRRORSCALE_DATABASE_URL", f"sqlite:///{workdir / 'history.sqlite'}")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from mirrorscale.demo.prefect_server import start_api_server, stop_api_server

    server = None if os.environ.get("PREFECT_API_URL") else start_api_server(workdir)
    try:
        return _benchmark(args, workdir)
    finally:
        if server is not None:
            stop_api_server(server)


def _benchmark(args: argparse.Namespace, workdir: Path) -> int:
    from mirrorscale.policy import format_bytes, parse_byte_size
    from mirrorscale.store.history import HistoryStore

    store = HistoryStore.open(os.environ["MIRRORSCALE_DATABASE_URL"])
    capacity = parse_byte_size(args.capacity)
    needs = chunk_needs(args.items, args.seed)
    enforce_name = "fanout-enforce"
    observe = _write_policy(workdir / "observe.toml", enforce_name, {"mode": "observe"})
    enforce = _write_policy(workdir / "enforce.toml", enforce_name, {"mode": "enforce"})

    t0 = time.perf_counter()
    for i in range(args.warmups):
        run_way(enforce_name, chunk_needs(args.items, 1000 + i), 0.6, observe, capacity, workers=3)
    peaks = [t.peak_rss_bytes for t in store.latest_traces("prefect", enforce_name, "crunch", limit=10_000)
             if t.outcome == "success" and t.peak_rss_bytes]
    worst, average = int(max(peaks) * 1.15), int(statistics.mean(peaks) * 1.15)
    print(f"warm-up: {args.warmups} runs, {len(peaks)} crunch traces in {time.perf_counter() - t0:.0f} s; "
          f"peaks {format_bytes(min(peaks))}..{format_bytes(max(peaks))}, mean {format_bytes(statistics.mean(peaks))}")
    print(f"fan-out: {args.items} chunks needing {format_bytes(min(needs))}..{format_bytes(max(needs))} "
          f"(mean {format_bytes(statistics.mean(needs))}), hold {args.hold:g} s, capacity {format_bytes(capacity)}, "
          f"ProcessPoolTaskRunner({WORKERS} workers) + memory admission + guard\n")

    static = {"static worst": ("fanout-worst", worst), "static average": ("fanout-average", average)}
    results: dict[str, dict[str, Any]] = {}
    for label, (name, size) in static.items():
        bytes_ = f"{size}B"
        policy = _write_policy(workdir / f"{name}.toml", name, {
            "mode": "enforce", "headroom": 0, "default_memory": bytes_,
            "memory": {"min_allowed": bytes_, "max_allowed": bytes_}})
        out = run_way(name, needs, args.hold, policy, capacity)
        results[label] = {**out, **outcomes(store, name, out["run_ids"]), "allocation": format_bytes(size)}
    out = run_way(enforce_name, needs, args.hold, enforce, capacity)
    results["mirrorscale enforce"] = {**out, **outcomes(store, enforce_name, out["run_ids"])}
    allocated = results["mirrorscale enforce"]["allocated"]
    results["mirrorscale enforce"]["allocation"] = (f"per run {format_bytes(min(allocated))}.."
                                                    f"{format_bytes(max(allocated))}" if allocated else "n/a")

    print(f"{'way':<22}{'allocation':<28}{'makespan s':>11}{'flow wall s':>13}{'OOM kills':>11}")
    for label, r in results.items():
        print(f"{label:<22}{r['allocation']:<28}{r['makespan']:>11.1f}{r['wall']:>13.1f}{r['oom']:>11d}")
    ratio = results["mirrorscale enforce"]["makespan"] / results["static worst"]["makespan"]
    enforce_oom = results["mirrorscale enforce"]["oom"]
    ok = enforce_oom == 0 and ratio <= 0.7
    print(f"\nenforce / worst-case makespan = {ratio:.2f} (target <= 0.70); enforce OOM kills = {enforce_oom} "
          f"(target 0): {'MET' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
