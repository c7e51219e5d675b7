"""``python -m mirrorscale.demo``: the example pipelines without and with mirrorscale, then a report.

::

    python -m mirrorscale.demo                 # the full demo (a few minutes)
    python -m mirrorscale.demo --quick         # a short version (tests)
    python -m mirrorscale.demo traces [FILES]  # only the recorded-trace part (no engine needed)

Everything lives in one demo folder (``--home``, else ``$MIRRORSCALE_HOME``, else
``./.demo``): the embedded SQLite history store, the temporary Prefect API
server's database, the policy files, ``demo.log`` (mirrorscale's warnings) and
``report.html``. The folder is emptied first when an earlier demo made it (it
holds ``.mirrorscale-demo``); any other non-empty folder is refused.

Memory is measured as the rise of the task process's RSS, so the demo runs with
``MALLOC_MMAP_THRESHOLD_`` set (re-executing itself once when needed): buffers a
task frees go back to the system instead of staying in the heap for the next task,
whose measured rise would then miss them.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
from pathlib import Path

__all__ = ["main"]

MARKER = ".mirrorscale-demo"
MMAP_ENV = "MALLOC_MMAP_THRESHOLD_"
EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples" / "prefect"
_OVERRIDES = ("MIRRORSCALE_DATABASE_URL", "MIRRORSCALE_POLICY_FILE", "MIRRORSCALE_MODE", "MIRRORSCALE_MIRROR",
              "MIRRORSCALE_SAMPLE_FRACTION", "MIRRORSCALE_HEADROOM", "PREFECT_API_URL")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mirrorscale.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short schedule (about a third), no trace replay")
    parser.add_argument("--home", type=Path, help="the demo folder (default: $MIRRORSCALE_HOME, else ./.demo)")
    parser.add_argument("--no-replay", action="store_true", help="skip the replay of the recorded nf-core traces")
    return parser.parse_args(argv)


def prepare_home(home: Path) -> Path:
    """Empty ``home`` if an earlier demo made it (refuse any other non-empty folder); mark it as the demo's."""
    home = home.expanduser().resolve()
    if home.exists() and any(home.iterdir()):
        if not (home / MARKER).exists():
            raise SystemExit(f"mirrorscale demo: {home} is not empty and was not made by the demo; "
                             "pass --home with a new or empty folder")
        shutil.rmtree(home)
    home.mkdir(parents=True, exist_ok=True)
    (home / MARKER).write_text("made by python -m mirrorscale.demo; emptied by its next run\n")
    return home


