"""The demo's recorded-trace part (`python -m mirrorscale.demo traces`) runs on the embedded SQLite store,
with the core package only (the pipeline part is tested in tests/prefect/test_demo.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HEADER = "hash,process,name,status,exit,attempt,submit,start,complete,realtime,%cpu,peak_rss,memory,rchar"


def write_trace(path: Path, runs: int) -> None:
    rows = [HEADER]
    for i in range(runs):
        start = 1716753290000 + i * 60_000
        peak = (200 + 10 * i) * 2**20  # a task whose memory grows run after run
        rows.append(f"h/{i:04d},ALIGN,ALIGN ({i}),COMPLETED,0,1,{start},{start + 1000},{start + 61000},"
                    f"60000,100.0,{peak},{4 * 2**30},{(1 + i) * 10**8}")
    path.write_text("\n".join(rows) + "\n")


def test_demo_imports_replays_and_explains(tmp_path: Path) -> None:
    trace = tmp_path / "trace_demo.csv"
    write_trace(trace, 40)
    env = {**os.environ, "MIRRORSCALE_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    env.pop("MIRRORSCALE_DATABASE_URL", None)
    proc = subprocess.run([sys.executable, "-m", "mirrorscale.demo", "traces", str(trace)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "40 imported" in out and "0 imported, 40 already present" in out
    assert "mirrorscale" in out and "vpa-reference" in out  # the replay table
    assert "demo.ALIGN" in out and "history of" in out      # the explanation of the busiest task
    assert (tmp_path / "home" / "replay_wastage.png").stat().st_size > 10_000
