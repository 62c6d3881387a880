"""``/api/v2/calendars/…`` and ``/api/v2/calendar-events/…`` (Recall's Calendar V2, SPEC §11):
parse input, call one service function, render the result.

Credentials (OAuth client and refresh token, feed URL, CalDAV user and password) are
write-only: accepted on create and update, kept sealed, never returned. Lists use opaque
cursors over a stable order (calendars by creation, events by start).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from summon.api.bot_config import BotCreate, Timestamp
from summon.api.errors import RequestInvalid, field_errors
from summon.api.cursors import decode_position, encode_position, next_page
from summon.api.plumbing import (
    Caller,
    Creator,
    add_route,
    api_of,
    json_ok,
    parse_id,
    refuse_unknown_query,
)
from summon.api.schemas import public_config, responses
from summon.clock import isoformat_z
from summon.domain.calendars import (
    CREDENTIAL_FIELDS,
    PLATFORMS,
    STATUSES,
    AutoRecord,
    AutoRecordRules,
    Calendar,
    CalendarEvent,
    CalendarEventFilter,
    CalendarFilter,
    EventBotLink,
    parse_link,
)
from summon.domain.errors import FieldInvalid
from summon.services import calendars as service
from summon.services.bots import MEETING_URL_INVALID

NoNul = r"^[^\x00]*$"
Secret = Annotated[str, Field(min_length=1, max_length=2000, pattern=NoNul)]
Platform = Literal[PLATFORMS]  # type: ignore[valid-type]
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
#: A placeholder link for validating a ``bot_config`` whose link comes from the event.
_FROM_EVENT = "https://zoom.us/j/0000000000"


def normalise_bot_config(data: Mapping[str, Any], field: str = "bot_config") -> dict[str, Any]:
    """A client's Create Bot body for an event (``meeting_url`` optional, ``join_at`` ignored:
    both come from the event) → the stored form ``summon.services.event_bots.attach_bot``
    takes: validated, defaults filled, ``metadata`` kept. Errors name ``<field>.<path>``."""
    payload = {k: v for k, v in data.items() if k != "join_at"}
    meeting_url = payload.pop("meeting_url", None)
    try:
        body = BotCreate.model_validate({**payload, "meeting_url": _FROM_EVENT})
    except ValidationError as exc:
        errors, _ = field_errors(exc.errors())
        raise RequestInvalid({f"{field}.{k}": v for k, v in errors.items()}) from None
    out = body.stored_config()
    out["metadata"] = dict(body.metadata)
    if meeting_url is not None:
        if not isinstance(meeting_url, str) or parse_link(meeting_url) is None:
            raise FieldInvalid(f"{field}.meeting_url", MEETING_URL_INVALID)
        out["meeting_url"] = meeting_url
    return out


# -- request and response shapes ------------------------------------------------------------------
class RulesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external: StrictBool | None = Field(
        None, description="Meetings with someone outside the owner's domain."
    )
    internal: StrictBool | None = Field(None, description="Meetings with only the owner's domain.")
    only_if_organizer: StrictBool | None = Field(
        None, description="Only meetings the owner organises."
    )
    only_accepted: StrictBool | None = Field(None, description="Only meetings the owner accepted.")
    recurring: StrictBool | None = Field(None, description="Occurrences of a series.")
    non_recurring: StrictBool | None = Field(None, description="One-off meetings.")


class AutoRecordIn(BaseModel):
    """Schedule bots for this calendar's meetings without client code (Summon's addition)."""

    model_config = ConfigDict(extra="forbid")

    bot_config: dict[str, Any] = Field(
        default_factory=dict,
        description="A Create Bot body; meeting_url and join_at come from each event.",
    )
    rules: RulesIn | None = None

    def domain(self) -> AutoRecord:
        rules = AutoRecordRules.from_dict(self.rules.model_dump() if self.rules else None)
        return AutoRecord(normalise_bot_config(self.bot_config, "auto_record.bot_config"), rules)


class _CalendarIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    oauth_client_id: Secret | None = None
    oauth_client_secret: Secret | None = None
    oauth_refresh_token: Secret | None = None
    oauth_email: str | None = Field(None, max_length=2000, pattern=NoNul)
    webhook_url: str | None = Field(
        None,
        max_length=2000,
        pattern=NoNul,
        deprecated=True,
        description="Accepted for compatibility and ignored.",
    )
    url: Secret | None = Field(None, description="ics_feed and caldav: the feed or collection URL.")
    username: Secret | None = Field(None, description="caldav: the user name.")
    password: Secret | None = Field(None, description="caldav: the password.")
    email: str | None = Field(
        None,
        max_length=320,
        pattern=NoNul,
        description="The owner's address, for the internal/external rules.",
    )
    auto_record: AutoRecordIn | None = None

    def credentials(self, platform: str) -> dict[str, str]:
        given = {name: getattr(self, name) for name in CREDENTIAL_FIELDS[platform]}
        return {k: v for k, v in given.items() if v is not None}

    def foreign_credentials(self, platform: str) -> list[str]:
        every = {name for names in CREDENTIAL_FIELDS.values() for name in names}
        return sorted(
            n for n in every - set(CREDENTIAL_FIELDS[platform]) if getattr(self, n) is not None
        )


class CalendarCreate(_CalendarIn):
    platform: Platform


class CalendarUpdate(_CalendarIn):
    platform: Platform | None = None


class StatusChangeOut(BaseModel):
    status: str
    reason: str | None
    created_at: str


class CalendarOut(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    platform: str
    platform_email: str | None
    email: str | None
    status: Literal[STATUSES]  # type: ignore[valid-type]
    status_reason: str | None
    status_changes: list[StatusChangeOut]
    auto_record: dict[str, Any] | None
    last_synced_at: str | None
    last_sync_error: str | None
    created_at: str
    updated_at: str


class CalendarPage(BaseModel):
    next: str | None
    previous: str | None
    results: list[CalendarOut]


class EventBotOut(BaseModel):
    bot_id: str = Field(json_schema_extra={"format": "uuid"})
    start_time: str | None
    deduplication_key: str
    meeting_url: str | None


class CalendarEventOut(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    calendar_id: str = Field(json_schema_extra={"format": "uuid"})
    start_time: str
    end_time: str
    raw: dict[str, Any]
    platform: str
    platform_id: str
    ical_uid: str
    meeting_platform: str | None
    meeting_url: str | None
    title: str | None
    is_deleted: bool
    bots: list[EventBotOut]
    created_at: str
    updated_at: str


class CalendarEventPage(BaseModel):
    next: str | None
    previous: str | None
    results: list[CalendarEventOut]


class EventBotIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deduplication_key: str = Field(min_length=1, max_length=2000, pattern=NoNul)
    bot_config: dict[str, Any]


def _ts(value: datetime | None) -> str | None:
    return isoformat_z(value) if value is not None else None


def calendar_json(c: Calendar) -> dict[str, Any]:
    auto = c.auto_record
    return {
        "id": str(c.id),
        "platform": c.platform,
        "platform_email": c.platform_email,
        "email": c.email,
        "status": c.status,
        "status_reason": c.status_reason,
        "status_changes": [
            {"status": s.status, "reason": s.reason, "created_at": isoformat_z(s.created_at)}
            for s in c.status_changes
        ],
        "auto_record": (
            {"bot_config": public_config(auto.bot_config), "rules": auto.rules.to_dict()}
            if auto
            else None
        ),
        "last_synced_at": _ts(c.last_synced_at),
        "last_sync_error": c.sync_error,
        "created_at": isoformat_z(c.created_at),
        "updated_at": isoformat_z(c.updated_at),
    }


def event_json(e: CalendarEvent, link: EventBotLink | None) -> dict[str, Any]:
    bots = []
    if link is not None and link.bot_id is not None:
        manual = e.manual_bot or {}
        bots.append(
            {
                "bot_id": str(link.bot_id),
                "start_time": _ts(link.bot_join_at or e.start_time),
                "deduplication_key": link.dedup_key,
                "meeting_url": (manual.get("bot_config") or {}).get("meeting_url") or e.meeting_url,
            }
        )
    return {
        "id": str(e.id),
        "calendar_id": str(e.calendar_id),
        "start_time": isoformat_z(e.start_time),
        "end_time": isoformat_z(e.end_time),
        "raw": e.raw,
        "platform": e.platform,
        "platform_id": e.key,
        "ical_uid": e.ical_uid,
        "meeting_platform": e.meeting_platform,
        "meeting_url": e.meeting_url,
        "title": e.title,
        "is_deleted": e.is_deleted,
        "bots": bots,
        "created_at": isoformat_z(e.created_at),
        "updated_at": isoformat_z(e.updated_at),
    }


# -- pagination ----------------------------------------------------------------------------------
Cursor = Annotated[
    str | None, Query(max_length=200, pattern=NoNul, description="The pagination cursor value.")
]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]


# -- calendars ------------------------------------------------------------------------------------
def _refuse_foreign(body: _CalendarIn, platform: str) -> None:
    foreign = body.foreign_credentials(platform)
    if foreign:
        raise RequestInvalid(
            {name: [f"Not a credential of {platform} calendars."] for name in foreign}
        )


async def create_calendar(request: Request, workspace_id: Caller, body: CalendarCreate) -> Response:
    api = api_of(request)

    async def run() -> Response:
        _refuse_foreign(body, body.platform)
        new = service.NewCalendar(
            platform=body.platform,
            credentials=body.credentials(body.platform),
            email=body.email,
            auto_record=body.auto_record.domain() if body.auto_record else None,
            oauth_email=body.oauth_email,
        )
        calendar = await service.create_calendar(api.ctx, workspace_id, new)
        return json_ok(calendar_json(calendar), 201)

    return await api.idempotent(request, workspace_id, run)


CALENDAR_LIST_PARAMETERS = frozenset(
    {"platform", "status", "email", "created_at__gte", "cursor", "page_size"}
)


async def list_calendars(
    request: Request,
    workspace_id: Caller,
    platform: Platform | None = None,
    status: Literal[STATUSES] | None = None,  # type: ignore[valid-type]
    email: Annotated[str | None, Query(max_length=320, pattern=NoNul)] = None,
    created_at__gte: Annotated[Timestamp | None, Query()] = None,
    cursor: Cursor = None,
    page_size: PageSize = DEFAULT_PAGE_SIZE,
) -> Response:
    refuse_unknown_query(request, CALENDAR_LIST_PARAMETERS)
    flt = CalendarFilter(
        platform=platform, status=status, email=email, created_at_gte=created_at__gte
    )
    found = await service.list_calendars(
        api_of(request).ctx, workspace_id, flt, decode_position(cursor), page_size + 1
    )
    page, next_url = next_page(
        request, found, page_size, lambda c: encode_position(c.created_at, c.id)
    )
    return json_ok(
        {"next": next_url, "previous": None, "results": [calendar_json(c) for c in page]}
    )


async def retrieve_calendar(request: Request, id: str, workspace_id: Caller) -> Response:
    calendar = await service.get_calendar(api_of(request).ctx, workspace_id, parse_id(id))
    return json_ok(calendar_json(calendar))


async def update_calendar(
    request: Request, id: str, workspace_id: Caller, body: CalendarUpdate
) -> Response:
    api = api_of(request)
    calendar_id = parse_id(id)

    async def run() -> Response:
        current = await service.get_calendar(api.ctx, workspace_id, calendar_id)
        if body.platform is not None and body.platform != current.platform:
            raise FieldInvalid(
                "platform", "A calendar's platform cannot change; connect a new calendar."
            )
        _refuse_foreign(body, current.platform)
        sent = frozenset(body.model_fields_set)
        changes = service.CalendarChanges(
            sent=sent,
            credentials=body.credentials(current.platform),
            email=body.email,
            auto_record=body.auto_record.domain() if body.auto_record else None,
            oauth_email=body.oauth_email,
        )
        calendar = await service.update_calendar(api.ctx, workspace_id, calendar_id, changes)
        return json_ok(calendar_json(calendar))

    return await api.idempotent(request, workspace_id, run)


async def delete_calendar(request: Request, id: str, workspace_id: Caller) -> Response:
    await service.delete_calendar(api_of(request).ctx, workspace_id, parse_id(id))
    return Response(status_code=204)


async def sync_calendar(request: Request, id: str, workspace_id: Caller) -> Response:
    calendar = await service.request_sync(api_of(request).ctx, workspace_id, parse_id(id))
    return json_ok(calendar_json(calendar), 202)


# -- calendar events ------------------------------------------------------------------------------
EVENT_LIST_PARAMETERS = frozenset(
    {
        "calendar_id",
        "start_time",
        "start_time__gte",
        "start_time__lte",
        "updated_at__gte",
        "is_deleted",
        "ical_uid",
        "cursor",
        "page_size",
    }
)


async def list_events(
    request: Request,
    workspace_id: Caller,
    calendar_id: UUID | None = None,
    start_time: Annotated[Timestamp | None, Query()] = None,
    start_time__gte: Annotated[Timestamp | None, Query()] = None,
    start_time__lte: Annotated[Timestamp | None, Query()] = None,
    updated_at__gte: Annotated[Timestamp | None, Query()] = None,
    is_deleted: bool | None = None,
    ical_uid: Annotated[
        str | None,
        Query(max_length=1000, pattern=NoNul, description="Case-sensitive prefix match."),
    ] = None,
    cursor: Cursor = None,
    page_size: PageSize = DEFAULT_PAGE_SIZE,
) -> Response:
    refuse_unknown_query(request, EVENT_LIST_PARAMETERS)
    ctx = api_of(request).ctx
    flt = CalendarEventFilter(
        calendar_id=calendar_id,
        start_time=start_time,
        start_time_gte=start_time__gte,
        start_time_lte=start_time__lte,
        updated_at_gte=updated_at__gte,
        is_deleted=is_deleted,
        ical_uid=ical_uid,
    )
    found = await service.list_calendar_events(
        ctx, workspace_id, flt, decode_position(cursor), page_size + 1
    )
    page, next_url = next_page(
        request, found, page_size, lambda e: encode_position(e.start_time, e.id)
    )
    links = await service.bots_of_events(ctx, workspace_id, page)
    return json_ok(
        {
            "next": next_url,
            "previous": None,
            "results": [event_json(e, links.get(e.id)) for e in page],
        }
    )


async def _event_response(request: Request, workspace_id: UUID, event: CalendarEvent) -> Response:
    links = await service.bots_of_events(api_of(request).ctx, workspace_id, [event])
    return json_ok(event_json(event, links.get(event.id)))


async def retrieve_event(request: Request, id: str, workspace_id: Caller) -> Response:
    event = await service.get_calendar_event(api_of(request).ctx, workspace_id, parse_id(id))
    return await _event_response(request, workspace_id, event)


async def _event_in_path(request: Request, id: str, workspace_id: Creator) -> CalendarEvent:
    return await service.get_calendar_event(api_of(request).ctx, workspace_id, parse_id(id))


# A dependency resolves before the body is validated: a foreign or missing event answers 404
# whatever was sent, like every other item route.
EventInPath = Annotated[CalendarEvent, Depends(_event_in_path)]


async def schedule_event_bot(
    request: Request, id: str, workspace_id: Creator, event: EventInPath, body: EventBotIn
) -> Response:
    api = api_of(request)
    event_id = event.id

    async def run() -> Response:
        config = normalise_bot_config(body.bot_config)
        event = await service.schedule_event_bot(
            api.ctx, workspace_id, event_id, body.deduplication_key, config
        )
        return await _event_response(request, workspace_id, event)

    return await api.idempotent(request, workspace_id, run)


async def unschedule_event_bot(request: Request, id: str, workspace_id: Caller) -> Response:
    event = await service.unschedule_event_bot(api_of(request).ctx, workspace_id, parse_id(id))
    return await _event_response(request, workspace_id, event)


def register(r: APIRouter) -> None:
    cals, events = "/api/v2/calendars/", "/api/v2/calendar-events/"
    tags = ["calendars"]
    add_route(
        r,
        cals,
        create_calendar,
        ["POST"],
        status_code=201,
        response_model=CalendarOut,
        responses=responses(409, 422),
        summary="Create Calendar",
        operation_id="calendars_create",
        tags=tags,
    )
    add_route(
        r,
        cals,
        list_calendars,
        ["GET"],
        response_model=CalendarPage,
        responses=responses(),
        summary="List Calendars",
        operation_id="calendars_list",
        tags=tags,
    )
    add_route(
        r,
        cals + "{id}/",
        retrieve_calendar,
        ["GET"],
        response_model=CalendarOut,
        responses=responses(404),
        summary="Retrieve Calendar",
        operation_id="calendars_retrieve",
        tags=tags,
    )
    add_route(
        r,
        cals + "{id}/",
        update_calendar,
        ["PATCH"],
        response_model=CalendarOut,
        responses=responses(404, 409, 422),
        summary="Update Calendar",
        operation_id="calendars_partial_update",
        tags=tags,
    )
    add_route(
        r,
        cals + "{id}/",
        delete_calendar,
        ["DELETE"],
        status_code=204,
        response_class=Response,
        responses={**responses(404), 204: {"description": "Deleted; its bots are released."}},
        summary="Delete Calendar",
        operation_id="calendars_destroy",
        tags=tags,
    )
    add_route(
        r,
        cals + "{id}/sync/",
        sync_calendar,
        ["POST"],
        status_code=202,
        response_model=CalendarOut,
        responses=responses(404, 409),
        summary="Sync Calendar Now",
        operation_id="calendars_sync_create",
        tags=tags,
    )
    add_route(
        r,
        events,
        list_events,
        ["GET"],
        response_model=CalendarEventPage,
        responses=responses(),
        summary="List Calendar Events",
        operation_id="calendar_events_list",
        tags=tags,
    )
    add_route(
        r,
        events + "{id}/",
        retrieve_event,
        ["GET"],
        response_model=CalendarEventOut,
        responses=responses(404),
        summary="Retrieve Calendar Event",
        operation_id="calendar_events_retrieve",
        tags=tags,
    )
    add_route(
        r,
        events + "{id}/bot/",
        schedule_event_bot,
        ["POST"],
        response_model=CalendarEventOut,
        responses=responses(404, 409, 422, 507),
        summary="Schedule Bot For Calendar Event",
        operation_id="calendar_events_bot_create",
        tags=tags,
    )
    add_route(
        r,
        events + "{id}/bot/",
        unschedule_event_bot,
        ["DELETE"],
        response_model=CalendarEventOut,
        responses=responses(404),
        summary="Delete Bot From Calendar Event",
        operation_id="calendar_events_bot_destroy",
        tags=tags,
    )
