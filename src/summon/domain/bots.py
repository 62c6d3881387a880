"""The bot record and the pure rules about creating, changing and finding bots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from summon.domain.lifecycle import Status, StatusChange

#: A ``join_at`` at most this far in the past is taken as "now": clients compute ``join_at``
#: from their own clock, and a request takes time to arrive.
JOIN_AT_PAST_TOLERANCE = timedelta(seconds=2)


@dataclass(slots=True)
class Bot:
    """A bot as the domain sees it. ``state`` always equals the last status change's code.

    ``version`` is the fencing token: every change to the row must name the version it read,
    and moves it on by one; a stale actor's change is refused.
    """

    id: UUID
    workspace_id: UUID
    meeting_url: dict[str, Any]
    meeting_url_raw: str
    meeting_key: str
    platform: str
    bot_name: str
    join_at: datetime | None
    scheduled: bool
    state: Status
    version: int
    config: dict[str, Any]
    metadata: dict[str, str | None]
    created_at: datetime
    updated_at: datetime
    status_changes: list[StatusChange] = field(default_factory=list)
    #: When the scheduler stages it (scheduled bots); None once staged or for ad-hoc bots.
    stage_at: datetime | None = None
    #: End of its reserved window (capacity booking); None for ad-hoc bots.
    window_end: datetime | None = None
    #: The fleet agent hosting it, or about to.
    agent_id: UUID | None = None
    #: A claim on it by ``agent_id`` lasts until then (staging in progress / ad-hoc taken).
    lease_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewBot:
    """What a client asks for when creating a bot (already validated for shape)."""

    meeting_url: str
    bot_name: str
    join_at: datetime | None
    config: Mapping[str, Any]
    metadata: Mapping[str, str | None]


@dataclass(frozen=True, slots=True)
class BotChanges:
    """A partial update. Only the attributes in ``sent`` were given by the client."""

    sent: frozenset[str]
    meeting_url: str | None = None
    bot_name: str | None = None
    join_at: datetime | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, str | None] | None = None


@dataclass(frozen=True, slots=True)
class BotFilter:
    """Filters of ``GET /api/v1/bot/``; every given one must match."""

    join_at_after: datetime | None = None
    join_at_before: datetime | None = None
    meeting_key: str | None = None
    platforms: Sequence[str] = ()
    states: Sequence[str] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)


def is_scheduled(join_at: datetime | None, now: datetime, threshold_s: float) -> bool:
    """A bot is *scheduled* when its ``join_at`` is at least the threshold ahead; else ad-hoc."""
    return join_at is not None and join_at - now >= timedelta(seconds=threshold_s)


def join_at_in_past(join_at: datetime | None, now: datetime) -> bool:
    return join_at is not None and join_at < now - JOIN_AT_PAST_TOLERANCE


def expected_duration(config: Mapping[str, Any], default_s: float = 3600.0) -> float:
    """How long a bot is expected to stay: the in-call recording limit, else one hour."""
    leave = config.get("automatic_leave") or {}
    limit = leave.get("in_call_recording_timeout") if isinstance(leave, Mapping) else None
    return float(limit) if isinstance(limit, int | float) and limit > 0 else default_s
