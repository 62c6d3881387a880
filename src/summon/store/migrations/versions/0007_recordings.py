"""recordings: a bot's recording and its artifacts

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=False),
        sa.Column("bot_metadata", JSONDoc, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sub_code", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.Column("artifacts", JSONDoc, nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_recordings_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["bot_id"], ["bots.id"], name=op.f("fk_recordings_bot_id_bots"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
    )
    op.create_index(
        "ix_recordings_workspace_created",
        "recordings",
        ["workspace_id", "created_at", "id"],
        unique=False,
    )
    op.create_index("ix_recordings_bot", "recordings", ["bot_id"], unique=False)
    op.create_index("ix_recordings_expires", "recordings", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_recordings_expires", table_name="recordings")
    op.drop_index("ix_recordings_bot", table_name="recordings")
    op.drop_index("ix_recordings_workspace_created", table_name="recordings")
    op.drop_table("recordings")
