"""``/api/v1/webhook_endpoints/…``: parse input, call one service function, render the result."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from summon.api.cursors import decode_seq, encode_seq, next_page
from summon.api.plumbing import Caller, add_route, api_of, json_ok, parse_id, refuse_unknown_query
from summon.api.schemas import responses
from summon.clock import isoformat_z
from summon.domain.deliveries import Delivery, DeliveryFilter
from summon.domain.webhook_endpoints import WebhookEndpoint
from summon.domain.webhooks import EVENT_TYPES
from summon.services import webhooks as service

EventType = Literal[tuple(sorted(EVENT_TYPES))]  # type: ignore[valid-type]
NoNul = r"^[^\x00]*$"


class EndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048, pattern=NoNul)
    event_types: list[EventType] | None = Field(None, max_length=100, description="Empty or absent: every event.")
    description: str | None = Field(None, max_length=500, pattern=NoNul)


class EndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, min_length=1, max_length=2048, pattern=NoNul)
    event_types: list[EventType] | None = Field(None, max_length=100)
    description: str | None = Field(None, max_length=500, pattern=NoNul)
    disabled: bool | None = None


class EndpointOut(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    url: str
    description: str | None
    event_types: list[str]
    disabled: bool
    disabled_reason: str | None
    failing_since: str | None
    created_at: str
    updated_at: str
    secret: str | None = Field(None, description="The signing secret: only in the answers to create and rotate.")


class EndpointList(BaseModel):
    next: str | None
    previous: str | None
    results: list[EndpointOut]


class EndpointDeleted(BaseModel):
    id: str
    deleted: Literal[True]


def endpoint_json(endpoint: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(endpoint.id),
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "disabled": endpoint.disabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since": isoformat_z(endpoint.failing_since) if endpoint.failing_since else None,
        "created_at": isoformat_z(endpoint.created_at),
        "updated_at": isoformat_z(endpoint.updated_at),
    }
    if secret is not None:
        out["secret"] = secret
    return out


async def create_endpoint(request: Request, workspace_id: Caller, body: EndpointCreate) -> Response:
    api = api_of(request)

    async def run() -> Response:
        endpoint, secret = await service.create_endpoint(api.ctx, workspace_id, body.url, body.event_types, body.description)
        return json_ok(endpoint_json(endpoint, secret), 201)

    return await api.idempotent(request, workspace_id, run)


async def list_endpoints(request: Request, workspace_id: Caller) -> Response:
    refuse_unknown_query(request, frozenset())
    endpoints = await service.list_endpoints(api_of(request).ctx, workspace_id)
    return json_ok({"next": None, "previous": None, "results": [endpoint_json(e) for e in endpoints]})


async def retrieve_endpoint(request: Request, id: str, workspace_id: Caller) -> Response:
    endpoint = await service.get_endpoint(api_of(request).ctx, workspace_id, parse_id(id))
    return json_ok(endpoint_json(endpoint))


async def update_endpoint(request: Request, id: str, workspace_id: Caller, body: EndpointUpdate) -> Response:
    endpoint = await service.update_endpoint(
        api_of(request).ctx, workspace_id, parse_id(id), url=body.url, event_types=body.event_types,
        description=body.description, disabled=body.disabled, sent=body.model_fields_set,
    )
    return json_ok(endpoint_json(endpoint))


async def delete_endpoint(request: Request, id: str, workspace_id: Caller) -> Response:
    endpoint_id = parse_id(id)
    await service.delete_endpoint(api_of(request).ctx, workspace_id, endpoint_id)
    return json_ok({"id": str(endpoint_id), "deleted": True})


async def rotate_secret(request: Request, id: str, workspace_id: Caller) -> Response:
    endpoint, secret = await service.rotate_secret(api_of(request).ctx, workspace_id, parse_id(id))
    return json_ok(endpoint_json(endpoint, secret))


def register(r: APIRouter) -> None:
    base = "/api/v1/webhook_endpoints/"
    add_route(r, base, create_endpoint, ["POST"], status_code=201, response_model=EndpointOut,
              responses=responses(409, 422), summary="Create Webhook Endpoint", operation_id="webhook_endpoint_create",
              tags=["webhooks"])
    add_route(r, base, list_endpoints, ["GET"], response_model=EndpointList, responses=responses(),
              summary="List Webhook Endpoints", operation_id="webhook_endpoint_list", tags=["webhooks"])
    add_route(r, base + "{id}/", retrieve_endpoint, ["GET"], response_model=EndpointOut, responses=responses(404),
              summary="Retrieve Webhook Endpoint", operation_id="webhook_endpoint_retrieve", tags=["webhooks"])
    add_route(r, base + "{id}/", update_endpoint, ["PATCH"], response_model=EndpointOut, responses=responses(404),
              summary="Update Webhook Endpoint", operation_id="webhook_endpoint_partial_update", tags=["webhooks"])
    add_route(r, base + "{id}/", delete_endpoint, ["DELETE"], response_model=EndpointDeleted, responses=responses(404),
              summary="Delete Webhook Endpoint", operation_id="webhook_endpoint_destroy", tags=["webhooks"])
    add_route(r, base + "{id}/rotate_secret/", rotate_secret, ["POST"], response_model=EndpointOut,
              responses=responses(404), summary="Rotate Signing Secret", operation_id="webhook_endpoint_rotate_secret",
              tags=["webhooks"])


# -- the delivery ledger ---------------------------------------------------------------------------
class AttemptOut(BaseModel):
    attempted_at: str
    status_code: int | None
    duration_ms: int
    error: str | None
    response: str | None


class DeliveryOut(BaseModel):
    id: str = Field(json_schema_extra={"format": "uuid"})
    webhook_id: str = Field(description="The webhook-id header of every attempt at this message.")
    endpoint_id: str
    event_type: str
    bot_id: str | None
    status: Literal["pending", "delivered", "failed"]
    next_attempt_at: str | None
    created_at: str
    updated_at: str
    attempts: list[AttemptOut]


class DeliveryPage(BaseModel):
    next: str | None
    previous: str | None
    results: list[DeliveryOut]


def delivery_json(d: Delivery) -> dict[str, Any]:
    return {
        "id": str(d.id),
        "webhook_id": str(d.message_id),
        "endpoint_id": str(d.endpoint_id),
        "event_type": d.event_type,
        "bot_id": str(d.bot_id) if d.bot_id else None,
        "status": d.status,
        "next_attempt_at": isoformat_z(d.next_attempt_at) if d.next_attempt_at and d.status == "pending" else None,
        "created_at": isoformat_z(d.created_at),
        "updated_at": isoformat_z(d.updated_at),
        "attempts": [
            {"attempted_at": isoformat_z(a.attempted_at), "status_code": a.status_code,
             "duration_ms": a.duration_ms, "error": a.error, "response": a.response}
            for a in d.history
        ],
    }


LEDGER_PARAMETERS = frozenset({"endpoint_id", "event_type", "status", "bot_id", "cursor", "page_size"})


async def list_deliveries(
    request: Request,
    workspace_id: Caller,
    endpoint_id: UUID | None = None,
    event_type: Annotated[str | None, Query(max_length=100, pattern=NoNul)] = None,
    status: Literal["pending", "delivered", "failed"] | None = None,
    bot_id: UUID | None = None,
    cursor: Annotated[str | None, Query(max_length=100, pattern=NoNul)] = None,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    refuse_unknown_query(request, LEDGER_PARAMETERS)
    api = api_of(request)
    flt = DeliveryFilter(endpoint_id=endpoint_id, event_type=event_type, status=status, bot_id=bot_id)
    found = await api.ctx.store.list_deliveries(workspace_id, flt, decode_seq(cursor), page_size + 1)
    page, next_url = next_page(request, found, page_size, lambda d: encode_seq(d.seq))
    return json_ok({"next": next_url, "previous": None, "results": [delivery_json(d) for d in page]})


async def resend_delivery(request: Request, id: str, workspace_id: Caller) -> Response:
    api = api_of(request)
    delivery = await service.resend_delivery(api.ctx, workspace_id, parse_id(id))
    return json_ok(delivery_json(delivery))


class SecretOut(BaseModel):
    secret: str


async def realtime_secret(request: Request, workspace_id: Caller) -> Response:
    refuse_unknown_query(request, frozenset())
    return json_ok({"secret": service.realtime_secret(api_of(request).ctx, workspace_id)})


def register_ledger(r: APIRouter) -> None:
    base = "/api/v1/webhook_deliveries/"
    add_route(r, base, list_deliveries, ["GET"], response_model=DeliveryPage, responses=responses(),
              summary="List Webhook Deliveries", operation_id="webhook_delivery_list", tags=["webhooks"])
    add_route(r, base + "{id}/resend/", resend_delivery, ["POST"], response_model=DeliveryOut,
              responses=responses(404), summary="Resend Webhook Delivery", operation_id="webhook_delivery_resend",
              tags=["webhooks"])
    add_route(r, "/api/v1/realtime_signing_secret/", realtime_secret, ["GET"], response_model=SecretOut,
              responses=responses(), summary="Real-time Endpoint Signing Secret",
              operation_id="realtime_signing_secret_retrieve", tags=["webhooks"],
              description="The secret that signs this workspace's real-time webhook endpoints "
                          "(bots' `recording_config.realtime_endpoints` of type `webhook`), as "
                          "Standard Webhooks signatures like every other webhook.")
