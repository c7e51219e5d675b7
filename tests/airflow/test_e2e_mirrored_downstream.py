"""A downstream task instance gets its mirrored allocation before it starts (real scheduler, PostgreSQL).

One Airflow (``airflow api-server``, ``scheduler``, ``dag-processor``;
LocalExecutor; a fresh PostgreSQL database as Airflow's metadata) runs the
example ``ms_mirrored_downstream`` twice:

1. ``mirrored``: ``produce``'s task process mirrors ``crunch`` on samples of
   its text right after ``produce`` returns and posts the shadow to the plugin's
   endpoint with the worker's own credentials; while ``crunch`` still waits for
   ``prepare`` (held back by a release file), the metadata DB (read-only)
   shows its ``pool_slots`` and ``executor_config["mirrorscale"]`` changed from
   the scheduler hook's history-based allocation to the mirror's. After the run
   the store has ``crunch``'s trace with what was applied, and the shadow.
2. ``api-down``: the worker's password is rejected by the api-server (401):
   ``produce`` still succeeds with one warning in its log, and ``crunch`` runs
   with the settings it already had. While ``crunch`` waits, six claimants
   ask at once to mirror it (as upstreams on six workers would): exactly one
   gets the claim (PostgreSQL row lock), the others are told who has it.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

BIN = Path(sys.executable).parent
EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples" / "airflow"
DAG_ID = "ms_mirrored_downstream"
KEY = ("airflow", DAG_ID, "crunch")
MIB = 1 << 20
BASE = 150 * MIB  # a task process before task code
KIB = 300  # the real run's input: crunch holds ~300 MiB, far more than the seeded runs' last 104 KiB
WORKER = ("mirrorscale-worker", "worker-secret")
POLICY = '''
[tasks."ms_mirrored_downstream.crunch"]
mode = "enforce"
mirror = true
sample_fraction = 0.2
pool = "mirrorscale_memory"
pool_slot_memory = "64MiB"
'''
WAITING = (None, "scheduled")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed(store: Any) -> None:
    """Twelve daily runs whose input grows ~12 % a run (a hotspot) and whose peak is noisy around it."""
    t0 = datetime.now(timezone.utc) - timedelta(days=14)
    for i in range(12):
        size = int(30 * 1.12**i) << 10
        peak = BASE + int(size * 1000 * (0.5, 1.6)[i % 2])
        store.record_trace(engine="airflow", pipeline_id=DAG_ID, task_id="crunch", run_id=f"seed_{i}",
                           started_at=t0 + timedelta(days=i), ended_at=t0 + timedelta(days=i, seconds=5),
                           input_size_bytes=size, peak_rss_bytes=peak, cpu_seconds=2.0, wall_seconds=5.0,
                           outcome="success", source="seed", features={"baseline_rss_bytes": BASE, "args_bytes": size})


class _Airflow:
    """The three components on one PostgreSQL metadata DB, plus read-only SQL and REST helpers."""

    def __init__(self, home: Path, env: dict[str, str], db_url: str, port: int) -> None:
        from sqlalchemy import create_engine

        self.home, self.env, self.port = home, env, port
        self.base = f"http://127.0.0.1:{port}"
        self.engine = create_engine(db_url)
        self.procs: list[subprocess.Popen] = []

    def start(self) -> None:
        for args in (["api-server", "--port", str(self.port), "--workers", "1"], ["scheduler"], ["dag-processor"]):
            log = (self.home / f"{args[0]}.log").open("w")
            self.procs.append(subprocess.Popen([str(BIN / "airflow"), *args], env=self.env, cwd=self.home,
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True))

    def stop(self) -> None:
        for proc in self.procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.engine.dispose()

    def scalar(self, sql: str, **params: Any) -> Any:
        from sqlalchemy import text

        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def wait_for(self, what: str, check: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self.procs:
                assert proc.poll() is None, f"an Airflow component exited: {proc.args}"
            try:
                value = check()
            except Exception:  # noqa: BLE001 - tables not there yet, server starting
                value = None
            if value:
                return value
            time.sleep(0.3)
        raise AssertionError(f"{what}: not within {timeout} s; logs in {self.home}")

    def token(self, user: str, password: str) -> str:
        body = json.dumps({"username": user, "password": password}).encode()
        request = urllib.request.Request(f"{self.base}/auth/token", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())["access_token"]

    def trigger(self, run_id: str, conf: dict[str, Any]) -> None:
        body = json.dumps({"dag_run_id": run_id, "logical_date": None, "conf": conf}).encode()
        request = urllib.request.Request(
            f"{self.base}/api/v2/dags/{DAG_ID}/dagRuns", data=body, method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token('admin', 'admin-pw')}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200

    def crunch(self, run_id: str) -> dict[str, Any] | None:
        """``crunch``'s task-instance row (executor_config unpickled), None before it exists."""
        from sqlalchemy import text

        with self.engine.connect() as conn:
            row = conn.execute(text(
                "select state, pool, pool_slots, executor_config, start_date from task_instance "
                "where dag_id = :d and run_id = :r and task_id = 'crunch' and map_index = -1"),
                {"d": DAG_ID, "r": run_id}).mappings().first()
        if row is None:
            return None
        out = dict(row)
        raw = out["executor_config"]
        out["executor_config"] = pickle.loads(raw) if isinstance(raw, (bytes, memoryview)) else raw
        out["mirrorscale"] = (out["executor_config"] or {}).get("mirrorscale") or {}
        return out

    def run_state(self, run_id: str) -> str | None:
        state = self.scalar("select state from dag_run where dag_id = :d and run_id = :r", d=DAG_ID, r=run_id)
        return state if state in ("success", "failed") else None

    def task_log(self, run_id: str, task_id: str) -> str:
        folder = self.home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
        return "\n".join(p.read_text(errors="replace") for p in sorted(folder.glob("attempt=*.log")))


