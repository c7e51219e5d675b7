"""Scale figures: a history of 1,000,000 task runs across 5,000 tasks, in SQLite and PostgreSQL.

Run: ``python benchmarks/scale.py [--runs 1000000] [--tasks 5000] [--duration 60] [--backend sqlite --backend postgresql]``

For each backend it builds a fresh store (SQLite: a temporary file;
PostgreSQL: a database ``ms_scale_*`` created on ``--pg-url`` and dropped
afterwards), loads the history through ``HistoryStore.add_traces`` (what
``mirrorscale import`` uses: SQLite multi-row inserts, PostgreSQL ``COPY``;
progress on stderr), then prints:

1. **the hot query plans**: every statement one sizing decision runs (first
   fit, restore from a snapshot, warm), with its ``EXPLAIN [QUERY PLAN]``, and
   whether any of them scans the whole trace table;
2. **one sizing decision** as the engines make it (``MirrorLifecycle.step``:
   history read + volatility; ``Allocator.decide``: model + prediction +
   allocation, stored in mode ``recommend``), p50/p99 on random tasks, target
   p99 <= 20 ms:

   * *first fit*: the first decision a task ever gets (no stored model: reads
     and fits the newest 200 runs, then stores the model's snapshot); once per
     task, not per process;
   * *cold*: the first decision for a task in a process whose store is open,
     after one more run was recorded: a new allocator restores the stored
     snapshot and feeds the newer runs only. This is the common case: the
     Airflow scheduler (``task_instance_mutation_hook``) and a Prefect flow
     process are long-lived and decide for many tasks;
   * *new process*: the same, each decision in a store opened just for it
     (``open`` checks the schema, which connects; then a new engine: an empty
     statement cache, no cached task keys). A process pays this once, on its
     first decision;
   * *warm*: the same process decides again (cached model, incremental refit);

3. **recording one trace** (``HistoryStore.record_trace`` with a 100-point
   sample series, as the monitors store it), p50/p99, target p99 <= 5 ms; on
   PostgreSQL also with durable commits (``MIRRORSCALE_DURABLE_COMMIT=1``), for
   comparison;
4. **``mirrorscale history NAME``'s task lookup** (``find_tasks``) over all tasks;
5. (PostgreSQL) **``--workers`` processes recording concurrently** for
   ``--duration`` seconds, 1 in 10 writes repeating an earlier trace: every
   trace stored, none twice (counts and a uniqueness check).

This is a measurement, not a timed test: the machine may be shared, so the
load average is printed with the figures, and each decision's latency is also
given without the time its thread spent runnable but waiting for a CPU
(``/proc/thread-self/schedstat``), which other jobs on the machine cause.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url

from mirrorscale.allocator import Allocator
from mirrorscale.lifecycle import MirrorLifecycle
from mirrorscale.policy import PolicySet
from mirrorscale.store.history import HistoryStore
from mirrorscale.store.models import TraceSamples

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)
MIB = 2**20
ENGINE = "bench"
TASKS_PER_PIPELINE = 50
CHUNK = 50_000
POLICY = {"mode": "recommend", "headroom": 0.15, "pool_slot_memory": "1GiB"}


def log(message: str) -> None:
    """Progress on stderr."""
    print(message, file=sys.stderr, flush=True)


def task_key(t: int) -> tuple[str, str, str]:
    """The key of synthetic task number ``t``."""
    return ENGINE, f"pipeline_{t // TASKS_PER_PIPELINE:03d}", f"task_{t % TASKS_PER_PIPELINE:02d}"


# -- synthetic history -------------------------------------------------------


def _shape(t: int) -> tuple[float, float, float]:
    """Per-task base memory (bytes), growth per run and noise (reproducible)."""
    rng = random.Random(t)
    base = rng.choice((64, 256, 512, 1024, 4096)) * MIB * rng.uniform(0.8, 1.2)
    growth = rng.choice((0.0, 0.0, 0.0, 0.002, 0.01))  # a fifth of the tasks grow fast: volatile
    return base, growth, rng.uniform(0.02, 0.15)


def history_rows(runs: int, tasks: int) -> Iterator[dict[str, Any]]:
    """``runs`` trace rows, interleaved over ``tasks`` tasks in time order (as a scheduler would record them)."""
    shapes = [_shape(t) for t in range(tasks)]
    keys = [task_key(t) for t in range(tasks)]
    rng = random.Random(7)
    per_task = runs // tasks
    step = timedelta(hours=1) / tasks
    for i in range(runs):
        t, r = i % tasks, i // tasks
        base, growth, noise = shapes[t]
        size = (1 + growth) ** r * rng.uniform(1 - noise, 1 + noise)
        started = T0 + i * step
        wall = 30.0 * size
        outcome = "oom_killed" if rng.random() < 0.002 else "success"
        engine, pipeline_id, task_id = keys[t]
        yield {"engine": engine, "pipeline_id": pipeline_id, "task_id": task_id,
               "run_id": f"run_{r:06d}" if r < per_task else f"extra_{i}", "started_at": started,
               "ended_at": started + timedelta(seconds=wall), "recorded_at": started + timedelta(seconds=wall + 1),
               "source": "bench", "features": {"baseline_rss_bytes": 150 * MIB, "rows": int(1e5 * size)},
               "input_size_bytes": int(1e8 * size), "peak_rss_bytes": int(base * size), "cpu_seconds": wall * 1.5,
               "wall_seconds": wall, "read_bytes": int(1e7 * size), "write_bytes": int(1e6 * size),
               "outcome": outcome}


def bulk_load(store: HistoryStore, runs: int, tasks: int) -> float:
    """Load the synthetic history with ``add_traces`` (one transaction per chunk); return the seconds it took."""
    started = time.perf_counter()
    rows = history_rows(runs, tasks)
    done = 0
    while done < runs:
        chunk = min(CHUNK, runs - done)
        inserted = store.add_traces(itertools.islice(rows, chunk))
        if inserted != chunk:
            raise RuntimeError(f"add_traces stored {inserted:,} of {chunk:,} new rows")
        done += chunk
        log(f"  loaded {done:>9,} / {runs:,} runs ({done / (time.perf_counter() - started):,.0f} rows/s)")
    with store.engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE" if store.engine.dialect.name == "sqlite" else "ANALYZE mirrorscale_trace")
        conn.commit()
    return time.perf_counter() - started


# -- measuring ---------------------------------------------------------------


def percentiles(samples: list[float]) -> str:
    """``p50 / p99 / max`` of ``samples`` (seconds) in milliseconds."""
    if not samples:
        return "no samples"
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered) * 1e3:6.2f} ms  p99 {p99 * 1e3:6.2f} ms  max {ordered[-1] * 1e3:6.1f} ms"


def uncontended(times: list[float], waits: list[float]) -> list[float]:
    """Each latency less the time its thread waited for a CPU."""
    return [max(0.0, t - w) for t, w in zip(times, waits)]


def p99(samples: list[float]) -> float:
    """The 99th percentile of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


