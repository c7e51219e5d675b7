"""End to end with a real scheduler, dag-processor and api-server (LocalExecutor, PostgreSQL metadata DB).

Opt-in (about 1.5-3 minutes on a shared 2-core machine): ``MIRRORSCALE_AIRFLOW_E2E=1``.
Each task runs in its own process forked by the LocalExecutor's supervisor;
the listener must record it there, and the scheduler must run the policy hook.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not os.environ.get("MIRRORSCALE_AIRFLOW_E2E"),
                                reason="set MIRRORSCALE_AIRFLOW_E2E=1 to run the scheduler end-to-end test")

BIN = Path(sys.executable).parent
EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples" / "airflow"
LIMIT_MIB = 320  # the task process alone holds ~150 MiB

HOG_DAG = f'''
"""Two tasks that outgrow their memory allocation: in Python code, and stuck in one C call."""
import time

import pendulum
from airflow.sdk import dag, task

LIMIT = {{"mirrorscale": {{"memory_bytes": {LIMIT_MIB} << 20}}}}


@dag(dag_id="ms_e2e_hog", schedule=None, start_date=pendulum.datetime(2026, 1, 1), catchup=False)
def ms_e2e_hog():
    @task(executor_config=LIMIT)
    def grow():
        held = []
        for _ in range(600):
            block = bytearray(1 << 20)
            block[::4096] = b"\\x01" * 256
            held.append(block)
            time.sleep(0.002)

    @task(executor_config=LIMIT)
    def stuck():
        block = b"x" * (400 << 20)
        time.sleep(120)

    grow()
    stuck()


ms_e2e_hog()
'''
def _run(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    proc = subprocess.run([str(BIN / args[0]), *args[1:]], env=env, text=True, capture_output=True, timeout=timeout)
    assert proc.returncode == 0, f"{args}: {proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_scheduler_runs_record_traces(tmp_path: Path, pg_database: str) -> None:
    port = _free_port()
    dags = tmp_path / "dags"
    dags.mkdir()
    shutil.copy(EXAMPLES / "etl_daily.py", dags / "etl_daily.py")
    (dags / "hog.py").write_text(HOG_DAG)
    (tmp_path / "mirrorscale.toml").write_text('[tasks."ms_e2e_hog.*"]\nmode = "enforce"\n')
    store = f"sqlite:///{tmp_path / 'mirrorscale.sqlite'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MIRRORSCALE"))}
    env.update({
        "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "2", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_database,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC": pg_database,  # psycopg 3 is async too (no asyncpg)
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "MIRRORSCALE_DATABASE_URL": store, "MIRRORSCALE_HOME": str(tmp_path / "ms"),
        "MIRRORSCALE_POLICY_FILE": str(tmp_path / "mirrorscale.toml"),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONWARNINGS": "ignore",
    })
    _run(env, "airflow", "db", "migrate")
    _run(env, "mirrorscale", "airflow", "setup")
    procs = []
    try:
        for name, args in (("api-server", ["api-server", "--port", str(port), "--workers", "1"]),
                           ("scheduler", ["scheduler"]), ("dag-processor", ["dag-processor"])):
            log = (tmp_path / f"{name}.log").open("w")
            procs.append((name, log, subprocess.Popen([str(BIN / "airflow"), *args], env=env, cwd=tmp_path,
                                                      stdout=log, stderr=subprocess.STDOUT, start_new_session=True)))
        _wait_for_dag(env, "ms_etl_daily")
        _wait_for_dag(env, "ms_e2e_hog")
        for dag_id in ("ms_etl_daily", "ms_e2e_hog"):
            _run(env, "airflow", "dags", "unpause", dag_id)
            _run(env, "airflow", "dags", "trigger", dag_id, "--run-id", "e2e_1")
        assert _wait_for_run(env, "ms_etl_daily", "e2e_1") == "success"
        assert _wait_for_run(env, "ms_e2e_hog", "e2e_1") == "failed"
    finally:
        for _, log, proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for _, log, proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            log.close()
    traces = json.loads(_run(env, "mirrorscale", "history", "--json"))["traces"]
    ours = {t["task_id"]: t for t in traces if t["pipeline_id"] == "ms_etl_daily" and t["run_id"] == "e2e_1"}
    assert set(ours) == {"extract", "transform", "load"}
    assert all(t["source"] == "airflow-listener" and t["outcome"] == "success" for t in ours.values())
    assert ours["transform"]["features"]["xcom_bytes"] > 10_000
    assert not any(t["features"].get("in_process") for t in ours.values())  # real task processes
    hogs = {t["task_id"]: t for t in traces if t["pipeline_id"] == "ms_e2e_hog"}
    assert set(hogs) == {"grow", "stuck"}, hogs
    for t in hogs.values():  # MemoryError path (grow) and SIGKILL after grace (stuck)
        assert t["outcome"] == "oom_killed" and t["allocated_memory_bytes"] == LIMIT_MIB << 20
        assert t["features"]["breach_rss_bytes"] > LIMIT_MIB << 20
    scheduler_log = (tmp_path / "scheduler.log").read_text()
    assert "mirrorscale policy hook live" in scheduler_log


def _wait_for_dag(env: dict[str, str], dag_id: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run([str(BIN / "airflow"), "dags", "list", "-o", "json"], env=env, text=True,
                             capture_output=True, timeout=120).stdout
        if dag_id in out:
            return
        time.sleep(3)
    raise AssertionError(f"{dag_id} was not parsed within {timeout} s")


def _wait_for_run(env: dict[str, str], dag_id: str, run_id: str, timeout: float = 240) -> str:
    deadline, state = time.monotonic() + timeout, "?"
    while time.monotonic() < deadline:
        out = subprocess.run([str(BIN / "airflow"), "dags", "list-runs", dag_id, "-o", "json"], env=env, text=True,
                             capture_output=True, timeout=120).stdout
        try:
            runs = {r["run_id"]: r["state"] for r in json.loads(out[out.index("["):])}
        except ValueError:
            runs = {}
        state = runs.get(run_id, "?")
        if state in ("success", "failed"):
            return state
        time.sleep(3)
    raise AssertionError(f"run {run_id} still {state} after {timeout} s")
