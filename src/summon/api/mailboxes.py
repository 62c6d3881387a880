"""``/api/v1/bot_mailboxes/…``: parse input, call one service function, render the result."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from summon.api.bot_config import BotCreate
from summon.api.errors import RequestInvalid, field_errors
from summon.api.cursors import decode_position, encode_position, next_page
from summon.api.plumbing import Caller, add_route, api_of, json_ok, parse_id, refuse_unknown_query
from summon.api.schemas import public_config, responses
from summon.clock import isoformat_z
from summon.domain.mailboxes import INVITE_STATUSES, MAX_ALLOWED_SENDERS, Invite, Mailbox
from summon.services import mailboxes as service

NoNul = r"^[^\x00]*$"
SenderEntry = Annotated[str, Field(min_length=1, max_length=254, pattern=NoNul)]
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_PLACEHOLDER_URL = "https://meet.google.com/abc-defg-hij"  # validated shape only; never stored


def normalise_bot_config(data: Mapping[str, Any]) -> dict[str, Any]:
    """A Create Bot body without ``meeting_url`` and ``join_at`` (each invite gives them) →
    the stored form :func:`summon.services.event_bots.attach_bot` takes: validated, Recall's
    defaults filled in, ``metadata`` kept. Errors name ``bot_config.<path>``."""
    refused = sorted(k for k in ("meeting_url", "join_at") if k in data)
    if refused:
        raise RequestInvalid(
            {f"bot_config.{k}": ["Comes from each invitation; leave it out."] for k in refused}
        )
    try:
        body = BotCreate.model_validate({**data, "meeting_url": _PLACEHOLDER_URL})
    except ValidationError as exc:
        errors, _ = field_errors(exc.errors())
        raise RequestInvalid({f"bot_config.{k}": v for k, v in errors.items()}) from None
    out = body.stored_config()
    out["metadata"] = dict(body.metadata)
    return out


class MailboxCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str = Field(
        min_length=3, max_length=254, pattern=NoNul, description="The bot's e-mail address."
    )
    bot_config: dict[str, Any] = Field(
        default_factory=dict,
        description="A Create Bot body; meeting_url and join_at come from each invitation.",
    )
    allowed_senders: list[SenderEntry] = Field(
        max_length=MAX_ALLOWED_SENDERS,
        description="Who may schedule bots: domains (example.com), *.example.com, or addresses. "
        "Both the envelope sender and the organizer must match.",
    )
    send_replies: StrictBool = Field(
        False, description="Answer organizers with an iMIP REPLY (needs SUMMON_SMTP_RELAY_URL)."
    )


class MailboxUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: str | None = Field(None, min_length=3, max_length=254, pattern=NoNul)
    bot_config: dict[str, Any] | None = None
    allowed_senders: list[SenderEntry] | None = Field(None, max_length=MAX_ALLOWED_SENDERS)
    send_replies: StrictBool | None = None


class MailboxOut(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    address: str
    bot_config: dict[str, Any]
    allowed_senders: list[str]
    send_replies: bool
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    updated_at: str = Field(json_schema_extra={"format": "date-time"})


class MailboxPage(BaseModel):
    next: str | None
    previous: str | None
    results: list[MailboxOut]


class MailboxDeleted(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    deleted: Literal[True]


class InviteBotOut(BaseModel):
    bot_id: str = Field(json_schema_extra={"format": "uuid"})
    start_time: str = Field(json_schema_extra={"format": "date-time"})
    end_time: str = Field(json_schema_extra={"format": "date-time"})


class InviteOut(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    ical_uid: str
    method: str
    sequence: int
    status: Literal[tuple(INVITE_STATUSES)]  # type: ignore[valid-type]
    reason: str | None = Field(
        description="Why it was ignored or refused, or what kept a bot away."
    )
    title: str | None
    organizer: str | None
    sender: str | None
    recurring: bool
    bots: list[InviteBotOut]
    created_at: str = Field(json_schema_extra={"format": "date-time"})
    updated_at: str = Field(json_schema_extra={"format": "date-time"})


class InvitePage(BaseModel):
    next: str | None
    previous: str | None
    results: list[InviteOut]


def mailbox_json(m: Mailbox) -> dict[str, Any]:
    return {
        "id": str(m.id),
        "address": m.address,
        "bot_config": public_config(m.bot_config),
        "allowed_senders": m.allowed_senders,
        "send_replies": m.send_replies,
        "created_at": isoformat_z(m.created_at),
        "updated_at": isoformat_z(m.updated_at),
    }


def invite_json(i: Invite) -> dict[str, Any]:
    return {
        "id": str(i.id),
        "ical_uid": i.uid,
        "method": i.method,
        "sequence": i.sequence,
        "status": i.status,
        "reason": i.reason,
        "title": i.title,
        "organizer": i.organizer,
        "sender": i.sender,
        "recurring": i.recurring,
        "bots": [
            {
                "bot_id": str(b.bot_id),
                "start_time": isoformat_z(b.start),
                "end_time": isoformat_z(b.end),
            }
            for b in sorted(i.bots, key=lambda b: b.start)
        ],
        "created_at": isoformat_z(i.created_at),
        "updated_at": isoformat_z(i.updated_at),
    }


T = TypeVar("T")


# -- pagination ----------------------------------------------------------------------------------
def _page(
    request: Request,
    found: list[T],
    page_size: int,
    cursor_of: Callable[[T], str],
    render: Callable[[T], dict[str, Any]],
) -> Response:
    page, next_url = next_page(request, found, page_size, cursor_of)
    return json_ok({"next": next_url, "previous": None, "results": [render(x) for x in page]})


PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=200, pattern=NoNul)]
LIST_PARAMETERS = frozenset({"cursor", "page_size"})


# -- handlers --------------------------------------------------------------------------------------
async def create_mailbox(request: Request, workspace_id: Caller, body: MailboxCreate) -> Response:
    api = api_of(request)

    async def run() -> Response:
        mailbox = await service.create_mailbox(
            api.ctx,
            workspace_id,
            body.address,
            normalise_bot_config(body.bot_config),
            body.allowed_senders,
            send_replies=body.send_replies,
        )
        return json_ok(mailbox_json(mailbox), 201)

    return await api.idempotent(request, workspace_id, run)


async def list_mailboxes(
    request: Request,
    workspace_id: Caller,
    cursor: Cursor = None,
    page_size: PageSize = DEFAULT_PAGE_SIZE,
) -> Response:
    refuse_unknown_query(request, LIST_PARAMETERS)
    found = await service.list_mailboxes(
        api_of(request).ctx, workspace_id, decode_position(cursor), page_size + 1
    )
    return _page(
        request, found, page_size, lambda m: encode_position(m.created_at, m.id), mailbox_json
    )


async def retrieve_mailbox(request: Request, id: str, workspace_id: Caller) -> Response:
    return json_ok(
        mailbox_json(await service.get_mailbox(api_of(request).ctx, workspace_id, parse_id(id)))
    )


async def update_mailbox(
    request: Request, id: str, workspace_id: Caller, body: MailboxUpdate
) -> Response:
    api = api_of(request)
    sent = body.model_fields_set
    for name in ("address", "bot_config", "allowed_senders", "send_replies"):
        if name in sent and getattr(body, name) is None:
            raise RequestInvalid({name: ["This field may not be null."]})

    async def run() -> Response:
        mailbox = await service.update_mailbox(
            api.ctx,
            workspace_id,
            parse_id(id),
            address=body.address,
            bot_config=normalise_bot_config(body.bot_config)
            if body.bot_config is not None
            else None,
            allowed_senders=body.allowed_senders,
            send_replies=body.send_replies,
        )
        return json_ok(mailbox_json(mailbox))

    return await api.idempotent(request, workspace_id, run)


async def delete_mailbox(request: Request, id: str, workspace_id: Caller) -> Response:
    mailbox_id = parse_id(id)
    await service.delete_mailbox(api_of(request).ctx, workspace_id, mailbox_id)
    return json_ok({"id": str(mailbox_id), "deleted": True})


async def list_invites(
    request: Request,
    id: str,
    workspace_id: Caller,
    cursor: Cursor = None,
    page_size: PageSize = DEFAULT_PAGE_SIZE,
) -> Response:
    refuse_unknown_query(request, LIST_PARAMETERS)
    found = await service.list_invites(
        api_of(request).ctx, workspace_id, parse_id(id), decode_position(cursor), page_size + 1
    )
    return _page(
        request, found, page_size, lambda i: encode_position(i.updated_at, i.id), invite_json
    )


def register(r: APIRouter) -> None:
    base = "/api/v1/bot_mailboxes/"
    tags = ["bot mailboxes"]
    add_route(
        r,
        base,
        create_mailbox,
        ["POST"],
        status_code=201,
        response_model=MailboxOut,
        responses=responses(409, 422),
        summary="Create Bot Mailbox",
        operation_id="bot_mailbox_create",
        tags=tags,
    )
    add_route(
        r,
        base,
        list_mailboxes,
        ["GET"],
        response_model=MailboxPage,
        responses=responses(),
        summary="List Bot Mailboxes",
        operation_id="bot_mailbox_list",
        tags=tags,
    )
    add_route(
        r,
        base + "{id}/",
        retrieve_mailbox,
        ["GET"],
        response_model=MailboxOut,
        responses=responses(404),
        summary="Retrieve Bot Mailbox",
        operation_id="bot_mailbox_retrieve",
        tags=tags,
    )
    add_route(
        r,
        base + "{id}/",
        update_mailbox,
        ["PATCH"],
        response_model=MailboxOut,
        responses=responses(404, 409, 422),
        summary="Update Bot Mailbox",
        operation_id="bot_mailbox_partial_update",
        tags=tags,
    )
    add_route(
        r,
        base + "{id}/",
        delete_mailbox,
        ["DELETE"],
        response_model=MailboxDeleted,
        responses=responses(404),
        summary="Delete Bot Mailbox",
        operation_id="bot_mailbox_destroy",
        tags=tags,
    )
    add_route(
        r,
        base + "{id}/invites/",
        list_invites,
        ["GET"],
        response_model=InvitePage,
        responses=responses(404),
        summary="List Received Invitations",
        operation_id="bot_mailbox_invites_list",
        tags=tags,
    )
