"""Start a deployment run with memory/CPU job variables sized by the allocator for its parameters.

For flows that run in their own container (a Kubernetes work pool, say) the pod's
size is set when the run is created, through ``job_variables``::

    from mirrorscale.plugins.prefect.deployments import run_sized_deployment

    flow_run = run_sized_deployment("growing-etl/daily", parameters={"day": 7})
    flow_run.job_variables   # {"memory_request": "612Mi", "memory_limit": "612Mi", "cpu_request": "500m"}

The decision is the :class:`~mirrorscale.allocator.Allocator`'s, exactly as for a
task run inside a flow: it learns from the flow's recorded *flow runs* (each one's
whole footprint, recorded by ``PredictiveTaskRunner``:
:mod:`mirrorscale.plugins.prefect.flow_runs`) and sizes this run from the size of
*its* parameters (``input_size_bytes``), then adds the policy's headroom and
bounds. The policy is the one resolved for ``"<flow name>.flow-run"`` (so
``"<flow name>.*"`` patterns apply). Cold start: the policy's ``default_memory``,
else no memory variable (the work pool's own defaults apply).

The variable names default to those of Prefect's Kubernetes worker base job
template (``prefect work-pool get-default-base-job-template --type kubernetes``):
``memory_request`` and ``memory_limit`` (both the allocation: the pod is then
killed on overuse, as a task run is by the memory guard), ``cpu_request``
(Kubernetes quantities: ``"612Mi"``, ``"500m"``). A work pool with its own template
names its variables with ``memory_variables`` / ``cpu_variables``.

Job variables are applied in mode ``enforce`` (or with ``apply=True``); in mode
``recommend`` the decision is stored but not applied, in ``observe`` neither.
Variables passed in ``job_variables`` always win. If the store is unavailable
the run is created with the caller's variables only, and one warning is logged.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

__all__ = ["CPU_VARIABLES", "FlowSizing", "MEMORY_VARIABLES", "kubernetes_cpu", "kubernetes_quantity",
           "run_sized_deployment", "size_flow_run"]

logger = logging.getLogger("mirrorscale.prefect")

MEMORY_VARIABLES = ("memory_request", "memory_limit")
"""Job variables set to the allocation's memory (names in Prefect's Kubernetes base job template)."""
CPU_VARIABLES = ("cpu_request",)
"""Job variables set to the allocation's CPU request."""


@dataclass(frozen=True)
class FlowSizing:
    """The allocator's decision for one flow run, the job variables it makes, and why."""

    memory_bytes: int | None
    cpu: float | None
    job_variables: dict[str, Any]
    mode: str
    reason: str
    input_size_bytes: int
    allocation: Any = None  # the store's Allocation (not saved yet), None in cold start


def kubernetes_quantity(n_bytes: int) -> str:
    """Bytes as a Kubernetes memory quantity in whole MiB, rounded up (``"612Mi"``)."""
    return f"{max(1, math.ceil(n_bytes / 1024**2))}Mi"


def kubernetes_cpu(cores: float) -> str:
    """Cores as a Kubernetes CPU quantity: whole cores as is (``"2"``), else millicores rounded up (``"500m"``)."""
    if float(cores).is_integer() and cores >= 1:
        return str(int(cores))
    return f"{max(1, math.ceil(round(cores * 1000, 6)))}m"


def size_flow_run(flow_name: str, parameters: Mapping[str, Any] | None = None, *, store: Any = None,
                  policies: Any = None, memory_variables: Sequence[str] = MEMORY_VARIABLES,
                  cpu_variables: Sequence[str] = CPU_VARIABLES) -> FlowSizing:
    """The allocator's sizing of a run of ``flow_name`` with ``parameters`` (raises on store trouble)."""
    from mirrorscale.allocator import Allocator
    from mirrorscale.plugins.prefect.flow_runs import FLOW_TASK, flow_key, parameters_size
    from mirrorscale.policy import format_bytes, load_policies
    from mirrorscale.store.history import HistoryStore

    store = store or HistoryStore.open()
    policies = policies if policies is not None else load_policies()
    size = parameters_size(parameters)
    allocator = Allocator(store, policies, use_stored_shadow=False)
    allocation = allocator.decide(flow_key(flow_name), "pending", features={"input_size_bytes": size}, save=False)
    mode = policies.for_task(flow_name, FLOW_TASK).mode
    if allocation is None:
        return FlowSizing(None, None, {}, mode, "no recorded run of this flow and no default_memory: memory left "
                          "to the work pool", size)
    variables: dict[str, Any] = {}
    if allocation.memory_bytes:
        variables.update({name: kubernetes_quantity(allocation.memory_bytes) for name in memory_variables})
    if allocation.cpu:
        variables.update({name: kubernetes_cpu(allocation.cpu) for name in cpu_variables})
    reason = f"parameters {format_bytes(size)}: {allocation.reason}"
    return FlowSizing(allocation.memory_bytes, allocation.cpu, variables, allocation.mode, reason, size, allocation)


def run_sized_deployment(name: str, parameters: dict[str, Any] | None = None, *,
                         job_variables: dict[str, Any] | None = None, apply: bool | None = None,
                         store: Any = None, policies: Any = None,
                         memory_variables: Sequence[str] = MEMORY_VARIABLES,
                         cpu_variables: Sequence[str] = CPU_VARIABLES, timeout: float | None = 0,
                         **run_kwargs: Any) -> Any:
    """Create a run of deployment ``name`` (``"flow-name/deployment-name"``) sized for ``parameters``.

    Returns Prefect's ``FlowRun``. ``timeout=0`` (the default) returns as soon as the run
    is created; other ``run_kwargs`` go to ``prefect.deployments.run_deployment``.
    """
    from prefect.deployments import run_deployment

    flow_name = name.split("/", 1)[0]
    try:
        sizing: FlowSizing | None = size_flow_run(flow_name, parameters, store=store, policies=policies,
                                                  memory_variables=memory_variables, cpu_variables=cpu_variables)
    except Exception as exc:  # noqa: BLE001 - the deployment runs with the caller's settings
        logger.warning("mirrorscale: could not size the run of %s (%s: %s); it runs with the work pool's and "
                       "the caller's job variables", name, type(exc).__name__, exc)
        sizing = None
    applied = sizing is not None and (sizing.mode == "enforce" if apply is None else bool(apply))
    variables = {**(sizing.job_variables if applied else {}), **(job_variables or {})}
    flow_run = run_deployment(name, parameters=parameters, job_variables=variables or None, timeout=timeout,
                              **run_kwargs)
    if sizing is not None and sizing.allocation is not None and (applied or sizing.mode != "observe"):
        _save(store, flow_name, sizing, str(flow_run.id), applied, variables)
    return flow_run


def _save(store: Any, flow_name: str, sizing: FlowSizing, run_id: str, applied: bool,
          variables: dict[str, Any]) -> None:
    """Store the decision under the flow run's id (a failure logs a warning; the run exists already)."""
    from mirrorscale.plugins.prefect.flow_runs import flow_key
    from mirrorscale.store.history import HistoryStore

    allocation = sizing.allocation
    allocation.run_id, allocation.applied = run_id, applied
    allocation.reason = sizing.reason
    allocation.executor_options = {**(allocation.executor_options or {}), "job_variables": variables,
                                   "input_size_bytes": sizing.input_size_bytes}
    try:
        (store or HistoryStore.open()).save(flow_key(flow_name), allocation)
    except Exception as exc:  # noqa: BLE001
        logger.warning("mirrorscale: could not store the sizing of flow run %s (%s: %s)", run_id,
                       type(exc).__name__, exc)
