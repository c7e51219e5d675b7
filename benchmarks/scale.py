"""Scale figures: a history of 1,000,000 task runs across 5,000 tasks, in SQLite and PostgreSQL.

Run: ``python benchmarks/scale.py [--runs 1000000] [--tasks 5000] [--duration 60] [--backend sqlite --backend postgresql]``

For each backend it builds a fresh store (SQLite: a temporary file;
PostgreSQL: a database ``ms_scale_*`` created on ``--pg-url`` and dropped
afterwards), bulk-loads the history (SQLite ``executemany``, PostgreSQL
``COPY``; progress on stderr), then prints:

1. **the hot query plans**: every statement one sizing decision runs, with its
   ``EXPLAIN [QUERY PLAN]``, and whether any of them scans the whole trace table;
2. **one sizing decision** as the engines make it (``MirrorLifecycle.step``:
   history read + volatility; ``Allocator.decide``: model fit or incremental
   refit + prediction + allocation, stored in mode ``recommend``), p50/p99 over
   ``--decisions`` decisions on random tasks, *cold* (first decision for the
   task in this process: reads and fits the newest 200 runs) and *warm* (the
   cached model asks only for newer runs), target p99 <= 20 ms;
3. **recording one trace** (``HistoryStore.record_trace`` with a 100-point
   sample series, as the monitors store it), p50/p99, target p99 <= 5 ms;
4. **``mirrorscale history NAME``'s task lookup** (``find_tasks``) over all tasks;
5. (PostgreSQL) **``--workers`` processes recording concurrently** for
   ``--duration`` seconds, 1 in 10 writes repeating an earlier trace: every
   trace stored, none twice (counts and a uniqueness check).

This is a measurement, not a timed test: the machine may be shared, so the
load average is printed with the figures.
"""

from __future__ import annotations

import argparse
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
TRACE_COLUMNS = ("task_pk", "run_id", "try_number", "started_at", "ended_at", "recorded_at", "source",
                 "features", "input_size_bytes", "peak_rss_bytes", "cpu_seconds", "wall_seconds",
                 "read_bytes", "write_bytes", "branch", "outcome")


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


def history_rows(runs: int, tasks: int, task_pks: list[int]) -> Iterator[tuple[Any, ...]]:
    """``runs`` trace rows, interleaved over ``tasks`` tasks in time order (as a scheduler would record them)."""
    shapes = [_shape(t) for t in range(tasks)]
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
        features = {"baseline_rss_bytes": 150 * MIB, "rows": int(1e5 * size)}
        yield (task_pks[t], f"run_{r:06d}" if r < per_task else f"extra_{i}", 1, started,
               started + timedelta(seconds=wall), started + timedelta(seconds=wall + 1), "bench",
               json.dumps(features), int(1e8 * size), int(base * size), wall * 1.5, wall,
               int(1e7 * size), int(1e6 * size), None, outcome)


def _ensure_tasks(store: HistoryStore, tasks: int) -> list[int]:
    with store.writing() as session:
        return [store.task_pk(session, task_key(t)) for t in range(tasks)]


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")


def bulk_load(store: HistoryStore, runs: int, tasks: int) -> float:
    """Load the synthetic history; return the seconds it took."""
    started = time.perf_counter()
    task_pks = _ensure_tasks(store, tasks)
    sqlite = store.engine.dialect.name == "sqlite"
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        placeholders = ", ".join("?" for _ in TRACE_COLUMNS)
        insert = f"INSERT INTO mirrorscale_trace ({', '.join(TRACE_COLUMNS)}) VALUES ({placeholders})"
        batch: list[tuple[Any, ...]] = []
        done = 0

        def flush() -> None:
            nonlocal batch, done
            if sqlite:
                cursor.execute("BEGIN IMMEDIATE")
                cursor.executemany(insert, [(*row[:3], _sqlite_time(row[3]), _sqlite_time(row[4]),
                                             _sqlite_time(row[5]), *row[6:]) for row in batch])
                cursor.execute("COMMIT")
            else:
                with cursor.copy(f"COPY mirrorscale_trace ({', '.join(TRACE_COLUMNS)}) FROM STDIN") as copy:
                    for row in batch:
                        copy.write_row(row)
                raw.commit()
            done += len(batch)
            batch = []
            rate = done / (time.perf_counter() - started)
            log(f"  loaded {done:>9,} / {runs:,} runs ({rate:,.0f} rows/s)")

        for row in history_rows(runs, tasks, task_pks):
            batch.append(row)
            if len(batch) >= CHUNK:
                flush()
        if batch:
            flush()
        cursor.execute("ANALYZE" if sqlite else "ANALYZE mirrorscale_trace")
        if not sqlite:
            raw.commit()
    finally:
        raw.close()
    return time.perf_counter() - started


# -- measuring ---------------------------------------------------------------


