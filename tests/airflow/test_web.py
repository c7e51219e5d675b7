"""The web app: pages in-process, and the plugin's mount on a real api-server behind Airflow's auth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
from airflow_api import get, passwords, post, serving, token
from fastapi.testclient import TestClient

from mirrorscale.store.history import HistoryStore
from mirrorscale.web import create_app

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
    runs = page[page.index('id="runs"'):page.index("<h2>Mirror shadows")]
    assert runs.count("<tr") == 1 + 8 + 1 + 2  # runs header + 8 runs, allocations header + 1 with its reason row
    assert "&lt;b&gt;420 MiB&lt;/b&gt;" in page and "<b>420" not in page  # reasons are escaped
    assert 'class="failed"' in page
    data = client.get("/api/pipelines/ms_etl_daily/tasks/transform").json()
    assert [r["forecast_bytes"] for r in data["runs"]][:2] == [210 << 20, 235 << 20]
    assert client.get("/pipelines/ms_etl_daily/tasks/nope").status_code == 404
    other = TestClient(create_app(store_factory=lambda: store, engine="prefect"))
    assert other.get("/pipelines/ms_etl_daily/tasks/transform").status_code == 404


@pytest.fixture(scope="module")
def api_server(airflow_env) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """``airflow api-server`` on a free port with the simple auth manager (users admin, viewer)."""
    with serving(airflow_env.env, airflow_env.home) as base:
        yield base


def test_plugin_app_requires_airflow_login(airflow_env, api_server: str) -> None:  # type: ignore[no-untyped-def]
    _seed(HistoryStore.open(airflow_env.store_url))
    for route in ROUTES:
        status, _ = get(f"{api_server}/mirrorscale{route}")
        assert status == 401, f"anonymous {route} answered {status}"
    secrets = passwords(airflow_env.home)
    admin = {"Authorization": f"Bearer {token(api_server, 'admin', secrets['admin'])}"}
    for route in ROUTES:
        status, _ = get(f"{api_server}/mirrorscale{route}", admin)
        assert status == 200, route
    status, page = get(f"{api_server}/mirrorscale/pipelines/ms_etl_daily/tasks/transform", admin)
    assert "<svg" in page and 'id="runs"' in page and 'id="allocations"' in page
    assert 'href="/mirrorscale/pipelines/ms_etl_daily"' in page  # links stay under the mount point
    grouped = quote("section.transform/part-1", safe="")  # a task group's dotted id, a slash for good measure
    HistoryStore.open(airflow_env.store_url).record_trace(
        engine="airflow", pipeline_id="ms_etl_daily", task_id="section.transform/part-1", run_id="manual__g",
        started_at=datetime(2026, 11, 2, tzinfo=timezone.utc), peak_rss_bytes=300 << 20, source="seed")
    for route in (f"/pipelines/ms_etl_daily/tasks/{grouped}", f"/pipelines/ms_etl_daily/tasks/{grouped}/plot.svg",
                  f"/api/pipelines/ms_etl_daily/tasks/{grouped}?run_id=manual__g"):
        assert get(f"{api_server}/mirrorscale{route}")[0] == 401, route
        status, body = get(f"{api_server}/mirrorscale{route}", admin)
        assert status == 200, (route, status, body[:300])
    viewer_token = token(api_server, "viewer", secrets["viewer"])
    status, _ = get(f"{api_server}/mirrorscale/pipelines/ms_etl_daily", {"Cookie": f"_token={viewer_token}"})
    assert status == 200  # the UI's cookie, as an external view's iframe sends it
    status, body = get(f"{api_server}/api/v2/plugins", admin)
    plugin = next(p for p in json.loads(body)["plugins"] if p["name"] == "mirrorscale")
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/mirrorscale"
    views = {v["destination"]: v["href"] for v in plugin["external_views"]}
    assert views["dag"] == "/mirrorscale/pipelines/{DAG_ID}"
    assert views["task_instance"] == "/mirrorscale/pipelines/{DAG_ID}/tasks/{TASK_ID}?run_id={RUN_ID}"
    assert views["dag_run"] == "/mirrorscale/pipelines/{DAG_ID}?run_id={RUN_ID}"
    assert "nav" in views


def test_allocation_endpoint_requires_airflow_login(airflow_env, api_server: str) -> None:  # type: ignore[no-untyped-def]
    url = f"{api_server}/mirrorscale/airflow/dags/ms_etl_daily/runs/manual__x/tasks/transform/allocation"
    status, _ = post(url, {"map_index": -1})
    assert status == 401  # anonymous
    secrets = passwords(airflow_env.home)
    viewer = {"Authorization": f"Bearer {token(api_server, 'viewer', secrets['viewer'])}"}
    assert post(url, {}, viewer)[0] == 403  # may read, may not change task instances
    admin = {"Authorization": f"Bearer {token(api_server, 'admin', secrets['admin'])}"}
    status, body = post(url, {"input_size_bytes": 1000}, admin)
    assert status == 404 and "no task instance" in body  # authorized: the ORM lookup ran
    claim = url.replace("/allocation", "/mirror-claim")
    assert post(claim, {"by": "produce"})[0] == 401
    assert post(claim, {"by": "produce"}, viewer)[0] == 403
    status, body = post(claim, {}, admin)
    assert status == 422 and "who claims the mirror" in body  # the claimant must say who it is
    status, body = post(claim, {"by": "produce"}, admin)
    assert status == 404 and "no task instance" in body
