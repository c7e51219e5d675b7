"""Mirrors run in a capped, time-limited sandbox; failures are reported, never propagated.

The mirrored callables below are module-level so the mirror process can import
them (pytest puts this folder on ``sys.path``; the forkserver inherits it).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import mirrorscale
from mirrorscale.mirror import mirror_task, preview
from mirrorscale.mirror.extrapolate import CostPoint, MirroredRun
from mirrorscale.mirror.samplers import sample_inputs
from mirrorscale.mirror.sandbox import run_sandboxed
from mirrorscale.mirror.shadow import (PROBE_REUSE_RUNS, code_version, measured_probe, mirrored_run_of,
                                       shadow_points)
from mirrorscale.policy import TaskPolicy
from mirrorscale.store.models import ResourceShadow

MIB = 2**20
NOT_NICED = {"niceness": 0}  # niced mirrors crawl on a busy CI machine; niceness itself is not under test
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mirrors need Linux /proc")


def hog(rows: list[int], mib_per_row: float) -> int:
    """Allocate (and touch) ``len(rows) * mib_per_row`` MiB."""
    block = bytearray(int(len(rows) * mib_per_row * MIB))
    return len(block)


def sleeper(rows: list[int], seconds: float) -> None:
    """Sleep, whatever the input."""
    time.sleep(seconds)


def raiser(rows: list[int]) -> None:
    """Fail like a buggy task."""
    raise RuntimeError(f"bad row {rows[0]}")


def reporter(rows: list[int], report: str) -> None:
    """Write a relative file, and report what the mirror saw to the absolute path ``report``."""
    Path("relative-output.txt").write_text("mirror output")
    info = {"is_mirror": mirrorscale.is_mirror(), "scratch": str(mirrorscale.scratch_dir()), "cwd": os.getcwd(),
            "relative_exists": Path("relative-output.txt").exists(), "rows": len(rows)}
    Path(report).write_text(json.dumps(info))


def linear(rows: list[int]) -> int:
    """Memory and time proportional to the input."""
    copies = [str(r) * 4 for r in rows]
    return len(sorted(copies))


def test_memory_cap_kills_the_mirror_and_the_caller_continues() -> None:
    shadow = preview(hog, (list(range(1000)), 0.3), fractions=[0.5], memory_cap="64MiB", **NOT_NICED)
    assert isinstance(shadow, ResourceShadow)
    assert shadow.outcome == "memory_cap"
    assert "memory cap" in shadow.error or "MemoryError" in shadow.error
    assert shadow.predicted_peak_rss_bytes is None
    assert shadow.cost_peak_rss_bytes < 64 * MIB + 200 * MIB  # killed long before the 150 MiB it wanted
    # the same call under a generous cap succeeds: the cap, not the call, killed it
    ok = preview(hog, (list(range(1000)), 0.3), fractions=[0.5], memory_cap="512MiB", **NOT_NICED)
    assert ok.outcome == "ok"
    assert ok.measured_peak_rss_increase_bytes == pytest.approx(150 * MIB, rel=0.15)


def test_watchdog_alone_kills_a_slow_grower() -> None:
    result = run_sandboxed(f"{__name__}:grow_slowly", (), memory_cap=48 * MIB, timeout=20)
    assert result.outcome == "memory_cap"
    assert "watchdog" in result.enforcement


def grow_slowly() -> None:
    """Grow 8 MiB at a time, for the watchdog."""
    blocks = []
    for _ in range(40):
        blocks.append(bytearray(8 * MIB))
        time.sleep(0.05)


def test_timeout_kills_the_mirror() -> None:
    started = time.monotonic()
    shadow = preview(sleeper, (list(range(10)), 30.0), fractions=[0.5], timeout=1.0)
    assert shadow.outcome == "timeout"
    assert "timeout" in shadow.error
    assert time.monotonic() - started < 10


def test_a_raising_mirror_is_reported_not_propagated() -> None:
    shadow = preview(raiser, (list(range(100)),))
    assert shadow.outcome == "error"
    assert shadow.error.startswith("RuntimeError: bad row")


def test_is_mirror_and_scratch_dir(tmp_path) -> None:
    assert mirrorscale.is_mirror() is False and mirrorscale.scratch_dir() is None
    report = tmp_path / "report.json"
    shadow = preview(reporter, (list(range(100)), str(report)), fractions=[0.1])
    assert shadow.outcome == "ok", shadow.error
    info = json.loads(report.read_text())
    assert info["is_mirror"] is True
    assert info["cwd"] == info["scratch"] and info["relative_exists"]
    assert info["rows"] == 10
    assert not Path(info["scratch"]).exists()  # a temporary scratch dir is removed afterwards
    assert not (Path.cwd() / "relative-output.txt").exists()


def test_preview_extrapolates_a_linear_task() -> None:
    rows = list(range(400_000))
    shadow = preview(linear, (rows,), sample_fraction=0.1, **NOT_NICED)
    assert shadow.outcome == "ok", shadow.error
    assert shadow.sample_fraction == 0.1 and shadow.full_input_bytes > shadow.sampled_input_bytes > 0
    assert shadow.predicted_peak_rss_low <= shadow.predicted_peak_rss_bytes <= shadow.predicted_peak_rss_high
    assert shadow.predicted_peak_rss_bytes > 3 * shadow.measured_peak_rss_increase_bytes
    evidence = json.loads(shadow.evidence)
    assert evidence["summary"].startswith("dominated by mirror")
    assert [m["fraction"] for m in evidence["mirrors"]] == [0.002, 0.02, 0.1]
    assert [m["probe"] for m in evidence["mirrors"]] == [True, False, False]


def _touched(nbytes: int) -> bytearray:
    """``nbytes`` of memory, every page written."""
    block = bytearray(nbytes)
    block[::4096] = b"\x01" * len(range(0, nbytes, 4096))
    return block


def fixed_plus_rows(rows: list[int]) -> int:
    """A fixed 48 MiB workspace (a lookup table, a model) plus 1 KiB per row."""
    table = _touched(48 * MIB)
    data = _touched(len(rows) * 1024)
    return len(table) + len(data)


def test_the_probe_keeps_a_fixed_cost_from_being_scaled_up() -> None:
    rows = list(range(100_000))  # 98 MiB of rows at full size, 4.9 MiB in the 5 % sample
    shadow = preview(fixed_plus_rows, (rows,), memory_cap="1GiB", **NOT_NICED)
    assert shadow.outcome == "ok", shadow.error
    full = (48 + 100_000 / 1024) * MIB
    # twenty times the 5 % mirror's 53 MiB would be 1 GiB; the probe shows 48 MiB of it are fixed
    assert shadow.predicted_peak_rss_bytes == pytest.approx(full, rel=0.2)
    assert "fixed + " in json.loads(shadow.evidence)["models"]["peak_rss_bytes"]["model"]


def test_history_that_shows_the_growth_saves_the_middle_mirror() -> None:
    rows = list(range(100_000))
    full = (48 + 100_000 / 1024) * MIB
    size = float(sample_inputs((rows,), {}, fraction=0.05).full_bytes)  # the input size as the mirrors measure it
    past = [(size * share, (48 + 100_000 * share / 1024) * MIB, 0.1 * share, 0.1 * share) for share in (0.25, 0.5)]
    shadow = preview(fixed_plus_rows, (rows,), memory_cap="1GiB", history=past, **NOT_NICED)
    assert shadow.outcome == "ok", shadow.error
    evidence = json.loads(shadow.evidence)
    assert [m["fraction"] for m in evidence["mirrors"]] == [0.001, 0.05]  # probe and sample, no 1 % mirror
    assert evidence["models"]["peak_rss_bytes"]["shares"]["history"] > 0
    assert shadow.predicted_peak_rss_bytes == pytest.approx(full, rel=0.2)
    alike = preview(fixed_plus_rows, (rows,), memory_cap="1GiB", history=past[:1] * 2, **NOT_NICED)
    assert len(json.loads(alike.evidence)["mirrors"]) == 3  # runs of one size say nothing of growth


def test_a_recent_past_previews_probe_stands_for_todays() -> None:
    rows = list(range(100_000))
    full = (48 + 100_000 / 1024) * MIB
    size = float(sample_inputs((rows,), {}, fraction=0.05).full_bytes)
    past = [(size * share, (48 + 100_000 * share / 1024) * MIB, 0.1 * share, 0.1 * share) for share in (0.25, 0.5)]
    first = preview(fixed_plus_rows, (rows,), memory_cap="1GiB", history=past, **NOT_NICED)
    probe = measured_probe(first)
    assert probe is not None and probe.peak_rss_bytes > 40 * MIB  # the fixed 48 MiB workspace

    def mirrored(shadow: Any, count: int = 1) -> list[MirroredRun]:
        return [mirrored_run_of(shadow, CostPoint(size, full, 0.1, 0.1))] * count

    today = preview(fixed_plus_rows, (rows,), memory_cap="1GiB", history=past, mirrored=mirrored(first), **NOT_NICED)
    assert today.outcome == "ok", today.error
    evidence = json.loads(today.evidence)
    assert [(m["fraction"], m.get("reused", False)) for m in evidence["mirrors"]] == [(None, True), (0.05, False)]
    assert "past preview" in evidence["note"] and measured_probe(today) is None
    assert today.predicted_peak_rss_bytes == pytest.approx(full, rel=0.2)  # the reused probe keeps 48 MiB fixed
    assert shadow_points(today)[0] == probe  # a later calibration refits the points this fit used
    stale = mirrored(first) + mirrored(today, PROBE_REUSE_RUNS)  # the measured probe is six previews old
    again = preview(fixed_plus_rows, (rows,), memory_cap="1GiB", history=past, mirrored=stale, **NOT_NICED)
    assert [m["fraction"] for m in json.loads(again.evidence)["mirrors"]] == [0.001, 0.05]  # measured again
    deployed = [replace(run, code_version="an earlier version of the module") for run in mirrored(first)]
    fresh = preview(fixed_plus_rows, (rows,), memory_cap="1GiB", history=past, mirrored=deployed, **NOT_NICED)
    assert [m["fraction"] for m in json.loads(fresh.evidence)["mirrors"]] == [0.001, 0.05]  # the code changed
    assert json.loads(fresh.evidence)["code_version"] == code_version(f"{__name__}:fixed_plus_rows")


def needs_rows(rows: list[int]) -> int:
    """Code that refuses inputs below 50 rows (a model fit, a statistic)."""
    if len(rows) < 50:
        raise ValueError(f"need at least 50 rows, got {len(rows)}")
    return sum(rows)


def test_a_probe_too_small_for_the_code_is_dropped_not_fatal() -> None:
    shadow = preview(needs_rows, (list(range(20_000)),), **NOT_NICED)  # probe: 20 rows, 1 %: 200, 5 %: 1000
    assert shadow.outcome == "ok", shadow.error
    evidence = json.loads(shadow.evidence)
    assert "probe" in evidence["note"] and [m["fraction"] for m in evidence["mirrors"]] == [0.01, 0.05]
    assert shadow.cost_cpu_seconds > sum(m["process_cpu_seconds"] for m in evidence["mirrors"])  # probe paid


def report_collector(rows: list[int], report: str) -> None:
    """Write the collector's first threshold seen inside the mirror to ``report``."""
    import gc

    Path(report).write_text(json.dumps({"gc_threshold": gc.get_threshold()[0], "rows": len(rows)}))


