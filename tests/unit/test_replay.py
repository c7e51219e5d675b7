"""Replay accounting pinned on a hand-made trace, the protocols, and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mirrorscale.cli import _load_commands
from mirrorscale.cli.app import app
from mirrorscale.predictors.methods import METHODS, get_methods
from mirrorscale.replay.accounting import replay_run
from mirrorscale.replay.protocols import chronological, sizey, sizey_splits
from mirrorscale.replay.records import ReplayTask, load_nextflow_traces

HOUR = 3_600_000  # ms
GB = 1e9          # decimal GB, as in GB·h

# Task A, request 4 GB. File order differs from submit order (A2 comes first in the file).
#   run  submit  peak   runtime
#   A2   2       2 GB   1 h
#   A1   1       1 GB   1 h
#   A3   3       1 GB   2 h
#   A4   4       3 GB   1 h
HAND_TRACE = """process,status,submit,realtime,peak_rss,rss,memory,rchar
A,COMPLETED,2,3600000,2000000000,1900000000,4000000000,10
A,COMPLETED,1,3600000,1000000000,900000000,4000000000,10
A,COMPLETED,3,7200000,1000000000,900000000,4000000000,10
A,COMPLETED,4,3600000,3000000000,2900000000,4000000000,10
A,FAILED,5,3600000,9000000000,9000000000,4000000000,10
"""


@pytest.fixture()
def hand_trace(tmp_path: Path) -> Path:
    path = tmp_path / "trace_hand.csv"
    path.write_text(HAND_TRACE)
    return path


def test_a_run_too_short_to_measure_is_skipped_not_fatal(tmp_path):
    """chipseq's MULTIQC_CUSTOM_PEAKS once ran 28 ms: Nextflow wrote peak_rss 0."""
    path = tmp_path / "trace_short.csv"
    path.write_text(HAND_TRACE.replace("A,FAILED,5,3600000,9000000000,9000000000,4000000000,10\n",
                                       "A,COMPLETED,5,28,0,0,4000000000,10\n"))
    loaded = load_nextflow_traces([path])
    assert len(loaded.tasks) == 4 and loaded.skipped == {"short": 1}
    for tally in chronological(loaded.tasks, get_methods()):
        assert tally.tasks == 4


def _replay(path: Path, name: str):
    tasks = load_nextflow_traces([path]).tasks
    (tally,) = chronological(tasks, [METHODS[name]])
    return tally


def test_vpa_reference_by_hand(hand_trace):
    # A1..A3 get the request (4 GB) while fewer than 3 runs are known:
    #   A1 (4-1) x 1 h = 3, A2 (4-2) x 1 h = 2, A3 (4-1) x 2 h = 6
    # A4: p90 of [1, 2, 1] GB (numpy linear) = 1.8 GB, +15 % = 2.07 GB < 3 GB: failed attempt
    #   wastes 2.07 x 1 h; the retry doubles to 4.14 GB and wastes (4.14 - 3) x 1 h = 1.14
    # total = 3 + 2 + 6 + 2.07 + 1.14 = 14.21 GB·h, 1 failed attempt; used = 1 + 2 + 2 + 3 = 8 GB·h
    tally = _replay(hand_trace, "vpa-reference")
    assert tally.tasks == 4  # the FAILED row is not replayed
    assert tally.wastage_gbh == pytest.approx(14.21)
    assert tally.failures == 1
    assert tally.maq == pytest.approx(8 / (8 + 14.21))


def test_max_seen_and_workflow_by_hand(hand_trace):
    # max-seen: A1 request 4 -> 3; A2 max 1 GB fails (1), retry 2 GB -> 0; A3 max 2 -> (2-1) x 2 h = 2;
    #           A4 max 2 fails (2), retry 4 -> 1.  total 9 GB·h, 2 failures
    tally = _replay(hand_trace, "max-seen")
    assert (tally.wastage_gbh, tally.failures) == (pytest.approx(9.0), 2)
    # workflow: (4-1) + (4-2) + (4-1) x 2 + (4-3) = 12 GB·h, never fails
    tally = _replay(hand_trace, "workflow")
    assert (tally.wastage_gbh, tally.failures) == (pytest.approx(12.0), 0)
    assert tally.cumulative == pytest.approx([3, 5, 11, 12])


def test_oracle_wastes_nothing(hand_trace):
    tally = _replay(hand_trace, "oracle")
    assert (tally.wastage_gbh, tally.failures, tally.maq) == (0.0, 0, 1.0)


def test_every_method_terminates_and_never_undercounts(hand_trace):
    tasks = load_nextflow_traces([hand_trace]).tasks
    for tally in chronological(tasks, get_methods()):
        assert tally.tasks == 4 and tally.wastage_gbh >= 0


class _NeverGrows:
    def allocate(self, run):
        return 1.0

    def retry(self, run, failed, failures):
        return failed  # a broken retry rule: replay must still end

    def observe(self, run):
        pass


