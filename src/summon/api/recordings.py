"""``/api/v1/recording/…``, ``/api/v1/bot/{id}/delete_media/`` and the signed media downloads
``/media/{recording id}/{file}`` (SPEC §9): parse input, call one service function, render.

Downloads need no API key: the URL is the credential (an expiry and an HMAC signature, made by
:func:`summon.services.recordings.media_url`), like an object store's pre-signed URL. A
tampered or expired URL is a 403; Range requests are served (players seek).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import FileResponse

from summon.api.body import SummonRoute
from summon.api.bot_config import Timestamp
from summon.api.cursors import decode_position, encode_position, next_page
from summon.api.plumbing import (
    Caller,
    add_route,
    api_of,
    base_url,
    json_ok,
    parse_id,
    refuse_unknown_query,
)
from summon.api.schemas import BotOut, RecordingOut, RecordingPage, bot_json, responses
from summon.clock import isoformat_z
from summon.domain.recordings import Artifact, Recording, RecordingFilter, RecordingStatus
from summon.services import recordings as service
from summon.services.context import Context

__all__ = ["bot_recordings", "recording_json", "register"]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
LIST_PARAMETERS = frozenset(
    {"bot_id", "created_at_after", "created_at_before", "status_code", "cursor", "page_size"}
)
BOT_ALIASES = (("/api/v1/bot/", "/api/v1/bots/"),)


# -- rendering -------------------------------------------------------------------------------------
def _status(code: str, sub_code: str | None, when: datetime) -> dict[str, Any]:
    return {"code": code, "sub_code": sub_code, "updated_at": isoformat_z(when)}


def _shortcut(ctx: Context, base: str, rec: Recording, a: Artifact) -> dict[str, Any]:
    def url(label: str) -> str | None:
        return service.media_url(ctx, base, rec, label)

    out: dict[str, Any] = {
        "id": str(a.id),
        "created_at": isoformat_z(a.created_at),
        "status": _status(a.status.value, None, a.updated_at),
        "metadata": {},
    }
    if a.kind == "participant_events":
        out["data"] = {
            "participant_events_download_url": url("participant_events"),
            "speaker_timeline_download_url": url("speaker_timeline"),
            "participants_download_url": url("participants"),
        }
    elif a.kind == "transcript":
        out["data"] = {"download_url": url("transcript"), "provider_data_download_url": None}
        out["diarization"] = None
        out["provider"] = a.data.get("provider") or {}
    elif a.kind == "meeting_metadata":
        out["data"] = {
            "title": a.data.get("title"),
            "zoom": a.data.get("zoom"),
            "download_url": url("meeting_metadata"),
        }
    elif a.kind == "audio_separate":
        # A document listing each participant's file, with URLs signed when it is fetched.
        out["data"] = {"download_url": url(service.SEPARATE_INDEX)}
        out["format"] = a.data.get("format")
    else:  # audio_mixed, video_mixed
        out["data"] = {"download_url": url(a.kind)}
        out["format"] = a.data.get("format")
    return out


def recording_json(
    ctx: Context, base: str, rec: Recording, *, with_bot: bool = True
) -> dict[str, Any]:
    """Recall's recording object (``with_bot=False``: the shape embedded in a bot)."""
    shortcuts: dict[str, Any] = {
        "video_mixed": None, "transcript": None, "participant_events": None,
        "meeting_metadata": None, "audio_mixed": None,
    }
    for artifact in rec.artifacts:
        shortcuts[artifact.kind] = _shortcut(ctx, base, rec, artifact)
    out: dict[str, Any] = {
        "id": str(rec.id),
        "created_at": isoformat_z(rec.created_at),
        "started_at": isoformat_z(rec.started_at) if rec.started_at else None,
        "completed_at": isoformat_z(rec.completed_at) if rec.completed_at else None,
        "status": _status(rec.status.value, rec.sub_code, rec.updated_at),
        "media_shortcuts": shortcuts,
        "expires_at": isoformat_z(rec.expires_at) if rec.expires_at else None,
        "metadata": {},
    }
    if with_bot:
        out["realtime_endpoints"] = []
        out["bot"] = {"id": str(rec.bot_id), "metadata": rec.bot_metadata}
        out["desktop_sdk_upload"] = None
    return out


