"""Workers that cannot reach the store relay their traces to the plugin's endpoint on the api-server.

In-process: the endpoint's strict validation (every hostile payload a 4xx naming
its field, nothing stored; posting twice stores once) and the listener's
fallbacks (store and API both down: one warning naming both; relay switched
off). On a real ``airflow api-server``: ``airflow dags test`` with an
unreachable store relays every task's trace, and Airflow's auth guards the route.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow_api import passwords, post, refused_url, serving, token
from fastapi.testclient import TestClient

from mirrorscale.plugins.airflow import listener, trace_api, web
from mirrorscale.store.history import HistoryStore

ROUTE = "/airflow/dags/{dag}/runs/{run}/tasks/{task}/trace"
STARTED = "2026-11-03T10:00:00+00:00"
GOOD = {"try_number": 1, "started_at": STARTED, "ended_at": "2026-11-03T10:00:05+00:00", "outcome": "success",
        "peak_rss_bytes": 200 << 20, "cpu_seconds": 1.5, "wall_seconds": 5.0, "read_bytes": 0, "write_bytes": 10,
        "input_size_bytes": 1000, "allocated_pool": "default_pool", "allocated_pool_slots": 1,
        "features": {"hour": 10, "operator": "PythonOperator", "param.rows": 5, "in_process": True},
        "samples": {"t_seconds": [0.0, 0.5], "rss_bytes": [100, 200], "cpu_seconds": [0.0, 0.25]}}
REFUSED_STORE = "postgresql+psycopg://postgres@127.0.0.1:1/nope"

HOSTILE_BODIES = {  # field named in the answer -> body
    "peak_rss_bytes": {**GOOD, "peak_rss_bytes": "5"},
    "read_bytes": {**GOOD, "read_bytes": 10**30},
    "cpu_seconds": {**GOOD, "cpu_seconds": -1.0},
    "outcome": {**GOOD, "outcome": "<img src=x onerror=alert(1)>"},
    "try_number": {**GOOD, "try_number": True},
    "started_at": {**GOOD, "started_at": "2026-11-03T10:00:00"},
    "source": {**GOOD, "source": "forged"},
    "allocated_pool": {**GOOD, "allocated_pool": "p'; DROP TABLE mirrorscale_trace;--"},
    "branch": {**GOOD, "branch": "<script>alert(1)</script>"},
    "features": {**GOOD, "features": {"nested": {"a": 1}}},
    "features ": {**GOOD, "features": {f"f{i}": i for i in range(500)}},
    "features  ": {**GOOD, "features": {"<b>": 1}},
    "samples": {**GOOD, "samples": {"t_seconds": [0.0], "rss_bytes": [1, 2], "cpu_seconds": [0.0]}},
    "t_seconds": {**GOOD, "samples": {"t_seconds": [0.0] * 5000, "rss_bytes": [1] * 5000, "cpu_seconds": [0.0] * 5000}},
    "ended_at": {**GOOD, "ended_at": "2026-11-03T09:00:00+00:00"},
}
HOSTILE_PATHS = {  # field -> (dag, run, task)
    "run_id": ("ms_etl_daily", "x'; DROP TABLE mirrorscale_trace;--", "load"),
    "run_id ": ("ms_etl_daily", "<img src=x onerror=alert(1)>", "load"),
    "dag_id": ("<b onmouseover=alert(1)>dag", "manual__1", "load"),
    "task_id": ("ms_etl_daily", "manual__1", "a;b"),
}


def _url(dag: str = "ms_etl_daily", run: str = "manual__1", task: str = "load") -> str:
    from urllib.parse import quote

    return ROUTE.format(dag=quote(dag, safe=""), run=quote(run, safe=""), task=quote(task, safe=""))


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    """The plugin's app in-process: Airflow's auth and task-instance lookup stubbed, a fresh store."""
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    monkeypatch.setenv("MIRRORSCALE_DATABASE_URL", url)
    monkeypatch.setattr(trace_api, "_task_instance_exists", lambda *args: None)
    monkeypatch.setattr(trace_api, "check_run_id", _check_run_id_default)
    app = web.create_airflow_app()
    app.dependency_overrides[web.airflow_access] = lambda: None
    app.dependency_overrides[web._may_edit_task_instances] = lambda: None
    with TestClient(app) as test_client:
        yield SimpleNamespace(http=test_client, store=HistoryStore.open(url))


def _check_run_id_default(run_id: str) -> None:
    """Airflow's default ``allowed_run_id_pattern`` (the session's config is not loaded in-process)."""
    if ".." in run_id or not re.match(r"^[A-Za-z0-9_.~:+-]+$", run_id):
        raise trace_api._bad_path("run_id", "does not match", run_id)


def test_endpoint_stores_once(client: SimpleNamespace) -> None:
    first = client.http.post(_url(), json=GOOD)
    assert first.status_code == 200 and first.json()["stored"] is True, first.text
    again = client.http.post(_url(), json=GOOD)
    assert again.status_code == 200 and again.json() == {"stored": False, "trace_id": None}
    mapped = client.http.post(_url(), json={**GOOD, "map_index": 3})
    assert mapped.json()["stored"] is True
    traces = {t.run_id: t for t in client.store.recent_traces()}
    assert set(traces) == {"manual__1", "manual__1#3"}
    trace = traces["manual__1"]
    assert (trace.task.pipeline_id, trace.task.task_id, trace.outcome) == ("ms_etl_daily", "load", "success")
    assert trace.source == "airflow-listener" and trace.features["relayed"] is True
    assert trace.peak_rss_bytes == 200 << 20 and trace.allocated_pool == "default_pool"
    assert client.store.trace_samples(trace.id).rss_bytes == [100, 200]


@pytest.mark.parametrize("field", list(HOSTILE_BODIES) + list(HOSTILE_PATHS))
def test_hostile_payloads_are_refused_and_nothing_is_stored(client: SimpleNamespace, field: str) -> None:
    url = _url(*HOSTILE_PATHS[field]) if field in HOSTILE_PATHS else _url()
    answer = client.http.post(url, json=HOSTILE_BODIES.get(field, GOOD))
    assert answer.status_code == 422, (field, answer.status_code, answer.text[:300])
    locations = [err["loc"] for err in answer.json()["detail"]]
    assert any(field.strip() in map(str, loc) for loc in locations), (field, locations)
    assert client.store.count_traces() == 0


def test_a_worker_relays_a_trace_with_odd_features_minus_those_features(client: SimpleNamespace) -> None:
    from datetime import datetime, timezone

    from mirrorscale.plugins.airflow import relay

    odd = {"hour": 10, "param.big": 10**30, "param.nan": float("nan"), "param.text": "x" * 600, "bad key": 1,
           **{f"param.p{i}": i for i in range(150)}}
    row = {**{k: v for k, v in GOOD.items() if k not in ("features", "started_at", "ended_at", "samples")},
           "engine": "airflow", "pipeline_id": "ms_etl_daily", "task_id": "load", "run_id": "manual__1",
           "started_at": datetime(2026, 11, 3, 10, tzinfo=timezone.utc), "features": odd}
    body = relay.payload(row, -1)
    answer = client.http.post(_url(), json=json.loads(json.dumps(body)))
    assert answer.status_code == 200 and answer.json()["stored"] is True, answer.text
    stored = client.store.recent_traces()[0].features
    assert stored["hour"] == 10 and stored["relayed"] is True and "param.p0" in stored
    dropped = stored["relay_dropped"].split(",")
    assert {"param.big", "param.nan", "param.text", "bad key"} <= set(dropped)
    assert len(stored) <= trace_api.MAX_FEATURES + 1  # what fits, in order; the rest named


def test_oversized_and_malformed_bodies(client: SimpleNamespace) -> None:
    huge = {**GOOD, "features": {"blob": "x" * (300 << 10)}}
    assert client.http.post(_url(), json=huge).status_code == 413
    chunked = client.http.post(_url(), content=(b"x" * (64 << 10) for _ in range(8)),
                               headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413  # no Content-Length: counted while reading
    assert client.http.post(_url(), content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 422
    assert client.http.post(_url(), json=[GOOD]).status_code == 422
    assert client.store.count_traces() == 0


# -- the listener's fallbacks ---------------------------------------------------------------------


def _ti(task_id: str) -> SimpleNamespace:
    task = SimpleNamespace(op_args=[b"x" * 100], op_kwargs={}, params={}, dag=None, pool="default_pool",
                           pool_slots=1, queue="default", priority_weight=1, executor_config={})
    return SimpleNamespace(dag_id="relay_dag", task_id=task_id, run_id="manual__1", map_index=-1, try_number=1,
                           task=task)


@pytest.mark.parametrize("relay", ["auto", "0"])
def test_store_and_api_down_warn_once(relay: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MIRRORSCALE_DATABASE_URL", f"sqlite:///{blocker / 'store.sqlite'}")
    monkeypatch.delenv("MIRRORSCALE_POLICY_FILE", raising=False)
    monkeypatch.setenv("MIRRORSCALE_AIRFLOW_API_URL", refused_url())
    monkeypatch.setenv("MIRRORSCALE_AIRFLOW_API_TOKEN", "a-token")
    monkeypatch.setenv("MIRRORSCALE_AIRFLOW_RELAY", relay)
    ti = _ti(f"down_{relay}")
    with caplog.at_level(logging.INFO, logger="mirrorscale.airflow"):
        listener.on_task_instance_running(None, ti)
        assert listener.on_task_instance_success(None, ti) is None  # never raises: the task's result stands
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert f"could not store the trace of relay_dag.down_{relay}" in warnings[0]
    assert ("relaying to the api-server failed too" in warnings[0]) == (relay == "auto"), warnings[0]
    if relay == "auto":
        assert "the store failed (FileExistsError" in warnings[0] and "(URLError" in warnings[0]  # both, by name
    assert not [r for r in caplog.records if "relayed the trace" in r.getMessage()]


# -- a real api-server -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_server(airflow_env) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """``airflow api-server`` on a free port with the simple auth manager (users admin, viewer)."""
    with serving(airflow_env.env, airflow_env.home) as base:
        yield base


def _relayed(store_url: str, dag_id: str) -> list:
    return [t for t in HistoryStore.open(store_url).recent_traces(limit=500)
            if t.task.pipeline_id == dag_id and t.features.get("relayed")]


def test_worker_with_unreachable_store_relays_to_the_api_server(airflow_env, api_server: str) -> None:  # type: ignore[no-untyped-def]
    secrets = passwords(airflow_env.home)
    worker_env = {"MIRRORSCALE_DATABASE_URL": REFUSED_STORE, "MIRRORSCALE_AIRFLOW_API_URL": api_server,
                  "MIRRORSCALE_AIRFLOW_API_USER": "admin", "MIRRORSCALE_AIRFLOW_API_PASSWORD": secrets["admin"],
                  "MIRRORSCALE_AIRFLOW_RELAY_TIMEOUT": "60"}
    before = {t.id for t in _relayed(airflow_env.store_url, "ms_etl_daily")}
    proc = airflow_env.run("airflow", "dags", "test", "ms_etl_daily", extra_env=worker_env, timeout=400)
    output = proc.stdout + proc.stderr
    assert "state=success" in output or "successful" in output
    assert "could not store the trace" not in output, output[-3000:]  # nothing was lost
    assert output.count("relayed the trace") == 3  # one relay per task
    relayed = [t for t in _relayed(airflow_env.store_url, "ms_etl_daily") if t.id not in before]
    assert sorted(t.task.task_id for t in relayed) == ["extract", "load", "transform"]  # one each
    assert len({t.run_id for t in relayed}) == 1 and relayed[0].run_id.startswith("manual__")
    assert all(t.outcome == "success" and t.source == "airflow-listener" and t.peak_rss_bytes > 0 for t in relayed)
    assert all(t.features.get("in_process") is True for t in relayed)  # measured by the worker, not the server

    admin = {"Authorization": f"Bearer {token(api_server, 'admin', secrets['admin'])}"}
    load = next(t for t in relayed if t.task.task_id == "load")
    url = api_server + "/mirrorscale" + _url("ms_etl_daily", load.run_id, "load")
    status, body = post(url, {**GOOD, "try_number": load.try_number}, admin)
    assert status == 200 and json.loads(body)["stored"] is False  # the same (task, run, try) again: stored once
    assert len(_relayed(airflow_env.store_url, "ms_etl_daily")) == len(before) + 3


def test_trace_route_requires_airflow_login_and_valid_payloads(airflow_env, api_server: str) -> None:  # type: ignore[no-untyped-def]
    store = HistoryStore.open(airflow_env.store_url)
    count = store.count_traces()
    url = api_server + "/mirrorscale" + _url("ms_etl_daily", "manual__nope", "load")
    assert post(url, GOOD)[0] == 401  # anonymous
    secrets = passwords(airflow_env.home)
    viewer = {"Authorization": f"Bearer {token(api_server, 'viewer', secrets['viewer'])}"}
    assert post(url, GOOD, viewer)[0] == 403  # may read the DAG, may not change its task instances
    admin = {"Authorization": f"Bearer {token(api_server, 'admin', secrets['admin'])}"}
    status, body = post(url, GOOD, admin)
    assert status == 404 and "no task instance" in body  # authorized, but Airflow knows no such run
    for field in ("peak_rss_bytes", "read_bytes", "features", "allocated_pool", "source"):
        status, body = post(url, HOSTILE_BODIES[field], admin)
        assert status == 422 and field in body, (field, status, body[:300])
    for field in ("run_id", "run_id ", "dag_id"):
        status, body = post(api_server + "/mirrorscale" + _url(*HOSTILE_PATHS[field]), GOOD, admin)
        assert status == 422 and field.strip() in body, (field, status, body[:300])
    status, _ = post(url, {**GOOD, "features": {"blob": "x" * (300 << 10)}}, admin)
    assert status == 413
    assert store.count_traces() == count
