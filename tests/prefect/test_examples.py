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
    assert etl.main(days=2, base_rows=2_000) == [2_000, 4_000]
    branch = load_example("predicted_branch")
    light, *heavy = branch.main([1_000, 120_000, 150_000])
    assert light == f"light: {sum(range(1_000))}" and all(h.startswith("heavy: ") for h in heavy)
    fanout = load_example("memory_fanout")
    assert isinstance(fanout.main(chunks=4, largest_mib=8), int)

    # `python FILE` against the configured API (here the session's test server)
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    run = subprocess.run([sys.executable, str(EXAMPLES / "growing_etl.py"), "1", "500"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "[500]" in run.stdout

    expected = {
        ("growing-etl", "extract"): 3, ("growing-etl", "transform"): 3, ("growing-etl", "load"): 3,
        ("predicted-branch", "inspect_batch"): 3, ("predicted-branch", "light_path"): 1,
        ("predicted-branch", "heavy_path"): 2, ("predicted-branch", "report"): 3,
        ("memory-fanout", "crunch"): 4, ("memory-fanout", "combine"): 1,
    }
    listed: dict[tuple[str, str], int] = {}
    for trace in history_json():
        if trace["engine"] == "prefect" and trace["pipeline_id"] in {"growing-etl", "predicted-branch", "memory-fanout"}:
            key = (trace["pipeline_id"], trace["task_id"])
            listed[key] = listed.get(key, 0) + 1
            assert trace["outcome"] == "success" and trace["source"] == "prefect-runner"
    assert listed == expected

    extracts = traces_of("growing-etl")
    rows = [t.features["param.n_rows"] for t in extracts if t.task.task_id == "extract"]
    assert sorted(rows) == [500, 2_000, 4_000]  # the policy-named feature, from the decorator
    crunch = [t for t in traces_of("memory-fanout") if t.task.task_id == "crunch"]
    biggest = max(crunch, key=lambda t: t.features["param.chunk_mib"])
    assert biggest.features["param.chunk_mib"] == 8 and biggest.peak_rss_bytes >= 7 * 1024 * 1024
