"""The periodic pass over invitations: occurrences of recurring invites that entered the
window get their bots, failed attaches are retried (``extend_recurring_invites``).

It looks only at invites whose ``next_check_at`` is due (an index seek), every
:data:`PERIOD_S` seconds; several nodes may run it (attaching is idempotent, saves are fenced).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from summon.services import mailboxes as service
from summon.services.context import Context

log = logging.getLogger(__name__)

PERIOD_S = 60.0


class InviteRefresher:
    def __init__(self, ctx: Context, period_s: float = PERIOD_S) -> None:
        self.ctx = ctx
        self.period_s = period_s
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="invite-refresher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await service.extend_recurring_invites(self.ctx)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the invite refresh pass failed; retrying next period")
            await self.ctx.clock.sleep(self.period_s)
