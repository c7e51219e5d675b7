"""A user in headless chromium logs in to Airflow and reads mirrorscale's view of an example DAG.

Real parts: ``airflow dags test ms_etl_daily`` (the cluster policy sizes it in
mode ``recommend`` from a week of earlier runs, the listener records the real
run), ``airflow api-server`` with the simple auth manager, and Debian's
chromium (``/usr/bin/chromium``) driven by Playwright; Playwright's own browser
download is never used. Screenshots go to ``artifacts/`` at the repository
root (gitignored).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
DAG_ID = "ms_etl_daily"
TASKS = ("extract", "transform", "load")
MiB = 1 << 20
POLICY = f'[tasks."{DAG_ID}.*"]\nmode = "recommend"\nfeatures = ["base_rows"]\n'

if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} missing (scripts/install_browser.sh installs it)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright missing (the browser extra installs it)")

from airflow_api import get, passwords, serving  # noqa: E402  (after the skips: needs the Airflow venv)


@dataclass
class Site:
    """The running api-server, the admin's password and the DAG run the browser looks at."""

    base: str
    password: str
    run_id: str


def _seed_week(store_url: str, policy_file: Path) -> None:
    """Seven earlier daily runs of the DAG, each sized by the allocator (mode recommend) before it ran."""
    from mirrorscale.allocator import Allocator
    from mirrorscale.policy import load_policies
    from mirrorscale.store.history import HistoryStore

    store = HistoryStore.open(store_url)
    allocator = Allocator(store, load_policies(policy_file, environ={}))
    today = datetime.now(timezone.utc).replace(hour=2, minute=0, second=0, microsecond=0)
    for day in range(7, 0, -1):
        started = today - timedelta(days=day)
        run_id = f"scheduled__{started:%Y-%m-%dT%H:%M:%S}+00:00"
        rows = int(2000 * (1 + 0.6 * math.sin(2 * math.pi * day / 7)))
        for k, task_id in enumerate(TASKS):
            key = ("airflow", DAG_ID, task_id)
            size = rows * 60
            allocation = allocator.decide(key, run_id, features={"input_size_bytes": size}, save=False)
            if allocation is not None:
                allocation.created_at = started - timedelta(minutes=1)
                store.save(key, allocation)
            begin = started + timedelta(seconds=20 * k)
            store.record_trace(engine="airflow", pipeline_id=DAG_ID, task_id=task_id, run_id=run_id,
                               started_at=begin, ended_at=begin + timedelta(seconds=9), input_size_bytes=size,
                               peak_rss_bytes=(230 + k * 5) * MiB + rows * 8 * 1024, cpu_seconds=0.3,
                               wall_seconds=9.0, features={"param.base_rows": 2000}, source="seed")


