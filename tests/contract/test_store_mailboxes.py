"""Store contract for bot mailboxes and their invites (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from summon.domain.errors import StaleVersion
from summon.domain.mailboxes import (
    IGNORED,
    SCHEDULED,
    HeldBot,
    InstanceChange,
    Invite,
    Mailbox,
    MailboxAddressTaken,
)
from summon.store.sqlalchemy import SqlAlchemyStore
from tests import builders
from tests.conftest import START


def mailbox(workspace_id: UUID, address: str, at: int = 0) -> Mailbox:
    when = START + timedelta(seconds=at)
    return Mailbox(
        uuid4(),
        workspace_id,
        address,
        {"bot_name": "Notes", "metadata": {"k": "v"}},
        ["acme.example", "bob@partner.example"],
        False,
        when,
        when,
    )


def invite(m: Mailbox, uid: str = "uid-1@acme.example", **changes: object) -> Invite:
    i = Invite(
        id=uuid4(),
        mailbox_id=m.id,
        workspace_id=m.workspace_id,
        uid=uid,
        method="REQUEST",
        sequence=2,
        dtstamp=START,
        status=SCHEDULED,
        reason=None,
        calendar="BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n",
        body_link="https://meet.google.com/abc-mnop-xyz",
        instances=[InstanceChange(START + timedelta(days=7), 3, START, None)],
        bots=[
            HeldBot(
                "mailbox:x:uid-1", uuid4(), START + timedelta(hours=1), START + timedelta(hours=2)
            )
        ],
        recurring=True,
        organizer="alice@acme.example",
        title="Weekly",
        sender="alice@acme.example",
        message_id="<m1@acme.example>",
        next_check_at=START + timedelta(hours=1),
        created_at=START,
        updated_at=START,
    )
    return replace(i, **changes)  # type: ignore[arg-type]


async def test_mailbox_round_trip_and_address_unique_everywhere(store: SqlAlchemyStore) -> None:
    a, _ = await store.ensure_workspace(builders.workspace("a"))
    b, _ = await store.ensure_workspace(builders.workspace("b"))
    first = mailbox(a.id, "notes@bots.summon.test")
    await store.insert_mailbox(first)
    assert await store.get_mailbox(a.id, first.id) == first
    assert await store.get_mailbox(None, first.id) == first
    assert await store.get_mailbox(b.id, first.id) is None  # another workspace sees nothing
    assert await store.mailbox_by_address("notes@bots.summon.test") == first
    assert await store.mailbox_by_address("other@bots.summon.test") is None
    with pytest.raises(MailboxAddressTaken):
        await store.insert_mailbox(mailbox(b.id, "notes@bots.summon.test"))
    second = mailbox(b.id, "second@bots.summon.test")
    await store.insert_mailbox(second)
    with pytest.raises(MailboxAddressTaken):
        await store.save_mailbox(replace(second, address="notes@bots.summon.test"))
    changed = replace(
        first,
        allowed_senders=["contoso.example"],
        send_replies=True,
        updated_at=START + timedelta(minutes=1),
    )
    assert await store.save_mailbox(changed)
    assert await store.get_mailbox(a.id, first.id) == changed
    assert not await store.save_mailbox(replace(changed, workspace_id=b.id))  # not theirs


async def test_concurrent_inserts_of_one_address_keep_one(store: SqlAlchemyStore) -> None:
    ws, _ = await store.ensure_workspace(builders.workspace())
    results = await asyncio.gather(
        *(store.insert_mailbox(mailbox(ws.id, "race@bots.summon.test")) for _ in range(5)),
        return_exceptions=True,
    )
    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, MailboxAddressTaken) for r in results if r is not None)


async def test_list_mailboxes_pages_oldest_first(store: SqlAlchemyStore) -> None:
    ws, _ = await store.ensure_workspace(builders.workspace())
    other, _ = await store.ensure_workspace(builders.workspace("other"))
    made = [
        mailbox(ws.id, f"m{i}@bots.summon.test", at=i // 2) for i in range(5)
    ]  # ties on created_at
    for m in made:
        await store.insert_mailbox(m)
    await store.insert_mailbox(mailbox(other.id, "theirs@bots.summon.test"))
    expected = sorted(made, key=lambda m: (m.created_at, m.id))
    first = await store.list_mailboxes(ws.id, None, 2)
    rest = await store.list_mailboxes(ws.id, (first[-1].created_at, first[-1].id), 10)
    assert [m.id for m in first + rest] == [m.id for m in expected]


async def test_invites_fenced_listed_due_and_deleted_with_their_mailbox(
    store: SqlAlchemyStore,
) -> None:
    ws, _ = await store.ensure_workspace(builders.workspace())
    m = mailbox(ws.id, "notes@bots.summon.test")
    await store.insert_mailbox(m)
    i = invite(m)
    await store.save_invite(i, None)
    assert await store.get_invite(m.id, i.uid) == i
    with pytest.raises(StaleVersion):
        await store.save_invite(invite(m), None)  # the UID is taken
    moved = replace(
        i,
        status=IGNORED,
        reason="no joinable meeting link",
        bots=[],
        version=2,
        updated_at=START + timedelta(minutes=5),
        next_check_at=None,
    )
    await store.save_invite(moved, 1)
    with pytest.raises(StaleVersion):
        await store.save_invite(replace(moved, version=3), 1)  # a writer that read version 1
    assert await store.get_invite(m.id, i.uid) == moved

    due = invite(m, uid="due@acme.example", next_check_at=START + timedelta(minutes=1))
    later = invite(m, uid="later@acme.example", next_check_at=START + timedelta(days=1))
    await store.save_invite(due, None)
    await store.save_invite(later, None)
    assert [x.uid for x in await store.due_invites(START + timedelta(minutes=2), 10)] == [
        "due@acme.example"
    ]
    assert {x.uid for x in await store.invites_holding_bots(m.id)} == {
        "due@acme.example",
        "later@acme.example",
    }
    listed = await store.list_invites(ws.id, m.id, None, 2)
    assert len(listed) == 2 and listed[0].uid == "uid-1@acme.example"  # most recently updated first
    tied = sorted([due, later], key=lambda x: x.id, reverse=True)  # same updated_at: by id
    assert listed[1].uid == tied[0].uid
    rest = await store.list_invites(ws.id, m.id, (listed[-1].updated_at, listed[-1].id), 10)
    assert {x.uid for x in listed + rest} == {
        "uid-1@acme.example",
        "due@acme.example",
        "later@acme.example",
    }
    assert await store.list_invites(uuid4(), m.id, None, 10) == []  # another workspace
    assert await store.count_invites(m.id, SCHEDULED) == 2
    assert await store.count_invites(m.id, IGNORED) == 1
    assert await store.count_invites(uuid4(), SCHEDULED) == 0

    assert await store.delete_mailbox(ws.id, m.id)
    assert not await store.delete_mailbox(ws.id, m.id)
    assert await store.get_invite(m.id, i.uid) is None
    assert await store.due_invites(START + timedelta(days=2), 10) == []
