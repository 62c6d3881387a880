"""The calendar syncer: keeps every connected calendar in sync, periodically and on demand.

It claims due calendars (``next_sync_at <= now``) with a lease — ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, the single writer on SQLite — so several nodes can run it without syncing one
calendar twice at once (and the calendar's version fences a sync that outlived its lease).
Up to ``SUMMON_CALENDAR_SYNC_CONCURRENCY`` syncs run at a time; each one is
:func:`summon.services.calendars.sync_calendar`, which sets the next sync
``SUMMON_CALENDAR_SYNC_INTERVAL_S`` later.

Between claims it sleeps until the earliest ``next_sync_at``, a wake-up on the ``calendars``
signal (a calendar was connected or changed, or a client asked for a sync), a finished sync
(a slot came free), or :data:`POLL_S` (changes made by other nodes) — whichever comes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from uuid import UUID

from summon.abc import CalendarProvider
from summon.domain.calendars import Calendar
from summon.services import calendars as service
from summon.services.context import Context

log = logging.getLogger(__name__)

#: Longest sleep between looks for due calendars (other nodes' changes are seen this late).
POLL_S = 5.0
#: How long ``stop`` lets running syncs finish before cancelling them.
STOP_GRACE_S = 10.0

ProviderFactory = Callable[[str], CalendarProvider]


class CalendarSyncer:
    """Start with :meth:`start`, stop with :meth:`stop`; :meth:`tick` runs one round (tests)."""

    def __init__(
        self,
        ctx: Context,
        *,
        providers: ProviderFactory | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.ctx = ctx
        self.providers = providers
        self.concurrency = concurrency or ctx.settings.calendar_sync_concurrency
        self._running: dict[UUID, asyncio.Task[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self.ctx.signals.subscribe("calendars", self._wake.set)
            self._task = asyncio.create_task(self._loop(), name="calendar-syncer")

    async def stop(self) -> None:
        """Stop claiming; let running syncs finish (cancelled after :data:`STOP_GRACE_S`)."""
        self._stopping = True
        self._wake.set()
        self.ctx.signals.unsubscribe("calendars", self._wake.set)
        task, self._task = self._task, None
        if task is not None:
            await task
        running = list(self._running.values())
        if running:
            _, pending = await asyncio.wait(running, timeout=STOP_GRACE_S)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def tick(self) -> int:
        """Claim as many due calendars as there are free slots and start syncing them; how
        many were started."""
        room = self.concurrency - len(self._running)
        if room <= 0 or self._stopping:
            return 0
        now = self.ctx.clock.now()
        claimed = await self.ctx.store.claim_due_calendars(now, now + service.SYNC_LEASE, room)
        for calendar in claimed:
            task = asyncio.create_task(self._sync(calendar), name=f"calendar-sync-{calendar.id}")
            self._running[calendar.id] = task
        return len(claimed)

    async def idle(self) -> None:
        """Wait until no sync is running (tests)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)

    async def _sync(self, calendar: Calendar) -> None:
        try:
            provider = self.providers(calendar.platform) if self.providers else None
            outcome = await service.sync_calendar(
                self.ctx, calendar.id, claimed=calendar, provider=provider
            )
            log.debug("calendar %s synced: %s", calendar.id, outcome)
        except Exception:
            log.exception("calendar %s: sync failed", calendar.id)
        finally:
            self._running.pop(calendar.id, None)
            self._wake.set()

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                self._wake.clear()
                started = await self.tick()
                timeout = await self._sleep_for(self.ctx.clock.now())
                if not started:
                    timeout = max(timeout, 0.05)  # due but held by another node: do not spin
            except Exception:
                log.exception("calendar syncer: claiming failed")
                timeout = POLL_S
            if self._stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _sleep_for(self, now: datetime) -> float:
        if len(self._running) >= self.concurrency:
            return POLL_S  # a finished sync wakes us
        due = await self.ctx.store.next_calendar_sync_at()
        if due is None:
            return POLL_S
        return min(POLL_S, max(0.0, (due - now).total_seconds()))