class Decider:
    """One sizing decision as the engine glue makes it: life-cycle step, then the allocation."""

    def __init__(self, store: HistoryStore) -> None:
        policies = PolicySet.from_mapping(POLICY, environ={})
        self.allocator = Allocator(store, policies, capacity=64 * 2**30, use_stored_shadow=True)
        self.lifecycle = MirrorLifecycle(store, policies)
        self.count = 0

    def __call__(self, key: tuple[str, str, str], input_size: int) -> Any:
        self.count += 1
        decision = self.lifecycle.step(key)
        allocation = self.allocator.decide(key, f"decide_{self.count}", features={"input_size_bytes": input_size})
        return decision, allocation


def capture_statements(store: HistoryStore, work: Any) -> list[tuple[str, Any]]:
    """The SQL statements (with parameters) ``work()`` sends to the store."""
    seen: list[tuple[str, Any]] = []

    def remember(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "PRAGMA", "SELECT 1")):
            seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", remember)
    try:
        work()
    finally:
        event.remove(store.engine, "before_cursor_execute", remember)
    return seen


def explain(store: HistoryStore, statements: list[tuple[str, Any]]) -> bool:
    """Print the plan of every captured read; True when none scans the whole trace table."""
    sqlite = store.engine.dialect.name == "sqlite"
    ok = True
    printed: set[str] = set()
    raw = store.engine.raw_connection()
    try:
        for statement, parameters in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")) or statement in printed:
                continue
            printed.add(statement)
            cursor = raw.cursor()
            cursor.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, parameters)
            rows = cursor.fetchall()
            plan = [row[-1] if sqlite else row[0] for row in rows]
            full_scan = any(
                ("SCAN mirrorscale_trace" in line and "USING" not in line) if sqlite
                else ("Seq Scan on mirrorscale_trace" in line) for line in plan)
            ok = ok and not full_scan
            one_line = " ".join(statement.split())
            print(f"    {one_line[:150]}{'...' if len(one_line) > 150 else ''}")
            for line in plan:
                print(f"      {line}")
            print(f"      -> {'FULL SCAN of the trace table' if full_scan else 'index only, bounded'}")
        if not sqlite:
            raw.rollback()
    finally:
        raw.close()
    return ok


