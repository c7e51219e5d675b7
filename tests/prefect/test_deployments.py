"""run_sized_deployment: job variables for a deployment run, sized from the flow's history."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from mirrorscale.plugins.prefect.deployments import kubernetes_quantity, run_sized_deployment
from mirrorscale.policy import PolicySet

MiB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("prefect_api")


def _seed(store: Any, flow_name: str) -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i, (peak_mib, cpu) in enumerate([(200, 0.2), (300, 0.9)]):
        store.record_trace(engine="prefect", pipeline_id=flow_name, task_id="work", run_id=f"seed-{i}",
                           started_at=start + timedelta(minutes=i), ended_at=start + timedelta(minutes=i, seconds=2),
                           peak_rss_bytes=10 * MiB, cpu_seconds=cpu, wall_seconds=2.0, source="test",
                           features={"process_peak_rss_bytes": peak_mib * MiB})


def test_quantities_round_up_to_whole_mebibytes() -> None:
    assert (kubernetes_quantity(1), kubernetes_quantity(MiB), kubernetes_quantity(MiB + 1)) == ("1Mi", "1Mi", "2Mi")


def test_deployment_run_gets_job_variables_in_enforce_mode_only(store: Any) -> None:
    from prefect.client.orchestration import get_client
    from sqlalchemy import select

    from mirrorscale.store.models import Allocation, Task

    _seed(store, "sized-flow")
    with get_client(sync_client=True) as client:
        flow_id = client.create_flow_from_name("sized-flow")
        client.create_deployment(flow_id=flow_id, name="nightly")
    enforce = PolicySet.from_mapping({"tasks": {"sized-flow.*": {"mode": "enforce", "headroom": 0.5}}}, environ={})
    run = run_sized_deployment("sized-flow/nightly", {}, store=store, policies=enforce)
    assert run.job_variables == {"memory": "450Mi", "cpu": "0.5"}  # 300 MiB + 50 %; 0.9 s CPU in 2 s wall

    observe = PolicySet.from_mapping({}, environ={})
    plain = run_sized_deployment("sized-flow/nightly", {}, store=store, policies=observe,
                                 job_variables={"image": "mine"})
    assert plain.job_variables == {"image": "mine"}  # computed and recorded, not applied

    with store.reading() as session:
        rows = list(session.scalars(select(Allocation).join(Task).where(Task.pipeline_id == "sized-flow")
                                    .order_by(Allocation.id)))
    assert [(r.run_id, r.mode, r.applied) for r in rows] == [(str(run.id), "enforce", True),
                                                             (str(plain.id), "observe", False)]
    assert rows[0].memory_bytes == 450 * MiB and "largest process peak 300 MiB" in rows[0].reason
