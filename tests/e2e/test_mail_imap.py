"""The IMAP poller against a real Dovecot (Debian ``dovecot-imapd``) started by the test on
loopback with its own configuration (plain auth from a passwd file, a temporary maildir — never
the system's): invitations appended to the inbox schedule bots, every message is marked
processed and none is deleted or marked read; IDLE wakes the poller at once."""

from __future__ import annotations

import asyncio
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest

from summon.domain.bots import Bot, BotFilter
from summon.domain.mailboxes import Mailbox
from summon.domain.workspaces import Workspace
from summon.mail.imap import KEYWORD, ImapPoller, ImapTarget, parse_imap_url
from summon.services import mailboxes as service
from summon.services.context import Context
from tests.conftest import START
from tests.e2e.conftest import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("dovecot") is None, reason="needs Dovecot (apt-get install dovecot-imapd)"
    ),
]

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mail"
BOT = "notes@bots.summon.test"
USER, PASSWORD = "bot", "s3cret pass"


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


@dataclass
class Dovecot:
    port: int
    directory: Path

    @property
    def target(self) -> ImapTarget:
        return ImapTarget("127.0.0.1", self.port, False, False, USER, PASSWORD, "INBOX")

    def client(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        client.login(USER, PASSWORD)
        client.select("INBOX")
        return client

    def append(self, *raws: bytes) -> None:
        client = self.client()
        try:
            for raw in raws:
                typ, data = client.append("INBOX", None, None, raw)
                assert typ == "OK", data
        finally:
            client.logout()

    def flags(self) -> dict[bytes, bytes]:
        """UID → FLAGS of every message in the inbox."""
        client = self.client()
        try:
            typ, data = client.uid("FETCH", "1:*", "(FLAGS)")
            assert typ == "OK"
            out = {}
            for line in data:
                if isinstance(line, bytes) and b"UID" in line:
                    uid = line.split(b"UID ")[1].split()[0].rstrip(b")")
                    out[uid] = line.split(b"FLAGS (")[1].split(b")")[0]
            return out
        finally:
            client.logout()


def _config(directory: Path, port: int) -> str:
    if os.geteuid() == 0:  # Dovecot never runs mail processes as root
        internal, login, uid, gid = "dovecot", "dovenull", 65534, 65534
    else:
        me = pwd.getpwuid(os.geteuid()).pw_name
        internal, login, uid, gid = me, me, os.geteuid(), os.getegid()
    for name in ("mail", "home"):
        (directory / name).mkdir()
        if os.geteuid() == 0:
            os.chown(directory / name, uid, gid)
    (directory / "run").mkdir()
    (directory / "state").mkdir()
    (directory / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    return f"""
base_dir = {directory}/run
state_dir = {directory}/state
instance_name = summon-test-{port}
log_path = {directory}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{directory}/mail/%u
default_internal_user = {internal}
default_login_user = {login}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {directory}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={directory}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def _wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 20
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError("dovecot exited:\n" + (log.read_text() if log.exists() else ""))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(100).startswith(b"* OK"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError("dovecot did not listen:\n" + (log.read_text() if log.exists() else ""))


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    directory = Path(tempfile.mkdtemp(prefix="summon-dovecot-"))
    directory.chmod(0o755)  # the unprivileged mail processes must reach the maildir
    port = free_port()
    (directory / "dovecot.conf").write_text(_config(directory, port))
    process = subprocess.Popen(
        ["dovecot", "-F", "-c", str(directory / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process, directory / "dovecot.log")
        yield Dovecot(port, directory)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
async def mailbox(ctx: Context) -> Mailbox:
    ws, _ = await ctx.store.ensure_workspace(Workspace(UUID(int=7), "acme", START))
    # Google's invitations come with a bounce address as envelope sender (a calendar relay):
    # From: stands for it, and the organizer must match too.
    return await service.create_mailbox(
        ctx,
        ws.id,
        BOT,
        {"bot_name": "IMAP Notes"},
        ["acme.example", "contoso.example"],
    )


async def bots_of(ctx: Context, mailbox: Mailbox) -> list[Bot]:
    _, bots = await ctx.store.list_bots(
        mailbox.workspace_id, BotFilter(states=["scheduled"]), 0, 100
    )
    return sorted(bots, key=lambda b: b.join_at or START)


@pytest.fixture
async def poller(ctx: Context, dovecot: Dovecot) -> AsyncIterator[ImapPoller]:
    p = ImapPoller(ctx, dovecot.target, interval_s=3600)
    try:
        yield p
    finally:
        await p.stop()


async def test_poller_schedules_marks_and_never_deletes(
    ctx: Context, dovecot: Dovecot, mailbox: Mailbox, poller: ImapPoller
) -> None:
    plain = (
        b"From: alice@acme.example\r\nTo: notes@bots.summon.test\r\nSubject: lunch?\r\n\r\nHi!\r\n"
    )
    names = [
        "google_request.eml",
        "stranger_request.eml",
        "reply.eml",
        "google_update.eml",
        "outlook_request.eml",
    ]
    await asyncio.to_thread(dovecot.append, *(load(n) for n in names), plain)
    assert await poller.poll_once() == 6
    bots = await bots_of(ctx, mailbox)
    assert [(b.join_at.isoformat() if b.join_at else None, b.platform) for b in bots] == [
        ("2030-01-06T16:00:00+00:00", "google_meet"),  # the update, applied over the invitation
        ("2030-01-08T09:00:00+00:00", "microsoft_teams"),
    ]
    assert all(b.bot_name == "IMAP Notes" for b in bots)
    flags = await asyncio.to_thread(dovecot.flags)
    assert len(flags) == 6  # nothing deleted
    assert all(
        KEYWORD.encode() in f and b"\\Seen" not in f and b"\\Deleted" not in f
        for f in flags.values()
    )
    assert await poller.poll_once() == 0  # marked: not read again

    await asyncio.to_thread(dovecot.append, load("google_cancel.eml"))
    assert await poller.poll_once() == 1
    assert [b.platform for b in await bots_of(ctx, mailbox)] == ["microsoft_teams"]
    assert len(await asyncio.to_thread(dovecot.flags)) == 7


async def test_idle_wakes_the_poller(
    ctx: Context, dovecot: Dovecot, mailbox: Mailbox, poller: ImapPoller
) -> None:
    await poller.start()  # polls only hourly: new mail can only come in through IDLE
    await asyncio.sleep(0)
    await asyncio.to_thread(dovecot.append, load("apple_request.eml"))
    async with asyncio.timeout(20):
        while not await bots_of(ctx, mailbox):
            await asyncio.sleep(0.05)
    (bot,) = await bots_of(ctx, mailbox)
    assert bot.join_at is not None and bot.join_at.isoformat() == "2030-01-10T08:30:00+00:00"
    await asyncio.to_thread(dovecot.append, load("apple_update.eml"))
    async with asyncio.timeout(20):
        while [b.join_at.isoformat() for b in await bots_of(ctx, mailbox) if b.join_at] != [
            "2030-01-11T08:30:00+00:00"
        ]:
            await asyncio.sleep(0.05)
    await poller.stop()


def test_imap_urls() -> None:
    t = parse_imap_url("imaps://bot%40acme.example:p%40ss@imap.acme.example/Invites")
    assert (t.host, t.port, t.tls, t.username, t.password, t.folder) == (
        "imap.acme.example",
        993,
        True,
        "bot@acme.example",
        "p@ss",
        "Invites",
    )
    plain = parse_imap_url("imap://u:p@127.0.0.1:1143?starttls")
    assert (plain.port, plain.tls, plain.starttls, plain.folder) == (1143, False, True, "INBOX")
    assert "p@ss" not in repr(t)
    for bad in ("http://u:p@h/", "imap://h/", "imaps://u@h/"):
        with pytest.raises(ValueError):
            parse_imap_url(bad)
