"""Time importing Nextflow traces into a fresh store (first import and the idempotent re-import).

    .venvs/core/bin/python benchmarks/import_traces.py [TRACE.csv ...] [--url URL]

Default traces: ../shared/traces/nfcore/*.csv; default store: a fresh SQLite file.
Prints rows, seconds and rows per second for each pass.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from mirrorscale.store.history import HistoryStore
from mirrorscale.trace_import import import_traces

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--url", help="store URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    files = args.files or sorted((ROOT.parent / "shared" / "traces" / "nfcore").glob("*.csv"))
    with tempfile.TemporaryDirectory() as tmp:
        store = HistoryStore.open(args.url or f"sqlite:///{tmp}/bench.sqlite")
        print(f"store: {store.engine.url.render_as_string(hide_password=True)}; files: {', '.join(f.name for f in files)}")
        for label in ("first import", "re-import"):
            started = time.perf_counter()
            report = import_traces(store, files)
            seconds = time.perf_counter() - started
            print(f"{label:>12}: {report.rows} rows, {report.inserted} inserted, "
                  f"{seconds:.3f} s, {report.rows / seconds:,.0f} rows/s")
        store.close()


if __name__ == "__main__":
    main()
