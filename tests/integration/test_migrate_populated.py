"""Migrations run forward on a populated store of the previous revision without losing rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from sqlalchemy import text

from mirrorscale.store.engine import make_engine
from mirrorscale.store.history import HistoryStore
from mirrorscale.store.schema import SCHEMA_REVISION, current_revision, ensure_schema, upgrade

PREVIOUS = "20261127_0001"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
TABLES = ("mirrorscale_task", "mirrorscale_trace", "mirrorscale_trace_samples", "mirrorscale_shadow",
          "mirrorscale_prediction", "mirrorscale_allocation")


def _snapshot(engine) -> dict[str, list]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {t: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {t} ORDER BY 1"))] for t in TABLES}


def test_upgrade_from_the_previous_revision_keeps_every_row(store_url: str) -> None:
    engine = make_engine(store_url)
    upgrade(engine, PREVIOUS)
    assert current_revision(engine) == PREVIOUS
    store = HistoryStore(engine)  # the code of today writing only tables the old revision has
    key = ("airflow", "etl", "load")
    rows = [dict(engine=key[0], pipeline_id=key[1], task_id=f"t{i % 7}", run_id=f"r{i}",
                 started_at=T0 + timedelta(minutes=i), peak_rss_bytes=10**8 + i, wall_seconds=1.0 + i,
                 cpu_seconds=0.5, input_size_bytes=10**6 * i, features={"rows": i, "nested": {"a": [1, 2]}},
                 outcome=("success", "failed", "oom_killed", "timed_out")[i % 4]) for i in range(500)]
    assert store.add_traces(rows) == 500
    from mirrorscale.store.models import TraceSamples

    store.record_trace(engine=key[0], pipeline_id=key[1], task_id=key[2], run_id="with-samples", started_at=T0,
                       samples=TraceSamples(t_seconds=[0.0, 0.1], rss_bytes=[1, 2], cpu_seconds=[0.0, 0.1]))
    store.record_shadow(key, sample_fraction=0.05, predicted_peak_rss_bytes=123, outcome="ok")
    store.record_prediction(key, run_id="r1", method="mirrorscale", target="memory", value=1.0)
    store.record_allocation(key, run_id="r1", mode="recommend", memory_bytes=2**30, reason="before upgrade")
    before = _snapshot(engine)

    ensure_schema(engine)  # what HistoryStore.open does on first use of the new version
    assert current_revision(engine) == SCHEMA_REVISION
    assert _snapshot(engine) == before
    reopened = HistoryStore.open(store_url)
    assert reopened.count_traces() == 501
    assert len(reopened.latest_traces(key[0], key[1], "t0", limit=1000)) == sum(1 for i in range(500) if i % 7 == 0)
    assert len(reopened.latest_traces(*key, limit=1000)) == 1
    assert reopened.latest_allocation(key).reason == "before upgrade"
    reopened.record_mirror_state(key, state="active", reason="new table works")  # the new revision's table
    assert reopened.latest_mirror_state(key).state == "active"
    reopened.close()
    engine.dispose()
