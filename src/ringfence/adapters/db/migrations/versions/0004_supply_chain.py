"""supply chain: SBOMs, advisories, VEX, release signatures, content contracts, release gates

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table('advisories',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('aliases', sa.JSON(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('modified', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published', sa.DateTime(timezone=True), nullable=True),
    sa.Column('withdrawn', sa.DateTime(timezone=True), nullable=True),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('score', sa.Float(), nullable=True),
    sa.Column('vector', sa.Text(), nullable=False),
    sa.Column('severity_source', sa.String(length=64), nullable=False),
    sa.Column('affected', sa.JSON(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_advisories'))
    )
    op.create_table('advisory_aliases',
    sa.Column('alias', sa.String(length=200), nullable=False),
    sa.Column('advisory_id', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['advisory_id'], ['advisories.id'], name=op.f('fk_advisory_aliases_advisory_id_advisories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('alias', 'advisory_id', name=op.f('pk_advisory_aliases'))
    )
    op.create_index(op.f('ix_advisory_aliases_advisory_id'), 'advisory_aliases', ['advisory_id'], unique=False)
    op.create_table('vuln_generation',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_vuln_generation'))
    )
    op.create_table('vex_statements',
    sa.Column('vulnerability', sa.String(length=200), nullable=False),
    sa.Column('product', sa.String(length=400), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('justification', sa.String(length=100), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('document', sa.String(length=400), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('imported_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('vulnerability', 'product', name=op.f('pk_vex_statements'))
    )
    op.create_table('release_signers',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('keyid', sa.String(length=64), nullable=False),
    sa.Column('public_key', sa.JSON(), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('added_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_release_signers')),
    sa.UniqueConstraint('keyid', name=op.f('uq_release_signers_keyid'))
    )
    op.create_table('release_signatures',
    sa.Column('release_id', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('keyid', sa.String(length=64), nullable=False),
    sa.Column('signature', sa.Text(), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('uploaded_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_release_signatures_release_id_releases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('release_id', 'sha256', 'keyid', name=op.f('pk_release_signatures'))
    )
    op.create_table('release_contracts',
    sa.Column('release_id', sa.String(length=200), nullable=False),
    sa.Column('content_schema', sa.JSON(), nullable=True),
    sa.Column('for_agent', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_release_contracts_release_id_releases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('release_id', name=op.f('pk_release_contracts'))
    )
    op.create_index(op.f('ix_release_contracts_for_agent'), 'release_contracts', ['for_agent'], unique=False)
    op.create_table('sboms',
    sa.Column('release_id', sa.String(length=200), nullable=False),
    sa.Column('format', sa.String(length=16), nullable=False),
    sa.Column('spec_version', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=400), nullable=False),
    sa.Column('serial_number', sa.String(length=200), nullable=False),
    sa.Column('bom_version', sa.Integer(), nullable=False),
    sa.Column('subject_ref', sa.String(length=400), nullable=False),
    sa.Column('source', sa.String(length=400), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('components', sa.Integer(), nullable=False),
    sa.Column('incomplete', sa.Integer(), nullable=False),
    sa.Column('warnings', sa.JSON(), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('imported_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['releases.id'], name=op.f('fk_sboms_release_id_releases'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('release_id', name=op.f('pk_sboms'))
    )
    op.create_index(op.f('ix_sboms_serial_number'), 'sboms', ['serial_number'], unique=False)
    op.create_table('sbom_components',
    sa.Column('release_id', sa.String(length=200), nullable=False),
    sa.Column('idx', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=400), nullable=False),
    sa.Column('version', sa.String(length=200), nullable=False),
    sa.Column('purl', sa.Text(), nullable=False),
    sa.Column('ecosystem', sa.String(length=64), nullable=False),
    sa.Column('package', sa.String(length=400), nullable=False),
    sa.Column('group', sa.String(length=400), nullable=False),
    sa.Column('bom_ref', sa.String(length=400), nullable=False),
    sa.Column('hashes', sa.JSON(), nullable=False),
    sa.Column('incomplete', sa.Boolean(), nullable=False),
    sa.Column('problems', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['release_id'], ['sboms.release_id'], name=op.f('fk_sbom_components_release_id_sboms'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('release_id', 'idx', name=op.f('pk_sbom_components'))
    )
    op.create_index('ix_sbom_components_package', 'sbom_components', ['ecosystem', 'package'], unique=False)
    op.create_table('gate_policy',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('document', sa.JSON(), nullable=False),
    sa.Column('source', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gate_policy'))
    )
    op.create_table('gate_results',
    sa.Column('rollout_id', sa.String(length=64), nullable=False),
    sa.Column('gate', sa.String(length=32), nullable=False),
    sa.Column('verdict', sa.String(length=16), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_gate_results_rollout_id_rollouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('rollout_id', 'gate', name=op.f('pk_gate_results'))
    )
    op.create_table('gate_overrides',
    sa.Column('rollout_id', sa.String(length=64), nullable=False),
    sa.Column('approver', sa.String(length=200), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('gates', sa.JSON(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_gate_overrides_rollout_id_rollouts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('rollout_id', name=op.f('pk_gate_overrides'))
    )
    op.execute("INSERT INTO vuln_generation (id, generation, updated_at) VALUES (1, 0, CURRENT_TIMESTAMP)")


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table('gate_overrides')
    op.drop_table('gate_results')
    op.drop_table('gate_policy')
    op.drop_table('sbom_components')
    op.drop_table('sboms')
    op.drop_table('release_contracts')
    op.drop_table('release_signatures')
    op.drop_table('release_signers')
    op.drop_table('vex_statements')
    op.drop_table('vuln_generation')
    op.drop_table('advisory_aliases')
    op.drop_table('advisories')