def test_the_sample_is_collected_on_the_full_inputs_schedule(tmp_path) -> None:
    import gc

    report = tmp_path / "gc.json"
    run_sandboxed(report_collector, (list(range(100)), str(report)), scale=0.05, niceness=0)
    assert json.loads(report.read_text())["gc_threshold"] == round(gc.get_threshold()[0] * 0.05)
    run_sandboxed(report_collector, (list(range(100)), str(report)), niceness=0)  # a full run: untouched
    assert json.loads(report.read_text())["gc_threshold"] == gc.get_threshold()[0]


def test_policy_decides_whether_a_task_is_mirrored() -> None:
    assert mirror_task(linear, (list(range(100)),), policy=TaskPolicy(mirror=False)) is None
    shadow = mirror_task(linear, (list(range(1000)),), policy=TaskPolicy(mirror=True, sample_fraction=0.2),
                         **NOT_NICED)
    assert shadow is not None and shadow.sample_fraction == 0.2
    policy = TaskPolicy(mirror=True, samplers={"0": "hash"})  # a list of ints, keyed because the policy says so
    shadow = mirror_task(linear, ([i % 300 for i in range(30_000)],), policy=policy, **NOT_NICED)
    assert json.loads(shadow.evidence)["keyed"]["0"]["chosen_by"] == "policy"


