"""Initial history store: tasks, execution traces, samples, shadows, predictions, allocations.

Why: mirrorscale needs one place for everything it learns from and decides.
This revision creates the six ``mirrorscale_*`` tables with the index of the
hot query (the latest runs of one task: ``task_pk, started_at``) and the
uniqueness that makes trace imports idempotent (``task_pk, run_id, try_number``).

Revision ID: 20261127_0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "20261127_0001"
down_revision = None
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table('mirrorscale_task',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('engine', sa.String(length=32), nullable=False),
    sa.Column('pipeline_id', sa.String(length=250), nullable=False),
    sa.Column('task_id', sa.String(length=250), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mirrorscale_task')),
    sa.UniqueConstraint('engine', 'pipeline_id', 'task_id', name=op.f('uq_mirrorscale_task_engine_pipeline_id_task_id'))
    )
    op.create_table('mirrorscale_prediction',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('task_pk', ID, nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('method', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=32), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('low', sa.Float(), nullable=True),
    sa.Column('high', sa.Float(), nullable=True),
    sa.Column('label', sa.String(length=250), nullable=True),
    sa.Column('details', JSON_DOC, nullable=False),
    sa.ForeignKeyConstraint(['task_pk'], ['mirrorscale_task.id'], name=op.f('fk_mirrorscale_prediction_task_pk_mirrorscale_task'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mirrorscale_prediction'))
    )
    op.create_index('ix_mirrorscale_prediction_task_pk_run_id', 'mirrorscale_prediction', ['task_pk', 'run_id'])

    op.create_table('mirrorscale_shadow',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('task_pk', ID, nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('sample_fraction', sa.Float(), nullable=False),
    sa.Column('sampled_input_bytes', sa.BigInteger(), nullable=True),
    sa.Column('full_input_bytes', sa.BigInteger(), nullable=True),
    sa.Column('cost_peak_rss_bytes', sa.BigInteger(), nullable=True),
    sa.Column('cost_cpu_seconds', sa.Float(), nullable=True),
    sa.Column('cost_wall_seconds', sa.Float(), nullable=True),
    sa.Column('measured_peak_rss_increase_bytes', sa.BigInteger(), nullable=True),
    sa.Column('predicted_peak_rss_bytes', sa.BigInteger(), nullable=True),
    sa.Column('predicted_peak_rss_low', sa.BigInteger(), nullable=True),
    sa.Column('predicted_peak_rss_high', sa.BigInteger(), nullable=True),
    sa.Column('predicted_cpu_seconds', sa.Float(), nullable=True),
    sa.Column('predicted_cpu_low', sa.Float(), nullable=True),
    sa.Column('predicted_cpu_high', sa.Float(), nullable=True),
    sa.Column('predicted_wall_seconds', sa.Float(), nullable=True),
    sa.Column('predicted_wall_low', sa.Float(), nullable=True),
    sa.Column('predicted_wall_high', sa.Float(), nullable=True),
    sa.Column('evidence', sa.Text(), nullable=True),
    sa.CheckConstraint("outcome IN ('ok', 'memory_cap', 'timeout', 'error')", name=op.f('ck_mirrorscale_shadow_outcome')),
    sa.ForeignKeyConstraint(['task_pk'], ['mirrorscale_task.id'], name=op.f('fk_mirrorscale_shadow_task_pk_mirrorscale_task'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mirrorscale_shadow'))
    )
    op.create_index('ix_mirrorscale_shadow_task_pk_created_at', 'mirrorscale_shadow', ['task_pk', 'created_at'])

    op.create_table('mirrorscale_trace',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('task_pk', ID, nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('try_number', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('features', JSON_DOC, nullable=False),
    sa.Column('input_size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('peak_rss_bytes', sa.BigInteger(), nullable=True),
    sa.Column('cpu_seconds', sa.Float(), nullable=True),
    sa.Column('wall_seconds', sa.Float(), nullable=True),
    sa.Column('read_bytes', sa.BigInteger(), nullable=True),
    sa.Column('write_bytes', sa.BigInteger(), nullable=True),
    sa.Column('branch', sa.String(length=250), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('allocated_memory_bytes', sa.BigInteger(), nullable=True),
    sa.Column('allocated_cpu', sa.Float(), nullable=True),
    sa.Column('allocated_pool', sa.String(length=250), nullable=True),
    sa.Column('allocated_pool_slots', sa.Integer(), nullable=True),
    sa.CheckConstraint("outcome IN ('success', 'failed', 'oom_killed', 'timed_out')", name=op.f('ck_mirrorscale_trace_outcome')),
    sa.ForeignKeyConstraint(['task_pk'], ['mirrorscale_task.id'], name=op.f('fk_mirrorscale_trace_task_pk_mirrorscale_task'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mirrorscale_trace')),
    sa.UniqueConstraint('task_pk', 'run_id', 'try_number', name=op.f('uq_mirrorscale_trace_task_pk_run_id_try_number'))
    )
    op.create_index('ix_mirrorscale_trace_task_pk_started_at', 'mirrorscale_trace', ['task_pk', 'started_at'])

    op.create_table('mirrorscale_allocation',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('task_pk', ID, nullable=False),
    sa.Column('run_id', sa.String(length=250), nullable=False),
    sa.Column('try_number', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('applied', sa.Boolean(), nullable=False),
    sa.Column('memory_bytes', sa.BigInteger(), nullable=True),
    sa.Column('cpu', sa.Float(), nullable=True),
    sa.Column('pool', sa.String(length=250), nullable=True),
    sa.Column('pool_slots', sa.Integer(), nullable=True),
    sa.Column('priority_weight', sa.Integer(), nullable=True),
    sa.Column('queue', sa.String(length=250), nullable=True),
    sa.Column('executor_options', JSON_DOC, nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('shadow_id', ID, nullable=True),
    sa.CheckConstraint("mode IN ('observe', 'recommend', 'enforce')", name=op.f('ck_mirrorscale_allocation_mode')),
    sa.ForeignKeyConstraint(['shadow_id'], ['mirrorscale_shadow.id'], name=op.f('fk_mirrorscale_allocation_shadow_id_mirrorscale_shadow'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['task_pk'], ['mirrorscale_task.id'], name=op.f('fk_mirrorscale_allocation_task_pk_mirrorscale_task'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mirrorscale_allocation'))
    )
    op.create_index('ix_mirrorscale_allocation_task_pk_created_at', 'mirrorscale_allocation', ['task_pk', 'created_at'])

    op.create_table('mirrorscale_trace_samples',
    sa.Column('trace_id', ID, nullable=False),
    sa.Column('t_seconds', JSON_DOC, nullable=False),
    sa.Column('rss_bytes', JSON_DOC, nullable=False),
    sa.Column('cpu_seconds', JSON_DOC, nullable=False),
    sa.ForeignKeyConstraint(['trace_id'], ['mirrorscale_trace.id'], name=op.f('fk_mirrorscale_trace_samples_trace_id_mirrorscale_trace'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('trace_id', name=op.f('pk_mirrorscale_trace_samples'))
    )


def downgrade() -> None:
    op.drop_table('mirrorscale_trace_samples')
    op.drop_index('ix_mirrorscale_allocation_task_pk_created_at', table_name='mirrorscale_allocation')
    op.drop_table('mirrorscale_allocation')
    op.drop_index('ix_mirrorscale_trace_task_pk_started_at', table_name='mirrorscale_trace')
    op.drop_table('mirrorscale_trace')
    op.drop_index('ix_mirrorscale_shadow_task_pk_created_at', table_name='mirrorscale_shadow')
    op.drop_table('mirrorscale_shadow')
    op.drop_index('ix_mirrorscale_prediction_task_pk_run_id', table_name='mirrorscale_prediction')
    op.drop_table('mirrorscale_prediction')
    op.drop_table('mirrorscale_task')
