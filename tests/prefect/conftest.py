"""Prefect test session: a throwaway PREFECT_HOME, API database and history store.

The environment is set when this file is imported, before any test imports
Prefect, so nothing reads or writes ``~/.prefect`` or the user's mirrorscale store.
One ``prefect_test_harness()`` (a temporary API server on SQLite, ~6-20 s to start)
is shared by the whole session: use the ``prefect_api`` fixture.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

import pytest

import importlib.util

_spec = importlib.util.find_spec("prefect")
if _spec is None or _spec.origin in (None, "namespace"):  # no Prefect here (e.g. the core venv; this very
    collect_ignore_glob = ["test_*.py"]  # folder, tests/prefect, then looks like a namespace package)

if "prefect" in sys.modules:  # pragma: no cover - would defeat the isolation below
    raise RuntimeError("tests/prefect/conftest.py must be imported before prefect")

SESSION_DIR = Path(tempfile.mkdtemp(prefix="mirrorscale-prefect-tests-"))
atexit.register(shutil.rmtree, SESSION_DIR, True)
STORE_URL = f"sqlite:///{SESSION_DIR / 'mirrorscale.sqlite'}"
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "dags_examples" / "prefect"

os.environ.update({
    "PREFECT_HOME": str(SESSION_DIR / "prefect-home"),
    "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{SESSION_DIR / 'prefect.db'}",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_LOGGING_TO_API_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    **{f"PREFECT_SERVER_SERVICES_{name}_ENABLED": "false"  # background loops the tests do not need
       for name in ("SCHEDULER", "LATE_RUNS", "FOREMAN", "PAUSE_EXPIRATIONS", "CANCELLATION_CLEANUP",
                    "TRIGGERS", "EVENT_LOGGER", "REPOSSESSOR", "CLEANUP_RECONCILER")},
    "MIRRORSCALE_DATABASE_URL": STORE_URL,
    "MIRRORSCALE_HOME": str(SESSION_DIR / "mirrorscale-home"),
})
for name in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_PROFILES_PATH", "MIRRORSCALE_POLICY_FILE",
             "MIRRORSCALE_MODE", "MIRRORSCALE_MIRROR", "MIRRORSCALE_SAMPLE_FRACTION", "MIRRORSCALE_HEADROOM"):
    os.environ.pop(name, None)


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """One temporary Prefect API server for the session; yields its URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session")
def store() -> Any:
    """The session's history store (the SQLite file MIRRORSCALE_DATABASE_URL names)."""
    from mirrorscale.store.history import HistoryStore

    return HistoryStore.open(STORE_URL)


@pytest.fixture(scope="session")
def traces_of(store: Any) -> Any:
    """``traces_of(flow_name)``: all stored traces of that Prefect flow, oldest first."""

    def find(flow_name: str) -> list[Any]:
        found = [t for t in store.recent_traces(limit=100_000)
                 if t.task.engine == "prefect" and t.task.pipeline_id == flow_name]
        return sorted(found, key=lambda t: (t.started_at, t.id))

    return find


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A hung flow (a concurrency slot never freed, a worker that never answers) fails
    its test after 5 minutes instead of stalling the suite (pytest-timeout)."""
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(300))