def test_mirror_task_reads_the_tasks_full_runs_from_the_store(tmp_path) -> None:
    from datetime import datetime, timedelta, timezone

    from mirrorscale.store.history import HistoryStore

    rows = list(range(100_000))
    size = float(sample_inputs((rows,), {}, fraction=0.05).full_bytes)
    key, t0 = ("prefect", "etl", "fixed_plus_rows"), datetime(2026, 1, 1, tzinfo=timezone.utc)
    store = HistoryStore.open(f"sqlite:///{tmp_path / 'h.db'}")
    try:
        for i, share in enumerate((0.25, 0.5, 0.5)):
            store.record_trace(engine=key[0], pipeline_id=key[1], task_id=key[2], run_id=f"r{i}",
                               started_at=t0 + timedelta(hours=i), outcome="success", input_size_bytes=int(size * share),
                               peak_rss_bytes=int((48 + 100_000 * share / 1024) * MIB), cpu_seconds=0.1, wall_seconds=0.1)
        store.record_trace(engine=key[0], pipeline_id=key[1], task_id=key[2], run_id="killed",
                           started_at=t0 + timedelta(hours=3), outcome="oom_killed", input_size_bytes=int(size),
                           peak_rss_bytes=10 * MIB)  # a killed run says nothing of the full run's cost
        shadow = mirror_task(fixed_plus_rows, (rows,), policy=TaskPolicy(mirror=True), store=store, key=key,
                             memory_cap="1GiB", **NOT_NICED)
        evidence = json.loads(shadow.evidence)
        assert evidence["models"]["peak_rss_bytes"]["shares"]["history"] > 0
        assert len(evidence["mirrors"]) == 2  # the history shows the growth: no 1 % mirror
        assert store.latest_shadow(key).id == shadow.id
    finally:
        store.close()


