"""The web app: pages in-process, and the plugin's mount on a real api-server behind Airflow's auth."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mirrorscale.store.history import HistoryStore
from mirrorscale.web import create_app

BIN = Path(sys.executable).parent

KEY = ("airflow", "ms_etl_daily", "transform")
ROUTES = ("/", "/pipelines/ms_etl_daily", "/pipelines/ms_etl_daily/tasks/transform",
          "/pipelines/ms_etl_daily/tasks/transform/plot.svg", "/api/pipelines/ms_etl_daily/tasks/transform")


def _seed(store: HistoryStore, runs: int = 8) -> None:
    """Runs of ms_etl_daily.transform with forecasts, one failure and one allocation."""
    t0 = datetime(2026, 11, 1, tzinfo=timezone.utc)
    for i in range(runs):
        run_id = f"scheduled__seed{i}"
        store.record_trace(engine=KEY[0], pipeline_id=KEY[1], task_id=KEY[2], run_id=run_id,
                           started_at=t0 + timedelta(days=i), peak_rss_bytes=(200 + 25 * i) << 20,
                           outcome="oom_killed" if i == 5 else "success", cpu_seconds=1.5, wall_seconds=3.0,
                           allocated_memory_bytes=(260 + 25 * i) << 20, source="seed")
        store.record_prediction(KEY, run_id=run_id, method="seed", target="memory", value=(210 + 25 * i) << 20,
                                low=(190 + 25 * i) << 20, high=(240 + 25 * i) << 20)
    store.record_allocation(KEY, run_id=f"scheduled__seed{runs - 1}", mode="recommend", memory_bytes=500 << 20,
                            reason="mirror peak <b>420 MiB</b> + 15% headroom")


def test_pages_in_process(tmp_path: Path) -> None:
    store = HistoryStore.open(f"sqlite:///{tmp_path / 'web.sqlite'}")
    _seed(store)
    client = TestClient(create_app(store_factory=lambda: store, engine="airflow"))
    for route in ROUTES:
        assert client.get(route).status_code == 200, route
    page = client.get("/pipelines/ms_etl_daily/tasks/transform").text
    assert "<svg" in page and 'class="ms-forecast"' in page and 'class="ms-actual"' in page
    assert page.count("<tr") == 1 + 8 + 1 + 1  # runs header + 8 runs, allocations header + 1
    assert "&lt;b&gt;420 MiB&lt;/b&gt;" in page and "<b>420" not in page  # reasons are escaped
    assert 'class="failed"' in page
    data = client.get("/api/pipelines/ms_etl_daily/tasks/transform").json()
    assert [r["forecast_bytes"] for r in data["runs"]][:2] == [210 << 20, 235 << 20]
    assert client.get("/pipelines/ms_etl_daily/tasks/nope").status_code == 404
    other = TestClient(create_app(store_factory=lambda: store, engine="prefect"))
    assert other.get("/pipelines/ms_etl_daily/tasks/transform").status_code == 404


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _token(base: str, user: str, password: str) -> str:
    body = json.dumps({"username": user, "password": password}).encode()
    request = urllib.request.Request(f"{base}/auth/token", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["access_token"]


@pytest.fixture(scope="module")
def api_server(airflow_env) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """``airflow api-server`` on a free port with the simple auth manager (users admin, viewer)."""
    port = _free_port()
    env = {**airflow_env.env, "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin,viewer:viewer",
           "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}
    log = (airflow_env.home / "api-server.log").open("w")
    proc = subprocess.Popen([str(BIN / "airflow"), "api-server", "--port", str(port), "--workers", "1"],
                            env=env, cwd=airflow_env.home, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"api-server exited {proc.returncode}: {(airflow_env.home / 'api-server.log').read_text()[-3000:]}")
            try:
                if _get(f"{base}/api/v2/monitor/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(1)
        else:
            raise AssertionError("api-server did not answer within 150 s")
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def test_plugin_app_requires_airflow_login(airflow_env, api_server: str) -> None:  # type: ignore[no-untyped-def]
    _seed(HistoryStore.open(airflow_env.store_url))
    for route in ROUTES:
        status, _ = _get(f"{api_server}/mirrorscale{route}")
        assert status == 401, f"anonymous {route} answered {status}"
    passwords = json.loads((airflow_env.home / "simple_auth_manager_passwords.json.generated").read_text())
    admin = {"Authorization": f"Bearer {_token(api_server, 'admin', passwords['admin'])}"}
    for route in ROUTES:
        status, _ = _get(f"{api_server}/mirrorscale{route}", admin)
        assert status == 200, route
    status, page = _get(f"{api_server}/mirrorscale/pipelines/ms_etl_daily/tasks/transform", admin)
    assert "<svg" in page and 'id="runs"' in page and 'id="allocations"' in page
    assert 'href="/mirrorscale/pipelines/ms_etl_daily"' in page  # links stay under the mount point
    viewer_token = _token(api_server, "viewer", passwords["viewer"])
    status, _ = _get(f"{api_server}/mirrorscale/pipelines/ms_etl_daily", {"Cookie": f"_token={viewer_token}"})
    assert status == 200  # the UI's cookie, as an external view's iframe sends it
    status, body = _get(f"{api_server}/api/v2/plugins", admin)
    plugin = next(p for p in json.loads(body)["plugins"] if p["name"] == "mirrorscale")
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/mirrorscale"
    views = {v["destination"]: v["href"] for v in plugin["external_views"]}
    assert views["dag"] == "/mirrorscale/pipelines/{DAG_ID}"
    assert views["task_instance"] == "/mirrorscale/pipelines/{DAG_ID}/tasks/{TASK_ID}"
    assert {"nav", "dag_run"} <= set(views)


def _post(url: str, body: dict, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_allocation_endpoint_requires_airflow_login(airflow_env, api_server: str) -> None:  # type: ignore[no-untyped-def]
    url = f"{api_server}/mirrorscale/airflow/dags/ms_etl_daily/runs/manual__x/tasks/transform/allocation"
    status, _ = _post(url, {"map_index": -1})
    assert status == 401  # anonymous
    passwords = json.loads((airflow_env.home / "simple_auth_manager_passwords.json.generated").read_text())
    viewer = {"Authorization": f"Bearer {_token(api_server, 'viewer', passwords['viewer'])}"}
    assert _post(url, {}, viewer)[0] == 403  # may read, may not change task instances
    admin = {"Authorization": f"Bearer {_token(api_server, 'admin', passwords['admin'])}"}
    status, body = _post(url, {"input_size_bytes": 1000}, admin)
    assert status == 404 and "no task instance" in body  # authorized: the ORM lookup ran
