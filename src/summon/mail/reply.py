"""The courtesy answer: an iMIP ``REPLY`` (RFC 6047) telling the organizer the bot accepted.

Off by default. It is sent only for mailboxes with ``send_replies`` and only when the operator
configured a relay (``SUMMON_SMTP_RELAY_URL``: ``smtp://user:pass@host:587`` — STARTTLS when
the relay offers it — or ``smtps://…:465``), once per new version of an invitation that got a
bot. The reply is plain iCalendar written here (a handful of properties: RFC 5546 §3.2.3) and
goes out with ``smtplib`` in a worker thread.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from urllib.parse import unquote, urlsplit

from summon.domain.mailboxes import Invite

TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class Relay:
    host: str
    port: int
    tls: bool  # implicit TLS (smtps)
    username: str | None
    password: str | None


def parse_relay_url(url: str) -> Relay:
    """``smtp[s]://[user:pass@]host[:port]``; ``ValueError`` otherwise."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("the relay URL must be smtp://host[:port] or smtps://host[:port]")
    tls = parts.scheme == "smtps"
    return Relay(
        host=parts.hostname,
        port=parts.port or (465 if tls else 25),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def _fold(line: str) -> str:
    """RFC 5545 §3.1: lines longer than 75 octets continue on lines starting with a space."""
    out: list[str] = []
    current = ""
    for char in line:
        if len((current + char).encode()) > (75 if not out else 74):
            out.append(current)
            current = ""
        current += char
    out.append(current)
    return "\r\n ".join(out)


def reply_calendar(invite: Invite, bot_address: str, now: datetime) -> str:
    """The ``METHOD:REPLY`` calendar accepting ``invite`` on behalf of ``bot_address``."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    lines = [
        "BEGIN:VCALENDAR",
        "PRODID:-//Summon//Summon bot mailbox//EN",
        "VERSION:2.0",
        "METHOD:REPLY",
        "BEGIN:VEVENT",
        f"UID:{invite.uid}",
        f"SEQUENCE:{invite.sequence}",
        f"DTSTAMP:{stamp}",
        f"ORGANIZER:mailto:{invite.organizer}",
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{bot_address}",
    ]
    if invite.title:
        lines.append(f"SUMMARY:{_escape(invite.title)}")
    lines += ["REQUEST-STATUS:2.0;Success", "END:VEVENT", "END:VCALENDAR"]
    return "\r\n".join(_fold(line) for line in lines) + "\r\n"


def reply_message(invite: Invite, bot_address: str, now: datetime) -> EmailMessage:
    message = EmailMessage()
    message["From"] = bot_address
    message["To"] = invite.organizer or ""
    message["Subject"] = f"Accepted: {invite.title or 'your invitation'}"[:200]
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = make_msgid(domain=bot_address.rpartition("@")[2] or None)
    message["Auto-Submitted"] = "auto-replied"
    message.set_content(f"{bot_address} accepted the invitation; a bot will join the meeting.\n")
    message.add_alternative(
        reply_calendar(invite, bot_address, now).encode(),
        maintype="text",
        subtype="calendar",
        params={"method": "REPLY", "charset": "UTF-8"},
    )
    return message


def _send(relay: Relay, message: EmailMessage, sender: str, recipient: str) -> None:
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if relay.tls:
        client = smtplib.SMTP_SSL(relay.host, relay.port, timeout=TIMEOUT_S, context=context)
    else:
        client = smtplib.SMTP(relay.host, relay.port, timeout=TIMEOUT_S)
    with client:
        client.ehlo()
        if not relay.tls and client.has_extn("starttls"):
            client.starttls(context=context)
            client.ehlo()
        if relay.username is not None:
            client.login(relay.username, relay.password or "")
        client.send_message(message, from_addr=sender, to_addrs=[recipient])


async def send_accept(relay_url: str, bot_address: str, invite: Invite, now: datetime) -> None:
    """Send the REPLY for ``invite`` to its organizer through the relay. Raises on failure
    (the caller logs it)."""
    if not invite.organizer:
        return
    message = reply_message(invite, bot_address, now)
    await asyncio.to_thread(
        _send, parse_relay_url(relay_url), message, bot_address, invite.organizer
    )
