"""Mirror life cycle: one row per transition of a task's mirror (none -> active -> retired).

Why: mirrors are created, refreshed and retired per task (issue 4, item 4) and
every transition must be kept with its reason and the volatility score that
triggered it, so ``mirrorscale explain`` can say why a task is (not) mirrored
and the life cycle survives restarts. The newest row of a task is its current
state; the index serves that query (``task_pk, created_at``).

Revision ID: 20261127_0002
Revises: 20261127_0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "20261127_0002"
down_revision = "20261127_0001"
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "mirrorscale_mirror_state",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("task_pk", ID, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("volatility", sa.Float(), nullable=True),
        sa.Column("details", JSON_DOC, nullable=False),
        sa.CheckConstraint("state IN ('none', 'active', 'retired')",
                           name=op.f("ck_mirrorscale_mirror_state_state")),
        sa.ForeignKeyConstraint(["task_pk"], ["mirrorscale_task.id"],
                                name=op.f("fk_mirrorscale_mirror_state_task_pk_mirrorscale_task"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mirrorscale_mirror_state")),
    )
    op.create_index("ix_mirrorscale_mirror_state_task_pk_created_at", "mirrorscale_mirror_state",
                    ["task_pk", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_mirrorscale_mirror_state_task_pk_created_at", table_name="mirrorscale_mirror_state")
    op.drop_table("mirrorscale_mirror_state")
