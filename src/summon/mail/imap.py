"""The IMAP poller: invitations read from an existing mailbox, for operators who cannot run an
MX for Summon (SPEC §12).

``imaplib`` (standard library) in a worker thread, one command at a time. Each round searches
the folder for messages without the ``$SummonProcessed`` keyword (servers that do not allow
keywords: without ``\\Flagged``), hands each to
:func:`summon.services.mailboxes.receive_message`, then sets the keyword. Messages are
**never deleted or moved**, and are fetched with ``BODY.PEEK`` so their ``\\Seen`` flag stays
as it was: the mailbox remains the operator's. A message whose processing failed (database
down) is left unmarked and tried again next round. Oversized messages are marked without being
downloaded.

Between rounds the poller waits in ``IDLE`` when the server offers it (new mail wakes it at
once; the IDLE is renewed every :data:`IDLE_RENEW_S`), else it polls every
``SUMMON_IMAP_POLL_INTERVAL_S``. Connection failures are logged and retried with back-off.

Who a message is for: ``SUMMON_IMAP_ADDRESS`` when set (the bot address this inbox receives),
else the ``Delivered-To``/``X-Original-To``/``Envelope-To`` addresses the delivering server
wrote, else ``To`` and ``Cc``. The envelope sender is the ``Return-Path`` the delivering server
wrote (else ``Sender:``, else ``From:``).
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from summon.domain.invites import read_message
from summon.services import mailboxes as service
from summon.services.context import Context

log = logging.getLogger(__name__)

KEYWORD = "$SummonProcessed"
IDLE_RENEW_S = 600.0
BATCH = 50
_SIZE_RE = re.compile(rb"RFC822\.SIZE (\d+)")


@dataclass(frozen=True, slots=True)
class ImapTarget:
    """Where to poll, from ``imaps://user:pass@host:993/INBOX`` (``imap://`` plain, with
    ``?starttls`` for STARTTLS). User and password are percent-decoded; the folder defaults to
    ``INBOX``."""

    host: str
    port: int
    tls: bool
    starttls: bool
    username: str
    password: str
    folder: str

    def __repr__(self) -> str:  # never print the password
        scheme = "imaps" if self.tls else "imap"
        return f"ImapTarget({scheme}://{self.username}@{self.host}:{self.port}/{self.folder})"


def parse_imap_url(url: str) -> ImapTarget:
    """Raises ``ValueError`` for anything that is not an ``imap(s)://user:pass@host`` URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("imap", "imaps"):
        raise ValueError("the IMAP URL must start with imap:// or imaps://")
    if not parts.hostname or parts.username is None or parts.password is None:
        raise ValueError("the IMAP URL needs user, password and host: imaps://user:pass@host/INBOX")
    tls = parts.scheme == "imaps"
    return ImapTarget(
        host=parts.hostname,
        port=parts.port or (993 if tls else 143),
        tls=tls,
        starttls=not tls and "starttls" in parts.query.lower(),
        username=unquote(parts.username),
        password=unquote(parts.password),
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
    )


