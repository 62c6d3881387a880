"""``receive_message`` and the periodic pass against a real store (SQLite and PostgreSQL): sender
checks, storable text, bounded refusals, mailbox deletion, and one bad invite not holding up
the others."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest

from summon.clock import FakeClock
from summon.domain.bots import BotFilter
from summon.domain.invites import read_message
from summon.domain.mailboxes import Invite, Mailbox
from summon.domain.workspaces import Workspace
from summon.services import mailboxes as service
from summon.services.context import Context
from tests.conftest import START

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mail"
BOT = "notes@bots.summon.test"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@pytest.fixture
async def mailbox(ctx: Context) -> Mailbox:
    ws, _ = await ctx.store.ensure_workspace(Workspace(UUID(int=3), "acme", START))
    return await service.create_mailbox(ctx, ws.id, BOT, {}, ["acme.example", "contoso.example"])


async def scheduled(ctx: Context, mailbox: Mailbox) -> list[str]:
    _, bots = await ctx.store.list_bots(
        mailbox.workspace_id, BotFilter(states=["scheduled"]), 0, 100
    )
    return sorted(b.join_at.isoformat() for b in bots if b.join_at)


async def test_required_sender_checks_read_the_trusted_header(
    ctx: Context, mailbox: Mailbox
) -> None:
    ctx.settings = ctx.settings.model_copy(
        update={"mail_require_auth": "spf,dkim", "mail_authserv_id": "mx.bots.summon.test"}
    )
    # Outlook's message carries our MX's Authentication-Results: SPF and DKIM of contoso pass.
    (ok,) = await service.receive_message(
        ctx, load("outlook_request.eml"), "dana.kruger@contoso.example", [BOT]
    )
    assert ok.status == "scheduled"
    # Google's (in the fixture) has none from our MX: refused although the sender is allowed.
    (refused,) = await service.receive_message(
        ctx, load("google_request.eml"), "alice@acme.example", [BOT]
    )
    assert refused.status == "refused" and "Authentication-Results" in (refused.reason or "")
    assert await scheduled(ctx, mailbox) == ["2030-01-08T09:00:00+00:00"]


async def test_text_every_store_keeps(ctx: Context, mailbox: Mailbox) -> None:
    calendar = (
        read_message(load("google_request.eml"))
        .calendars[0]
        .text.replace("SUMMARY:Q1 planning", "SUMMARY:Q1\x00 planning")
        .replace("UID:7kukuqrfedlm2f9t0vr6p2jg3e@google.com", "UID:7kukuq\x00rfedlm@google.com")
    )
    raw = (
        b"From: alice@acme.example\r\nMessage-ID: <\x00m@acme.example>\r\n"
        b"Content-Type: text/calendar; method=REQUEST\r\n\r\n" + calendar.encode()
    )
    (receipt,) = await service.receive_message(ctx, raw, "alice@acme.example", [BOT])
    assert receipt.status == "scheduled" and receipt.uid == "7kukuqrfedlm@google.com"
    stored = await ctx.store.get_invite(mailbox.id, "7kukuqrfedlm@google.com")
    assert (
        stored is not None
        and stored.title == "Q1 planning"
        and "\x00" not in (stored.calendar or "")
    )
    assert await scheduled(ctx, mailbox) == ["2030-01-06T15:00:00+00:00"]


async def test_refusals_kept_are_bounded(
    ctx: Context, mailbox: Mailbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "MAX_REFUSALS_KEPT", 2)
    raw = load("stranger_request.eml")
    for n in range(4):
        mine = raw.replace(b"UID:evil-1@evil.example", f"UID:evil-{n}@evil.example".encode())
        (r,) = await service.receive_message(ctx, mine, "mallory@evil.example", [BOT])
        assert r.status == "refused"
    assert await ctx.store.count_invites(mailbox.id, "refused") == 2
    assert await scheduled(ctx, mailbox) == []


async def test_deleting_a_mailbox_releases_its_bots(ctx: Context, mailbox: Mailbox) -> None:
    await service.receive_message(ctx, load("google_request.eml"), "alice@acme.example", [BOT])
    await service.receive_message(
        ctx, load("zoom_recurring_request.eml"), "sam.lee@acme.example", [BOT]
    )
    assert len(await scheduled(ctx, mailbox)) == 4
    await service.delete_mailbox(ctx, mailbox.workspace_id, mailbox.id)
    assert await scheduled(ctx, mailbox) == []
    assert await service.find_mailbox(ctx, BOT) is None
    assert (
        await service.receive_message(ctx, load("google_request.eml"), "alice@acme.example", [BOT])
        == []
    )


async def test_a_meeting_invited_twice_and_to_two_mailboxes_gets_one_bot(
    ctx: Context, mailbox: Mailbox
) -> None:
    other = await service.create_mailbox(
        ctx, mailbox.workspace_id, "second@bots.summon.test", {}, ["acme.example"]
    )
    receipts = await service.receive_message(
        ctx, load("google_request.eml"), "alice@acme.example", [BOT, "second@bots.summon.test", BOT]
    )
    assert {r.mailbox_id for r in receipts} == {mailbox.id, other.id}
    assert await scheduled(ctx, mailbox) == ["2030-01-06T15:00:00+00:00"]  # one dedup key
    await service.receive_message(ctx, load("google_cancel.eml"), "alice@acme.example", [BOT])
    # The second mailbox still wants the meeting: its bot stays.
    assert await scheduled(ctx, mailbox) == ["2030-01-06T15:00:00+00:00"]


async def test_one_bad_invite_does_not_hold_up_the_periodic_pass(
    ctx: Context, mailbox: Mailbox, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await service.receive_message(
        ctx, load("zoom_recurring_request.eml"), "sam.lee@acme.example", [BOT]
    )
    await service.receive_message(
        ctx, load("google_recurring_request.eml"), "alice@acme.example", [BOT]
    )
    clock.advance(days=14)
    real = service._sync_bots

    async def poisoned(ctx: Context, mailbox: Mailbox, invite: Invite, now):  # type: ignore[no-untyped-def]
        if invite.uid.startswith("ZOOM"):
            raise RuntimeError("poison")
        return await real(ctx, mailbox, invite, now)

    monkeypatch.setattr(service, "_sync_bots", poisoned)
    assert await service.extend_recurring_invites(ctx, limit=1) == 2
    google = [t for t in await scheduled(ctx, mailbox) if t.endswith("09:00:00+00:00")]
    assert "2030-02-11T09:00:00+00:00" in google  # entered the window and got its bot
    monkeypatch.setattr(service, "_sync_bots", real)
    assert await service.extend_recurring_invites(ctx) == 1  # only the failed one is still due
    later = [t for t in await scheduled(ctx, mailbox) if t.endswith("17:00:00+00:00")]
    assert "2030-02-05T17:00:00+00:00" in later


async def test_invite_for_an_occurrence_the_service_cannot_book_is_retried(
    ctx: Context, mailbox: Mailbox, clock: FakeClock
) -> None:
    # An occurrence five minutes ahead needs an ad-hoc slot; no fleet agent runs here.
    soon = (clock.now() + timedelta(minutes=5)).strftime("%Y%m%dT%H%M%SZ")
    end = (clock.now() + timedelta(minutes=35)).strftime("%Y%m%dT%H%M%SZ")
    raw = (
        load("apple_request.eml")
        .replace(b"DTSTART;TZID=3DEurope/Paris:20300110T093000", b"DTSTART:" + soon.encode())
        .replace(b"DTEND;TZID=3DEurope/Paris:20300110T101500", b"DTEND:" + end.encode())
    )
    (receipt,) = await service.receive_message(ctx, raw, "zoe@acme.example", [BOT])
    assert receipt.status == "ignored" and "could not schedule" in (receipt.reason or "")
    invite = await ctx.store.get_invite(mailbox.id, "5F0E7A4C-2B1D-4C8E-9A3F-6D7E8F9A0B1C")
    assert invite is not None and invite.next_check_at == clock.now() + service.RETRY_AFTER
