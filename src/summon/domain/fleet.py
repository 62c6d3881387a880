"""The fleet: agents (one per host process running bot runtimes), the commands sent to the bots
they host, and the admission rules applied when a bot is booked."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID


@dataclass(frozen=True, slots=True)
class Agent:
    id: UUID
    name: str
    platforms: tuple[str, ...]
    started_at: datetime
    heartbeat_at: datetime
    slots_free: int
    slots_total: int
    stopped_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class BotCommand:
    """An instruction for a bot's runtime (leave, chat, media, recording control)."""

    bot_id: UUID
    agent_id: UUID
    name: str
    args: dict[str, Any]
    created_at: datetime
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class Admission:
    """What must hold, atomically with the booking, for a bot to be accepted.

    - ``adhoc_live_since``: an ad-hoc bot needs a free warm slot on an agent that has heartbeat
      since then (else 507); with ``adhoc_reserve`` the slot is reserved for it in the same
      transaction (a new ad-hoc bot) — without, it is only checked (a bot moved close).
    - ``scheduled_limit``: a scheduled bot's window ``[window_start, window_end]`` may overlap at
      most this many other reserved windows (``SUMMON_MAX_BOTS − SUMMON_POOL_SIZE``; else 507).
    """

    adhoc_live_since: datetime | None = None
    adhoc_reserve: bool = True
    scheduled_limit: int | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    exclude_bot: UUID | None = field(default=None)
