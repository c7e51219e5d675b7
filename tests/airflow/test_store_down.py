"""With the store unreachable, DAGs still run with their own settings and one warning per task is logged.

A real ``airflow dags test`` against a PostgreSQL port that refuses connections
and an api-server port that refuses them too (the trace relay fails as well:
the warning names both); the unwritable-SQLite case runs in-process in
``test_listener.py`` and ``test_trace_relay.py``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from airflow_api import refused_url

TASKS = ("extract", "transform", "load")


def _store_urls(tmp_path: Path) -> dict[str, str]:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the store's folder should be\n")
    return {
        "postgres-refused": "postgresql+psycopg://postgres@127.0.0.1:1/nope",
        "sqlite-unwritable": f"sqlite:///{blocker / 'store.sqlite'}",
    }


@pytest.mark.parametrize("kind", ["postgres-refused"])
def test_dag_succeeds_when_the_store_is_down(airflow_env, tmp_path: Path, kind: str) -> None:  # type: ignore[no-untyped-def]
    url = _store_urls(tmp_path)[kind]
    api = refused_url()  # the trace relay is refused too
    proc = airflow_env.run("airflow", "dags", "test", "ms_etl_daily", extra_env={
        "MIRRORSCALE_DATABASE_URL": url, "MIRRORSCALE_AIRFLOW_API_URL": api, "MIRRORSCALE_AIRFLOW_API_TOKEN": "t"})
    output = proc.stdout + proc.stderr
    assert "state=success" in output or "successful" in output
    warnings = [line for line in output.splitlines() if "mirrorscale could not store the trace" in line]
    assert len(warnings) == len(TASKS), "\n".join(warnings)
    for task in TASKS:
        assert sum(bool(re.search(rf"ms_etl_daily\.{task}\b", w)) for w in warnings) == 1
    assert all("warning" in w.lower() for w in warnings)
    assert all("relaying to the api-server failed too" in w and "Connection refused" in w for w in warnings), warnings
    assert "Traceback" not in output
