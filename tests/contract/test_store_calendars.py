"""The calendar part of the store contract, on SQLite and PostgreSQL: calendars (fenced, claimed
with leases), their events (one sync = one transaction), and the event-bot bookkeeping that
keeps one bot per deduplication key."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from uuid import UUID, uuid4

import pytest

from summon.domain.calendars import (
    CONNECTED,
    CONNECTING,
    DISCONNECTED,
    AutoRecord,
    AutoRecordRules,
    Calendar,
    CalendarEvent,
    CalendarEventFilter,
    CalendarFilter,
    StatusChange,
    calendar_sync_events_event,
    calendar_update_event,
    event_ref,
)
from summon.domain.errors import StaleVersion
from summon.store.sqlalchemy import SqlAlchemyStore
from tests import builders
from tests.conftest import START


def calendar(
    workspace_id: UUID, *, created: datetime = START, platform: str = "ics_feed", **fields: object
) -> Calendar:
    values: dict[str, object] = dict(
        id=uuid4(),
        workspace_id=workspace_id,
        platform=platform,
        status=CONNECTING,
        status_reason=None,
        sealed_credentials="sealed",
        state={},
        auto_record=None,
        email=None,
        platform_email=None,
        created_at=created,
        updated_at=created,
        status_changes=[StatusChange(CONNECTING, None, created)],
        next_sync_at=created,
    )
    values.update(fields)
    return Calendar(**values)  # type: ignore[arg-type]


def event(cal: Calendar, key: str, start: datetime, **fields: object) -> CalendarEvent:
    values: dict[str, object] = dict(
        id=uuid4(),
        workspace_id=cal.workspace_id,
        calendar_id=cal.id,
        platform=cal.platform,
        key=key,
        ical_uid=key.split("/")[0],
        recurrence_id=None,
        start_time=start,
        end_time=start + timedelta(minutes=30),
        all_day=False,
        title=f"Meeting {key}",
        meeting_url="https://zoom.us/j/123456789",
        meeting_platform="zoom",
        recurring=False,
        cancelled=False,
        is_deleted=False,
        organizer={"email": "a@acme.test", "name": None},
        attendees=[],
        details={},
        raw={"SUMMARY": key},
        created_at=START,
        updated_at=START,
    )
    values.update(fields)
    return CalendarEvent(**values)  # type: ignore[arg-type]


async def workspace(store: SqlAlchemyStore, name: str = "acme") -> UUID:
    ws, _ = await store.ensure_workspace(builders.workspace(name))
    return ws.id


async def test_calendar_round_trip_filters_and_pages(store: SqlAlchemyStore) -> None:
    ws = await workspace(store)
    other = await workspace(store, "other")
    auto = AutoRecord({"bot_name": "Notes"}, AutoRecordRules(external=True, recurring=False))
    first = calendar(ws, auto_record=auto, email="me@acme.test")
    second = calendar(ws, created=START + timedelta(seconds=1), platform="caldav", status=CONNECTED)
    third = calendar(ws, created=START + timedelta(seconds=2))
    for c in (first, second, third, calendar(other)):
        await store.insert_calendar(c)

    got = await store.get_calendar(ws, first.id)
    assert got == first and got is not None and got.auto_record == auto
    assert await store.get_calendar(other, first.id) is None
    assert await store.get_calendar(None, first.id) == first

    everything = await store.list_calendars(ws, CalendarFilter(), None, 10)
    assert [c.id for c in everything] == [first.id, second.id, third.id]
    page = await store.list_calendars(ws, CalendarFilter(), None, 2)
    rest = await store.list_calendars(ws, CalendarFilter(), (page[-1].created_at, page[-1].id), 2)
    assert [c.id for c in page + rest] == [first.id, second.id, third.id]
    assert [
        c.id for c in await store.list_calendars(ws, CalendarFilter(platform="caldav"), None, 10)
    ] == [second.id]
    assert [
        c.id for c in await store.list_calendars(ws, CalendarFilter(status=CONNECTED), None, 10)
    ] == [second.id]
    assert [
        c.id for c in await store.list_calendars(ws, CalendarFilter(email="me@acme.test"), None, 10)
    ] == [first.id]
    later = CalendarFilter(created_at_gte=START + timedelta(seconds=1))
    assert [c.id for c in await store.list_calendars(ws, later, None, 10)] == [second.id, third.id]


async def test_save_calendar_is_fenced_and_queues_messages(store: SqlAlchemyStore) -> None:
    ws = await workspace(store)
    cal = calendar(ws)
    await store.insert_calendar(cal)
    changed = replace(cal, version=2, updated_at=START + timedelta(seconds=5))
    assert changed.with_status(DISCONNECTED, "feed gone", START + timedelta(seconds=5))
    await store.save_calendar(changed, 1, [calendar_update_event(changed, START)])
    got = await store.get_calendar(ws, cal.id)
    assert got is not None and got.status == DISCONNECTED and got.status_reason == "feed gone"
    assert [s.status for s in got.status_changes] == [CONNECTING, DISCONNECTED]
    with pytest.raises(StaleVersion):
        await store.save_calendar(replace(changed, version=3, status=CONNECTED), 1)
    assert (await store.get_calendar(ws, cal.id)).status == DISCONNECTED  # type: ignore[union-attr]
    messages = await store.pending_messages(10)
    assert [(m.event_type, m.payload) for m in messages] == [
        ("calendar.update", {"event": "calendar.update", "data": {"calendar_id": str(cal.id)}})
    ]


async def test_claims_take_due_calendars_once_until_the_lease_ends(store: SqlAlchemyStore) -> None:
    ws = await workspace(store)
    due = [calendar(ws, next_sync_at=START - timedelta(seconds=i)) for i in range(6)]
    later = calendar(ws, next_sync_at=START + timedelta(minutes=5))
    never = calendar(ws, next_sync_at=None, status=DISCONNECTED)
    for c in (*due, later, never):
        await store.insert_calendar(c)
    assert await store.next_calendar_sync_at() == START - timedelta(seconds=5)

    lease = START + timedelta(minutes=3)
    batches = await asyncio.gather(*(store.claim_due_calendars(START, lease, 2) for _ in range(4)))
    claimed = [c.id for batch in batches for c in batch]
    assert sorted(claimed) == sorted(c.id for c in due)  # each due calendar exactly once
    assert all(c.version == 2 and c.lease_until == lease for batch in batches for c in batch)
    assert await store.claim_due_calendars(START, lease, 10) == []
    # A syncer that died: its calendars are due again when the lease ends.
    again = await store.claim_due_calendars(lease, lease + timedelta(minutes=3), 10)
    assert sorted(c.id for c in again) == sorted(c.id for c in due)
    assert all(c.version == 3 for c in again)


async def test_apply_sync_writes_events_and_calendar_together_fenced(
    store: SqlAlchemyStore,
) -> None:
    ws = await workspace(store)
    cal = calendar(ws)
    await store.insert_calendar(cal)
    a, b = event(cal, "a", START + timedelta(hours=1)), event(cal, "b", START + timedelta(hours=2))
    synced = replace(cal, version=2, state={"token": "1"}, last_synced_at=START)
    await store.apply_calendar_sync(synced, 1, [a, b], [calendar_sync_events_event(synced, START)])
    assert [e.key for e in await store.calendar_events(cal.id)] == ["a", "b"]

    # A client's bot request is not overwritten by a sync that read the event before it.
    await store.save_calendar_event_bot(
        a.id, {"deduplication_key": "k", "bot_config": {}}, False, START
    )
    moved = replace(
        a, start_time=START + timedelta(hours=3), updated_at=START + timedelta(minutes=1)
    )
    await store.apply_calendar_sync(replace(synced, version=3), 2, [moved])
    got = await store.get_calendar_event(ws, a.id)
    assert got is not None and got.start_time == START + timedelta(hours=3)
    assert got.manual_bot == {"deduplication_key": "k", "bot_config": {}}
    assert [e.key for e in await store.calendar_events(cal.id)] == ["b", "a"]

    with pytest.raises(StaleVersion):
        await store.apply_calendar_sync(replace(synced, version=9), 2, [event(cal, "c", START)])
    assert [e.key for e in await store.calendar_events(cal.id)] == ["b", "a"]  # nothing of it kept
    stored = await store.get_calendar(ws, cal.id)
    assert stored is not None and stored.state == {"token": "1"} and stored.version == 3
    assert [m.payload["data"]["last_updated_ts"] for m in await store.pending_messages(10)] == [
        "2030-01-01T09:00:00.000000Z"
    ]
    bounded = await store.calendar_events(
        cal.id, start_from=START + timedelta(hours=2), start_to=START + timedelta(hours=3)
    )
    assert [e.key for e in bounded] == ["b"]


async def test_event_filters_and_pages(store: SqlAlchemyStore) -> None:
    ws = await workspace(store)
    other_ws = await workspace(store, "other")
    cal, cal2 = calendar(ws), calendar(ws)
    foreign = calendar(other_ws)
    for c in (cal, cal2, foreign):
        await store.insert_calendar(c)
    t = [START + timedelta(hours=i) for i in range(5)]
    events = [
        event(cal, "Abc/1", t[0]),
        event(cal, "abc/2", t[1], is_deleted=True),
        event(cal, "Abd/3", t[2], updated_at=START + timedelta(days=1)),
        event(cal2, "x", t[3]),
    ]
    await store.apply_calendar_sync(replace(cal, version=2), 1, events[:3])
    await store.apply_calendar_sync(replace(cal2, version=2), 1, events[3:])
    await store.apply_calendar_sync(replace(foreign, version=2), 1, [event(foreign, "Abc/9", t[0])])

    async def keys(**flt: object) -> list[str]:
        found = await store.list_calendar_events(ws, CalendarEventFilter(**flt), None, 100)  # type: ignore[arg-type]
        return [e.key for e in found]

    assert await keys() == ["Abc/1", "abc/2", "Abd/3", "x"]
    assert await keys(calendar_id=cal2.id) == ["x"]
    assert await keys(start_time_gte=t[1], start_time_lte=t[2]) == ["abc/2", "Abd/3"]
    assert await keys(start_time=t[2]) == ["Abd/3"]
    assert await keys(updated_at_gte=START + timedelta(hours=1)) == ["Abd/3"]
    assert await keys(is_deleted=True) == ["abc/2"]
    assert await keys(is_deleted=False) == ["Abc/1", "Abd/3", "x"]
    assert await keys(ical_uid="Ab") == ["Abc/1", "Abd/3"]  # prefix, case-sensitive
    assert await keys(ical_uid="a%") == []  # no wildcards
    first = await store.list_calendar_events(ws, CalendarEventFilter(), None, 3)
    rest = await store.list_calendar_events(
        ws, CalendarEventFilter(), (first[-1].start_time, first[-1].id), 3
    )
    assert [e.key for e in first + rest] == ["Abc/1", "abc/2", "Abd/3", "x"]
    assert await store.get_calendar_event(other_ws, events[0].id) is None


async def test_delete_calendar_returns_its_events(store: SqlAlchemyStore) -> None:
    ws = await workspace(store)
    cal = calendar(ws)
    await store.insert_calendar(cal)
    events = [event(cal, "a", START), event(cal, "b", START)]
    await store.apply_calendar_sync(replace(cal, version=2), 1, events)
    assert await store.delete_calendar(await workspace(store, "other"), cal.id) is None
    assert sorted(await store.delete_calendar(ws, cal.id) or []) == sorted(e.id for e in events)
    assert await store.get_calendar(ws, cal.id) is None
    assert await store.get_calendar_event(ws, events[0].id) is None
    assert await store.delete_calendar(ws, cal.id) is None


async def test_event_bot_keys_refs_and_reservations(store: SqlAlchemyStore) -> None:
    ws = await workspace(store)
    bot = builders.bot(ws, START)
    await store.insert_bot(bot, [])
    mine, theirs = uuid4(), uuid4()
    stale_before = START - timedelta(minutes=1)

    row = await store.reserve_event_bot(ws, "k1", mine, START, stale_before)
    assert row.claim == mine and row.bot_id is None
    contested = await store.reserve_event_bot(ws, "k1", theirs, START, stale_before)
    assert contested.claim == mine  # a live reservation is not taken over
    assert await store.bind_event_bot(ws, "k1", theirs, bot.id, "r1", START) == (False, None)
    assert await store.bind_event_bot(ws, "k1", mine, bot.id, "r1", START) == (True, None)
    held = await store.get_event_bot(ws, "k1")
    assert held is not None and held.bot_id == bot.id and held.claim is None
    assert await store.event_bot_key_of(ws, "r1") == "k1"

    assert await store.link_event_bot_ref(ws, "r2", "k1", uuid4(), START) == (
        False,
        None,
    )  # not its bot
    assert await store.link_event_bot_ref(ws, "r2", "k1", bot.id, START) == (True, None)
    assert await store.refs_of_event_bot(ws, bot.id) == ["r1", "r2"]
    links = await store.event_bot_links(ws, ["r1", "r2", "r3"])
    assert set(links) == {"r1", "r2"}
    assert links["r1"].bot_state == "scheduled" and links["r1"].bot_join_at == bot.join_at
    assert links["r1"].bot_meeting_key == bot.meeting_key

    # Shared keys do not move; a key stays while someone holds it.
    assert await store.move_event_bot(ws, "r1", "k1", "k2", START) is None
    assert await store.unlink_event_bot_ref(ws, "r2") is None
    assert await store.release_event_bot_key(ws, "k1") is None
    assert await store.move_event_bot(ws, "r1", "k1", "k2", START) == bot.id
    assert await store.get_event_bot(ws, "k1") is None
    assert await store.event_bot_key_of(ws, "r1") == "k2"

    # A ref that moves to another key hands back the one it held before.
    other_bot = builders.bot(ws, START)
    await store.insert_bot(other_bot, [])
    await store.reserve_event_bot(ws, "k3", mine, START, stale_before)
    assert await store.bind_event_bot(ws, "k3", mine, other_bot.id, "r1", START) == (True, "k2")
    assert await store.release_event_bot_key(ws, "k2") == bot.id
    assert await store.get_event_bot(ws, "k2") is None
    assert await store.unlink_event_bot_ref(ws, "r1") == other_bot.id
    assert await store.unlink_event_bot_ref(ws, "r1") is None
    assert await store.event_bot_links(ws, ["r1"]) == {}


async def test_reservations_of_dead_creators_are_taken_over(store: SqlAlchemyStore) -> None:
    ws = await workspace(store)
    dead, alive = uuid4(), uuid4()
    await store.reserve_event_bot(ws, "k", dead, START, START - timedelta(minutes=1))
    later = START + timedelta(minutes=2)
    taken = await store.reserve_event_bot(ws, "k", alive, later, later - timedelta(minutes=1))
    assert taken.claim == alive and taken.claimed_at == later
    await store.abandon_event_bot(ws, "k", dead)  # not its claim any more: nothing happens
    assert (await store.get_event_bot(ws, "k")) is not None
    await store.abandon_event_bot(ws, "k", alive)
    assert await store.get_event_bot(ws, "k") is None

    # A key whose bot vanished is claimed anew only by one of two racers.
    gone = uuid4()
    await store.reserve_event_bot(ws, "g", dead, START, START)
    await store.bind_event_bot(ws, "g", dead, gone, "r", START)
    results = await asyncio.gather(
        *(store.replace_event_bot(ws, "g", gone, uuid4(), START) for _ in range(3))
    )
    assert sorted(results) == [False, False, True]


async def test_concurrent_reservations_leave_one_winner(store: SqlAlchemyStore) -> None:
    ws = await workspace(store)
    tokens = [uuid4() for _ in range(8)]
    rows = await asyncio.gather(
        *(
            store.reserve_event_bot(ws, "same", t, START, START - timedelta(minutes=1))
            for t in tokens
        )
    )
    assert len({r.claim for r in rows}) == 1 and rows[0].claim in tokens


async def test_links_report_a_bot_that_is_gone(store: SqlAlchemyStore) -> None:
    ws = await workspace(store)
    token, ghost = uuid4(), uuid4()
    await store.reserve_event_bot(ws, "k", token, START, START)
    await store.bind_event_bot(ws, "k", token, ghost, event_ref(ghost), START)
    link = (await store.event_bot_links(ws, [event_ref(ghost)]))[event_ref(ghost)]
    assert link.bot_id == ghost and link.bot_state is None and link.bot_join_at is None
