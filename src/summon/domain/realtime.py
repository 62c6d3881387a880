"""Real-time endpoints of a bot (SPEC §10.4): what goes where, in which shape.

A bot's ``recording_config.realtime_endpoints`` lists where its meeting activity streams while it
is in the call: participant events, transcript words, raw audio. Unlike workspace webhooks these
are not durable — an event is worth something only while the meeting goes on — so they are
sent from memory, retried every second up to 60 times, and an endpoint that never answers is
marked failed (a ``realtime_endpoint.failed`` webhook, durable like every webhook) and left
alone for the rest of the bot's life. The bot itself never waits for any of it.

Recall gives every real-time endpoint, recording, transcript and participant-events object an
id. Ours are derived from the bot's id (UUIDv5), so the same bot always names them the same way
— in payloads, in status webhooks, and later in the bot's ``recordings``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from summon.clock import isoformat_z
from summon.domain.bots import Bot
from summon.domain.events import OutboxMessage

#: Kinds of real-time endpoint that Summon streams to (``rtmp`` and ``desktop_sdk_callback`` are
#: accepted by the API for compatibility but have nothing to stream here).
STREAMED_TYPES = ("webhook", "websocket")

#: Which object a real-time event belongs to, as Recall names it in the payload.
_OWNER = {"participant_events": "participant_events", "transcript": "transcript",
          "audio_mixed_raw": "audio_mixed_raw", "video_separate_png": "video_separate"}


@dataclass(frozen=True, slots=True)
class RealtimeTarget:
    """One real-time endpoint of one bot."""

    id: UUID
    index: int
    type: str  # webhook | websocket
    url: str
    events: frozenset[str]
    metadata: dict[str, Any]

    def wants(self, kind: str) -> bool:
        return kind in self.events


def object_id(bot_id: UUID, name: str) -> UUID:
    """The stable id of one of a bot's objects: ``recording``, ``transcript``,
    ``participant_events``, ``realtime_endpoint:<index>``…"""
    return uuid5(bot_id, name)


def targets_of(bot: Bot) -> list[RealtimeTarget]:
    """The bot's real-time endpoints that Summon streams to, in the order configured."""
    recording = bot.config.get("recording_config") or {}
    targets = []
    for index, endpoint in enumerate(recording.get("realtime_endpoints") or []):
        if endpoint.get("type") not in STREAMED_TYPES or not endpoint.get("url"):
            continue
        targets.append(RealtimeTarget(
            id=object_id(bot.id, f"realtime_endpoint:{index}"),
            index=index,
            type=endpoint["type"],
            url=str(endpoint["url"]),
            events=frozenset(endpoint.get("events") or ()),
            metadata=dict(endpoint.get("metadata") or {}),
        ))
    return targets


def realtime_payload(bot: Bot, target: RealtimeTarget, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """Recall's real-time event shape: the event's own ``data`` plus who it belongs to."""
    owner = _OWNER.get(kind.split(".", 1)[0], kind.split(".", 1)[0])
    return {
        "event": kind,
        "data": {
            "data": data,
            "realtime_endpoint": {"id": str(target.id), "metadata": target.metadata},
            owner: {"id": str(object_id(bot.id, owner)), "metadata": {}},
            "recording": {"id": str(object_id(bot.id, "recording")), "metadata": {}},
            "bot": {"id": str(bot.id), "metadata": dict(bot.metadata)},
        },
    }


def endpoint_status_event(
    bot: Bot, target: RealtimeTarget, code: str, when: datetime, error: str | None = None
) -> OutboxMessage:
    """``realtime_endpoint.running|done|failed``, a workspace webhook (durable, via the outbox)."""
    data: dict[str, Any] = {"code": code, "sub_code": None, "updated_at": isoformat_z(when)}
    if code == "failed":
        data["sub_code"] = "endpoint_unreachable"
        data["error"] = {"code": "ENDPOINT_UNREACHABLE", "message": error or "the endpoint did not accept events"}
    return OutboxMessage(
        workspace_id=bot.workspace_id,
        event_type=f"realtime_endpoint.{code}",
        payload={
            "event": f"realtime_endpoint.{code}",
            "data": {
                "data": data,
                "realtime_endpoint": {"id": str(target.id), "metadata": target.metadata},
                "recording": {"id": str(object_id(bot.id, "recording")), "metadata": {}},
                "bot": {"id": str(bot.id), "metadata": dict(bot.metadata)},
            },
        },
        created_at=when,
        bot_id=bot.id,
    )
