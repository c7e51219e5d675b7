"""The footprint of a whole flow run, recorded so that deployment runs can be sized.

A deployment run on a Kubernetes work pool gets one pod for the whole flow run, so
its size is a question about the flow, not about one task. Besides each task,
:class:`~mirrorscale.plugins.prefect.PredictiveTaskRunner` records one trace per flow
run (that submitted at least one task) under its own engine name, so the
:class:`~mirrorscale.allocator.Allocator` learns it like any task:

=====================  =============================================================
trace field            value
=====================  =============================================================
key                    ``("prefect-flow", flow name, "flow-run")`` (:func:`flow_key`)
run id                 the flow run id
``input_size_bytes``   the sizes of the flow run's parameters, summed (as for tasks:
                       :func:`mirrorscale.features.value_size`)
``peak_rss_bytes``     the flow process's own peak RSS while the runner ran (the
                       whole process, not a rise) **plus**, for tasks that ran in
                       process-pool workers, each worker's largest whole-process
                       peak (they live side by side in the pod, so they add up)
``cpu_seconds``        the flow process's CPU plus the worker tasks' CPU
``features``           ``flow_process_peak_bytes``, ``worker_peaks_bytes``,
                       ``tasks`` (traces it was built from), ``runner``
=====================  =============================================================

Dask and Ray workers are not counted: they run outside the flow's pod and are
sized by their own cluster (:mod:`mirrorscale.plugins.prefect.placement`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Mapping

__all__ = ["FLOW_ENGINE", "FLOW_TASK", "FlowRunMeter", "flow_key", "parameters_size"]

FLOW_ENGINE = "prefect-flow"
FLOW_TASK = "flow-run"


def flow_key(flow_name: str) -> tuple[str, str, str]:
    """The store key under which the runs of flow ``flow_name`` as a whole are recorded."""
    return (FLOW_ENGINE, flow_name, FLOW_TASK)


def parameters_size(parameters: Mapping[str, Any] | None) -> int:
    """The input size of a flow run: its parameters' sizes, summed."""
    from mirrorscale.features import value_size

    return sum(value_size(value) for value in (parameters or {}).values())


def _worker_peaks(traces: list[Any]) -> dict[str, int]:
    """Each process-pool worker's largest whole-process peak among ``traces`` (by worker pid)."""
    peaks: dict[str, int] = {}
    for trace in traces:
        features = trace.features or {}
        if features.get("runner") != "processpool" or features.get("measured_in") != "worker process":
            continue
        pid, peak = features.get("pid"), features.get("process_peak_rss_bytes")
        if pid is not None and peak:
            peaks[str(pid)] = max(peaks.get(str(pid), 0), int(peak))
    return peaks


class FlowRunMeter:
    """Measures the flow process from :meth:`start` and records the flow run's trace in :meth:`finish`.

    Never raises: a process that cannot be measured records nothing.
    """

    def __init__(self, interval: float = 0.1) -> None:
        self.interval = interval
        self.monitor: Any = None
        self.started_at = datetime.now(timezone.utc)

    def start(self) -> FlowRunMeter:
        """Start measuring this process (not its children: the temporary API server is one)."""
        from mirrorscale.monitor import ProcessMonitor

        try:
            self.monitor = ProcessMonitor(interval=self.interval, include_children=False).start()
        except Exception:  # noqa: BLE001 - only the flow-level trace is lost
            self.monitor = None
        return self

    def stop(self) -> Any:
        """Stop measuring (idempotent); the usage, None when nothing was measured."""
        if self.monitor is None:
            return None
        try:
            return self.monitor.stop()
        except Exception:  # noqa: BLE001
            self.monitor = None
            return None

    def finish(self, recorder: Any, *, flow_name: str, flow_run_id: str, input_size: int | None,
               traces: list[Any], runner: str, outcome: str) -> None:
        """Stop measuring and record the flow run's trace through ``recorder`` (a TraceRecorder)."""
        usage = self.stop()
        if usage is None:
            return
        workers = _worker_peaks(traces)
        worker_cpu = sum(t.cpu_seconds or 0.0 for t in traces if (t.features or {}).get("pid") is not None
                         and str(t.features["pid"]) in workers)
        recorder.record(
            engine=FLOW_ENGINE, pipeline_id=flow_name, task_id=FLOW_TASK, run_id=flow_run_id, try_number=1,
            started_at=self.started_at, ended_at=datetime.now(timezone.utc),
            peak_rss_bytes=usage.peak_rss_bytes + sum(workers.values()),
            cpu_seconds=usage.cpu_seconds + worker_cpu, wall_seconds=usage.wall_seconds,
            read_bytes=usage.read_bytes, write_bytes=usage.write_bytes, input_size_bytes=input_size,
            outcome=outcome, source="prefect-runner",
            features={"flow_process_peak_bytes": usage.peak_rss_bytes, "worker_peaks_bytes": workers,
                      "tasks": len(traces), "runner": runner, "peak_source": usage.peak_source},
        )