@pytest.fixture
def airflow(tmp_path: Path, pg_database: str) -> Any:
    """Airflow on PostgreSQL with the example DAG, the policy, a seeded store and a worker user."""
    from mirrorscale.store.history import HistoryStore

    port = _free_port()
    dags = tmp_path / "dags"
    dags.mkdir()
    for name in ("ms_mirrored_downstream.py", "ms_workloads.py"):
        shutil.copy(EXAMPLES / name, dags / name)
    (tmp_path / "mirrorscale.toml").write_text(POLICY)
    passwords = tmp_path / "simple_auth_manager_passwords.json.generated"
    passwords.write_text(json.dumps({"admin": "admin-pw", WORKER[0]: WORKER[1]}) + "\n")
    store = f"sqlite:///{tmp_path / 'mirrorscale.sqlite'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MIRRORSCALE"))}
    env.update({
        "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4", "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_database, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": pg_database,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"admin:admin,{WORKER[0]}:user",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1", "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "MIRRORSCALE_DATABASE_URL": store, "MIRRORSCALE_HOME": str(tmp_path / "ms"),
        "MIRRORSCALE_POLICY_FILE": str(tmp_path / "mirrorscale.toml"), "MIRRORSCALE_AIRFLOW_CAPACITY": "2GiB",
        "MIRRORSCALE_AIRFLOW_API_USER": WORKER[0], "MIRRORSCALE_AIRFLOW_API_PASSWORD": WORKER[1],
        "PYTHONPATH": str(dags),  # the mirror's fresh process imports ms_workloads
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONWARNINGS": "ignore",
    })
    for args in (["airflow", "db", "migrate"], ["mirrorscale", "airflow", "setup"]):
        proc = subprocess.run([str(BIN / args[0]), *args[1:]], env=env, cwd=tmp_path, text=True,
                              capture_output=True, timeout=300)
        assert proc.returncode == 0, f"{args}: {proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    history = HistoryStore.open(store)
    _seed(history)
    af = _Airflow(tmp_path, env, pg_database, port)
    af.store = history  # type: ignore[attr-defined]
    af.passwords = passwords  # type: ignore[attr-defined]
    af.start()
    try:
        yield af
    finally:
        af.stop()


