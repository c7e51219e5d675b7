"""Model snapshots: a task's fitted allocator model kept as versioned JSON, one row per task and method.

Why: every Airflow task runs in a fresh process, so without a stored model the
first decision of each process refits the task's newest 200 runs (tens of
milliseconds; issue 7 asks for a decision p99 of 20 ms at a million runs). The
row holds the JSON state (never a pickle; ``json``, not ``jsonb``: it is only
ever read and written whole), its layout ``version`` and the
``watermark`` (``started_at`` of the newest run the model saw): a new process
restores the model and feeds only the runs from the watermark on. Unique on
``(task_pk, method)``, which is also the index of the lookup.

Revision ID: 20261127_0003
Revises: 20261127_0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision, down_revision = "20261127_0003", "20261127_0002"
branch_labels = depends_on = None


def _id() -> sa.types.TypeEngine:
    """BIGINT on servers, INTEGER on SQLite (its rowid alias), as in the models."""
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mirrorscale_model_snapshot",
        sa.Column("id", _id(), autoincrement=True, nullable=False),
        sa.Column("task_pk", _id(), nullable=False),
        sa.Column("method", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("watermark", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.JSON(), nullable=False),  # read and written whole: json text, not jsonb
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_pk"], ["mirrorscale_task.id"],
                                name=op.f("fk_mirrorscale_model_snapshot_task_pk_mirrorscale_task"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirrorscale_model_snapshot")),
        sa.UniqueConstraint("task_pk", "method", name=op.f("uq_mirrorscale_model_snapshot_task_pk_method")),
    )


def downgrade() -> None:
    op.drop_table("mirrorscale_model_snapshot")
