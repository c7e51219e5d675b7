"""SQLAlchemy 2 models of the history store.

Tables carry the ``mirrorscale_`` prefix so the store can live in the same
database as Airflow's or Prefect's own metadata. The schema is owned by the
Alembic migrations in ``mirrorscale.migrations``; a test checks that these
models and the migrations agree.

==============================  =====================================================
table                           one row is
==============================  =====================================================
``mirrorscale_task``            a task known to the store (engine, pipeline, task id)
``mirrorscale_trace``           an :class:`ExecutionTrace`: one measured run attempt
``mirrorscale_trace_samples``   the bounded resource time series of one trace
``mirrorscale_shadow``          a :class:`ResourceShadow`: one mirror run and its estimate
``mirrorscale_prediction``      a :class:`Prediction`: one forecast for one run
``mirrorscale_allocation``      an :class:`Allocation`: one sizing decision with its reason
``mirrorscale_mirror_state``    a :class:`MirrorState`: one mirror life-cycle transition
``mirrorscale_model_snapshot``  a :class:`ModelSnapshot`: a task's fitted model as versioned JSON
==============================  =====================================================
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

OUTCOMES = ("success", "failed", "oom_killed", "timed_out")
"""Allowed values of :attr:`ExecutionTrace.outcome`."""

MODES = ("observe", "recommend", "enforce")
"""Allowed values of :attr:`Allocation.mode`."""

SHADOW_OUTCOMES = ("ok", "memory_cap", "timeout", "error")
"""Allowed values of :attr:`ResourceShadow.outcome`."""

# Integer primary keys: BIGINT on servers, INTEGER on SQLite (its rowid alias).
Id = BigInteger().with_variant(Integer, "sqlite")
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("mirrorscale stores timezone-aware datetimes only (use datetime.now(timezone.utc))")
        return value.astimezone(timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(timezone.utc)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base carrying the metadata with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Task(Base):
    """A task the store knows: an engine, a pipeline (DAG or flow) and a task id."""

    __tablename__ = "mirrorscale_task"
    __table_args__ = (UniqueConstraint("engine", "pipeline_id", "task_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    engine: Mapped[str] = mapped_column(String(32))
    pipeline_id: Mapped[str] = mapped_column(String(250))
    task_id: Mapped[str] = mapped_column(String(250))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @property
    def key(self) -> str:
        """``pipeline_id.task_id``: the name policies match on."""
        return f"{self.pipeline_id}.{self.task_id}"


class ExecutionTrace(Base):
    """One measured run attempt of a task: inputs, resources used, outcome, allocation."""

    __tablename__ = "mirrorscale_trace"
    __table_args__ = (
        UniqueConstraint("task_pk", "run_id", "try_number"),
        Index("ix_mirrorscale_trace_task_pk_started_at", "task_pk", "started_at"),
        CheckConstraint(_one_of("outcome", OUTCOMES), name="outcome"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    task_pk: Mapped[int] = mapped_column(ForeignKey("mirrorscale_task.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(String(250))
    try_number: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    source: Mapped[str] = mapped_column(String(32), default="unknown")
    features: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    input_size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    peak_rss_bytes: Mapped[int | None] = mapped_column(BigInteger)
    cpu_seconds: Mapped[float | None] = mapped_column(Float)
    wall_seconds: Mapped[float | None] = mapped_column(Float)
    read_bytes: Mapped[int | None] = mapped_column(BigInteger)
    write_bytes: Mapped[int | None] = mapped_column(BigInteger)
    branch: Mapped[str | None] = mapped_column(String(250))
    outcome: Mapped[str] = mapped_column(String(16), default="success")
    allocated_memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    allocated_cpu: Mapped[float | None] = mapped_column(Float)
    allocated_pool: Mapped[str | None] = mapped_column(String(250))
    allocated_pool_slots: Mapped[int | None] = mapped_column(Integer)

    task: Mapped[Task] = relationship(lazy="joined", innerjoin=True)
    samples: Mapped[TraceSamples | None] = relationship(
        back_populates="trace", cascade="all, delete-orphan", uselist=False, lazy="select"
    )


class TraceSamples(Base):
    """The bounded resource time series of one trace, as parallel arrays."""

    __tablename__ = "mirrorscale_trace_samples"

    trace_id: Mapped[int] = mapped_column(
        ForeignKey("mirrorscale_trace.id", ondelete="CASCADE"), primary_key=True
    )
    t_seconds: Mapped[list[float]] = mapped_column(JsonDoc, default=list)
    rss_bytes: Mapped[list[int]] = mapped_column(JsonDoc, default=list)
    cpu_seconds: Mapped[list[float]] = mapped_column(JsonDoc, default=list)

    trace: Mapped[ExecutionTrace] = relationship(back_populates="samples")


class ResourceShadow(Base):
    """The measured cost of one mirror run and its extrapolated full-size estimate."""

    __tablename__ = "mirrorscale_shadow"
    __table_args__ = (
        Index("ix_mirrorscale_shadow_task_pk_created_at", "task_pk", "created_at"),
        CheckConstraint(_one_of("outcome", SHADOW_OUTCOMES), name="outcome"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    task_pk: Mapped[int] = mapped_column(ForeignKey("mirrorscale_task.id", ondelete="CASCADE"))
    run_id: Mapped[str | None] = mapped_column(String(250))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    error: Mapped[str | None] = mapped_column(Text)
    sample_fraction: Mapped[float] = mapped_column(Float)
    sampled_input_bytes: Mapped[int | None] = mapped_column(BigInteger)
    full_input_bytes: Mapped[int | None] = mapped_column(BigInteger)
    cost_peak_rss_bytes: Mapped[int | None] = mapped_column(BigInteger)
    cost_cpu_seconds: Mapped[float | None] = mapped_column(Float)
    cost_wall_seconds: Mapped[float | None] = mapped_column(Float)
    measured_peak_rss_increase_bytes: Mapped[int | None] = mapped_column(BigInteger)
    predicted_peak_rss_bytes: Mapped[int | None] = mapped_column(BigInteger)
    predicted_peak_rss_low: Mapped[int | None] = mapped_column(BigInteger)
    predicted_peak_rss_high: Mapped[int | None] = mapped_column(BigInteger)
    predicted_cpu_seconds: Mapped[float | None] = mapped_column(Float)
    predicted_cpu_low: Mapped[float | None] = mapped_column(Float)
    predicted_cpu_high: Mapped[float | None] = mapped_column(Float)
    predicted_wall_seconds: Mapped[float | None] = mapped_column(Float)
    predicted_wall_low: Mapped[float | None] = mapped_column(Float)
    predicted_wall_high: Mapped[float | None] = mapped_column(Float)
    evidence: Mapped[str | None] = mapped_column(Text)

    task: Mapped[Task] = relationship(lazy="joined", innerjoin=True)


class Prediction(Base):
    """One forecast for one run of a task: a target (memory, cpu, wall, branch) and its band."""

    __tablename__ = "mirrorscale_prediction"
    __table_args__ = (Index("ix_mirrorscale_prediction_task_pk_run_id", "task_pk", "run_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    task_pk: Mapped[int] = mapped_column(ForeignKey("mirrorscale_task.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(String(250))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    method: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(32))
    value: Mapped[float | None] = mapped_column(Float)
    low: Mapped[float | None] = mapped_column(Float)
    high: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(250))
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)

    task: Mapped[Task] = relationship(lazy="joined", innerjoin=True)


class Allocation(Base):
    """What the allocator decided for one task run, with the mode it ran in and why."""

    __tablename__ = "mirrorscale_allocation"
    __table_args__ = (
        Index("ix_mirrorscale_allocation_task_pk_created_at", "task_pk", "created_at"),
        CheckConstraint(_one_of("mode", MODES), name="mode"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    task_pk: Mapped[int] = mapped_column(ForeignKey("mirrorscale_task.id", ondelete="CASCADE"))
    run_id: Mapped[str] = mapped_column(String(250))
    try_number: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    mode: Mapped[str] = mapped_column(String(16))
    applied: Mapped[bool] = mapped_column(default=False)
    memory_bytes: Mapped[int | None] = mapped_column(BigInteger)
    cpu: Mapped[float | None] = mapped_column(Float)
    pool: Mapped[str | None] = mapped_column(String(250))
    pool_slots: Mapped[int | None] = mapped_column(Integer)
    priority_weight: Mapped[int | None] = mapped_column(Integer)
    queue: Mapped[str | None] = mapped_column(String(250))
    executor_options: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    source: Mapped[str] = mapped_column(String(32), default="history")
    reason: Mapped[str] = mapped_column(Text, default="")
    shadow_id: Mapped[int | None] = mapped_column(ForeignKey("mirrorscale_shadow.id", ondelete="SET NULL"))

    task: Mapped[Task] = relationship(lazy="joined", innerjoin=True)


MIRROR_STATES = ("none", "active", "retired")
"""Allowed values of :attr:`MirrorState.state` (the mirror life cycle, :mod:`mirrorscale.lifecycle`)."""


class MirrorState(Base):
    """One transition of a task's mirror life cycle (none -> active -> retired), with its reason."""

    __tablename__ = "mirrorscale_mirror_state"
    __table_args__ = (
        Index("ix_mirrorscale_mirror_state_task_pk_created_at", "task_pk", "created_at"),
        CheckConstraint(_one_of("state", MIRROR_STATES), name="state"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    task_pk: Mapped[int] = mapped_column(ForeignKey("mirrorscale_task.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    volatility: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)

    task: Mapped[Task] = relationship(lazy="joined", innerjoin=True)


class ModelSnapshot(Base):
    """A task's fitted allocator model saved as versioned JSON (never pickled), one per task and method.

    A new process restores it and feeds only the runs started at or after
    ``watermark`` instead of refitting the task's history
    (:mod:`mirrorscale.allocator.snapshot`). A snapshot whose ``version`` or
    ``state`` this code cannot read is skipped with a warning and refitted.
    """

    __tablename__ = "mirrorscale_model_snapshot"
    __table_args__ = (UniqueConstraint("task_pk", "method"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    task_pk: Mapped[int] = mapped_column(ForeignKey("mirrorscale_task.id", ondelete="CASCADE"))
    method: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    """Layout version of ``state``."""
    runs: Mapped[int] = mapped_column(Integer, default=0)
    """Successful runs the model had learned from."""
    watermark: Mapped[datetime | None] = mapped_column(UTCDateTime())
    """``started_at`` of the newest run the model had seen."""
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    """The model as JSON text (also on PostgreSQL: a blob read whole, so ``json``, not ``jsonb``)."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
