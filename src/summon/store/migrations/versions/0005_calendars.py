"""calendars: calendars, calendar events, event bots and their refs

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendars",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("status_changes", JSONDoc, nullable=False),
        sa.Column("credentials", sa.Text(), nullable=False),
        sa.Column("state", JSONDoc, nullable=False),
        sa.Column("auto_record", JSONDoc, nullable=True),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("platform_email", sa.String(length=320), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("last_synced_at", sa.DateTime(), nullable=True),
        sa.Column("next_sync_at", sa.DateTime(), nullable=True),
        sa.Column("lease_until", sa.DateTime(), nullable=True),
        sa.Column("sync_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_calendars_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendars")),
    )
    op.create_index(
        "ix_calendars_workspace_created",
        "calendars",
        ["workspace_id", "created_at", "id"],
        unique=False,
    )
    op.create_index("ix_calendars_next_sync", "calendars", ["next_sync_at"], unique=False)
    op.create_table(
        "calendar_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("calendar_id", sa.Uuid(), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=1000), nullable=False),
        sa.Column("ical_uid", sa.String(length=1000), nullable=False),
        sa.Column("recurrence_id", sa.String(length=100), nullable=True),
        sa.Column("start_time", sa.DateTime(), nullable=False),
        sa.Column("end_time", sa.DateTime(), nullable=False),
        sa.Column("all_day", sa.Boolean(), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("meeting_url", sa.Text(), nullable=True),
        sa.Column("meeting_platform", sa.String(length=32), nullable=True),
        sa.Column("recurring", sa.Boolean(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), nullable=False),
        sa.Column("is_deleted", sa.Boolean(), nullable=False),
        sa.Column("organizer", JSONDoc, nullable=True),
        sa.Column("attendees", JSONDoc, nullable=False),
        sa.Column("details", JSONDoc, nullable=False),
        sa.Column("raw", JSONDoc, nullable=False),
        sa.Column("manual_bot", JSONDoc, nullable=True),
        sa.Column("bot_opt_out", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["calendar_id"],
            ["calendars.id"],
            name=op.f("fk_calendar_events_calendar_id_calendars"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_events")),
        sa.UniqueConstraint("calendar_id", "key", name="uq_calendar_events_calendar_key"),
    )
    op.create_index(
        "ix_calendar_events_calendar_start",
        "calendar_events",
        ["calendar_id", "start_time"],
        unique=False,
    )
    op.create_index(
        "ix_calendar_events_workspace_start",
        "calendar_events",
        ["workspace_id", "start_time", "id"],
        unique=False,
    )
    op.create_index(
        "ix_calendar_events_workspace_updated",
        "calendar_events",
        ["workspace_id", "updated_at"],
        unique=False,
    )
    op.create_table(
        "event_bots",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("dedup_key", sa.String(length=1000), nullable=False),
        sa.Column("bot_id", sa.Uuid(), nullable=True),
        sa.Column("claim", sa.Uuid(), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_event_bots_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "dedup_key", name=op.f("pk_event_bots")),
    )
    op.create_index("ix_event_bots_bot", "event_bots", ["workspace_id", "bot_id"], unique=False)
    op.create_table(
        "event_bot_refs",
        sa.Column("workspace_id", sa.Uuid(), nullable=False),
        sa.Column("ref", sa.String(length=1000), nullable=False),
        sa.Column("dedup_key", sa.String(length=1000), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspaces.id"],
            name=op.f("fk_event_bot_refs_workspace_id_workspaces"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workspace_id", "ref", name=op.f("pk_event_bot_refs")),
    )
    op.create_index(
        "ix_event_bot_refs_key", "event_bot_refs", ["workspace_id", "dedup_key"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_event_bot_refs_key", table_name="event_bot_refs")
    op.drop_table("event_bot_refs")
    op.drop_index("ix_event_bots_bot", table_name="event_bots")
    op.drop_table("event_bots")
    op.drop_index("ix_calendar_events_workspace_updated", table_name="calendar_events")
    op.drop_index("ix_calendar_events_workspace_start", table_name="calendar_events")
    op.drop_index("ix_calendar_events_calendar_start", table_name="calendar_events")
    op.drop_table("calendar_events")
    op.drop_index("ix_calendars_next_sync", table_name="calendars")
    op.drop_index("ix_calendars_workspace_created", table_name="calendars")
    op.drop_table("calendars")
