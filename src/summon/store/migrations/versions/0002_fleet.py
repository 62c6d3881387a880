"""fleet: agents, bot commands, scheduling columns on bots

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# Frozen copies of the model types as they were at this revision.
JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        batch.add_column(sa.Column("stage_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("window_end", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("agent_id", sa.Uuid(), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(), nullable=True))
    op.create_index("ix_bots_state_stage_at", "bots", ["state", "stage_at"], unique=False)
    op.create_index("ix_bots_agent_state", "bots", ["agent_id", "state"], unique=False)
    op.create_table(
        "agents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("platforms", JSONDoc, nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.Column("slots_free", sa.Integer(), nullable=False),
        sa.Column("slots_total", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
    )
    op.create_index("ix_agents_heartbeat", "agents", ["heartbeat_at"], unique=False)
    op.create_table(
        "bot_commands",
        sa.Column("seq", BigId, autoincrement=True, nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("args", JSONDoc, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_bot_commands")),
    )
    op.create_index("ix_bot_commands_agent_pending", "bot_commands", ["agent_id", "delivered_at", "seq"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_bot_commands_agent_pending", table_name="bot_commands")
    op.drop_table("bot_commands")
    op.drop_index("ix_agents_heartbeat", table_name="agents")
    op.drop_table("agents")
    op.drop_index("ix_bots_agent_state", table_name="bots")
    op.drop_index("ix_bots_state_stage_at", table_name="bots")
    with op.batch_alter_table("bots") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("agent_id")
        batch.drop_column("window_end")
        batch.drop_column("stage_at")
