"""``mirrorscale ui`` serves the dashboard on its own: a real subprocess, real HTTP."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

MiB = 1024 * 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


SLASHED = ("prefect", "etl/nightly", "load/part-1.csv")
"""A flow and task name holding ``/`` (Prefect allows it; the routes must too)."""


def seed(url: str) -> None:
    """Three Prefect runs of ``etl.transform`` with an allocation each (sized from an estimate), one slashed task."""
    from mirrorscale.store.history import HistoryStore
    from mirrorscale.store.models import Allocation

    store = HistoryStore.open(url)
    start = datetime(2026, 5, 1, tzinfo=timezone.utc)
    key = ("prefect", "etl", "transform")
    for i in range(3):
        run = f"run-{i}"
        store.save(key, Allocation(run_id=run, try_number=1, created_at=start + timedelta(hours=i), mode="enforce",
                                   applied=True, memory_bytes=(100 + 50 * i) * MiB, source="history",
                                   executor_options={"estimate_bytes": (90 + 40 * i) * MiB},
                                   reason=f"history of {i} run(s) -> decision {i}"))
        store.record_trace(engine="prefect", pipeline_id="etl", task_id="transform", run_id=run,
                           started_at=start + timedelta(hours=i, minutes=1), ended_at=start + timedelta(hours=i, minutes=2),
                           input_size_bytes=(10 + 5 * i) * MiB, peak_rss_bytes=(80 + 40 * i) * MiB,
                           allocated_memory_bytes=(100 + 50 * i) * MiB, cpu_seconds=1.0, wall_seconds=60.0,
                           source="test")
    store.record_mirror_state(key, state="active", reason="hotspot: 3 runs, input grows 50 % a run", volatility=0.4)
    store.record_trace(engine=SLASHED[0], pipeline_id=SLASHED[1], task_id=SLASHED[2], run_id="run-s",
                       started_at=start, peak_rss_bytes=50 * MiB, source="test")


@pytest.fixture
def ui_server(tmp_path: Path) -> Iterator[str]:
    """``mirrorscale ui --port P`` on a seeded SQLite store; yields its base URL."""
    url = f"sqlite:///{tmp_path / 'ui.sqlite'}"
    seed(url)
    port = _free_port()
    script = Path(sys.executable).with_name("mirrorscale")
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from mirrorscale.cli import main; main()"]
    env = {**os.environ, "MIRRORSCALE_DATABASE_URL": url}
    process = subprocess.Popen([*command, "ui", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _get(base + "/")[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"mirrorscale ui did not start: {process.stdout.read() if process.stdout else ''}")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def test_ui_serves_the_plot_and_the_decision_table(ui_server: str) -> None:
    status, index = _get(ui_server + "/")
    assert status == 200 and "etl" in index and "transform" in index and 'id="tasks"' in index
    status, page = _get(ui_server + "/pipelines/etl/tasks/transform")
    assert status == 200
    assert "<svg" in page and "id='plot'" in page  # the forecast-vs-actual plot
    assert 'id="allocations"' in page and "decision 2" in page and "enforce" in page  # the decision table
    assert 'id="runs"' in page and "run-0" in page
    status, svg = _get(ui_server + "/pipelines/etl/tasks/transform/plot.svg")
    assert status == 200 and svg.lstrip().startswith(("<svg", "<?xml"))
    assert _get(ui_server + "/pipelines/etl/tasks/nope")[0] == 404


def test_forecasts_come_from_the_allocators_estimate(ui_server: str) -> None:
    """Without stored predictions, each run's forecast is the estimate its allocation was sized from."""
    status, body = _get(ui_server + "/api/pipelines/etl/tasks/transform")
    assert status == 200
    assert [r["forecast_bytes"] for r in json.loads(body)["runs"]] == [(90 + 40 * i) * MiB for i in range(3)]
    page = _get(ui_server + "/pipelines/etl/tasks/transform")[1]
    assert 'class="ms-forecast"' in page and "+12%" in page  # the dashed line and the error column (90 vs 80 MiB)


def test_task_page_shows_mirror_status_and_wastage(ui_server: str) -> None:
    page = _get(ui_server + "/pipelines/etl/tasks/transform")[1]
    status = page[page.index("id='status'"):page.index("id='plot'")]
    assert "<b>active</b> · volatility 0.40 · hotspot: 3 runs" in status
    # allocated 100/150/200 MiB, peaks 80/120/160 MiB, 60 s each: 90 MiB·min wasted, 360 used -> MAQ 80 %
    assert "over 3 run(s), 0 under-allocated, MAQ 80%" in status
    assert status.count("MAQ 80%") == 2  # applied == decided here: enforce mode applied every decision


def test_ids_with_slashes_are_reachable_from_the_index(ui_server: str) -> None:
    """Links on the index encode ``/`` as ``%2F``; the server decodes it before routing and still finds the task."""
    index = _get(ui_server + "/")[1]
    links = set(re.findall(r'href="([^"]+)"', index))
    task_link = f"/pipelines/{quote(SLASHED[1], safe='')}/tasks/{quote(SLASHED[2], safe='')}"
    assert task_link in links
    for path in (f"/pipelines/{quote(SLASHED[1], safe='')}", task_link, task_link + "/plot.svg",
                 "/api" + task_link):
        status, body = _get(ui_server + path)
        assert status == 200, (path, status, body[:200])
    page = _get(ui_server + task_link)[1]
    assert "etl/nightly.load/part-1.csv" in page and "<svg" in page
    assert json.loads(_get(ui_server + "/api" + task_link)[1])["task_id"] == SLASHED[2]
    assert _get(ui_server + "/pipelines/etl/nightly/tasks/load/part-2.csv")[0] == 404  # unknown stays unknown


def test_plot_labels_runs_by_time_of_day_within_one_day(ui_server: str) -> None:
    svg = _get(ui_server + "/pipelines/etl/tasks/transform/plot.svg")[1]
    ticks = re.findall(r'class="ms-tick">([^<]+)<', svg)
    assert ticks == ["00:01", "01:01", "02:01"]  # the runs span two hours of one day
    assert "UTC, 2026-05-01" in svg  # the date the labels leave out


def test_time_labels_fit_the_span() -> None:
    from mirrorscale.web.plots import time_labels

    t0 = datetime(2026, 11, 27, 23, 50, tzinfo=timezone.utc)
    assert time_labels([t0, t0 + timedelta(minutes=3)]) == (["23:50:00", "23:53:00"], "UTC, 2026-11-27")
    assert time_labels([t0, t0 + timedelta(minutes=20)]) == (["27 Nov 23:50", "28 Nov 00:10"], "UTC, 2026")
    assert time_labels([t0 - timedelta(days=30), t0])[0] == ["28 Oct", "27 Nov"]
    assert time_labels([t0, t0 + timedelta(days=40)]) == (["2026-11-27", "2027-01-06"], "UTC")


def test_ui_binds_to_localhost_by_default() -> None:
    from mirrorscale.cli.ui import DEFAULT_HOST

    assert DEFAULT_HOST == "127.0.0.1"
