"""Invitations mailed to the real SMTP receiver with ``smtplib``: invite → a bot at the right time
and platform, update → moved, cancel → removed, a stranger → nothing, an unknown recipient →
550. In process (the receiver on the test's loop, a real store on SQLite and PostgreSQL, a fake
clock), and once against a real ``summon serve``."""

from __future__ import annotations

import asyncio
import json
import os
import re
import smtplib
import ssl
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from aiosmtpd.smtp import SMTP as AioSMTP
from aiosmtpd.smtp import Envelope, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from summon.clock import FakeClock
from summon.domain.bots import Bot, BotFilter
from summon.domain.mailboxes import Mailbox
from summon.domain.workspaces import Workspace
from summon.mail.smtp import SmtpReceiver, tls_context
from summon.services import mailboxes as service
from summon.services.context import Context
from tests.conftest import START
from tests.e2e.conftest import KEY_LINE, free_port, start_service, summon_cli

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mail"
BOT = "notes@bots.summon.test"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def send(
    port: int, raw: bytes, mail_from: str, rcpts: list[str], *, starttls: bool = False
) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mta.sender.example")
        if starttls:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            client.starttls(context=context)
            client.ehlo("mta.sender.example")
        return client.sendmail(mail_from, rcpts, raw)


@pytest.fixture
async def workspace(ctx: Context) -> Workspace:
    ws, _ = await ctx.store.ensure_workspace(Workspace(UUID(int=1), "acme", START))
    return ws


@pytest.fixture
async def mailbox(ctx: Context, workspace: Workspace) -> Mailbox:
    return await service.create_mailbox(
        ctx,
        workspace.id,
        BOT,
        {"bot_name": "Acme Notes", "metadata": {"source": "mail"}},
        ["acme.example", "contoso.example"],
    )


@pytest.fixture
async def smtp(ctx: Context) -> AsyncIterator[SmtpReceiver]:
    receiver = SmtpReceiver(
        ctx, "127.0.0.1", 0, hostname="mx.summon.test", max_message_bytes=512 * 1024
    )
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


async def deliver(
    smtp: SmtpReceiver, name: str | bytes, mail_from: str, rcpts: list[str] | None = None
) -> None:
    raw = load(name) if isinstance(name, str) else name
    refused = await asyncio.to_thread(send, smtp.port, raw, mail_from, rcpts or [BOT])
    assert refused == {}


async def live_bots(ctx: Context, workspace: Workspace) -> list[Bot]:
    _, bots = await ctx.store.list_bots(workspace.id, BotFilter(states=["scheduled"]), 0, 100)
    return sorted(bots, key=lambda b: b.join_at or START)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def test_google_invite_update_and_cancel(
    ctx: Context, smtp: SmtpReceiver, mailbox: Mailbox, workspace: Workspace
) -> None:
    await deliver(smtp, "google_request.eml", "alice@acme.example")
    (bot,) = await live_bots(ctx, workspace)
    assert bot.join_at == at("2030-01-06T15:00:00")
    assert bot.platform == "google_meet" and bot.meeting_url["meeting_id"] == "abc-mnop-xyz"
    assert bot.bot_name == "Acme Notes" and bot.metadata == {"source": "mail"}

    await deliver(smtp, "google_update.eml", "alice@acme.example")
    (moved,) = await live_bots(ctx, workspace)
    assert moved.join_at == at("2030-01-06T16:00:00")
    assert moved.id == bot.id  # the bot moved with its meeting

    await deliver(smtp, "google_request.eml", "alice@acme.example")  # the first version, late
    (still,) = await live_bots(ctx, workspace)
    assert still.join_at == at("2030-01-06T16:00:00")

    await deliver(smtp, "google_cancel.eml", "alice@acme.example")
    assert await live_bots(ctx, workspace) == []
    assert await ctx.store.get_bot(workspace.id, bot.id) is None
    (invite,) = await ctx.store.list_invites(workspace.id, mailbox.id, None, 10)
    assert (invite.status, invite.sequence, invite.bots) == ("cancelled", 2, [])


async def test_outlook_teams_invite_with_windows_zone(
    ctx: Context, smtp: SmtpReceiver, mailbox: Mailbox, workspace: Workspace
) -> None:
    await deliver(
        smtp, "outlook_request.eml", "Dana.Kruger@contoso.example", ["Notes@Bots.Summon.Test"]
    )
    (bot,) = await live_bots(ctx, workspace)
    assert bot.join_at == at("2030-01-08T09:00:00")  # 10:00 W. Europe Standard Time
    assert bot.platform == "microsoft_teams"
    await deliver(
        smtp,
        "outlook_update.eml",
        "dana.kruger@contoso.example",
        ["notes+vendors@bots.summon.test"],
    )
    (moved,) = await live_bots(ctx, workspace)
    assert moved.join_at == at("2030-01-08T13:00:00")
    await deliver(smtp, "outlook_cancel.eml", "dana.kruger@contoso.example")
    assert await live_bots(ctx, workspace) == []


