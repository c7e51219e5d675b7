"""The write statements of the history store, built once per dialect, and the bulk paths.

===================================  =========================================================
write                                how
===================================  =========================================================
one trace (PostgreSQL)               one statement in autocommit: ``WITH new AS (INSERT trace
                                     ... ON CONFLICT DO NOTHING RETURNING id) INSERT samples
                                     SELECT ... FROM new``: one round trip, trace and samples
                                     land together or not at all
one trace (SQLite)                   ``BEGIN IMMEDIATE``, insert trace, insert samples, commit
many traces (PostgreSQL)             ``COPY`` into a temporary table, then one ``INSERT ...
                                     SELECT ... ON CONFLICT DO NOTHING`` (duplicates skipped)
many traces (SQLite)                 multi-row ``INSERT ... ON CONFLICT DO NOTHING RETURNING``
model snapshot                       one upsert on ``(task_pk, method)`` that keeps a stored
                                     snapshot with a newer watermark
===================================  =========================================================

SQLAlchemy never caches the compiled form of ``INSERT ... ON CONFLICT`` (the
PostgreSQL and SQLite ``Insert`` constructs set ``inherit_cache = False``), so
each execution would compile it again, about a millisecond of Python per
trace. The single-row statements of the hot path are therefore compiled once
per dialect into a ``text()`` with the same typed parameters
(:func:`~mirrorscale.store.rows.frozen`), which SQLAlchemy does cache.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from itertools import islice
from typing import Any

from sqlalchemy import Connection, Dialect, TextClause, bindparam, insert, or_, select

from mirrorscale.store.models import ExecutionTrace, ModelSnapshot, TraceSamples, UTCDateTime, utcnow
from mirrorscale.store.rows import frozen

TRACE_COLUMNS = frozenset(c.key for c in ExecutionTrace.__table__.columns) - {"id", "task_pk"}
"""Columns a caller may give for one trace."""
_ORDERED = ("task_pk", *sorted(TRACE_COLUMNS))
_CONFLICT = ("task_pk", "run_id", "try_number")
_DEFAULTS: dict[str, Any] = {column: None for column in TRACE_COLUMNS} | {
    "try_number": 1, "source": "unknown", "outcome": "success"}
_TIMES = tuple(c.key for c in ExecutionTrace.__table__.columns if isinstance(c.type, UTCDateTime))


def _insert(dialect: str):  # type: ignore[no-untyped-def]
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    else:
        raise NotImplementedError(f"mirrorscale's store supports SQLite and PostgreSQL, not {dialect}")
    return dialect_insert


def insert_ignore(dialect: str, model: type, conflict_columns: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """``INSERT ... ON CONFLICT (conflict_columns) DO NOTHING`` for SQLite and PostgreSQL."""
    return _insert(dialect)(model).on_conflict_do_nothing(index_elements=list(conflict_columns))


def trace_values(task_pk: int, row: dict[str, Any]) -> dict[str, Any]:
    """Every column of one trace row (batched inserts need the same keys in each row)."""
    return {**_DEFAULTS, "features": {}, "recorded_at": utcnow(), **row, "task_pk": task_pk}


def _trace_columns() -> dict[str, Any]:
    trace = ExecutionTrace.__table__
    return {name: bindparam(name, type_=trace.c[name].type) for name in _ORDERED}


@lru_cache(maxsize=None)
def _bulk_trace_insert(dialect: str):  # type: ignore[no-untyped-def]
    return insert_ignore(dialect, ExecutionTrace, _CONFLICT).returning(ExecutionTrace.__table__.c.id)


@lru_cache(maxsize=None)
def _trace_insert(dialect: type[Dialect]) -> TextClause:
    statement = insert_ignore(dialect.name, ExecutionTrace, _CONFLICT).values(_trace_columns())
    return frozen(statement.returning(ExecutionTrace.__table__.c.id), dialect)


@lru_cache(maxsize=None)
def _trace_with_samples_pg(dialect: type[Dialect]) -> TextClause:
    samples = TraceSamples.__table__
    new = (insert_ignore("postgresql", ExecutionTrace, _CONFLICT).values(_trace_columns())
           .returning(ExecutionTrace.__table__.c.id).cte("new_trace"))
    series = [bindparam(f"samples_{name}", type_=samples.c[name].type)
              for name in ("t_seconds", "rss_bytes", "cpu_seconds")]
    statement = (insert(samples).from_select(["trace_id", "t_seconds", "rss_bytes", "cpu_seconds"],
                                             select(new.c.id, *series))
                 .add_cte(new, nest_here=True).returning(samples.c.trace_id))
    return frozen(statement, dialect)


def _series(samples: Any) -> dict[str, list[Any]]:
    return {name: list(getattr(samples, name) or []) for name in ("t_seconds", "rss_bytes", "cpu_seconds")}


def insert_trace_pg(conn: Connection, task_pk: int, row: dict[str, Any], samples: Any = None) -> int | None:
    """Insert one trace (and its samples) in one statement on an autocommit connection; its id or None if stored."""
    values = trace_values(task_pk, row)
    if samples is None:
        return conn.execute(_trace_insert(type(conn.dialect)), values).scalar()
    params = {**values, **{f"samples_{k}": v for k, v in _series(samples).items()}}
    return conn.execute(_trace_with_samples_pg(type(conn.dialect)), params).scalar()


def insert_trace(conn: Connection, task_pk: int, row: dict[str, Any], samples: Any = None) -> int | None:
    """Insert one trace and then its samples inside the caller's transaction; its id or None if stored."""
    trace_id = conn.execute(_trace_insert(type(conn.dialect)), trace_values(task_pk, row)).scalar()
    if trace_id is not None and samples is not None:
        conn.execute(insert(TraceSamples.__table__), {"trace_id": trace_id, **_series(samples)})
    return trace_id


