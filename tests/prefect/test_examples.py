"""The Prefect examples in dags_examples/prefect run, and every task they run is in the history."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "dags_examples" / "prefect"
pytestmark = pytest.mark.usefixtures("prefect_api")


def load_example(name: str) -> ModuleType:
    """Import ``dags_examples/prefect/NAME.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"mirrorscale_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def history_json() -> list[dict[str, Any]]:
    """``mirrorscale history --json`` as the user runs it (the console script of this venv)."""
    script = Path(sys.executable).with_name("mirrorscale")
    out = subprocess.run([str(script), "history", "--json", "--limit", "100000"], capture_output=True, text=True,
                         timeout=120, check=True)
    return json.loads(out.stdout)["traces"]


def test_examples_run_and_every_task_is_in_the_history(prefect_api: str, traces_of: Any) -> None:
    etl = load_example("growing_etl")
    assert etl.main(days=2, base_partitions=2) == [97, 97]  # every key of the made-up table loaded
    branch = load_example("predicted_branch")
    light, *heavy = branch.main([1, 12, 15])
    assert light == f"light: {int(branch.load_batch.fn(branch.batch_partitions(1)).sum())}"
    assert len(heavy) == 2 and all(h.startswith("heavy: ") for h in heavy)
    fanout = load_example("memory_fanout")
    assert isinstance(fanout.main(chunks=4, largest_mib=8), int)

    # `python FILE` against the configured API (here the session's test server)
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    run = subprocess.run([sys.executable, str(EXAMPLES / "growing_etl.py"), "1", "3"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "[97]" in run.stdout

    expected = {
        ("growing-etl", "extract"): 3, ("growing-etl", "transform"): 3, ("growing-etl", "load"): 3,
        ("predicted-branch", "load_batch"): 3, ("predicted-branch", "inspect_batch"): 3,
        ("predicted-branch", "light_path"): 1, ("predicted-branch", "heavy_path"): 2,
        ("predicted-branch", "report"): 3, ("memory-fanout", "crunch"): 4, ("memory-fanout", "combine"): 1,
    }
    listed: dict[tuple[str, str], int] = {}
    for trace in history_json():
        if trace["engine"] == "prefect" and trace["pipeline_id"] in {"growing-etl", "predicted-branch", "memory-fanout"}:
            key = (trace["pipeline_id"], trace["task_id"])
            listed[key] = listed.get(key, 0) + 1
            assert trace["outcome"] == "success" and trace["source"] == "prefect-runner"
    assert listed == expected

    # the examples' tasks are in mode recommend: each run was sized before it started, and shown
    from mirrorscale.plugins.prefect.artifacts import forecast_rows

    transforms = [t for t in traces_of("growing-etl") if t.task.task_id == "transform"]
    rows = forecast_rows(transforms)
    assert all(r["allocation"].endswith("(recommended)") and r["forecast peak"] != "n/a" for r in rows)
    assert [r["evidence"] for r in rows][0] == "policy default"  # the task's own default_memory, cold start
    assert all(t.allocated_memory_bytes is None for t in transforms)  # recommended, not applied
    crunch = [t for t in traces_of("memory-fanout") if t.task.task_id == "crunch"]
    biggest = max(crunch, key=lambda t: t.input_size_bytes or 0)
    assert biggest.input_size_bytes == 8 * 1024 * 1024 // fanout.FACTOR
    assert biggest.peak_rss_bytes >= 7 * 1024 * 1024


def test_example_mode_flag_enforces_the_allocations(prefect_api: str, traces_of: Any) -> None:
    """`python FILE --mode enforce` applies the allocations (MIRRORSCALE_MODE for that process)."""
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    run = subprocess.run([sys.executable, str(EXAMPLES / "memory_fanout.py"), "2", "4", "--mode", "enforce"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    crunch = [t for t in traces_of("memory-fanout") if t.task.task_id == "crunch"][-2:]
    assert all(t.allocated_memory_bytes and t.features["allocation"]["mode"] == "enforce" for t in crunch)
    bad = subprocess.run([sys.executable, str(EXAMPLES / "memory_fanout.py"), "--mode", "sometimes"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "--mode" in bad.stderr
