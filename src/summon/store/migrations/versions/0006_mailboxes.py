"""mailboxes: bot mailboxes and the invites they received

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bot_mailboxes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("bot_config", JSONDoc, nullable=False),
        sa.Column("allowed_senders", JSONDoc, nullable=False),
        sa.Column("send_replies", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_bot_mailboxes_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bot_mailboxes")),
        sa.UniqueConstraint("address", name=op.f("uq_bot_mailboxes_address")),
    )
    op.create_index(
        "ix_bot_mailboxes_workspace_created",
        "bot_mailboxes",
        ["workspace_id", "created_at", "id"],
        unique=False,
    )
    op.create_table(
        "mailbox_invites",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("mailbox_id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("uid", sa.String(length=1000), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("dtstamp", sa.DateTime(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("calendar", sa.Text(), nullable=True),
        sa.Column("body_link", sa.Text(), nullable=True),
        sa.Column("instances", JSONDoc, nullable=False),
        sa.Column("bots", JSONDoc, nullable=False),
        sa.Column("recurring", sa.Boolean(), nullable=False),
        sa.Column("organizer", sa.String(length=254), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("sender", sa.String(length=254), nullable=True),
        sa.Column("message_id", sa.String(length=1000), nullable=True),
        sa.Column("next_check_at", sa.DateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["mailbox_id"],
            ["bot_mailboxes.id"],
            name=op.f("fk_mailbox_invites_mailbox_id_bot_mailboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mailbox_invites")),
        sa.UniqueConstraint("mailbox_id", "uid", name="uq_mailbox_invites_mailbox_uid"),
    )
    op.create_index(
        "ix_mailbox_invites_mailbox_updated",
        "mailbox_invites",
        ["mailbox_id", "updated_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_mailbox_invites_next_check", "mailbox_invites", ["next_check_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_mailbox_invites_next_check", table_name="mailbox_invites")
    op.drop_index("ix_mailbox_invites_mailbox_updated", table_name="mailbox_invites")
    op.drop_table("mailbox_invites")
    op.drop_index("ix_bot_mailboxes_workspace_created", table_name="bot_mailboxes")
    op.drop_table("bot_mailboxes")
