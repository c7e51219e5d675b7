"""The main job (`python -m mirrorscale.demo --quick`): the Prefect examples without and with mirrorscale.

Runs the demo as the README's command does (a subprocess with its own demo folder,
its own Prefect API server and the embedded SQLite store) and checks what a user
relies on: one line per pipeline run, the summary figures, the OOM kill of the
static phase avoided in enforce mode, and a report that opens without a network.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_quick_demo_runs_both_phases_and_writes_a_self_contained_report(tmp_path: Path) -> None:
    home = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(COLUMNS="160", PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", "mirrorscale.demo", "--quick", "--home", str(home)], env=env,
                          capture_output=True, text=True, timeout=570)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-4000:]

    # one line per pipeline run, in both phases, with the decisions
    assert len(re.findall(r"^static\s+growing-etl", out, re.M)) == 11
    assert len(re.findall(r"^enforce\s+growing-etl", out, re.M)) == 11
    assert "OOM-killed" in out and "mirror" in out and "allocated" in out

    summary = {row["pipeline"]: row for row in json.loads((home / "summary.json").read_text())}
    etl = summary["growing-etl"]
    assert etl["static"]["oom_kills"] >= 1 and etl["static"]["reruns"] >= 1  # the spike day outgrew 160 MiB
    assert etl["enforce"]["oom_kills"] == 0 and etl["enforce"]["mirrors"] >= 1
    assert etl["enforce"]["wasted_gib_s"] < etl["static"]["wasted_gib_s"]
    overall = summary["all pipelines"]
    assert overall["static"]["makespan"] > 0 and overall["enforce"]["sized"] > 0

    report = (home / "report.html").read_text()
    assert "data:image/png;base64," in report and report.count("<svg") >= 2
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", report)  # nothing fetched from elsewhere
    assert "<script" not in report
    assert "mirrorscale ui" in out and str(home / "report.html") in out
