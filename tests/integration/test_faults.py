"""Fault injection: the store disappears, mirrors misbehave, stored rows are corrupt.

Every test asserts that the pipeline's own result is unchanged and that
nothing already stored is lost. The "pipeline" is a loop of deterministic
tasks whose traces go through :class:`mirrorscale.recorder.TraceRecorder`,
the engine-neutral recording path.
"""

from __future__ import annotations

import hashlib
import logging
import os
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mirrorscale.allocator import Allocator
from mirrorscale.lifecycle import MirrorLifecycle
from mirrorscale.mirror.sandbox import run_sandboxed
from mirrorscale.policy import PolicySet
from mirrorscale.recorder import TraceRecorder
from mirrorscale.store.history import HistoryStore

MIB = 2**20
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
KEY = ("test", "faults", "step")
POLICIES = PolicySet.from_mapping({"mode": "recommend"}, environ={})


def task(i: int) -> str:
    """The pipeline's own work: a deterministic result."""
    return hashlib.sha256(f"input {i}".encode()).hexdigest()[:16]


def trace(i: int) -> dict:
    started = T0 + timedelta(minutes=i)
    return dict(engine=KEY[0], pipeline_id=KEY[1], task_id=KEY[2], run_id=f"run{i}", started_at=started,
                ended_at=started + timedelta(seconds=5), peak_rss_bytes=(200 + i) * MIB, wall_seconds=5.0,
                cpu_seconds=4.0, input_size_bytes=10**6 * (10 + i), features={"baseline_rss_bytes": 0})


def run_pipeline(recorder: TraceRecorder, runs: range, between=None) -> tuple[list[str], list[float]]:
    """Run tasks ``runs``, record each; ``between(i)`` is called before task ``i`` (to inject a fault)."""
    results, record_seconds = [], []
    for i in runs:
        if between is not None:
            between(i)
        results.append(task(i))
        started = time.monotonic()
        recorder.record(**trace(i))
        record_seconds.append(time.monotonic() - started)
    return results, record_seconds


def stored_runs(url: str) -> set[str]:
    store = HistoryStore.open(url, migrate=False)
    try:
        return {t.run_id for t in store.latest_traces(*KEY, limit=1000)}
    finally:
        store.close()


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "mirrorscale.recorder" and r.levelno >= logging.WARNING]


# -- the store disappears: PostgreSQL ------------------------------------------


