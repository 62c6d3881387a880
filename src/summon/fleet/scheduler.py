"""The scheduler: claims the bots that are due for staging and gives them to this process's
fleet agent; recovers bots whose agent is gone.

It holds no schedule in memory: it asks the database for the next ``stage_at`` (an index seek),
sleeps until then or until a change wakes it (``signals`` "schedule"; a poll bounds the wait for
changes made on other nodes), and claims what is due with a lease, so several nodes can run it
against one PostgreSQL. The cost of a tick is proportional to the bots due, not to the bots
stored. The precise join happens later, inside the runtime that holds the staged bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import replace
from datetime import datetime

from summon.domain.bots import Bot
from summon.domain.errors import StaleVersion
from summon.domain.lifecycle import IllegalTransition, Status, SubCode
from summon.domain.scheduling import AGENT_TIMEOUT, CLAIM_LEASE, Lateness, plan_join
from summon.fleet.agent import FleetAgent
from summon.services import bots as bot_service
from summon.services.context import Context

log = logging.getLogger(__name__)

POLL_S = 1.0
RECOVER_EVERY_S = 5.0
CLAIM_BATCH = 500
#: States of bots that live in a runtime (or are about to): lost with their agent.
HOSTED_STATES = (
    "ready", "staged", "joining_call", "in_waiting_room", "in_call_not_recording",
    "recording_permission_allowed", "recording_permission_denied", "in_call_recording",
    "call_ended", "recording_done",
)


class Scheduler:
    def __init__(self, ctx: Context, agent: FleetAgent) -> None:
        self.ctx = ctx
        self.agent = agent
        self._task: asyncio.Task[None] | None = None
        self._last_recovery = float("-inf")

    async def start(self) -> None:
        await self.recover()
        self._task = asyncio.create_task(self._run(), name="scheduler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                wait = await self.tick()
            except Exception:
                log.exception("scheduler tick failed")
                wait = POLL_S
            await self.ctx.signals.wait("schedule", wait)

    async def tick(self) -> float:
        """Claim and stage what is due; recover orphans now and then. Returns how long to sleep."""
        clock = self.ctx.clock
        if clock.monotonic() - self._last_recovery >= RECOVER_EVERY_S:
            await self.recover()
        now = clock.now()
        room = self.agent.room()
        if room > 0:
            due = await self.ctx.store.claim_due_bots(self.agent.id, now, now + CLAIM_LEASE, min(room, CLAIM_BATCH))
            await asyncio.gather(*(self._stage(bot, now) for bot in due))
            if len(due) == min(room, CLAIM_BATCH):
                return 0.0  # more may be due
        else:
            return POLL_S
        next_at = await self.ctx.store.next_stage_at()
        if next_at is None:
            return POLL_S
        # Never spin: a due bot leased by another node shows up here until that node stages it.
        return min(POLL_S, max((next_at - clock.now()).total_seconds(), 0.05))

    async def _stage(self, bot: Bot, now: datetime) -> None:
        plan = plan_join(bot.join_at, now, self.ctx.settings.late_join_grace_s)
        if plan.lateness is Lateness.MISSED:
            await bot_service.fail_bot(self.ctx, bot, SubCode.JOIN_AT_MISSED, plan.message)
            return
        if not await self.agent.host(bot, report_staged=True):
            await bot_service.fail_bot(self.ctx, bot, SubCode.NO_BOT_SLOT_AVAILABLE, bot_service.NO_SLOT_MESSAGE)

    async def recover(self) -> None:
        """Bots whose agent stopped or went silent: re-stage those that have not joined (late
        joins within the grace), fail the rest (their meeting connection died with the agent)."""
        self._last_recovery = self.ctx.clock.monotonic()
        now = self.ctx.clock.now()
        orphans = await self.ctx.store.orphaned_bots(now - AGENT_TIMEOUT, HOSTED_STATES, 1000)
        for bot in orphans:
            try:
                await self._recover_one(bot, now)
            except (StaleVersion, IllegalTransition):
                continue  # another node got there first

    async def _recover_one(self, bot: Bot, now: datetime) -> None:
        if bot.state in (Status.READY, Status.STAGED):
            plan = plan_join(bot.join_at or bot.created_at, now, self.ctx.settings.late_join_grace_s)
            if plan.lateness is Lateness.MISSED:
                await bot_service.fail_bot(self.ctx, bot, SubCode.JOIN_AT_MISSED, plan.message)
                return
            if self.agent.room() <= 0:
                return
            claimed = replace(bot, agent_id=self.agent.id, lease_until=now + CLAIM_LEASE, version=bot.version + 1,
                              updated_at=now)
            await self.ctx.store.save_bot(claimed, bot.version)
            log.info("bot %s: taking over from a lost agent (%s)", bot.id, bot.state.value)
            report_staged = bot.state is Status.READY and bot.join_at is not None and bot.join_at > now
            if not await self.agent.host(claimed, report_staged=report_staged):
                await bot_service.fail_bot(
                    self.ctx, claimed, SubCode.NO_BOT_SLOT_AVAILABLE, bot_service.NO_SLOT_MESSAGE
                )
            return
        await bot_service.change_status(
            self.ctx, bot, Status.FATAL, SubCode.HEARTBEAT_TIMEOUT,
            "the agent running this bot stopped responding; its call was lost",
        )
