"""PredictiveTaskRunner against a temporary Prefect API (one harness per session)."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path
from typing import Any

import pytest
from prefect import flow, task
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from mirrorscale.plugins.prefect import PredictiveTaskRunner, mirrorscale_policy
from mirrorscale.plugins.prefect.artifacts import FORECAST_KEY, USAGE_KEY

MiB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("prefect_api")


def hold(mib: int) -> int:
    """Allocate and touch ``mib`` MiB."""
    buffer = bytearray(mib * MiB)
    for offset in range(0, len(buffer), 4096):
        buffer[offset] = 1
    return len(buffer)


@mirrorscale_policy(features=["mib"])
@task
def allocate(mib: int, label: str = "x") -> int:
    return hold(mib)


@task
def fail(x: int) -> int:
    raise ValueError(f"bad {x}")


@task(retries=1, retry_delay_seconds=0)
def flaky(marker: str) -> str:
    path = Path(marker)
    if not path.exists():
        path.write_text("tried")
        raise RuntimeError("first attempt fails")
    return "ok"


@task
async def sleepy(seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


@flow(name="runner-threads", task_runner=PredictiveTaskRunner())
def threads_flow(marker: str) -> dict[str, Any]:
    big = allocate.submit(64)
    big.wait()  # alone: in a shared process a task's rise is its own only while nothing else runs beside it
    mapped = allocate.map([1, 2, 3])
    failed = fail.submit(1)
    retried = flaky.submit(marker)
    coro = sleepy.submit(0.05)
    direct = allocate(1)  # a direct call never reaches a task runner: not recorded
    failed.wait()
    return {"ids": {str(f.task_run_id) for f in [big, *mapped, failed, retried, coro]},
            "big": big.result(), "mapped": [f.result() for f in mapped], "failed": failed.state.is_failed(),
            "retried": retried.result(), "direct": direct, "coro": coro.result()}


def test_thread_pool_records_every_submitted_task(tmp_path: Path, traces_of: Any) -> None:
    out = threads_flow(str(tmp_path / "marker"))
    assert out["big"] == 64 * MiB and out["mapped"] == [MiB, 2 * MiB, 3 * MiB] and out["failed"]
    traces = traces_of("runner-threads")
    assert {t.run_id for t in traces} == out["ids"]
    by_task: dict[str, list[Any]] = {}
    for t in traces:
        by_task.setdefault(t.task.task_id, []).append(t)
    assert sorted(by_task) == ["allocate", "fail", "flaky", "sleepy"]
    assert len(by_task["allocate"]) == 4  # 1 submit + 3 mapped; the direct call is not there
    assert [t.outcome for t in by_task["fail"]] == ["failed"]
    flaky_runs = sorted(by_task["flaky"], key=lambda t: t.try_number)
    assert [(t.try_number, t.outcome) for t in flaky_runs] == [(1, "failed"), (2, "success")]
    assert len({t.run_id for t in flaky_runs}) == 1
    big = max(by_task["allocate"], key=lambda t: t.features["param.mib"])
    assert big.features["param.mib"] == 64 and big.features["arg_bytes.label"] == 1
    assert big.features["overlapping_tasks"] == 1
    assert big.peak_rss_bytes >= 60 * MiB  # the rise of the process, at least this task's buffer
    assert big.features["measured_in"] == "flow process" and big.features["runner"] == "threadpool"
    for t in traces:
        assert t.source == "prefect-runner" and t.ended_at >= t.started_at
        assert {"args_bytes", "hour", "weekday", "overlapping_tasks"} <= set(t.features)
        assert t.wall_seconds is not None and t.cpu_seconds is not None
    assert by_task["sleepy"][0].wall_seconds >= 0.05


@flow(name="runner-processes", task_runner=PredictiveTaskRunner(inner=ProcessPoolTaskRunner(max_workers=1)))
def processes_flow() -> list[int]:
    return [f.result() for f in allocate.map([48, 1])]


def test_process_pool_measures_in_the_worker(traces_of: Any) -> None:
    import os

    assert processes_flow() == [48 * MiB, MiB]
    traces = traces_of("runner-processes")
    assert len(traces) == 2
    big = next(t for t in traces if t.features["param.mib"] == 48)
    assert big.features["measured_in"] == "worker process" and big.features["runner"] == "processpool"
    assert big.peak_rss_bytes >= 44 * MiB
    assert big.features["process_peak_rss_bytes"] > big.peak_rss_bytes  # the worker's imports are excluded
    assert big.features["overlapping_tasks"] == 1
    assert os.getpid()  # the store was written from the worker process


_LONG_LIVED: list[bytes] = []


@task
def churn(mib: int) -> int:
    """Hold ``mib`` MiB in 1000-byte objects (from malloc's heap), then leave one small object alive above
    them (a cache entry, say): freeing the rest cannot shrink the heap, glibc keeps it for the next task."""
    items = [bytes(1000) for _ in range(mib * 1024)]
    _LONG_LIVED.append(bytes(1000))
    return len(items)


@flow(name="runner-reused-worker", task_runner=PredictiveTaskRunner(inner=ProcessPoolTaskRunner(max_workers=1)))
def reused_worker_flow() -> list[int]:
    return [f.result() for f in churn.map([96, 96, 96])]  # one worker: one after the other


def test_reused_worker_measures_every_run_of_a_task_not_only_the_first(traces_of: Any) -> None:
    """Without handing freed heap back first, the second and third runs reused the first's memory and
    measured ~0 MiB: the rise of RSS and the kernel's high-water mark both miss reused memory."""
    assert reused_worker_flow() == [96 * 1024] * 3
    traces = traces_of("runner-reused-worker")
    assert len(traces) == 3 and {t.features["measured_in"] for t in traces} == {"worker process"}
    peaks = [t.peak_rss_bytes for t in traces]
    assert min(peaks) >= 0.8 * 96 * MiB, [p // MiB for p in peaks]
    assert max(t.features["heap_released_bytes"] for t in traces) >= 64 * MiB


@task
def double(x: int) -> int:
    return 2 * x


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "postgresql-silent"])
def test_unavailable_store_runs_the_inner_runner_with_one_warning(kind: str, tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from mirrorscale.plugins.prefect import runner
    from mirrorscale.store.history import HistoryStore

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    silent = socket.socket()  # accepts connections into its backlog and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    monkeypatch.setattr(runner, "STORE_OPEN_TIMEOUT", 1.0)
    attempts: list[str] = []

    real_open = HistoryStore.open

    def counting_open(url: str, **options: Any) -> Any:
        attempts.append(url)
        return real_open(url, **options)

    monkeypatch.setattr(HistoryStore, "open", counting_open)
    url = {"sqlite": f"sqlite:///{blocker}/store.sqlite",
           "postgresql": f"postgresql+psycopg://nobody@127.0.0.1:{_closed_port()}/nowhere",
           "postgresql-silent": f"postgresql+psycopg://nobody@127.0.0.1:{silent.getsockname()[1]}/hangs"}[kind]

    @flow(name=f"no-store-{kind}", task_runner=PredictiveTaskRunner(inner=ThreadPoolTaskRunner(max_workers=2),
                                                                    store_url=url))
    def no_store(n: int) -> list[int]:
        return [f.result() for f in double.map(range(n))]

    with caplog.at_level(logging.WARNING, logger="mirrorscale.prefect"):
        assert no_store(3) == [0, 2, 4]
        assert no_store(2) == [0, 2]  # a second flow run: no second warning, and no second attempt
    silent.close()
    assert attempts == [url]
    warnings = [r for r in caplog.records if r.name == "mirrorscale.prefect" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "unavailable" in warnings[0].getMessage() and "run with their own settings" in warnings[0].getMessage()


@mirrorscale_policy(features=["mib"], mode="recommend", default_memory="8MiB", headroom=0)
@task
def recommended(mib: int, label: str = "x") -> int:
    return hold(mib)


@flow(name="runner-artifacts", task_runner=PredictiveTaskRunner())
def artifacts_flow(mib: int) -> int:
    return recommended.submit(mib, label="art").result() + allocate.submit(1).result()


def test_each_flow_run_gets_forecast_and_usage_artifacts() -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

    # above glibc's largest mmap threshold (32 MiB): each run maps fresh pages, so its peak rise shows even in
    # this long-lived test process (8 MiB could reuse freed heap, read as no rise and not be learned from)
    states = [artifacts_flow(mib, return_state=True) for mib in (40, 48)]
    run_ids = [s.state_details.flow_run_id for s in states]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[FORECAST_KEY, USAGE_KEY])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)))
    by_run: dict[Any, dict[str, Any]] = {}
    for artifact in found:
        by_run.setdefault(artifact.flow_run_id, {})[artifact.key] = artifact
    assert set(by_run) == set(run_ids)
    first, second = (by_run[r] for r in run_ids)
    assert first[FORECAST_KEY].type == "table" and second[USAGE_KEY].type == "markdown"
    import json

    def rows(artifact: Any) -> dict[str, Any]:
        data = artifact.data if isinstance(artifact.data, list) else json.loads(artifact.data)
        return {row["task"]: row for row in data}

    cold, warm = rows(first[FORECAST_KEY])["recommended"], rows(second[FORECAST_KEY])["recommended"]
    assert cold["evidence"] == "policy default" and cold["allocation"] == "8 MiB (recommended)"
    assert warm["evidence"] == "history" and warm["reason"].startswith("history of 1 run(s)")
    assert warm["actual peak"] != "n/a" and warm["forecast peak"] != "n/a"
    observed = rows(second[FORECAST_KEY])["allocate"]  # mode observe: not sized
    assert observed["evidence"].startswith("n/a") and observed["allocation"] == "n/a"
    usage = second[USAGE_KEY].data
    assert "`recommended`" in usage and "Peak RSS rise" in usage and "Reason: history of 1 run(s)" in usage