def _isolate(home: Path) -> list[str]:
    """Point mirrorscale and Prefect at the demo folder; returns the user settings that were set aside."""
    removed = [name for name in _OVERRIDES if os.environ.pop(name, None) is not None]
    os.environ["MIRRORSCALE_HOME"] = str(home)
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "CRITICAL")  # the demo prints its own lines
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLES), os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(EXAMPLES))  # the examples import as modules, so their tasks can be mirrored
    handler = logging.FileHandler(home / "demo.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("mirrorscale")
    logger.addHandler(handler)
    logger.propagate = False
    return removed


def _commands(home: Path) -> list[str]:
    prefect_db = home / "prefect" / "prefect.db"
    return [f"dashboard: MIRRORSCALE_HOME={home} mirrorscale ui   (then open http://127.0.0.1:8765/)",
            f"history: MIRRORSCALE_HOME={home} mirrorscale history --summary",
            f"one task: MIRRORSCALE_HOME={home} mirrorscale explain growing-etl.transform",
            f"Prefect UI with the runs' artifacts: PREFECT_HOME={home / 'prefect' / 'prefect-home'} "
            f"PREFECT_API_DATABASE_CONNECTION_URL=sqlite+aiosqlite:///{prefect_db} prefect server start"]


def run_demo(args: argparse.Namespace) -> int:
    """The pipeline demo (see the module docstring); returns the exit code."""
    from rich.console import Console

    home = prepare_home(args.home or Path(os.environ.get("MIRRORSCALE_HOME") or ".demo"))
    removed = _isolate(home)
    console = Console(highlight=False, width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS") or 150))
    from mirrorscale import config
    from mirrorscale.demo.prefect_server import start_api_server, stop_api_server
    from mirrorscale.demo.scenario import pipelines

    started = time.perf_counter()
    console.rule("[bold]mirrorscale demo[/]: the Prefect example pipelines without and with mirrorscale")
    console.print(f"demo folder {home}; history store {config.database_url()} (embedded SQLite, no server)")
    if removed:
        console.print(f"set aside for the demo: {', '.join(removed)}")
    with console.status("starting a local Prefect API server (10-20 s)..."):
        server = start_api_server(home / "prefect")
    try:
        runs = _run_phases(console, pipelines(args.quick), home)
    finally:
        stop_api_server(server)
    return _finish(console, args, home, runs, started)


def _run_phases(console: object, schedule: list, home: Path) -> list:
    from mirrorscale import config
    from mirrorscale.demo.console import print_run
    from mirrorscale.demo.runs import run_pipeline
    from mirrorscale.store.history import HistoryStore

    store = HistoryStore.open(config.database_url())
    titles = {"static": "phase 1 - without mirrorscale: every task held to its own static memory setting "
                        "(stopped above it, like a container); mirrorscale only records",
              "enforce": "phase 2 - mirrorscale enforce: each task sized before it starts, volatile ones "
                         "mirrored on a sample of the run's input; same inputs"}
    runs = []
    for phase in ("static", "enforce"):
        console.rule(titles[phase])
        for pipeline in schedule:
            for index, run in enumerate(pipeline.runs):
                with console.status(f"{phase}: {pipeline.name} {run.label} ..."):
                    result = run_pipeline(store, pipeline, index, phase, home)
                print_run(console, result, pipeline.focus)
                runs.append(result)
    return runs


def _finish(console: object, args: argparse.Namespace, home: Path, runs: list, started: float) -> int:
    from mirrorscale import config
    from mirrorscale.demo.charts import write_report
    from mirrorscale.demo.console import print_summary
    from mirrorscale.demo.metrics import write_summary
    from mirrorscale.demo.scenario import pipelines
    from mirrorscale.demo.traces import replay_files, trace_files

    console.rule("summary")
    rows = print_summary(console, runs)
    write_summary(home / "summary.json", rows)
    plot = None
    files = trace_files([])
    if not args.quick and not args.no_replay and files:
        plot = home / "replay_wastage.png"
        try:
            replay_files(files, plot)
        except Exception as exc:  # noqa: BLE001 - the replay is an extra; the report is written anyway
            console.print(f"[yellow]the replay of the recorded traces failed ({exc!r}); the report goes without it[/]")
            plot = None
    report = write_report(home / "report.html", runs, pipelines(args.quick), store_url=config.database_url(),
                          wall_seconds=time.perf_counter() - started, extra_png=plot, commands=_commands(home))
    console.rule(f"done in {time.perf_counter() - started:.0f} s")
    console.print(f"report: {report}  (self-contained; open it in a browser: file://{report})")
    console.print(f"figures as JSON: {home / 'summary.json'}")
    for line in _commands(home):
        console.print(line)
    warnings = sum(1 for _ in (home / "demo.log").open()) if (home / "demo.log").exists() else 0
    if warnings:
        console.print(f"{warnings} line(s) of mirrorscale warnings in {home / 'demo.log'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m mirrorscale.demo``; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["traces"]:
        from mirrorscale.demo.traces import main as traces_main

        return traces_main(argv[1:])
    args = _parse(argv)
    if MMAP_ENV not in os.environ:  # see the module docstring; must be set before the process starts
        os.environ[MMAP_ENV] = "65536"
        os.execv(sys.executable, [sys.executable, "-m", "mirrorscale.demo", *argv])
    return run_demo(args)
