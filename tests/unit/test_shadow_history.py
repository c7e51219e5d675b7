"""What a mirror is told about the task's past runs (``past_full_runs``), read from a real store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mirrorscale.mirror.shadow import past_full_runs
from mirrorscale.store.history import HistoryStore

MIB = 2**20
KEY = ("airflow", "etl", "transform")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(sqlite_url: str):  # type: ignore[no-untyped-def]
    s = HistoryStore.open(sqlite_url)
    yield s
    s.close()


def test_history_gives_the_peak_increase_a_mirror_measures_not_the_process_peak(store: HistoryStore) -> None:
    """Airflow stores its task process's whole peak and the baseline beside it; a mirror measures
    only the increase, so the history handed to the extrapolation must be the increase too."""
    rows = [dict(engine=KEY[0], pipeline_id=KEY[1], task_id=KEY[2], run_id=f"r{i}",
                 started_at=T0 + timedelta(hours=i), input_size_bytes=(i + 1) * 100 * MIB,
                 peak_rss_bytes=200 * MIB + (i + 1) * 50 * MIB, wall_seconds=10.0, cpu_seconds=9.0,
                 features={"baseline_rss_bytes": 200 * MIB}) for i in range(3)]
    rows.append(dict(engine=KEY[0], pipeline_id=KEY[1], task_id=KEY[2], run_id="prefect-like",
                     started_at=T0 + timedelta(hours=3), input_size_bytes=400 * MIB, peak_rss_bytes=200 * MIB,
                     wall_seconds=10.0, cpu_seconds=9.0, features={}))  # an increase already: nothing to take off
    rows.append(dict(engine=KEY[0], pipeline_id=KEY[1], task_id=KEY[2], run_id="no-rise",
                     started_at=T0 + timedelta(hours=4), input_size_bytes=500 * MIB, peak_rss_bytes=150 * MIB,
                     wall_seconds=10.0, cpu_seconds=9.0, features={"baseline_rss_bytes": 200 * MIB}))
    store.add_traces(rows)
    runs = past_full_runs(store, KEY)
    assert [(size / MIB, peak / MIB) for size, peak, _, _ in runs] == [(100, 50), (200, 100), (300, 150), (400, 200)]
    assert runs[0][2:] == (9.0, 10.0)
