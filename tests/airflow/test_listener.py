"""The listener in-process, with a stand-in task instance: outcomes, features, store failures."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from mirrorscale.plugins.airflow import listener
from mirrorscale.plugins.airflow.features import policy_features
from mirrorscale.store.history import HistoryStore


def _ti(task_id: str = "work", *, map_index: int = -1, op_args: list | None = None) -> SimpleNamespace:
    task = SimpleNamespace(op_args=op_args or [b"x" * 1000], op_kwargs={"n": 3}, params={"rows": 10},
                           dag=None, pool="default_pool", pool_slots=2, queue="default",
                           priority_weight=5, executor_config={"mirrorscale": {"memory_bytes": 1 << 30}})
    return SimpleNamespace(dag_id="unit_dag", task_id=task_id, run_id="manual__1", map_index=map_index,
                           try_number=1, task=task)


@pytest.fixture
def store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    monkeypatch.setenv("MIRRORSCALE_DATABASE_URL", url)
    monkeypatch.delenv("MIRRORSCALE_POLICY_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    return url


def test_records_success_and_failure_outcomes(store_url: str) -> None:
    ok, oom, mapped = _ti("ok"), _ti("oom"), _ti("fan", map_index=4)
    for ti in (ok, oom, mapped):
        listener.on_task_instance_running(None, ti)
    block = bytearray(8 << 20)  # noqa: F841 - some memory while "running"
    listener.on_task_instance_success(None, ok)
    listener.on_task_instance_failed(None, oom, MemoryError())
    listener.on_task_instance_success(None, mapped)
    store = HistoryStore.open(store_url)
    traces = {t.task.task_id: t for t in store.recent_traces()}
    assert traces["ok"].outcome == "success" and traces["oom"].outcome == "oom_killed"
    assert traces["fan"].run_id == "manual__1#4" and traces["fan"].features["map_index"] == 4
    trace = traces["ok"]
    assert trace.input_size_bytes == 1000 and trace.features["params_bytes"] > 0  # the scalar n=3 carries no data
    assert trace.allocated_pool == "default_pool" and trace.allocated_pool_slots == 2
    assert trace.allocated_memory_bytes == 1 << 30
    assert trace.peak_rss_bytes >= trace.features["baseline_rss_bytes"] > 0
    samples = store.trace_samples(trace.id)
    assert samples is not None and len(samples.t_seconds) >= 1


def test_unwritable_store_logs_one_warning_and_does_not_raise(tmp_path: Path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("MIRRORSCALE_DATABASE_URL", f"sqlite:///{blocker / 'store.sqlite'}")
    ti = _ti()
    with caplog.at_level(logging.WARNING, logger="mirrorscale.airflow"):
        listener.on_task_instance_running(None, ti)
        listener.on_task_instance_success(None, ti)
        listener.on_task_instance_success(None, ti)  # a second terminal call: nothing left to record
    warnings = [r for r in caplog.records if r.name == "mirrorscale.airflow"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "unit_dag.work" in warnings[0].getMessage()


def test_broken_policy_file_still_records(store_url: str, tmp_path: Path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.toml"
    bad.write_text('mode = "sometimes"\n')
    monkeypatch.setenv("MIRRORSCALE_POLICY_FILE", str(bad))
    ti = _ti("policy")
    with caplog.at_level(logging.WARNING, logger="mirrorscale.airflow"):
        listener.on_task_instance_running(None, ti)
        listener.on_task_instance_success(None, ti)
    assert len([r for r in caplog.records if r.name == "mirrorscale.airflow"]) == 1
    assert [t.task.task_id for t in HistoryStore.open(store_url).recent_traces()] == ["policy"]


def test_recording_can_be_switched_off(store_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MIRRORSCALE_AIRFLOW_RECORD", "0")
    ti = _ti("off")
    listener.on_task_instance_running(None, ti)
    listener.on_task_instance_success(None, ti)
    assert HistoryStore.open(store_url).recent_traces() == []


def test_failure_outcomes() -> None:
    class AirflowTaskTimeout(Exception):
        pass

    assert listener.failure_outcome(MemoryError()) == "oom_killed"
    assert listener.failure_outcome(AirflowTaskTimeout()) == "timed_out"
    assert listener.failure_outcome(ValueError("x")) == "failed"
    assert listener.failure_outcome(None) == "failed"


def test_policy_features() -> None:
    found = policy_features(("rows", "files", "missing"), [{"rows": 5}, {"files": ["a", "b"], "rows": 9}])
    assert found == {"param.rows": 5, "param.files": 2}
