"""Model snapshot state as ``json`` on every PostgreSQL store, whichever version of 0003 made it.

Why: migration 0003 first created ``mirrorscale_model_snapshot.state`` as
``jsonb`` (commit ad43141) and was then edited in place to create ``json``
(5eb8285: the state is only ever read and written whole, so jsonb's parsing
on every write buys nothing). A PostgreSQL store upgraded between the two
still has ``jsonb``, which the models no longer describe. This turns such a
column into ``json``, keeping every row; on any other store (SQLite, or
PostgreSQL created by the current 0003) it changes nothing. Downgrading
leaves the column as it is: both types hold the same documents.

Revision ID: 20261204_0004
Revises: 20261127_0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision, down_revision = "20261204_0004", "20261127_0003"
branch_labels = depends_on = None

TABLE = "mirrorscale_model_snapshot"


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    columns = {c["name"]: c["type"] for c in sa.inspect(bind).get_columns(TABLE)}
    if isinstance(columns.get("state"), postgresql.JSONB):
        op.alter_column(TABLE, "state", type_=sa.JSON(), existing_nullable=False, postgresql_using="state::json")


def downgrade() -> None:
    pass
