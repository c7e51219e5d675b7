"""``mirrorscale traces import``: load Nextflow trace files into the history store."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mirrorscale.cli.app import app, console, err_console, fail, print_json
from mirrorscale.nextflow import TraceFormatError
from mirrorscale.store.history import HistoryStore
from mirrorscale.trace_import import TraceImportError, import_traces

traces_app = typer.Typer(help="Import execution traces into the history store.", no_args_is_help=True)
app.add_typer(traces_app, name="traces")


@traces_app.command("import")
def import_command(
    files: list[Path] = typer.Argument(..., help="Nextflow trace files (CSV or TSV)."),
    pipeline: str = typer.Option(None, "--pipeline", help="Pipeline id to use instead of the file name."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Import the good rows even if some are malformed."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON report only."),
) -> None:
    """Import Nextflow traces; importing the same file twice adds nothing."""
    store = HistoryStore.open()
    with Progress(TextColumn("importing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, disable=as_json, transient=True) as progress:
        bar = progress.add_task("rows", total=None)
        try:
            report = import_traces(store, files, pipeline_id=pipeline, skip_bad=skip_bad,
                                   progress=lambda n: progress.update(bar, advance=n))
        except (TraceFormatError, TraceImportError) as exc:
            raise fail(str(exc)) from None
    if as_json:
        print_json({"files": report.files, "rows": report.rows, "inserted": report.inserted,
                    "already_present": report.already_present, "skipped": report.skipped,
                    "errors": [str(e) for e in report.errors]})
        return
    for error in report.errors:
        err_console.print(f"[yellow]skipped[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    console.print(f"{report.files} file(s), {report.rows} rows: {report.inserted} imported, "
                  f"{report.already_present} already present, {report.skipped} skipped")