class TcpProxy:
    """A TCP proxy on localhost that can be stopped (connections cut, port refused) and started again."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._server: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(32)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            try:
                server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (close alone does not)
            except OSError:
                pass
            server.close()
        with self._lock:
            for sock in self._sockets:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._sockets.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except (OSError, ValueError):
            return


def test_postgres_connection_cut_mid_run(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    HistoryStore.open(postgres_url).close()  # schema first, directly
    real = make_url(postgres_url)
    proxy = TcpProxy((real.host or "127.0.0.1", real.port or 5432))
    proxy.start()
    via_proxy = real.set(port=proxy.port).render_as_string(hide_password=False)
    recorder = TraceRecorder(via_proxy, timeout=5.0)
    caplog.set_level(logging.INFO, logger="mirrorscale.recorder")

    def fault(i: int) -> None:
        if i == 4:
            proxy.stop()  # every connection cut, the port refuses
        if i == 8:
            proxy.start()

    try:
        results, seconds = run_pipeline(recorder, range(12), fault)
    finally:
        proxy.stop()
    assert results == [task(i) for i in range(12)]
    assert max(seconds) < 5.0
    assert len(warnings_of(caplog)) == 1, warnings_of(caplog)
    assert any("recording resumed" in r.getMessage() for r in caplog.records)
    assert not recorder.down
    stored = stored_runs(postgres_url)
    assert {f"run{i}" for i in (*range(4), *range(8, 12))} <= stored
    assert not stored & {f"run{i}" for i in range(4, 8)}


def test_postgres_backends_terminated_mid_run(postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    recorder = TraceRecorder(postgres_url, timeout=5.0)
    admin = create_engine(make_url(postgres_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    database = make_url(postgres_url).database

    def fault(i: int) -> None:
        if i in (3, 7):
            with admin.connect() as conn:
                killed = conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                           "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": database})
                assert killed.scalar() >= 1

    try:
        results, _ = run_pipeline(recorder, range(10), fault)
    finally:
        admin.dispose()
    assert results == [task(i) for i in range(10)]
    # the pool notices dead connections before using them (pre-ping): nothing lost, nothing to warn about
    assert stored_runs(postgres_url) == {f"run{i}" for i in range(10)}
    assert warnings_of(caplog) == []


# -- the store disappears: SQLite ------------------------------------------------


def test_sqlite_locked_by_another_writer(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    HistoryStore.open(sqlite_url).close()
    path = make_url(sqlite_url).database
    recorder = TraceRecorder(sqlite_url, timeout=1.0)
    locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    def fault(i: int) -> None:
        if i == 3:
            locker.execute("BEGIN EXCLUSIVE")
        if i == 6:
            locker.execute("COMMIT")

    try:
        results, seconds = run_pipeline(recorder, range(9), fault)
    finally:
        if locker.in_transaction:
            locker.execute("COMMIT")
        locker.close()
    assert results == [task(i) for i in range(9)]
    assert max(seconds[3:6]) < 1.0 + 0.8  # bounded by the recorder's timeout, not SQLite's 60 s busy wait
    assert len(warnings_of(caplog)) == 1
    assert not recorder.down
    # writes that timed out waited for the lock in the background and landed once it was released
    deadline = time.monotonic() + 10
    while stored_runs(sqlite_url) != {f"run{i}" for i in range(9)} and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stored_runs(sqlite_url) == {f"run{i}" for i in range(9)}


@pytest.mark.skipif(shutil.which("chattr") is None or os.geteuid() != 0, reason="needs chattr as root")
def test_sqlite_made_read_only(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    recorder = TraceRecorder(url, timeout=5.0)
    # the database and its WAL; not the shared-memory index: SQLite maps it, and a mapping that cannot grow
    # is a SIGBUS (an immutable -shm kills the process: mirrorscale cannot guard against that one)
    files = lambda: [str(p) for p in tmp_path.glob("store.sqlite*") if not str(p).endswith("-shm")]  # noqa: E731

    def fault(i: int) -> None:
        if i == 3:  # immutable, even for root
            subprocess.run(["chattr", "+i", *files()], check=True)
        if i == 6:
            subprocess.run(["chattr", "-i", *files()], check=True)

    try:
        results, _ = run_pipeline(recorder, range(9), fault)
    finally:
        subprocess.run(["chattr", "-i", *files()], check=False)
    assert results == [task(i) for i in range(9)]
    assert len(warnings_of(caplog)) == 1, warnings_of(caplog)
    assert not recorder.down
    stored = stored_runs(url)
    assert {f"run{i}" for i in (0, 1, 2, 6, 7, 8)} <= stored


def test_store_that_cannot_even_open(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    recorder = TraceRecorder("postgresql+psycopg://nobody@127.0.0.1:1/none", timeout=5.0)
    results, seconds = run_pipeline(recorder, range(4))
    assert results == [task(i) for i in range(4)]
    assert len(warnings_of(caplog)) == 1
    assert max(seconds) < 5.0


# -- mirrors misbehave -------------------------------------------------------------


def primary(n: int) -> str:
    """The real task: some CPU, some waiting; its result must not change."""
    digest = b"seed"
    for _ in range(n):
        digest = hashlib.sha256(digest).digest()
    time.sleep(0.8)
    return digest.hex()


def mirror_hangs(rows: list[int]) -> None:
    time.sleep(60)


def mirror_hogs(rows: list[int]) -> int:
    block = bytearray(400 * MIB)
    return len(block)


def mirror_raises(rows: list[int]) -> None:
    raise RuntimeError("mirror bug")


def mirror_to_be_killed(rows: list[int], pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)


def _kill_when_started(pid_file: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if pid_file.exists() and pid_file.read_text():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
            return
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mirrors need Linux /proc")
@pytest.mark.parametrize("fault", ["killed", "hangs", "memory_cap", "raises"])
def test_a_failing_mirror_leaves_the_primary_untouched_and_on_time(fault: str, tmp_path: Path) -> None:
    work = 20_000
    expected = primary(work)
    started = time.monotonic()
    primary(work)
    alone = time.monotonic() - started

    cwd, env = os.getcwd(), dict(os.environ)
    pid_file = tmp_path / "mirror.pid"
    fn, args = {"killed": (mirror_to_be_killed, ([1, 2], str(pid_file))), "hangs": (mirror_hangs, ([1, 2],)),
                "memory_cap": (mirror_hogs, ([1, 2],)), "raises": (mirror_raises, ([1, 2],))}[fault]
    outcome: dict = {}

    def launch() -> None:
        # the timeout counts the mirror's start-up too (a cold forkserver on a busy machine takes seconds)
        outcome["result"] = run_sandboxed(fn, args, memory_cap=64 * MIB, timeout=3.0 if fault == "hangs" else 20.0)

    mirror = threading.Thread(target=launch)
    mirror.start()
    if fault == "killed":
        threading.Thread(target=_kill_when_started, args=(pid_file,), daemon=True).start()
    started = time.monotonic()
    result = primary(work)  # the primary runs while its mirror misbehaves
    wall = time.monotonic() - started
    mirror.join(30)
    assert not mirror.is_alive()
    assert result == expected
    assert wall < alone * 1.5 + 0.5, f"primary took {wall:.2f} s with the mirror, {alone:.2f} s alone"
    assert os.getcwd() == cwd and os.environ.get("MIRRORSCALE_MIRROR") == env.get("MIRRORSCALE_MIRROR")
    mirrored = outcome["result"]
    expected_outcome = {"killed": "error", "hangs": "timeout", "memory_cap": "memory_cap", "raises": "error"}[fault]
    assert mirrored.outcome == expected_outcome, (mirrored.outcome, mirrored.error)


def test_an_unusable_shadow_never_sizes_a_run(sqlite_url: str) -> None:
    store = HistoryStore.open(sqlite_url)
    store.add_traces(trace(i) for i in range(20))
    allocator = Allocator(store, POLICIES)
    before = allocator.decide(KEY, "before", features={"input_size_bytes": 30 * 10**6}, save=False)
    for outcome in ("timeout", "memory_cap", "error"):
        store.record_shadow(KEY, outcome=outcome, error="mirror failed", sample_fraction=0.05,
                            predicted_peak_rss_bytes=None)
        after = allocator.decide(KEY, f"after-{outcome}", features={"input_size_bytes": 30 * 10**6}, save=False)
        assert after.source == "history" and after.memory_bytes == before.memory_bytes
        assert f"mirror {outcome}" in after.reason
    assert store.count_traces() == 20


# -- corrupt rows and rows of another schema version --------------------------------


CORRUPT = [
    ("features a list", {"features": "[1, 2, 3]"}),
    ("features a string", {"features": '"baseline"'}),
    ("features JSON null", {"features": "null"}),
    ("baseline not a number", {"features": '{"baseline_rss_bytes": "lots"}'}),
    ("peak NULL", {"peak_rss_bytes": None}),
    ("wall NULL", {"wall_seconds": None}),
    ("negative peak", {"peak_rss_bytes": -5}),
    ("outcome from a newer version", {"outcome": "preempted"}),
]


def _insert_raw(store: HistoryStore, rows: list[tuple[int, dict]]) -> None:
    """Rows written as a newer or buggy writer would: straight SQL, no validation, no CHECK."""
    with store.writing() as session:
        pk = store.task_pk(session, KEY)
        conn = session.connection()
        if store.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA ignore_check_constraints = ON")
        else:
            conn.exec_driver_sql("ALTER TABLE mirrorscale_trace DROP CONSTRAINT ck_mirrorscale_trace_outcome")
        for i, bad in rows:
            values = {"task_pk": pk, "run_id": f"bad{i}", "try_number": 1,
                      "started_at": T0 + timedelta(minutes=i, seconds=30), "recorded_at": T0, "source": "raw",
                      "features": '{"baseline_rss_bytes": 0}', "input_size_bytes": 10**6 * (10 + i),
                      "peak_rss_bytes": (200 + i) * MIB, "wall_seconds": 5.0, "cpu_seconds": 4.0,
                      "outcome": "success", **bad}
            cols = ", ".join(values)
            marks = ", ".join(f":{c}" for c in values)
            if store.engine.dialect.name == "postgresql":
                marks = marks.replace(":features", "CAST(:features AS JSONB)")
            conn.execute(text(f"INSERT INTO mirrorscale_trace ({cols}) VALUES ({marks})"), values)
        if store.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA ignore_check_constraints = OFF")


def test_corrupt_and_foreign_rows_are_skipped_with_a_warning_and_the_model_refits(
        store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    from mirrorscale.cli.explain import explanation
    from mirrorscale.replay.store import from_store

    store = HistoryStore.open(store_url)
    store.add_traces(trace(i) for i in range(30))
    clean = Allocator(store, POLICIES).decide(KEY, "clean", features={"input_size_bytes": 40 * 10**6}, save=False)
    _insert_raw(store, [(i, bad) for i, (_, bad) in enumerate(CORRUPT)])
    caplog.set_level(logging.WARNING)

    allocator = Allocator(store, POLICIES)
    allocation = allocator.decide(KEY, "next", features={"input_size_bytes": 40 * 10**6})
    assert allocation is not None and allocation.source == "history"
    assert allocation.memory_bytes == pytest.approx(clean.memory_bytes, rel=0.1)
    assert any("skipped" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    MirrorLifecycle(store, POLICIES).step(KEY)
    doc = explanation(store, KEY, POLICIES)
    assert doc["history"]
    loaded = from_store(store)
    assert loaded is not None

    # the model keeps learning from good rows recorded after the bad ones
    runs = allocator.model(KEY).runs
    store.add_traces(trace(i) for i in range(40, 45))
    allocator.decide(KEY, "later", features={"input_size_bytes": 40 * 10**6}, save=False)
    assert allocator.model(KEY).runs == runs + 5
    assert store.count_traces() == 30 + len(CORRUPT) + 5  # nothing deleted


SNAPSHOT_FAULTS = {
    "state not an object": lambda state: [1, 2, 3],
    "layout from another version": lambda state: {**state, "version": 999},
    "sizer state truncated": lambda state: {**state, "sizer": {"version": state["sizer"]["version"]}},
    "history of the wrong types": lambda state: {**state, "sizer": {**state["sizer"], "history": "lots"}},
    "a number where a list belongs": lambda state: {**state, "errors": 7},
}


@pytest.mark.parametrize("fault", sorted(SNAPSHOT_FAULTS))
def test_a_corrupt_stored_model_is_skipped_with_a_warning_refit_and_replaced(
        fault: str, store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    store = HistoryStore.open(store_url)
    store.add_traces(trace(i) for i in range(30))
    features = {"input_size_bytes": 40 * 10**6}
    first = Allocator(store, POLICIES).decide(KEY, "first", features=features)  # fits, stores the model
    stored = store.load_model(KEY, "mirrorscale")
    assert stored is not None and stored.runs == 30
    restored = Allocator(store, POLICIES)  # another process: restores the stored model, fits nothing
    assert restored.decide(KEY, "again", features=features).memory_bytes == first.memory_bytes

    store.save_model(KEY, "mirrorscale", version=stored.version, runs=stored.runs, watermark=stored.watermark,
                     state=SNAPSHOT_FAULTS[fault](stored.state), replace=True)
    caplog.set_level(logging.WARNING, logger="mirrorscale")
    allocation = Allocator(store, POLICIES).decide(KEY, "after", features=features)
    assert allocation is not None and allocation.memory_bytes == first.memory_bytes  # refit from the runs
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1 and "skipped the stored mirrorscale model" in warned[0] and "refitting" in warned[0]
    mended = store.load_model(KEY, "mirrorscale")
    assert mended.state == stored.state and mended.runs == 30  # replaced by the refit model
    assert store.count_traces() == 30  # nothing stored was lost


NOT_FROM_THE_DATABASE = {
    ("mirrorscale/mirror/transport.py", "pickle.load"):
        "a mirror unpickles its sampled input from its own parent process over a pipe, as multiprocessing does",
}
"""Unpickling that the scan below allows, each with what it reads: never a stored row."""


def test_nothing_is_unpickled_from_the_database() -> None:
    root = Path(__file__).resolve().parents[2]
    offenders = []
    for folder in ("mirrorscale", "plugins", "predictors", "migrations"):
        for path in (root / folder).rglob("*.py"):
            source = path.read_text()
            for needle in ("pickle.load", "PickleType", "cloudpickle.load", "dill.load", "joblib.load",
                           "marshal.load", "yaml.load(", "eval("):
                if needle in source and (path.relative_to(root).as_posix(), needle) not in NOT_FROM_THE_DATABASE:
                    offenders.append(f"{path.relative_to(root)}: {needle}")
    assert offenders == []
    for (name, needle) in NOT_FROM_THE_DATABASE:
        source = (root / name).read_text()
        assert needle in source, f"{name} no longer uses {needle}: drop it from NOT_FROM_THE_DATABASE"
        assert "mirrorscale.store" not in source, f"{name} must not read the store"


# -- hostile input to the web app ---------------------------------------------------

HOSTILE_IDS = ["<script>alert(1)</script>", "'; DROP TABLE mirrorscale_task; --", "\" onmouseover=\"alert(1)",
               "x" * 5000, "%00", "..%2F..%2Fetc%2Fpasswd", "1 OR 1=1", "9" * 400, "-1e309"]
TABLES = ("mirrorscale_task", "mirrorscale_trace", "mirrorscale_allocation", "mirrorscale_shadow",
          "mirrorscale_prediction", "mirrorscale_mirror_state")


def _counts(store: HistoryStore) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in TABLES}


def _hostile_store(tmp_path: Path) -> HistoryStore:
    from mirrorscale.trace_import import import_traces

    store = HistoryStore.open(f"sqlite:///{tmp_path / 'web.sqlite'}")
    lines = ["task_id\thash\tname\tstatus\texit\tprocess\tsubmit\trealtime\tpeak_rss\tmemory"]
    # no "/" in these ids: the app's routes cannot reach an id holding one (%2F is decoded before routing)
    for i, process in enumerate(["<script>alert('task')", "ok_task", "<img src=x onerror=alert(1)>"]):
        for run in range(3):
            lines.append(f"{i * 10 + run}\tab/{i}{run}\t{process} ({run})\tCOMPLETED\t0\t{process}\t"
                         f"{1716754890000 + run * 1000}\t{1000 + run}\t{9 * 10**18 if run == 2 else 10**8}\t1 GB")
    path = tmp_path / "hostile_trace.txt"
    path.write_text("\n".join(lines) + "\n")
    import_traces(store, [path], pipeline_id="<script>alert('pipe')")
    return store


def test_hostile_ids_and_payloads_get_4xx_and_nothing_is_stored(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from urllib.parse import quote

    from fastapi.testclient import TestClient

    from mirrorscale.web import create_app

    store = _hostile_store(tmp_path)
    before = _counts(store)
    client = TestClient(create_app(store_factory=lambda: store), raise_server_exceptions=False)
    for hostile in HOSTILE_IDS:
        q = quote(hostile, safe="")
        for path in (f"/pipelines/{q}", f"/pipelines/{q}/tasks/{q}", f"/pipelines/{q}/tasks/{q}/plot.svg",
                     f"/api/pipelines/{q}/tasks/{q}", f"/api/pipelines/ok/tasks/{q}"):
            answer = client.get(path)
            assert 400 <= answer.status_code < 500 or (answer.status_code == 200 and path.startswith("/pipelines/")
                                                      and "/tasks/" not in path), (path[:80], answer.status_code)
            assert "<script>" not in answer.text
    for method in ("post", "put", "patch", "delete"):
        for body in ({"memory_bytes": "9" * 5000, "task_id": "<script>"}, ["not", "a", "dict"], "x" * 2_000_000):
            kwargs = {"json": body} if not isinstance(body, str) else {"content": body}
            answer = client.request(method.upper(), "/api/pipelines/p/tasks/t", **kwargs)
            assert 400 <= answer.status_code < 500, (method, answer.status_code)
    assert client.get("/?pipeline_id=1&limit=99999999999999999999999").status_code in (200, 422)
    assert _counts(store) == before  # nothing stored, nothing dropped


def test_ids_stored_via_import_are_rendered_escaped(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    from urllib.parse import quote

    from fastapi.testclient import TestClient

    from mirrorscale.web import create_app

    store = _hostile_store(tmp_path)
    client = TestClient(create_app(store_factory=lambda: store), raise_server_exceptions=False)
    pipeline = quote("<script>alert('pipe')", safe="")
    pages = ["/", f"/pipelines/{pipeline}"]
    for task_id in ("<script>alert('task')", "<img src=x onerror=alert(1)>", "ok_task"):
        pages += [f"/pipelines/{pipeline}/tasks/{quote(task_id, safe='')}",
                  f"/pipelines/{pipeline}/tasks/{quote(task_id, safe='')}/plot.svg"]
    for page in pages:
        answer = client.get(page)
        assert answer.status_code == 200, (page, answer.status_code, answer.text[:200])
        assert "<script" not in answer.text.lower() and "<img" not in answer.text.lower(), page
    index = client.get("/").text
    assert "&lt;script&gt;alert(" in index
    task_q = quote("<script>alert('task')", safe="")
    api = client.get(f"/api/pipelines/{pipeline}/tasks/{task_q}")
    assert api.status_code == 200 and api.headers["content-type"].startswith("application/json")
    assert max(r["peak_rss_bytes"] for r in api.json()["runs"]) == 9 * 10**18  # huge numbers survive as numbers
