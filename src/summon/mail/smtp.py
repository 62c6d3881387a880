"""The built-in SMTP receiver: invitations mailed straight to Summon (SPEC §12).

``aiosmtpd``'s protocol (:class:`aiosmtpd.smtp.SMTP`) served by ``loop.create_server`` on the
running loop — no ``Controller`` and its extra thread: the handler calls the mailbox service
directly. What it accepts is narrow on purpose:

- ``RCPT TO`` an address no mailbox has (any workspace; case-insensitive, plus tags allowed) is
  refused with ``550`` at once, so the sending server bounces instead of us swallowing mail;
- messages over ``SUMMON_SMTP_MAX_MESSAGE_BYTES`` are refused (``552``) while they arrive;
  at most :data:`MAX_RECIPIENTS` recipients per message;
- STARTTLS is offered when the operator gives a certificate (``SUMMON_SMTP_TLS_CERT`` and
  ``SUMMON_SMTP_TLS_KEY``), and can be required (``SUMMON_SMTP_REQUIRE_TLS``).

A message is judged and applied before the ``250`` answer; when that fails for an
infrastructure reason the answer is ``451`` and the sending server tries again later. The
content of a message never causes an error answer: bad mail is accepted and recorded as
ignored or refused (an error would only make the sender retry it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, Envelope, Session

import summon
from summon.services import mailboxes as service
from summon.services.context import Context

log = logging.getLogger(__name__)

MAX_RECIPIENTS = 50
#: An idle SMTP session is closed after this many seconds.
SESSION_TIMEOUT_S = 120.0


class InviteHandler:
    """The aiosmtpd handler: recipients are checked against the mailboxes, and every accepted
    message goes to :func:`summon.services.mailboxes.receive_message`."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return "452 4.5.3 Too many recipients"
        try:
            mailbox = await service.find_mailbox(self.ctx, address)
        except Exception:
            log.exception("could not look up the mailbox for %r", address)
            return "451 4.3.0 Temporary failure, try again later"
        if mailbox is None:
            return "550 5.1.1 No such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")
        try:
            await service.receive_message(
                self.ctx, data, envelope.mail_from or "", list(envelope.rcpt_tos)
            )
        except Exception:
            log.exception("could not process a message from %r", envelope.mail_from)
            return "451 4.3.0 Temporary failure, try again later"
        return "250 2.0.0 OK"


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A server context for STARTTLS from the operator's PEM files."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context


class SmtpReceiver:
    """The SMTP server on the running event loop. ``start`` binds (``port`` 0: any free port,
    see :attr:`port`), ``stop`` closes the listener and every open session."""

    def __init__(
        self,
        ctx: Context,
        host: str,
        port: int,
        *,
        hostname: str | None = None,
        max_message_bytes: int = 10 * 1024 * 1024,
        tls: ssl.SSLContext | None = None,
        require_tls: bool = False,
    ) -> None:
        self.ctx = ctx
        self.host = host
        self.requested_port = port
        self.hostname = hostname or socket.gethostname()  # not getfqdn(): that may block on DNS
        self.max_message_bytes = max_message_bytes
        self.tls = tls
        self.require_tls = require_tls and tls is not None
        self.handler = InviteHandler(ctx)
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[SMTP] = set()

    @property
    def port(self) -> int:
        """The port listened on (the bound one when started with port 0)."""
        if self._server is None or not self._server.sockets:
            return self.requested_port
        return int(self._server.sockets[0].getsockname()[1])

    def _protocol(self) -> SMTP:
        receiver = self

        class _Session(SMTP):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                receiver._sessions.add(self)
                super().connection_made(transport)

            def connection_lost(self, error: Exception | None) -> None:
                receiver._sessions.discard(self)
                super().connection_lost(error)

        return _Session(
            self.handler,
            data_size_limit=self.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.hostname,
            ident=f"Summon {summon.__version__}",
            tls_context=self.tls,
            require_starttls=self.require_tls,
            timeout=SESSION_TIMEOUT_S,
            loop=asyncio.get_running_loop(),
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, self.host, self.requested_port, reuse_address=True
        )
        log.info(
            "SMTP receiver on %s:%s%s", self.host, self.port, " (STARTTLS)" if self.tls else ""
        )

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        tasks: list[Any] = []
        for session in list(self._sessions):
            task = getattr(session, "_handler_coroutine", None)
            if task is not None:
                task.cancel()
                tasks.append(task)
            if session.transport is not None:
                session.transport.close()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        await self._server.wait_closed()
        self._server = None
