"""Run one pipeline run of the demo, in one of two phases, and read back what happened from the store.

===========  ==================================================================
phase        every task with a static ``default_memory`` (its own setting) ...
===========  ==================================================================
``static``   is held to that setting like a container: mode ``enforce`` with
             ``min_allowed = max_allowed = setting x attempt`` and no headroom,
             so a run over it is stopped and recorded as ``oom_killed``;
             mirrorscale only measures
``enforce``  is sized by mirrorscale before it starts (mode ``enforce``):
             from history and, for volatile tasks whose policy allows it, from
             a mirror on a sample of this run's input
===========  ==================================================================

A pipeline run that fails is run again, at most ``MAX_ATTEMPTS`` times, as its
owner would: in phase ``static`` with the limits multiplied by the attempt number
(nf-core's ``memory = 6.GB * task.attempt`` retry strategy), in phase ``enforce``
as is (the allocator bumps a task after an OOM kill). Reruns count in the makespan.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirrorscale.demo.scenario import FANOUT_WORKERS, Pipeline, RunInput

__all__ = ["MAX_ATTEMPTS", "PipelineRun", "TaskRun", "run_pipeline", "static_settings"]

MAX_ATTEMPTS = 3
MEMORY_LIMIT_NAME = "mirrorscale-demo-memory"


@dataclass(frozen=True)
class TaskRun:
    """One measured task attempt, as the demo shows it (from its ``ExecutionTrace``)."""

    trace_id: int
    task: str
    attempt: int
    outcome: str
    input_bytes: int | None
    peak: int | None
    allocated: int | None
    wall: float
    forecast: int | None = None
    evidence: str | None = None
    mirror: dict[str, Any] | None = None
    lifecycle: dict[str, Any] | None = None
    waited: float = 0.0

    @property
    def oom(self) -> bool:
        """True when the run was stopped for outgrowing its allocation."""
        return self.outcome == "oom_killed"

    @property
    def wasted_byte_seconds(self) -> float:
        """Allocated but unused memory x time (a killed run wastes its whole allocation)."""
        if not self.allocated:
            return 0.0
        used = 0 if self.oom else min(self.peak or 0, self.allocated)
        return (self.allocated - used) * self.wall


@dataclass
class PipelineRun:
    """One scheduled run of a pipeline in one phase: all its attempts."""

    phase: str
    pipeline: str
    index: int
    run: RunInput
    attempts: int = 0
    seconds: float = 0.0
    ok: bool = False
    tasks: list[TaskRun] = field(default_factory=list)

    @property
    def oom_kills(self) -> int:
        """Task attempts stopped for outgrowing their allocation."""
        return sum(t.oom for t in self.tasks)

    @property
    def wasted_byte_seconds(self) -> float:
        """Memory wastage of every task attempt of this run."""
        return sum(t.wasted_byte_seconds for t in self.tasks)


def load_flow(pipeline: Pipeline) -> Any:
    """The example's flow object (``dags_examples/prefect`` must be on ``sys.path``)."""
    return getattr(importlib.import_module(pipeline.module), pipeline.flow)


def static_settings(pipeline: Pipeline) -> dict[str, int]:
    """``task name -> bytes``: the ``default_memory`` each task of the example declares (its own setting)."""
    from mirrorscale.plugins.prefect.policy import code_policy

    module = importlib.import_module(pipeline.module)
    settings = {}
    for value in vars(module).values():
        policy = code_policy(value) if hasattr(value, "fn") and hasattr(value, "submit") else None
        if policy is not None and policy.default_memory:
            settings[value.name] = int(policy.default_memory)
    return settings


def write_policy(path: Path, pipeline: Pipeline, phase: str, attempt: int) -> Path:
    """The policy file of ``pipeline`` for one attempt of ``phase`` (see the module docstring)."""
    lines = []
    for task, setting in static_settings(pipeline).items():
        lines.append(f'[tasks."{pipeline.name}.{task}"]')
        lines.append('mode = "enforce"')
        if phase == "static":
            limit = f"{setting * attempt}B"
            lines += ["mirror = false", "headroom = 0",
                      f'memory = {{ min_allowed = "{limit}", max_allowed = "{limit}" }}']
        lines.append("")
    path.write_text("\n".join(lines))
    return path


def _runner(pipeline: Pipeline, policy_file: Path) -> Any:
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

    from mirrorscale.plugins.prefect import MemoryAdmission, PredictiveTaskRunner

    if not pipeline.process_pool:  # one task at a time: the memory guard applies the allocation, no admission
        return PredictiveTaskRunner(inner=ThreadPoolTaskRunner(), policy_file=str(policy_file), admission=False)
    admission = MemoryAdmission(capacity=pipeline.capacity, name=f"{MEMORY_LIMIT_NAME}-{pipeline.name}")
    return PredictiveTaskRunner(inner=ProcessPoolTaskRunner(max_workers=FANOUT_WORKERS),
                                policy_file=str(policy_file), admission=admission)


def _task_run(trace: Any, attempt: int) -> TaskRun:
    features = trace.features or {}
    allocation = features.get("allocation") or {}
    return TaskRun(trace_id=trace.id, task=trace.task.task_id, attempt=attempt, outcome=trace.outcome,
                   input_bytes=trace.input_size_bytes, peak=trace.peak_rss_bytes,
                   allocated=trace.allocated_memory_bytes, wall=float(trace.wall_seconds or 0.0),
                   forecast=allocation.get("forecast_bytes"), evidence=allocation.get("evidence"),
                   mirror=features.get("mirror"), lifecycle=features.get("mirror_lifecycle"),
                   waited=float((features.get("admission") or {}).get("waited_seconds") or 0.0))


def traces_after(store: Any, pipeline: str, after_id: int) -> list[Any]:
    """The Prefect traces of ``pipeline`` stored after trace id ``after_id``, oldest first."""
    from sqlalchemy import select

    from mirrorscale.store.models import ExecutionTrace, Task

    query = (select(ExecutionTrace).join(Task)
             .where(Task.engine == "prefect", Task.pipeline_id == pipeline, ExecutionTrace.id > after_id)
             .order_by(ExecutionTrace.id))
    with store.reading() as session:
        rows = list(session.scalars(query))
        for row in rows:
            _ = row.task  # loaded while the session is open
        return rows


def last_trace_id(store: Any) -> int:
    """The highest trace id in the store (0 when empty)."""
    from sqlalchemy import func, select

    from mirrorscale.store.models import ExecutionTrace

    with store.reading() as session:
        return int(session.scalar(select(func.max(ExecutionTrace.id))) or 0)


def run_pipeline(store: Any, pipeline: Pipeline, index: int, phase: str, workdir: Path) -> PipelineRun:
    """Run ``pipeline.runs[index]`` in ``phase`` (rerunning a failed run, see the module docstring)."""
    run = pipeline.runs[index]
    result = PipelineRun(phase=phase, pipeline=pipeline.name, index=index, run=run)
    flow = load_flow(pipeline)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        policy = write_policy(workdir / f"{phase}-{pipeline.name}-{attempt}.toml", pipeline, phase, attempt)
        before = last_trace_id(store)
        started = time.perf_counter()
        state = flow.with_options(task_runner=_runner(pipeline, policy))(**run.params, return_state=True)
        result.seconds += time.perf_counter() - started
        result.attempts = attempt
        result.tasks += [_task_run(t, attempt) for t in traces_after(store, pipeline.name, before)]
        if state.is_completed():
            result.ok = True
            break
    return result
