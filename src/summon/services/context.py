"""What every use case needs, built once at start-up and passed in (no globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from summon.abc import Clock, Store
from summon.secretbox import SecretBox
from summon.settings import Settings


@dataclass(slots=True)
class Context:
    store: Store
    clock: Clock
    settings: Settings
    #: Encrypts secrets kept at rest (webhook secrets, calendar credentials).
    secrets: SecretBox | None = None
    #: Platforms some runtime of the fleet can serve right now (drivers are plugins).
    supported_platforms: Callable[[], frozenset[str]] = field(default=lambda: frozenset())