def _claims(af: _Airflow, run_id: str, n: int, *, hold_row: float = 0.0) -> list[dict[str, Any]]:
    """``n`` mirror claims for ``crunch`` in ``run_id``, sent at the same moment from ``n`` threads.

    ``hold_row`` seconds: the test holds ``crunch``'s row lock meanwhile, so all
    claims are in flight together when it lets go (the race, made certain).
    """
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy import text

    url = f"{af.base}/mirrorscale/airflow/dags/{DAG_ID}/runs/{run_id}/tasks/crunch/mirror-claim"
    token = af.token("admin", "admin-pw")
    gate = threading.Barrier(n + 1)

    def claim(k: int) -> dict[str, Any]:
        body = json.dumps({"map_index": -1, "by": f"upstream-{k}"}).encode()
        request = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        gate.wait()
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    with af.engine.connect() as conn, ThreadPoolExecutor(n) as pool:
        if hold_row:
            conn.execute(text("select 1 from task_instance where dag_id = :d and run_id = :r and task_id = 'crunch' "
                              "for update"), {"d": DAG_ID, "r": run_id})
        answers = [pool.submit(claim, k) for k in range(n)]
        gate.wait()
        time.sleep(hold_row)
        conn.rollback()  # lets go of the row
        return [a.result() for a in answers]


def _allocation(store: Any, allocation_id: int) -> Any:
    from sqlalchemy import select

    from mirrorscale.store.models import Allocation

    with store.reading() as session:
        return session.scalar(select(Allocation).where(Allocation.id == allocation_id))


def _trace(store: Any, run_id: str) -> Any:
    return next(t for t in store.latest_traces(*KEY, limit=100) if t.run_id == run_id)


