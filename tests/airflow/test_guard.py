"""Memory enforcement for local runs: the guard stops a task that outgrows its allocation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mirrorscale.plugins.airflow import listener
from mirrorscale.plugins.airflow.guard import MemoryGuard, MemoryLimitExceeded, tree_rss
from mirrorscale.store.history import HistoryStore


def _grow(mib: int) -> list[bytearray]:
    """Allocate ``mib`` MiB in 1 MiB steps, pausing between them like real work does."""
    held = []
    for _ in range(mib):
        block = bytearray(1 << 20)
        block[::4096] = b"\x01" * len(block[::4096])  # touch every page: resident, not just reserved
        held.append(block)
        time.sleep(0.005)  # Python code between steps: the guard's exception lands here
    return held


def test_guard_raises_memory_error_in_the_task_thread() -> None:
    guard = MemoryGuard(tree_rss(os.getpid()) + (48 << 20), kill_self=False).start()
    try:
        with pytest.raises(MemoryLimitExceeded):
            _grow(400)
    finally:
        guard.stop()
    assert guard.breached and guard.breach_rss_bytes > guard.limit_bytes


def test_guard_leaves_a_task_within_its_allocation_alone() -> None:
    guard = MemoryGuard(tree_rss(os.getpid()) + (256 << 20), kill_self=False).start()
    held = _grow(16)
    guard.stop()
    assert not guard.breached and len(held) == 16


def test_guard_kills_a_task_stuck_in_a_c_call(tmp_path: Path) -> None:
    """A C call never returns to Python: after the grace period the guard records, then SIGKILLs."""
    marker = tmp_path / "breach.json"
    code = textwrap.dedent(f"""
        import json, os, time
        from mirrorscale.plugins.airflow.guard import MemoryGuard, tree_rss
        def record(rss):
            open({str(marker)!r}, "w").write(json.dumps({{"rss": rss}}))
        MemoryGuard(tree_rss(os.getpid()) + (32 << 20), grace_seconds=0.5, on_breach=record).start()
        block = b"x" * (128 << 20)   # one C call: over the limit when it returns
        time.sleep(30)               # another C call: the MemoryError cannot be delivered
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    assert json.loads(marker.read_text())["rss"] > 128 << 20


def test_enforce_mode_records_oom_killed(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    policy = tmp_path / "mirrorscale.toml"
    policy.write_text('[tasks."unit_dag.*"]\nmode = "enforce"\n')
    monkeypatch.setenv("MIRRORSCALE_DATABASE_URL", url)
    monkeypatch.setenv("MIRRORSCALE_POLICY_FILE", str(policy))
    limit = tree_rss(os.getpid()) + (48 << 20)
    task = SimpleNamespace(op_args=[], op_kwargs={}, params={}, dag=None, pool="default_pool", pool_slots=1,
                           queue="default", priority_weight=1, executor_config={"mirrorscale": {"memory_bytes": limit}})
    ti = SimpleNamespace(dag_id="unit_dag", task_id="hog", run_id="manual__guard", map_index=-1, try_number=1,
                         task=task)
    listener.on_task_instance_running(None, ti)
    try:
        _grow(400)
    except MemoryLimitExceeded as exc:
        listener.on_task_instance_failed(None, ti, exc)
    else:
        listener.on_task_instance_success(None, ti)
    trace = HistoryStore.open(url).recent_traces()[0]
    assert trace.outcome == "oom_killed"
    assert trace.allocated_memory_bytes == limit and trace.features["memory_limit_bytes"] == limit
    assert trace.features["breach_rss_bytes"] > limit
