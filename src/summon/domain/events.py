"""Outbox messages: what a state change tells the outside world (SPEC §10.2).

Built here, from domain data, and written by the store in the same transaction as the change
that caused them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from summon.clock import isoformat_z
from summon.domain.bots import Bot
from summon.domain.lifecycle import StatusChange


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One event to deliver. ``id`` is the stable ``webhook-id`` of every delivery attempt."""

    workspace_id: UUID
    event_type: str
    payload: dict[str, Any]
    created_at: datetime
    bot_id: UUID | None = None
    id: UUID = field(default_factory=uuid4)


def bot_status_event(bot: Bot, change: StatusChange) -> OutboxMessage:
    """``bot.<code>`` in Recall's new-style payload."""
    return OutboxMessage(
        workspace_id=bot.workspace_id,
        event_type=f"bot.{change.code.value}",
        payload={
            "event": f"bot.{change.code.value}",
            "data": {
                "data": {
                    "code": change.code.value,
                    "sub_code": change.sub_code,
                    "updated_at": isoformat_z(change.created_at),
                },
                "bot": {"id": str(bot.id), "metadata": dict(bot.metadata)},
            },
        },
        created_at=change.created_at,
        bot_id=bot.id,
    )


def bot_deleted_event(bot: Bot, when: datetime) -> OutboxMessage:
    """``bot.deleted``: the bot is gone for good."""
    return OutboxMessage(
        workspace_id=bot.workspace_id,
        event_type="bot.deleted",
        payload={
            "event": "bot.deleted",
            "data": {
                "data": {"code": "deleted", "sub_code": None, "updated_at": isoformat_z(when)},
                "bot": {"id": str(bot.id), "metadata": dict(bot.metadata)},
            },
        },
        created_at=when,
        bot_id=bot.id,
    )