def test_downstream_gets_its_mirrored_allocation_before_it_starts(airflow: Any, tmp_path: Path) -> None:
    af, store = airflow, airflow.store
    af.wait_for("DAG parsed", lambda: af.scalar("select count(*) from serialized_dag where dag_id = :d", d=DAG_ID),
                180)
    af.wait_for("api-server up", lambda: af.token("admin", "admin-pw"), 120)

    # -- 1. mirrored: crunch is held back by prepare until the test has seen its new allocation
    release = tmp_path / "release-mirrored"
    af.trigger("mirrored", {"kib": KIB, "hold": 150, "release_file": str(release)})
    before = af.wait_for("crunch created by the scheduler", lambda: af.crunch("mirrored"), 120)
    hook = _allocation(store, before["mirrorscale"]["allocation_id"])
    assert hook.source == "history" and before["pool_slots"] == hook.pool_slots  # the policy hook, at creation

    def mirrored() -> dict[str, Any] | None:
        row = af.crunch("mirrored")
        return row if row["mirrorscale"].get("allocation_id") != hook.id else None

    after = af.wait_for("crunch resized by the mirror", mirrored, 180)
    seen_at = datetime.now(timezone.utc)
    assert after["state"] in WAITING and after["start_date"] is None  # still waiting: sized before it starts
    applied = _allocation(store, after["mirrorscale"]["allocation_id"])
    assert applied.source == "shadow" and applied.shadow_id is not None and applied.applied
    assert applied.run_id == "mirrored" and applied.pool == after["pool"] == "mirrorscale_memory"
    assert after["pool_slots"] == applied.pool_slots != before["pool_slots"]
    assert after["mirrorscale"]["memory_bytes"] == applied.memory_bytes
    assert after["executor_config"]["mirrorscale"]["memory_bytes"] > before["mirrorscale"]["memory_bytes"]
    print(f"\ncrunch before: pool_slots={before['pool_slots']} executor_config={before['executor_config']} "
          f"({hook.source})\ncrunch after:  pool_slots={after['pool_slots']} "
          f"executor_config={after['executor_config']} ({applied.source}, shadow {applied.shadow_id}; "
          f"state {after['state']}, not started)")
    late = _claims(af, "mirrored", 2)  # upstreams finishing later: sized from this run's mirror, no new one
    assert [c["claimed"] for c in late] == [False, False] and {c["shadow_id"] for c in late} == {applied.shadow_id}
    release.touch()
    assert af.wait_for("run mirrored ended", lambda: af.run_state("mirrored"), 180) == "success"
    final = af.crunch("mirrored")
    assert final["state"] == "success" and final["start_date"] > seen_at
    assert final["pool_slots"] == applied.pool_slots and final["mirrorscale"] == after["mirrorscale"]

    trace = _trace(store, "mirrored")
    assert trace.outcome == "success" and trace.source == "airflow-listener"
    assert trace.allocated_pool_slots == applied.pool_slots and trace.allocated_pool == "mirrorscale_memory"
    assert trace.allocated_memory_bytes == applied.memory_bytes
    assert trace.peak_rss_bytes <= applied.memory_bytes  # the mirror's allocation held the real run
    assert trace.peak_rss_bytes - trace.features["baseline_rss_bytes"] > (KIB << 10) * 900
    shadow = store.shadow(applied.shadow_id)
    assert shadow.outcome == "ok" and shadow.run_id == "mirrored" and shadow.sample_fraction == 0.2
    assert store.latest_mirror_state(KEY).state == "active"  # the life cycle called crunch a hotspot
    print(f"trace: peak {trace.peak_rss_bytes / MIB:.0f} MiB, allocated {trace.allocated_memory_bytes / MIB:.0f} MiB "
          f"in {trace.allocated_pool_slots} slots; shadow {shadow.id}: predicted +"
          f"{shadow.predicted_peak_rss_bytes / MIB:.0f} MiB from a {shadow.sample_fraction:.0%} sample")

    # -- 2. api-down: the api-server refuses the worker (401); the DAG runs with its own settings
    af.passwords.write_text(json.dumps({"admin": "admin-pw", WORKER[0]: "changed"}) + "\n")
    release = tmp_path / "release-api-down"
    af.trigger("api-down", {"kib": 100, "hold": 150, "release_file": str(release)})
    af.wait_for("crunch waiting in api-down", lambda: (af.crunch("api-down") or {}).get("state") in WAITING, 120)
    claims = _claims(af, "api-down", 6, hold_row=2.0)  # the double-mirror race: one wins, the rest learn who
    winners = [c["by"] for c in claims if c["claimed"]]
    assert len(winners) == 1, claims
    assert all(c["by"] == winners[0] for c in claims if not c["claimed"]), claims
    print(f"six simultaneous mirror claims: {winners[0]} won; the {len(claims) - 1} others were told it has it")
    release.touch()
    assert af.wait_for("run api-down ended", lambda: af.run_state("api-down"), 180) == "success"
    row = af.crunch("api-down")
    kept = _allocation(store, row["mirrorscale"]["allocation_id"])
    assert row["state"] == "success" and row["pool_slots"] == kept.pool_slots
    assert kept.run_id == "api-down"
    fresh = store.latest_shadow(KEY)  # mirrored again in produce's process, but never posted
    assert fresh.run_id == "api-down" and kept.shadow_id != fresh.id
    log = af.task_log("api-down", "produce")
    warnings = [line for line in log.splitlines() if "mirrorscale could not size" in line]
    assert len(warnings) == 1 and "401" in warnings[0] and "keeps its own settings" in warnings[0], log[-3000:]
    assert "Traceback" not in log
    assert _trace(store, "api-down").allocated_pool_slots == kept.pool_slots
