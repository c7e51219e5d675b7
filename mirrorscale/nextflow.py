"""Read Nextflow trace files (the nf-core trace CSV/TSV format).

A Nextflow trace has one row per task *attempt*. Columns mirrorscale uses:
``process`` (task type), ``hash``, ``name``, ``status``, ``attempt``,
``submit``/``start``/``complete`` (epoch ms or dates), ``realtime`` (ms or
``1m 2s``), ``peak_rss``/``rss``/``memory`` (bytes or ``1.2 GB``), ``rchar``/
``wchar``/``read_bytes``/``write_bytes``, ``cpus`` and ``%cpu``.

Both the raw form (``trace.raw = true``: plain numbers) and the human form
(``8 GB``, ``1m 3s``, ``183.8%``) are accepted; ``-`` means missing.

Rows that cannot be parsed are reported as :class:`TraceRowError` with their
line number and column, never silently dropped. A file missing a required
column raises :class:`TraceFormatError` naming the file and the column.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

REQUIRED_COLUMNS = ("process", "status", "realtime", "peak_rss")
"""Columns without which a trace cannot be used for sizing."""

_MEMORY_UNITS = {
    "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4, "PB": 1024**5,
}
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")


class TraceFormatError(ValueError):
    """A trace file that cannot be read at all (missing file or column)."""

    def __init__(self, path: str | Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = str(path)


@dataclass(frozen=True, slots=True)
class TraceRowError:
    """One row of a trace file that could not be parsed."""

    path: str
    line: int
    column: str
    value: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: column {self.column!r}: {self.message} (got {self.value!r})"


@dataclass(frozen=True, slots=True)
class NextflowTask:
    """One task attempt from a Nextflow trace, with sizes in bytes and times in ms."""

    line: int
    process: str
    name: str
    hash: str
    native_id: str
    status: str
    exit_code: int | None
    attempt: int
    submit_ms: int | None
    start_ms: int | None
    complete_ms: int | None
    realtime_ms: int | None
    peak_rss: int | None
    rss: int | None
    memory: int | None
    rchar: int | None
    wchar: int | None
    read_bytes: int | None
    write_bytes: int | None
    cpus: float | None
    pct_cpu: float | None

    @property
    def run_key(self) -> str:
        """A stable id of this attempt inside its trace (hash, else native id, else name)."""
        return self.hash or self.native_id or self.name or f"line{self.line}"


@dataclass
class NextflowTrace:
    """The parsed rows of one trace file and the rows that failed to parse."""

    path: str
    tasks: list[NextflowTask] = field(default_factory=list)
    errors: list[TraceRowError] = field(default_factory=list)

    @property
    def workflow(self) -> str:
        """Workflow name derived from the file name (``trace_rnaseq.csv`` -> ``rnaseq``)."""
        stem = Path(self.path).stem
        return stem[len("trace_"):] if stem.startswith("trace_") and len(stem) > 6 else stem

    def completed(self) -> list[NextflowTask]:
        """Tasks whose status is COMPLETED (what replay and sizing use)."""
        return [t for t in self.tasks if t.status == "COMPLETED"]


MAX_INTEGER = 2**63 - 1
"""The largest byte count or duration the store keeps (a signed 64-bit column)."""
MAX_TIMESTAMP_MS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp() * 1000)
"""The latest moment a timestamp may name (the end of year 9999)."""


def _fits(number: int, limit: int = MAX_INTEGER) -> int:
    """``number`` when it is within +-``limit``; else a ValueError that says so."""
    if not -limit <= number <= limit:
        raise ValueError(f"{number} is out of range (at most {limit} in size)")
    return number


def parse_memory(value: str) -> int | None:
    """Parse ``524288000``, ``500 MB`` or ``1.2 GB`` into bytes; ``-``/empty -> None."""
    text = value.strip()
    if text in ("", "-"):
        return None
    if re.fullmatch(r"\d+", text):
        return _fits(int(text))
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGTP]?B)", text, flags=re.IGNORECASE)
    if not match:
        raise ValueError("expected bytes as a number or with a unit such as '512 MB'")
    return _fits(int(float(match.group(1)) * _MEMORY_UNITS[match.group(2).upper()]))


def parse_duration_ms(value: str) -> int | None:
    """Parse ``6094`` (ms) or ``1m 2s``/``850ms``/``1h 3m 4s`` into milliseconds."""
    text = value.strip()
    if text in ("", "-"):
        return None
    if re.fullmatch(r"\d+", text):
        return _fits(int(text))
    parts = _DURATION_PART.findall(text)
    if not parts or _DURATION_PART.sub("", text).strip():
        raise ValueError("expected milliseconds or a duration such as '1m 2s'")
    return _fits(int(round(sum(float(n) * _DURATION_UNITS[u] for n, u in parts) * 1000)))


def parse_timestamp_ms(value: str) -> int | None:
    """Parse epoch milliseconds or ``2024-05-26 20:01:30.296`` (UTC) into epoch ms."""
    text = value.strip()
    if text in ("", "-"):
        return None
    if re.fullmatch(r"\d+", text):
        return _fits(int(text), MAX_TIMESTAMP_MS)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("expected epoch milliseconds or a date such as '2024-05-26 20:01:30'") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def parse_number(value: str) -> float | None:
    """Parse ``183.8`` or ``183.8%`` into a float; ``-``/empty -> None."""
    text = value.strip().rstrip("%").strip()
    if text in ("", "-"):
        return None
    try:
        number = float(text)
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(number):
        raise ValueError("expected a finite number")
    return number


def _parse_int(value: str) -> int | None:
    """A whole number of a 32-bit column (exit code, attempt)."""
    number = parse_number(value)
    return None if number is None else _fits(int(number), 2**31 - 1)


_PARSERS = {
    "exit_code": _parse_int,
    "attempt": _parse_int,
    "submit_ms": parse_timestamp_ms,
    "start_ms": parse_timestamp_ms,
    "complete_ms": parse_timestamp_ms,
    "realtime_ms": parse_duration_ms,
    "peak_rss": parse_memory,
    "rss": parse_memory,
    "memory": parse_memory,
    "rchar": parse_memory,
    "wchar": parse_memory,
    "read_bytes": parse_memory,
    "write_bytes": parse_memory,
    "cpus": parse_number,
    "pct_cpu": parse_number,
}
_COLUMN_OF = {
    "submit_ms": "submit", "start_ms": "start", "complete_ms": "complete",
    "realtime_ms": "realtime", "pct_cpu": "%cpu", "exit_code": "exit",
}


def _parse_row(path: str, line: int, row: dict[str, str]) -> NextflowTask | TraceRowError:
    values: dict[str, object] = {}
    for attr, parser in _PARSERS.items():
        column = _COLUMN_OF.get(attr, attr)
        raw = row.get(column) or "-"
        try:
            values[attr] = parser(raw)
        except ValueError as exc:
            return TraceRowError(path, line, column, raw, str(exc))
    process = (row.get("process") or "").strip()
    if not process or process == "-":
        return TraceRowError(path, line, "process", row.get("process") or "", "a task needs a process name")
    attempt = values.pop("attempt")
    return NextflowTask(
        line=line,
        process=process,
        name=(row.get("name") or "").strip(),
        hash=(row.get("hash") or "").strip().strip("-"),
        native_id=(row.get("native_id") or "").strip().strip("-"),
        status=(row.get("status") or "").strip().upper(),
        attempt=int(attempt) if attempt is not None else 1,
        **values,  # type: ignore[arg-type]
    )


def read_nextflow_trace(path: str | Path) -> NextflowTrace:
    """Read one Nextflow trace (comma- or tab-separated) into a :class:`NextflowTrace`.

    Raises :class:`TraceFormatError` when the file is missing, empty or lacks a
    column of :data:`REQUIRED_COLUMNS`; rows that fail to parse are collected in
    ``errors`` with their line numbers (line 1 is the header).
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise TraceFormatError(source, f"cannot read the file ({exc.strerror or exc})") from None
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise TraceFormatError(source, "the file is empty; expected a Nextflow trace header line")
    delimiter = "\t" if lines[0].count("\t") > lines[0].count(",") else ","
    reader = csv.DictReader(lines, delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise TraceFormatError(
            source,
            f"missing column {missing[0]!r}; a Nextflow trace needs {', '.join(REQUIRED_COLUMNS)} "
            "(enable them with trace.fields in nextflow.config)",
        )
    trace = NextflowTrace(path=str(source))
    for row in reader:
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        parsed = _parse_row(str(source), reader.line_num, row)
        if isinstance(parsed, TraceRowError):
            trace.errors.append(parsed)
        else:
            trace.tasks.append(parsed)
    return trace
