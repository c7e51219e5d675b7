"""A volatile enforce-mode task is mirrored on a sample of its input before it runs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import mirror_workload
import pytest
from prefect import flow, task
from prefect.task_runners import ThreadPoolTaskRunner

from mirrorscale.plugins.prefect import MemoryAdmission, PredictiveTaskRunner, mirrorscale_policy
from mirrorscale.plugins.prefect.mirroring import mirror_reference, plan_mirror
from mirrorscale.policy import TaskPolicy

MiB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("prefect_api")

grow = mirrorscale_policy(mode="enforce", mirror=True, sample_fraction=0.1, headroom=0.5)(task(mirror_workload.grow))


@flow(name="mirror-flow", task_runner=PredictiveTaskRunner(
    inner=ThreadPoolTaskRunner(max_workers=2),
    admission=MemoryAdmission(capacity="2GiB", name="mirrorscale-memory-mirror-test")))
def mirror_flow(n_rows: int) -> int:
    return grow.submit([bytes(64 * 1024)] * n_rows).result()


def _seed_growing_history(store: Any, flow_name: str, task_name: str, runs: int = 12) -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(runs):  # input and memory grow 8 % per run: a hotspot
        size = int(4 * MiB * 1.08**i)
        store.record_trace(engine="prefect", pipeline_id=flow_name, task_id=task_name, run_id=f"seed-{i}",
                           started_at=start + timedelta(hours=i), ended_at=start + timedelta(hours=i, seconds=1),
                           input_size_bytes=size, peak_rss_bytes=4 * size, cpu_seconds=0.1, wall_seconds=0.2,
                           source="test")


def test_references_and_plans() -> None:
    assert mirror_reference(mirror_workload.grow) == "mirror_workload:grow"
    assert mirror_reference(lambda: 1) is None
    policy = TaskPolicy.model_validate({"mode": "enforce", "mirror": True, "sample_fraction": 0.1})
    plan, why = plan_mirror(policy, mirror_workload.grow)
    assert plan is not None and plan.reference == "mirror_workload:grow" and "life cycle" in why
    plan, why = plan_mirror(policy, lambda rows: rows)
    assert plan is None and "not importable" in why
    plan, why = plan_mirror(TaskPolicy(), mirror_workload.grow)
    assert plan is None and "mirrors off" in why
    keyed = TaskPolicy.model_validate({"mode": "enforce", "mirror": True, "samplers": {"rows": "hash"}})
    plan, _ = plan_mirror(keyed, mirror_workload.grow)
    assert plan is not None and plan.samplers == (("rows", "hash"),)  # the policy's samplers reach the mirror


def test_volatile_task_is_mirrored_before_it_runs(store: Any, traces_of: Any) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from sqlalchemy import select

    from mirrorscale.store.models import ResourceShadow, Task

    _seed_growing_history(store, "mirror-flow", "grow")
    n_rows = 400  # 25 MiB of input: the task holds about 100 MiB
    assert mirror_flow(n_rows) == n_rows * 64 * 1024
    real = [t for t in traces_of("mirror-flow") if not t.run_id.startswith("seed-")]
    assert len(real) == 1
    trace = real[0]
    mirror = trace.features["mirror"]
    assert mirror["outcome"] == "ok" and mirror["shadow_id"] is not None
    with store.reading() as session:
        shadow = session.get(ResourceShadow, mirror["shadow_id"])
        task_id = session.scalar(select(Task.task_id).where(Task.id == shadow.task_pk))
    assert task_id == "grow" and shadow.run_id == trace.run_id
    assert shadow.created_at <= trace.started_at  # the mirror ran before the real task
    assert 0 < shadow.sample_fraction <= 0.1 and shadow.predicted_peak_rss_bytes > 40 * MiB
    lifecycle = trace.features["mirror_lifecycle"]
    assert lifecycle["state"] == "active" and lifecycle["mirror_now"]  # the life cycle created the mirror
    assert store.latest_mirror_state(("prefect", "mirror-flow", "grow")).state == "active"
    allocation = trace.features["allocation"]
    assert allocation["mode"] == "enforce" and allocation["applied"]
    assert allocation["evidence"] in {"mirror", "history"} and allocation["reason"]
    if allocation["evidence"] == "mirror":  # the allocator chose the shadow: sized from its upper estimate
        assert allocation["shadow_id"] == mirror["shadow_id"] and "mirror" in allocation["reason"]
        assert allocation["forecast_bytes"] >= shadow.predicted_peak_rss_high
    assert trace.allocated_memory_bytes == allocation["memory_bytes"] >= 1.5 * allocation["forecast_bytes"] - MiB
    assert trace.features["admission"]["units"] == -(-allocation["memory_bytes"] // MiB)  # whole MiB slots
    assert trace.outcome == "success" and trace.peak_rss_bytes >= 90 * MiB
    with get_client(sync_client=True) as client:
        progress = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["mirrorscale-mirror-grow"])))
    assert progress and progress[0].type == "progress" and progress[0].data == 100.0