async def bot_recordings(
    request: Request, workspace_id: UUID, bot_ids: list[UUID]
) -> dict[UUID, list[dict[str, Any]]]:
    """The ``recordings`` of each bot, rendered for the bot object (one read for all)."""
    ctx, base = api_of(request).ctx, base_url(request)
    found = await service.recordings_of(ctx, workspace_id, bot_ids)
    return {
        bot_id: [recording_json(ctx, base, r, with_bot=False) for r in recs]
        for bot_id, recs in found.items()
    }


# -- handlers --------------------------------------------------------------------------------------
async def list_recordings(
    request: Request,
    workspace_id: Caller,
    bot_id: Annotated[UUID | None, Query()] = None,
    created_at_after: Annotated[Timestamp | None, Query()] = None,
    created_at_before: Annotated[Timestamp | None, Query()] = None,
    status_code: Annotated[RecordingStatus | None, Query()] = None,
    cursor: Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_-]*$")] = None,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
) -> Response:
    refuse_unknown_query(request, LIST_PARAMETERS)
    ctx = api_of(request).ctx
    flt = RecordingFilter(
        bot_id=bot_id,
        created_at_after=created_at_after,
        created_at_before=created_at_before,
        status=status_code.value if status_code else None,
    )
    found = await service.list_recordings(
        ctx, workspace_id, flt, decode_position(cursor), page_size + 1
    )
    page, next_url = next_page(
        request, found, page_size, lambda r: encode_position(r.created_at, r.id)
    )
    base = base_url(request)
    return json_ok(
        {"next": next_url, "previous": None,
         "results": [recording_json(ctx, base, r) for r in page]}
    )


async def retrieve_recording(request: Request, id: str, workspace_id: Caller) -> Response:
    ctx = api_of(request).ctx
    recording = await service.get_recording(ctx, workspace_id, parse_id(id))
    return json_ok(recording_json(ctx, base_url(request), recording))


async def delete_recording(request: Request, id: str, workspace_id: Caller) -> Response:
    await service.delete_recording(api_of(request).ctx, workspace_id, parse_id(id))
    return Response(status_code=204)


async def delete_media(request: Request, id: str, workspace_id: Caller) -> Response:
    bot = await service.delete_media(api_of(request).ctx, workspace_id, parse_id(id))
    recordings = await bot_recordings(request, workspace_id, [bot.id])
    return json_ok(bot_json(bot, recordings=recordings.get(bot.id, [])))


async def download(
    request: Request,
    recording_id: str,
    name: str,
    expires: Annotated[str | None, Query()] = None,
    signature: Annotated[str | None, Query()] = None,
) -> Response:
    # The URL is the credential: a missing or malformed part is a refused URL (403), checked
    # by the service, never a validation error.
    if name == f"{service.SEPARATE_INDEX}.json":
        parts = await service.audio_separate_parts(
            api_of(request).ctx, base_url(request), parse_id(recording_id), expires or "",
            signature or "")
        return json_ok(parts)
    media = await service.open_media(
        api_of(request).ctx, parse_id(recording_id), name, expires or "", signature or ""
    )
    return FileResponse(
        media.path,
        media_type=media.content_type,
        filename=media.filename,
        content_disposition_type="inline",
        headers={"Cache-Control": "private, max-age=300"},
    )


def register(r: APIRouter) -> None:
    """Add the recording routes to ``r``."""
    add = add_route
    add(r, "/api/v1/recording/", list_recordings, ["GET"], response_model=RecordingPage,
        responses=responses(), summary="List Recordings", operation_id="recording_list")
    add(r, "/api/v1/recording/{id}/", retrieve_recording, ["GET"], response_model=RecordingOut,
        responses=responses(404), summary="Retrieve Recording", operation_id="recording_retrieve")
    add(r, "/api/v1/recording/{id}/", delete_recording, ["DELETE"], status_code=204,
        responses=responses(404), summary="Delete Recording", operation_id="recording_destroy",
        response_class=Response)
    add(r, "/api/v1/bot/{id}/delete_media/", delete_media, ["POST"], aliases=BOT_ALIASES,
        response_model=BotOut, responses=responses(404), summary="Delete Bot Media",
        operation_id="bot_delete_media_create")
    r.add_api_route(
        "/media/{recording_id}/{name}", download, methods=["GET"],
        summary="Download Recording Media (signed URL, no API key)",
        operation_id="media_download",
        responses={200: {"description": "The file (Range requests are served)"},
                   403: {"description": "The URL was altered or has expired"},
                   404: {"description": "The file no longer exists"}},
        response_class=Response,
        route_class_override=SummonRoute,
    )
