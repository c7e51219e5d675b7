"""Light read-only rows of the hot path: the trace columns a model reads, without ORM objects.

A sizing decision reads a task's newest runs twice (the mirror life cycle's
window and the allocator's incremental refit). Materialising them as ORM
:class:`~mirrorscale.store.models.ExecutionTrace` objects (identity map,
joined task row, every column) costs more than the query itself, so
:meth:`HistoryStore.traces_since` returns :class:`TraceRow` tuples built
from a Core ``SELECT`` of :data:`TRACE_ROW_COLUMNS` only.

Every hot-path statement is compiled to SQL once per dialect and process
(:func:`frozen`) and run as a typed ``text()``: a task's process makes one
decision, and compiling its half-dozen ``SELECT`` constructs for the new
engine cost more than running them.

=======================  ===================================================
statement                plan (both stores)
=======================  ===================================================
:data:`NEWEST`           ``(task_pk, started_at)`` index, backwards, ``LIMIT``
:data:`SINCE`            ``(task_pk, started_at)`` index range, ``LIMIT``
=======================  ===================================================
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, NamedTuple

from sqlalchemy import Dialect, Row, TextClause, bindparam, select, text
from sqlalchemy.sql.selectable import TextualSelect

from mirrorscale.store.models import ExecutionTrace


class TraceRow(NamedTuple):
    """One stored run as the allocator, the life cycle and ``explain`` read it (read-only).

    The fields are :class:`~mirrorscale.store.models.ExecutionTrace` columns of
    the same names; use :meth:`HistoryStore.latest_traces` for whole rows.
    """

    id: int
    run_id: str
    try_number: int
    started_at: datetime
    outcome: str
    features: Any
    input_size_bytes: int | None
    peak_rss_bytes: int | None
    cpu_seconds: float | None
    wall_seconds: float | None
    branch: str | None
    allocated_memory_bytes: int | None

    def to_json(self) -> dict[str, Any]:
        """This row as JSON-ready values (``started_at`` as ISO 8601)."""
        return {**self._asdict(), "started_at": self.started_at.isoformat()}

    @classmethod
    def from_json(cls, doc: Any) -> TraceRow:
        """The row :meth:`to_json` wrote; ``ValueError`` naming the problem when ``doc`` is not one."""
        if not isinstance(doc, dict) or set(doc) != set(cls._fields):
            raise ValueError(f"a stored trace row needs exactly the fields {', '.join(cls._fields)}")
        try:
            started = datetime.fromisoformat(doc["started_at"])
        except (TypeError, ValueError):
            raise ValueError(f"started_at {doc['started_at']!r} is not an ISO 8601 time") from None
        if started.tzinfo is None:
            raise ValueError(f"started_at {doc['started_at']!r} has no time zone")
        return cls(**{**doc, "started_at": started})


def frozen(statement: Any, dialect: type[Dialect]) -> TextClause:
    """``statement`` compiled once for the ``dialect`` class, as a ``text()`` with the same typed bound parameters."""
    compiled = statement.compile(dialect=dialect(paramstyle="named"))
    sql = compiled.string.replace("::", r"\:\:")  # PostgreSQL casts (x::JSONB) are not parameters
    params = (bindparam(name, param.value, type_=param.type, required=param.required)
              for param, name in compiled.bind_names.items())  # keeps literals the compiler bound (SQLite OFFSET 0)
    return text(sql).bindparams(*params)


_trace = ExecutionTrace.__table__.c
TRACE_ROW_COLUMNS = tuple(_trace[name] for name in TraceRow._fields)
"""The columns :class:`TraceRow` holds, in its field order."""

NEWEST = (
    select(*TRACE_ROW_COLUMNS)
    .where(_trace.task_pk == bindparam("task_pk"))
    .order_by(_trace.started_at.desc(), _trace.id.desc())
    .limit(bindparam("limit"))
)
"""The newest ``:limit`` runs of task ``:task_pk``, newest first."""

SINCE = (
    select(*TRACE_ROW_COLUMNS)
    .where(_trace.task_pk == bindparam("task_pk"), _trace.started_at >= bindparam("after", type_=_trace.started_at.type))
    .order_by(_trace.started_at, _trace.id)
    .limit(bindparam("limit"))
)
"""Runs of task ``:task_pk`` started at or after ``:after``, oldest first, at most ``:limit``."""


@lru_cache(maxsize=None)
def selecting(statement: Any, dialect: type[Dialect]) -> TextualSelect:
    """The ``SELECT`` ``statement`` frozen for ``dialect``, its result columns typed as in the statement."""
    return frozen(statement, dialect).columns(*statement.selected_columns)


@lru_cache(maxsize=None)
def newest_records(model: type, dialect: type[Dialect]) -> TextualSelect:
    """The newest ``:limit`` rows of ``model`` (shadows, allocations, states) of task ``:task_pk``, newest first."""
    table = model.__table__
    return selecting(select(*table.c).where(table.c.task_pk == bindparam("task_pk"))
                     .order_by(table.c.created_at.desc(), table.c.id.desc()).limit(bindparam("limit")), dialect)


def detached(model: type, row: Row[Any]) -> Any:
    """A ``model`` instance holding ``row``'s columns, attached to no session (its ``task`` is not loaded)."""
    return model(**row._mapping)
