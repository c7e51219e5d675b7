"""Memory-heavy fan-out on a real Airflow scheduler (LocalExecutor, PostgreSQL): three ways to size it.

    .venvs/airflow/bin/python benchmarks/airflow_fanout.py [--hold 8] [--capacity 3GiB]

One DAG, ``ms_bench_fanout``: ``plan`` returns skewed text partitions;
``crunch`` is mapped over them and expands each partition ``FACTOR`` times in
memory (so its peak follows its own input: ~150 MiB task process + 1000 x
the partition), holds it for ``--hold`` seconds and returns. Every ``crunch``
instance runs in the pool ``mirrorscale_memory`` whose slots are 128 MiB of
``--capacity``; the pool is what limits concurrency. ``crunch`` is in mode
``enforce``, so the memory guard stops any instance that outgrows its
allocation (recorded ``oom_killed``), as a container limit would.

Three runs of the same DAG, one after the other, on one scheduler:

1. ``average``: every instance pinned (``conf["mirrorscale"]["pin"]``) to the
   average peak + 15 %: over-average instances are OOM-killed;
2. ``worst``: pinned to the worst case (largest partition's peak + 15 %);
3. ``enforce``: the policy hook sizes each instance at expansion time from its
   own partition's size, with the history the two static runs (the warm-up)
   recorded.

Prints makespan (DAG run start to end) and OOM kills for each, and the ratio
enforce / worst. Needs PostgreSQL at ``MIRRORSCALE_TEST_POSTGRES_URL``
(default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``); creates and
drops its own database. About 3-4 minutes on 2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

BIN = Path(sys.executable).parent
PG_ADMIN = os.environ.get("MIRRORSCALE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MIB = 1 << 20
FACTOR = 1000
BASE_MIB = 150  # the task process before task code (measured: ~150 MiB under LocalExecutor)
PARTITIONS_KIB = [560, 40, 60, 80, 50, 70, 90, 40, 420, 60, 80, 50, 70, 40, 60, 90]
"""Partition sizes (KiB of text): two big ones, fourteen small ones."""

DAG = '''
"""Benchmark fan-out (benchmarks/airflow_fanout.py)."""
import time

import pendulum
from airflow.sdk import dag, task


@dag(dag_id="ms_bench_fanout", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False,
     max_active_tasks=32, params={"kib": %(kib)r, "hold": %(hold)r})
def ms_bench_fanout():
    @task
    def plan(params=None):
        return ["x" * (int(k) << 10) for k in params["kib"]]

    @task(pool="mirrorscale_memory", pool_slots=1)
    def crunch(part, params=None):
        block = bytearray(len(part) * %(factor)d)
        block[::4096] = b"\\x01" * len(range(0, len(block), 4096))
        time.sleep(float(params["hold"]))
        return len(part)

    crunch.expand(part=plan())


ms_bench_fanout()
'''

POLICY = '''
[tasks."ms_bench_fanout.crunch"]
mode = "enforce"
pool = "mirrorscale_memory"
pool_slot_memory = "128MiB"
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], env=env, text=True, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{args}: {proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc.stdout


def _pinned(peak_bytes: float) -> dict[str, int]:
    memory = int(peak_bytes * 1.15)
    return {"memory_bytes": memory, "pool_slots": -(-memory // (128 * MIB))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hold", type=float, default=8.0, help="seconds each crunch holds its memory")
    parser.add_argument("--capacity", default="3GiB", help="memory the pool stands for")
    parser.add_argument("--keep", action="store_true", help="keep the Airflow home (logs) afterwards")
    args = parser.parse_args(argv)
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    peaks = [(BASE_MIB * MIB) + (k << 10) * FACTOR for k in PARTITIONS_KIB]
    home = Path(tempfile.mkdtemp(prefix="ms_bench_airflow_"))
    name = f"ms_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = make_url(PG_ADMIN).set(database=name, drivername="postgresql+psycopg").render_as_string(False)
    port = _free_port()
    dags = home / "dags"
    dags.mkdir()
    (dags / "bench_fanout.py").write_text(DAG % {"kib": PARTITIONS_KIB, "hold": args.hold, "factor": FACTOR})
    (home / "mirrorscale.toml").write_text(POLICY)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MIRRORSCALE"))}
    env.update({
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "16", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": db_url,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "MIRRORSCALE_DATABASE_URL": f"sqlite:///{home / 'mirrorscale.sqlite'}",
        "MIRRORSCALE_HOME": str(home / "ms"), "MIRRORSCALE_POLICY_FILE": str(home / "mirrorscale.toml"),
        "MIRRORSCALE_AIRFLOW_CAPACITY": args.capacity,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONWARNINGS": "ignore",
    })
    started = time.monotonic()
    procs: list[subprocess.Popen] = []
    rows = []
    try:
        _run(env, "airflow", "db", "migrate")
        _run(env, "mirrorscale", "airflow", "setup")
        for component in (["api-server", "--port", str(port), "--workers", "1"], ["scheduler"], ["dag-processor"]):
            log = (home / f"{component[0]}.log").open("w")
            procs.append(subprocess.Popen([str(BIN / "airflow"), *component], env=env, cwd=home, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))
        _wait_for_dag(env, "ms_bench_fanout")
        _run(env, "airflow", "dags", "unpause", "ms_bench_fanout")
        runs = [("static, average", "average", {"mirrorscale": {"pin": _pinned(sum(peaks) / len(peaks))}}),
                ("static, worst case", "worst", {"mirrorscale": {"pin": _pinned(max(peaks))}}),
                ("mirrorscale enforce", "enforce", {})]
        engine = create_engine(db_url)
        for label, run_id, conf in runs:
            _run(env, "airflow", "dags", "trigger", "ms_bench_fanout", "--run-id", run_id, "--conf", json.dumps(conf))
            rows.append((label, *_wait(engine, run_id)))
            print(f"  {label}: makespan {rows[-1][1]:.1f} s, OOM kills {rows[-1][2]}, state {rows[-1][3]}",
                  file=sys.stderr, flush=True)
        engine.dispose()
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    traces = json.loads(_run(env, "mirrorscale", "history", "--json", "--limit", "500"))["traces"]
    if not args.keep:
        shutil.rmtree(home, ignore_errors=True)
    rows = [rows[1], rows[0], rows[2]]  # table order: worst, average, enforce
    worst = rows[0][1]
    print(f"memory-heavy fan-out: {len(PARTITIONS_KIB)} mapped instances, peaks "
          f"{min(peaks) / MIB:.0f}-{max(peaks) / MIB:.0f} MiB (mean {sum(peaks) / len(peaks) / MIB:.0f}), "
          f"pool {args.capacity} in 128 MiB slots, hold {args.hold:g} s, LocalExecutor + PostgreSQL, real scheduler")
    print(f"| sizing | makespan (s) | OOM kills | slots per instance | run state |")
    print(f"| --- | ---: | ---: | --- | --- |")
    for label, makespan, ooms, state, slots in rows:
        print(f"| {label} | {makespan:.1f} | {ooms} | {slots} | {state} |")
    enforce = rows[2][1]
    print(f"enforce / worst-case makespan: {enforce / worst:.2f} (target <= 0.70, zero OOM kills); "
          f"traces stored: {len(traces)}; wall {time.monotonic() - started:.0f} s")
    return 0 if rows[2][2] == 0 and enforce <= 0.7 * worst else 1


def _wait_for_dag(env: dict[str, str], dag_id: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc = subprocess.run([str(BIN / "airflow"), "dags", "list", "-o", "json"], env=env, text=True,
                              capture_output=True, timeout=120)
        if dag_id in proc.stdout:
            return
        time.sleep(2)
    raise RuntimeError(f"{dag_id} was not parsed within {timeout} s")


def _wait(engine, run_id: str, timeout: float = 240) -> tuple[float, int, str, str]:  # type: ignore[no-untyped-def]
    """(makespan s, OOM-killed instances, run state, pool slots per instance) once the run ended."""
    from sqlalchemy import text

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            row = conn.execute(text("select state, start_date, end_date from dag_run where dag_id='ms_bench_fanout' "
                                    "and run_id=:r"), {"r": run_id}).first()
            if row and row[0] in ("success", "failed") and row[2] is not None:
                tis = conn.execute(text("select state, pool_slots from task_instance where run_id=:r and "
                                        "task_id='crunch' order by map_index"), {"r": run_id}).all()
                ooms = sum(1 for s, _ in tis if s == "failed")
                slots = sorted({int(p) for _, p in tis})
                shown = ",".join(map(str, slots)) if len(slots) <= 6 else f"{slots[0]}-{slots[-1]}"
                return (row[2] - row[1]).total_seconds(), ooms, row[0], shown
        time.sleep(1)
    raise RuntimeError(f"run {run_id} did not finish within {timeout} s")


if __name__ == "__main__":
    raise SystemExit(main())
