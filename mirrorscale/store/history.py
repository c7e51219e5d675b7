"""The query layer of the history store: record and read traces and decisions.

:class:`HistoryStore` is the one object the rest of mirrorscale talks to::

    store = HistoryStore.open()                  # MIRRORSCALE_DATABASE_URL or SQLite
    store.record_trace(engine="airflow", pipeline_id="etl", task_id="load",
                       run_id="manual__1", started_at=..., peak_rss_bytes=...)
    runs = store.latest_traces("airflow", "etl", "load", limit=50)

Writes are single transactions: an import either lands whole or not at all.
Inserting a trace that already exists (same task, run id and try) is a no-op,
which makes imports idempotent.
"""

from __future__ import annotations

import fnmatch
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

from sqlalchemy import Connection, Engine, bindparam, case, delete, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from mirrorscale import config
from mirrorscale.store import writes
from mirrorscale.store.engine import make_engine
from mirrorscale.store.models import (
    Allocation,
    ExecutionTrace,
    MirrorState,
    ModelSnapshot,
    Prediction,
    ResourceShadow,
    Task,
    TraceSamples,
    utcnow,
)
from mirrorscale.store.rows import NEWEST, SINCE, TraceRow, detached, newest_records, selecting
from mirrorscale.store.schema import ensure_schema

TaskKey = tuple[str, str, str]
"""``(engine, pipeline_id, task_id)``."""
T = TypeVar("T")

_TRACE_COLUMNS = writes.TRACE_COLUMNS
_SNAPSHOT = select(ModelSnapshot.version, ModelSnapshot.runs, ModelSnapshot.watermark, ModelSnapshot.state,
                   ModelSnapshot.updated_at).where(ModelSnapshot.task_pk == bindparam("task_pk"),
                                                   ModelSnapshot.method == bindparam("method"))
_TASK_PK = select(Task.id).where(Task.engine == bindparam("engine"), Task.pipeline_id == bindparam("pipeline_id"),
                                 Task.task_id == bindparam("task_id"))


@dataclass(frozen=True)
class TaskSummary:
    """Aggregates over the stored runs of one task."""

    engine: str
    pipeline_id: str
    task_id: str
    runs: int
    failures: int
    last_started_at: datetime | None
    mean_peak_rss_bytes: float | None
    max_peak_rss_bytes: int | None
    mean_wall_seconds: float | None
    mean_cpu_seconds: float | None


