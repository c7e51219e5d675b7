"""``mirrorscale replay --from-store``: the same runs replayed from the store and from the CSV agree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mirrorscale.cli import _load_commands
from mirrorscale.cli.app import app
from mirrorscale.predictors.methods import get_methods
from mirrorscale.replay.protocols import chronological
from mirrorscale.replay.records import load_nextflow_traces
from mirrorscale.replay.store import from_store
from mirrorscale.store.history import HistoryStore
from mirrorscale.trace_import import import_traces

HEADER = "hash,process,name,status,exit,attempt,submit,start,complete,realtime,%cpu,peak_rss,memory,rchar"
T0 = 1_716_753_290_000


def _rows() -> list[str]:
    """Two tasks, 12 runs each, memory growing with input; one OOM-killed attempt and one cached row."""
    rows = []
    for i in range(12):
        for j, (task, base, slope) in enumerate((("ALIGN", 2e9, 3.0), ("SORT", 5e8, 0.5))):
            submit = T0 + (2 * i + j) * 60_000
            size = int(1e8 * (1 + (i * 7) % 5))
            peak = int(base + slope * size * (1 + 0.03 * ((i * 3) % 4)))
            rows.append(f"{i:02x}/{j},{task},{task} ({i}),COMPLETED,0,1,{submit},{submit + 1000},"
                        f"{submit + 1000 + 30_000 * (i + 1)},{30_000 * (i + 1)},100.0,{peak},8000000000,{size}")
    rows.append(f"ff/00,ALIGN,ALIGN (x),FAILED,137,1,{T0 + 99 * 60_000},{T0 + 99 * 60_000 + 1000},"
                f"{T0 + 99 * 60_000 + 5000},4000,100.0,9000000000,8000000000,100")
    rows.append("ee/00,SORT,SORT (x),CACHED,0,1,-,-,-,-,-,-,-,-")
    return rows


@pytest.fixture()
def trace_csv(tmp_path: Path) -> Path:
    path = tmp_path / "trace_wf.csv"
    path.write_text("\n".join([HEADER, *_rows()]) + "\n")
    return path


@pytest.fixture()
def store(tmp_path: Path, trace_csv: Path):
    store = HistoryStore.open(f"sqlite:///{tmp_path / 'store.sqlite'}")
    import_traces(store, [trace_csv])
    yield store
    store.close()


def _results(tallies):
    return [(t.workflow, t.method, t.tasks, t.failures, t.wastage_gbh, t.maq) for t in tallies]


def test_store_records_match_the_csv_records(store, trace_csv):
    csv = load_nextflow_traces([trace_csv]).tasks
    stored = from_store(store).tasks
    assert len(stored) == len(csv) == 24  # only successful runs with a peak
    key = lambda r: (r.task, r.order)  # noqa: E731
    for a, b in zip(sorted(csv, key=key), sorted(stored, key=lambda r: (r.task, r.order - 1000))):
        assert (a.workflow, a.task, a.usage, a.runtime_ms, a.request, a.input_size) == (
            b.workflow, b.task, b.usage, b.runtime_ms, b.request, b.input_size)


def test_replay_from_store_equals_replay_from_csv(store, trace_csv):
    methods = get_methods()
    from_csv = chronological(load_nextflow_traces([trace_csv]).tasks, methods)
    from_db = chronological(from_store(store).tasks, methods)
    assert _results(from_db) == _results(from_csv)
    assert from_store(store, pipeline="other").tasks == []


def test_default_request_fills_runs_without_one(store):
    with store.writing() as session:
        from mirrorscale.store.models import ExecutionTrace

        session.query(ExecutionTrace).update({ExecutionTrace.allocated_memory_bytes: None})
    assert {r.request for r in from_store(store).tasks} == {None}
    assert {r.request for r in from_store(store, default_request=4e9).tasks} == {4e9}


def test_cli_from_store_json_equals_csv(tmp_path, trace_csv, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    monkeypatch.setenv("MIRRORSCALE_DATABASE_URL", url)
    store = HistoryStore.open(url)
    import_traces(store, [trace_csv])
    store.close()
    _load_commands()
    runner = CliRunner()
    csv = runner.invoke(app, ["replay", str(trace_csv), "--json"])
    db = runner.invoke(app, ["replay", "--from-store", "--pipeline", "wf", "--json"])
    assert csv.exit_code == 0 and db.exit_code == 0, db.output
    assert json.loads(db.stdout) == json.loads(csv.stdout)
    assert runner.invoke(app, ["replay", "--from-store", "--pipeline", "nope"]).exit_code != 0
    assert runner.invoke(app, ["replay"]).exit_code != 0