async def test_apple_teams_and_zoom_layouts(
    ctx: Context, smtp: SmtpReceiver, mailbox: Mailbox, workspace: Workspace, clock: FakeClock
) -> None:
    await deliver(smtp, "apple_request.eml", "zoe@acme.example")
    await deliver(smtp, "teams_body_link.eml", "dana.kruger@contoso.example")
    await deliver(smtp, "zoom_recurring_request.eml", "sam.lee@acme.example")
    await deliver(smtp, "zoom_cancel_occurrence.eml", "sam.lee@acme.example")
    await deliver(smtp, "zoom_move_occurrence.eml", "sam.lee@acme.example")
    got = [
        (b.join_at.isoformat()[:16] if b.join_at else "", b.platform)
        for b in await live_bots(ctx, workspace)
    ]
    assert got == [
        ("2030-01-08T17:00", "zoom"),
        ("2030-01-09T12:30", "microsoft_teams"),  # the link was only in the e-mail body
        ("2030-01-10T08:30", "google_meet"),  # a quoted-printable whole-message calendar
        ("2030-01-22T19:00", "zoom"),  # moved by its own message; Jan 15 cancelled by its own
    ]

    # The window moves: two weeks later the next Tuesdays get their bots.
    clock.advance(days=14)
    assert await service.extend_recurring_invites(ctx) >= 1
    zoom = [
        b.join_at.isoformat()[:16]
        for b in await live_bots(ctx, workspace)
        if b.platform == "zoom" and b.join_at and b.join_at > clock.now()
    ]
    assert zoom == ["2030-01-22T19:00", "2030-01-29T17:00", "2030-02-05T17:00"]  # to Feb 12, 9:00


async def test_strangers_schedule_nothing(
    ctx: Context, smtp: SmtpReceiver, mailbox: Mailbox, workspace: Workspace
) -> None:
    await deliver(smtp, "stranger_request.eml", "mallory@evil.example")
    # Allowed envelope sender, stranger organizer; and the other way round.
    await deliver(smtp, "stranger_request.eml", "alice@acme.example")
    await deliver(smtp, "google_request.eml", "mallory@evil.example")
    assert await live_bots(ctx, workspace) == []
    invites = {i.uid: i for i in await ctx.store.list_invites(workspace.id, mailbox.id, None, 10)}
    assert invites["evil-1@evil.example"].status == "refused"
    assert invites["7kukuqrfedlm2f9t0vr6p2jg3e@google.com"].status == "refused"
    # Once the organizer sends it, the refusal record does not stand in the way.
    await deliver(smtp, "google_request.eml", "alice@acme.example")
    assert len(await live_bots(ctx, workspace)) == 1
    # And a stranger's "cancellation" of it changes nothing.
    cancel = load("google_cancel.eml").replace(b"alice@acme.example", b"mallory@evil.example")
    await deliver(smtp, cancel, "mallory@evil.example")
    assert len(await live_bots(ctx, workspace)) == 1


