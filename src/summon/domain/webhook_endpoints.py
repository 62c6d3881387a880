"""A workspace's webhook endpoint, as the domain sees it.

The secrets here are **sealed** (encrypted with the service's SecretBox): the store keeps them
as given, and only the webhook sender and the create/rotate answers ever open them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID


@dataclass(slots=True)
class WebhookEndpoint:
    id: UUID
    workspace_id: UUID
    url: str
    description: str | None
    event_types: list[str]  # empty: every event
    sealed_secret: str
    sealed_previous_secret: str | None
    previous_secret_until: datetime | None
    disabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime
