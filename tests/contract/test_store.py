"""One contract suite for every store adapter (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from uuid import uuid4

import pytest

from summon.domain.bots import BotFilter
from summon.domain.errors import StaleVersion
from summon.domain.events import bot_deleted_event, bot_status_event
from summon.domain.lifecycle import Status, StatusChange
from summon.domain.workspaces import ApiKey
from summon.store.sqlalchemy import SqlAlchemyStore
from tests import builders
from tests.conftest import START


async def test_ensure_workspace_is_idempotent(store: SqlAlchemyStore) -> None:
    first, created = await store.ensure_workspace(builders.workspace("acme"))
    again, created_again = await store.ensure_workspace(builders.workspace("acme"))
    assert created and not created_again
    assert again.id == first.id
    assert await store.count_workspaces() == 1
    assert (await store.workspace_by_name("acme")) == first
    assert await store.workspace_by_name("nope") is None


async def test_api_keys_round_trip_and_revoke(store: SqlAlchemyStore) -> None:
    ws, _ = await store.ensure_workspace(builders.workspace())
    key = ApiKey(uuid4(), ws.id, "a" * 64, "sk_abcdef", START)
    await store.add_api_key(key)
    found = await store.find_api_key("a" * 64)
    assert found is not None and found.workspace_id == ws.id and found.workspace_name == "acme"
    assert found.created_at == START and found.revoked_at is None
    assert await store.revoke_api_key(key.id, START + timedelta(seconds=1))
    assert not await store.revoke_api_key(key.id, START + timedelta(seconds=2))
    revoked = await store.find_api_key("a" * 64)
    assert revoked is not None and revoked.revoked_at == START + timedelta(seconds=1)
    assert [k.id for k in await store.list_api_keys(ws.id)] == [key.id]
    assert await store.find_api_key("b" * 64) is None


async def test_insert_and_get_bot_with_history_and_outbox(store: SqlAlchemyStore) -> None:
    ws, _ = await store.ensure_workspace(builders.workspace())
    bot = builders.bot(ws.id, START)
    await store.insert_bot(bot, [bot_status_event(bot, bot.status_changes[0])])
    got = await store.get_bot(ws.id, bot.id)
    assert got == bot
    assert got is not None and got.join_at is not None and got.join_at.tzinfo is not None
    messages = await store.pending_messages(10)
    assert [m.event_type for m in messages] == ["bot.scheduled"]
    assert messages[0].payload["data"]["bot"]["id"] == str(bot.id)


async def test_foreign_workspace_cannot_see_bot(store: SqlAlchemyStore) -> None:
    ws, _ = await store.ensure_workspace(builders.workspace("a"))
    other, _ = await store.ensure_workspace(builders.workspace("b"))
    bot = builders.bot(ws.id, START)
    await store.insert_bot(bot, [])
    assert await store.get_bot(other.id, bot.id) is None
    assert await store.get_bot(None, bot.id) is not None
    assert (await store.list_bots(other.id, BotFilter(), 0, 10)) == (0, [])


async def test_save_bot_is_fenced_by_version(store: SqlAlchemyStore) -> None:
    ws, _ = await store.ensure_workspace(builders.workspace())
    bot = builders.bot(ws.id, START)
    await store.insert_bot(bot, [])
    change = StatusChange(Status.STAGED, None, None, START + timedelta(seconds=5))
    moved = replace(bot, state=Status.STAGED, version=2, status_changes=[*bot.status_changes, change])
    await store.save_bot(moved, 1, change, [bot_status_event(moved, change)])
    # A stale actor still holding version 1 changes nothing, not even the outbox.
    stale = replace(bot, state=Status.DONE, version=2)
    with pytest.raises(StaleVersion):
        await store.save_bot(stale, 1, StatusChange(Status.DONE, None, None, START), [bot_status_event(stale, change)])
    got = await store.get_bot(ws.id, bot.id)
    assert got is not None and got.state is Status.STAGED and got.version == 2
    assert [c.code for c in got.status_changes] == [Status.SCHEDULED, Status.STAGED]
    assert [m.event_type for m in await store.pending_messages(10)] == ["bot.staged"]


async def test_concurrent_fenced_writers_exactly_one_wins(store: SqlAlchemyStore) -> None:
    ws, _ = await store.ensure_workspace(builders.workspace())
    bot = builders.bot(ws.id, START)
    await store.insert_bot(bot, [])

    async def attempt(i: int) -> bool:
        change = StatusChange(Status.STAGED, f"actor_{i}", None, START)
        try:
            await store.save_bot(replace(bot, state=Status.STAGED, version=2), 1, change)
        except StaleVersion:
            return False
        return True

    results = await asyncio.gather(*(attempt(i) for i in range(8)))
    assert sum(results) == 1
    got = await store.get_bot(ws.id, bot.id)
    assert got is not None and len(got.status_changes) == 2


async def test_delete_bot_removes_history_and_queues_message(store: SqlAlchemyStore) -> None:
    ws, _ = await store.ensure_workspace(builders.workspace())
    bot = builders.bot(ws.id, START)
    await store.insert_bot(bot, [])
    with pytest.raises(StaleVersion):
        await store.delete_bot(bot, 7, [])
    await store.delete_bot(bot, 1, [bot_deleted_event(bot, START)])
    assert await store.get_bot(ws.id, bot.id) is None
    assert [m.event_type for m in await store.pending_messages(10)] == ["bot.deleted"]


async def test_list_bots_filters_and_pages(store: SqlAlchemyStore) -> None:
    ws, _ = await store.ensure_workspace(builders.workspace())
    made = []
    for i in range(7):
        b = builders.bot(
            ws.id,
            START + timedelta(seconds=i),
            join_at=START + timedelta(hours=i),
            metadata={"team": "sales" if i % 2 else "ops", "n": str(i)},
            platform="zoom" if i < 4 else "google_meet",
            meeting_key=f"k{i % 3}",
            state=Status.SCHEDULED if i < 5 else Status.READY,
        )
        await store.insert_bot(b, [])
        made.append(b)
    total, page = await store.list_bots(ws.id, BotFilter(), 0, 3)
    assert total == 7 and [b.id for b in page] == [b.id for b in reversed(made)][:3]
    _, page2 = await store.list_bots(ws.id, BotFilter(), 3, 3)
    assert [b.id for b in page2] == [b.id for b in reversed(made)][3:6]
    assert all(b.status_changes for b in page + page2)

    async def ids(flt: BotFilter) -> set[int]:
        _, found = await store.list_bots(ws.id, flt, 0, 100)
        return {made.index(next(m for m in made if m.id == b.id)) for b in found}

    assert await ids(BotFilter(metadata={"team": "sales"})) == {1, 3, 5}
    assert await ids(BotFilter(metadata={"team": "sales", "n": "3"})) == {3}
    assert await ids(BotFilter(metadata={"missing": "x"})) == set()
    assert await ids(BotFilter(platforms=["google_meet"])) == {4, 5, 6}
    assert await ids(BotFilter(states=["ready"])) == {5, 6}
    assert await ids(BotFilter(states=["ready", "scheduled"], platforms=["zoom"])) == {0, 1, 2, 3}
    assert await ids(BotFilter(meeting_key="k1")) == {1, 4}
    assert await ids(BotFilter(join_at_after=START + timedelta(hours=2), join_at_before=START + timedelta(hours=4))) == {2, 3, 4}


async def test_idempotency_claims(store: SqlAlchemyStore) -> None:
    ws, _ = await store.ensure_workspace(builders.workspace())
    old, abandon = START - timedelta(hours=24), START - timedelta(minutes=2)
    assert await store.idempotency_begin(ws.id, "POST /x/", "k", "f1", START, old, abandon) is None
    running = await store.idempotency_begin(ws.id, "POST /x/", "k", "f1", START, old, abandon)
    assert running is not None and running.status_code is None
    await store.idempotency_finish(ws.id, "POST /x/", "k", 201, b"{}")
    done = await store.idempotency_begin(ws.id, "POST /x/", "k", "f1", START, old, abandon)
    assert done is not None and (done.status_code, done.response) == (201, b"{}")
    # Another scope is another key; an expired record is claimed anew.
    assert await store.idempotency_begin(ws.id, "POST /y/", "k", "f1", START, old, abandon) is None
    later = START + timedelta(hours=25)
    assert await store.idempotency_begin(ws.id, "POST /x/", "k", "f2", later, later - timedelta(hours=24), abandon) is None
    # Aborting releases a running claim.
    await store.idempotency_abort(ws.id, "POST /x/", "k")
    assert await store.idempotency_begin(ws.id, "POST /x/", "k", "f3", later, old, abandon) is None
