"""``mirrorscale replay``: score sizing methods on recorded traces, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mirrorscale.cli.app import app, err_console, fail, print_json, print_table
from mirrorscale.nextflow import TraceFormatError

PROGRESS_THRESHOLD = 20_000
"""Replays with at least this many (run x method) steps show a progress bar on stderr."""


def _run_with_progress(function, tasks, methods, show: bool):
    if not show:
        return function(tasks, methods)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err_console, transient=True) as progress:
        bar = progress.add_task("replay", total=len(tasks) * len(methods))
        return function(tasks, methods, lambda done: progress.advance(bar, done))


def _load(traces: list[Path], usage: str, from_store: bool, pipeline: str | None, default_request: str | None):
    """Replay records from the trace files, or from the store; exits with a clear message when there are none."""
    from mirrorscale.replay.records import load_nextflow_traces

    if from_store == bool(traces):
        raise fail("give trace files or --from-store (not both)")
    if not from_store:
        try:
            loaded = load_nextflow_traces(traces, usage)
        except TraceFormatError as exc:
            raise fail(str(exc)) from None
        if not loaded.tasks:
            raise fail("no COMPLETED runs with usage and runtime in " + ", ".join(map(str, traces)))
        return loaded
    from mirrorscale.policy import parse_byte_size
    from mirrorscale.replay.store import from_store as load_from_store
    from mirrorscale.store.history import HistoryStore

    try:
        request = None if default_request is None else float(parse_byte_size(default_request))
    except ValueError as exc:
        raise fail(f"--default-request: {exc}") from None
    store = HistoryStore.open()
    try:
        loaded = load_from_store(store, pipeline=pipeline, default_request=request, usage=usage)
    finally:
        store.close()
    if not loaded.tasks:
        raise fail("the store has no successful runs with a peak and a wall time"
                   + (f" for pipeline {pipeline!r}" if pipeline else ""))
    return loaded


@app.command("replay")
def replay(
    traces: Optional[list[Path]] = typer.Argument(None, help="Nextflow trace files (CSV or TSV)."),
    protocol: str = typer.Option("chronological", "--protocol", "-p",
                                 help="chronological (submit order, peak_rss) or sizey (the Sizey paper's harness)."),
    method: Optional[list[str]] = typer.Option(None, "--method", "-m",
                                               help="Method to score (repeatable); default: all."),
    as_json: bool = typer.Option(False, "--json", help="Print only the results as JSON on stdout."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write cumulative wastage per method to this PNG."),
    from_store: bool = typer.Option(False, "--from-store", help="Replay successful runs from the history store."),
    pipeline: Optional[str] = typer.Option(None, "--pipeline", help="With --from-store: only this pipeline."),
    default_request: Optional[str] = typer.Option(
        None, "--default-request", help="With --from-store: request for runs that recorded none (e.g. 4GiB)."),
) -> None:
    """Replay traces without running anything; report wastage (GB·h), failed attempts and MAQ per method."""
    from mirrorscale.predictors.methods import get_methods
    from mirrorscale.replay.protocols import PROTOCOLS, USAGE_COLUMN
    from mirrorscale.replay.report import json_payload, plot_cumulative, relative_to, result_rows

    if protocol not in PROTOCOLS:
        raise fail(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    try:
        methods = get_methods(method)
    except KeyError as exc:
        raise fail(exc.args[0]) from None
    loaded = _load(traces or [], USAGE_COLUMN[protocol], from_store, pipeline, default_request)
    show = not as_json and len(loaded.tasks) * len(methods) >= PROGRESS_THRESHOLD
    tallies = _run_with_progress(PROTOCOLS[protocol], loaded.tasks, methods, show)
    if plot is not None:
        plot_cumulative(tallies, plot, title=f"protocol {protocol}")
    if as_json:
        print_json(json_payload(protocol, tallies))
        return
    for workflow, skipped in loaded.skipped.items():
        err_console.print(f"{workflow}: {skipped} completed row(s) without usage or realtime were skipped")
    if loaded.row_errors:
        err_console.print(f"{len(loaded.row_errors)} row(s) could not be parsed; first: {loaded.row_errors[0]}")
    ratios = relative_to(tallies, "vpa-reference")
    rows = [{**row, "vs vpa-reference": f"{ratios[(row['workflow'], row['method'])]:.2f}"
             if (row["workflow"], row["method"]) in ratios else ""} for row in result_rows(tallies)]
    print_table(f"replay ({protocol})", rows)
    if plot is not None:
        err_console.print(f"plot written to {plot}")
