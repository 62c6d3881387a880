"""Webhook deliveries: one per (outbox message, endpoint), and the attempts made at it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATUSES = (PENDING, DELIVERED, FAILED)


@dataclass(frozen=True, slots=True)
class Attempt:
    attempted_at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None = None
    response: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    seq: int
    id: UUID
    message_id: UUID
    endpoint_id: UUID
    workspace_id: UUID
    bot_id: UUID | None
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    updated_at: datetime
    history: list[Attempt] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class DueDelivery:
    """A claimed delivery with what sending it needs."""

    delivery: Delivery
    payload: dict[str, Any]
    url: str
    sealed_secret: str
    sealed_previous_secret: str | None
    previous_secret_until: datetime | None
    endpoint_failing_since: datetime | None
    #: Until when the claim holds: past it, another sender may send this delivery.
    lease_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of an attempt: delivered, to be retried at ``retry_at``, or failed for good;
    and what the endpoint's failure record becomes."""

    status: str
    retry_at: datetime | None
    endpoint_failing_since: datetime | None
    disable_endpoint: bool = False


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    endpoint_id: UUID | None = None
    event_type: str | None = None
    status: str | None = None
    bot_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """One finished attempt, as the sender hands it to the store (in batches)."""

    seq: int
    endpoint_id: UUID
    attempt: Attempt
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Dispatched:
    """What one fan-out of outbox messages produced.

    ``leased`` are new deliveries already claimed by the dispatching sender (ready to send, no
    claim round trip); the others were written unclaimed and wait for a claim: those of a bot
    with an earlier delivery still pending to the same endpoint (``blocked``, as (endpoint, bot)
    pairs), and those beyond an endpoint's room (``overflow`` names the endpoints)."""

    messages: int
    leased: list[DueDelivery]
    blocked: set[tuple[UUID, UUID]] = field(default_factory=set)
    overflow: set[UUID] = field(default_factory=set)
