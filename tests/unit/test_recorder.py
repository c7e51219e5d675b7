"""TraceRecorder: a store that hangs while opening, skipped retries for every write, one recorder per URL."""

from __future__ import annotations

import logging
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mirrorscale.recorder import TraceRecorder, recorder_for


def _trace(run_id: str) -> dict[str, object]:
    return {"engine": "prefect", "pipeline_id": "flow", "task_id": "work", "run_id": run_id,
            "started_at": datetime(2026, 1, 1, tzinfo=timezone.utc), "peak_rss_bytes": 1}


@pytest.fixture()
def silent_server() -> socket.socket:
    """A TCP port that accepts connections into its backlog and never answers (a hung database server)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    yield server
    server.close()


def test_a_store_hanging_while_it_opens_costs_the_timeout_and_one_warning(silent_server: socket.socket,
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    url = f"postgresql+psycopg://nobody@127.0.0.1:{silent_server.getsockname()[1]}/hangs"
    recorder = TraceRecorder(url, timeout=0.5)
    with caplog.at_level(logging.WARNING, logger="mirrorscale.recorder"):
        for i in range(3):  # the opener of the first call is still stuck: later calls must not wait for it
            started = time.monotonic()
            assert recorder.record(**_trace(f"r{i}")) is None
            assert recorder.call("an allocation", lambda store: store) is None
            assert time.monotonic() - started < 3.0
    assert recorder.down and recorder.failures == 6
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_after_a_failure_writes_and_calls_are_skipped_until_retry_after(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    now = [0.0]
    recorder = TraceRecorder(f"sqlite:///{blocker}/store.sqlite", retry_after=30.0, clock=lambda: now[0])
    opened: list[int] = []
    assert recorder.call("open", lambda store: opened.append(1)) is None  # cannot open: counted, warned
    now[0] = 10.0
    assert recorder.call("open", lambda store: opened.append(1)) is None
    assert recorder.record(**_trace("skipped")) is None
    assert recorder.failures == 3 and recorder.warnings == 1
    recorder.url = f"sqlite:///{tmp_path / 'store.sqlite'}"  # the store is back
    now[0] = 31.0
    assert recorder.record(**_trace("stored")) is not None and not recorder.down


def test_one_recorder_per_url_and_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    first = recorder_for(url, timeout=3.0)
    assert recorder_for(url, timeout=99.0) is first and first.timeout == 3.0
    assert recorder_for(f"sqlite:///{tmp_path / 'other.sqlite'}") is not first
