"""Bot use cases: create, read, list, update, delete, leave.

Each function is one use case and one (fenced) store transaction at its heart. The API, the CLI,
calendars and mail all come through here.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from datetime import datetime
from uuid import UUID, uuid4

from summon.domain.bots import (
    Bot,
    BotChanges,
    BotFilter,
    NewBot,
    is_scheduled,
    join_at_in_past,
)
from summon.domain.errors import (
    BotAlreadyDispatched,
    CannotCommandCompletedBot,
    CannotCommandUnstartedBot,
    Conflict,
    FieldInvalid,
    NotFound,
    StaleVersion,
    UpdateBotFailed,
)
from summon.domain.events import bot_deleted_event, bot_status_event
from summon.domain.lifecycle import (
    FINISHED,
    IN_MEETING,
    IllegalTransition,
    NOT_JOINED,
    Status,
    StatusChange,
    SubCode,
    check_transition,
    initial_status,
)
from summon.domain.fleet import Admission, BotCommand
from summon.domain.meeting_urls import InvalidMeetingUrl, MeetingUrl, parse_meeting_url
from summon.domain.scheduling import AGENT_TIMEOUT, stage_at, window_end, window_start
from summon.services.context import Context

log = logging.getLogger(__name__)

MEETING_URL_INVALID = "The meeting_url is malformed, or for an unsupported platform."
JOIN_AT_PAST = "join_at cannot be in the past."
#: How often a use case re-reads and retries when another actor moved the bot first.
FENCE_RETRIES = 5


def parse_meeting_url_field(text: str, field: str = "meeting_url") -> MeetingUrl:
    try:
        return parse_meeting_url(text)
    except InvalidMeetingUrl:
        raise FieldInvalid(field, MEETING_URL_INVALID) from None


async def create_bot(ctx: Context, workspace_id: UUID, new: NewBot) -> Bot:
    """Create a bot: *scheduled* when ``join_at`` is far enough ahead, else ad-hoc (``ready``)."""
    now = ctx.clock.now()
    meeting = parse_meeting_url_field(new.meeting_url)
    if join_at_in_past(new.join_at, now):
        raise FieldInvalid("join_at", JOIN_AT_PAST)
    scheduled = is_scheduled(new.join_at, now, ctx.settings.scheduled_threshold_s)
    status = initial_status(scheduled)
    change = StatusChange(status, None, None, now)
    bot_id = uuid4()
    bot = Bot(
        id=bot_id,
        workspace_id=workspace_id,
        meeting_url=meeting.to_dict(),
        meeting_url_raw=new.meeting_url,
        meeting_key=meeting.key,
        platform=meeting.platform,
        bot_name=new.bot_name,
        join_at=new.join_at,
        scheduled=scheduled,
        state=status,
        version=1,
        config=dict(new.config),
        metadata=dict(new.metadata),
        created_at=now,
        updated_at=now,
        status_changes=[change],
    )
    if scheduled:
        assert new.join_at is not None
        bot.stage_at = stage_at(bot_id, new.join_at, ctx.settings.stage_lead_s)
        bot.window_end = window_end(new.join_at, bot.config)
    bot = await ctx.store.insert_bot(bot, [bot_status_event(bot, change)], admission(ctx, bot, now, reserve=True))
    ctx.signals.notify("fleet" if not scheduled else "schedule")
    ctx.signals.notify("outbox")
    return bot


def admission(ctx: Context, bot: Bot, now: datetime, *, reserve: bool) -> Admission | None:
    """What booking ``bot`` requires: a warm slot for an ad-hoc bot (reserved for it when
    ``reserve``), a window within ``SUMMON_MAX_BOTS`` for a scheduled one."""
    settings = ctx.settings
    if not bot.scheduled:
        return Admission(adhoc_live_since=now - AGENT_TIMEOUT, adhoc_reserve=reserve)
    if settings.max_bots is None or bot.join_at is None or bot.window_end is None:
        return None
    return Admission(
        scheduled_limit=max(settings.max_bots - settings.pool_size, 0),
        window_start=window_start(bot.join_at, settings.stage_lead_s),
        window_end=bot.window_end,
        exclude_bot=bot.id,
    )


async def get_bot(ctx: Context, workspace_id: UUID, bot_id: UUID) -> Bot:
    bot = await ctx.store.get_bot(workspace_id, bot_id)
    if bot is None:
        raise NotFound("bot", bot_id)
    return bot


async def list_bots(
    ctx: Context, workspace_id: UUID, flt: BotFilter, offset: int, limit: int
) -> tuple[int, list[Bot]]:
    return await ctx.store.list_bots(workspace_id, flt, offset, limit)


async def update_bot(ctx: Context, workspace_id: UUID, bot_id: UUID, changes: BotChanges) -> Bot:
    """PATCH: only a bot still in ``scheduled`` may change; a new ``join_at`` follows the
    creation rules (not in the past; inside the threshold the bot becomes ad-hoc)."""
    meeting = (
        parse_meeting_url_field(changes.meeting_url)
        if "meeting_url" in changes.sent and changes.meeting_url is not None
        else None
    )
    for _ in range(FENCE_RETRIES):
        bot = await get_bot(ctx, workspace_id, bot_id)
        if bot.state is not Status.SCHEDULED:
            raise UpdateBotFailed(f"Bot is in state {bot.state.value}; only scheduled bots can be updated.")
        now = ctx.clock.now()
        updated = replace(bot, version=bot.version + 1, updated_at=now, config={**bot.config, **changes.config})
        if meeting is not None:
            updated.meeting_url, updated.meeting_url_raw = meeting.to_dict(), changes.meeting_url or ""
            updated.meeting_key, updated.platform = meeting.key, meeting.platform
        if "bot_name" in changes.sent and changes.bot_name is not None:
            updated.bot_name = changes.bot_name
        if "metadata" in changes.sent:
            updated.metadata = dict(changes.metadata or {})
        if "join_at" in changes.sent:
            if join_at_in_past(changes.join_at, now):
                raise FieldInvalid("join_at", JOIN_AT_PAST)
            updated.join_at = changes.join_at
            if changes.join_at is None or not is_scheduled(changes.join_at, now, ctx.settings.scheduled_threshold_s):
                # Too close now to be a scheduled bot: it becomes ad-hoc and needs a warm slot
                # (507 when none is free). It stays in `scheduled`, due for staging at once.
                updated.scheduled = False
                updated.stage_at, updated.window_end = now, None
            else:
                updated.scheduled = True
                updated.stage_at = stage_at(bot.id, changes.join_at, ctx.settings.stage_lead_s)
        if updated.scheduled and updated.join_at is not None:
            updated.window_end = window_end(updated.join_at, updated.config)
        updated.lease_until = None
        try:
            await ctx.store.save_bot(updated, bot.version, admission=admission(ctx, updated, now, reserve=False))
        except StaleVersion:
            continue
        ctx.signals.notify("schedule")
        return updated
    raise Conflict("The bot changed while it was being updated; retry.")


async def delete_bot(ctx: Context, workspace_id: UUID, bot_id: UUID) -> Bot:
    """DELETE: only in ``scheduled``; the bot is gone for good and ``bot.deleted`` is sent."""
    for _ in range(FENCE_RETRIES):
        bot = await get_bot(ctx, workspace_id, bot_id)
        if bot.state is not Status.SCHEDULED:
            raise BotAlreadyDispatched(
                f"Bot is in state {bot.state.value}; only scheduled bots can be deleted."
            )
        try:
            await ctx.store.delete_bot(bot, bot.version, [bot_deleted_event(bot, ctx.clock.now())])
        except StaleVersion:
            continue
        ctx.signals.notify("outbox")
        return bot
    raise Conflict("The bot changed while it was being deleted; retry.")


async def change_status(
    ctx: Context,
    bot: Bot,
    code: Status,
    sub_code: str | None = None,
    message: str | None = None,
    at: datetime | None = None,
    **fields: object,
) -> Bot:
    """Move ``bot`` (as read, at ``bot.version``) to ``code``: history row, outbox message and
    the new state in one fenced transaction. ``at`` is when it happened (a runtime's clock:
    the moment joining began), default now; ``fields`` are other bot fields changed with it.
    Raises ``IllegalTransition`` or ``StaleVersion``."""
    status = check_transition(bot.state, code, sub_code)
    now = ctx.clock.now()
    change = StatusChange(status, sub_code, message, at or now)
    updated = replace(
        bot,
        state=status,
        version=bot.version + 1,
        updated_at=now,
        status_changes=[*bot.status_changes, change],
        **fields,  # type: ignore[arg-type]
    )
    await ctx.store.save_bot(updated, bot.version, change, [bot_status_event(updated, change)])
    ctx.signals.notify("outbox")
    return updated


async def fail_bot(ctx: Context, bot: Bot, sub_code: str, message: str | None = None) -> None:
    """Move ``bot`` (as read) to ``fatal`` unless someone moved it first: a fencing conflict or a
    bot already finished means another actor decided, and their decision stands."""
    with contextlib.suppress(StaleVersion, IllegalTransition):
        await change_status(ctx, bot, Status.FATAL, sub_code, message)


#: Said when a bot had to fail because the fleet had nowhere to run it.
NO_SLOT_MESSAGE = "the fleet had no free bot slot"


async def leave_call(ctx: Context, workspace_id: UUID, bot_id: UUID) -> Bot:
    """Cancel a bot that has not joined (``done``/``bot_removed_before_join``, at once) or tell
    a bot in a meeting to leave (its runtime leaves and reports ``call_ended`` with
    ``bot_received_leave_call``)."""
    for _ in range(FENCE_RETRIES):
        bot = await get_bot(ctx, workspace_id, bot_id)
        if bot.state in FINISHED:
            raise CannotCommandCompletedBot(f"Bot is in state {bot.state.value}; it has already left.")
        if bot.state in IN_MEETING:
            await _queue_command(ctx, bot, "leave", {})
            return bot
        try:
            done = await change_status(ctx, bot, Status.DONE, SubCode.BOT_REMOVED_BEFORE_JOIN)
        except StaleVersion:
            continue
        if bot.agent_id is not None and bot.state is not Status.SCHEDULED:
            await _queue_command(ctx, bot, "leave", {})  # free its slot in the runtime now
        return done
    raise Conflict("The bot changed while it was being told to leave; retry.")


#: Commands a client may send to a bot in a meeting, by API name.
BOT_COMMANDS = frozenset({
    "send_chat_message", "output_audio", "stop_output_audio", "output_video", "stop_output_video",
    "start_recording", "stop_recording", "pause_recording", "resume_recording",
})


async def command_bot(ctx: Context, workspace_id: UUID, bot_id: UUID, name: str, args: dict[str, object]) -> Bot:
    """Deliver a command to the runtime of a bot in a meeting (fire and forget: its effects are
    reported as status changes and events)."""
    assert name in BOT_COMMANDS, name
    bot = await get_bot(ctx, workspace_id, bot_id)
    if bot.state in FINISHED:
        raise CannotCommandCompletedBot(f"Bot is in state {bot.state.value}; it has already left.")
    if bot.state not in IN_MEETING or bot.agent_id is None:
        raise CannotCommandUnstartedBot(f"Bot is in state {bot.state.value}; it is not in a call yet.")
    await _queue_command(ctx, bot, name, args)
    return bot


async def _queue_command(ctx: Context, bot: Bot, name: str, args: dict[str, object]) -> None:
    if bot.agent_id is None:
        return
    await ctx.store.queue_command(BotCommand(bot.id, bot.agent_id, name, dict(args), ctx.clock.now()))
    ctx.signals.notify("fleet")


async def describe_meeting_url(ctx: Context, text: str) -> tuple[MeetingUrl, bool]:
    """Parse a link for a client: the structured object and whether a live agent of this fleet
    has a driver for its platform."""
    meeting = parse_meeting_url_field(text, field="url")
    agents = await ctx.store.live_agents(ctx.clock.now() - AGENT_TIMEOUT)
    return meeting, any(meeting.platform in agent.platforms for agent in agents)
