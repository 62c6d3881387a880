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