def cpu_wait() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU (0 where the kernel does not say)."""
    try:
        with open("/proc/thread-self/schedstat", "rb") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def _timed(decide: Decider, keys: list[int], rng: random.Random, waits: list[float]) -> list[float]:
    """Latency of one decision per key; appends each one's CPU wait to ``waits``."""
    times = []
    for t in keys:
        waited, started = cpu_wait(), time.perf_counter()
        decide(task_key(t), int(1e8 * rng.uniform(0.8, 1.5)))
        times.append(time.perf_counter() - started)
        waits.append(cpu_wait() - waited)
    return times


def measure_decisions(url: str, store: HistoryStore, tasks: int, decisions: int,
                      seed: int = 1) -> dict[str, tuple[list[float], list[float]]]:
    """First-fit, cold, new-process and warm decision latencies, each with its CPU waits."""
    rng = random.Random(seed)
    chosen = rng.sample(range(tasks), min(tasks, decisions // 2))
    lat: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in ("first", "cold", "new", "warm")}
    resident = Decider(store)
    lat["first"][0].extend(_timed(resident, chosen, rng, lat["first"][1]))  # no snapshot yet: fit, store it
    for t in chosen:  # each task runs once more before its next decision
        _record_one(store, rng, task_key(t), f"between_{t}")
    half = len(chosen) // 2
    scheduler = Decider(store)  # a long-lived process (its store open) meets these tasks for the first time
    lat["cold"][0].extend(_timed(scheduler, chosen[:half], rng, lat["cold"][1]))
    for t in chosen[half:]:
        fresh = HistoryStore.open(url)  # a new process: its own engine, connection, statement cache
        try:
            lat["new"][0].extend(_timed(Decider(fresh), [t], rng, lat["new"][1]))
        finally:
            fresh.close()
    warm = [rng.choice(chosen) for _ in range(decisions - len(chosen))]
    lat["warm"][0].extend(_timed(resident, warm, rng, lat["warm"][1]))
    return lat


def _samples(rng: random.Random, points: int = 100) -> TraceSamples:
    rss = [int(200 * MIB * rng.random()) for _ in range(points)]
    return TraceSamples(t_seconds=[i * 0.1 for i in range(points)], rss_bytes=rss,
                        cpu_seconds=[i * 0.09 for i in range(points)])


def _record_one(store: HistoryStore, rng: random.Random, key: tuple[str, str, str], run_id: str) -> int | None:
    started = datetime.now(timezone.utc)
    return store.record_trace(
        engine=key[0], pipeline_id=key[1], task_id=key[2], run_id=run_id, started_at=started,
        ended_at=started + timedelta(seconds=3), source="bench", outcome="success",
        features={"baseline_rss_bytes": 150 * MIB, "rows": rng.randrange(10**6), "runner": "bench"},
        input_size_bytes=rng.randrange(10**9), peak_rss_bytes=rng.randrange(10**9), cpu_seconds=2.5,
        wall_seconds=3.0, read_bytes=rng.randrange(10**8), write_bytes=rng.randrange(10**7),
        samples=_samples(rng))


def measure_records(store: HistoryStore, tasks: int, count: int, seed: int = 2) -> list[float]:
    """Latencies of ``count`` ``record_trace`` calls on random existing tasks."""
    rng = random.Random(seed)
    times = []
    for i in range(count):
        key = task_key(rng.randrange(tasks))
        started = time.perf_counter()
        _record_one(store, rng, key, f"record_{i}")
        times.append(time.perf_counter() - started)
    return times


# -- concurrent writers ------------------------------------------------------


def _worker(url: str, worker: int, tasks: int, duration: float, ready: Any, go: Any, start: Any, queue: Any) -> None:
    """Record traces for ``duration`` s after ``go``; 1 in 10 writes repeats one of this worker's earlier traces."""
    store = HistoryStore.open(url, migrate=False)
    store.known_task_pk(None, task_key(0))  # connected
    ready.put(worker)
    go.wait()
    deadline = start.value + duration
    rng = random.Random(1000 + worker)
    written: list[tuple[tuple[str, str, str], str]] = []
    attempts = inserted = repeats = repeat_inserted = 0
    latencies: list[float] = []
    while time.time() < deadline:
        if written and rng.random() < 0.1:
            key, run_id = rng.choice(written)
            repeats += 1
            repeat_inserted += _record_one(store, rng, key, run_id) is not None
            continue
        # a few tasks are new: task rows are created concurrently too
        key = task_key(rng.randrange(tasks)) if rng.random() < 0.98 else (ENGINE, "concurrent", f"w{rng.randrange(40)}")
        run_id = f"conc_{worker}_{attempts}"
        attempts += 1
        started = time.perf_counter()
        trace_id = _record_one(store, rng, key, run_id)
        latencies.append(time.perf_counter() - started)
        inserted += trace_id is not None
        written.append((key, run_id))
    store.close()
    queue.put({"worker": worker, "attempts": attempts, "inserted": inserted, "repeats": repeats,
               "repeat_inserted": repeat_inserted, "latencies": latencies})


def concurrent_writers(url: str, tasks: int, workers: int, duration: float, figures: dict[str, Any]) -> bool:
    """Run the writers and check every trace is stored exactly once; print the figures."""
    ctx = mp.get_context("spawn")
    queue, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    start = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_worker, args=(url, w, tasks, duration, ready, go, start, queue))
             for w in range(workers)]
    for proc in procs:
        proc.start()
    for _ in procs:  # every worker imported and connected: start the clock for all at once
        ready.get(timeout=600)
    start.value = time.time()
    go.set()
    log(f"  {workers} writer processes recording for {duration:g} s ...")
    results = [queue.get(timeout=duration + 300) for _ in procs]
    for proc in procs:
        proc.join()
    engine = create_engine(make_url(url).set(drivername="postgresql+psycopg"))
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM mirrorscale_trace WHERE run_id LIKE 'conc\\_%'")).scalar()
        distinct = conn.execute(text("SELECT count(DISTINCT (task_pk, run_id, try_number)) FROM mirrorscale_trace "
                                     "WHERE run_id LIKE 'conc\\_%'")).scalar()
        twice = conn.execute(text("SELECT count(*) FROM (SELECT 1 FROM mirrorscale_trace GROUP BY task_pk, run_id, "
                                  "try_number HAVING count(*) > 1) d")).scalar()
        tasks_twice = conn.execute(text("SELECT count(*) FROM (SELECT 1 FROM mirrorscale_task GROUP BY engine, "
                                        "pipeline_id, task_id HAVING count(*) > 1) d")).scalar()
        samples = conn.execute(text("SELECT count(*) FROM mirrorscale_trace_samples s JOIN mirrorscale_trace t "
                                    "ON t.id = s.trace_id WHERE t.run_id LIKE 'conc\\_%'")).scalar()
    engine.dispose()
    attempts = sum(r["attempts"] for r in results)
    inserted = sum(r["inserted"] for r in results)
    repeats = sum(r["repeats"] for r in results)
    repeat_inserted = sum(r["repeat_inserted"] for r in results)
    latencies = [x for r in results for x in r["latencies"]]
    ok = attempts > 0 and stored == attempts == inserted == distinct == samples and twice == 0 \
        and tasks_twice == 0 and repeat_inserted == 0
    print(f"  {workers} processes x {duration:g} s: {attempts:,} new traces written ({attempts / duration:,.0f}/s), "
          f"{repeats:,} repeats of earlier traces")
    print(f"    stored {stored:,} (distinct keys {distinct:,}, with samples {samples:,}); repeats stored: "
          f"{repeat_inserted}; keys stored twice: {twice}; task rows twice: {tasks_twice}")
    print(f"    record_trace under contention: {percentiles(latencies)}")
    print(f"    every trace stored exactly once: {'yes' if ok else 'NO'}")
    figures["writers"] = {"workers": workers, "seconds": duration, "new": attempts, "stored": stored,
                          "repeats": repeats, "repeats_stored": repeat_inserted, "twice": twice,
                          "task_rows_twice": tasks_twice, "exact": ok,
                          "p50_ms": statistics.median(latencies) * 1e3 if latencies else None,
                          "p99_ms": p99(latencies) * 1e3 if latencies else None}
    return ok


