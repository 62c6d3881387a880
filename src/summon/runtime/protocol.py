"""The pipe protocol between a fleet agent and its runtime processes: one JSON object per line.

agent → runtime::

    {"op": "stage",    "bot": {"bot_id", "meeting_url", "bot_name", "config", "join_at",
                                "media_dir", "whisper_model"}}
    {"op": "command",  "bot_id", "name", "args"}
    {"op": "shutdown"}                      # leave every call, then exit

runtime → agent::

    {"op": "hello",     "pid"}
    {"op": "heartbeat", "at"}               # every HEARTBEAT_S; silence means a hung runtime
    {"op": "staged",    "bot_id", "at"}     # the bot's driver is ready; it will join at join_at
    {"op": "status",    "bot_id", "code", "sub_code", "message", "at"}
    {"op": "event",     "bot_id", "kind", "data", "at"}
    {"op": "command_failed", "bot_id", "name", "code", "detail"}
    {"op": "recording", "bot_id", "recording": {"status", "started_at", "completed_at",
                        "duration", "files", "audio_format", "transcript_provider",
                        "meeting_metadata", "error", "reported_at"}}   # once, before recording_done
    {"op": "finished",  "bot_id"}           # the slot is free again

Times (``at``, ``join_at``) are UTC epoch seconds. A runtime whose stdin closes (its agent died)
leaves every call and exits: no bot outlives the agent that owns it.
"""

from __future__ import annotations

from typing import Any

import orjson

HEARTBEAT_S = 1.0


def encode(message: dict[str, Any]) -> bytes:
    return orjson.dumps(message) + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    value = orjson.loads(line)
    if not isinstance(value, dict) or "op" not in value:
        raise ValueError(f"not a protocol message: {line[:200]!r}")
    return value
