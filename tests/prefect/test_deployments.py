"""Deployment runs sized by the allocator for their parameters, in Prefect's Kubernetes job variable shape."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from prefect import flow, task
from prefect.task_runners import ProcessPoolTaskRunner

from mirrorscale.plugins.prefect import PredictiveTaskRunner
from mirrorscale.plugins.prefect.deployments import (
    kubernetes_cpu,
    kubernetes_quantity,
    run_sized_deployment,
    size_flow_run,
)
from mirrorscale.plugins.prefect.flow_runs import flow_key, parameters_size
from mirrorscale.policy import PolicySet

MiB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("prefect_api")


def kubernetes_base_job_template() -> dict[str, Any]:
    """The base job template of Prefect's Kubernetes worker, as Prefect ships it for its server."""
    import prefect.server.api

    views = Path(prefect.server.api.__file__).parent / "collections_data" / "views"
    metadata = json.loads((views / "aggregate-worker-metadata.json").read_text())
    return metadata["prefect-kubernetes"]["kubernetes"]["default_base_job_configuration"]


def _seed_flow_runs(store: Any, flow_name: str) -> None:
    """Past runs of the flow: the pod's peak grows with the size of the parameters (100 MiB + 5 MiB per KiB)."""
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i, input_kib in enumerate([10, 20, 30, 40] * 4):  # 10 runs or more: the selector trusts the input size
        store.record_trace(engine="prefect-flow", pipeline_id=flow_name, task_id="flow-run", run_id=f"seed-{i}",
                           started_at=start + timedelta(minutes=i), ended_at=start + timedelta(minutes=i, seconds=4),
                           input_size_bytes=input_kib * 1024, peak_rss_bytes=(100 + 5 * input_kib) * MiB,
                           cpu_seconds=2.0, wall_seconds=4.0, source="test")


def _rendered_resources(flow_run: Any, pool_name: str) -> dict[str, Any]:
    """What a worker of the pool would put into the job manifest's container for ``flow_run``."""
    from prefect.client.orchestration import get_client
    from prefect.workers.base import BaseJobConfiguration

    class KubernetesShapedConfiguration(BaseJobConfiguration):
        job_manifest: dict[str, Any]

    async def render() -> dict[str, Any]:
        async with get_client() as client:
            pool = await client.read_work_pool(pool_name)
            run = await client.read_flow_run(flow_run.id)
            config = await KubernetesShapedConfiguration.resolve_for_flow_run(
                run, client=client, work_pool=pool, worker_name="test-worker")
        return config.job_manifest["spec"]["template"]["spec"]["containers"][0]["resources"]

    return asyncio.run(render())


def test_kubernetes_quantities_round_up() -> None:
    assert (kubernetes_quantity(1), kubernetes_quantity(MiB), kubernetes_quantity(MiB + 1)) == ("1Mi", "1Mi", "2Mi")
    assert (kubernetes_cpu(0.5), kubernetes_cpu(0.05), kubernetes_cpu(2.0), kubernetes_cpu(1.25)) == \
        ("500m", "50m", "2", "1250m")


def test_deployment_run_is_sized_by_the_allocator_for_its_parameters(store: Any) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from sqlalchemy import select

    from mirrorscale.allocator import Allocator
    from mirrorscale.store.models import Allocation, Task

    _seed_flow_runs(store, "sized-flow")
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="k8s-pool", type="kubernetes",
                                               base_job_template=kubernetes_base_job_template()))
        flow_id = client.create_flow_from_name("sized-flow")
        client.create_deployment(flow_id=flow_id, name="nightly", work_pool_name="k8s-pool")
    enforce = PolicySet.from_mapping({"tasks": {"sized-flow.*": {"mode": "enforce", "headroom": 0.2}}}, environ={})
    small, large = {"paths": ["x" * 1000] * 10}, {"paths": ["x" * 1000] * 40}  # ~10 KiB and ~40 KiB

    runs = [run_sized_deployment("sized-flow/nightly", params, store=store, policies=enforce)
            for params in (small, large)]

    allocator = Allocator(store, enforce, use_stored_shadow=False)  # the runner's decision, made directly
    for run, params in zip(runs, (small, large)):
        expected = allocator.decide(flow_key("sized-flow"), "check", save=False,
                                    features={"input_size_bytes": parameters_size(params)})
        memory = kubernetes_quantity(expected.memory_bytes)
        assert run.job_variables == {"memory_request": memory, "memory_limit": memory,
                                     "cpu_request": kubernetes_cpu(expected.cpu)}
        resources = _rendered_resources(run, "k8s-pool")  # what the Kubernetes worker would apply
        assert resources["requests"] == {"memory": memory, "cpu": kubernetes_cpu(expected.cpu)}
        assert resources["limits"]["memory"] == memory
    small_mib, large_mib = (int(r.job_variables["memory_request"][:-2]) for r in runs)
    assert large_mib > small_mib  # four times the input: more memory (the history grows with the input)

    with store.reading() as session:
        rows = list(session.scalars(select(Allocation).join(Task).where(Task.pipeline_id == "sized-flow")
                                    .order_by(Allocation.id)))
    assert [(r.run_id, r.mode, r.applied) for r in rows] == [(str(runs[0].id), "enforce", True),
                                                             (str(runs[1].id), "enforce", True)]
    assert rows[1].reason.startswith("parameters ") and "headroom" in rows[1].reason
    assert rows[1].executor_options["job_variables"] == runs[1].job_variables


