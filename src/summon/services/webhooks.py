"""Webhook endpoint use cases: create, read, list, update, delete, rotate the signing secret.

Secrets are generated here, shown once (on create and on rotate), and kept sealed by the
context's SecretBox. A rotated-out secret keeps signing for 24 hours beside the new one, so
receivers can switch without missing a delivery.
"""

from __future__ import annotations

import base64
from collections.abc import Collection
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from summon.domain.errors import FieldInvalid, NotFound, RuleViolation
from summon.domain.deliveries import Delivery
from summon.domain.webhook_endpoints import WebhookEndpoint
from summon.domain.webhooks import EVENT_TYPES, generate_secret, validate_endpoint_url
from summon.secretbox import SecretBox
from summon.services.context import Context

ROTATION_OVERLAP = timedelta(hours=24)
MAX_ENDPOINTS = 100


class TooManyEndpoints(RuleViolation):
    code, http_status = "too_many_endpoints", 400


def _box(ctx: Context) -> SecretBox:
    if ctx.secrets is None:
        raise RuntimeError("the context has no SecretBox: secrets cannot be kept")
    return ctx.secrets


def _url(url: str) -> str:
    try:
        return validate_endpoint_url(url)
    except ValueError as exc:
        raise FieldInvalid("url", str(exc)) from None


def _event_types(event_types: Collection[str] | None) -> list[str]:
    chosen = sorted(set(event_types or ()))
    unknown = [e for e in chosen if e not in EVENT_TYPES]
    if unknown:
        raise FieldInvalid("event_types", f"Unknown event type(s): {', '.join(unknown)}.")
    return chosen


async def create_endpoint(
    ctx: Context, workspace_id: UUID, url: str, event_types: Collection[str] | None, description: str | None
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (returned once, kept sealed)."""
    if len(await ctx.store.list_endpoints(workspace_id)) >= MAX_ENDPOINTS:
        raise TooManyEndpoints(f"A workspace has at most {MAX_ENDPOINTS} webhook endpoints.")
    now = ctx.clock.now()
    secret = generate_secret()
    endpoint = WebhookEndpoint(
        id=uuid4(), workspace_id=workspace_id, url=_url(url), description=description,
        event_types=_event_types(event_types), sealed_secret=_box(ctx).encrypt(secret),
        sealed_previous_secret=None, previous_secret_until=None, disabled=False, disabled_reason=None,
        failing_since=None, created_at=now, updated_at=now,
    )
    await ctx.store.insert_endpoint(endpoint)
    return endpoint, secret


async def get_endpoint(ctx: Context, workspace_id: UUID, endpoint_id: UUID) -> WebhookEndpoint:
    endpoint = await ctx.store.get_endpoint(workspace_id, endpoint_id)
    if endpoint is None:
        raise NotFound("webhook endpoint", endpoint_id)
    return endpoint


async def list_endpoints(ctx: Context, workspace_id: UUID) -> list[WebhookEndpoint]:
    return await ctx.store.list_endpoints(workspace_id)


async def update_endpoint(
    ctx: Context,
    workspace_id: UUID,
    endpoint_id: UUID,
    *,
    url: str | None = None,
    event_types: Collection[str] | None = None,
    description: str | None = None,
    disabled: bool | None = None,
    sent: Collection[str] = (),
) -> WebhookEndpoint:
    """Change what was ``sent``. Re-enabling an endpoint clears its failure record."""
    endpoint = await get_endpoint(ctx, workspace_id, endpoint_id)
    changed = replace(endpoint, updated_at=ctx.clock.now())
    if "url" in sent and url is not None:
        changed.url = _url(url)
    if "event_types" in sent:
        changed.event_types = _event_types(event_types)
    if "description" in sent:
        changed.description = description
    if "disabled" in sent and disabled is not None:
        changed.disabled = disabled
        changed.disabled_reason = "disabled by the API" if disabled else None
        if not disabled:
            changed.failing_since = None
    await ctx.store.save_endpoint(changed)
    return changed


async def delete_endpoint(ctx: Context, workspace_id: UUID, endpoint_id: UUID) -> None:
    if not await ctx.store.delete_endpoint(workspace_id, endpoint_id):
        raise NotFound("webhook endpoint", endpoint_id)


async def rotate_secret(ctx: Context, workspace_id: UUID, endpoint_id: UUID) -> tuple[WebhookEndpoint, str]:
    """A new signing secret; the old one keeps signing beside it for 24 hours."""
    endpoint = await get_endpoint(ctx, workspace_id, endpoint_id)
    now = ctx.clock.now()
    secret = generate_secret()
    rotated = replace(
        endpoint,
        sealed_secret=_box(ctx).encrypt(secret),
        sealed_previous_secret=endpoint.sealed_secret,
        previous_secret_until=now + ROTATION_OVERLAP,
        updated_at=now,
    )
    await ctx.store.save_endpoint(rotated)
    return rotated, secret


async def resend_delivery(ctx: Context, workspace_id: UUID, delivery_id: UUID) -> Delivery:
    """Deliver again from now on, with a fresh retry schedule; senders are woken."""
    delivery = await ctx.store.resend_delivery(workspace_id, delivery_id, ctx.clock.now())
    if delivery is None:
        raise NotFound("webhook delivery", str(delivery_id))
    ctx.signals.notify("deliveries")
    return delivery


def realtime_secret(ctx: Context, workspace_id: UUID) -> str:
    """The workspace's signing secret for real-time webhook endpoints (SPEC §10.4): they are
    configured per bot, without a secret of their own, so one secret per workspace signs them
    all — Recall's "workspace verification secret". Derived from the service's secret key, so
    it needs no storage and survives restarts; it changes only when that key does."""
    raw = _box(ctx).derive(f"realtime-signing:{workspace_id}")[:24]
    return "whsec_" + base64.b64encode(raw).decode("ascii")


def signing_secrets(ctx: Context, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets a delivery is signed with now: the current one, and the previous one while
    its rotation overlap lasts."""
    box = _box(ctx)
    secrets = [box.decrypt(endpoint.sealed_secret)]
    if endpoint.sealed_previous_secret and endpoint.previous_secret_until and now < endpoint.previous_secret_until:
        secrets.append(box.decrypt(endpoint.sealed_previous_secret))
    return secrets
