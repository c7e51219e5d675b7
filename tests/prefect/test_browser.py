"""Headless chromium (Debian's, driven by Playwright) sees the forecast table in Prefect's UI and the dashboard.

Needs ``/usr/bin/chromium`` (``scripts/install_browser.sh``) and the ``playwright``
package; Playwright's own browser download is never used. Screenshots go to
``artifacts/`` at the repository root (gitignored).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} missing (scripts/install_browser.sh installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, process: subprocess.Popen[Any], seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"{process.args!r} exited with {process.returncode}")
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {seconds:g} s")


def _post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``prefect server start`` (with its UI) on a free port; yields the UI's base URL."""
    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_UI_ENABLED": "true",
           "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
           "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api"}
    env.pop("PREFECT_API_URL", None)
    prefect = Path(sys.executable).with_name("prefect")
    server = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port),
                               "--no-services"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/health", server)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def test_prefect_ui_shows_the_forecast_table_of_a_flow_run(prefect_server: str, browser: Any, tmp_path: Path) -> None:
    api = f"{prefect_server}/api"  # its own history store: the session's counts belong to test_examples
    env = {**os.environ, "PREFECT_API_URL": api, "MIRRORSCALE_DATABASE_URL": f"sqlite:///{tmp_path / 'h.sqlite'}"}
    run = subprocess.run([sys.executable, str(ROOT / "dags_examples" / "prefect" / "growing_etl.py"), "1", "300"],
                         env=env, capture_output=True, text=True, timeout=240)
    assert run.returncode == 0, run.stderr[-3000:]
    artifacts = _post(f"{api}/artifacts/filter", {"artifacts": {"key": {"any_": ["mirrorscale-forecast"]}}})
    assert artifacts, "no forecast artifact was created"
    artifact = artifacts[0]
    SHOTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{prefect_server}/runs/flow-run/{artifact['flow_run_id']}", wait_until="networkidle")
    page.get_by_role("tab", name="Artifacts").or_(page.get_by_text("Artifacts", exact=True)).first.click()
    try:
        page.get_by_text("mirrorscale-forecast").first.wait_for(timeout=60_000)
    finally:
        page.screenshot(path=str(SHOTS / "prefect-flow-run-artifacts.png"), full_page=True)
    page.goto(f"{prefect_server}/artifacts/artifact/{artifact['id']}", wait_until="networkidle")
    table = page.locator("table").filter(has_text="forecast peak").first
    table.wait_for(timeout=60_000)
    assert "evidence" in table.inner_text() and "transform" in table.inner_text()
    page.screenshot(path=str(SHOTS / "prefect-forecast-table.png"), full_page=True)
    page.close()


def test_mirrorscale_ui_in_chromium(browser: Any, tmp_path: Path) -> None:
    from conftest import STORE_URL

    from mirrorscale.store.history import HistoryStore

    store = HistoryStore.open(STORE_URL)
    if not store.task_summaries():  # the session store is empty when this test runs alone
        from datetime import datetime, timedelta, timezone

        start = datetime(2026, 5, 1, tzinfo=timezone.utc)
        for i in range(3):
            store.record_trace(engine="prefect", pipeline_id="browser", task_id="work", run_id=f"b-{i}",
                               started_at=start + timedelta(hours=i), ended_at=start + timedelta(hours=i, minutes=1),
                               peak_rss_bytes=(i + 1) * 2**20, wall_seconds=60.0, source="test")
    summary = store.task_summaries()[0]
    port = _free_port()
    script = Path(sys.executable).with_name("mirrorscale")
    ui = subprocess.Popen([str(script), "ui", "--port", str(port)], env={**os.environ, "MIRRORSCALE_DATABASE_URL": STORE_URL},
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(base + "/", ui, 60)
        SHOTS.mkdir(exist_ok=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(base + "/", wait_until="load")
        assert page.locator("table#tasks").count() == 1
        page.screenshot(path=str(SHOTS / "mirrorscale-ui-index.png"), full_page=True)
        page.goto(f"{base}/pipelines/{summary.pipeline_id}/tasks/{summary.task_id}", wait_until="load")
        assert page.locator("#plot svg").count() == 1 and page.locator("table#runs").count() == 1
        assert page.get_by_role("heading", name="Allocations").count() == 1  # the decision table's section
        page.screenshot(path=str(SHOTS / "mirrorscale-ui-task.png"), full_page=True)
        page.close()
    finally:
        ui.terminate()
        ui.wait(10)
