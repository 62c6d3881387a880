"""Bots that events want: one bot per deduplication key per workspace, held by *refs*.

Calendar events and e-mailed invitations both end in "a bot should join this occurrence".
Several of them may mean the same meeting (two users' calendars, an invite and a calendar),
so a bot belongs to a **deduplication key**, and each event that wants it holds the key under
an opaque **ref** (``"calendar_event:<uuid>"``, ``"mailbox:<uuid>:<occurrence key>"``). The
bot lives while some ref holds its key.

Concurrency: two attaches of the same key at once must end with one bot. A key is *reserved*
before its bot is created (a row with the attach's token and no bot yet, unique per key), so
the loser waits for the winner's bot instead of creating its own — a second bot would already
be joining meetings and sending webhooks. A reservation whose creator died is taken over after
:data:`CLAIM_TIMEOUT`. Every link between a ref and a key is written only after checking, in
the same transaction, that the key still has the bot the caller saw.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from summon.domain.bots import Bot, BotChanges, NewBot, is_scheduled
from summon.domain.calendars import MeetingAlreadyEnded, MeetingTime, meeting_link, parse_link
from summon.domain.errors import (
    BotAlreadyDispatched,
    CannotCommandCompletedBot,
    Conflict,
    FieldInvalid,
    NotFound,
    UpdateBotFailed,
)
from summon.domain.lifecycle import FINISHED, Status
from summon.services import bots as bot_service
from summon.services.context import Context

if TYPE_CHECKING:
    from summon.domain.icalendar import Occurrence

log = logging.getLogger(__name__)

#: A reservation (key claimed, bot not created yet) older than this belongs to a dead attach.
CLAIM_TIMEOUT = timedelta(seconds=60)
#: How many times an attach re-reads after losing a race before it gives up (409).
ATTACH_ROUNDS = 200
#: How long an attach waits between looks at a key another attach is creating a bot for.
WAIT_S = 0.02
#: Keys and refs are stored in columns this long (bytes); longer keys are hashed.
MAX_STORED = 1000
DEFAULT_BOT_NAME = "Meeting Notetaker"
NO_LINK = "The event has no meeting link; give bot_config.meeting_url."


def stored_key(dedup_key: str) -> str:
    """The key as stored: itself, or a digest when it is longer than a column holds."""
    if len(dedup_key.encode()) <= MAX_STORED:
        return dedup_key
    return "sha256:" + hashlib.sha256(dedup_key.encode()).hexdigest()


async def attach_bot(
    ctx: Context,
    workspace_id: UUID,
    *,
    ref: str,
    dedup_key: str,
    occurrence: Occurrence | MeetingTime,
    bot_config: Mapping[str, Any],
) -> UUID:
    """Make sure a bot joins ``occurrence`` on behalf of ``ref``; returns the bot's id.

    One bot per ``dedup_key`` per workspace: an existing bot for the key is reused (its
    ``join_at`` re-timed if it is still ``scheduled`` and the start moved; its meeting link
    updated if the link changed); otherwise a bot is created from ``bot_config`` with the
    occurrence's meeting link (unless ``bot_config`` has a ``meeting_url``) and ``join_at`` =
    the occurrence's start (at once if it already started), through
    :func:`summon.services.bots.create_bot`. A ref that held another key moves to this one:
    when ``ref`` was the old key's only holder and the old bot is still ``scheduled``, the bot
    moves with it and is re-timed (a moved meeting keeps its bot); otherwise the old key's bot
    is released as by :func:`detach_bot`.

    ``bot_config`` is a Create Bot body in the form the API stores it
    (``summon.api.bot_config.BotCreate(...).stored_config()`` plus ``metadata``; callers
    validate and normalise it — ``summon.api.calendars.normalise_bot_config`` does).

    Raises what creating or re-timing a bot raises (``FieldInvalid``, ``AdhocPoolExhausted``,
    ``ScheduledCapacityExhausted``), :class:`~summon.domain.calendars.MeetingAlreadyEnded` for
    an occurrence that is over, ``ValueError`` for a ref longer than 1000 bytes, and
    ``Conflict`` if the key kept changing under it.
    """
    if len(ref.encode()) > MAX_STORED:
        raise ValueError(f"ref longer than {MAX_STORED} bytes")
    key = stored_key(dedup_key)
    meeting_url = str(bot_config.get("meeting_url") or "") or meeting_link(occurrence.meeting_url)
    if not meeting_url:
        raise FieldInvalid("bot_config.meeting_url", NO_LINK)
    store = ctx.store
    token = uuid4()
    for _ in range(ATTACH_ROUNDS):
        now = ctx.clock.now()
        if occurrence.end > occurrence.start and occurrence.end <= now:
            raise MeetingAlreadyEnded("The meeting has already ended.")
        join_at = occurrence.start if occurrence.start > now else None
        held = await store.get_event_bot(workspace_id, key)
        if held is not None and held.bot_id is not None:
            bot = await store.get_bot(workspace_id, held.bot_id)
            if bot is None:  # deleted elsewhere: this key needs a new one
                await store.replace_event_bot(workspace_id, key, held.bot_id, token, now)
                continue
            linked, previous = await store.link_event_bot_ref(workspace_id, ref, key, bot.id, now)
            if not linked:
                continue
            if previous is not None:
                await _release_key(ctx, workspace_id, previous)
            await _follow(ctx, bot, join_at, meeting_url)
            return bot.id
        if held is None:
            moved = await _move(ctx, workspace_id, ref, key, join_at, meeting_url, now)
            if moved is not None:
                return moved
        reserved = await store.reserve_event_bot(workspace_id, key, token, now, now - CLAIM_TIMEOUT)
        if reserved.bot_id is not None:
            continue  # someone finished creating it: link to theirs
        if reserved.claim != token:
            await asyncio.sleep(WAIT_S)  # someone is creating it right now
            continue
        try:
            bot = await bot_service.create_bot(
                ctx, workspace_id, _new_bot(bot_config, meeting_url, join_at)
            )
        except BaseException:
            await store.abandon_event_bot(workspace_id, key, token)
            raise
        bound, previous = await store.bind_event_bot(
            workspace_id, key, token, bot.id, ref, ctx.clock.now()
        )
        if not bound:  # our reservation was taken over: ours must not join too
            await _remove_bot(ctx, workspace_id, bot.id)
            continue
        if previous is not None:
            await _release_key(ctx, workspace_id, previous)
        return bot.id
    raise Conflict("The event's bot kept changing while it was being scheduled; retry.")


async def detach_bot(ctx: Context, workspace_id: UUID, *, ref: str) -> None:
    """``ref`` no longer wants a bot. When no other ref holds its key, the bot is deleted if
    still ``scheduled``, cancelled if staged but not joined, or told to leave if joining or in
    the call. Never raises for a bot already gone or finished."""
    bot_id = await ctx.store.unlink_event_bot_ref(workspace_id, ref)
    if bot_id is not None:
        await _remove_bot(ctx, workspace_id, bot_id)


async def refs_of_bot(ctx: Context, workspace_id: UUID, bot_id: UUID) -> list[str]:
    """The refs whose key this bot serves, sorted (a bot's ``calendar_meetings``)."""
    return await ctx.store.refs_of_event_bot(workspace_id, bot_id)


# -- the steps ------------------------------------------------------------------------------------
def _new_bot(bot_config: Mapping[str, Any], meeting_url: str, join_at: datetime | None) -> NewBot:
    config = {
        k: v for k, v in bot_config.items() if k not in ("meeting_url", "join_at", "metadata")
    }
    bot_name = str(config.get("bot_name") or DEFAULT_BOT_NAME)
    config["bot_name"] = bot_name
    return NewBot(
        meeting_url=meeting_url,
        bot_name=bot_name,
        join_at=join_at,
        config=config,
        metadata=dict(bot_config.get("metadata") or {}),
    )


async def _follow(ctx: Context, bot: Bot, join_at: datetime | None, meeting_url: str) -> bool:
    """Re-time a still-``scheduled`` bot to ``join_at`` and give it the new link if the link
    changed. False when the bot is past ``scheduled`` (it can no longer follow)."""
    if bot.state is not Status.SCHEDULED:
        return join_at is None or bot.join_at == join_at
    sent: set[str] = set()
    if join_at is not None and bot.join_at != join_at:
        sent.add("join_at")
    parsed = parse_link(meeting_url)
    if parsed is not None and parsed.to_dict() != bot.meeting_url:
        sent.add("meeting_url")
    if not sent:
        return True
    changes = BotChanges(sent=frozenset(sent), join_at=join_at, meeting_url=meeting_url)
    try:
        await bot_service.update_bot(ctx, bot.workspace_id, bot.id, changes)
    except (UpdateBotFailed, NotFound):
        return False
    return True


async def _move(
    ctx: Context,
    workspace_id: UUID,
    ref: str,
    key: str,
    join_at: datetime | None,
    meeting_url: str,
    now: datetime,
) -> UUID | None:
    """The meeting of ``ref`` moved (its key changed): take its bot along if nobody else holds
    the old key and the bot can still be re-timed. The bot id, or None if it could not."""
    store = ctx.store
    current = await store.event_bot_key_of(workspace_id, ref)
    if current is None or current == key or join_at is None:
        return None
    old = await store.get_event_bot(workspace_id, current)
    if old is None or old.bot_id is None:
        return None
    bot = await store.get_bot(workspace_id, old.bot_id)
    if bot is None or bot.state is not Status.SCHEDULED:
        return None
    if not is_scheduled(join_at, now, ctx.settings.scheduled_threshold_s):
        return None  # too close to re-time a reserved bot: a fresh ad-hoc one serves better
    moved = await store.move_event_bot(workspace_id, ref, current, key, now)
    if moved is None:
        return None
    if moved == bot.id and await _follow(ctx, bot, join_at, meeting_url):
        return moved
    # It was dispatched meanwhile: it serves the old time, not this one. Let it go.
    await detach_bot(ctx, workspace_id, ref=ref)
    return None


async def _release_key(ctx: Context, workspace_id: UUID, key: str) -> None:
    bot_id = await ctx.store.release_event_bot_key(workspace_id, key)
    if bot_id is not None:
        await _remove_bot(ctx, workspace_id, bot_id)


async def _remove_bot(ctx: Context, workspace_id: UUID, bot_id: UUID) -> None:
    """Delete a ``scheduled`` bot, cancel one not yet joined, tell one in a call to leave."""
    for _ in range(bot_service.FENCE_RETRIES):
        bot = await ctx.store.get_bot(workspace_id, bot_id)
        if bot is None or bot.state in FINISHED:
            return
        try:
            if bot.state is Status.SCHEDULED:
                await bot_service.delete_bot(ctx, workspace_id, bot_id)
            else:
                await bot_service.leave_call(ctx, workspace_id, bot_id)
        except (NotFound, CannotCommandCompletedBot):
            return
        except (BotAlreadyDispatched, Conflict):
            continue
        return
    log.warning("bot %s kept changing while it was being removed", bot_id)