def insert_traces(conn: Connection, dialect: str, rows: Iterable[dict[str, Any]], batch_size: int) -> int:
    """Multi-row inserts of ``batch_size`` full rows (:func:`trace_values`); how many were new."""
    statement = _bulk_trace_insert(dialect)
    inserted = 0
    batch: list[dict[str, Any]] = []
    for values in rows:
        batch.append(values)
        if len(batch) >= batch_size:
            inserted += len(conn.execute(statement, batch).all())
            batch = []
    if batch:
        inserted += len(conn.execute(statement, batch).all())
    return inserted


_UTC = UTCDateTime()


def _copy_row(values: dict[str, Any]) -> tuple[Any, ...]:
    for name in _TIMES:  # the same check (and UTC conversion) as the ORM's column type
        values[name] = _UTC.process_bind_param(values[name], None)
    features = values["features"]
    values["features"] = json.dumps(features if features is not None else {})
    return tuple(values[name] for name in _ORDERED)


def copy_traces(conn: Connection, rows: Iterable[dict[str, Any]], chunk: int = 10_000) -> int:
    """Stream full rows (:func:`trace_values`) through ``COPY`` and insert the new ones; how many were new.

    Runs in the caller's transaction (PostgreSQL only): the staging table is
    dropped at the end, and any bad row (a check constraint, a type) aborts the
    whole transaction. ``rows`` is consumed ``chunk`` rows at a time outside
    the ``COPY`` (producing a row may run queries, e.g. create its task).
    """
    columns = ", ".join(_ORDERED)
    conn.exec_driver_sql(
        f"CREATE TEMPORARY TABLE mirrorscale_trace_incoming ON COMMIT DROP AS "
        f"SELECT {columns} FROM mirrorscale_trace WITH NO DATA")
    driver = conn.connection.driver_connection  # the session's own connection and transaction
    iterator = iter(rows)
    while batch := [_copy_row(values) for values in islice(iterator, chunk)]:
        with driver.cursor() as cursor, cursor.copy(f"COPY mirrorscale_trace_incoming ({columns}) FROM STDIN") as copy:
            for row in batch:
                copy.write_row(row)
    result = conn.exec_driver_sql(
        f"INSERT INTO mirrorscale_trace ({columns}) SELECT {columns} FROM mirrorscale_trace_incoming "
        f"ON CONFLICT ({', '.join(_CONFLICT)}) DO NOTHING")
    conn.exec_driver_sql("DROP TABLE mirrorscale_trace_incoming")
    return max(0, result.rowcount)


@lru_cache(maxsize=None)
def upsert_snapshot(dialect: type[Dialect], replace: bool) -> TextClause:
    """Insert or update the snapshot of ``(task_pk, method)``; unless ``replace``, a newer stored one is kept."""
    table = ModelSnapshot.__table__
    statement = _insert(dialect.name)(table).values(
        {c.key: bindparam(c.key, type_=c.type) for c in table.c if c.key != "id"})
    excluded = statement.excluded
    changed = {name: excluded[name] for name in ("version", "runs", "watermark", "state", "updated_at")}
    where = None if replace else or_(table.c.watermark.is_(None), excluded.watermark >= table.c.watermark)
    return frozen(statement.on_conflict_do_update(index_elements=["task_pk", "method"], set_=changed, where=where),
                  dialect)


def insert_record(conn: Connection, record: Any) -> int:
    """Insert a decision record (allocation, shadow, prediction, state) in one statement; its new id.

    Columns left None take their defaults (``created_at`` now, ``reason`` empty, ...).
    """
    table = type(record).__table__
    values = {c.key: value for c in table.c if c.key != "id" and (value := getattr(record, c.key)) is not None}
    return conn.execute(insert(table).returning(table.c.id), values).scalar_one()