class HistoryStore:
    """Records and reads execution traces, shadows, predictions and allocations."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._sessions = sessionmaker(bind=engine, expire_on_commit=False)
        readonly = engine.execution_options(mirrorscale_readonly=True)
        if self.dialect == "postgresql":
            # one statement per read: no BEGIN/ROLLBACK round trips around it
            readonly = readonly.execution_options(isolation_level="AUTOCOMMIT")
            self._single = engine.execution_options(isolation_level="AUTOCOMMIT")
        else:
            self._single = engine.execution_options(mirrorscale_autocommit=True)
        """Connections for one statement that is its own transaction (no BEGIN, no COMMIT round trip)."""
        self._readonly = sessionmaker(bind=readonly, expire_on_commit=False)
        self._task_pks: dict[TaskKey, int] = {}

    @classmethod
    def open(cls, url: str | None = None, *, migrate: bool = True, durable: bool | None = None) -> HistoryStore:
        """Open the store at ``url`` (default: :func:`mirrorscale.config.database_url`).

        With ``migrate`` (the default) the schema is created or upgraded first.
        ``durable`` makes every commit wait for the disk (default: asynchronous
        commits unless ``MIRRORSCALE_DURABLE_COMMIT=1``; see
        :mod:`mirrorscale.store.engine` for the trade).
        """
        engine = make_engine(url or config.database_url(), durable=durable)
        if migrate:
            ensure_schema(engine)
        return cls(engine)

    def close(self) -> None:
        """Release the store's connections."""
        self.engine.dispose()

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session in one write transaction, committed on success, rolled back on error."""
        try:
            with self._live(self._sessions) as session:  # its transaction began with the ping (or begins now)
                yield session
                session.commit()
        except BaseException:
            self._task_pks.clear()  # task rows created in the failed transaction are gone
            raise

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads only (never takes SQLite's write lock)."""
        with self._live(self._readonly) as session:
            yield session

    def _live(self, factory: sessionmaker[Session]) -> Session:
        """A session whose PostgreSQL connection answered a ping (a dead pooled one is replaced once).

        The pool does not ping on checkout (that would double the round trips
        of the hot path, :meth:`_once`); sessions, which may run many
        statements, check their connection here instead.
        """
        session = factory()
        if self.dialect != "postgresql":
            return session
        try:
            session.connection().exec_driver_sql("SELECT 1")  # begins the session's transaction on it
        except DBAPIError as exc:
            session.close()
            if not exc.connection_invalidated:
                raise
            session = factory()
        return session

    def _once(self, operation: Callable[[Connection], T]) -> T:
        """Run ``operation`` (statements that are each their own transaction, safe to repeat) on one connection.

        If the pooled connection turns out dead (server restarted, connection
        cut, backend terminated), the pool is refreshed and ``operation`` runs
        once more on a new connection: every hot-path write is idempotent
        (trace inserts skip stored keys, snapshots are upserts) or a single
        statement that failed before it committed.
        """
        try:
            with self._single.connect() as conn:
                return operation(conn)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        with self._single.connect() as conn:
            return operation(conn)

    # -- tasks -------------------------------------------------------------

    def task_pk(self, session: Session | Connection, key: TaskKey) -> int:
        """The primary key of task ``key``, creating the task row if it is new (in ``session``'s transaction)."""
        cached = self._task_pks.get(key)
        if cached is not None:
            return cached
        names = dict(zip(("engine", "pipeline_id", "task_id"), key))
        pk = session.scalar(_TASK_PK, names)
        if pk is None:
            session.execute(writes.insert_ignore(self.dialect, Task, ("engine", "pipeline_id", "task_id")),
                            {**names, "created_at": utcnow()})
            pk = session.scalar(_TASK_PK, names)
        assert pk is not None
        self._task_pks[key] = pk
        return pk

    def known_task_pk(self, session: Session | Connection | None, key: TaskKey) -> int | None:
        """The primary key of task ``key`` if the store knows it (reads only; never creates the row).

        Cached per store once found; ``session`` None reads on a connection of its own.
        """
        cached = self._task_pks.get(key)
        if cached is not None:
            return cached
        names = dict(zip(("engine", "pipeline_id", "task_id"), key))
        if session is None:
            pk = self._once(lambda conn: conn.scalar(selecting(_TASK_PK, type(conn.dialect)), names))
        else:
            pk = session.scalar(_TASK_PK, names)
        if pk is not None:
            self._task_pks[key] = pk
        return pk

    def tasks(self) -> list[Task]:
        """Every task the store knows, ordered by engine, pipeline and task id."""
        with self.reading() as session:
            return list(session.scalars(select(Task).order_by(Task.engine, Task.pipeline_id, Task.task_id)))

    def find_tasks(self, name: str) -> list[Task]:
        """Tasks named ``name``: a task id, ``pipeline_id.task_id``, or a glob on either."""
        found = []
        for task in self.tasks():
            candidates = (task.task_id, task.key)
            if name in candidates or any(fnmatch.fnmatchcase(c, name) for c in candidates):
                found.append(task)
        return found

    # -- traces ------------------------------------------------------------

    def record_trace(
        self,
        *,
        engine: str,
        pipeline_id: str,
        task_id: str,
        run_id: str,
        started_at: datetime,
        samples: TraceSamples | None = None,
        **columns: Any,
    ) -> int | None:
        """Store one :class:`ExecutionTrace`; return its id, or None if it was already stored.

        ``columns`` are :class:`ExecutionTrace` column values (``peak_rss_bytes``,
        ``outcome``, ``features``, ...); unknown names raise ``TypeError``.
        """
        row = {"run_id": run_id, "started_at": started_at, **columns}
        _check_columns(row)
        key = (engine, pipeline_id, task_id)
        try:
            if self.dialect == "postgresql":
                # one statement, its own transaction: trace and samples land together or not at all
                trace_id = self._once(lambda conn: writes.insert_trace_pg(conn, self.task_pk(conn, key), row, samples))
            else:
                with self.engine.begin() as conn:  # BEGIN IMMEDIATE
                    trace_id = writes.insert_trace(conn, self.task_pk(conn, key), row, samples)
        except BaseException:
            self._task_pks.clear()  # task rows created in the failed transaction are gone
            raise
        if trace_id is not None and samples is not None:
            samples.trace_id = trace_id
        return trace_id

    def add_traces(self, rows: Iterable[dict[str, Any]], *, batch_size: int = 500) -> int:
        """Insert many traces in one transaction; return how many were new.

        Each row holds ``engine``, ``pipeline_id``, ``task_id`` and
        :class:`ExecutionTrace` columns. Rows already stored are skipped; if
        any row is invalid nothing is written. PostgreSQL streams the rows with
        ``COPY`` into a temporary table and inserts them from there in one
        statement; SQLite inserts ``batch_size`` rows per statement.
        """

        def prepared(session: Session) -> Iterator[dict[str, Any]]:
            for row in rows:
                row = dict(row)
                key = (row.pop("engine"), row.pop("pipeline_id"), row.pop("task_id"))
                _check_columns(row)
                yield writes.trace_values(self.task_pk(session, key), row)

        with self.writing() as session:
            if self.dialect == "postgresql":
                return writes.copy_traces(session.connection(), prepared(session))
            return writes.insert_traces(session.connection(), self.dialect, prepared(session), batch_size)

    def latest_traces(self, engine: str, pipeline_id: str, task_id: str, *, limit: int = 100) -> list[ExecutionTrace]:
        """The ``limit`` most recent runs of one task, newest first (the hot query)."""
        pk = self.known_task_pk(None, (engine, pipeline_id, task_id))
        if pk is None:
            return []
        with self.reading() as session:
            query = (
                select(ExecutionTrace)
                .where(ExecutionTrace.task_pk == pk)
                .order_by(ExecutionTrace.started_at.desc(), ExecutionTrace.id.desc())
                .limit(limit)
            )
            return list(session.scalars(query))

    def recent_traces(self, *, limit: int = 50, task_pks: Sequence[int] | None = None) -> list[ExecutionTrace]:
        """The ``limit`` most recent runs over all tasks (or over ``task_pks``), newest first."""
        with self.reading() as session:
            query = select(ExecutionTrace).order_by(ExecutionTrace.started_at.desc(), ExecutionTrace.id.desc())
            if task_pks is not None:
                query = query.where(ExecutionTrace.task_pk.in_(list(task_pks)))
            return list(session.scalars(query.limit(limit)))

    def count_traces(self) -> int:
        """How many traces the store holds."""
        with self.reading() as session:
            return session.scalar(select(func.count(ExecutionTrace.id))) or 0

    def trace_samples(self, trace_id: int) -> TraceSamples | None:
        """The stored resource time series of one trace, if any."""
        with self.reading() as session:
            return session.get(TraceSamples, trace_id)

    def task_summaries(self) -> list[TaskSummary]:
        """One :class:`TaskSummary` per task that has runs, ordered by pipeline and task."""
        t = ExecutionTrace
        query = (
            select(
                Task.engine, Task.pipeline_id, Task.task_id,
                func.count(t.id),
                func.sum(case((t.outcome != "success", 1), else_=0)),
                func.max(t.started_at),
                func.avg(t.peak_rss_bytes), func.max(t.peak_rss_bytes),
                func.avg(t.wall_seconds), func.avg(t.cpu_seconds),
            )
            .join(t, t.task_pk == Task.id)
            .group_by(Task.id, Task.engine, Task.pipeline_id, Task.task_id)
            .order_by(Task.engine, Task.pipeline_id, Task.task_id)
        )
        with self.reading() as session:
            return [_summary(row) for row in session.execute(query)]

    # -- decisions ---------------------------------------------------------

    def save(self, key: TaskKey, record: Allocation | ResourceShadow | Prediction | MirrorState) -> int:
        """Store a transient decision record (made by the allocator or a mirror) for task ``key``.

        One ``INSERT ... RETURNING`` on a connection of its own (no session, no
        flush). Returns its id; ``record`` keeps its values and gets ``id`` and
        ``task_pk``.
        """
        def insert(conn: Connection) -> int:
            record.task_pk = self.task_pk(conn, key)
            return writes.insert_record(conn, record)

        try:
            record.id = self._once(insert)
        except BaseException:
            self._task_pks.clear()
            raise
        return record.id

    def record_allocation(self, key: TaskKey, **columns: Any) -> int:
        """Store one :class:`Allocation` for task ``key``; return its id."""
        return self.save(key, Allocation(**columns))

    def record_shadow(self, key: TaskKey, **columns: Any) -> int:
        """Store one :class:`ResourceShadow` for task ``key``; return its id."""
        return self.save(key, ResourceShadow(**columns))

    def record_prediction(self, key: TaskKey, **columns: Any) -> int:
        """Store one :class:`Prediction` for task ``key``; return its id."""
        return self.save(key, Prediction(**columns))

    def latest_allocation(self, key: TaskKey) -> Allocation | None:
        """The newest :class:`Allocation` made for task ``key``."""
        return self._latest(Allocation, key)


    # -- allocator and mirror life cycle -------------------------------------

    def traces_since(self, key: TaskKey, after: datetime | None, *, limit: int = 200) -> list[TraceRow]:
        """Runs of task ``key`` started at or after ``after`` (all when None), oldest first, at most ``limit``.

        The allocator's incremental refit and the life cycle's window: one range
        scan of the ``(task_pk, started_at)`` index. With ``after`` None the
        *newest* ``limit`` runs are returned (still oldest first). The runs are
        light read-only :class:`~mirrorscale.store.rows.TraceRow` tuples.
        """
        pk = self.known_task_pk(None, key)
        if pk is None:
            return []
        if after is None:
            rows = self._once(lambda conn: conn.execute(selecting(NEWEST, type(conn.dialect)),
                                                        {"task_pk": pk, "limit": limit}).all())
            rows.reverse()
        else:
            rows = self._once(lambda conn: conn.execute(selecting(SINCE, type(conn.dialect)),
                                                        {"task_pk": pk, "after": after, "limit": limit}).all())
        return [TraceRow(*row) for row in rows]

    def recent_mirrored_runs(self, *, limit: int = 50, exclude: TaskKey | None = None,
                             ) -> list[tuple[ResourceShadow, ExecutionTrace]]:
        """The newest ``limit`` finished shadows of any task but ``exclude``, each with its run's successful trace.

        What a task that has no mirrored runs of its own learns its mirrors' bias
        from (:func:`~mirrorscale.mirror.shadow.past_mirrored_runs`). Newest first.
        """
        skip = self.known_task_pk(None, exclude) if exclude is not None else None
        with self.reading() as session:
            query = (select(ResourceShadow, ExecutionTrace)
                     .join(ExecutionTrace, (ExecutionTrace.task_pk == ResourceShadow.task_pk)
                           & (ExecutionTrace.run_id == ResourceShadow.run_id))
                     .where(ResourceShadow.outcome == "ok", ExecutionTrace.outcome == "success")
                     .order_by(ResourceShadow.id.desc()).limit(limit))
            if skip is not None:
                query = query.where(ResourceShadow.task_pk != skip)
            return [(shadow, trace) for shadow, trace in session.execute(query).all()]

    def latest_shadow(self, key: TaskKey) -> ResourceShadow | None:
        """The newest :class:`ResourceShadow` recorded for task ``key``."""
        return self._latest(ResourceShadow, key)

    def shadow(self, shadow_id: int) -> ResourceShadow | None:
        """One stored :class:`ResourceShadow` by id."""
        with self.reading() as session:
            return session.get(ResourceShadow, shadow_id)

    def recent_shadows(self, key: TaskKey, *, limit: int = 10) -> list[ResourceShadow]:
        """The ``limit`` newest shadows of task ``key``, newest first."""
        return self._latest(ResourceShadow, key, limit=limit)

    def record_mirror_state(self, key: TaskKey, *, state: str, reason: str, volatility: float | None = None,
                            details: dict[str, Any] | None = None, created_at: datetime | None = None) -> int:
        """Store one mirror life-cycle transition of task ``key``; return its id."""
        row = MirrorState(state=state, reason=reason, volatility=volatility, details=details or {},
                          created_at=created_at or utcnow())
        return self.save(key, row)  # type: ignore[arg-type]

    def latest_mirror_state(self, key: TaskKey) -> MirrorState | None:
        """The newest :class:`MirrorState` of task ``key`` (its current state); None: never mirrored."""
        return self._latest(MirrorState, key)

    # -- model snapshots ----------------------------------------------------

    def load_model(self, key: TaskKey, method: str) -> Any | None:
        """The stored snapshot of task ``key``'s ``method`` model, or None.

        A row with ``version``, ``runs``, ``watermark``, ``state`` (the JSON as
        stored, unchecked) and ``updated_at``; :mod:`mirrorscale.allocator.snapshot`
        validates it.
        """
        pk = self.known_task_pk(None, key)
        if pk is None:
            return None
        return self._once(lambda conn: conn.execute(selecting(_SNAPSHOT, type(conn.dialect)),
                                                    {"task_pk": pk, "method": method}).first())

    def save_model(self, key: TaskKey, method: str, *, version: int, runs: int, watermark: datetime | None,
                   state: dict[str, Any], replace: bool = False) -> bool:
        """Store the snapshot of task ``key``'s ``method`` model (one statement); True when written.

        A stored snapshot with a newer ``watermark`` (another process got
        further) is kept unless ``replace`` (used when the stored one is unreadable).
        """
        def upsert(conn: Connection) -> int:
            return conn.execute(writes.upsert_snapshot(type(conn.dialect), replace), {
                "task_pk": self.task_pk(conn, key), "method": method, "version": version, "runs": runs,
                "watermark": watermark, "state": state, "updated_at": utcnow()}).rowcount

        return self._once(upsert) > 0

    def drop_models(self, key: TaskKey | None = None, method: str | None = None) -> int:
        """Delete stored model snapshots (of task ``key`` / of ``method``; all when None); how many."""
        statement = delete(ModelSnapshot)
        if key is not None:
            pk = self.known_task_pk(None, key)
            if pk is None:
                return 0
            statement = statement.where(ModelSnapshot.task_pk == pk)
        if method is not None:
            statement = statement.where(ModelSnapshot.method == method)
        with self.writing() as session:
            return session.execute(statement).rowcount

    def _latest(self, model: type, key: TaskKey, *, limit: int | None = None):  # type: ignore[no-untyped-def]
        """The newest row(s) of ``model`` for task ``key`` by ``created_at`` (one, or a list with ``limit``).

        Read with Core and returned as detached instances (no session, no joined task row).
        """
        pk = self.known_task_pk(None, key)
        if pk is None:
            return [] if limit else None
        rows = self._once(lambda conn: conn.execute(newest_records(model, type(conn.dialect)),
                                                    {"task_pk": pk, "limit": limit or 1}).all())
        found = [detached(model, row) for row in rows]
        return found if limit else (found[0] if found else None)


def _check_columns(row: dict[str, Any]) -> None:
    unknown = sorted(set(row) - _TRACE_COLUMNS)
    if unknown:
        raise TypeError(
            f"unknown ExecutionTrace field(s) {', '.join(unknown)}; known: {', '.join(sorted(_TRACE_COLUMNS))}"
        )


def _summary(row: Any) -> TaskSummary:
    engine, pipeline_id, task_id, runs, failures, last, mean_peak, max_peak, mean_wall, mean_cpu = row
    if isinstance(last, str):  # SQLite returns max() of a timestamp column as text
        from datetime import timezone

        last = datetime.fromisoformat(last)
        last = last.replace(tzinfo=timezone.utc) if last.tzinfo is None else last
    return TaskSummary(
        engine=engine, pipeline_id=pipeline_id, task_id=task_id, runs=int(runs),
        failures=int(failures or 0), last_started_at=last,
        mean_peak_rss_bytes=float(mean_peak) if mean_peak is not None else None,
        max_peak_rss_bytes=int(max_peak) if max_peak is not None else None,
        mean_wall_seconds=float(mean_wall) if mean_wall is not None else None,
        mean_cpu_seconds=float(mean_cpu) if mean_cpu is not None else None,
    )
