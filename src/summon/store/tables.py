"""The schema, as SQLAlchemy Core tables. Alembic migrations must produce exactly this
(``tests/contract/test_migrations.py`` checks it on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC — the same on SQLite (text) and PostgreSQL."""

    impl = sa.DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


JSONDoc = sa.JSON().with_variant(JSONB(), "postgresql")
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite autoincrements INTEGER only

workspaces = sa.Table(
    "workspaces",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("workspace_id", sa.Uuid, sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
)

bots = sa.Table(
    "bots",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("workspace_id", sa.Uuid, sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("meeting_url", JSONDoc, nullable=False),
    sa.Column("meeting_url_raw", sa.Text, nullable=False),
    sa.Column("meeting_key", sa.String(600), nullable=False),
    sa.Column("bot_name", sa.String(100), nullable=False),
    sa.Column("join_at", UTCDateTime, nullable=True),
    sa.Column("scheduled", sa.Boolean, nullable=False),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("config", JSONDoc, nullable=False),
    sa.Column("metadata", JSONDoc, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # Scheduling: when to stage (join_at − lead, spread), the end of the reserved window (for
    # capacity), the agent hosting (or about to host) the bot, and the claim lease.
    sa.Column("stage_at", UTCDateTime, nullable=True),
    sa.Column("window_end", UTCDateTime, nullable=True),
    sa.Column("agent_id", sa.Uuid, nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    # Listing is newest first within a workspace; the id breaks ties so pages are stable.
    sa.Index("ix_bots_workspace_created", "workspace_id", "created_at", "id"),
    sa.Index("ix_bots_workspace_meeting", "workspace_id", "meeting_key"),
    sa.Index("ix_bots_workspace_join_at", "workspace_id", "join_at"),
    # The scheduler asks "which bots in this state are due by then" — never a full scan.
    sa.Index("ix_bots_state_join_at", "state", "join_at"),
    sa.Index("ix_bots_state_stage_at", "state", "stage_at"),
    sa.Index("ix_bots_agent_state", "agent_id", "state"),
)

# Fleet agents (one per host process running bot runtimes): liveness and free warm slots.
agents = sa.Table(
    "agents",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("platforms", JSONDoc, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
    sa.Column("stopped_at", UTCDateTime, nullable=True),
    sa.Column("slots_free", sa.Integer, nullable=False),
    sa.Column("slots_total", sa.Integer, nullable=False),
    sa.Index("ix_agents_heartbeat", "heartbeat_at"),
)

# Commands for bots hosted by some agent (leave, chat, media, recording), from any API node.
bot_commands = sa.Table(
    "bot_commands",
    metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("bot_id", sa.Uuid, nullable=False),
    sa.Column("agent_id", sa.Uuid, nullable=False),
    sa.Column("name", sa.String(50), nullable=False),
    sa.Column("args", JSONDoc, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Index("ix_bot_commands_agent_pending", "agent_id", "delivered_at", "seq"),
)

bot_status_changes = sa.Table(
    "bot_status_changes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("bot_id", sa.Uuid, sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False),
    sa.Column("code", sa.String(32), nullable=False),
    sa.Column("sub_code", sa.String(100), nullable=True),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_bot_status_changes_bot", "bot_id", "id"),
)

# The transactional outbox: written with the change that caused it; the webhook sender reads it.
outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Uuid, nullable=False, unique=True),
    sa.Column("workspace_id", sa.Uuid, nullable=False),
    sa.Column("bot_id", sa.Uuid, nullable=True),  # no FK: a bot.deleted message outlives its bot
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("payload", JSONDoc, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("dispatched_at", UTCDateTime, nullable=True),
    sa.Index("ix_outbox_pending", "dispatched_at", "seq"),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("workspace_id", sa.Uuid, sa.ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("scope", sa.String(300), primary_key=True),  # method and path
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),  # null while the first request runs
    sa.Column("response", sa.LargeBinary, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_idempotency_keys_created", "created_at"),
)

# Webhook endpoints of a workspace; secrets encrypted at rest (SecretBox). During a rotation the
# previous secret keeps signing (a second signature) until ``previous_secret_until``.
webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("workspace_id", sa.Uuid, sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("description", sa.String(500), nullable=True),
    sa.Column("event_types", JSONDoc, nullable=False),
    sa.Column("secret", sa.Text, nullable=False),
    sa.Column("previous_secret", sa.Text, nullable=True),
    sa.Column("previous_secret_until", UTCDateTime, nullable=True),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.String(200), nullable=True),
    sa.Column("failing_since", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_webhook_endpoints_workspace", "workspace_id", "created_at"),
)

# One row per (outbox message, endpoint): what the webhook sender must deliver, and how it went.
# ``seq`` orders the deliveries of one bot to one endpoint: a later one waits for the earlier.
webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("seq", BigId, primary_key=True, autoincrement=True),
    sa.Column("id", sa.Uuid, nullable=False, unique=True),
    sa.Column("message_id", sa.Uuid, nullable=False),
    sa.Column("endpoint_id", sa.Uuid, sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False),
    sa.Column("workspace_id", sa.Uuid, nullable=False),
    sa.Column("bot_id", sa.Uuid, nullable=True),
    sa.Column("event_type", sa.String(100), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending, delivered, failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime, nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("message_id", "endpoint_id", name="uq_webhook_deliveries_message_endpoint"),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    sa.Index("ix_webhook_deliveries_order", "endpoint_id", "bot_id", "status", "seq"),
    sa.Index("ix_webhook_deliveries_lane", "endpoint_id", "status", "next_attempt_at", "seq"),  # one endpoint's queue
    sa.Index("ix_webhook_deliveries_ledger", "workspace_id", "seq"),
)

webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("delivery_seq", BigId, sa.ForeignKey("webhook_deliveries.seq", ondelete="CASCADE"), nullable=False),
    sa.Column("attempted_at", UTCDateTime, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("response", sa.Text, nullable=True),
    sa.Index("ix_webhook_attempts_delivery", "delivery_seq", "id"),
)

# -- calendars ------------------------------------------------------------------------------------
# Connected calendars (SPEC §11). Credentials are sealed (SecretBox) JSON; ``state`` is the
# provider's incremental-sync state; ``version`` fences a sync's write against updates.
calendars = sa.Table(
    "calendars",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "workspace_id", sa.Uuid, sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("status_reason", sa.Text, nullable=True),
    sa.Column("status_changes", JSONDoc, nullable=False),
    sa.Column("credentials", sa.Text, nullable=False),
    sa.Column("state", JSONDoc, nullable=False),
    sa.Column("auto_record", JSONDoc, nullable=True),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("platform_email", sa.String(320), nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("last_synced_at", UTCDateTime, nullable=True),
    sa.Column("next_sync_at", UTCDateTime, nullable=True),
    sa.Column("lease_until", UTCDateTime, nullable=True),
    sa.Column("sync_error", sa.Text, nullable=True),
    sa.Index("ix_calendars_workspace_created", "workspace_id", "created_at", "id"),
    sa.Index("ix_calendars_next_sync", "next_sync_at"),
)

# One row per occurrence (``key``: UID and recurrence instant) of a calendar; deleted and
# cancelled occurrences stay, with ``is_deleted``.
calendar_events = sa.Table(
    "calendar_events",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("workspace_id", sa.Uuid, nullable=False),
    sa.Column(
        "calendar_id", sa.Uuid, sa.ForeignKey("calendars.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("platform", sa.String(32), nullable=False),
    sa.Column("key", sa.String(1000), nullable=False),
    sa.Column("ical_uid", sa.String(1000), nullable=False),
    sa.Column("recurrence_id", sa.String(100), nullable=True),
    sa.Column("start_time", UTCDateTime, nullable=False),
    sa.Column("end_time", UTCDateTime, nullable=False),
    sa.Column("all_day", sa.Boolean, nullable=False),
    sa.Column("title", sa.Text, nullable=True),
    sa.Column("meeting_url", sa.Text, nullable=True),
    sa.Column("meeting_platform", sa.String(32), nullable=True),
    sa.Column("recurring", sa.Boolean, nullable=False),
    sa.Column("cancelled", sa.Boolean, nullable=False),
    sa.Column("is_deleted", sa.Boolean, nullable=False),
    sa.Column("organizer", JSONDoc, nullable=True),
    sa.Column("attendees", JSONDoc, nullable=False),
    sa.Column("details", JSONDoc, nullable=False),
    sa.Column("raw", JSONDoc, nullable=False),
    sa.Column("manual_bot", JSONDoc, nullable=True),
    sa.Column("bot_opt_out", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("calendar_id", "key", name="uq_calendar_events_calendar_key"),
    sa.Index("ix_calendar_events_calendar_start", "calendar_id", "start_time"),
    sa.Index("ix_calendar_events_workspace_start", "workspace_id", "start_time", "id"),
    sa.Index("ix_calendar_events_workspace_updated", "workspace_id", "updated_at"),
)

# One bot per deduplication key per workspace (``bot_id`` None while an attach creates it,
# under its ``claim``), and the refs (calendar events, mailbox occurrences) that want it.
event_bots = sa.Table(
    "event_bots",
    metadata,
    sa.Column(
        "workspace_id",
        sa.Uuid,
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("dedup_key", sa.String(1000), primary_key=True),
    sa.Column("bot_id", sa.Uuid, nullable=True),  # no FK: a bot deleted elsewhere is noticed
    sa.Column("claim", sa.Uuid, nullable=True),
    sa.Column("claimed_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_event_bots_bot", "workspace_id", "bot_id"),
)

event_bot_refs = sa.Table(
    "event_bot_refs",
    metadata,
    sa.Column(
        "workspace_id",
        sa.Uuid,
        sa.ForeignKey("workspaces.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("ref", sa.String(1000), primary_key=True),
    sa.Column("dedup_key", sa.String(1000), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("ix_event_bot_refs_key", "workspace_id", "dedup_key"),
)

# -- mailboxes ------------------------------------------------------------------------------------
# Bot mailboxes (SPEC §12): an address (lower-cased, unique across the installation) that
# schedules bots when invited to meetings by one of its ``allowed_senders``.
bot_mailboxes = sa.Table(
    "bot_mailboxes",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("workspace_id", sa.Uuid, sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False),
    sa.Column("address", sa.String(254), nullable=False, unique=True),
    sa.Column("bot_config", JSONDoc, nullable=False),
    sa.Column("allowed_senders", JSONDoc, nullable=False),
    sa.Column("send_replies", sa.Boolean, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_bot_mailboxes_workspace_created", "workspace_id", "created_at", "id"),
)

# What a mailbox knows of each iCalendar series (UID) it was sent: the applied version, its
# calendar text (re-expanded as the window moves), single-occurrence changes, the bots it holds.
mailbox_invites = sa.Table(
    "mailbox_invites",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("mailbox_id", sa.Uuid, sa.ForeignKey("bot_mailboxes.id", ondelete="CASCADE"), nullable=False),
    sa.Column("workspace_id", sa.Uuid, nullable=False),
    sa.Column("uid", sa.String(1000), nullable=False),
    sa.Column("method", sa.String(32), nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("dtstamp", UTCDateTime, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("calendar", sa.Text, nullable=True),
    sa.Column("body_link", sa.Text, nullable=True),
    sa.Column("instances", JSONDoc, nullable=False),
    sa.Column("bots", JSONDoc, nullable=False),
    sa.Column("recurring", sa.Boolean, nullable=False),
    sa.Column("organizer", sa.String(254), nullable=True),
    sa.Column("title", sa.Text, nullable=True),
    sa.Column("sender", sa.String(254), nullable=True),
    sa.Column("message_id", sa.String(1000), nullable=True),
    sa.Column("next_check_at", UTCDateTime, nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("mailbox_id", "uid", name="uq_mailbox_invites_mailbox_uid"),
    sa.Index("ix_mailbox_invites_mailbox_updated", "mailbox_id", "updated_at", "id"),
    sa.Index("ix_mailbox_invites_next_check", "next_check_at"),
)

# -- recordings -----------------------------------------------------------------------------------
# A bot's recording (SPEC §9) with its artifacts as one JSON document (they are always read and
# written together). Expiry is an index seek over ``expires_at``.
recordings = sa.Table(
    "recordings",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column(
        "workspace_id", sa.Uuid, sa.ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("bot_id", sa.Uuid, sa.ForeignKey("bots.id", ondelete="CASCADE"), nullable=False),
    sa.Column("bot_metadata", JSONDoc, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("sub_code", sa.String(64), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("duration", sa.Float, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("completed_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("artifacts", JSONDoc, nullable=False),
    sa.Index("ix_recordings_workspace_created", "workspace_id", "created_at", "id"),
    sa.Index("ix_recordings_bot", "bot_id"),
    sa.Index("ix_recordings_expires", "expires_at"),
)
