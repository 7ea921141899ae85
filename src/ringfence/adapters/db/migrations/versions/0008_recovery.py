"""recovery campaigns

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision: recovery campaigns, their hosts and events, encrypted keys and key reveals."""
    op.create_table('recovery_campaigns',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('source_ref', sa.Text(), nullable=False),
    sa.Column('runbooks', sa.JSON(), nullable=False),
    sa.Column('model', sa.JSON(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_campaigns'))
    )
    op.create_table('recovery_keys',
    sa.Column('host_id', sa.String(length=200), nullable=False),
    sa.Column('key_id', sa.String(length=200), nullable=False),
    sa.Column('ciphertext', sa.Text(), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('imported_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('host_id', name=op.f('pk_recovery_keys'))
    )
    op.create_table('recovery_reveals',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('host_id', sa.String(length=200), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revealed', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_reveals'))
    )
    with op.batch_alter_table('recovery_reveals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recovery_reveals_actor'), ['actor'], unique=False)
        batch_op.create_index(batch_op.f('ix_recovery_reveals_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('recovery_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('host_id', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('state_from', sa.String(length=32), nullable=False),
    sa.Column('state_to', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['recovery_campaigns.id'], name=op.f('fk_recovery_events_campaign_id_recovery_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recovery_events'))
    )
    with op.batch_alter_table('recovery_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recovery_events_campaign_id'), ['campaign_id'], unique=False)

    op.create_table('recovery_hosts',
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('host_id', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('runbook', sa.String(length=100), nullable=False),
    sa.Column('path', sa.String(length=32), nullable=False),
    sa.Column('assignee', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('fixed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['recovery_campaigns.id'], name=op.f('fk_recovery_hosts_campaign_id_recovery_campaigns'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('campaign_id', 'host_id', name=op.f('pk_recovery_hosts'))
    )
    with op.batch_alter_table('recovery_hosts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_recovery_hosts_assignee'), ['assignee'], unique=False)
        batch_op.create_index(batch_op.f('ix_recovery_hosts_host_id'), ['host_id'], unique=False)



def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('recovery_hosts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recovery_hosts_host_id'))
        batch_op.drop_index(batch_op.f('ix_recovery_hosts_assignee'))

    op.drop_table('recovery_hosts')
    with op.batch_alter_table('recovery_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recovery_events_campaign_id'))

    op.drop_table('recovery_events')
    with op.batch_alter_table('recovery_reveals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_recovery_reveals_campaign_id'))
        batch_op.drop_index(batch_op.f('ix_recovery_reveals_actor'))

    op.drop_table('recovery_reveals')
    op.drop_table('recovery_keys')
    op.drop_table('recovery_campaigns')
