"""The precise join timer: release bots at ``join_at``, never before, a few milliseconds after.

Thousands of bots share the top of the hour, so the timer is built for many waiters on few
instants (SPEC §14: 1,000 bots in a handful of processes, lateness p50 ≤ 5 ms, p99 ≤ 25 ms,
max ≤ 100 ms on two busy cores):

- Waiters are grouped by instant. Each distinct instant has one task, however many bots wait
  for it; releasing a group resolves all its futures in one go.
- That task sleeps on the event loop until ``lead`` seconds (3 ms) before the instant — the
  loop's timers are only good to about a millisecond and wake late under load — then spins on
  the wall clock for the last stretch and crosses the instant exactly. The spin is bounded
  (``lead`` plus the little that is left), so it cannot hold the loop for long.
- ``join_at`` is wall-clock (UTC epoch) time, but the loop sleeps in monotonic time. Naps are at
  most ``max_nap`` (1 s) and the remaining time is recomputed from the wall clock after each, so
  an NTP step or slew while a bot is staged moves the release with it. A released waiter checks
  the wall clock once more and waits again if it is still early: never early is absolute.

With a fake clock (tests) the timer does not spin — fake time does not move while we spin — it
sleeps with ``clock.sleep`` and releases when the fake time passes the instant.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field

from summon.abc import Clock
from summon.clock import SystemClock

__all__ = ["JoinTimer"]


@dataclass(slots=True, eq=False)
class _Group:
    waiters: set[asyncio.Future[None]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class JoinTimer:
    """Releases waiters at wall-clock instants. One per runtime process (one event loop), shared
    by all its sessions.

    ``lead``: how long before the instant the loop sleep ends and the spin begins.
    ``spin``: spin for the last ``lead`` seconds; default: only with the real
    :class:`~summon.clock.SystemClock`. ``max_nap``: longest single sleep, i.e. how quickly a
    wall-clock step is noticed.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        lead: float = 0.003,
        spin: bool | None = None,
        max_nap: float = 1.0,
    ) -> None:
        self._clock = clock
        self._lead = lead
        self._spin = isinstance(clock, SystemClock) if spin is None else spin
        self._max_nap = max_nap
        self._groups: dict[float, _Group] = {}

    @property
    def waiting(self) -> int:
        """How many waiters are registered (for metrics and tests)."""
        return sum(len(g.waiters) for g in self._groups.values())

    @property
    def instants(self) -> int:
        """How many distinct instants are being timed (one task each)."""
        return len(self._groups)

    async def wait_until(self, when_epoch: float) -> float:
        """Wait until the wall clock reads ``when_epoch`` (UTC epoch seconds) and return the wall
        time at which this waiter resumed: always ``>= when_epoch``. An instant already past
        returns at once. Cancelling the wait is safe and does not disturb other waiters."""
        if not math.isfinite(when_epoch):
            raise ValueError(f"join instant must be a finite epoch time, not {when_epoch!r}")
        while True:
            now = self._wall()
            if now >= when_epoch:
                return now
            await self._wait_group(when_epoch)

    async def _wait_group(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        group = self._groups.get(when)
        if group is None:
            group = self._groups[when] = _Group()
            group.task = loop.create_task(self._release_at(when, group), name=f"join-timer@{when}")
        waiter: asyncio.Future[None] = loop.create_future()
        group.waiters.add(waiter)
        try:
            await waiter
        finally:
            group.waiters.discard(waiter)
            # The last waiter of a group that is still timing gave up: stop timing it.
            if not group.waiters and self._groups.get(when) is group:
                del self._groups[when]
                if group.task is not None:
                    group.task.cancel()

    async def _release_at(self, when: float, group: _Group) -> None:
        error: Exception | None = None
        try:
            await self._cross(when)
        except asyncio.CancelledError:
            if self._groups.get(when) is group:
                # Cancelled from outside (loop shutdown): the waiters are cancelled with it.
                del self._groups[when]
                for waiter in group.waiters:
                    waiter.cancel()
            raise
        except Exception as exc:  # keep waiters from hanging on a timer bug
            error = exc
        if self._groups.get(when) is group:
            del self._groups[when]
        for waiter in group.waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    async def _cross(self, when: float) -> None:
        """Return as soon as possible once the wall clock has reached ``when``."""
        while True:
            remaining = when - self._wall()
            if remaining <= 0:
                return
            if not self._spin:
                await self._clock.sleep(min(remaining, self._max_nap))
            elif remaining > self._lead:
                await self._clock.sleep(min(remaining - self._lead, self._max_nap))
            else:
                # Busy-wait the last few milliseconds; give up after about twice what was left
                # (the wall clock was stepped back) and go round again.
                give_up = time.perf_counter() + remaining + self._lead
                while self._wall() < when and time.perf_counter() < give_up:
                    pass

    def _wall(self) -> float:
        return self._clock.now().timestamp()
