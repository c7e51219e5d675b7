"""The history store on SQLite and PostgreSQL: round trips, the hot query, atomicity, concurrency."""

from __future__ import annotations

import multiprocessing
from datetime import datetime, timedelta, timezone

import pytest

from mirrorscale.store.history import HistoryStore
from mirrorscale.store.models import TraceSamples

T0 = datetime(2026, 1, 5, 6, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(store_url: str):  # type: ignore[no-untyped-def]
    opened = HistoryStore.open(store_url)
    yield opened
    opened.close()


def test_trace_round_trip_keeps_every_field(store: HistoryStore) -> None:
    trace_id = store.record_trace(
        engine="airflow", pipeline_id="etl_daily", task_id="transform", run_id="scheduled__2026-01-05",
        try_number=2, started_at=T0, ended_at=T0 + timedelta(seconds=90), source="test",
        features={"rows": 120_000, "partitions": ["a", "b"], "hour": 6},
        input_size_bytes=5 * 2**30, peak_rss_bytes=40 * 2**30, cpu_seconds=81.5, wall_seconds=90.0,
        read_bytes=3 * 2**30, write_bytes=2**20, branch="heavy", outcome="oom_killed",
        allocated_memory_bytes=32 * 2**30, allocated_cpu=2.0, allocated_pool="memory", allocated_pool_slots=64,
        samples=TraceSamples(t_seconds=[0.0, 0.5], rss_bytes=[100, 2**33], cpu_seconds=[0.0, 0.4]),
    )
    assert trace_id is not None
    (trace,) = store.latest_traces("airflow", "etl_daily", "transform")
    assert (trace.task.engine, trace.task.pipeline_id, trace.task.task_id) == ("airflow", "etl_daily", "transform")
    assert trace.started_at == T0 and trace.started_at.tzinfo is not None
    assert trace.ended_at == T0 + timedelta(seconds=90)
    assert trace.features == {"rows": 120_000, "partitions": ["a", "b"], "hour": 6}
    assert trace.peak_rss_bytes == 40 * 2**30 and trace.input_size_bytes == 5 * 2**30
    assert (trace.try_number, trace.outcome, trace.branch) == (2, "oom_killed", "heavy")
    assert (trace.allocated_pool, trace.allocated_pool_slots, trace.allocated_cpu) == ("memory", 64, 2.0)
    samples = store.trace_samples(trace_id)
    assert samples is not None and samples.rss_bytes == [100, 2**33]


def test_latest_traces_is_newest_first_limited_and_per_task(store: HistoryStore) -> None:
    rows = [
        {"engine": "prefect", "pipeline_id": "flow", "task_id": task, "run_id": f"r{i}",
         "started_at": T0 + timedelta(hours=i), "peak_rss_bytes": i}
        for i in range(30) for task in ("a", "b")
    ]
    assert store.add_traces(rows) == 60
    latest = store.latest_traces("prefect", "flow", "a", limit=5)
    assert [t.run_id for t in latest] == ["r29", "r28", "r27", "r26", "r25"]
    assert {t.task.task_id for t in latest} == {"a"}
    assert store.latest_traces("prefect", "flow", "missing") == []


def test_recording_the_same_run_twice_adds_nothing(store: HistoryStore) -> None:
    key = dict(engine="airflow", pipeline_id="p", task_id="t", run_id="r1", started_at=T0)
    assert store.record_trace(**key, peak_rss_bytes=1) is not None
    assert store.record_trace(**key, peak_rss_bytes=2) is None
    assert store.record_trace(**key, try_number=2, peak_rss_bytes=3) is not None
    assert store.count_traces() == 2
    assert sorted(t.peak_rss_bytes for t in store.latest_traces("airflow", "p", "t")) == [1, 3]


def test_a_bad_row_writes_nothing_of_its_batch(store: HistoryStore) -> None:
    store.record_trace(engine="airflow", pipeline_id="p", task_id="kept", run_id="r0", started_at=T0)
    good = {"engine": "airflow", "pipeline_id": "p", "task_id": "new_task", "run_id": "r1", "started_at": T0}
    bad = {**good, "run_id": "r2", "outcome": "exploded"}  # violates the outcome check constraint
    with pytest.raises(Exception):
        store.add_traces([good, bad])
    assert store.count_traces() == 1
    assert [t.task_id for t in store.tasks()] == ["kept"]
    # the store still works, and the task created in the failed batch can be created again
    assert store.add_traces([good]) == 1


def test_unknown_trace_field_is_named(store: HistoryStore) -> None:
    with pytest.raises(TypeError, match="peak_rss_mb"):
        store.record_trace(engine="a", pipeline_id="p", task_id="t", run_id="r", started_at=T0, peak_rss_mb=3)


def test_naive_datetimes_are_refused(store: HistoryStore) -> None:
    with pytest.raises(Exception, match="timezone-aware"):
        store.record_trace(engine="a", pipeline_id="p", task_id="t", run_id="r", started_at=datetime(2026, 1, 1))


def test_task_summaries_aggregate_runs(store: HistoryStore) -> None:
    store.add_traces([
        {"engine": "airflow", "pipeline_id": "p", "task_id": "t", "run_id": f"r{i}",
         "started_at": T0 + timedelta(minutes=i), "peak_rss_bytes": 100 * (i + 1),
         "wall_seconds": 10.0, "outcome": "success" if i < 3 else "oom_killed"}
        for i in range(4)
    ])
    (summary,) = store.task_summaries()
    assert (summary.runs, summary.failures, summary.max_peak_rss_bytes) == (4, 1, 400)
    assert summary.mean_peak_rss_bytes == pytest.approx(250)
    assert summary.last_started_at == T0 + timedelta(minutes=3)


def test_decisions_are_stored_and_latest_allocation_found(store: HistoryStore) -> None:
    key = ("airflow", "p", "t")
    shadow_id = store.record_shadow(key, run_id="r1", sample_fraction=0.05, predicted_peak_rss_bytes=2**31)
    store.record_prediction(key, run_id="r1", method="quantile", target="memory", value=2e9, low=1e9, high=3e9)
    store.record_allocation(key, run_id="r0", mode="recommend", memory_bytes=1, reason="old", created_at=T0)
    store.record_allocation(key, run_id="r1", mode="enforce", memory_bytes=2**31, pool="mem", pool_slots=4,
                            reason="mirror: 5 % sample predicts 2 GiB", shadow_id=shadow_id,
                            executor_options={"pod_override": {"memory": "2Gi"}})
    latest = store.latest_allocation(key)
    assert latest is not None
    assert (latest.run_id, latest.mode, latest.pool_slots, latest.shadow_id) == ("r1", "enforce", 4, shadow_id)
    assert latest.executor_options == {"pod_override": {"memory": "2Gi"}}
    assert store.latest_allocation(("airflow", "p", "other")) is None


def _writer(url: str, worker: int, count: int) -> None:
    store = HistoryStore.open(url)
    for i in range(count):
        # every worker writes to the same tasks, so task creation races too
        store.record_trace(engine="airflow", pipeline_id="race", task_id=f"t{i % 3}", run_id=f"w{worker}-{i}",
                           started_at=T0 + timedelta(seconds=i), peak_rss_bytes=i)
    store.close()


def test_recent_mirrored_runs_pair_shadows_with_their_runs_across_tasks(store: HistoryStore) -> None:
    from mirrorscale.store.models import ResourceShadow

    keys = [("prefect", "flow", "a"), ("prefect", "flow", "b")]
    for i, (key, outcome) in enumerate([(keys[0], "ok"), (keys[1], "ok"), (keys[1], "timeout"), (keys[0], "ok")]):
        store.save(key, ResourceShadow(created_at=T0, run_id=f"r{i}", outcome=outcome, sample_fraction=0.05,
                                       full_input_bytes=100, evidence="{}"))
        store.record_trace(engine=key[0], pipeline_id=key[1], task_id=key[2], run_id=f"r{i}",
                           started_at=T0 + timedelta(minutes=i), cpu_seconds=float(i), wall_seconds=1.0,
                           outcome="failed" if i == 3 else "success")
    pairs = store.recent_mirrored_runs(limit=10)
    assert [(shadow.run_id, trace.cpu_seconds) for shadow, trace in pairs] == [("r1", 1.0), ("r0", 0.0)]
    assert [s.run_id for s, _ in store.recent_mirrored_runs(limit=10, exclude=keys[1])] == ["r0"]
    assert len(store.recent_mirrored_runs(limit=1)) == 1


def test_four_concurrent_writer_processes_lose_no_rows(store_url: str) -> None:
    HistoryStore.open(store_url).close()  # schema first, as `mirrorscale db upgrade` would
    per_worker = 150
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(store_url, w, per_worker)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=120)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    store = HistoryStore.open(store_url)
    assert store.count_traces() == 4 * per_worker
    assert len(store.tasks()) == 3
    runs = {t.run_id for t in store.recent_traces(limit=10_000)}
    assert runs == {f"w{w}-{i}" for w in range(4) for i in range(per_worker)}