class ImapPoller:
    """Polls one IMAP folder until stopped. ``poll_once`` runs one round (tests call it)."""

    def __init__(
        self,
        ctx: Context,
        target: ImapTarget,
        *,
        address: str | None = None,
        interval_s: float = 60.0,
        max_message_bytes: int = 10 * 1024 * 1024,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.ctx = ctx
        self.target = target
        self.address = address
        self.interval_s = interval_s
        self.max_message_bytes = max_message_bytes
        self.tls_context = tls_context or ssl.create_default_context()
        self._conn: imaplib.IMAP4 | None = None
        self._use_keyword = True
        self._can_idle = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # -- the loop ---------------------------------------------------------------------------------
    async def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="imap-poller")

    async def stop(self) -> None:
        self._stopping.set()
        conn = self._conn
        if conn is not None:  # wakes a thread blocked in IDLE
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        await self._disconnect()

    async def _run(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            try:
                await self.poll_once()
                backoff = 1.0
                await self._wait_for_mail()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self._stopping.is_set():
                    return
                log.warning("IMAP %r: %s; retrying in %.0f s", self.target, exc, backoff)
                await self._disconnect()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(backoff * 2, 300.0)

    async def _wait_for_mail(self) -> None:
        if self._can_idle and self._conn is not None:
            await asyncio.to_thread(
                self._idle, self._conn, min(IDLE_RENEW_S, max(self.interval_s, 1.0) * 10)
            )
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), self.interval_s)

    # -- one round --------------------------------------------------------------------------------
    async def poll_once(self) -> int:
        """Process every unprocessed message of the folder; how many were processed."""
        conn = await self._connection()
        done = 0
        while True:
            uids = await asyncio.to_thread(self._unprocessed, conn)
            if not uids:
                return done
            for uid in uids[:BATCH]:
                if self._stopping.is_set():
                    return done
                await self._process(conn, uid)
                done += 1

    async def _process(self, conn: imaplib.IMAP4, uid: str) -> None:
        raw = await asyncio.to_thread(self._fetch, conn, uid)
        if raw is None:
            log.warning(
                "IMAP message %s is larger than %d bytes: marked, not read",
                uid,
                self.max_message_bytes,
            )
        else:
            message = read_message(raw)
            if self.address:
                recipients: list[str] = [self.address]
            else:
                recipients = list(message.delivered_to or message.addressed_to)
            envelope_from = (
                message.return_path or message.sender_address or message.from_address or ""
            )
            # Raises on infrastructure failures: the message stays unmarked for the next round.
            await service.receive_message(self.ctx, raw, envelope_from, recipients)
        await asyncio.to_thread(self._mark, conn, uid)

    # -- the connection (all below runs in a worker thread) ---------------------------------
    async def _connection(self) -> imaplib.IMAP4:
        if self._conn is None:
            self._conn = await asyncio.to_thread(self._connect)
        return self._conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await asyncio.to_thread(_logout, conn)

    def _connect(self) -> imaplib.IMAP4:
        t = self.target
        conn: imaplib.IMAP4
        if t.tls:
            conn = imaplib.IMAP4_SSL(t.host, t.port, ssl_context=self.tls_context, timeout=30)
        else:
            conn = imaplib.IMAP4(t.host, t.port, timeout=30)
            if t.starttls:
                conn.starttls(self.tls_context)
        try:
            conn.login(t.username, t.password)
            typ, _ = conn.select(_quote(t.folder))
            if typ != "OK":
                raise imaplib.IMAP4.error(f"cannot select folder {t.folder!r}")
            flags = b" ".join(
                f for f in conn.untagged_responses.get("PERMANENTFLAGS", []) if isinstance(f, bytes)
            )
            self._use_keyword = b"\\*" in flags or KEYWORD.encode() in flags
            self._can_idle = "IDLE" in conn.capabilities
        except BaseException:
            _logout(conn)
            raise
        log.info(
            "IMAP %r connected (%s, %s)",
            t,
            "IDLE" if self._can_idle else "polling",
            KEYWORD if self._use_keyword else "\\Flagged",
        )
        return conn

    def _unprocessed(self, conn: imaplib.IMAP4) -> list[str]:
        conn.noop()  # servers announce new mail on a command; SEARCH sees only announced mail
        criterion = f"UNKEYWORD {KEYWORD}" if self._use_keyword else "UNFLAGGED"
        typ, data = conn.uid("SEARCH", criterion)
        if typ != "OK":
            raise imaplib.IMAP4.error(f"SEARCH failed: {data!r}")
        return [u.decode() for u in (data[0] or b"").split() if u.isdigit()]

    def _fetch(self, conn: imaplib.IMAP4, uid: str) -> bytes | None:
        typ, data = conn.uid("FETCH", uid, "(RFC822.SIZE)")
        size = None
        for item in data or ():
            text = item[0] if isinstance(item, tuple) else item
            if isinstance(text, bytes) and (m := _SIZE_RE.search(text)):
                size = int(m.group(1))
        if size is not None and size > self.max_message_bytes:
            return None
        typ, data = conn.uid("FETCH", uid, "(BODY.PEEK[])")
        if typ != "OK":
            raise imaplib.IMAP4.error(f"FETCH failed: {data!r}")
        for item in data or ():
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return b""  # the message vanished meanwhile: nothing to read, mark nothing harmful

    def _mark(self, conn: imaplib.IMAP4, uid: str) -> None:
        flag = KEYWORD if self._use_keyword else "\\Flagged"
        typ, data = conn.uid("STORE", uid, "+FLAGS.SILENT", f"({flag})")
        if typ != "OK":
            raise imaplib.IMAP4.error(f"STORE failed: {data!r}")

    def _idle(self, conn: imaplib.IMAP4, timeout: float) -> None:
        """RFC 2177 IDLE until the server reports a change, ``timeout`` passes, or :meth:`stop`
        shuts the socket. ``imaplib`` of Python < 3.14 has no IDLE, so it is spoken here."""
        for name in ("EXISTS", "RECENT"):  # already seen by the last search
            conn.untagged_responses.pop(name, None)
        conn.noop()  # mail that arrived since the last search is announced now: no need to wait
        if any(k in conn.untagged_responses for k in ("EXISTS", "RECENT")):
            return
        tag = conn._new_tag()  # type: ignore[attr-defined]
        conn.send(tag + b" IDLE\r\n")
        first = conn.readline()
        if not first.startswith(b"+"):
            raise imaplib.IMAP4.error(f"IDLE refused: {first!r}")
        conn.sock.settimeout(timeout)
        try:
            while not self._stopping.is_set():
                line = conn.readline()
                if not line:
                    raise imaplib.IMAP4.abort("connection closed during IDLE")
                if line.startswith(b"*") and (b"EXISTS" in line or b"RECENT" in line):
                    break
        except TimeoutError:
            pass
        finally:
            conn.sock.settimeout(30)
        conn.send(b"DONE\r\n")
        while True:
            line = conn.readline()
            if not line:
                raise imaplib.IMAP4.abort("connection closed after IDLE")
            if line.startswith(tag):
                return


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _logout(conn: imaplib.IMAP4) -> None:
    with contextlib.suppress(Exception):
        conn.logout()
    with contextlib.suppress(Exception):
        conn.shutdown()
