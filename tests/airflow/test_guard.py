"""Memory enforcement in the Airflow listener: an enforce-mode task over its allocation is recorded as OOM.

The guard itself is tested in tests/unit/test_guard.py.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

from mirrorscale.guard import MemoryLimitExceeded, tree_usage
from mirrorscale.plugins.airflow import listener
from mirrorscale.store.history import HistoryStore


def test_enforce_mode_records_oom_killed(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    policy = tmp_path / "mirrorscale.toml"
    policy.write_text('[tasks."unit_dag.*"]\nmode = "enforce"\n')
    monkeypatch.setenv("MIRRORSCALE_DATABASE_URL", url)
    monkeypatch.setenv("MIRRORSCALE_POLICY_FILE", str(policy))
    limit = tree_usage()() + (48 << 20)
    task = SimpleNamespace(op_args=[], op_kwargs={}, params={}, dag=None, pool="default_pool", pool_slots=1,
                           queue="default", priority_weight=1, executor_config={"mirrorscale": {"memory_bytes": limit}})
    ti = SimpleNamespace(dag_id="unit_dag", task_id="hog", run_id="manual__guard", map_index=-1, try_number=1,
                         task=task)
    listener.on_task_instance_running(None, ti)
    held = []
    try:
        for _ in range(400):  # 1 MiB steps with Python in between: the guard's MemoryError lands here
            held.append(bytearray(b"\x01" * (1 << 20)))
            time.sleep(0.005)
    except MemoryLimitExceeded as exc:
        listener.on_task_instance_failed(None, ti, exc)
    else:
        listener.on_task_instance_success(None, ti)
    trace = HistoryStore.open(url).recent_traces()[0]
    assert trace.outcome == "oom_killed"
    assert trace.allocated_memory_bytes == limit and trace.features["memory_limit_bytes"] == limit
    assert trace.features["breach_rss_bytes"] > limit