def percentiles(samples: list[float]) -> str:
    """``p50 / p99 / max`` of ``samples`` (seconds) in milliseconds."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    return f"p50 {statistics.median(ordered) * 1e3:6.2f} ms  p99 {p99 * 1e3:6.2f} ms  max {ordered[-1] * 1e3:6.1f} ms"


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


def measure_decisions(store: HistoryStore, tasks: int, decisions: int, seed: int = 1) -> dict[str, list[float]]:
    """Cold and warm decision latencies on random tasks."""
    rng = random.Random(seed)
    decide = Decider(store)
    chosen = rng.sample(range(tasks), min(tasks, decisions // 2))
    cold, warm = [], []
    for t in chosen:
        started = time.perf_counter()
        decide(task_key(t), int(1e8 * rng.uniform(0.8, 1.5)))
        cold.append(time.perf_counter() - started)
    for _ in range(decisions - len(chosen)):
        t = rng.choice(chosen)
        started = time.perf_counter()
        decide(task_key(t), int(1e8 * rng.uniform(0.8, 1.5)))
        warm.append(time.perf_counter() - started)
    return {"cold": cold, "warm": warm}


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


def _worker(url: str, worker: int, tasks: int, deadline: float, queue: Any) -> None:
    """Record traces until ``deadline``; 1 in 10 writes repeats one of this worker's earlier traces."""
    store = HistoryStore.open(url, migrate=False)
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


def concurrent_writers(url: str, tasks: int, workers: int, duration: float) -> bool:
    """Run the writers and check every trace is stored exactly once; print the figures."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    deadline = time.time() + 5 + duration  # spawn and import time first
    procs = [ctx.Process(target=_worker, args=(url, w, tasks, deadline, queue)) for w in range(workers)]
    for proc in procs:
        proc.start()
    log(f"  {workers} writer processes until {duration:g} s after start-up ...")
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
    ok = stored == attempts == inserted == distinct == samples and twice == 0 and tasks_twice == 0 \
        and repeat_inserted == 0
    print(f"  {workers} processes x {duration:g} s: {attempts:,} new traces written ({attempts / duration:,.0f}/s), "
          f"{repeats:,} repeats of earlier traces")
    print(f"    stored {stored:,} (distinct keys {distinct:,}, with samples {samples:,}); repeats stored: "
          f"{repeat_inserted}; keys stored twice: {twice}; task rows twice: {tasks_twice}")
    print(f"    record_trace under contention: {percentiles(latencies)}")
    print(f"    every trace stored exactly once: {'yes' if ok else 'NO'}")
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


def run_backend(backend: str, args: argparse.Namespace) -> bool:
    """Build the history on ``backend`` and print its figures; True when every target is met."""
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
        print("  hot path statements and plans (one cold decision, one warm decision, one record):")
        probe = Decider(store)
        key = task_key(args.tasks // 2)
        rng = random.Random(3)
        statements = capture_statements(store, lambda: (probe(key, 10**8), probe(key, 10**8),
                                                        _record_one(store, rng, key, "explain_probe")))
        no_scan = explain(store, statements)
        print(f"  hot path full-table scans: {'none' if no_scan else 'YES'}")
        log(f"[{backend}] {args.decisions} decisions ...")
        lat = measure_decisions(store, args.tasks, args.decisions)
        log(f"[{backend}] {args.records} record_trace calls ...")
        rec = measure_records(store, args.tasks, args.records)
        started = time.perf_counter()
        found = store.find_tasks("task_07")
        find_s = time.perf_counter() - started
        started = time.perf_counter()
        exact = store.find_tasks("pipeline_003.task_07")
        exact_s = time.perf_counter() - started
        load = os.getloadavg()
        print(f"  decision (life-cycle step + allocate + store), {args.decisions} on random tasks "
              f"(load {load[0]:.1f}):")
        print(f"    cold (first for the task: read 200 runs, fit)  {percentiles(lat['cold'])}")
        print(f"    warm (cached model, incremental refit)         {percentiles(lat['warm'])}")
        print(f"  record_trace (with 100 samples), {args.records}x:  {percentiles(rec)}")
        print(f"  find_tasks over {args.tasks:,} tasks: glob 'task_07' {find_s * 1e3:.1f} ms ({len(found)} found), "
              f"exact name {exact_s * 1e3:.1f} ms ({len(exact)} found)")
        ok = no_scan and p99(lat["cold"]) <= 0.020 and p99(lat["warm"]) <= 0.020 and p99(rec) <= 0.005
        store.close()
        if backend == "postgresql" and args.workers:
            ok = concurrent_writers(url, args.tasks, args.workers, args.duration) and ok
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
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of concurrent recording")
    parser.add_argument("--backend", action="append", choices=["sqlite", "postgresql"],
                        help="default: both")
    parser.add_argument("--pg-url", default=os.environ.get(
        "MIRRORSCALE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    args = parser.parse_args()
    print(f"mirrorscale scale benchmark: {args.runs:,} runs, {args.tasks:,} tasks, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    results = {backend: run_backend(backend, args) for backend in (args.backend or ["sqlite", "postgresql"])}
    print("\ntargets met (decision p99 <= 20 ms, record p99 <= 5 ms, no full scans, concurrent writes exact): "
          + ", ".join(f"{b} {'yes' if ok else 'NO'}" for b, ok in results.items()))
    sys.exit(0 if all(results.values()) else 1)


if __name__ == "__main__":
    main()
