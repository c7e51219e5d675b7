"""DaskTaskRunner inside PredictiveTaskRunner: traces, and memory as a Dask worker resource."""

from __future__ import annotations

import time
from typing import Any

import pytest
from prefect import flow, task

from mirrorscale.plugins.prefect import PredictiveTaskRunner, mirrorscale_policy

prefect_dask = pytest.importorskip("prefect_dask")
MiB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("prefect_api")


@mirrorscale_policy(mode="enforce", default_memory="40MiB", headroom=0)
@task
def dask_hold(i: int) -> int:
    time.sleep(0.5)
    return i


@flow(name="dask-resources", task_runner=PredictiveTaskRunner(
    inner=prefect_dask.DaskTaskRunner(cluster_kwargs={
        "n_workers": 1, "threads_per_worker": 4, "processes": False, "dashboard_address": None,
        "resources": {"MEMORY": 100 * MiB}}),
    dask_resource="MEMORY"))
def dask_flow(n: int) -> list[int]:
    return [f.result() for f in dask_hold.map(range(n))]


def test_dask_runs_annotated_tasks_no_more_concurrently_than_resources_allow(traces_of: Any) -> None:
    assert dask_flow(5) == [0, 1, 2, 3, 4]
    traces = traces_of("dask-resources")
    assert len(traces) == 5
    assert {t.features["admission"]["via"] for t in traces} == {"dask-resources"}
    assert {t.allocated_memory_bytes for t in traces} == {40 * MiB}
    assert {t.features["runner"] for t in traces} == {"dask"}
    events = sorted([(t.started_at, 1) for t in traces] + [(t.ended_at, -1) for t in traces])
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    assert most == 2  # 4 threads, but 100 MiB of MEMORY fits two 40 MiB tasks
