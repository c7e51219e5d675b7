"""Importing traces: idempotent, atomic, malformed rows reported by line, and the CLI around it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorscale.cli import _load_commands, app
from mirrorscale.store.history import HistoryStore
from mirrorscale.trace_import import TraceImportError, import_traces

HEADER = "hash,process,name,status,exit,attempt,submit,start,complete,realtime,%cpu,peak_rss,memory,rchar"
GOOD = [
    "aa/01,ALIGN,ALIGN (1),COMPLETED,0,1,1716753290000,1716753291000,1716753298000,7000,200.0,104857600,524288000,1000",
    "aa/02,ALIGN,ALIGN (2),FAILED,137,1,1716753290000,1716753291000,1716753292000,1000,100.0,524288000,524288000,2000",
    "aa/02,ALIGN,ALIGN (2),COMPLETED,0,2,1716753293000,1716753294000,1716753299000,5000,100.0,700000000,1048576000,2000",
    "bb/01,SORT,SORT (1),CACHED,0,1,-,-,-,-,-,-,-,-",
]


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    return HistoryStore.open(f"sqlite:///{tmp_path / 's.sqlite'}")


def trace_file(tmp_path: Path, rows: list[str], name: str = "trace_wf.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def test_import_maps_attempts_outcomes_and_is_idempotent(store: HistoryStore, tmp_path: Path) -> None:
    path = trace_file(tmp_path, GOOD)
    report = import_traces(store, [path])
    assert (report.rows, report.inserted, report.skipped) == (4, 3, 1)  # the CACHED row was not a run
    again = import_traces(store, [path])
    assert (again.inserted, again.already_present) == (0, 3)
    assert store.count_traces() == 3
    runs = {(t.run_id, t.try_number): t for t in store.latest_traces("nextflow", "wf", "ALIGN")}
    assert runs["aa/02", 1].outcome == "oom_killed"  # exit 137
    assert runs["aa/02", 2].outcome == "success"
    first = runs["aa/01", 1]
    assert (first.peak_rss_bytes, first.allocated_memory_bytes, first.input_size_bytes) == (104857600, 524288000, 1000)
    assert first.wall_seconds == 7.0 and first.cpu_seconds == pytest.approx(14.0)
    assert first.started_at.timestamp() == 1716753291.0


def test_malformed_rows_abort_the_whole_import(store: HistoryStore, tmp_path: Path) -> None:
    good = trace_file(tmp_path, GOOD[:1], "trace_ok.csv")
    bad = trace_file(tmp_path, [GOOD[1], GOOD[2].replace("700000000", "seven hundred")], "trace_bad.csv")
    with pytest.raises(TraceImportError) as caught:
        import_traces(store, [good, bad])
    assert "trace_bad.csv:3: column 'peak_rss'" in str(caught.value)
    assert "nothing was imported" in str(caught.value)
    assert store.count_traces() == 0  # not even the good file


def test_skip_bad_imports_the_good_rows(store: HistoryStore, tmp_path: Path) -> None:
    path = trace_file(tmp_path, [GOOD[0], GOOD[1].replace(",1000,100.0", ",soon,100.0")])
    report = import_traces(store, [path], skip_bad=True)
    assert (report.inserted, report.skipped, len(report.errors)) == (1, 1, 1)
    assert report.errors[0].line == 3 and report.errors[0].column == "realtime"


def test_pipeline_override(store: HistoryStore, tmp_path: Path) -> None:
    import_traces(store, [trace_file(tmp_path, GOOD[:1])], pipeline_id="rnaseq-prod")
    assert [t.key for t in store.tasks()] == ["rnaseq-prod.ALIGN"]


# -- the CLI --------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MIRRORSCALE_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.sqlite'}")
    _load_commands()
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


def test_cli_import_then_history_json(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = trace_file(tmp_path, GOOD)
    result = cli("traces", "import", str(path), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["inserted"] == 3
    result = cli("traces", "import", str(path))
    assert "0 imported, 3 already present" in result.stdout
    history = json.loads(cli("history", "--json").stdout)["traces"]
    assert {(t["engine"], t["pipeline_id"], t["task_id"]) for t in history} == {("nextflow", "wf", "ALIGN")}
    assert len(history) == 3
    one = json.loads(cli("history", "wf.ALIGN", "--json", "-n", "1").stdout)["traces"]
    assert len(one) == 1 and one[0]["run_id"] == "aa/02" and one[0]["try_number"] == 2
    summary = json.loads(cli("history", "--summary", "--json").stdout)["tasks"]
    assert summary[0]["runs"] == 3 and summary[0]["failures"] == 1


def test_cli_reports_malformed_rows_and_unknown_tasks(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bad = trace_file(tmp_path, [GOOD[0].replace("104857600", "big")])
    result = cli("traces", "import", str(bad))
    assert result.exit_code == 1
    assert "trace_wf.csv:2: column 'peak_rss'" in result.stderr
    missing = tmp_path / "trace_x.csv"
    missing.write_text("process,status\nA,COMPLETED\n")
    result = cli("traces", "import", str(missing))
    assert result.exit_code == 1 and "missing column 'realtime'" in result.stderr
    result = cli("history", "nosuchtask")
    assert result.exit_code == 1 and "no task named 'nosuchtask'" in result.stderr


def test_cli_db_commands(cli) -> None:  # type: ignore[no-untyped-def]
    from mirrorscale.store.schema import SCHEMA_REVISION

    assert json.loads(cli("db", "current", "--json").stdout)["revision"] is None
    assert SCHEMA_REVISION in cli("db", "upgrade").stdout
    assert json.loads(cli("db", "current", "--json").stdout)["up_to_date"] is True
    assert "base (empty)" in cli("db", "downgrade", "base").stdout
    assert json.loads(cli("db", "current", "--json").stdout)["revision"] is None


def test_cli_policy_check(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "mirrorscale.toml"
    good.write_text('mode = "recommend"\n[tasks."etl.transform_*"]\nmode = "enforce"\nmemory = { max_allowed = "2GiB" }\n')
    result = cli("policy", "check", str(good), "--task", "etl.transform_users", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert [r["pattern"] for r in payload["rules"]] == ["(defaults)", "etl.transform_*"]
    assert payload["task"]["mode"] == "enforce" and payload["task"]["memory"]["max_allowed"] == 2 * 2**30
    bad = tmp_path / "bad.toml"
    bad.write_text('[tasks."etl.*"]\nmemory = { max_allowed = "lots" }\n')
    result = cli("policy", "check", str(bad))
    assert result.exit_code == 1
    assert "bad.toml" in result.stderr and "memory.max_allowed" in result.stderr and "512MiB" in result.stderr
