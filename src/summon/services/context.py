"""What every use case needs, built once at start-up and passed in (no globals)."""

from __future__ import annotations

import asyncio
import contextlib
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
    #: In-process wake-ups ("schedule", "fleet"): a change tells the loops that wait for it.
    signals: Signals = field(default_factory=lambda: Signals())


class Signals:
    """Named wake-ups between components of one process. A waiter waits for the next
    notification after it started waiting (or a timeout): loops re-check their work on wake, so
    a missed or merged notification costs nothing but latency."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._subscribers: dict[str, list[Callable[[], None]]] = {}

    def notify(self, topic: str) -> None:
        event = self._events.pop(topic, None)
        if event is not None:
            event.set()
        for callback in self._subscribers.get(topic, ()):
            callback()

    def subscribe(self, topic: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` on every notification of ``topic`` (for a loop that must not miss
        one that comes while it is busy). It runs inside ``notify``: it must be quick."""
        self._subscribers.setdefault(topic, []).append(callback)

    def unsubscribe(self, topic: str, callback: Callable[[], None]) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._subscribers[topic].remove(callback)

    async def wait(self, topic: str, timeout: float) -> bool:
        event = self._events.setdefault(topic, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), max(0.0, timeout))
        except TimeoutError:
            return False
        return True
