"""gatesrv: gate v2 in the server

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision: arrival, notice and crash times per host, its absences, and the per-day record."""
    with op.batch_alter_table('host_health', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_seen', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('notice_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('notice_reason', sa.String(length=32), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('crash_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('away_recent', sa.JSON(), nullable=False, server_default='[]'))
    op.create_table('host_days',
    sa.Column('host_id', sa.String(length=200), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('hours', sa.Float(), nullable=False),
    sa.Column('silences', sa.Integer(), nullable=False),
    sa.Column('crashes', sa.Integer(), nullable=False),
    sa.Column('notices', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('host_id', 'day', name=op.f('pk_host_days'))
    )
    with op.batch_alter_table('host_days', schema=None) as batch_op:
        batch_op.create_index('ix_host_days_day', ['day'], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('host_days', schema=None) as batch_op:
        batch_op.drop_index('ix_host_days_day')
    op.drop_table('host_days')
    with op.batch_alter_table('host_health', schema=None) as batch_op:
        batch_op.drop_column('away_recent')
        batch_op.drop_column('crash_at')
        batch_op.drop_column('notice_reason')
        batch_op.drop_column('notice_at')
        batch_op.drop_column('last_seen')
