"""The main job (``python -m mirrorscale.demo``): what mirrorscale does, on the embedded store.

Today it imports the sample Nextflow traces into the store (SQLite by
default), prints the most recent runs and a per-task summary, replays the
stored runs to compare mirrorscale's sizing with the baselines (and plots the
wastage), and explains the allocation of one task. The engines' example
pipelines come with issue 7's full demo.

Trace files: the arguments, else ``$MIRRORSCALE_DEMO_TRACES`` (a folder),
else ``../shared/traces/nfcore`` beside the repository.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from mirrorscale import config

REPO = Path(__file__).resolve().parents[1]


def trace_files(args: list[str]) -> list[Path]:
    """The trace files the demo imports."""
    if args:
        return [Path(a) for a in args]
    folder = Path(os.environ.get("MIRRORSCALE_DEMO_TRACES", REPO.parent / "shared" / "traces" / "nfcore"))
    return sorted(folder.glob("*.csv"))


def busiest_task() -> str:
    """``pipeline_id.task_id`` of the stored task with the most runs."""
    from mirrorscale.store.history import HistoryStore

    summary = max(HistoryStore.open().task_summaries(), key=lambda s: s.runs)
    return f"{summary.pipeline_id}.{summary.task_id}"


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code."""
    from mirrorscale.cli import _load_commands, app
    from mirrorscale.cli.app import console

    files = trace_files(sys.argv[1:] if argv is None else argv)
    if not files:
        console.print("no trace files found: pass Nextflow trace CSVs, or set MIRRORSCALE_DEMO_TRACES")
        return 2
    _load_commands()
    console.rule("mirrorscale demo")
    console.print(f"store: {config.database_url()}")
    started = time.perf_counter()
    plot = config.data_dir() / "replay_wastage.png"
    steps = [
        ("1. import the traces (twice: the second import adds nothing)", ["traces", "import", *map(str, files)]),
        ("", ["traces", "import", *map(str, files)]),
        ("2. the latest runs in the store", ["history", "--limit", "10"]),
        ("3. one line per task", ["history", "--summary"]),
        ("4. replay the stored runs: memory wasted and failed attempts per sizing method",
         ["replay", "--from-store", "--plot", str(plot)]),
        ("5. why mirrorscale would size the busiest task as it does", ["explain", busiest_task]),
    ]
    for title, args in steps:
        args = [a() if callable(a) else a for a in args]
        if title:
            console.rule(title)
        try:
            code = app(args, standalone_mode=False)  # click returns an Exit's code instead of raising
        except SystemExit as exc:
            code = exc.code
        if code:
            console.print(f"step failed: mirrorscale {' '.join(args)} (exit {code})")
            return int(code)
    console.rule(f"done in {time.perf_counter() - started:.1f} s")
    console.print(f"wastage plot: {plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
