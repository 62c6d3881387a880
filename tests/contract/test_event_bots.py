"""``summon.services.event_bots``: one bot per deduplication key, shared by the refs that want it,
re-timed when the meeting moves, released when the last ref lets go — also under races. Runs on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import pytest

from summon.clock import FakeClock
from summon.domain.bots import BotFilter
from summon.domain.calendars import MeetingAlreadyEnded
from summon.domain.errors import FieldInvalid
from summon.domain.fleet import Agent
from summon.domain.lifecycle import Status
from summon.services import bots as bot_service
from summon.services import event_bots
from summon.services.context import Context
from summon.services.keys import ensure_workspace
from tests.conftest import START, register_agent

ZOOM = "https://zoom.us/j/123456789"
CONFIG = {
    "bot_name": "Calendar Notes",
    "metadata": {"source": "calendar"},
    "automatic_leave": {"waiting_room_timeout": 60},
}


@dataclass(frozen=True)
class Meeting:
    """An occurrence as ``attach_bot`` reads it: when, and the link."""

    start: datetime
    end: datetime
    meeting_url: str | None = ZOOM


def meeting(hours: float = 2, url: str | None = ZOOM) -> Meeting:
    start = START + timedelta(hours=hours)
    return Meeting(start, start + timedelta(minutes=30), url)


@pytest.fixture
async def ws(ctx: Context) -> UUID:
    return (await ensure_workspace(ctx, "acme")).id


async def bots_of(ctx: Context, ws: UUID) -> list:  # type: ignore[type-arg]
    return (await ctx.store.list_bots(ws, BotFilter(), 0, 100))[1]


async def test_attach_creates_one_bot_shared_by_refs_and_released_by_the_last(
    ctx: Context, ws: UUID
) -> None:
    m = meeting()
    first = await event_bots.attach_bot(
        ctx, ws, ref="calendar_event:a", dedup_key="k", occurrence=m, bot_config=CONFIG
    )
    bot = await ctx.store.get_bot(ws, first)
    assert bot is not None and bot.state is Status.SCHEDULED and bot.join_at == m.start
    assert bot.bot_name == "Calendar Notes" and bot.metadata == {"source": "calendar"}
    assert bot.config["automatic_leave"] == {"waiting_room_timeout": 60}
    assert bot.meeting_url["meeting_id"] == "123456789"

    again = await event_bots.attach_bot(
        ctx, ws, ref="calendar_event:a", dedup_key="k", occurrence=m, bot_config=CONFIG
    )
    second = await event_bots.attach_bot(
        ctx, ws, ref="mailbox:x:uid", dedup_key="k", occurrence=m, bot_config={}
    )
    assert again == second == first and len(await bots_of(ctx, ws)) == 1
    assert await event_bots.refs_of_bot(ctx, ws, first) == ["calendar_event:a", "mailbox:x:uid"]

    await event_bots.detach_bot(ctx, ws, ref="calendar_event:a")
    assert await ctx.store.get_bot(ws, first) is not None  # the mailbox still wants it
    await event_bots.detach_bot(ctx, ws, ref="mailbox:x:uid")
    assert await ctx.store.get_bot(ws, first) is None
    assert "bot.deleted" in [m.event_type for m in await ctx.store.pending_messages(100)]
    await event_bots.detach_bot(ctx, ws, ref="mailbox:x:uid")  # nothing left: no error


async def test_a_moved_meeting_retimes_its_bot(ctx: Context, ws: UUID) -> None:
    bot_id = await event_bots.attach_bot(
        ctx, ws, ref="r", dedup_key="k", occurrence=meeting(2), bot_config={}
    )
    moved = meeting(5)
    assert (
        await event_bots.attach_bot(
            ctx, ws, ref="r", dedup_key="k", occurrence=moved, bot_config={}
        )
        == bot_id
    )
    bot = await ctx.store.get_bot(ws, bot_id)
    assert bot is not None and bot.join_at == moved.start and bot.state is Status.SCHEDULED

    # The key changes with the start (the default scheme): the bot moves along with its ref.
    later = meeting(7)
    assert (
        await event_bots.attach_bot(
            ctx, ws, ref="r", dedup_key="k2", occurrence=later, bot_config={}
        )
        == bot_id
    )
    assert (await ctx.store.get_bot(ws, bot_id)).join_at == later.start  # type: ignore[union-attr]
    assert await ctx.store.get_event_bot(ws, "k") is None
    assert len(await bots_of(ctx, ws)) == 1


async def test_a_shared_key_stays_when_one_ref_moves_away(ctx: Context, ws: UUID) -> None:
    m = meeting(2)
    shared = await event_bots.attach_bot(
        ctx, ws, ref="alice", dedup_key="k", occurrence=m, bot_config={}
    )
    await event_bots.attach_bot(ctx, ws, ref="bob", dedup_key="k", occurrence=m, bot_config={})
    own = await event_bots.attach_bot(
        ctx, ws, ref="bob", dedup_key="k-later", occurrence=meeting(4), bot_config={}
    )
    assert own != shared
    assert (await ctx.store.get_bot(ws, shared)).join_at == m.start  # type: ignore[union-attr]
    assert await event_bots.refs_of_bot(ctx, ws, shared) == ["alice"]
    assert await event_bots.refs_of_bot(ctx, ws, own) == ["bob"]


async def test_a_changed_link_updates_the_bot(ctx: Context, ws: UUID) -> None:
    bot_id = await event_bots.attach_bot(
        ctx, ws, ref="r", dedup_key="k", occurrence=meeting(), bot_config={}
    )
    relinked = meeting(url="https://zoom.us/j/987654321?pwd=secret")
    await event_bots.attach_bot(ctx, ws, ref="r", dedup_key="k", occurrence=relinked, bot_config={})
    bot = await ctx.store.get_bot(ws, bot_id)
    assert bot is not None and bot.meeting_url["meeting_id"] == "987654321"
    assert bot.meeting_url["meeting_password"] == "secret"


async def test_concurrent_attaches_of_one_key_make_one_bot(ctx: Context, ws: UUID) -> None:
    m = meeting()
    ids = await asyncio.gather(
        *(
            event_bots.attach_bot(
                ctx, ws, ref=f"r{i}", dedup_key="same", occurrence=m, bot_config={}
            )
            for i in range(10)
        )
    )
    assert len(set(ids)) == 1 and len(await bots_of(ctx, ws)) == 1
    assert await event_bots.refs_of_bot(ctx, ws, ids[0]) == sorted(f"r{i}" for i in range(10))
    # And concurrent detaches release it exactly once.
    await asyncio.gather(*(event_bots.detach_bot(ctx, ws, ref=f"r{i}") for i in range(10)))
    assert await bots_of(ctx, ws) == []
    deleted = [m for m in await ctx.store.pending_messages(100) if m.event_type == "bot.deleted"]
    assert len(deleted) == 1


async def test_a_bot_deleted_elsewhere_is_replaced_on_attach(ctx: Context, ws: UUID) -> None:
    first = await event_bots.attach_bot(
        ctx, ws, ref="r", dedup_key="k", occurrence=meeting(), bot_config={}
    )
    await bot_service.delete_bot(ctx, ws, first)
    second = await event_bots.attach_bot(
        ctx, ws, ref="r", dedup_key="k", occurrence=meeting(), bot_config={}
    )
    assert second != first and await ctx.store.get_bot(ws, second) is not None


async def test_a_dead_reservation_is_taken_over(ctx: Context, clock: FakeClock, ws: UUID) -> None:
    await ctx.store.reserve_event_bot(ws, "k", uuid4(), clock.now(), clock.now())
    clock.advance(seconds=61)
    bot_id = await event_bots.attach_bot(
        ctx, ws, ref="r", dedup_key="k", occurrence=meeting(), bot_config={}
    )
    assert await ctx.store.get_bot(ws, bot_id) is not None


async def test_detach_cancels_a_staged_bot_and_tells_one_in_a_call_to_leave(
    ctx: Context, ws: UUID, warm_agent: Agent
) -> None:
    staged_id = await event_bots.attach_bot(
        ctx, ws, ref="a", dedup_key="a", occurrence=meeting(), bot_config={}
    )
    calling_id = await event_bots.attach_bot(
        ctx, ws, ref="b", dedup_key="b", occurrence=meeting(), bot_config={}
    )
    staged = await ctx.store.get_bot(ws, staged_id)
    assert staged is not None
    await bot_service.change_status(ctx, staged, Status.STAGED, agent_id=warm_agent.id)
    calling = await ctx.store.get_bot(ws, calling_id)
    assert calling is not None
    calling = await bot_service.change_status(ctx, calling, Status.STAGED, agent_id=warm_agent.id)
    await bot_service.change_status(ctx, calling, Status.JOINING_CALL)

    await event_bots.detach_bot(ctx, ws, ref="a")
    await event_bots.detach_bot(ctx, ws, ref="b")
    done = await ctx.store.get_bot(ws, staged_id)
    assert done is not None and done.state is Status.DONE
    assert done.status_changes[-1].sub_code == "bot_removed_before_join"
    commands = await ctx.store.take_commands(warm_agent.id, ctx.clock.now(), 10)
    assert [(c.bot_id, c.name) for c in commands if c.bot_id == calling_id] == [
        (calling_id, "leave")
    ]


async def test_refusals(ctx: Context, ws: UUID, warm_agent: Agent) -> None:
    with pytest.raises(FieldInvalid) as no_link:
        await event_bots.attach_bot(
            ctx, ws, ref="r", dedup_key="k", occurrence=meeting(url=None), bot_config={}
        )
    assert no_link.value.field == "bot_config.meeting_url"
    over = Meeting(START - timedelta(hours=2), START - timedelta(hours=1))
    with pytest.raises(MeetingAlreadyEnded):
        await event_bots.attach_bot(ctx, ws, ref="r", dedup_key="k", occurrence=over, bot_config={})
    with pytest.raises(ValueError):
        await event_bots.attach_bot(
            ctx, ws, ref="r" * 1001, dedup_key="k", occurrence=meeting(), bot_config={}
        )
    assert await bots_of(ctx, ws) == []
    assert await ctx.store.get_event_bot(ws, "k") is None  # no reservation left behind

    # A meeting in progress gets a bot that joins at once (ad-hoc, a warm slot).
    running = Meeting(START - timedelta(minutes=5), START + timedelta(minutes=25))
    bot_id = await event_bots.attach_bot(
        ctx, ws, ref="r", dedup_key="k", occurrence=running, bot_config={}
    )
    bot = await ctx.store.get_bot(ws, bot_id)
    assert bot is not None and bot.join_at is None and bot.state is Status.READY

    # A link in bot_config wins over the occurrence's; a very long key is stored hashed.
    other = await event_bots.attach_bot(
        ctx,
        ws,
        ref="s",
        dedup_key="x" * 5000,
        occurrence=meeting(url=None),
        bot_config={"meeting_url": "https://meet.google.com/abc-defg-hij"},
    )
    assert (await ctx.store.get_bot(ws, other)).platform == "google_meet"  # type: ignore[union-attr]
    assert (await ctx.store.event_bot_key_of(ws, "s") or "").startswith("sha256:")


async def test_no_warm_slot_fails_cleanly(ctx: Context) -> None:
    # The ad-hoc path above needs a live agent; without one, creating fails cleanly (507) and
    # leaves no reservation behind.
    ws = (await ensure_workspace(ctx, "lonely")).id
    running = Meeting(START - timedelta(minutes=5), START + timedelta(minutes=25))
    from summon.domain.errors import AdhocPoolExhausted

    with pytest.raises(AdhocPoolExhausted):
        await event_bots.attach_bot(
            ctx, ws, ref="r", dedup_key="k", occurrence=running, bot_config={}
        )
    assert await ctx.store.get_event_bot(ws, "k") is None
    await register_agent(ctx)
    assert await event_bots.attach_bot(
        ctx, ws, ref="r", dedup_key="k", occurrence=running, bot_config={}
    )
