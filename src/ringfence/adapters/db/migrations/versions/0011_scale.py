"""scale: message ids of streamed health reports (exactly-once ingestion) and host-token revocations

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision: the ingested_reports and host_revocations tables."""
    op.create_table('ingested_reports',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ingested_reports'))
    )
    with op.batch_alter_table('ingested_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ingested_reports_at'), ['at'], unique=False)
    op.create_table('host_revocations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('host_id', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_host_revocations'))
    )
    with op.batch_alter_table('host_revocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_host_revocations_at'), ['at'], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('host_revocations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_host_revocations_at'))
    op.drop_table('host_revocations')
    with op.batch_alter_table('ingested_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ingested_reports_at'))
    op.drop_table('ingested_reports')
