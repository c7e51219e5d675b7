"""The demo's second part: import recorded Nextflow traces and replay them (``python -m mirrorscale.demo traces``).

Run on its own it imports the sample nf-core trace files into the store (SQLite
by default), lists the latest runs and one line per task, replays the stored runs
to compare mirrorscale's sizing with the baselines (and plots the wastage), and
explains the allocation of the busiest task; the pipeline demo only replays the
files (:func:`replay_files`). Needs only the core package (no engine).

Trace files: the arguments, else ``$MIRRORSCALE_DEMO_TRACES`` (a folder), else
``../shared/traces/nfcore`` beside the repository.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from mirrorscale import config

__all__ = ["busiest_task", "main", "replay_files", "trace_files"]

REPO = Path(__file__).resolve().parents[2]


def trace_files(args: Sequence[str]) -> list[Path]:
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


def _run_steps(steps: Sequence[tuple[str, list]]) -> int:
    """Run CLI steps (``title, args``; an arg may be a callable giving it); the first failing step's exit code."""
    from mirrorscale.cli import _load_commands, app
    from mirrorscale.cli.app import console

    _load_commands()
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
    return 0


def replay_files(files: Sequence[Path], plot: Path) -> int:
    """Replay the trace ``files`` with each sizing method (table + wastage ``plot``); the store is not touched."""
    return _run_steps([
        (f"replay {len(files)} recorded nf-core trace file(s): memory wasted and failed attempts per sizing method",
         ["replay", *map(str, files), "--plot", str(plot)]),
    ])


def main(argv: Sequence[str]) -> int:
    """Import, list, replay and explain; returns the process exit code."""
    from mirrorscale.cli.app import console

    files = trace_files(argv)
    if not files:
        console.print("no trace files found: pass Nextflow trace CSVs, or set MIRRORSCALE_DEMO_TRACES")
        return 2
    console.rule("mirrorscale demo: recorded traces")
    console.print(f"store: {config.database_url()}")
    started = time.perf_counter()
    plot = config.data_dir() / "replay_wastage.png"
    code = _run_steps([
        ("1. import the traces (twice: the second import adds nothing)", ["traces", "import", *map(str, files)]),
        ("", ["traces", "import", *map(str, files)]),
        ("2. the latest runs in the store", ["history", "--limit", "10"]),
        ("3. one line per task", ["history", "--summary"]),
        ("4. replay the stored runs: memory wasted and failed attempts per sizing method",
         ["replay", "--from-store", "--plot", str(plot)]),
        ("5. why mirrorscale would size the busiest task as it does", ["explain", busiest_task]),
    ])
    if code:
        return code
    console.rule(f"done in {time.perf_counter() - started:.1f} s")
    console.print(f"wastage plot: {plot}")
    return 0