def send_as_clients_do(port: int, raw: bytes) -> dict[str, tuple[int, bytes]]:
    """``smtplib``'s ``send_message``: the envelope sender is the ``Sender:`` header if there
    is one (Google's ``calendar-notification@google.com``), else ``From:``."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return client.send_message(message_from_bytes(raw, policy=policy.SMTP))


async def test_invitations_relayed_by_google_calendar(
    ctx: Context, smtp: SmtpReceiver, mailbox: Mailbox, workspace: Workspace
) -> None:
    # Envelope sender calendar-notification@google.com: From: (alice, allowed) stands for it.
    assert await asyncio.to_thread(send_as_clients_do, smtp.port, load("google_request.eml")) == {}
    (bot,) = await live_bots(ctx, workspace)
    assert bot.join_at == at("2030-01-06T15:00:00")
    # Google's real envelope sender: its bounce address.
    bounce = "3CKzqZgc-rsFz@calendar-server.bounces.google.com"
    await deliver(smtp, "google_update.eml", bounce)
    (moved,) = await live_bots(ctx, workspace)
    assert moved.join_at == at("2030-01-06T16:00:00")
    # A stranger with a Google account: relayed by Google too, but From: is theirs.
    assert (
        await asyncio.to_thread(send_as_clients_do, smtp.port, load("stranger_request.eml")) == {}
    )
    await deliver(smtp, "stranger_request.eml", bounce)
    assert [b.id for b in await live_bots(ctx, workspace)] == [bot.id]


async def test_unknown_recipients_are_refused_at_rcpt(
    ctx: Context, smtp: SmtpReceiver, mailbox: Mailbox, workspace: Workspace
) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await asyncio.to_thread(
            send,
            smtp.port,
            load("google_request.eml"),
            "alice@acme.example",
            ["nobody@bots.summon.test"],
        )
    assert refused.value.recipients["nobody@bots.summon.test"][0] == 550
    partly = await asyncio.to_thread(
        send,
        smtp.port,
        load("google_request.eml"),
        "alice@acme.example",
        ["nobody@bots.summon.test", BOT],
    )
    assert partly["nobody@bots.summon.test"][0] == 550
    assert len(await live_bots(ctx, workspace)) == 1


async def test_size_limit_garbage_and_duplicates(
    ctx: Context, smtp: SmtpReceiver, mailbox: Mailbox, workspace: Workspace
) -> None:
    huge = load("google_request.eml") + b"X" * (600 * 1024) + b"\r\n"
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as too_big:
        await asyncio.to_thread(send, smtp.port, huge, "alice@acme.example", [BOT])
    assert too_big.value.smtp_code == 552
    await deliver(
        smtp,
        b"\x00\xff garbage \r\n--\r\nContent-Type: multipart/mixed\r\n\r\n",
        "alice@acme.example",
    )
    for _ in range(3):
        await deliver(smtp, "google_request.eml", "alice@acme.example")
    assert len(await live_bots(ctx, workspace)) == 1


async def test_parallel_sessions_deliver_one_bot_per_meeting(
    ctx: Context, smtp: SmtpReceiver, mailbox: Mailbox, workspace: Workspace
) -> None:
    await asyncio.gather(
        *(deliver(smtp, "google_update.eml", "alice@acme.example") for _ in range(4)),
        deliver(smtp, "google_request.eml", "alice@acme.example"),
    )
    (bot,) = await live_bots(ctx, workspace)
    assert bot.join_at == at("2030-01-06T16:00:00")


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mx.summon.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_starttls_with_the_operators_certificate(
    ctx: Context, mailbox: Mailbox, workspace: Workspace, tmp_path: Path
) -> None:
    receiver = SmtpReceiver(
        ctx,
        "127.0.0.1",
        0,
        hostname="mx.summon.test",
        tls=tls_context(*_certificate(tmp_path)),
        require_tls=True,
    )
    await receiver.start()
    try:
        with pytest.raises(smtplib.SMTPSenderRefused) as plain:
            await asyncio.to_thread(
                send, receiver.port, load("google_request.eml"), "alice@acme.example", [BOT]
            )
        assert plain.value.smtp_code == 530
        refused = await asyncio.to_thread(
            send,
            receiver.port,
            load("google_request.eml"),
            "alice@acme.example",
            [BOT],
            starttls=True,
        )
        assert refused == {}
    finally:
        await receiver.stop()
    assert len(await live_bots(ctx, workspace)) == 1


class Relay:
    """A real SMTP server standing for the operator's relay: keeps what it is given."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: AioSMTP, session: Session, envelope: Envelope
    ) -> str:
        self.messages.append(
            (envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b"")
        )
        self.arrived.set()
        return "250 OK"