# -- backends ----------------------------------------------------------------


def _pg_database(admin_url: str) -> tuple[str, Any]:
    name = f"ms_scale_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def run_backend(backend: str, args: argparse.Namespace, figures: dict[str, Any]) -> bool:
    """Build the history on ``backend``, print its figures (also into ``figures``); True when every target is met."""
    tmp = tempfile.TemporaryDirectory(prefix="ms_scale_")
    if backend == "sqlite":
        url, drop = f"sqlite:///{Path(tmp.name) / 'scale.sqlite'}", (lambda: None)
    else:
        url, drop = _pg_database(args.pg_url)
    try:
        store = HistoryStore.open(url)
        log(f"[{backend}] bulk-loading {args.runs:,} runs across {args.tasks:,} tasks ...")
        seconds = bulk_load(store, args.runs, args.tasks)
        print(f"\n== {backend}: {store.count_traces():,} runs, {len(store.tasks()):,} tasks "
              f"(bulk load {seconds:.0f} s, {args.runs / seconds:,.0f} rows/s)")
        print("  hot path statements and plans (first fit, record, restore from the snapshot, warm):")
        key = task_key(args.tasks // 2)
        rng = random.Random(3)

        def probe() -> None:
            Decider(store)(key, 10**8)  # first fit, stores the snapshot
            _record_one(store, rng, key, "explain_probe")
            again = Decider(store)  # a new allocator restores the snapshot
            again(key, 10**8)
            again(key, 10**8)

        no_scan = explain(store, capture_statements(store, probe))
        print(f"  hot path full-table scans: {'none' if no_scan else 'YES'}")
        log(f"[{backend}] {args.decisions} decisions ...")
        lat = measure_decisions(url, store, args.tasks, args.decisions)
        log(f"[{backend}] {args.records} record_trace calls ...")
        rec = measure_records(store, args.tasks, args.records)
        durable = None
        if backend == "postgresql":
            strict = HistoryStore.open(url, migrate=False, durable=True)
            durable = measure_records(strict, args.tasks, max(100, args.records // 5), seed=4)
            strict.close()
        started = time.perf_counter()
        found = store.find_tasks("task_07")
        find_s = time.perf_counter() - started
        started = time.perf_counter()
        exact = store.find_tasks("pipeline_003.task_07")
        exact_s = time.perf_counter() - started
        load = os.getloadavg()
        print(f"  decision (life-cycle step + allocate + store) on random tasks (load {load[0]:.1f}):")
        labels = {"first": "first fit (no stored model: 200 runs)", "cold": "cold (restore snapshot + feed)",
                  "new": "new process (cold + new engine)", "warm": "warm (cached model, incremental refit)"}
        notes = {"first": "once per task ever", "cold": "first for the task in an open store",
                 "new": "once per process", "warm": "the same process again"}
        for name, (times, waits) in lat.items():
            print(f"    {labels[name]:<40} {percentiles(times)}  ({len(times)}, {notes[name]}); "
                  f"less CPU wait: p99 {p99(uncontended(times, waits)) * 1e3:.2f} ms")
        print(f"  record_trace (with 100 samples), {args.records}x:  {percentiles(rec)}")
        if durable is not None:
            print(f"  record_trace, durable commits, {len(durable)}x:  {percentiles(durable)}  (for comparison)")
        print(f"  find_tasks over {args.tasks:,} tasks: glob 'task_07' {find_s * 1e3:.1f} ms ({len(found)} found), "
              f"exact name {exact_s * 1e3:.1f} ms ({len(exact)} found)")
        ok = no_scan and p99(rec) <= 0.005 and all(p99(lat[k][0]) <= 0.020 for k in ("cold", "warm"))
        figures[backend] = {"rows_per_s": args.runs / seconds, "load": load[0],
                            **{f"{k}_p50_ms": statistics.median(v) * 1e3 for k, (v, _) in lat.items()},
                            **{f"{k}_p99_ms": p99(v) * 1e3 for k, (v, _) in lat.items()},
                            **{f"{k}_uncontended_p99_ms": p99(uncontended(*tw)) * 1e3 for k, tw in lat.items()},
                            "record_p50_ms": statistics.median(rec) * 1e3, "record_p99_ms": p99(rec) * 1e3}
        if durable is not None:
            figures[backend] |= {"durable_record_p50_ms": statistics.median(durable) * 1e3,
                                 "durable_record_p99_ms": p99(durable) * 1e3}
        store.close()
        if backend == "postgresql" and args.workers:
            ok = concurrent_writers(url, args.tasks, args.workers, args.duration, figures) and ok
        return ok
    finally:
        drop()
        tmp.cleanup()


def main() -> None:
    """Parse arguments, run every backend, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--tasks", type=int, default=5_000)
    parser.add_argument("--decisions", type=int, default=2_000)
    parser.add_argument("--records", type=int, default=1_000)
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of concurrent recording")
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgresql"],
                        help="default: both")
    parser.add_argument("--pg-url", default=os.environ.get(
        "MIRRORSCALE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    print(f"mirrorscale scale benchmark: {args.runs:,} runs, {args.tasks:,} tasks, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    figures: dict[str, Any] = {"runs": args.runs, "tasks": args.tasks}
    results = {backend: run_backend(backend, args, figures) for backend in (args.backend or ["sqlite", "postgresql"])}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    print("\ntargets met (cold and warm decision p99 <= 20 ms, record p99 <= 5 ms, no full scans, concurrent writes exact): "
          + ", ".join(f"{b} {'yes' if ok else 'NO'}" for b, ok in results.items()))
    sys.exit(0 if all(results.values()) else 1)


if __name__ == "__main__":
    main()
