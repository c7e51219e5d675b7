"""The allocator on a real store (SQLite and PostgreSQL): stored decisions, incremental refit, OOM, plans."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mirrorscale.allocator import Allocator, Request
from mirrorscale.policy import PolicySet
from mirrorscale.store.history import HistoryStore
from mirrorscale.store.models import Allocation

GIB = 2**30
KEY = ("airflow", "etl", "transform")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(store_url: str):  # type: ignore[no-untyped-def]
    s = HistoryStore.open(store_url)
    yield s
    s.close()


def _row(i: int, peak: int = GIB, **columns) -> dict:
    return dict(engine=KEY[0], pipeline_id=KEY[1], task_id=KEY[2], run_id=f"r{i}",
                started_at=T0 + timedelta(hours=i), peak_rss_bytes=peak, wall_seconds=60.0, cpu_seconds=30.0,
                **columns)


def _policies(mode: str = "recommend", **more) -> PolicySet:
    return PolicySet.from_mapping({"mode": mode, **more}, environ={})


def test_recommend_is_stored_and_found_again(store: HistoryStore) -> None:
    store.add_traces(_row(i) for i in range(20))
    allocation = Allocator(store, _policies(pool_slot_memory="1GiB")).decide(KEY, "next")
    latest = store.latest_allocation(KEY)
    assert latest is not None and latest.id == allocation.id
    assert (latest.memory_bytes, latest.reason, latest.mode, latest.applied) == (
        allocation.memory_bytes, allocation.reason, "recommend", False)
    assert latest.pool_slots == allocation.pool_slots >= 2


def test_enforce_is_marked_applied_and_observe_is_not_stored(store: HistoryStore) -> None:
    store.add_traces(_row(i) for i in range(5))
    Allocator(store, _policies("observe")).decide(KEY, "a")
    assert store.latest_allocation(KEY) is None
    Allocator(store, _policies("enforce")).decide(KEY, "b")
    assert store.latest_allocation(KEY).applied is True


def test_new_traces_are_picked_up_incrementally_and_an_oom_bumps(store: HistoryStore) -> None:
    store.add_traces(_row(i) for i in range(30))
    allocator = Allocator(store, _policies(headroom=0.0))
    before = allocator.decide(KEY, "r30")
    store.record_trace(engine=KEY[0], pipeline_id=KEY[1], task_id=KEY[2], run_id="r30",
                       started_at=T0 + timedelta(hours=30), outcome="oom_killed", peak_rss_bytes=GIB,
                       allocated_memory_bytes=before.memory_bytes)
    after = allocator.decide(KEY, "r30", try_number=2)
    assert allocator.model(KEY).runs == 30 and len(allocator.model(KEY).tail) == 20
    assert after.memory_bytes >= 1.2 * before.memory_bytes and "OOM bump: this run" in after.reason


def test_stored_shadow_is_used_and_linked(store: HistoryStore) -> None:
    from mirrorscale.store.models import ResourceShadow

    store.add_traces(_row(i, int(GIB * (1.8 if i % 2 else 0.6))) for i in range(20))
    shadow_id = store.save(KEY, ResourceShadow(
        sample_fraction=0.05, outcome="ok", predicted_peak_rss_bytes=2 * GIB, predicted_peak_rss_low=int(1.9 * GIB),
        predicted_peak_rss_high=int(2.1 * GIB), created_at=datetime.now(timezone.utc)))
    allocation = Allocator(store, _policies()).decide(KEY, "next")
    assert allocation.source == "shadow" and allocation.shadow_id == shadow_id
    assert store.latest_allocation(KEY).shadow_id == shadow_id


def test_decide_all_stores_the_plan(store: HistoryStore) -> None:
    keys = [("airflow", "etl", f"t{j}") for j in range(4)]
    store.add_traces(dict(_row(i, 3 * GIB), task_id=k[2]) for k in keys for i in range(10))
    allocator = Allocator(store, _policies("enforce", headroom=0.0), capacity=8 * GIB)
    decided = allocator.decide_all([Request(k, "run1") for k in keys])
    stored = [store.latest_allocation(k) for k in keys]
    waves: dict[int, int] = {}
    for allocation in stored:
        plan = allocation.executor_options["plan"]
        waves[plan["wave"]] = waves.get(plan["wave"], 0) + allocation.memory_bytes
    assert len(waves) >= 2 and all(total <= 8 * GIB for total in waves.values())
    assert [a.id for a in decided] == [a.id for a in stored]


# -- mirrorscale explain -----------------------------------------------------

def _cli(monkeypatch, tmp_path, url: str, policy: str):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from mirrorscale.cli import _load_commands, app

    (tmp_path / "policy.toml").write_text(policy)
    monkeypatch.setenv("MIRRORSCALE_DATABASE_URL", url)
    monkeypatch.setenv("MIRRORSCALE_POLICY_FILE", str(tmp_path / "policy.toml"))
    _load_commands()
    return lambda *args: CliRunner().invoke(app, list(args))


def test_explain_shows_allocation_history_shadow_volatility_and_mirror(monkeypatch, tmp_path, sqlite_url) -> None:
    import json

    from mirrorscale.lifecycle import MirrorLifecycle

    invoke = _cli(monkeypatch, tmp_path, sqlite_url, 'mode = "recommend"\nmirror = true\n')
    store = HistoryStore.open(sqlite_url)
    store.add_traces(_row(i, int(GIB * 1.05**i), input_size_bytes=int(10**8 * 1.05**i)) for i in range(30))
    policies = PolicySet.from_mapping({"mode": "recommend", "mirror": True}, environ={})
    MirrorLifecycle(store, policies).step(KEY)
    allocation = Allocator(store, policies).decide(KEY, "r30")
    result = invoke("explain", "etl.transform", "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["allocation"]["reason"] == allocation.reason and doc["allocation"]["mode"] == "recommend"
    assert doc["history"]["runs"] == 30 and doc["history"]["outcomes"] == {"success": 30}
    assert doc["volatility"]["hotspot"] is True and doc["volatility"]["reason"].startswith("hotspot:")
    assert doc["mirror"]["state"] == "active" and doc["mirror"]["reason"].startswith("hotspot:")
    assert doc["shadow"] is None and doc["would_decide"] is None
    text = invoke("explain", "transform")
    assert text.exit_code == 0
    for part in ("allocation #", "reason: history of 30 run(s)", "history: 30 recent run(s)", "volatility: ",
                 "mirror: active"):
        assert part in text.output, part


def test_explain_in_observe_mode_shows_what_it_would_decide(monkeypatch, tmp_path, sqlite_url) -> None:
    import json

    invoke = _cli(monkeypatch, tmp_path, sqlite_url, 'mode = "observe"\n')
    store = HistoryStore.open(sqlite_url)
    store.add_traces(_row(i) for i in range(5))
    doc = json.loads(invoke("explain", "etl.transform", "--json").output)
    assert doc["allocation"] is None and doc["would_decide"]["mode"] == "observe"
    assert doc["mirror"]["state"] == "none" and "only 5 run(s)" in doc["volatility"]["reason"]
    missing = invoke("explain", "nope")
    assert missing.exit_code == 1 and "no task named" in missing.output


def _oom_then_success(store: HistoryStore, allocator: Allocator, task: str, run_id: str, hour: int,
                      killed_at: int, used_after: int | None) -> Allocation:
    """Task ``task`` killed at ``killed_at`` bytes in run ``run_id``; the retry's decision, then (optionally) its success."""
    key = (KEY[0], KEY[1], task)
    store.record_trace(engine=key[0], pipeline_id=key[1], task_id=task, run_id=run_id,
                       started_at=T0 + timedelta(hours=hour), outcome="oom_killed", peak_rss_bytes=killed_at,
                       allocated_memory_bytes=killed_at, wall_seconds=60.0)
    retry = allocator.decide(key, run_id, try_number=2)
    if used_after is not None:
        store.record_trace(engine=key[0], pipeline_id=key[1], task_id=task, run_id=run_id,
                           started_at=T0 + timedelta(hours=hour, minutes=5), peak_rss_bytes=used_after,
                           wall_seconds=60.0, cpu_seconds=30.0, try_number=2)
        allocator.model(key)  # the success is learned: the overshoot joins the pipeline's pool
    return retry


def test_a_first_retry_learns_from_the_overshoots_of_other_tasks_of_the_pipeline(store: HistoryStore) -> None:
    """Two tasks of the pipeline were killed and then needed 1.6x their killed attempt: a third task's
    first retry steps that far at once, where a pipeline without that experience steps ~1.2x."""
    for task in ("a", "b", "c"):
        store.add_traces(dict(_row(i), task_id=task, run_id=f"{task}{i}") for i in range(20))
    learned, fresh = Allocator(store, _policies(headroom=0.0)), Allocator(store, _policies(headroom=0.0))
    killed = int(1.5 * GIB)  # far above anything seen: the sizer's own step knows nothing
    for hour, task in ((30, "a"), (31, "b")):
        _oom_then_success(store, learned, task, f"{task}-big", hour, killed, int(1.6 * killed))
    after_pool = _oom_then_success(store, learned, "c", "c-big", 32, killed, None)
    alone = fresh.decide((KEY[0], KEY[1], "c"), "c-big", try_number=2)
    assert alone.memory_bytes < 1.35 * killed  # the task's own rule: about +20 %
    assert after_pool.memory_bytes >= 1.6 * killed  # the pooled overshoots: one step covers them
    assert "OOM bump" in after_pool.reason
