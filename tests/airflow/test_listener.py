"""The listener in-process, with a stand-in task instance: outcomes, features, store failures."""

from __future__ import annotations

import errno
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mirrorscale.plugins.airflow import exit_watch, listener
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


# -- kernel OOM kills: the exit watcher records what the listener cannot ------------------------

TASK_PROCESS = '''
import os, signal, sys
from types import SimpleNamespace
from mirrorscale.plugins.airflow import listener

how, cgroup = sys.argv[1], sys.argv[2]
if cgroup:
    with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:  # a container-like memory limit
        f.write(str(os.getpid()))
task = SimpleNamespace(op_args=[b"x" * 1000], op_kwargs={}, params={}, dag=None, pool="default_pool", pool_slots=1,
                       queue="default", priority_weight=1, executor_config={})
ti = SimpleNamespace(dag_id="oom_dag", task_id=how, run_id="manual__oom", map_index=-1, try_number=1, task=task)
listener.on_task_instance_running(None, ti)
if how == "grow":
    held = []
    while True:
        block = bytearray(8 << 20)
        block[::4096] = b"\\x01" * (len(block) // 4096)
        held.append(block)
elif how == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
else:
    listener.on_task_instance_success(None, ti)
'''


def _memory_cgroup(tmp_name: str, limit: int) -> Path:
    """A child cgroup (v1 memory controller) limited to ``limit`` bytes; skips when it cannot be made."""
    root = Path("/sys/fs/cgroup/memory")
    if not (root / "cgroup.procs").exists() or not os.access(root, os.W_OK):
        pytest.skip("needs a writable cgroup v1 memory controller (root) to provoke a kernel OOM kill")
    group = root / tmp_name
    group.mkdir()
    (group / "memory.limit_in_bytes").write_text(str(limit))
    return group


def _remove_cgroup(group: Path, seconds: float = 15.0) -> None:
    """Remove the test's cgroup once it is empty.

    The kernel refuses (EBUSY) while a process is still in it: the exit
    watcher may still be finishing after it stored the trace. After 3 s the
    ones left are moved to the parent group.
    """
    started = time.monotonic()
    while True:
        try:
            group.rmdir()
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() - started > seconds:
                raise
        if time.monotonic() - started > 3.0:
            for pid in (group / "cgroup.procs").read_text().split():
                try:
                    (group.parent / "cgroup.procs").write_text(pid)
                except OSError:  # it exited meanwhile
                    pass
        time.sleep(0.2)


def _traces_when_settled(url: str, task_id: str, want: int, seconds: float = 20.0) -> list:
    """The store's traces of ``task_id`` once ``want`` exist (or after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        found = [t for t in HistoryStore.open(url).recent_traces() if t.task.task_id == task_id]
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


@pytest.mark.parametrize("how", ["grow", "sigkill", "finish"])
def test_kernel_oom_kill_is_recorded_by_the_exit_watcher(how: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    HistoryStore.open(url)  # migrated before the task process and its watcher use it
    group = _memory_cgroup(f"ms_test_{os.getpid()}_{how}", 300 << 20) if how == "grow" else None
    env = {**os.environ, "MIRRORSCALE_DATABASE_URL": url, exit_watch.ENV: "1"}
    env.pop("MIRRORSCALE_POLICY_FILE", None)
    try:
        proc = subprocess.run([sys.executable, "-c", TASK_PROCESS, how, str(group or "")], env=env,
                              capture_output=True, text=True, timeout=120, cwd=tmp_path)
        if how == "finish":
            assert proc.returncode == 0, proc.stderr[-2000:]
        else:
            assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr[-2000:])
        traces = _traces_when_settled(url, how, 1, 20.0 if how == "grow" else 3.0)
    finally:
        if group is not None:
            _remove_cgroup(group)
    if how == "grow":  # killed by the kernel inside its memory limit: stored as an OOM kill
        assert len(traces) == 1, traces
        trace = traces[0]
        assert trace.outcome == "oom_killed" and trace.run_id == "manual__oom"
        assert trace.features["killed_by"] == "kernel-oom", trace.features
        # memory from before joining the cgroup stays charged elsewhere: the peak may pass the limit by that much
        assert 250 << 20 < trace.peak_rss_bytes < 1 << 30
        if "oom_rss_bytes" in trace.features:  # the kernel log was readable: the RSS at the kill
            assert trace.peak_rss_bytes >= trace.features["oom_rss_bytes"] > 250 << 20
        assert trace.wall_seconds > 0 and trace.allocated_pool == "default_pool"
    elif how == "sigkill":  # killed, but not for memory: nothing is made up
        assert traces == []
    else:  # the listener recorded it; the watcher left without writing a second trace
        time.sleep(1.0)
        traces = _traces_when_settled(url, how, 2, 1.0)
        assert [t.outcome for t in traces] == ["success"]


def test_oom_evidence_rules() -> None:
    assert exit_watch.oom_evidence(7, {7: 1 << 20}, None, None) == "kernel log"
    assert exit_watch.oom_evidence(7, {8: 1 << 20}, 0, 1) == ""  # the log names another victim
    assert exit_watch.oom_evidence(7, None, 0, 1).startswith("memory cgroup oom_kill 0 -> 1")  # log unreadable
    assert exit_watch.oom_evidence(7, {}, 2, 2) == ""  # no OOM kill at all (a deferral, a kill by hand)
    assert exit_watch.oom_evidence(7, None, None, None) == ""
