"""Start a deployment run with memory/CPU job variables sized from the flow's history.

For flows that run in their own container (a Kubernetes work pool, say) the pod's
size is set when the run is created, through ``job_variables``::

    from mirrorscale.plugins.prefect.deployments import run_sized_deployment

    flow_run = run_sized_deployment("growing-etl/daily", parameters={"day": 7})
    flow_run.job_variables   # {"memory": "612Mi", "cpu": "1"} in mode enforce

The work pool's base job template must use the variables (the names are
``memory_variable``/``cpu_variable``, ``"memory"`` and ``"cpu"`` by default), e.g.
``resources: {limits: {memory: "{{ memory }}", cpu: "{{ cpu }}"}}``.

The forecast is naive until the allocator exists: the largest whole-process peak
(``features["process_peak_rss_bytes"]``) among the flow's last recorded task runs,
plus the policy's headroom, clamped to its memory bounds; CPU is the largest
``cpu_seconds / wall_seconds`` of those runs, rounded up to a tenth of a core. The
policy is the one resolved for ``"<flow name>.*"``. Job variables are applied in mode
``enforce`` (or with ``apply=True``); the decision is stored as an ``Allocation``
either way, with its reason. Variables passed in ``job_variables`` always win.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from mirrorscale.policy import format_bytes

__all__ = ["FlowSizing", "kubernetes_quantity", "run_sized_deployment", "size_flow_run"]

WINDOW = 50
"""Recorded task runs of the flow the forecast looks at."""


@dataclass(frozen=True)
class FlowSizing:
    """The memory and CPU for one flow run, the job variables they make, and why."""

    memory_bytes: int | None
    cpu: float | None
    job_variables: dict[str, Any]
    mode: str
    reason: str


def kubernetes_quantity(n_bytes: int) -> str:
    """Bytes as a Kubernetes memory quantity in whole MiB, rounded up (``"612Mi"``)."""
    return f"{max(1, math.ceil(n_bytes / 1024**2))}Mi"


def _recent_flow_traces(store: Any, flow_name: str) -> list[Any]:
    from sqlalchemy import select

    from mirrorscale.store.models import ExecutionTrace, Task

    query = (select(ExecutionTrace).join(Task)
             .where(Task.engine == "prefect", Task.pipeline_id == flow_name)
             .order_by(ExecutionTrace.started_at.desc()).limit(WINDOW))
    with store.reading() as session:
        return list(session.scalars(query))


def size_flow_run(flow_name: str, *, store: Any = None, policies: Any = None, memory_variable: str = "memory",
                  cpu_variable: str = "cpu") -> FlowSizing:
    """The naive sizing of the next run of ``flow_name`` (see the module docstring)."""
    from mirrorscale.policy import load_policies
    from mirrorscale.store.history import HistoryStore

    store = store or HistoryStore.open()
    policy = (policies or load_policies()).for_task(flow_name, "*")
    traces = _recent_flow_traces(store, flow_name)
    peaks = [int(t.features.get("process_peak_rss_bytes") or 0) for t in traces]
    peaks = [p for p in peaks if p > 0]
    variables: dict[str, Any] = {}
    if peaks:
        need = int(policy.memory.clamp(int(max(peaks) * (1 + policy.headroom))))
        reason = (f"naive: largest process peak {format_bytes(max(peaks))} of the last {len(traces)} task runs "
                  f"+{policy.headroom:.0%} headroom")
    elif policy.default_memory is not None:
        need, reason = int(policy.default_memory), "policy default_memory (no history)"
    else:
        need, reason = None, "no history and no default_memory: memory left to the work pool"
    if need is not None:
        variables[memory_variable] = kubernetes_quantity(need)
    rates = [t.cpu_seconds / t.wall_seconds for t in traces if t.cpu_seconds and t.wall_seconds]
    cpu = None
    if rates:
        cpu = float(policy.cpu.clamp(max(0.1, math.ceil(max(rates) * 10) / 10)))
        variables[cpu_variable] = f"{cpu:g}"
        reason += f"; CPU: busiest task used {max(rates):.2f} cores"
    return FlowSizing(memory_bytes=need, cpu=cpu, job_variables=variables, mode=policy.mode, reason=reason)


def run_sized_deployment(name: str, parameters: dict[str, Any] | None = None, *,
                         job_variables: dict[str, Any] | None = None, apply: bool | None = None,
                         store: Any = None, policies: Any = None, memory_variable: str = "memory",
                         cpu_variable: str = "cpu", timeout: float | None = 0, **run_kwargs: Any) -> Any:
    """Create a run of deployment ``name`` (``"flow-name/deployment-name"``) sized from history.

    Returns Prefect's ``FlowRun``. ``timeout=0`` (the default) returns as soon as the run
    is created; other ``run_kwargs`` go to ``prefect.deployments.run_deployment``.
    """
    from prefect.deployments import run_deployment

    from mirrorscale.store.history import HistoryStore
    from mirrorscale.store.models import Allocation

    store = store or HistoryStore.open()
    flow_name = name.split("/", 1)[0]
    sizing = size_flow_run(flow_name, store=store, policies=policies, memory_variable=memory_variable,
                           cpu_variable=cpu_variable)
    applied = sizing.mode == "enforce" if apply is None else bool(apply)
    variables = {**(sizing.job_variables if applied else {}), **(job_variables or {})}
    flow_run = run_deployment(name, parameters=parameters, job_variables=variables or None, timeout=timeout,
                              **run_kwargs)
    store.save(("prefect", flow_name, "__flow__"), Allocation(
        run_id=str(flow_run.id), mode=sizing.mode, applied=applied, memory_bytes=sizing.memory_bytes,
        cpu=sizing.cpu, executor_options={"job_variables": variables}, source="history", reason=sizing.reason))
    return flow_run
