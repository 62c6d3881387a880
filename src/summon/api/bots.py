"""``/api/v1/bot/…``: parse input, call one service function, render the result."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Header, Query, Request, Response

from summon.api.bot_config import (
    METADATA_KEY_MAX,
    METADATA_VALUE_MAX,
    BotCreate,
    ChatMessage,
    OutputAudio,
    OutputVideo,
)
from summon.api.bot_config import BotUpdate, MeetingUrlParse, Timestamp, parse_timestamp
from summon.api.errors import RequestInvalid
from summon.api.recordings import bot_recordings
from summon.api.plumbing import Caller, Creator, add_route, api_of, base_url, json_ok, parse_id
from summon.api.schemas import (
    BotDeleted,
    BotOut,
    BotPage,
    MeetingUrlParsed,
    bot_json,
    calendar_meeting_json,
    responses,
)
from summon.domain.bots import BotChanges, BotFilter, NewBot
from summon.domain.lifecycle import Status
from summon.domain.meeting_urls import PLATFORMS, InvalidMeetingUrl, parse_meeting_url
from summon.services import bots as service
from summon.services import calendars as calendar_service

BOT_ALIASES = (("/api/v1/bot/", "/api/v1/bots/"),)
LIST_PARAMETERS = frozenset({"page", "page_size", "join_at_after", "join_at_before", "meeting_url", "platform", "status"})
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_PAGE = 1_000_000
MAX_QUERY_VALUE = 2048

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=255, description="Replays the first response for 24 h."),
]


async def create_bot(
    request: Request, workspace_id: Creator, body: BotCreate, idempotency_key: IdempotencyKey = None
) -> Response:
    api = api_of(request)

    async def run() -> Response:
        new = NewBot(
            meeting_url=body.meeting_url,
            bot_name=body.bot_name,
            join_at=body.join_at,
            config=body.stored_config(),
            metadata=body.metadata,
        )
        bot = await service.create_bot(api.ctx, workspace_id, new)
        return json_ok(bot_json(bot), 201)

    return await api.idempotent(request, workspace_id, run)


async def list_bots(
    request: Request,
    workspace_id: Caller,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    join_at_after: Annotated[Timestamp | None, Query()] = None,
    join_at_before: Annotated[Timestamp | None, Query()] = None,
    meeting_url: Annotated[str | None, Query(max_length=MAX_QUERY_VALUE)] = None,
    platform: Annotated[list[str] | None, Query(json_schema_extra={"items": {"enum": list(PLATFORMS)}})] = None,
    status: Annotated[list[Status] | None, Query()] = None,
) -> Response:
    api = api_of(request)
    flt = bot_filter(request)
    total, bots = await service.list_bots(api.ctx, workspace_id, flt, (page - 1) * page_size, page_size)
    if page > 1 and (page - 1) * page_size >= total:
        return json_ok({"detail": "Invalid page."}, 404)
    recordings = await bot_recordings(request, workspace_id, [b.id for b in bots])
    base = base_url(request) + request.url.path

    def page_url(number: int) -> str:
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
        if number > 1:
            params.append(("page", str(number)))
        return base + ("?" + urlencode(params) if params else "")

    return json_ok(
        {
            "count": total,
            "next": page_url(page + 1) if page * page_size < total else None,
            "previous": page_url(page - 1) if page > 1 else None,
            "results": [bot_json(b, recordings=recordings.get(b.id, [])) for b in bots],
        }
    )


def bot_filter(request: Request) -> BotFilter:
    """The list filters, read from the raw query so every spelling works: repeated ``status=a&
    status=b``, ``status[]=a``, ``metadata__KEY=V`` and ``metadata[KEY]=V``."""
    errors: dict[str, list[str]] = {}
    platforms: list[str] = []
    states: list[str] = []
    metadata: dict[str, str] = {}
    after = before = None
    meeting_key = None
    for key, value in request.query_params.multi_items():
        if "\x00" in key or "\x00" in value or len(value) > MAX_QUERY_VALUE or len(key) > 100:
            errors.setdefault(key.replace("\x00", "") or "query", []).append("Invalid query parameter.")
            continue
        name = key[:-2] if key.endswith("[]") else key
        if name == "platform":
            if value not in PLATFORMS:
                errors.setdefault("platform", []).append(f'"{value}" is not a valid choice.')
            platforms.append(value)
        elif name == "status":
            if value not in Status.__members__.values():
                errors.setdefault("status", []).append(f'"{value}" is not a valid choice.')
            states.append(value)
        elif name.startswith("metadata__") or (name.startswith("metadata[") and name.endswith("]")):
            meta_key = name[len("metadata__"):] if name.startswith("metadata__") else name[len("metadata["):-1]
            if not 0 < len(meta_key) <= METADATA_KEY_MAX or len(value) > METADATA_VALUE_MAX:
                errors.setdefault(key, []).append(
                    f"Metadata keys are 1–{METADATA_KEY_MAX} characters and values at most {METADATA_VALUE_MAX}."
                )
                continue
            metadata[meta_key] = value
        elif name in ("join_at_after", "join_at_before"):
            try:
                when: datetime = parse_timestamp(value)
            except ValueError as exc:
                errors.setdefault(name, []).append(str(exc))
                continue
            after, before = (when, before) if name == "join_at_after" else (after, when)
        elif name == "meeting_url":
            try:
                meeting_key = parse_meeting_url(value).key
            except InvalidMeetingUrl:
                meeting_key = "invalid:"  # matches nothing: no stored bot has an unparsable link
        elif name not in LIST_PARAMETERS:
            # A typo in a filter must not silently return every bot.
            errors.setdefault(key or "query", []).append("Unknown query parameter.")
    if errors:
        raise RequestInvalid(errors)
    return BotFilter(
        join_at_after=after,
        join_at_before=before,
        meeting_key=meeting_key,
        platforms=platforms,
        states=states,
        metadata=metadata,
    )


async def retrieve_bot(request: Request, id: str, workspace_id: Caller) -> Response:
    api = api_of(request)
    bot = await service.get_bot(api.ctx, workspace_id, parse_id(id))
    # The calendar events the bot serves: filled here (one indexed read), not in lists.
    meetings = [calendar_meeting_json(event, calendar) for event, calendar
                in await calendar_service.calendar_meetings(api.ctx, workspace_id, bot.id)]
    recordings = await bot_recordings(request, workspace_id, [bot.id])
    return json_ok(bot_json(bot, meetings, recordings.get(bot.id, [])))


async def update_bot(
    request: Request, id: str, workspace_id: Caller, body: BotUpdate, idempotency_key: IdempotencyKey = None
) -> Response:
    api = api_of(request)
    bot_id = parse_id(id)

    async def run() -> Response:
        sent = body.changed_fields()
        changes = BotChanges(
            sent=frozenset(sent),
            meeting_url=body.meeting_url,
            bot_name=body.bot_name,
            join_at=body.join_at,
            config=body.stored_config_patch(),
            metadata=body.metadata if "metadata" in sent else None,
        )
        bot = await service.update_bot(api.ctx, workspace_id, bot_id, changes)
        return json_ok(bot_json(bot))

    return await api.idempotent(request, workspace_id, run)


async def delete_bot(request: Request, id: str, workspace_id: Caller) -> Response:
    api = api_of(request)
    bot = await service.delete_bot(api.ctx, workspace_id, parse_id(id))
    return json_ok({"id": str(bot.id), "deleted": True})


async def leave_call(
    request: Request, id: str, workspace_id: Caller, idempotency_key: IdempotencyKey = None
) -> Response:
    api = api_of(request)
    bot_id = parse_id(id)

    async def run() -> Response:
        bot = await service.leave_call(api.ctx, workspace_id, bot_id)
        return json_ok(bot_json(bot))

    return await api.idempotent(request, workspace_id, run)


async def send_chat_message(
    request: Request, id: str, workspace_id: Caller, body: ChatMessage, idempotency_key: IdempotencyKey = None
) -> Response:
    return await _command(request, workspace_id, id, "send_chat_message", body.model_dump(mode="json"))


async def output_audio(request: Request, id: str, workspace_id: Caller, body: OutputAudio) -> Response:
    return await _command(request, workspace_id, id, "output_audio", body.model_dump(mode="json"))


async def stop_output_audio(request: Request, id: str, workspace_id: Caller) -> Response:
    return await _command(request, workspace_id, id, "stop_output_audio", {})


async def output_video(request: Request, id: str, workspace_id: Caller, body: OutputVideo) -> Response:
    return await _command(request, workspace_id, id, "output_video", body.model_dump(mode="json"))


async def stop_output_video(request: Request, id: str, workspace_id: Caller) -> Response:
    return await _command(request, workspace_id, id, "stop_output_video", {})


def _recording_command(name: str) -> Any:
    async def handler(request: Request, id: str, workspace_id: Caller) -> Response:
        return await _command(request, workspace_id, id, name, {})

    handler.__name__ = name
    return handler


async def _command(request: Request, workspace_id: Any, id: str, name: str, args: dict[str, Any]) -> Response:
    api = api_of(request)
    bot_id = parse_id(id)

    async def run() -> Response:
        bot = await service.command_bot(api.ctx, workspace_id, bot_id, name, args)
        return json_ok(bot_json(bot))

    return await api.idempotent(request, workspace_id, run)


async def parse_url(request: Request, _: Caller, body: MeetingUrlParse) -> Response:
    api = api_of(request)
    meeting, supported = await service.describe_meeting_url(api.ctx, body.url)
    return json_ok({"meeting_url": meeting.to_dict(), "supported": supported})


def register(r: APIRouter) -> None:
    """Add the bot routes to ``r`` (directly, so ``app.routes`` lists every one of them)."""
    add = add_route
    add(r, "/api/v1/bot/", create_bot, ["POST"], aliases=BOT_ALIASES, status_code=201,
        response_model=BotOut, responses=responses(409, 422, 507), summary="Create Bot", operation_id="bot_create")
    add(r, "/api/v1/bot/", list_bots, ["GET"], aliases=BOT_ALIASES, response_model=BotPage,
        responses=responses(404), summary="List Bots", operation_id="bot_list",
        openapi_extra={"parameters": [METADATA_PARAM]})
    add(r, "/api/v1/bot/{id}/", retrieve_bot, ["GET"], aliases=BOT_ALIASES, response_model=BotOut,
        responses=responses(404), summary="Retrieve Bot", operation_id="bot_retrieve")
    add(r, "/api/v1/bot/{id}/", update_bot, ["PATCH"], aliases=BOT_ALIASES, response_model=BotOut,
        responses=responses(404, 409, 422), summary="Update Scheduled Bot", operation_id="bot_partial_update")
    add(r, "/api/v1/bot/{id}/", delete_bot, ["DELETE"], aliases=BOT_ALIASES, response_model=BotDeleted,
        responses=responses(404, 405, 409), summary="Delete Scheduled Bot", operation_id="bot_destroy")
    add(r, "/api/v1/bot/{id}/leave_call/", leave_call, ["POST"], aliases=BOT_ALIASES, response_model=BotOut,
        responses=responses(404, 409, 422), summary="Remove Bot From Call", operation_id="bot_leave_call_create")
    command_responses = responses(404, 409, 422)
    add(r, "/api/v1/bot/{id}/send_chat_message/", send_chat_message, ["POST"], aliases=BOT_ALIASES,
        response_model=BotOut, responses=command_responses, summary="Send Chat Message",
        operation_id="bot_send_chat_message_create")
    add(r, "/api/v1/bot/{id}/output_audio/", output_audio, ["POST"], aliases=BOT_ALIASES, response_model=BotOut,
        responses=command_responses, summary="Output Audio", operation_id="bot_output_audio_create")
    add(r, "/api/v1/bot/{id}/output_audio/", stop_output_audio, ["DELETE"], aliases=BOT_ALIASES,
        response_model=BotOut, responses=command_responses, summary="Stop Output Audio",
        operation_id="bot_output_audio_destroy")
    add(r, "/api/v1/bot/{id}/output_video/", output_video, ["POST"], aliases=BOT_ALIASES, response_model=BotOut,
        responses=command_responses, summary="Output Video", operation_id="bot_output_video_create")
    add(r, "/api/v1/bot/{id}/output_video/", stop_output_video, ["DELETE"], aliases=BOT_ALIASES,
        response_model=BotOut, responses=command_responses, summary="Stop Output Video",
        operation_id="bot_output_video_destroy")
    for name, summary in (("start_recording", "Start Recording"), ("stop_recording", "Stop Recording"),
                          ("pause_recording", "Pause Recording"), ("resume_recording", "Resume Recording")):
        add(r, f"/api/v1/bot/{{id}}/{name}/", _recording_command(name), ["POST"], aliases=BOT_ALIASES,
            response_model=BotOut, responses=command_responses, summary=summary, operation_id=f"bot_{name}_create")
    add(r, "/api/v1/meeting_url/parse/", parse_url, ["POST"], response_model=MeetingUrlParsed,
        responses=responses(), summary="Parse Meeting URL", operation_id="meeting_url_parse")


METADATA_PARAM: dict[str, Any] = {
    "name": "metadata",
    "in": "query",
    "required": False,
    "style": "deepObject",
    "explode": True,
    "description": "metadata[KEY]=VALUE (or metadata__KEY=VALUE): bots whose metadata has KEY = VALUE; all must match.",
    "schema": {
        "type": "object",
        "propertyNames": {"minLength": 1, "maxLength": METADATA_KEY_MAX},
        "additionalProperties": {"type": "string", "maxLength": METADATA_VALUE_MAX},
    },
}
