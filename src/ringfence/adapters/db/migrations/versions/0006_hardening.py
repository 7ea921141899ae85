"""hardening

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision: re-enrolment tokens bound to one host; where the audit chain becomes keyed."""
    with op.batch_alter_table('enrolment_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('host_id', sa.String(length=200), nullable=True))
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('keyed_from', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('key_id', sa.String(length=16), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.drop_column('key_id')
        batch_op.drop_column('keyed_from')
    with op.batch_alter_table('enrolment_tokens', schema=None) as batch_op:
        batch_op.drop_column('host_id')
