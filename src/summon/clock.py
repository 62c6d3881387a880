"""Time, injected.

Everything that reads the time takes a :class:`Clock`, so tests can move time by hand
(:class:`FakeClock`) and production uses :class:`SystemClock`. Wall-clock time (``now``) is what
we store and compare with ``join_at``; monotonic time is for measuring intervals.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class SystemClock:
    """The real clock: aware UTC datetimes from the system's wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to. ``sleep`` waits until ``advance`` passes the deadline."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2030, 1, 1, tzinfo=UTC)
        self._mono = 0.0
        self._changed = asyncio.Event() if _has_loop() else None
        #: How many tasks are inside :meth:`sleep` now: a test advances once they are waiting.
        self.sleepers = 0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def set(self, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._mono += (when - self._now).total_seconds()
        self._now = when
        self._notify()

    def advance(self, seconds: float = 0.0, **kwargs: float) -> datetime:
        delta = timedelta(seconds=seconds, **kwargs)
        self._now += delta
        self._mono += delta.total_seconds()
        self._notify()
        return self._now

    async def sleep(self, seconds: float) -> None:
        deadline = self._mono + max(0.0, seconds)
        self.sleepers += 1
        try:
            while self._mono < deadline:
                if self._changed is None:
                    self._changed = asyncio.Event()
                await self._changed.wait()
        finally:
            self.sleepers -= 1

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()


def _has_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def isoformat_z(value: datetime) -> str:
    """UTC ISO 8601 with a ``Z`` suffix and microseconds, the form every response uses."""
    if value.tzinfo is not UTC:
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
