"""Reading Nextflow traces: raw and human formats, row errors with line numbers, missing columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrorscale.nextflow import (
    TraceFormatError,
    parse_duration_ms,
    parse_memory,
    parse_timestamp_ms,
    read_nextflow_trace,
)

HEADER = "task_id,hash,process,name,status,exit,attempt,submit,start,complete,realtime,%cpu,peak_rss,rss,memory,rchar,wchar"


def write(tmp_path: Path, body: str, name: str = "trace_demo.csv") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


@pytest.mark.parametrize(("text", "expected"), [
    ("524288000", 524288000), ("500 MB", 500 * 2**20), ("1.5 GB", int(1.5 * 2**30)), ("12 KB", 12 * 1024),
    ("-", None), ("", None),
])
def test_parse_memory(text: str, expected: int | None) -> None:
    assert parse_memory(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("6094", 6094), ("850ms", 850), ("1m 2s", 62_000), ("1h 3m 4.5s", 3_784_500), ("-", None),
])
def test_parse_duration(text: str, expected: int | None) -> None:
    assert parse_duration_ms(text) == expected


def test_parse_timestamp_accepts_epoch_ms_and_dates() -> None:
    assert parse_timestamp_ms("1716753290296") == 1716753290296
    assert parse_timestamp_ms("2024-05-26 20:01:30.296") == 1716753690296


@pytest.mark.parametrize("bad", ["lots", "5 parsecs"])
def test_parse_memory_rejects_garbage(bad: str) -> None:
    with pytest.raises(ValueError, match="512 MB"):
        parse_memory(bad)


def test_reads_raw_and_human_rows(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join([
        HEADER,
        "1,ab/12,ALIGN,ALIGN (1),COMPLETED,0,1,1000,2000,8000,6000,150.0,104857600,100000000,2147483648,5000,10",
        "2,cd/34,ALIGN,ALIGN (2),FAILED,137,1,1000,2000,8000,1m 2s,99.5%,2 GB,1 GB,4 GB,1.5 GB,-",
    ]))
    trace = read_nextflow_trace(path)
    assert trace.workflow == "demo" and trace.errors == []
    first, second = trace.tasks
    assert (first.line, first.process, first.realtime_ms, first.peak_rss, first.memory) == (2, "ALIGN", 6000, 104857600, 2**31)
    assert (second.exit_code, second.realtime_ms, second.pct_cpu, second.peak_rss, second.rchar) == (137, 62_000, 99.5, 2 * 2**30, int(1.5 * 2**30))
    assert second.wchar is None
    assert [t.run_key for t in trace.tasks] == ["ab/12", "cd/34"]


def test_tab_separated_traces_are_read(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER.replace(",", "\t") + "\n" + "1\tab\tP\tP (1)\tCOMPLETED\t0\t1\t1\t2\t3\t4\t5\t6\t7\t8\t9\t10\n", "t.tsv")
    (task,) = read_nextflow_trace(path).tasks
    assert (task.process, task.peak_rss, task.rchar) == ("P", 6, 9)


def test_bad_rows_are_reported_with_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "\n".join([
        HEADER,
        "1,ab,P,P (1),COMPLETED,0,1,1,2,3,4,5,6,7,8,9,10",
        "2,cd,P,P (2),COMPLETED,0,1,1,2,3,4,5,lots,7,8,9,10",
        "3,ef,,P (3),COMPLETED,0,1,1,2,3,4,5,6,7,8,9,10",
    ]))
    trace = read_nextflow_trace(path)
    assert len(trace.tasks) == 1
    first, second = trace.errors
    assert (first.line, first.column, first.value) == (3, "peak_rss", "lots")
    assert (second.line, second.column) == (4, "process")
    assert f"{path}:3: column 'peak_rss'" in str(first)


def test_numbers_the_store_cannot_hold_are_row_errors_not_crashes(tmp_path: Path) -> None:
    # found by hypothesis: a 26-digit peak overflowed SQLite's INTEGER, a 26-digit submit time datetime
    path = tmp_path / "huge.txt"
    path.write_text("process\tstatus\trealtime\tpeak_rss\tsubmit\tattempt\n"
                    "a\tCOMPLETED\t-\t99999999999999999999999999\t1\t1\n"
                    "b\tCOMPLETED\t-\t1\t99999999999999999999999999\t1\n"
                    "c\tCOMPLETED\t-\t1\t1\t1e12\n"
                    "d\tCOMPLETED\tinf\t1\t1\t1\n")
    trace = read_nextflow_trace(path)
    assert trace.tasks == []
    assert [(e.line, e.column) for e in trace.errors] == [(2, "peak_rss"), (3, "submit"), (4, "attempt"),
                                                          (5, "realtime")]
    assert all("out of range" in e.message or "expected" in e.message for e in trace.errors)


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "process,status,realtime\nP,COMPLETED,5\n")
    with pytest.raises(TraceFormatError, match=r"trace_demo\.csv: missing column 'peak_rss'"):
        read_nextflow_trace(path)


def test_missing_or_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="cannot read the file"):
        read_nextflow_trace(tmp_path / "nope.csv")
    with pytest.raises(TraceFormatError, match="empty"):
        read_nextflow_trace(write(tmp_path, ""))
