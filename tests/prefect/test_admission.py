"""Memory admission: enforce-mode tasks hold slots of a memory-sized global concurrency limit."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from mirrorscale.plugins.prefect import MemoryAdmission, PredictiveTaskRunner, mirrorscale_policy

MiB = 1024 * 1024
CAPACITY = 100 * MiB
pytestmark = pytest.mark.usefixtures("prefect_api")


@mirrorscale_policy(mode="enforce", default_memory="40MiB", headroom=0,
                    memory={"min_allowed": "40MiB", "max_allowed": "40MiB"})  # every run: 40 MiB
@task
def hold(i: int) -> int:
    time.sleep(0.5)
    return i


@task
def free(i: int) -> int:  # mode observe: never waits for memory
    time.sleep(0.5)
    return i


@flow(name="admission", task_runner=PredictiveTaskRunner(
    inner=ThreadPoolTaskRunner(max_workers=8),
    admission=MemoryAdmission(capacity=CAPACITY, name="mirrorscale-memory-test")))
def admission_flow(n: int) -> list[int]:
    held, unheld = hold.map(range(n)), free.map(range(n))
    return [f.result() for f in held] + [f.result() for f in unheld]


@mirrorscale_policy(mode="enforce", default_memory="40MiB", headroom=0,
                    memory={"min_allowed": "40MiB", "max_allowed": "40MiB"})
@task
async def hold_async(i: int) -> int:
    import asyncio

    await asyncio.sleep(0.5)
    return i


@flow(name="admission-async", task_runner=PredictiveTaskRunner(
    inner=ThreadPoolTaskRunner(max_workers=8),
    admission=MemoryAdmission(capacity=CAPACITY, name="mirrorscale-memory-async-test")))
def admission_async_flow(n: int) -> list[int]:
    return [f.result() for f in hold_async.map(range(n))]


def _max_overlap(traces: list[Any], weight: Any) -> int:
    """The largest sum of ``weight(trace)`` over traces running at one instant."""
    events = sorted([(t.started_at, 1, t) for t in traces] + [(t.ended_at, -1, t) for t in traces],
                    key=lambda e: (e[0], e[1]))  # at equal times, ends before starts
    running = best = 0
    for _, step, t in events:
        running += step * weight(t)
        best = max(best, running)
    return best


def test_running_allocations_stay_within_capacity(traces_of: Any) -> None:
    from prefect.client.orchestration import get_client

    assert admission_flow(5) == [0, 1, 2, 3, 4] * 2
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name("mirrorscale-memory-test")
    assert limit.limit == CAPACITY // MiB  # the limit's size is the capacity in MiB units
    traces = traces_of("admission")
    held = [t for t in traces if t.task.task_id == "hold"]
    unheld = [t for t in traces if t.task.task_id == "free"]
    assert len(held) == len(unheld) == 5
    assert {t.allocated_memory_bytes for t in held} == {40 * MiB}
    assert {t.features["admission"]["units"] for t in held} == {40}
    assert {t.features["allocation"]["mode"] for t in held} == {"enforce"}
    assert all(t.allocated_memory_bytes is None and "admission" not in t.features for t in unheld)
    assert _max_overlap(held, lambda t: t.allocated_memory_bytes) <= CAPACITY  # at most 2 x 40 MiB at once
    assert _max_overlap(held, lambda t: 1) == 2  # ... and two did run together
    assert _max_overlap(unheld, lambda t: 1) >= 3  # observe-mode tasks are not held back
    assert max(t.features["admission"]["waited_seconds"] for t in held) > 0.3


@mirrorscale_policy(mode="enforce", default_memory="32MiB", headroom=0, features=["mib"],
                    memory={"max_allowed": "32MiB"})
@task
def greedy(mib: int) -> int:
    chunks = []
    for _ in range(mib):  # grows in Python steps, so the guard's exception lands in time
        chunk = bytearray(MiB)
        chunk[::4096] = b"\x01" * len(chunk[::4096])
        chunks.append(chunk)
        time.sleep(0.002)
    return len(chunks)


@flow(name="oom-guard", task_runner=PredictiveTaskRunner(
    inner=ThreadPoolTaskRunner(max_workers=1),
    admission=MemoryAdmission(capacity="1GiB", name="mirrorscale-memory-oom-test")))
def oom_flow() -> tuple[Any, int]:
    over = greedy.submit(400)
    over.wait()
    return over.state, greedy.submit(8).result()


def test_a_task_over_its_allocation_is_stopped_and_recorded_as_oom(traces_of: Any) -> None:
    state, small = oom_flow()
    assert small == 8 and state.is_failed()
    assert "allocation of 32 MiB" in str(state.message) + repr(state.result(raise_on_failure=False))
    by_mib = {t.features["param.mib"]: t for t in traces_of("oom-guard")}
    assert by_mib[400].outcome == "oom_killed" and by_mib[8].outcome == "success"
    assert 32 * MiB < by_mib[400].peak_rss_bytes < 200 * MiB  # stopped long before it took 400 MiB
    assert by_mib[400].allocated_memory_bytes == 32 * MiB


@mirrorscale_policy(mode="enforce", headroom=0)
@task
def sized(rows: bytes) -> int:
    return len(rows)


@flow(name="sized-per-run", task_runner=PredictiveTaskRunner(
    inner=ThreadPoolTaskRunner(max_workers=2),
    admission=MemoryAdmission(capacity="4GiB", name="mirrorscale-memory-sized-test")))
def sized_flow(sizes: list[int]) -> list[int]:
    return [f.result() for f in sized.map([bytes(n) for n in sizes])]


def test_each_run_is_sized_by_the_allocator_from_its_own_input(store: Any, traces_of: Any) -> None:
    from datetime import datetime, timedelta, timezone

    import random

    start, rng = datetime(2026, 1, 1, tzinfo=timezone.utc), random.Random(1)
    for i in range(30):  # memory = 100 x input: inputs 1..12 MiB in random order, peaks 100..1200 MiB
        size = int(rng.uniform(1, 12) * MiB)
        store.record_trace(engine="prefect", pipeline_id="sized-per-run", task_id="sized", run_id=f"seed-{i}",
                           started_at=start + timedelta(hours=i), ended_at=start + timedelta(hours=i, seconds=1),
                           input_size_bytes=size, peak_rss_bytes=100 * size, cpu_seconds=0.1, wall_seconds=1.0,
                           source="test")
    assert sized_flow([2 * MiB, 10 * MiB]) == [2 * MiB, 10 * MiB]
    runs = {t.input_size_bytes: t for t in traces_of("sized-per-run") if not t.run_id.startswith("seed-")}
    small, large = runs[2 * MiB], runs[10 * MiB]
    for run in (small, large):
        allocation = run.features["allocation"]
        assert allocation["evidence"] == "history" and allocation["applied"]
        assert run.allocated_memory_bytes == allocation["memory_bytes"]
        assert run.features["admission"]["units"] == -(-allocation["memory_bytes"] // MiB)
    assert large.allocated_memory_bytes > 3 * small.allocated_memory_bytes  # sized from each run's input
    assert large.allocated_memory_bytes >= 1000 * MiB  # >= 100 x 10 MiB
    assert "model size" in large.features["allocation"]["reason"]  # the sizer's input-size model
    latest = store.latest_allocation(("prefect", "sized-per-run", "sized"))
    assert latest is not None and latest.run_id in {small.run_id, large.run_id}  # the decision is stored


@task
def plain_double(x: int) -> int:
    return 2 * x


def test_a_failing_allocator_warns_once_and_runs_like_the_inner_runner(monkeypatch: pytest.MonkeyPatch,
                                                                      caplog: pytest.LogCaptureFixture,
                                                                      traces_of: Any) -> None:
    import logging

    from mirrorscale.plugins.prefect import sizing

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("allocator exploded")

    monkeypatch.setattr(sizing, "decide_run", broken)
    enforced = mirrorscale_policy(mode="enforce", default_memory="1MiB")(task(lambda x: 2 * x, name="broken_sizing"))

    @flow(name="broken-allocator", task_runner=PredictiveTaskRunner(
        inner=ThreadPoolTaskRunner(max_workers=2),
        admission=MemoryAdmission(capacity="1GiB", name="mirrorscale-memory-broken-test")))
    def broken_flow(n: int) -> list[int]:
        return [f.result() for f in enforced.map(range(n))]

    with caplog.at_level(logging.WARNING, logger="mirrorscale.prefect"):
        assert broken_flow(3) == [0, 2, 4]  # 1 MiB would have been far too small for nothing: no guard ran
    warnings = [r.getMessage() for r in caplog.records if r.name == "mirrorscale.prefect"]
    assert len(warnings) == 1 and "could not size" in warnings[0] and "inner task runner" in warnings[0]
    traces = traces_of("broken-allocator")
    assert len(traces) == 3 and all("allocation" not in t.features and t.allocated_memory_bytes is None
                                    for t in traces)


def test_async_tasks_are_admitted_the_same_way_and_release_their_slots(traces_of: Any) -> None:
    from prefect.client.orchestration import get_client

    assert admission_async_flow(4) == [0, 1, 2, 3]
    held = traces_of("admission-async")
    assert len(held) == 4 and {t.features["admission"]["units"] for t in held} == {40}
    assert _max_overlap(held, lambda t: t.allocated_memory_bytes) <= CAPACITY
    assert max(t.features["admission"]["waited_seconds"] for t in held) > 0.3  # two waited for two
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name("mirrorscale-memory-async-test")
    assert limit.active_slots == 0  # every slot given back
