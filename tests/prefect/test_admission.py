"""Memory admission: enforce-mode tasks hold slots of a memory-sized global concurrency limit."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from mirrorscale.plugins.prefect import MemoryAdmission, PredictiveTaskRunner, mirrorscale_policy
from mirrorscale.plugins.prefect.admission import predicted_need
from mirrorscale.policy import TaskPolicy

MiB = 1024 * 1024
CAPACITY = 100 * MiB
pytestmark = pytest.mark.usefixtures("prefect_api")


def test_predicted_need_adds_headroom_and_clamps() -> None:
    policy = TaskPolicy.model_validate({"headroom": 0.5, "memory": {"max_allowed": 100}, "default_memory": 10})
    assert predicted_need(policy, None) == (15, "policy default_memory (no history), +50% headroom")
    assert predicted_need(policy, 80)[0] == 100  # 120 clamped to max_allowed
    assert predicted_need(TaskPolicy(), None)[0] is None


@mirrorscale_policy(mode="enforce", default_memory="40MiB", headroom=0)
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
    assert all(t.allocated_memory_bytes is None and "admission" not in t.features for t in unheld)
    assert _max_overlap(held, lambda t: t.allocated_memory_bytes) <= CAPACITY  # at most 2 x 40 MiB at once
    assert _max_overlap(held, lambda t: 1) == 2  # ... and two did run together
    assert _max_overlap(unheld, lambda t: 1) >= 3  # observe-mode tasks are not held back
    assert max(t.features["admission"]["waited_seconds"] for t in held) > 0.3


@mirrorscale_policy(mode="enforce", default_memory="32MiB", headroom=0, features=["mib"])
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
