"""Bot mailboxes and the invites they received, as the domain sees them (SPEC §12).

A **mailbox** is an e-mail address owned by one workspace: inviting it to a meeting schedules a
bot with the mailbox's ``bot_config``, if the invite comes from one of its ``allowed_senders``.
Addresses are unique across the whole installation (mail for an address can only go to one
workspace) and kept lower-cased: mail systems treat addresses case-insensitively in practice.

An **invite** is the mailbox's memory of one iCalendar series (one ``UID``): the version it
applied last (``sequence``/``dtstamp``, RFC 5546 ordering), the iCalendar text of that version
(re-expanded as the sync window moves, so a weekly meeting keeps getting bots), the
single-occurrence changes and cancellations that arrived in messages of their own, and the
event-bot references it holds (:mod:`summon.services.event_bots`). ``status`` says what came of
it: ``scheduled``, ``ignored`` / ``refused`` (with the reason), or ``cancelled``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from summon.domain.errors import FieldInvalid, RuleViolation

SCHEDULED, IGNORED, CANCELLED, REFUSED = "scheduled", "ignored", "cancelled", "refused"
INVITE_STATUSES: tuple[str, ...] = (SCHEDULED, IGNORED, CANCELLED, REFUSED)

MAX_ADDRESS_LENGTH = 254
MAX_ALLOWED_SENDERS = 500
MAX_UID_LENGTH = 1000

# ASCII addresses only (internationalised domains in their xn-- form): a dot-atom local part
# and a domain of dot-separated labels.
_LOCAL = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"
_ADDRESS_RE = re.compile(rf"{_LOCAL}@{_DOMAIN}")
_DOMAIN_RE = re.compile(_DOMAIN)


class MailboxAddressTaken(RuleViolation):
    """Another mailbox (of any workspace) already has this address."""

    code, http_status = "mailbox_address_taken", 409


@dataclass(slots=True)
class Mailbox:
    id: UUID
    workspace_id: UUID
    address: str  # normalised: see normalise_address
    bot_config: dict[str, Any]  # Create Bot fields except meeting_url and join_at
    allowed_senders: list[str]  # normalised entries: see normalise_sender_entry
    send_replies: bool  # answer organizers with an iMIP REPLY (needs SUMMON_SMTP_RELAY_URL)
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class InstanceChange:
    """One occurrence of a series changed (``calendar`` holds the message's iCalendar text) or
    cancelled (``calendar`` is None) by a message of its own, i.e. one whose VEVENT carries a
    ``RECURRENCE-ID`` and no master."""

    recurrence_id: datetime
    sequence: int
    dtstamp: datetime | None
    calendar: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "recurrence_id": self.recurrence_id.isoformat(),
            "sequence": self.sequence,
            "dtstamp": self.dtstamp.isoformat() if self.dtstamp else None,
            "calendar": self.calendar,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> InstanceChange:
        return InstanceChange(
            recurrence_id=datetime.fromisoformat(data["recurrence_id"]),
            sequence=int(data["sequence"]),
            dtstamp=datetime.fromisoformat(data["dtstamp"]) if data.get("dtstamp") else None,
            calendar=data.get("calendar"),
        )


@dataclass(frozen=True, slots=True)
class HeldBot:
    """An event-bot reference an invite holds: the ``ref`` given to ``attach_bot``, the bot it
    returned, and when the occurrence starts and ends (a ref whose occurrence is over is
    forgotten instead of detached)."""

    ref: str
    bot_id: UUID
    start: datetime
    end: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "bot_id": str(self.bot_id),
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> HeldBot:
        return HeldBot(
            data["ref"],
            UUID(data["bot_id"]),
            datetime.fromisoformat(data["start"]),
            datetime.fromisoformat(data["end"]),
        )


@dataclass(slots=True)
class Invite:
    """What a mailbox knows of one series (``uid``). ``version`` fences concurrent writers."""

    id: UUID
    mailbox_id: UUID
    workspace_id: UUID
    uid: str
    method: str  # of the last message applied: REQUEST, CANCEL, … (or what was refused)
    sequence: int
    dtstamp: datetime | None
    status: str  # one of INVITE_STATUSES
    reason: str | None
    calendar: str | None  # iCalendar text of the applied REQUEST (for re-expansion)
    body_link: str | None  # a meeting link found in the message body, when the calendar has none
    instances: list[InstanceChange]
    bots: list[HeldBot]
    recurring: bool
    organizer: str | None
    title: str | None
    sender: str | None  # envelope sender of the last message applied
    message_id: str | None
    #: When the periodic pass should look at it again (recurring series: new occurrences enter
    #: the window; failed attaches: retry); None: nothing to do until the next message.
    next_check_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int = 1
    #: Not stored: how the last message was judged, for logs and tests.
    outcome: str | None = field(default=None, compare=False)

    @property
    def authoritative(self) -> bool:
        """Whether this record carries a version an organizer's message set (placeholders for
        refused or ignored mail do not: any authorised message replaces them)."""
        return self.status in (SCHEDULED, CANCELLED) or (
            self.status == IGNORED and self.calendar is not None
        )


def normalise_address(text: str) -> str:
    """``Bot@Example.COM``, ``<bot@example.com>``, ``MAILTO:bot@example.com`` → ``bot@example.com``.
    Returns "" for anything that is not one plain address."""
    value = text.strip()
    if value[:1] == "<" and value[-1:] == ">":
        value = value[1:-1].strip()
    if value[:7].lower() == "mailto:":
        value = value[7:].strip()
    value = value.lower()
    if len(value) > MAX_ADDRESS_LENGTH or not _ADDRESS_RE.fullmatch(value):
        return ""
    return value


def without_tag(address: str) -> str:
    """Plus-addressing: ``bot+team-a@example.com`` → ``bot@example.com`` (unchanged otherwise)."""
    local, at, domain = address.partition("@")
    base = local.split("+", 1)[0]
    return f"{base}@{domain}" if at and base else address


def validate_address(text: str) -> str:
    address = normalise_address(text)
    if not address:
        raise FieldInvalid("address", "Enter one e-mail address, like bot@example.com.")
    return address


def normalise_sender_entry(text: str) -> str:
    """An ``allowed_senders`` entry, lower-cased: a full address (``alice@example.com``), a
    domain (``example.com`` or ``@example.com``: that domain only) or ``*.example.com`` (the
    domain and all its subdomains). Returns "" when it is none of these."""
    value = text.strip().lower()
    if "@" in value[1:]:
        return normalise_address(value)
    wildcard = value.startswith("*.")
    domain = value[2:] if wildcard else value.removeprefix("@")
    if not domain or len(domain) > MAX_ADDRESS_LENGTH or not _DOMAIN_RE.fullmatch(domain):
        return ""
    return f"*.{domain}" if wildcard else domain


def validate_allowed_senders(entries: list[str]) -> list[str]:
    if len(entries) > MAX_ALLOWED_SENDERS:
        raise FieldInvalid("allowed_senders", f"At most {MAX_ALLOWED_SENDERS} entries.")
    out: list[str] = []
    for i, entry in enumerate(entries):
        value = normalise_sender_entry(entry)
        if not value:
            raise FieldInvalid(
                f"allowed_senders.{i}",
                "Enter a domain (example.com), *.example.com, or an address (alice@example.com).",
            )
        if value not in out:
            out.append(value)
    return out


def sender_allowed(allowed: list[str], address: str | None) -> bool:
    """Whether ``address`` (any spelling :func:`normalise_address` accepts) matches an entry.
    Nothing matches an empty list, and an empty or unparseable address matches nothing."""
    value = normalise_address(address or "")
    if not value:
        return False
    domain = value.rsplit("@", 1)[1]
    for entry in allowed:
        if "@" in entry:
            if entry == value:
                return True
        elif entry.startswith("*."):
            base = entry[2:]
            if domain == base or domain.endswith("." + base):
                return True
        elif domain == entry:
            return True
    return False
