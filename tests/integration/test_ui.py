"""``mirrorscale ui`` serves the dashboard on its own: a real subprocess, real HTTP."""

from __future__ import annotations

import os
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


def seed(url: str) -> None:
    """Three Prefect runs of ``etl.transform`` with an allocation each, one of them from a mirror."""
    from mirrorscale.store.history import HistoryStore
    from mirrorscale.store.models import Allocation

    store = HistoryStore.open(url)
    start = datetime(2026, 5, 1, tzinfo=timezone.utc)
    key = ("prefect", "etl", "transform")
    for i in range(3):
        run = f"run-{i}"
        store.save(key, Allocation(run_id=run, try_number=1, created_at=start + timedelta(hours=i), mode="enforce",
                                   applied=True, memory_bytes=(100 + 50 * i) * MiB, source="history",
                                   reason=f"history of {i} run(s) -> decision {i}"))
        store.record_trace(engine="prefect", pipeline_id="etl", task_id="transform", run_id=run,
                           started_at=start + timedelta(hours=i, minutes=1), ended_at=start + timedelta(hours=i, minutes=2),
                           input_size_bytes=(10 + 5 * i) * MiB, peak_rss_bytes=(80 + 40 * i) * MiB,
                           allocated_memory_bytes=(100 + 50 * i) * MiB, cpu_seconds=1.0, wall_seconds=60.0,
                           source="test")


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


def test_ui_binds_to_localhost_by_default() -> None:
    from mirrorscale.cli.ui import DEFAULT_HOST

    assert DEFAULT_HOST == "127.0.0.1"
