"""The allocator without a database: bounds, capacity plan, OOM bump, reasons, modes, caching."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mirrorscale.allocator import Allocator, Request, plan, pool_size, waves
from mirrorscale.policy import PolicySet
from mirrorscale.store.models import Allocation, ResourceShadow

MIB, GIB = 2**20, 2**30
KEY = ("airflow", "etl", "transform")
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class FakeStore:
    """The three store calls the allocator makes, over an in-memory list of traces."""

    def __init__(self, traces=(), shadow=None) -> None:
        self.traces = list(traces)
        self.shadow = shadow
        self.saved: list[tuple] = []
        self.fetched: list[int] = []

    def traces_since(self, key, after, *, limit=200):
        rows = sorted((t for t in self.traces if after is None or t.started_at >= after),
                      key=lambda t: (t.started_at, t.id))
        rows = rows[:limit] if after is not None else rows[-limit:]
        self.fetched.append(len(rows))
        return rows

    def latest_shadow(self, key):
        return self.shadow

    def save(self, key, record):
        record.id = len(self.saved) + 1
        self.saved.append((key, record))
        return record.id


def trace(i: int, peak: int = GIB, *, outcome: str = "success", run_id: str | None = None, allocated=None,
          wall: float = 60.0, cpu: float = 90.0, input_size: int | None = None, baseline: int = 0):
    return SimpleNamespace(id=i + 1, started_at=T0 + timedelta(hours=i), run_id=run_id or f"r{i}", outcome=outcome,
                           peak_rss_bytes=peak, wall_seconds=wall, cpu_seconds=cpu, input_size_bytes=input_size,
                           allocated_memory_bytes=allocated, features={"baseline_rss_bytes": baseline})


def history(n: int = 30, peak: int = GIB, **kw):
    return [trace(i, peak, **kw) for i in range(n)]


def policies(**defaults) -> PolicySet:
    return PolicySet.from_mapping(defaults, environ={})


def shadow(value: int, *, band: float = 0.05, age: timedelta = timedelta(minutes=5), outcome: str = "ok"):
    return ResourceShadow(id=7, created_at=datetime.now(timezone.utc) - age, outcome=outcome, sample_fraction=0.05,
                          predicted_peak_rss_bytes=value, predicted_peak_rss_low=int(value * (1 - band)),
                          predicted_peak_rss_high=int(value * (1 + band)), predicted_cpu_seconds=120.0,
                          predicted_wall_seconds=60.0)


# -- bounds (property) -----------------------------------------------------

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(level=st.integers(10 * MIB, 64 * GIB), lo=st.integers(0, 16 * GIB), span=st.integers(0, 16 * GIB),
       headroom=st.floats(0, 2), with_shadow=st.booleans(), oom=st.booleans())
def test_memory_always_within_policy_bounds(level, lo, span, headroom, with_shadow, oom) -> None:
    traces = history(8, level)
    if oom:
        traces.append(trace(8, level, outcome="oom_killed", allocated=level))
    store = FakeStore(traces, shadow(level // 2, band=0.01) if with_shadow else None)
    allocator = Allocator(store, policies(mode="recommend", headroom=headroom,
                                          memory={"min_allowed": lo, "max_allowed": lo + span}))
    allocation = allocator.decide(KEY, "next")
    assert lo <= allocation.memory_bytes <= lo + span
    assert allocation.pool_slots >= 1


@settings(max_examples=40, deadline=None)
@given(cores=st.floats(0.01, 64), lo=st.floats(0, 8), span=st.floats(0, 8), plo=st.integers(-5, 20),
       pspan=st.integers(0, 20))
def test_cpu_and_priority_within_policy_bounds(cores, lo, span, plo, pspan) -> None:
    store = FakeStore(history(5, GIB, cpu=60.0 * cores))
    allocator = Allocator(store, policies(mode="recommend", cpu={"min_allowed": lo, "max_allowed": lo + span},
                                          priority={"min_allowed": plo, "max_allowed": plo + pspan}))
    allocation = allocator.decide(KEY, "next")
    assert lo - 1e-9 <= allocation.cpu <= lo + span + 1e-9
    assert plo <= allocation.priority_weight <= plo + pspan


# -- capacity plan (property + examples) -----------------------------------

def alloc(memory: int, priority: int = 1) -> Allocation:
    return Allocation(run_id="r", mode="enforce", memory_bytes=memory, priority_weight=priority, reason="sized",
                      executor_options={})


@settings(max_examples=200, deadline=None)
@given(memories=st.lists(st.integers(1, 20 * GIB), max_size=25), capacity=st.integers(1, 24 * GIB),
       priorities=st.lists(st.integers(0, 10), min_size=25, max_size=25))
def test_plan_never_runs_more_memory_at_once_than_the_capacity(memories, capacity, priorities) -> None:
    decisions = [alloc(m, p) for m, p in zip(memories, priorities)]
    planned = plan(decisions, capacity)
    assert [a.memory_bytes for a in planned] == memories  # never shrunk
    by_wave: dict[int, int] = {}
    for a in planned:
        info = a.executor_options["plan"]
        if info["held"]:
            assert a.memory_bytes > capacity and info["wave"] is None
        else:
            by_wave[info["wave"]] = by_wave.get(info["wave"], 0) + a.memory_bytes
    assert all(total <= capacity for total in by_wave.values())
    assert sorted(by_wave) == list(range(1, len(by_wave) + 1))


def test_plan_splits_into_waves_and_says_so() -> None:
    decisions = [alloc(m * GIB) for m in (6, 5, 4, 3)]
    placed, held = waves(decisions, 10 * GIB)
    assert [[a.memory_bytes // GIB for a in w] for w in placed] == [[6, 4], [5, 3]] and held == []
    plan(decisions, 10 * GIB)
    assert "wave 2 of 2" in decisions[1].reason and "capacity 10 GiB" in decisions[1].reason


def test_plan_leaves_a_fitting_set_alone_and_holds_a_task_bigger_than_everything() -> None:
    fits = plan([alloc(4 * GIB), alloc(3 * GIB)], 10 * GIB)
    assert all(a.reason == "sized" and a.executor_options["plan"]["wave"] == 1 for a in fits)
    big, small = plan([alloc(12 * GIB), alloc(2 * GIB)], 10 * GIB)
    assert big.executor_options["plan"]["held"] and "held" in big.reason
    assert small.executor_options["plan"]["wave"] == 1


def test_higher_priority_goes_in_the_first_wave() -> None:
    low, high = alloc(6 * GIB, priority=1), alloc(6 * GIB, priority=9)
    plan([low, high], 10 * GIB)
    assert high.executor_options["plan"]["wave"] == 1 and low.executor_options["plan"]["wave"] == 2


def test_pool_size_never_admits_more_than_the_capacity() -> None:
    assert pool_size(10 * GIB, 3 * GIB) == 3  # 9 GiB of slots: a full pool stays under 10 GiB


def test_decide_all_plans_before_storing() -> None:
    store = FakeStore(history(10, 4 * GIB))
    allocator = Allocator(store, policies(mode="enforce", headroom=0.0), capacity=10 * GIB)
    decided = allocator.decide_all([Request(KEY, f"run{i}") for i in range(3)])
    assert len(store.saved) == 3 and all("wave" in a.executor_options["plan"] for _, a in store.saved)
    assert max(a.executor_options["plan"]["wave"] for a in decided) >= 2


# -- OOM bump --------------------------------------------------------------

def test_oom_of_this_run_bumps_and_says_so() -> None:
    traces = history(20, GIB) + [trace(20, int(1.5 * GIB), outcome="oom_killed", run_id="big", allocated=2 * GIB)]
    allocation = Allocator(FakeStore(traces), policies(mode="recommend", headroom=0.0)).decide(
        KEY, "big", try_number=2)
    assert allocation.memory_bytes >= int(1.2 * 2 * GIB)
    assert allocation.source == "oom-bump" and "OOM bump: this run was killed 1x at 2 GiB" in allocation.reason
    assert allocation.try_number == 2


def test_small_oom_bumps_by_at_least_100_mib() -> None:
    traces = history(3, 100 * MIB) + [trace(3, 100 * MIB, outcome="oom_killed", allocated=200 * MIB)]
    allocation = Allocator(FakeStore(traces), policies(mode="recommend", headroom=0.0)).decide(KEY, "next")
    assert allocation.memory_bytes >= 300 * MIB and "OOM bump: the task's latest run" in allocation.reason


def test_an_oom_on_a_much_bigger_input_does_not_bump_a_small_one() -> None:
    """A fan-out instance killed on a big item says nothing about a small item's next run."""
    traces = [trace(i, GIB, input_size=10**8) for i in range(20)]
    traces.append(trace(20, 4 * GIB, outcome="oom_killed", allocated=3 * GIB, input_size=10**9))
    allocator = Allocator(FakeStore(traces), policies(mode="recommend", headroom=0.0))
    small = allocator.decide(KEY, "small", features={"input_size_bytes": 10**8})
    assert "OOM" not in small.reason and small.memory_bytes < 2 * GIB
    big = allocator.decide(KEY, "big", features={"input_size_bytes": 10**9})
    assert big.source == "oom-bump" and big.memory_bytes >= int(1.2 * 3 * GIB)