def test_observe_mode_applies_nothing_and_the_callers_variables_win(store: Any) -> None:
    from prefect.client.orchestration import get_client

    _seed_flow_runs(store, "observed-flow")
    with get_client(sync_client=True) as client:
        client.create_deployment(flow_id=client.create_flow_from_name("observed-flow"), name="nightly")
    observe = PolicySet.from_mapping({}, environ={})
    sizing = size_flow_run("observed-flow", {"rows": []}, store=store, policies=observe)
    assert sizing.mode == "observe" and sizing.memory_bytes and "memory_request" in sizing.job_variables
    run = run_sized_deployment("observed-flow/nightly", {}, store=store, policies=observe,
                               job_variables={"image": "mine"})
    assert run.job_variables == {"image": "mine"}
    forced = run_sized_deployment("observed-flow/nightly", {}, store=store, policies=observe, apply=True,
                                  job_variables={"memory_limit": "8Gi"})
    assert forced.job_variables["memory_limit"] == "8Gi" and forced.job_variables["memory_request"].endswith("Mi")


def test_unavailable_store_creates_the_run_with_the_callers_variables_and_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from prefect.client.orchestration import get_client

    from mirrorscale.store.history import HistoryStore

    with get_client(sync_client=True) as client:
        client.create_deployment(flow_id=client.create_flow_from_name("storeless-flow"), name="nightly")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")

    class Unreachable:
        def __getattr__(self, name: str) -> Any:
            return getattr(HistoryStore.open(f"sqlite:///{blocker}/store.sqlite"), name)

    with caplog.at_level(logging.WARNING, logger="mirrorscale.prefect"):
        run = run_sized_deployment("storeless-flow/nightly", {}, store=Unreachable(),
                                   job_variables={"image": "mine"})
    assert run.job_variables == {"image": "mine"}
    messages = [r.getMessage() for r in caplog.records if r.name == "mirrorscale.prefect"]
    assert len(messages) == 1 and "could not size the run of storeless-flow/nightly" in messages[0]


@task
def fill(mib: int) -> int:
    buffer = bytearray(mib * MiB)
    buffer[::4096] = b"\x01" * len(buffer[::4096])
    return len(buffer)


@flow(name="footprint-flow", task_runner=PredictiveTaskRunner(inner=ProcessPoolTaskRunner(max_workers=1)))
def footprint_flow(rows: list[str]) -> int:
    return fill.submit(len(rows)).result()


def test_each_flow_run_records_its_footprint_for_deployment_sizing(store: Any) -> None:
    rows = ["x" * 100] * 48
    state = footprint_flow(rows, return_state=True)
    assert state.result() == 48 * MiB
    traces = [t for t in store.recent_traces(limit=100_000) if t.task.engine == "prefect-flow"
              and t.task.pipeline_id == "footprint-flow"]
    assert len(traces) == 1
    flow_run = traces[0]
    assert flow_run.run_id == str(state.state_details.flow_run_id) and flow_run.task.task_id == "flow-run"
    assert flow_run.input_size_bytes == parameters_size({"rows": rows}) and flow_run.outcome == "success"
    workers = flow_run.features["worker_peaks_bytes"]
    assert len(workers) == 1 and min(workers.values()) >= 48 * MiB  # the worker held the task's 48 MiB
    assert flow_run.peak_rss_bytes == flow_run.features["flow_process_peak_bytes"] + sum(workers.values())
    assert flow_run.features["tasks"] == 1 and flow_run.features["runner"] == "processpool"
