"""The fleet agent: one per host process running bots.

It owns this host's bot slots: keeps ``SUMMON_POOL_SIZE`` warm free slots (runtime processes
started ahead of need), hands bots to runtimes, writes what runtimes report as fenced status
changes, takes the ad-hoc bots and commands addressed to it, heartbeats in the ``agents`` table,
and watches its runtimes: a runtime that exits fails its bots with ``bot_process_crashed``, one
that stops heartbeating is killed and its bots fail with ``heartbeat_timeout``. It stores the
recordings its runtimes report (with their webhooks, fenced like status changes) and, every
``SUMMON_MEDIA_EXPIRY_INTERVAL_S``, deletes media past its retention.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from summon.domain.bots import Bot
from summon.drivers import probe_platforms
from summon.domain.errors import StaleVersion
from summon.domain.fleet import Agent
from summon.domain.lifecycle import FINISHED, IllegalTransition, Status, SubCode
from summon.domain.scheduling import CLAIM_LEASE
from summon.domain.recordings import RecordingReport
from summon.fleet.runtimes import RuntimeProcess
from summon.services import bots as bot_service
from summon.services import recordings as recording_service
from summon.services.context import Context

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 2.0
#: A runtime silent for this long is taken to be hung (it heartbeats every second).
RUNTIME_SILENCE_S = 10.0
INTAKE_POLL_S = 0.5
#: How long a runtime gets, when the agent stops, for its bots to leave their calls.
STOP_TIMEOUT_S = 25.0
EventListener = Callable[[str, str, dict[str, Any], float], None]


@dataclass(slots=True)
class Hosted:
    """A bot this agent runs, with the latest version it wrote (its fencing token)."""

    bot: Bot
    runtime: RuntimeProcess
    report_staged: bool
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class FleetAgent:
    def __init__(self, ctx: Context, *, slots_per_runtime: int, pool_size: int, max_bots: int | None,
                 name: str | None = None, platform_slots: dict[str, int] | None = None) -> None:
        self.ctx = ctx
        self.id: UUID = uuid4()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.slots_per_runtime = max(1, slots_per_runtime)
        #: Slots per runtime for particular platforms (a heavy real-media driver may want one
        #: bot per process; the sandbox hundreds); others get ``slots_per_runtime``.
        self.platform_slots = {k: max(1, v) for k, v in (platform_slots or {}).items()}
        self.pool_size = pool_size
        self.max_bots = max_bots
        #: Told every meeting event a runtime reports (bot id, kind, data, unix time); they
        #: must return at once and never raise (the real-time relay queues and returns).
        self.listeners: list[EventListener] = []
        #: Told when a bot is no longer hosted here (finished, failed, or let go).
        self.released: list[Callable[[str], None]] = []
        self._runtimes: list[RuntimeProcess] = []
        self._hosted: dict[str, Hosted] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._stopping = False
        self._slots_changed = asyncio.Event()

    # -- capacity ------------------------------------------------------------------------------
    @property
    def capacity(self) -> int:
        return sum(r.capacity for r in self._runtimes)

    @property
    def free_slots(self) -> int:
        """Free slots in runtimes that are running or starting."""
        return sum(r.free for r in self._runtimes if self._usable(r))

    @property
    def hosted_count(self) -> int:
        return len(self._hosted)

    def room(self) -> int:
        """How many more bots this agent may take now (spawning runtimes as needed)."""
        if self._stopping:
            return 0
        if self.max_bots is None:
            return 1_000_000
        return max(0, self.max_bots - len(self._hosted))

    # -- life ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        now = self.ctx.clock.now()
        platforms = tuple(sorted(await asyncio.to_thread(probe_platforms)))
        await self.ctx.store.register_agent(Agent(self.id, self.name, platforms, now, now, 0, 0))
        await self._ensure_pool(wait=True)
        await self._beat()
        self._loops = [
            asyncio.create_task(self._heartbeat_loop(), name="agent-heartbeat"),
            asyncio.create_task(self._intake_loop(), name="agent-intake"),
            asyncio.create_task(self._watchdog_loop(), name="agent-watchdog"),
            asyncio.create_task(self._media_expiry_loop(), name="agent-media-expiry"),
        ]
        log.info("fleet agent %s started: %d runtime(s), %d free slots", self.name, len(self._runtimes), self.free_slots)

    async def stop(self) -> None:
        """Stop taking work, let runtimes leave their calls, and say so in the agents table.
        Bots still staged are picked up again by the next start (or another node)."""
        self._stopping = True
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(*(r.stop(timeout=STOP_TIMEOUT_S) for r in list(self._runtimes)), return_exceptions=True)
        # The runtimes' last reports (bots leaving their calls) are written before we go.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=10)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.ctx.store.stop_agents([self.id], self.ctx.clock.now())

    def _spawn_task(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- runtimes ------------------------------------------------------------------------------------
    def _new_runtime(self, capacity: int) -> RuntimeProcess:
        """Register a runtime of ``capacity`` slots at once (so every count sees it) and start
        it in the background; ``runtime.ready`` is set once it said hello (or failed)."""
        runtime = RuntimeProcess(capacity, self._on_message, self._on_exit, self.ctx.clock.monotonic)
        self._runtimes.append(runtime)
        self._spawn_task(self._boot(runtime))
        return runtime

    async def _boot(self, runtime: RuntimeProcess) -> None:
        try:
            await runtime.start()
        except OSError as exc:
            log.error("cannot start a runtime: %s", exc)
            runtime.failed = True
            runtime.ready.set()
            if runtime in self._runtimes:
                self._runtimes.remove(runtime)

    def _usable(self, runtime: RuntimeProcess) -> bool:
        return not runtime.exiting and not runtime.failed and (runtime.alive or not runtime.ready.is_set())

    def _may_add(self) -> int:
        """Slots we may still add by starting runtimes."""
        if self.max_bots is None:
            return self.slots_per_runtime
        return max(0, self.max_bots - self.capacity)

    async def _ensure_pool(self, wait: bool = False) -> None:
        """Keep at least ``pool_size`` free warm slots (within ``max_bots``)."""
        started = []
        while self.free_slots < self.pool_size and not self._stopping:
            capacity = min(self.slots_per_runtime, self._may_add())
            if capacity <= 0:
                break
            started.append(self._new_runtime(capacity))
        if wait:
            await asyncio.gather(*(r.ready.wait() for r in started))

    def _slots_for(self, platform: str) -> int:
        return self.platform_slots.get(platform, self.slots_per_runtime)

    def _pick_runtime(self, platform: str) -> RuntimeProcess | None:
        """A runtime with a free slot for ``platform``: one already hosting that platform (ready
        ones first, the busiest first so idle ones can be retired), else an empty one, which
        takes on the platform and its slot count; else a new one. None when ``max_bots``
        allows no more."""
        usable = [r for r in self._runtimes if self._usable(r)]
        same = [r for r in usable if r.platform == platform and r.free > 0]
        if same:
            return min(same, key=lambda r: (not r.ready.is_set(), r.free))
        empty = [r for r in usable if r.platform is None and not r.bots]
        if empty:
            runtime = min(empty, key=lambda r: not r.ready.is_set())
            wanted = self._slots_for(platform)
            runtime.capacity = min(wanted, runtime.capacity + self._may_add()) if self.max_bots else wanted
            runtime.platform = platform
            return runtime
        capacity = min(self._slots_for(platform), self._may_add())
        if capacity <= 0:
            return None
        runtime = self._new_runtime(capacity)
        runtime.platform = platform
        return runtime

    # -- hosting -------------------------------------------------------------------------------------
    async def host(self, bot: Bot, *, report_staged: bool) -> bool:
        """Give ``bot`` (claimed by this agent, at its current version) to a runtime. With
        ``report_staged`` its move to ``staged`` is recorded once the driver is ready."""
        key = str(bot.id)
        if key in self._hosted:
            return True
        runtime = self._pick_runtime(bot.platform)
        if runtime is None:
            log.error("no slot for bot %s (SUMMON_MAX_BOTS=%s reached)", bot.id, self.max_bots)
            return False
        # The slot is taken now, before any wait: concurrent hosts and the pool see it.
        hosted = self._hosted[key] = Hosted(bot, runtime, report_staged)
        runtime.bots.add(key)
        await runtime.ready.wait()
        if not runtime.alive:
            self._release(hosted)
            return await self.host(bot, report_staged=report_staged) if not self._stopping else False
        log.info("bot %s hosted by runtime %s", key, runtime.pid)
        runtime.send({"op": "stage", "bot": {
            "bot_id": key,
            "meeting_url": {**bot.meeting_url, "url": bot.meeting_url_raw},
            "bot_name": bot.bot_name,
            "config": bot.config,
            "join_at": bot.join_at.timestamp() if bot.join_at else None,
            "media_dir": str(self.ctx.settings.media_root() / key),
            "whisper_model": str(model) if (model := self.ctx.settings.whisper_model) else None,
        }})
        self._spawn_task(self._ensure_pool())
        return True

    def _on_message(self, runtime: RuntimeProcess, message: dict[str, Any]) -> None:
        op = message["op"]
        if op == "hello":
            self._publish_slots_soon()
            return
        if op == "heartbeat":
            return
        hosted = self._hosted.get(message.get("bot_id", ""))
        if hosted is None:
            return
        if op == "event":
            for listener in self.listeners:
                listener(message["bot_id"], message["kind"], message["data"], message["at"])
            return
        self._spawn_task(self._serially(hosted, message))

    async def _serially(self, hosted: Hosted, message: dict[str, Any]) -> None:
        # asyncio locks are fair and tasks start in creation order: one bot's reports are
        # written in the order the runtime sent them.
        async with hosted.lock:
            op = message["op"]
            if op == "staged":
                if hosted.report_staged:
                    await self._record(hosted, Status.STAGED, None, None, message.get("at"),
                                       stage_at=None)
            elif op == "status":
                await self._record(hosted, Status(message["code"]), message.get("sub_code"),
                                   message.get("message"), message.get("at"))
            elif op == "recording":
                await self._record_recording(hosted, message.get("recording") or {})
            elif op == "finished":
                self._release(hosted)
            elif op == "command_failed":
                log.warning("bot %s: command %s refused: %s", hosted.bot.id, message.get("name"), message.get("detail"))

    async def _record(self, hosted: Hosted, code: Status, sub_code: str | None, message: str | None,
                      at: float | None, **fields: Any) -> None:
        when = datetime.fromtimestamp(at, UTC) if at is not None else None
        for _ in range(5):
            try:
                hosted.bot = await bot_service.change_status(self.ctx, hosted.bot, code, sub_code, message, when, **fields)
                return
            except StaleVersion:
                fresh = await self.ctx.store.get_bot(None, hosted.bot.id)
                if fresh is None or fresh.agent_id != self.id or fresh.state in FINISHED:
                    # Someone else decided about this bot (deleted, cancelled, taken over).
                    log.info("bot %s changed elsewhere; this agent lets it go", hosted.bot.id)
                    self._let_go(hosted)
                    return
                hosted.bot = fresh
            except IllegalTransition as exc:
                log.error("bot %s: runtime reported %s", hosted.bot.id, exc)
                return
        log.error("bot %s: could not record %s after retries", hosted.bot.id, code)

    async def _record_recording(self, hosted: Hosted, report: dict[str, Any]) -> None:
        """Store the bot's recording and its webhooks, fenced like a status change. A problem
        here is logged: it never holds up the bot's lifecycle."""
        parsed = RecordingReport.from_message(report)
        for _ in range(5):
            try:
                hosted.bot = await recording_service.record_recording(self.ctx, hosted.bot, parsed)
                return
            except StaleVersion:
                fresh = await self.ctx.store.get_bot(None, hosted.bot.id)
                if fresh is None or fresh.agent_id != self.id:
                    log.info("bot %s changed elsewhere; its recording is not stored", hosted.bot.id)
                    return
                hosted.bot = fresh
            except Exception:
                log.exception("bot %s: storing the recording failed", hosted.bot.id)
                return
        log.error("bot %s: could not store the recording after retries", hosted.bot.id)

    def _let_go(self, hosted: Hosted) -> None:
        hosted.runtime.send({"op": "command", "bot_id": str(hosted.bot.id), "name": "leave", "args": {}})

    def hosted_bot(self, bot_id: str) -> Bot | None:
        """The bot as this agent last wrote it, while it is hosted here."""
        hosted = self._hosted.get(bot_id)
        return None if hosted is None else hosted.bot

    def _release(self, hosted: Hosted) -> None:
        key = str(hosted.bot.id)
        if self._hosted.pop(key, None) is not None:
            for callback in self.released:
                try:
                    callback(key)
                except Exception:
                    log.exception("bot %s: a release callback failed", key)
        runtime = hosted.runtime
        runtime.bots.discard(key)
        self._publish_slots_soon()
        if not runtime.bots and runtime.platform is not None:
            # Empty again: back in the warm pool, ready for any platform.
            runtime.platform = None
            runtime.capacity = self.slots_per_runtime if self.max_bots is None else min(
                self.slots_per_runtime, runtime.capacity + self._may_add())

    def _on_exit(self, runtime: RuntimeProcess, reason: str) -> None:
        if runtime in self._runtimes:
            self._runtimes.remove(runtime)
        self._publish_slots_soon()
        if self._stopping:
            return
        if not runtime.greeted:
            # Died before it could take any bot: the bots waiting for it are hosted elsewhere.
            self._spawn_task(self._ensure_pool())
            return
        sub_code = SubCode.HEARTBEAT_TIMEOUT if reason == "hung" else SubCode.BOT_PROCESS_CRASHED
        for key in list(runtime.bots):
            hosted = self._hosted.get(key)
            if hosted is not None:
                self._spawn_task(self._fail(hosted, sub_code, f"bot runtime process {runtime.pid} {reason}"))
        self._spawn_task(self._ensure_pool())

    async def _fail(self, hosted: Hosted, sub_code: str, message: str) -> None:
        async with hosted.lock:
            if hosted.bot.state not in FINISHED:
                await self._record(hosted, Status.FATAL, sub_code, message, None)
            self._release(hosted)

    # -- loops ---------------------------------------------------------------------------------------
    async def _beat(self) -> None:
        await self.ctx.store.heartbeat_agent(self.id, self.ctx.clock.now(), self.free_slots, self.capacity)

    def _publish_slots_soon(self) -> None:
        """Free slots changed (a runtime came up or went, a bot finished): tell the database
        now rather than at the next heartbeat, so ad-hoc admission sees the pool as it is."""
        self._slots_changed.set()

    async def _heartbeat_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._slots_changed.wait(), HEARTBEAT_EVERY_S)
            self._slots_changed.clear()
            try:
                await self._beat()
            except Exception:  # the database may be briefly unavailable; keep beating
                log.exception("agent heartbeat failed")
            await asyncio.sleep(0.05)  # at most 20 updates a second

    async def _intake_loop(self) -> None:
        """Ad-hoc bots reserved for this agent, and commands for bots it hosts."""
        while True:
            try:
                await self._take_work()
            except Exception:
                log.exception("agent intake failed")
            await self.ctx.signals.wait("fleet", INTAKE_POLL_S)

    async def _take_work(self) -> None:
        now = self.ctx.clock.now()
        room = min(self.room(), max(self.free_slots, 1) + 64)
        if room > 0:
            for bot in await self.ctx.store.take_assigned_bots(self.id, now + CLAIM_LEASE, room):
                report_staged = bot.join_at is not None and bot.join_at > now
                if not await self.host(bot, report_staged=report_staged):
                    await bot_service.fail_bot(
                        self.ctx, bot, SubCode.NO_BOT_SLOT_AVAILABLE, bot_service.NO_SLOT_MESSAGE
                    )
        for command in await self.ctx.store.take_commands(self.id, now, 200):
            hosted = self._hosted.get(str(command.bot_id))
            if hosted is not None:
                hosted.runtime.send({"op": "command", "bot_id": str(command.bot_id), "name": command.name,
                                     "args": command.args})

    async def _watchdog_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = self.ctx.clock.monotonic()
            for runtime in list(self._runtimes):
                if runtime.alive and not runtime.exiting and now - runtime.last_seen > RUNTIME_SILENCE_S:
                    log.error("runtime %s silent for %.0f s: killing it", runtime.pid, now - runtime.last_seen)
                    runtime.hung = True
                    runtime.kill()
            await self._retire_idle()

    async def _media_expiry_loop(self) -> None:
        """Recordings past their retention lose their media (every
        ``SUMMON_MEDIA_EXPIRY_INTERVAL_S``; fenced and idempotent, so agents may overlap)."""
        while True:
            try:
                await recording_service.expire_media(self.ctx, self.ctx.clock.now())
            except Exception:
                log.exception("expiring media failed")
            await asyncio.sleep(self.ctx.settings.media_expiry_interval_s)

    async def _retire_idle(self) -> None:
        """Stop runtimes nobody needs: idle, and the pool stays full without them."""
        for runtime in list(self._runtimes):
            if runtime.bots or runtime.exiting or not runtime.alive or not runtime.ready.is_set():
                continue
            if self.free_slots - runtime.free >= self.pool_size:
                self._spawn_task(runtime.stop())