def test_local_functions_are_refused() -> None:
    from mirrorscale.mirror import MirrorError

    with pytest.raises(MirrorError):
        preview(lambda rows: None, ([1, 2],))


def test_an_argument_no_process_can_receive_is_refused_by_name() -> None:
    import threading

    from mirrorscale.mirror import MirrorError

    with pytest.raises(MirrorError, match=r"argument lock \(a lock\) cannot be sent to a mirror process"):
        preview(linear, (list(range(2000)),), {"lock": threading.Lock()})


def test_preview_cli_json(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from mirrorscale.cli import _load_commands, app

    _load_commands()
    monkeypatch.chdir(tmp_path)
    args = ["preview", f"{__name__}:linear", "--arg", json.dumps(list(range(20000))), "--sample-fraction", "0.1",
            "--niceness", "0", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["outcome"] == "ok" and payload["sample_fraction"] == 0.1
    assert payload["predicted_peak_rss_bytes"] > 0
    assert payload["evidence"]["summary"].startswith("dominated by mirror")
    failing = CliRunner().invoke(app, ["preview", f"{__name__}:raiser", "--arg", "[1, 2, 3]", "--niceness", "0",
                                       "--json"])
    assert failing.exit_code == 3 and json.loads(failing.stdout)["outcome"] == "error"


def import_inside(rows: list[int]) -> int:
    """Import a module inside the call, like task code that keeps heavy imports out of import time."""
    import xml.dom.minidom  # noqa: F401 - a module the test process has not imported

    return len(rows)


def burn_after_import(rows: list[int]) -> int:
    """A call that costs next to nothing (its module's start-up is not its cost)."""
    return sum(rows)


def test_task_imports_are_found_in_the_bytecode_and_preloaded() -> None:
    from mirrorscale.mirror.sandbox import task_imports

    assert "xml.dom.minidom" not in sys.modules
    found = task_imports(f"{__name__}:import_inside")
    assert found[0] == __name__ and "xml.dom.minidom" in found
    result = run_sandboxed(import_inside, (list(range(10)),), niceness=0)
    assert result.outcome == "ok", result.error
    assert result.call.imported == ()  # the warm forkserver had it loaded before the call


def test_a_task_module_found_through_a_runtime_sys_path_is_imported_once_not_per_mirror(tmp_path,
                                                                                      monkeypatch) -> None:
    """A DAG folder is put on ``sys.path`` at run time: its module loads in the warm server, not in each mirror."""
    (tmp_path / "dag_module_on_runtime_path.py").write_text(
        "import os\n"
        "with open(os.environ['IMPORT_LOG'], 'a') as fh:\n"
        "    fh.write(f'{os.getpid()}\\n')\n"
        "def task(rows):\n"
        "    return sum(rows)\n")
    log = tmp_path / "imports.log"
    monkeypatch.setenv("IMPORT_LOG", str(log))
    monkeypatch.syspath_prepend(str(tmp_path))
    import dag_module_on_runtime_path

    for _ in range(3):
        result = run_sandboxed(dag_module_on_runtime_path.task, (list(range(100)),), niceness=0)
        assert result.outcome == "ok", result.error
    importers = log.read_text().split()
    assert importers[0] == str(os.getpid())
    assert len(importers) == 2, f"imported in {len(importers) - 1} mirror processes, expected once in the server"


def test_start_up_cpu_is_not_counted_in_the_call() -> None:
    result = run_sandboxed(burn_after_import, (list(range(1000)),), niceness=0)
    assert result.outcome == "ok", result.error
    assert result.call.cpu_seconds < 0.05  # fork, unpickling, imports and the monitor are outside the call
    assert result.process_cpu_seconds >= result.call.cpu_seconds  # ... but in what the mirror cost


def test_uncontended_wall_never_drops_below_cpu_per_thread() -> None:
    from mirrorscale.mirror.sandbox import CallCost

    cost = CallCost(0, 0, cpu_seconds=2.0, wall_seconds=3.0, runqueue_wait_seconds=2.5, threads=2)
    assert cost.uncontended_wall_seconds == pytest.approx(1.0)
    assert CallCost(0, 0, 1.0, 3.0, runqueue_wait_seconds=1.5).uncontended_wall_seconds == pytest.approx(1.5)


def group_sizes(df: Any) -> int:
    """Group by a key column: memory follows the distinct keys."""
    return len(df.groupby("key").size())


def distinct_words(words: list[str]) -> int:
    """Distinct values of a list."""
    return len(set(words))


def test_preview_keys_a_frame_and_profiles_a_list_of_keys_it_is_told_to_count() -> None:
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"key": rng.integers(0, 100_000, 300_000), "value": rng.random(300_000)})
    shadow = preview(group_sizes, (frame,), **NOT_NICED)
    assert shadow.outcome == "ok", shadow.error
    evidence = json.loads(shadow.evidence)
    assert evidence["keyed"]["0"]["column"] == "key" and evidence["keyed"]["0"]["distinct"]["sublinear"]
    assert evidence["mirrors"][-1]["effective_fraction"] == pytest.approx(0.05, rel=0.15)
    words = [f"w{r}" for r in (rng.zipf(1.2, 200_000) % 50_000).tolist()]
    evidence = json.loads(preview(distinct_words, (words,), **NOT_NICED).evidence)
    assert evidence["keyed"] == {} and "0" not in evidence.get("distinct", {})  # not profiled unless named
    counted = json.loads(preview(distinct_words, (words,), samplers={0: "keys"}, **NOT_NICED).evidence)
    assert counted["distinct"]["0"]["counted"] is True and 0.5 < counted["distinct"]["0"]["heaps_exponent"] < 1
    assert counted["models"]["peak_rss_bytes"]["exponent"] < 0.95  # the keys' growth bends the memory fit
