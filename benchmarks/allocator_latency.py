"""Latency of one ``Allocator.decide`` on a task with 1,000 runs in SQLite.

Run: ``python benchmarks/allocator_latency.py [--runs 1000] [--repeat 50]``

Three cases, each timed end to end (store queries, sizer, post-processors,
storing the allocation in mode ``recommend``):

* **first decision**: a fresh allocator reads the newest 200 runs and fits
  the task's sizer (once per task and process);
* **warm, no new run**: the cached model asks the store for runs newer than
  the last one it saw (none) -- the common case within one DAG run;
* **warm, one new run**: a new trace was recorded since; the model is fed
  that one trace only.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from mirrorscale.allocator import Allocator
from mirrorscale.policy import PolicySet
from mirrorscale.store.history import HistoryStore

KEY = ("airflow", "bench", "transform")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
GIB = 2**30


def _trace(i: int) -> dict:
    grow = 1.0 + i / 2000
    return dict(engine=KEY[0], pipeline_id=KEY[1], task_id=KEY[2], run_id=f"run{i}",
                started_at=T0 + timedelta(hours=i), peak_rss_bytes=int(GIB * grow * (1 + 0.05 * (i % 7) / 7)),
                wall_seconds=120.0 * grow, cpu_seconds=200.0 * grow, input_size_bytes=int(10**9 * grow),
                features={"baseline_rss_bytes": 150 * 2**20})


def _ms(samples: list[float]) -> str:
    p95 = sorted(samples)[int(0.95 * (len(samples) - 1))]
    return f"{statistics.median(samples) * 1e3:8.2f} ms (p95 {p95 * 1e3:.2f})"


def main() -> None:
    """Print the latency table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = HistoryStore.open(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        store.add_traces(_trace(i) for i in range(args.runs))
        policies = PolicySet.from_mapping({"mode": "recommend", "pool_slot_memory": "1GiB"}, environ={})
        first = []
        for _ in range(5):
            allocator = Allocator(store, policies)
            started = time.perf_counter()
            allocation = allocator.decide(KEY, "first")
            first.append(time.perf_counter() - started)
        warm, fresh = [], []
        for i in range(args.repeat):
            started = time.perf_counter()
            allocator.decide(KEY, f"warm{i}")
            warm.append(time.perf_counter() - started)
            store.add_traces([_trace(args.runs + i)])
            started = time.perf_counter()
            allocation = allocator.decide(KEY, f"new{i}")
            fresh.append(time.perf_counter() - started)
        store.close()
    print(f"Allocator.decide on a task with {args.runs:,} runs (SQLite, mode recommend, stored)")
    print(f"  first decision (fit on newest 200) {_ms(first)}")
    print(f"  warm, no new run                   {_ms(warm)}")
    print(f"  warm, one new run                  {_ms(fresh)}")
    print(f"  last reason: {allocation.reason}")


if __name__ == "__main__":
    main()