def test_broken_retry_rule_still_terminates():
    run = ReplayTask("w", "t", 0, usage=5 * GB, runtime_ms=HOUR)
    outcome = replay_run(_NeverGrows(), run)
    assert outcome.allocations[-1] >= 5 * GB
    assert all(b > a for a, b in zip(outcome.allocations, outcome.allocations[1:]))


def _records(task: str, n: int, runtime: float = HOUR) -> list[ReplayTask]:
    return [ReplayTask("w", task, i, usage=(i + 1) * GB, runtime_ms=runtime) for i in range(n)]


def test_sizey_split_follows_the_harness():
    from sklearn.model_selection import train_test_split

    runs = _records("small", 33) + _records("big", 40) + _records("zero", 40, runtime=0) + _records("b2", 34)
    splits = sizey_splits(runs)
    assert [s[0][0].task for s in splits] == ["big", "b2"]  # <34 rows and zero realtime are skipped
    train, test = splits[0]
    assert (len(train), len(test)) == (12, 28)
    expected_train, expected_test = train_test_split(np.arange(40), test_size=0.7, random_state=1996)
    assert [r.order for r in test] == list(expected_test)
    assert [r.order for r in train] == list(expected_train)


def test_sizey_witt_percentile_by_hand():
    # 40 runs of 1..40 GB, 1 h each. Replay: allocate p95 of the history, double on failure.
    runs = _records("t", 40)
    (tally,) = sizey(runs, [METHODS["witt-percentile"]])
    train, test = sizey_splits(runs)[0]
    history = [r.usage for r in train]
    wasted = 0.0
    for run in test:  # the same accounting, written out
        allocation = np.percentile(history, 95)
        while allocation < run.usage:
            wasted += allocation
            allocation *= 2
        wasted += allocation - run.usage
        history.append(run.usage)
    assert tally.wastage_gbh == pytest.approx(wasted / GB)


SHARED = Path("/work/shared/traces/nfcore")


@pytest.mark.skipif(not SHARED.exists(), reason="shared nf-core traces not available")
def test_reproduces_the_sizey_paper_figures():
    paths = sorted(SHARED.glob("trace_*.csv"))
    tasks = load_nextflow_traces(paths, "rss").tasks
    got = {(t.workflow, t.method): (round(t.wastage_gbh, 4), t.failures)
           for t in sizey(tasks, get_methods(["witt-percentile", "workflow"]))}
    assert got[("iwd", "witt-percentile")] == (1.4389, 62)
    assert got[("iwd", "workflow")] == (15.8629, 0)
    assert got[("rnaseq", "witt-percentile")] == (128.8977, 49)
    assert got[("rnaseq", "workflow")] == (1238.6175, 0)


@pytest.mark.skipif(not SHARED.exists(), reason="shared nf-core traces not available")
def test_witt_regression_comes_near_the_sizey_paper_figures():
    """Not exact: the paper's harness keeps one error list for both offsets and every task of a run."""
    tasks = load_nextflow_traces(sorted(SHARED.glob("trace_*.csv")), "rss").tasks
    got = {(t.workflow, t.method): t.wastage_gbh for t in sizey(tasks, get_methods(["witt-lr", "witt-lr-under"]))}
    assert got[("rnaseq", "witt-lr-under")] == pytest.approx(57.9054, rel=0.03)
    assert got[("rnaseq", "witt-lr")] == pytest.approx(80.9855, rel=0.03)
    assert got[("iwd", "witt-lr-under")] == pytest.approx(2.9436, rel=0.08)


runner = CliRunner()
_load_commands()


def test_cli_json_prints_only_the_results(hand_trace):
    result = runner.invoke(app, ["replay", str(hand_trace), "--json", "-m", "workflow", "-m", "mirrorscale"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["protocol"] == "chronological"
    assert [r["method"] for r in payload["results"]] == ["workflow", "mirrorscale"]
    assert set(payload["results"][0]) == {"workflow", "method", "tasks", "wastage_gbh", "failed_attempts", "maq"}
    assert payload["results"][0]["wastage_gbh"] == 12.0


def test_cli_table_and_plot(hand_trace, tmp_path):
    plot = tmp_path / "w.png"
    result = runner.invoke(app, ["replay", str(hand_trace), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "vpa-reference" in result.stdout and plot.stat().st_size > 0


def test_cli_missing_column_names_file_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("process,status,realtime\nA,COMPLETED,10\n")
    result = runner.invoke(app, ["replay", str(bad)])
    assert result.exit_code != 0
    assert "bad.csv" in result.output and "peak_rss" in result.output
    assert "Traceback" not in result.output


def test_cli_malformed_rows_name_file_and_column(tmp_path):
    bad = tmp_path / "junk.csv"
    bad.write_text("process,status,realtime,peak_rss\nA,COMPLETED,10,lots\n")
    result = runner.invoke(app, ["replay", str(bad)])
    assert result.exit_code != 0
    assert "junk.csv" in result.output and "peak_rss" in result.output


def test_cli_unknown_method_and_protocol(hand_trace):
    assert runner.invoke(app, ["replay", str(hand_trace), "-m", "nope"]).exit_code != 0
    assert runner.invoke(app, ["replay", str(hand_trace), "--protocol", "nope"]).exit_code != 0