async def test_courtesy_reply_through_the_relay(
    ctx: Context, smtp: SmtpReceiver, workspace: Workspace
) -> None:
    relay = Relay()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: AioSMTP(relay, hostname="relay.test", loop=loop), "127.0.0.1", 0
    )
    try:
        ctx.settings = replace_settings(
            ctx, f"smtp://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        )
        mailbox = await service.create_mailbox(
            ctx, workspace.id, BOT, {}, ["acme.example"], send_replies=True
        )
        quiet = await service.create_mailbox(
            ctx, workspace.id, "quiet@bots.summon.test", {}, ["acme.example"]
        )
        await deliver(smtp, "google_request.eml", "alice@acme.example", ["quiet@bots.summon.test"])
        await deliver(smtp, "google_request.eml", "alice@acme.example")
        await asyncio.wait_for(relay.arrived.wait(), 10)
    finally:
        server.close()
        await server.wait_closed()
    ((sender, rcpts, raw),) = relay.messages  # the quiet mailbox sent nothing
    assert (sender, rcpts) == (BOT, ["alice@acme.example"]) and quiet.id != mailbox.id
    reply = message_from_bytes(raw, policy=policy.default)
    calendar = next(p for p in reply.walk() if p.get_content_type() == "text/calendar")
    assert calendar.get_param("method") == "REPLY"
    text = calendar.get_content()
    assert "METHOD:REPLY" in text and "UID:7kukuqrfedlm2f9t0vr6p2jg3e@google.com" in text
    assert f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{BOT}" in text


def replace_settings(ctx: Context, relay_url: str):  # type: ignore[no-untyped-def]
    return ctx.settings.model_copy(update={"smtp_relay_url": relay_url})


# -- against a real `summon serve` ----------------------------------------------------------
def _retimed(name: str, start: datetime) -> bytes:
    """The calendar of a Google fixture moved to ``start`` (the service runs on the real clock),
    sent as Google would, minus the attachment copy."""
    from summon.domain.invites import read_message

    (part,) = read_message(load(name)).calendars
    end = start + timedelta(minutes=30)
    text = part.text
    for old, new in (
        ("20300106T150000Z", start),
        ("20300106T160000Z", start),
        ("20300106T153000Z", end),
        ("20300106T163000Z", end),
    ):
        text = text.replace(old, new.strftime("%Y%m%dT%H%M%SZ"))
    text = re.sub(r"DTSTAMP:\d{8}T\d{6}Z", f"DTSTAMP:{datetime.now(UTC):%Y%m%dT%H%M%SZ}", text)
    head = (
        f"From: Alice Martin <alice@acme.example>\r\nTo: {BOT}\r\nSubject: {name}\r\n"
        "MIME-Version: 1.0\r\n"
        f"Content-Type: text/calendar; charset=UTF-8; method={part.method}\r\n\r\n"
    )
    return (head + text).encode()


def _wait(predicate, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


@pytest.mark.slow
def test_summon_serve_receives_invitations(tmp_path: Path) -> None:
    smtp_port = free_port()
    service_ = start_service(tmp_path / "data", {"SUMMON_SMTP_PORT": str(smtp_port)})
    try:
        service_.wait_ready()
        key = service_.wait_for_line(KEY_LINE).group(1)
        with httpx.Client(
            base_url=service_.url, headers={"Authorization": f"Token {key}"}, timeout=10
        ) as api:
            added = summon_cli(
                {**service_.env, "SUMMON_URL": service_.url, "SUMMON_API_KEY": key},
                "mailboxes",
                "add",
                BOT,
                "--allow",
                "acme.example",
                "--bot-name",
                "CLI Notes",
            )
            assert added.returncode == 0, added.stderr
            assert json.loads(added.stdout)["bot_config"]["bot_name"] == "CLI Notes"
            start = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0, second=0)
            send(smtp_port, _retimed("google_request.eml", start), "alice@acme.example", [BOT])
            bots = _wait(lambda: api.get("/api/v1/bot/").json()["results"])
            assert [(b["join_at"], b["meeting_url"]["platform"]) for b in bots] == [
                (start.strftime("%Y-%m-%dT%H:%M:%S.000000Z"), "google_meet")
            ]
            moved = start + timedelta(hours=1)
            send(smtp_port, _retimed("google_update.eml", moved), "alice@acme.example", [BOT])
            assert _wait(
                lambda: (
                    [b["join_at"] for b in api.get("/api/v1/bot/").json()["results"]]
                    == [moved.strftime("%Y-%m-%dT%H:%M:%S.000000Z")]
                )
            )
            send(smtp_port, _retimed("google_cancel.eml", moved), "alice@acme.example", [BOT])
            assert _wait(lambda: api.get("/api/v1/bot/").json()["results"] == [])
            with pytest.raises(smtplib.SMTPRecipientsRefused):
                send(
                    smtp_port,
                    load("google_request.eml"),
                    "alice@acme.example",
                    ["nobody@bots.summon.test"],
                )
    finally:
        service_.stop()


@pytest.mark.slow
def test_cli_adds_mailboxes_on_the_database(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("SUMMON_")},
        "SUMMON_DATA_DIR": str(tmp_path / "data"),
    }
    assert summon_cli(env, "keys", "create", "--workspace", "acme").returncode == 0
    added = summon_cli(
        env,
        "mailboxes",
        "add",
        "Notes@Bots.Summon.Test",
        "--allow",
        "acme.example",
        "--allow",
        "bob@partner.example",
        "--workspace",
        "acme",
    )
    assert added.returncode == 0, added.stderr
    body = json.loads(added.stdout)
    assert body["address"] == BOT and body["allowed_senders"] == [
        "acme.example",
        "bob@partner.example",
    ]
    again = summon_cli(
        env, "mailboxes", "add", BOT, "--allow", "acme.example", "--workspace", "acme"
    )
    assert again.returncode != 0 and "mailbox_address_taken" in again.stderr
    bad = summon_cli(env, "mailboxes", "add", BOT, "--allow", "no good", "--workspace", "acme")
    assert bad.returncode != 0 and "allowed_senders.0" in bad.stderr
    missing = summon_cli(
        env, "mailboxes", "add", "x@bots.summon.test", "--allow", "a.example", "--workspace", "nope"
    )
    assert missing.returncode != 0 and "no workspace named 'nope'" in missing.stderr
