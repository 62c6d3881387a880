"""initial schema

Revision ID: 0001
Revises: 
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from sqlalchemy.dialects import postgresql

# Frozen copies of the model types as they were at this revision.
JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox',
    sa.Column('seq', BigId, autoincrement=True, nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('bot_id', sa.Uuid(), nullable=True),
    sa.Column('event_type', sa.String(length=100), nullable=False),
    sa.Column('payload', JSONDoc, nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('seq', name=op.f('pk_outbox')),
    sa.UniqueConstraint('id', name=op.f('uq_outbox_id'))
    )
    op.create_index('ix_outbox_pending', 'outbox', ['dispatched_at', 'seq'], unique=False)

    op.create_table('workspaces',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workspaces')),
    sa.UniqueConstraint('name', name=op.f('uq_workspaces_name'))
    )
    op.create_table('api_keys',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_api_keys_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_index(op.f('ix_api_keys_workspace_id'), 'api_keys', ['workspace_id'], unique=False)

    op.create_table('bots',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('platform', sa.String(length=32), nullable=False),
    sa.Column('meeting_url', JSONDoc, nullable=False),
    sa.Column('meeting_url_raw', sa.Text(), nullable=False),
    sa.Column('meeting_key', sa.String(length=600), nullable=False),
    sa.Column('bot_name', sa.String(length=100), nullable=False),
    sa.Column('join_at', sa.DateTime(), nullable=True),
    sa.Column('scheduled', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('config', JSONDoc, nullable=False),
    sa.Column('metadata', JSONDoc, nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_bots_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bots'))
    )
    op.create_index('ix_bots_state_join_at', 'bots', ['state', 'join_at'], unique=False)
    op.create_index('ix_bots_workspace_created', 'bots', ['workspace_id', 'created_at', 'id'], unique=False)
    op.create_index('ix_bots_workspace_join_at', 'bots', ['workspace_id', 'join_at'], unique=False)
    op.create_index('ix_bots_workspace_meeting', 'bots', ['workspace_id', 'meeting_key'], unique=False)

    op.create_table('idempotency_keys',
    sa.Column('workspace_id', sa.Uuid(), nullable=False),
    sa.Column('scope', sa.String(length=300), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=True),
    sa.Column('response', sa.LargeBinary(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_idempotency_keys_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('workspace_id', 'scope', 'key', name=op.f('pk_idempotency_keys'))
    )
    op.create_index('ix_idempotency_keys_created', 'idempotency_keys', ['created_at'], unique=False)

    op.create_table('bot_status_changes',
    sa.Column('id', BigId, autoincrement=True, nullable=False),
    sa.Column('bot_id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('sub_code', sa.String(length=100), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['bot_id'], ['bots.id'], name=op.f('fk_bot_status_changes_bot_id_bots'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bot_status_changes'))
    )
    op.create_index('ix_bot_status_changes_bot', 'bot_status_changes', ['bot_id', 'id'], unique=False)



def downgrade() -> None:
    op.drop_index('ix_bot_status_changes_bot', table_name='bot_status_changes')

    op.drop_table('bot_status_changes')
    op.drop_index('ix_idempotency_keys_created', table_name='idempotency_keys')

    op.drop_table('idempotency_keys')
    op.drop_index('ix_bots_workspace_meeting', table_name='bots')
    op.drop_index('ix_bots_workspace_join_at', table_name='bots')
    op.drop_index('ix_bots_workspace_created', table_name='bots')
    op.drop_index('ix_bots_state_join_at', table_name='bots')

    op.drop_table('bots')
    op.drop_index(op.f('ix_api_keys_workspace_id'), table_name='api_keys')

    op.drop_table('api_keys')
    op.drop_table('workspaces')
    op.drop_index('ix_outbox_pending', table_name='outbox')

    op.drop_table('outbox')