@pytest.fixture(scope="module")
def site(airflow_env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:  # type: ignore[no-untyped-def]
    """A week of seeded history plus one real ``airflow dags test`` run, served by a real api-server."""
    work = tmp_path_factory.mktemp("browser")
    (work / "mirrorscale.toml").write_text(POLICY)
    (work / "config").mkdir()  # the local settings module that makes the policy hook live
    (work / "config" / "airflow_local_settings.py").write_text("__all__: list[str] = []\n")
    store_url = f"sqlite:///{work / 'history.sqlite'}"
    env = {**airflow_env.env, "MIRRORSCALE_DATABASE_URL": store_url,
           "MIRRORSCALE_POLICY_FILE": str(work / "mirrorscale.toml"), "PYTHONPATH": str(work / "config")}
    _seed_week(store_url, work / "mirrorscale.toml")
    airflow_env.run("airflow", "dags", "test", DAG_ID, extra_env=env)
    real = [t for t in airflow_env.traces(store_url) if t["source"] == "airflow-listener"]
    assert {t["task_id"] for t in real} == set(TASKS), real
    with serving(env, airflow_env.home) as base:
        yield Site(base=base, password=passwords(airflow_env.home)["admin"], run_id=real[0]["run_id"])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


def _log_in(page: Any, site: Site, path: str) -> None:
    """Open ``path`` as an anonymous user, sign in as admin on Airflow's login page, land on ``path``."""
    page.goto(site.base + path)
    page.locator("input[name=username]").fill("admin")
    page.locator("input[name=password]").fill(site.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    page.wait_for_url(f"**{path}")


def test_anonymous_browser_is_sent_to_login(site: Site, browser: Any) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        answer = page.goto(f"{site.base}/mirrorscale/pipelines/{DAG_ID}")
        assert answer is not None and answer.status == 401  # the plugin's app itself refuses
        page.goto(f"{site.base}/dags/{DAG_ID}")
        page.wait_for_url("**/auth/login**")  # Airflow's UI sends the user to its login page
        assert page.locator("input[name=password]").count() == 1
    finally:
        context.close()


def test_user_logs_in_and_reads_the_dags_mirrorscale_view(site: Site, browser: Any) -> None:
    SHOTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    try:
        _log_in(page, site, f"/dags/{DAG_ID}")  # Airflow's login page sends the user back to the DAG

        page.get_by_role("link", name="mirrorscale", exact=True).last.click()  # the external view's tab
        page.wait_for_url(f"**/dags/{DAG_ID}/plugin/mirrorscale_dag")
        view = page.frame_locator("iframe[title=mirrorscale]")
        tasks = view.locator("table#tasks")
        tasks.wait_for()
        assert all(name in tasks.inner_text() for name in TASKS)
        view.get_by_role("link", name="transform", exact=True).click()

        plot = view.locator("#plot svg")
        plot.wait_for()
        assert plot.locator(".ms-actual").count() == 1 and plot.locator(".ms-forecast").count() == 1
        ticks = plot.locator(".ms-tick").all_text_contents()
        assert len(ticks) >= 4 and len(set(ticks)) == len(ticks), ticks  # days apart: distinct date labels
        decisions = view.locator("table#allocations")
        text = decisions.inner_text()
        assert "recommend" in text and "history of" in text  # each decision with its reason
        assert site.run_id in text  # the real run was sized before it started
        status = view.locator("table#status").inner_text()
        assert "no shown run had an allocation applied" in status and "MAQ" in status  # recommend: decided only
        runs = view.locator("table#runs")
        assert runs.locator("tbody tr").count() == 8  # a week of history and the real run
        assert decisions.locator("tr.detail").first.inner_text().startswith("why: ")  # the reason, readable
        page.screenshot(path=str(SHOTS / "airflow-dag-mirrorscale.png"), full_page=True)

        src = page.locator("iframe[title=mirrorscale]").get_attribute("src")
        assert src == f"/mirrorscale/pipelines/{DAG_ID}"  # Airflow filled the external view's {DAG_ID}
        page.goto(f"{site.base}{src}/tasks/transform")  # the whole view at once; the login cookie opens it
        assert page.locator("#plot svg").count() == 1 and page.locator("table#allocations").count() == 1
        page.screenshot(path=str(SHOTS / "airflow-mirrorscale-task-page.png"), full_page=True)

        status, _ = get(f"{site.base}/mirrorscale/pipelines/{DAG_ID}/tasks/transform")
        assert status == 401  # the page the iframe showed is not public
    finally:
        context.close()


def test_task_instance_page_links_to_its_task(site: Site, browser: Any) -> None:
    from urllib.parse import quote

    context = browser.new_context(viewport={"width": 1400, "height": 1100})
    page = context.new_page()
    try:
        _log_in(page, site, "/")
        page.goto(f"{site.base}/dags/{DAG_ID}/runs/{quote(site.run_id, safe='')}/tasks/transform/plugin/mirrorscale_task")
        view = page.frame_locator("iframe[title=mirrorscale]")
        view.locator("table#allocations").wait_for()
        assert view.locator("#plot svg .ms-actual").count() == 1
        current = view.locator("table#runs tr.current")  # Airflow filled {RUN_ID}: this run stands out
        assert current.count() == 1 and site.run_id in current.inner_text()
        assert view.locator("table#allocations tr.current").count() == 1
        page.screenshot(path=str(SHOTS / "airflow-task-instance-mirrorscale.png"), full_page=True)
    finally:
        context.close()
