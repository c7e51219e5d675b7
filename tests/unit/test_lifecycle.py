"""The mirror life cycle: creation, refresh, the three retirements, path gating, and the past runs a mirror is given."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from mirrorscale.lifecycle import MirrorLifecycle, on_predicted_path, refresh_interval, shadow_error
from mirrorscale.mirror.shadow import measured_probe, past_full_runs, past_mirrored_runs, shadow_points
from mirrorscale.policy import PolicySet
from mirrorscale.store.history import HistoryStore
from mirrorscale.store.models import ResourceShadow

GIB, MIB = 2**30, 2**20
KEY = ("airflow", "etl", "transform")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def store(sqlite_url: str):  # type: ignore[no-untyped-def]
    s = HistoryStore.open(sqlite_url)
    yield s
    s.close()


def at(i: int) -> datetime:
    return T0 + timedelta(hours=i)


def add_runs(store: HistoryStore, start: int, stop: int, *, grow: float = 1.05, flat_peak: bool = False,
             allocated=None) -> None:
    """Runs ``start..stop-1``; input (and, unless ``flat_peak``, peak) grows by ``grow`` per run."""
    rows = []
    for i in range(start, stop):
        size = 10**8 * grow**i
        peak = GIB if flat_peak else int(GIB * grow**i)
        rows.append(dict(engine=KEY[0], pipeline_id=KEY[1], task_id=KEY[2], run_id=f"r{i}", started_at=at(i),
                         input_size_bytes=int(size), peak_rss_bytes=peak, wall_seconds=60.0, cpu_seconds=60.0,
                         allocated_memory_bytes=allocated(i) if callable(allocated) else allocated))
    store.add_traces(rows)


def lifecycle(store: HistoryStore, *, mirror: bool = True, **settings) -> MirrorLifecycle:
    return MirrorLifecycle(store, PolicySet.from_mapping({"mirror": mirror}, environ={}), **settings)


def test_hotspot_creates_a_mirror_with_its_reason_stored(store: HistoryStore) -> None:
    add_runs(store, 0, 30)
    decision = lifecycle(store).step(KEY, now=at(30))
    assert decision.state == "active" and decision.changed and decision.mirror_now
    assert decision.reason.startswith("hotspot:") and "growing" in decision.reason
    stored = store.latest_mirror_state(KEY)
    assert (stored.state, stored.reason) == ("active", decision.reason)
    assert stored.volatility == pytest.approx(decision.volatility) and stored.details["rule"] == "hotspot"
    again = lifecycle(store).step(KEY, now=at(30))
    assert again.state == "active" and not again.changed and again.interval == 1 and again.mirror_now


def test_no_mirror_without_policy_permission_history_or_path(store: HistoryStore) -> None:
    add_runs(store, 0, 5)
    few = lifecycle(store).step(KEY)
    assert few.state == "none" and "only 5 run(s)" in few.reason
    add_runs(store, 5, 30)
    denied = lifecycle(store, mirror=False).step(KEY)
    assert denied.state == "none" and "not allowed by the policy" in denied.reason
    off = lifecycle(store).step(KEY, on_path=False)
    assert off.state == "none" and not off.mirror_now and "off the predicted path" in off.reason
    assert store.latest_mirror_state(KEY) is None


def test_retired_when_behaviour_stabilised(store: HistoryStore) -> None:
    add_runs(store, 0, 30)
    cycle = lifecycle(store)
    assert cycle.step(KEY, now=at(29) + timedelta(minutes=1)).state == "active"
    add_runs(store, 30, 80, grow=1.0)  # flat from here on
    decision = cycle.step(KEY, now=at(80))
    assert decision.state == "retired" and decision.changed
    assert decision.reason.startswith("behaviour stabilised") and store.latest_mirror_state(KEY).state == "retired"


def test_retired_when_allocations_are_sufficient_and_stable(store: HistoryStore) -> None:
    add_runs(store, 0, 30, flat_peak=True)
    cycle = lifecycle(store)
    assert cycle.step(KEY, now=at(29) + timedelta(minutes=1)).state == "active"  # input keeps growing
    add_runs(store, 30, 40, flat_peak=True, allocated=2 * GIB)
    decision = cycle.step(KEY, now=at(40))
    assert decision.state == "retired" and decision.reason.startswith("allocations sufficient and stable")
    assert decision.details["rule"] == "sufficient"


def test_retired_when_predictions_keep_missing_then_cools_down(store: HistoryStore) -> None:
    add_runs(store, 0, 30)
    cycle = lifecycle(store, cooldown_runs=5)
    assert cycle.step(KEY, now=at(29) + timedelta(minutes=1)).state == "active"
    add_runs(store, 30, 33)
    for i in range(30, 33):
        store.save(KEY, ResourceShadow(run_id=f"r{i}", created_at=at(i) - timedelta(minutes=5), outcome="ok",
                                       sample_fraction=0.05, predicted_peak_rss_bytes=3 * GIB * 1.05**i))
    decision = cycle.step(KEY, now=at(33))
    assert decision.state == "retired" and decision.reason.startswith("predictions keep missing")
    assert "off by 200%" in decision.reason
    cooling = cycle.step(KEY, now=at(33))
    assert cooling.state == "retired" and "cooling down" in cooling.reason and not cooling.changed
    add_runs(store, 33, 40)
    back = cycle.step(KEY, now=at(40))
    assert back.state == "active" and back.changed


def test_refresh_interval_follows_volatility() -> None:
    assert [refresh_interval(s, 0.2) for s in (0.5, 0.4, 0.3, 0.1, 0.04, 0.0)] == [1, 1, 2, 4, 10, 10]


def test_active_mirror_waits_for_its_interval(store: HistoryStore) -> None:
    add_runs(store, 0, 30, grow=1.012)  # ~ +1.2 %/run: score ~0.12 -> every 4 runs
    cycle = lifecycle(store, threshold=0.1)
    first = cycle.step(KEY, now=at(30))
    assert first.state == "active" and first.interval and first.interval > 1
    store.save(KEY, ResourceShadow(run_id="r30", created_at=at(30), outcome="ok", sample_fraction=0.05,
                                   predicted_peak_rss_bytes=GIB))
    waiting = cycle.step(KEY, now=at(30))
    assert not waiting.mirror_now and "not due" in waiting.reason


def test_shadow_error_counts_the_baseline_and_failures() -> None:
    class Trace:
        peak_rss_bytes = GIB + 100 * 2**20
        features = {"baseline_rss_bytes": 100 * 2**20}

    ok = ResourceShadow(outcome="ok", predicted_peak_rss_bytes=GIB)
    assert shadow_error(ok, Trace()) == 0
    assert shadow_error(ResourceShadow(outcome="timeout"), Trace()) == float("inf")
    assert shadow_error(ok, None) is None


def test_only_tasks_on_the_predicted_path() -> None:
    from mirrorscale.predictors.path import PathPredictor

    contexts = [{"size": s} for s in (1, 2, 3, 100, 200, 300) * 4]
    branches = ["load+small" if c["size"] < 50 else "load+big" for c in contexts]
    predictor = PathPredictor(min_runs=5).fit(contexts, branches)
    assert on_predicted_path(predictor, {"size": 250}, "big")
    assert not on_predicted_path(predictor, {"size": 250}, "small")
    assert on_predicted_path(None, {}, "anything")


def test_history_gives_the_peak_increase_a_mirror_measures_not_the_process_peak(store: HistoryStore) -> None:
    """Airflow stores its task process's whole peak and the baseline beside it; a mirror measures
    only the increase, so the history handed to the extrapolation must be the increase too."""
    rows = [dict(engine=KEY[0], pipeline_id=KEY[1], task_id=KEY[2], run_id=f"r{i}",
                 started_at=at(i), input_size_bytes=(i + 1) * 100 * MIB,
                 peak_rss_bytes=200 * MIB + (i + 1) * 50 * MIB, wall_seconds=10.0, cpu_seconds=9.0,
                 features={"baseline_rss_bytes": 200 * MIB}) for i in range(3)]
    rows.append(dict(engine=KEY[0], pipeline_id=KEY[1], task_id=KEY[2], run_id="prefect-like",
                     started_at=at(3), input_size_bytes=400 * MIB, peak_rss_bytes=200 * MIB,
                     wall_seconds=10.0, cpu_seconds=9.0, features={}))  # an increase already: nothing to take off
    rows.append(dict(engine=KEY[0], pipeline_id=KEY[1], task_id=KEY[2], run_id="no-rise",
                     started_at=at(4), input_size_bytes=500 * MIB, peak_rss_bytes=150 * MIB,
                     wall_seconds=10.0, cpu_seconds=9.0, features={"baseline_rss_bytes": 200 * MIB}))
    store.add_traces(rows)
    runs = past_full_runs(store, KEY)
    assert [(size / MIB, peak / MIB) for size, peak, _, _ in runs] == [(100, 50), (200, 100), (300, 150), (400, 200)]
    assert runs[0][2:] == (9.0, 10.0)


def test_past_mirrored_runs_pair_each_stored_shadow_with_its_runs_trace(store: HistoryStore) -> None:
    import json

    def shadow(run_id: str, *, outcome: str = "ok", evidence: str | None = None) -> ResourceShadow:
        mirrors = [{"outcome": "ok", "sampled_input_bytes": size * MIB, "peak_rss_increase_bytes": size * MIB,
                    "cpu_seconds": 0.1 * size, "uncontended_wall_seconds": 0.2 * size, "probe": size == 1}
                   for size in (1, 5)]
        return ResourceShadow(created_at=at(0), run_id=run_id, outcome=outcome, sample_fraction=0.05,
                              full_input_bytes=100 * MIB, evidence=evidence or json.dumps({"mirrors": mirrors}))

    for run_id, kwargs in [("r1", {}), ("r2", {"outcome": "timeout"}), ("r3", {"evidence": "{not json"}),
                           ("r4", {})]:
        store.save(KEY, shadow(run_id, **kwargs))
    store.add_traces([dict(engine=KEY[0], pipeline_id=KEY[1], task_id=KEY[2], run_id=f"r{i}", started_at=at(i),
                           input_size_bytes=90 * MIB, peak_rss_bytes=300 * MIB, wall_seconds=30.0, cpu_seconds=12.0,
                           features={"baseline_rss_bytes": 200 * MIB}) for i in (1, 2, 3)])  # r4 never ran
    runs = past_mirrored_runs(store, KEY)
    assert len(runs) == 1  # r2's mirror failed, r3's evidence cannot be read, r4 has no trace
    (run,) = runs
    assert [(p.size / MIB, p.cpu_seconds, p.wall_seconds) for p in run.mirror] == [(1, 0.1, 0.2), (5, 0.5, 1.0)]
    assert (run.actual.size, run.actual.peak_rss_bytes) == (100 * MIB, 100 * MIB)  # the shadow's size, the increase
    assert (run.actual.cpu_seconds, run.actual.wall_seconds) == (12.0, 30.0)
    assert run.own and run.probe == run.mirror[0]  # the probe it measured, which a later preview may reuse
    reused = json.dumps({"mirrors": [{**json.loads(shadow("x").evidence)["mirrors"][0], "reused": True}]})
    assert shadow_points(shadow("x", evidence=reused)) and measured_probe(shadow("x", evidence=reused)) is None
    newcomer = ("airflow", "etl", "never_mirrored")  # no shadows of its own: the other tasks' runs, marked so
    fleet = past_mirrored_runs(store, newcomer)
    assert [(r.own, r.actual) for r in fleet] == [(False, run.actual)]
