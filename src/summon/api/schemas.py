"""Response shapes: the JSON Summon answers with, and the Pydantic models that document it in
``/openapi.json``. Separate from the domain records and from the tables on purpose."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from summon.clock import isoformat_z
from summon.domain.bots import Bot
from summon.domain.calendars import Calendar, CalendarEvent
from summon.domain.lifecycle import Status


def bot_json(
    bot: Bot,
    calendar_meetings: list[dict[str, Any]] | None = None,
    recordings: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The bot object (Recall's shape plus ``state``). ``calendar_meetings``: the calendar
    events it serves (:func:`calendar_meeting_json`), and ``recordings`` its recordings
    (:func:`summon.api.recordings.bot_recordings`), when the caller looked them up."""
    return {
        "id": str(bot.id),
        "meeting_url": bot.meeting_url,
        "bot_name": bot.bot_name,
        "join_at": isoformat_z(bot.join_at) if bot.join_at else None,
        "state": bot.state.value,
        "status_changes": [
            {
                "code": c.code.value,
                "sub_code": c.sub_code,
                "message": c.message,
                "created_at": isoformat_z(c.created_at),
            }
            for c in bot.status_changes
        ],
        "recordings": recordings or [],
        **public_config(bot.config),
        "calendar_meetings": calendar_meetings or [],
        "slack_team": None,
        "metadata": bot.metadata,
        "created_at": isoformat_z(bot.created_at),
        "updated_at": isoformat_z(bot.updated_at),
    }


def calendar_meeting_json(event: CalendarEvent, calendar: Calendar) -> dict[str, Any]:
    """Recall's ``BotCalendarMeeting``: the event, and its calendar as the calendar user."""
    return {
        "id": str(event.id),
        "start_time": isoformat_z(event.start_time),
        "end_time": isoformat_z(event.end_time),
        "calendar_user": {
            "id": str(calendar.id),
            "external_id": calendar.owner_email or str(calendar.id),
        },
    }


#: Config fields whose media (``b64_data``) is write-only: kept for the runtime, never echoed.
_MEDIA_FIELDS = ("automatic_audio_output", "automatic_video_output")


def public_config(config: dict[str, Any]) -> dict[str, Any]:
    if not any(config.get(name) for name in _MEDIA_FIELDS):
        return config
    return {**config, **{name: _without_media(config.get(name)) for name in _MEDIA_FIELDS}}


def _without_media(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_media(v) for k, v in value.items() if k != "b64_data"}
    return value


class StatusChangeOut(BaseModel):
    code: Status
    sub_code: str | None
    message: str | None
    created_at: str = Field(json_schema_extra={"format": "date-time"})


class BotOut(BaseModel):
    """A bot. Config fields are returned as stored, with Recall's defaults filled in."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(json_schema_extra={"format": "uuid"})
    meeting_url: dict[str, Any] = Field(description="The parsed meeting URL (Recall's MeetingUrl object).")
    bot_name: str
    join_at: str | None = Field(json_schema_extra={"format": "date-time"})
    state: Status = Field(description="The current status code (the last status change's code).")
    status_changes: list[StatusChangeOut]
    recordings: list[dict[str, Any]]
    calendar_meetings: list[dict[str, Any]]
    slack_team: None
    metadata: dict[str, str | None]
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    updated_at: str = Field(json_schema_extra={"format": "date-time"})


class BotPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[BotOut]


# -- recordings --
class RecordingOut(BaseModel):
    """A recording (Recall's shape): ``media_shortcuts`` holds each artifact with its signed,
    expiring ``download_url``s (no API key needed to download)."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(json_schema_extra={"format": "uuid"})
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    started_at: str | None = Field(json_schema_extra={"format": "date-time"})
    completed_at: str | None = Field(json_schema_extra={"format": "date-time"})
    status: dict[str, Any] = Field(description="{code, sub_code, updated_at}")
    media_shortcuts: dict[str, dict[str, Any] | None]
    expires_at: str | None = Field(json_schema_extra={"format": "date-time"})
    metadata: dict[str, str | None]
    bot: dict[str, Any] | None = None


class RecordingPage(BaseModel):
    next: str | None
    previous: str | None
    results: list[RecordingOut]


class BotDeleted(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    deleted: Literal[True]


class MeetingUrlParsed(BaseModel):
    meeting_url: dict[str, Any]
    supported: bool = Field(description="Whether a runtime of this fleet has a driver for the platform.")


class ErrorDetail(BaseModel):
    detail: str


class RuleError(BaseModel):
    code: str
    detail: str


FIELD_ERRORS: dict[str, Any] = {
    "description": 'Validation failed: {"<field>": ["message", …]} (or {"detail": …} for malformed JSON).',
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "additionalProperties": {"type": "array", "items": {"type": "string"}},
                "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
            }
        }
    },
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error responses a route may give, for the OpenAPI document."""
    table: dict[int, dict[str, Any]] = {
        400: FIELD_ERRORS,
        401: {"model": ErrorDetail, "description": "Missing or wrong API key."},
        404: {"model": ErrorDetail, "description": "No such object in this workspace."},
        405: {"model": RuleError, "description": "Not allowed in the bot's current state."},
        409: {"model": RuleError, "description": "Conflicting concurrent request (e.g. same Idempotency-Key)."},
        413: {"model": ErrorDetail, "description": "Body larger than 1 MiB."},
        422: {"model": RuleError, "description": "Idempotency-Key reused with another body."},
        429: {"model": RuleError, "description": "Rate limited; see Retry-After."},
        507: {"model": RuleError, "description": "No capacity; see Retry-After."},
    }
    base = (400, 401, 413, 429)
    return {code: table[code] for code in sorted({*base, *codes})}
