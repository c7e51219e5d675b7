"""RayTaskRunner inside PredictiveTaskRunner: Ray's memory/num_cpus options from the allocation.

A real local Ray instance (2 CPUs, 200 MiB of Ray ``memory``, the smallest object
store Ray accepts) is started by the RayTaskRunner for the flow run.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from prefect import flow, task

from mirrorscale.plugins.prefect import PredictiveTaskRunner, mirrorscale_policy

prefect_ray = pytest.importorskip("prefect_ray")
MiB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("prefect_api")


@mirrorscale_policy(mode="enforce", default_memory="90MiB", headroom=0, cpu={"min_allowed": 0.5})
@task
def ray_hold(i: int) -> dict[str, Any]:
    import ray

    time.sleep(1.0)
    return {"i": i, "assigned": ray.get_runtime_context().get_assigned_resources()}


@flow(name="ray-options", task_runner=PredictiveTaskRunner(inner=prefect_ray.RayTaskRunner(init_kwargs={
    "num_cpus": 2, "_memory": 200 * MiB, "object_store_memory": 80 * MiB, "include_dashboard": False,
    "log_to_driver": False})))
def ray_flow(n: int) -> list[dict[str, Any]]:
    return [f.result() for f in ray_hold.map(range(n))]


def test_ray_runs_tasks_with_their_allocation_as_memory_and_num_cpus(traces_of: Any) -> None:
    results = ray_flow(4)
    assert [r["i"] for r in results] == [0, 1, 2, 3]
    for r in results:  # what Ray itself reserved for each task while it ran
        assert r["assigned"]["memory"] == pytest.approx(90 * MiB) and r["assigned"]["CPU"] == pytest.approx(0.5)
    traces = traces_of("ray-options")
    assert len(traces) == 4
    assert {t.features["runner"] for t in traces} == {"ray"}
    assert {t.features["measured_in"] for t in traces} == {"worker process"}
    assert {t.allocated_memory_bytes for t in traces} == {90 * MiB}
    assert {(t.features["admission"]["via"], t.features["admission"]["units"], t.features["admission"]["cpu"])
            for t in traces} == {("ray-options", 90 * MiB, 0.5)}
    events = sorted([(t.started_at, 1) for t in traces] + [(t.ended_at, -1) for t in traces])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    assert most <= 2  # 4 half-core tasks fit 2 CPUs, but 200 MiB of Ray memory fits only two 90 MiB tasks