def test_no_bump_once_a_later_run_succeeded() -> None:
    traces = history(20, GIB)
    traces.insert(10, trace(100, GIB, outcome="oom_killed", allocated=GIB))
    traces[10].started_at = T0 + timedelta(hours=9, minutes=30)
    allocation = Allocator(FakeStore(traces), policies(mode="recommend")).decide(KEY, "next")
    assert allocation.source == "history" and "OOM" not in allocation.reason


# -- explanation, sources, cold start --------------------------------------

def test_reason_is_one_line_with_every_step() -> None:
    store = FakeStore(history(30, int(1.8 * GIB)))
    pol = policies(mode="recommend", headroom=0.15, memory={"min_allowed": "256MiB", "max_allowed": "8GiB"},
                   pool="mem", pool_slot_memory="1GiB")
    allocation = Allocator(store, pol).decide(KEY, "next")
    reason = allocation.reason
    assert "\n" not in reason
    for part in ("history of 30 run(s)", "(+15% headroom)", "within [256 MiB, 8 GiB]", "pool slot(s) of pool mem",
                 "of 1 GiB", "priority"):
        assert part in reason, part
    assert allocation.pool_slots == -(-allocation.memory_bytes // GIB) and allocation.pool == "mem"


def test_bounds_clamp_is_explained() -> None:
    pol = policies(mode="recommend", memory={"max_allowed": "1GiB"})
    allocation = Allocator(FakeStore(history(10, 2 * GIB)), pol).decide(KEY, "next")
    assert allocation.memory_bytes == GIB and "capped at max_allowed 1 GiB" in allocation.reason


def test_a_tiny_history_never_gives_less_than_the_floor_unless_the_policy_allows_it() -> None:
    tiny = history(10, 40 * 1024)  # a task whose measured rise is 40 KiB: its guard must not stop it for 1 MiB
    allocation = Allocator(FakeStore(tiny), policies(mode="enforce")).decide(KEY, "next")
    assert allocation.memory_bytes == 16 * MIB and "raised to the floor 16 MiB" in allocation.reason
    opted_out = Allocator(FakeStore(tiny), policies(mode="enforce", memory={"min_allowed": 0})).decide(KEY, "next")
    assert opted_out.memory_bytes < MIB and "within [0 B, inf]" in opted_out.reason
    own = Allocator(FakeStore(tiny), policies(mode="enforce", default_memory="4MiB")).decide(KEY, "next")
    assert own.memory_bytes == 4 * MIB  # the task's own smaller figure is the floor, never raised


def test_a_small_task_is_sized_from_its_own_usage_not_the_replays_250_mib_floor() -> None:
    from mirrorscale.allocator.snapshot import model_state, restore

    allocator = Allocator(FakeStore(history(30, 20 * MIB)), policies(mode="enforce", headroom=0.1))
    allocation = allocator.decide(KEY, "next")
    assert 20 * MIB < allocation.memory_bytes < 32 * MIB, allocation.reason
    state = model_state(allocator.model(KEY))
    state["sizer"]["params"]["floor"] = 250 * MIB  # a snapshot written with the sizer's own floor
    assert restore(state, method="mirrorscale").sizer.floor == 0.0


def test_fresh_narrow_shadow_wins_and_stale_one_does_not() -> None:
    noisy = [trace(i, int(GIB * (1.6 if i % 2 else 0.7))) for i in range(30)]
    pol = policies(mode="recommend", headroom=0.0)
    won = Allocator(FakeStore(noisy, shadow(3 * GIB, band=0.05)), pol).decide(KEY, "next")
    assert won.source == "shadow" and won.shadow_id == 7 and "shadow wins" in won.reason
    assert won.memory_bytes == int(3 * GIB * 1.05)  # the high end of its band
    assert won.cpu == 2.0  # 120 CPU s over 60 wall s
    stale = Allocator(FakeStore(noisy, shadow(3 * GIB, age=timedelta(days=2))), pol).decide(KEY, "next")
    assert stale.source == "history" and "shadow stale" in stale.reason


def test_wide_shadow_loses_to_a_tight_history() -> None:
    steady = history(30, GIB)
    allocation = Allocator(FakeStore(steady, shadow(3 * GIB, band=0.6)), policies(mode="recommend")).decide(KEY, "n")
    assert allocation.source == "history" and "history wins" in allocation.reason


def test_off_the_predicted_path_keeps_history() -> None:
    noisy = [trace(i, int(GIB * (1.6 if i % 2 else 0.7))) for i in range(30)]
    allocation = Allocator(FakeStore(noisy, shadow(3 * GIB)), policies(mode="recommend")).decide(
        KEY, "next", features={"on_path": False})
    assert allocation.source == "history" and "off the predicted path" in allocation.reason


def test_shadow_adds_the_process_baseline_of_full_peak_traces() -> None:
    noisy = [trace(i, int(GIB * (1.6 if i % 2 else 0.7)), baseline=150 * MIB) for i in range(30)]
    allocation = Allocator(FakeStore(noisy, shadow(GIB, band=0.0)), policies(mode="recommend", headroom=0.0)).decide(
        KEY, "next")
    assert allocation.source == "shadow" and "baseline 150 MiB" in allocation.reason
    assert allocation.memory_bytes == GIB + 150 * MIB
    cold = Allocator(FakeStore([], shadow(GIB, band=0.0)), policies(mode="recommend", headroom=0.0)).decide(KEY, "n")
    assert cold.source == "shadow" and cold.memory_bytes == GIB and "no history yet" in cold.reason


def test_cold_start_uses_default_memory_or_nothing() -> None:
    allocation = Allocator(FakeStore(), policies(mode="enforce", default_memory="2GiB", headroom=0.0)).decide(KEY, "r")
    assert allocation.source == "default" and allocation.memory_bytes == 2 * GIB and "cold start" in allocation.reason
    assert Allocator(FakeStore(), policies(mode="enforce")).decide(KEY, "r") is None


def test_runs_without_a_memory_rise_still_teach_cpu_and_priority() -> None:
    """A task run in a thread of a long-lived process (Prefect's thread runner) can reuse freed
    heap and show no peak RSS rise; its timing is still learned, its memory is not guessed."""
    no_rise = history(6, 0, wall=1800.0, cpu=5400.0)
    allocation = Allocator(FakeStore(no_rise), policies(mode="enforce", default_memory="2GiB", headroom=0.0)).decide(
        KEY, "next")
    assert allocation.source == "default" and allocation.memory_bytes == 2 * GIB
    assert allocation.cpu == 3.0  # 5400 CPU s over 1800 wall s
    unknown = Allocator(FakeStore(), policies(mode="enforce", default_memory="2GiB", headroom=0.0)).decide(KEY, "n")
    assert unknown.cpu is None and allocation.priority_weight > unknown.priority_weight  # a 30-minute task ranks higher


# -- modes -----------------------------------------------------------------

@pytest.mark.parametrize(("mode", "stored", "applied"),
                         [("observe", False, False), ("recommend", True, False), ("enforce", True, True)])
def test_modes(mode: str, stored: bool, applied: bool) -> None:
    store = FakeStore(history(10))
    allocation = Allocator(store, policies(mode=mode)).decide(KEY, "next")
    assert allocation.mode == mode and allocation.applied is applied
    assert bool(store.saved) is stored


# -- the rest of the allocation ---------------------------------------------

def test_priority_puts_long_large_and_critical_tasks_first() -> None:
    pol = policies(mode="recommend")
    short = Allocator(FakeStore(history(10, GIB, wall=30)), pol).decide(KEY, "r")
    long = Allocator(FakeStore(history(10, 4 * GIB, wall=3600)), pol).decide(KEY, "r")
    critical = Allocator(FakeStore(history(10, GIB, wall=30)), pol).decide(KEY, "r", features={"critical_path": True})
    assert short.priority_weight < long.priority_weight
    assert critical.priority_weight == 2 * short.priority_weight


def test_queue_is_the_policy_queue_else_a_size_class_only_when_routing() -> None:
    traces = history(10, 3 * GIB)
    assert Allocator(FakeStore(traces), policies(mode="recommend", queue="q")).decide(KEY, "r").queue == "q"
    plain = Allocator(FakeStore(traces), policies(mode="recommend")).decide(KEY, "r")
    assert plain.queue is None and plain.executor_options["size_class"] == "medium"
    routed = Allocator(FakeStore(traces), policies(mode="recommend"), route_by_size=True).decide(KEY, "r")
    assert routed.queue == "medium"


def test_model_is_cached_and_fed_only_new_traces() -> None:
    store = FakeStore(history(50))
    allocator = Allocator(store, policies(mode="recommend"))
    allocator.decide(KEY, "a")
    model = allocator.model(KEY)
    assert model.runs == 50
    store.fetched.clear()
    store.traces.append(trace(50, 2 * GIB))
    allocator.decide(KEY, "b")
    assert model.runs == 51 and allocator.model(KEY) is model
    assert max(store.fetched) <= 2  # the newest seen trace (same start) plus the new one, never the history


def test_without_an_input_size_the_latest_runs_is_assumed() -> None:
    growing = [trace(i, int(GIB * 1.04**i), input_size=int(10**8 * 1.04**i)) for i in range(30)]
    allocation = Allocator(FakeStore(growing), policies(mode="recommend", headroom=0.0)).decide(KEY, "next")
    assert allocation.memory_bytes >= growing[-1].peak_rss_bytes
    assert "input size not given: the latest run's" in allocation.reason
