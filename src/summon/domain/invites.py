"""iMIP invitations (RFC 6047) in e-mail: what a message says, who sent it, and what it changes.

Pure code, no I/O. Both receivers (the SMTP server and the IMAP poller) hand raw messages to
``summon.services.mailboxes.receive_message``, which uses this module in three steps:

1. :func:`read_message` takes a raw message apart — **defensively**: the bytes come from
   anyone on the internet. It never raises, and its work is bounded: at most
   :data:`MAX_PARTS` parts and :data:`MAX_CONTAINERS` multipart levels, every header value cut
   at :data:`MAX_HEADER_CHARS` (the standard library's parameter and address parsers take
   quadratic time or worse on long hostile headers, so they never see one), calendar parts of
   at most :data:`MAX_CALENDAR_BYTES`, unknown charsets decoded as UTF-8 with replacement.
   Calendars are found wherever real clients put them: an inline ``text/calendar; method=…``
   part (Google, Outlook, Apple), an ``application/ics`` or ``application/octet-stream``
   attachment (``invite.ics``), or a message that *is* a calendar; base64 and
   quoted-printable alike. The same calendar inline and attached is kept once. Messages
   attached to the message (``message/rfc822``: a forwarded invite) are not looked into: an
   attached invitation was sent by someone else, to someone else.

2. :func:`authorise` decides whether a sender may schedule bots on a mailbox (below).

3. :func:`judge` turns one iCalendar series of the message into a new state of the mailbox's
   :class:`~summon.domain.mailboxes.Invite` for that ``UID`` — scheduled, updated, cancelled
   (whole series, or single occurrences by ``RECURRENCE-ID``), or left alone with a reason —
   and :func:`wanted_occurrences` says which occurrences of a state want a bot inside a window.

Who may schedule
----------------
``allowed_senders`` (see :func:`summon.domain.mailboxes.sender_allowed`) must match **both**
the envelope sender (SMTP ``MAIL FROM``; over IMAP the ``Return-Path`` the delivering server
wrote) **and** the ``ORGANIZER`` of every series the message touches. A series without an
``ORGANIZER`` is judged by the ``From:`` address instead.

Calendar services send for their users: Google Calendar's envelope sender is a bounce address
(``…@calendar-server.bounces.google.com``) with ``Sender: calendar-notification@google.com``
and the user in ``From:``. When the envelope sender is such a **calendar relay**
(``SUMMON_MAIL_CALENDAR_RELAYS``, entries like ``allowed_senders``; Google's by default), the
``From:`` address stands for it in the envelope check (:func:`envelope_identity`); the
organizer is checked as always. ``Sender:`` is never used to decide (it names the sending
agent, not who invites), nor is ``From:`` otherwise. A null envelope sender (``<>``, bounces
and auto-replies) is never allowed. All of these are as easy to forge as each other: forgery
is only stopped by the optional authentication checks (:func:`authentication_results`,
``SUMMON_MAIL_REQUIRE_AUTH``): they read the ``Authentication-Results`` header of the
operator's own receiving server (RFC 8601) and require ``spf=pass`` and/or a ``dkim=pass``
whose signing domain is the organizer's domain or an allowed domain.

Who an invite is for
--------------------
An invite is for the mailbox that received it, whether or not the mailbox's address is among
the ``ATTENDEE``\\ s: invitations reach the bot through aliases, distribution lists and
forwarding rules, where the attendee is the list and not the bot. Addresses compare
case-insensitively, ``mailto:`` or not, and ``bot+anything@example.com`` is delivered to
``bot@example.com`` unless a mailbox has exactly the tagged address.

Versions
--------
RFC 5546 ordering (:func:`summon.domain.icalendar.supersedes`): a higher ``SEQUENCE`` wins, an
equal one with a later ``DTSTAMP`` wins. A late-arriving older version changes nothing. A
``CANCEL`` wins a tie with a ``REQUEST``, so a cancellation is not undone by the invitation it
cancelled arriving late; re-inviting after a cancellation needs a higher version, as RFC 5546
requires. A message repeating the applied version is applied again (idempotently), which
repairs a delivery that failed half-way. ``REQUEST`` and ``PUBLISH`` (and calendars without a
``METHOD``, e.g. an ``.ics`` file sent by hand) schedule; ``CANCEL`` cancels; ``REPLY``,
``COUNTER``, ``DECLINECOUNTER``, ``REFRESH``, ``ADD`` and free/busy requests change nothing.
``RANGE=THISANDFUTURE`` on a cancelled occurrence is not honoured: the organizer's clients
send the series again with its new end, which is applied as usual.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.utils
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message
from email.policy import EmailPolicy
from uuid import UUID, uuid4

from summon.domain.icalendar import (
    Occurrence,
    ParsedCalendar,
    Series,
    expand,
    parse_calendar,
    supersedes,
)
from summon.domain.mailboxes import (
    CANCELLED,
    IGNORED,
    SCHEDULED,
    InstanceChange,
    Invite,
    normalise_address,
    sender_allowed,
)
from summon.domain.meeting_urls import find_meeting_url

#: Larger messages are not looked into (the SMTP server refuses them before that).
MAX_MESSAGE_BYTES = 25 * 1024 * 1024
#: Parts looked at per message; multipart containers (including attached messages) allowed.
MAX_PARTS = 200
MAX_CONTAINERS = 40
#: Header values are cut here before any parser sees them.
MAX_HEADER_CHARS = 8192
#: Headers per message (all parts together).
MAX_HEADERS = 5000
#: Part delimiter lines per message: bounds the parser's work on "--b\r\n" × a million.
MAX_DELIMITERS = 2000
MAX_CALENDAR_BYTES = 2 * 1024 * 1024
MAX_CALENDARS = 10
#: Characters of text and HTML body kept for finding a meeting link.
MAX_BODY_CHARS = 500_000

CALENDAR_TYPES = frozenset(
    {
        "text/calendar",
        "application/ics",
        "application/x-ics",
        "text/x-vcalendar",
        "application/calendar",
        "text/icalendar",
        "application/icalendar",
    }
)
CALENDAR_SUFFIXES = (".ics", ".ical", ".icalendar", ".ifb", ".vcs")
#: Content types of attachments that may hold a calendar under another name.
SNIFFED_TYPES = frozenset(
    {"application/octet-stream", "text/plain", "text/x-ical", "text/directory"}
)

SCHEDULING_METHODS = frozenset({"REQUEST", "PUBLISH"})
INERT_METHODS = {
    "REPLY": "a REPLY (an attendee's answer) changes nothing",
    "COUNTER": "a COUNTER (an attendee's proposal) changes nothing",
    "DECLINECOUNTER": "a DECLINECOUNTER changes nothing",
    "REFRESH": "a REFRESH (a request for the latest version) changes nothing",
    "ADD": "ADD (extra occurrences sent apart from their series) is not supported",
}


class _TooComplex(Exception):
    """The message has more headers or nested multiparts than we are willing to parse."""


class _BoundedPolicy(EmailPolicy):
    """``policy.default``, with two things taken out of the standard library's hands: header
    values are cut at :data:`MAX_HEADER_CHARS` as they are read (and counted), and fetching a
    header returns its raw text — structured parsing happens in this module, on bounded
    input."""

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        budget = self.__dict__["_budget"]
        budget[0] -= 1
        if budget[0] < 0:
            raise _TooComplex("too many headers")
        name, value = super().header_source_parse(sourcelines)
        value = value[:MAX_HEADER_CHARS]
        if name.lower() == "content-type" and value.lstrip()[:10].lower() in (
            "multipart/",
            "message/rf",
        ):
            budget[1] -= 1
            if budget[1] < 0:
                raise _TooComplex("too many nested parts")
        return name, value

    def header_fetch_parse(self, name: str, value: str) -> str:  # type: ignore[override]
        return value


def _policy() -> _BoundedPolicy:
    policy = _BoundedPolicy()
    # Policies are immutable; each parse gets its own budget (headers, containers).
    object.__setattr__(policy, "_budget", [MAX_HEADERS, MAX_CONTAINERS])
    return policy


@dataclass(frozen=True, slots=True)
class CalendarPart:
    """One calendar found in a message. ``method`` is the ``method=`` parameter of the part's
    ``Content-Type`` (RFC 6047), upper-cased; ``inline`` says it was a body part rather than an
    attachment."""

    text: str
    method: str | None
    inline: bool


@dataclass(frozen=True, slots=True)
class MailMessage:
    """What :func:`read_message` found. Addresses are normalised (lower-case, no brackets) or
    None; ``problems`` explains what was skipped."""

    message_id: str | None
    subject: str | None
    from_address: str | None
    sender_address: str | None
    return_path: str | None
    #: Where the delivering server says it delivered the message (Delivered-To,
    #: X-Original-To, Envelope-To), and whom it is addressed to (To, Cc): for receivers that
    #: have no envelope (IMAP).
    delivered_to: tuple[str, ...]
    addressed_to: tuple[str, ...]
    calendars: tuple[CalendarPart, ...]
    #: The text and HTML bodies (not attachments), for finding a meeting link.
    body_text: str
    #: ``Authentication-Results`` values, topmost (added last) first.
    authentication_results: tuple[str, ...]
    auto_submitted: str | None
    problems: tuple[str, ...]


EMPTY = MailMessage(None, None, None, None, None, (), (), (), "", (), None, ())


def read_message(raw: bytes) -> MailMessage:
    """Take a raw RFC 5322 message apart. Never raises; see the module docstring for limits."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        return replace(EMPTY, problems=("not a message",))
    raw = bytes(raw)
    if len(raw) > MAX_MESSAGE_BYTES:
        return replace(EMPTY, problems=(f"message larger than {MAX_MESSAGE_BYTES} bytes",))
    if raw.count(b"\n--") > MAX_DELIMITERS:
        return replace(EMPTY, problems=("too many MIME parts",))
    try:
        message = email.message_from_bytes(raw, policy=_policy())
    except _TooComplex as exc:
        return replace(EMPTY, problems=(str(exc),))
    except Exception as exc:  # the parser gave up on something we did not foresee
        return replace(EMPTY, problems=(f"unparseable message ({type(exc).__name__})",))
    try:
        return _read(message)
    except Exception as exc:  # a defensive net: one bad message must never stop a receiver
        return replace(EMPTY, problems=(f"unreadable message ({type(exc).__name__})",))


def _read(message: Message) -> MailMessage:
    headers = _headers(message)
    problems: list[str] = []
    found: list[CalendarPart] = []
    bodies: list[str] = []
    for part in _leaves(message, problems):
        _take(part, found, bodies, problems)
    calendars = _distinct(found, problems)
    body = "\n".join(bodies)[:MAX_BODY_CHARS]

    def first_address(*names: str) -> str | None:
        for name in names:
            for value in headers.get(name, ()):
                for _, address in _addresses(value):
                    return address
        return None

    def all_addresses(*names: str) -> tuple[str, ...]:
        out: list[str] = []
        for name in names:
            for value in headers.get(name, ()):
                for _, address in _addresses(value):
                    if address not in out:
                        out.append(address)
        return tuple(out[:100])

    return MailMessage(
        message_id=_one(headers, "message-id", 998),
        subject=_subject(_one(headers, "subject", MAX_HEADER_CHARS)),
        from_address=first_address("from"),
        sender_address=first_address("sender"),
        return_path=first_address("return-path"),
        delivered_to=all_addresses("delivered-to", "x-original-to", "envelope-to", "x-envelope-to"),
        addressed_to=all_addresses("to", "cc"),
        calendars=calendars,
        body_text=body,
        authentication_results=tuple(headers.get("authentication-results", ()))[:20],
        auto_submitted=_one(headers, "auto-submitted", 100),
        problems=tuple(problems),
    )


def _headers(message: Message) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        out.setdefault(str(name).strip().lower(), []).append(_clean(str(value)))
    return out


def _clean(value: str) -> str:
    """Unfold and drop what bytes the parser could not decode (kept as surrogates)."""
    value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return re.sub(r"\r?\n[ \t]*", " ", value).strip()


def _one(headers: dict[str, list[str]], name: str, limit: int) -> str | None:
    values = headers.get(name)
    return values[0][:limit] if values else None


def _subject(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(make_header(decode_header(value)))[:1000]
    except Exception:
        return value[:1000]


def _addresses(value: str) -> list[tuple[str, str]]:
    """(name, normalised address) pairs of an address header; unparseable entries dropped."""
    out: list[tuple[str, str]] = []
    try:
        pairs = email.utils.getaddresses([value])
    except Exception:
        return out
    for name, address in pairs[:200]:
        normal = normalise_address(address)
        if normal:
            out.append((name, normal))
    return out


def _leaves(message: Message, problems: list[str]) -> Iterable[Message]:
    """Every non-container part, depth first, at most :data:`MAX_PARTS` of them (an explicit
    stack: nesting depth costs no recursion)."""
    stack: list[Message] = [message]
    seen = 0
    while stack:
        part = stack.pop()
        seen += 1
        if seen > MAX_PARTS:
            problems.append(f"only the first {MAX_PARTS} parts were read")
            return
        ctype = _content_type(part)
        if ctype.startswith("message/") and part is not message:
            continue  # an attached message: someone else's mail
        if part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, list):
                stack.extend(reversed([p for p in payload if isinstance(p, Message)]))
            continue
        yield part


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "application/octet-stream"


def _param(part: Message, name: str, header: str = "content-type") -> str | None:
    try:
        value = part.get_param(name, header=header)
    except Exception:
        return None
    if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
        try:
            value = email.utils.collapse_rfc2231_value(value)
        except Exception:
            return None
    return str(value)[:1000] if value is not None else None


def _filename(part: Message) -> str:
    name = _param(part, "filename", "content-disposition") or _param(part, "name") or ""
    return name.strip().lower()


def _disposition(part: Message) -> str:
    value = part.get("content-disposition")
    return str(value).split(";", 1)[0].strip().lower() if value else ""


def _payload(part: Message) -> bytes:
    """The decoded body of a leaf part (base64, quoted-printable, 7/8bit); lenient."""
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    if isinstance(raw, str):
        try:
            return base64.b64decode(raw, validate=False)
        except (binascii.Error, ValueError):
            return raw.encode("utf-8", "surrogateescape")
    return b""


def _text(data: bytes, charset: str | None) -> str:
    """Bytes to text: a BOM wins, then the declared charset if Python knows it, then UTF-8;
    undecodable bytes become U+FFFD."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", "replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace")
    name = "utf-8"
    if charset:
        try:
            name = codecs.lookup(charset.strip().strip('"')).name
        except (LookupError, ValueError):
            name = "utf-8"
    try:
        return data.decode(name, "replace")
    except Exception:  # codecs that are not text encodings (e.g. "zlib_codec")
        return data.decode("utf-8", "replace")


def _looks_like_calendar(text: str) -> bool:
    return "BEGIN:VCALENDAR" in text[:4096].upper()


def _take(part: Message, found: list[CalendarPart], bodies: list[str], problems: list[str]) -> None:
    ctype = _content_type(part)
    filename = _filename(part)
    disposition = _disposition(part)
    named_calendar = filename.endswith(CALENDAR_SUFFIXES)
    if (
        ctype in CALENDAR_TYPES
        or named_calendar
        or (ctype in SNIFFED_TYPES and disposition == "attachment")
    ):
        data = _payload(part)
        if len(data) > MAX_CALENDAR_BYTES:
            problems.append(f"a calendar part larger than {MAX_CALENDAR_BYTES} bytes was skipped")
            return
        text = _text(data, _param(part, "charset"))
        if _looks_like_calendar(text):
            method = (_param(part, "method") or "").strip().upper() or None
            inline = ctype == "text/calendar" and disposition != "attachment"
            found.append(CalendarPart(text, method, inline))
            return
        if ctype in CALENDAR_TYPES or named_calendar:
            problems.append(f"a {ctype} part holds no calendar")
            return
    if ctype in ("text/plain", "text/html") and disposition != "attachment":
        if sum(len(b) for b in bodies) < MAX_BODY_CHARS:
            data = _payload(part)[: MAX_BODY_CHARS * 4]
            bodies.append(_text(data, _param(part, "charset")))


def _fingerprint(text: str) -> str:
    normal = "\n".join(
        line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    )
    return hashlib.sha256(normal.strip().encode("utf-8", "replace")).hexdigest()


def _distinct(found: list[CalendarPart], problems: list[str]) -> tuple[CalendarPart, ...]:
    """The calendars, each once (the same text inline and attached is one calendar), inline
    ``text/calendar`` parts first: RFC 6047 makes them the authoritative copy."""
    ordered = sorted(found, key=lambda c: (not c.inline, c.method is None))
    out: list[CalendarPart] = []
    seen: set[str] = set()
    for part in ordered:
        digest = _fingerprint(part.text)
        if digest in seen:
            continue
        seen.add(digest)
        if len(out) == MAX_CALENDARS:
            problems.append(f"only the first {MAX_CALENDARS} calendars were read")
            break
        out.append(part)
    return tuple(out)


def envelope_identity(
    envelope_from: str | None, message: MailMessage, relays: Sequence[str]
) -> str:
    """The address the envelope check applies to: the envelope sender, or the ``From:``
    address when the envelope sender is one of the calendar ``relays``."""
    envelope = normalise_address(envelope_from or "")
    if envelope and relays and sender_allowed(list(relays), envelope):
        return message.from_address or ""
    return envelope


# -- authentication results -----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuthResults:
    """What the operator's receiving server verified (RFC 8601). ``spf`` is the SPF result
    (``pass``, ``fail``, ``softfail``, …) or None when not reported; ``dkim_domains`` the
    signing domains (``header.d``) of the DKIM signatures that passed."""

    spf: str | None = None
    dkim_domains: frozenset[str] = frozenset()


_RESULT_RE = re.compile(r"(?:^|[;\s])(spf|dkim)\s*=\s*([a-z]+)([^;]*)", re.IGNORECASE)
_DKIM_DOMAIN_RE = re.compile(r"header\.d\s*=\s*\"?([a-z0-9.-]+)", re.IGNORECASE)


def authentication_results(values: Sequence[str], authserv_id: str) -> AuthResults | None:
    """The results of the topmost ``Authentication-Results`` header written by
    ``authserv_id`` (the operator's server; it must remove headers claiming its id from
    incoming mail, RFC 8601 §5). None when there is none."""
    wanted = authserv_id.strip().lower()
    for value in values:
        head, _, rest = value.partition(";")
        ident = head.split()
        if not ident or ident[0].lower() != wanted:
            continue
        spf: str | None = None
        dkim: set[str] = set()
        for kind, result, props in _RESULT_RE.findall(rest[:MAX_HEADER_CHARS]):
            kind, result = kind.lower(), result.lower()
            if kind == "spf" and spf is None:
                spf = result
            elif kind == "dkim" and result == "pass":
                if m := _DKIM_DOMAIN_RE.search(props):
                    dkim.add(m.group(1).lower().rstrip("."))
        return AuthResults(spf, frozenset(dkim))
    return None


def authentication_problem(
    required: Iterable[str],
    results: AuthResults | None,
    organizer: str | None,
    allowed: Sequence[str],
) -> str | None:
    """Why the required checks (``spf``, ``dkim``) fail, or None when they pass. A DKIM
    signature counts when its domain is the organizer's domain (or a parent of it) or an
    allowed domain."""
    needed = {r.strip().lower() for r in required if r.strip()}
    if not needed:
        return None
    if results is None:
        return "no Authentication-Results from the receiving server"
    if "spf" in needed and results.spf != "pass":
        return f"SPF {results.spf or 'not checked'}"
    if "dkim" in needed:
        domains = {a.removeprefix("*.") for a in allowed if "@" not in a}
        organizer_domain = (organizer or "").rpartition("@")[2]
        for signer in results.dkim_domains:
            if signer in domains or (
                organizer_domain
                and (organizer_domain == signer or organizer_domain.endswith("." + signer))
            ):
                return None
        return "no passing DKIM signature of the organizer's or an allowed domain"
    return None


# -- the series of a message ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SeriesItem:
    """One series (``UID``) of a message, as the mailbox will judge it.

    ``whole`` is true when the message describes the whole series (it has the master
    component); otherwise it only changes or cancels the occurrences in ``recurrence_ids``.
    ``calendar`` is the series alone as iCalendar text (what is stored and re-expanded).
    """

    uid: str
    method: str
    series: Series
    calendar: str
    whole: bool
    cancelled: bool
    recurrence_ids: tuple[datetime, ...]
    sequence: int
    dtstamp: datetime | None
    organizer: str | None
    title: str | None
    body_link: str | None


def series_items(message: MailMessage) -> tuple[list[SeriesItem], str | None]:
    """The series of a message's calendars, one per ``UID`` (the newest version when several
    calendars carry it; the first on a tie, inline parts coming first). When there are none,
    the reason why."""
    chosen: dict[str, SeriesItem] = {}
    order: list[str] = []
    freebusy = False
    problems: list[str] = []
    body_link: str | None = None
    body_searched = False
    for part in message.calendars:
        parsed: ParsedCalendar = parse_calendar(part.text)
        problems.extend(p.reason for p in parsed.problems[:3])
        freebusy = freebusy or "BEGIN:VFREEBUSY" in part.text.upper()
        method = (parsed.method or part.method or "PUBLISH").upper()[:32]
        for series in parsed.series:
            if not body_searched:
                body_link, body_searched = _body_link(message.body_text), True
            item = _item(series, method, body_link)
            old = chosen.get(item.uid)
            if old is None:
                order.append(item.uid)
                chosen[item.uid] = item
            elif supersedes(item.sequence, item.dtstamp, old.sequence, old.dtstamp):
                chosen[item.uid] = item
    items = [chosen[uid] for uid in order]
    if items:
        return items, None
    if freebusy:
        return [], "a free/busy request changes nothing"
    detail = f": {'; '.join(problems[:3])}" if problems else ""
    return [], f"no event in the calendar{detail}"


def _body_link(text: str) -> str | None:
    if not text:
        return None
    found = find_meeting_url(text)
    return found.format() if found is not None else None


def _components(series: Series) -> list[object]:
    # The model keeps the master and overrides of a series to itself; what an invitation
    # needs from them (whether the master is there, organizer, title) is read here, in one
    # place.
    master = getattr(series, "_master", None)
    return [e for e in (master, *getattr(series, "_overrides", ())) if e is not None]


def _detail(series: Series, name: str) -> str | None:
    for component in _components(series):
        try:
            value = getattr(component.details(), name)  # type: ignore[attr-defined]
        except Exception:
            continue
        if value:
            return str(value)
    return None


def _recurrence_ids(series: Series) -> tuple[datetime, ...]:
    """Original starts of the occurrences the series names on their own — including those of
    components without ``DTSTART`` (a ``CANCEL`` may name an occurrence by ``RECURRENCE-ID``
    alone)."""
    found = list(series.recurrence_ids)
    for component in getattr(series, "_overrides", ()):
        moment = getattr(component, "recurrence_id", None)
        instant = getattr(moment, "utc", None)
        if isinstance(instant, datetime) and instant not in found:
            found.append(instant)
    return tuple(sorted(found))


def storable(text: str) -> str:
    """``text`` as every store can keep it: no NUL characters (PostgreSQL refuses them in text
    and JSON) and no unpaired surrogates (not UTF-8)."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _item(series: Series, method: str, body_link: str | None) -> SeriesItem:
    whole = getattr(series, "_master", None) is not None
    calendar = series.to_ical()
    if storable(calendar) != calendar:
        # Read the cleaned text again, so that what is stored and what was judged agree.
        cleaned = parse_calendar(storable(calendar)).series
        series = next((c for c in cleaned if c.uid == storable(series.uid)), series)
        calendar = storable(series.to_ical())
    uid = storable(series.uid)
    if len(uid) > MAX_UID_CHARS:
        uid = "sha256:" + hashlib.sha256(uid.encode()).hexdigest()
    return SeriesItem(
        uid=uid,
        method=method,
        series=series,
        calendar=calendar,
        whole=whole,
        cancelled=series.cancelled or method == "CANCEL",
        recurrence_ids=_recurrence_ids(series),
        sequence=series.sequence,
        dtstamp=series.dtstamp,
        organizer=normalise_address(_detail(series, "organizer") or "") or None,
        title=storable(_detail(series, "title") or "")[:1000] or None,
        body_link=body_link,
    )


MAX_UID_CHARS = 1000


# -- judging --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Judgement:
    """What one series of a message does to the mailbox's invite for its ``UID``.

    ``state`` is the invite to store (its bots still to be synced), or None when nothing
    changes; ``outcome`` says why, in words; ``new_version`` is true when the message's
    version replaced the stored one (and an accepting REPLY may be sent)."""

    state: Invite | None
    outcome: str
    new_version: bool = False


def refusal_placeholder(
    item: SeriesItem,
    *,
    mailbox_id: UUID,
    workspace_id: UUID,
    now: datetime,
    sender: str | None,
    message_id: str | None,
    status: str,
    reason: str,
) -> Invite:
    """The record of a series refused or ignored before the mailbox knew anything of it: it
    carries no version authority (any allowed message replaces it)."""
    return Invite(
        id=uuid4(),
        mailbox_id=mailbox_id,
        workspace_id=workspace_id,
        uid=item.uid,
        method=item.method,
        sequence=item.sequence,
        dtstamp=item.dtstamp,
        status=status,
        reason=reason[:2000],
        calendar=None,
        body_link=None,
        instances=[],
        bots=[],
        recurring=item.series.recurring,
        organizer=item.organizer,
        title=_cut(item.title),
        sender=sender or None,
        message_id=_cut(message_id),
        next_check_at=None,
        created_at=now,
        updated_at=now,
    )


def _cut(text: str | None, limit: int = 998) -> str | None:
    return storable(text)[:limit] if text else text


def judge(
    current: Invite | None,
    item: SeriesItem,
    *,
    now: datetime,
    mailbox_id: UUID,
    workspace_id: UUID,
    sender: str | None,
    message_id: str | None,
    body_text: str = "",
) -> Judgement:
    """Apply one (authorised) series to the stored invite — see "Versions" in the module
    docstring. Pure: the caller stores ``state`` and syncs its bots."""
    known = current if current is not None and current.authoritative else None
    if item.method in INERT_METHODS:
        reason = INERT_METHODS[item.method]
        if current is None:
            return Judgement(
                refusal_placeholder(
                    item,
                    mailbox_id=mailbox_id,
                    workspace_id=workspace_id,
                    now=now,
                    sender=sender,
                    message_id=message_id,
                    status=IGNORED,
                    reason=reason,
                ),
                reason,
            )
        return Judgement(None, reason)
    if item.method not in SCHEDULING_METHODS and item.method != "CANCEL":
        reason = f"METHOD:{item.method} is not an iMIP method Summon acts on"
        if current is None:
            return Judgement(
                refusal_placeholder(
                    item,
                    mailbox_id=mailbox_id,
                    workspace_id=workspace_id,
                    now=now,
                    sender=sender,
                    message_id=message_id,
                    status=IGNORED,
                    reason=reason,
                ),
                reason,
            )
        return Judgement(None, reason)

    base = (
        current
        if current is not None
        else refusal_placeholder(
            item,
            mailbox_id=mailbox_id,
            workspace_id=workspace_id,
            now=now,
            sender=sender,
            message_id=message_id,
            status=IGNORED,
            reason="",
        )
    )
    stamp = _Stamp(sender or None, _cut(message_id), now)

    if item.whole and item.cancelled:  # the organizer withdrew the whole series
        if known is not None and supersedes(
            known.sequence, known.dtstamp, item.sequence, item.dtstamp
        ):
            return Judgement(None, "a cancellation older than the version applied changes nothing")
        if known is not None and known.status == CANCELLED and _same(known, item):
            return Judgement(None, "already cancelled")
        state = stamp.on(
            replace(
                base,
                method="CANCEL",
                sequence=item.sequence,
                dtstamp=item.dtstamp,
                status=CANCELLED,
                reason="cancelled by the organizer",
                organizer=item.organizer or base.organizer,
                title=_cut(item.title) or base.title,
            )
        )
        return Judgement(state, "cancelled", new_version=True)

    if item.whole:  # a new version of the whole series
        if known is not None:
            if known.status == CANCELLED and not supersedes(
                item.sequence, item.dtstamp, known.sequence, known.dtstamp
            ):
                return Judgement(None, "not newer than the cancellation: changes nothing")
            if known.status != CANCELLED and _same(known, item):
                # The version applied, again (a retried delivery): applied again, idempotently.
                return Judgement(stamp.on(known), "already applied")
            if known.status != CANCELLED and not supersedes(
                item.sequence, item.dtstamp, known.sequence, known.dtstamp
            ):
                return Judgement(None, "older than the version applied: changes nothing")
        # A cancelled occurrence stays cancelled unless this version names it again; a changed
        # one keeps its change only if the change is newer than this version.
        explicit = set(item.recurrence_ids)
        kept = [
            c
            for c in base.instances
            if (c.calendar is None and c.recurrence_id not in explicit)
            or (
                c.calendar is not None
                and supersedes(c.sequence, c.dtstamp, item.sequence, item.dtstamp)
            )
        ]
        state = stamp.on(
            replace(
                base,
                method=item.method,
                sequence=item.sequence,
                dtstamp=item.dtstamp,
                status=SCHEDULED,
                reason=None,
                calendar=item.calendar,
                body_link=item.body_link or _body_link(body_text),
                instances=kept,
                recurring=item.series.recurring,
                organizer=item.organizer or base.organizer,
                title=_cut(item.title) or base.title,
            )
        )
        return Judgement(state, "updated" if known is not None else "scheduled", new_version=True)

    # Single occurrences changed or cancelled by a message of their own.
    if known is not None and known.status == CANCELLED:
        if item.cancelled or not supersedes(
            item.sequence, item.dtstamp, known.sequence, known.dtstamp
        ):
            return Judgement(None, "the invitation was cancelled: changes nothing")
    if known is None or known.calendar is None or known.status == CANCELLED:
        if item.cancelled:
            instances = _merged(base.instances, item, None)
            state = stamp.on(
                replace(
                    base,
                    method=item.method,
                    status=IGNORED,
                    instances=instances,
                    reason="cancellation of occurrences of an invitation not received",
                )
            )
            return Judgement(state, "occurrences cancelled before their invitation arrived")
        # An invitation to one occurrence only: that occurrence is the whole invitation.
        return judge(
            current,
            replace(item, whole=True),
            now=now,
            mailbox_id=mailbox_id,
            workspace_id=workspace_id,
            sender=sender,
            message_id=message_id,
            body_text=body_text,
        )
    instances = _merged(known.instances, item, None if item.cancelled else item.calendar)
    if instances == known.instances:
        return Judgement(None, "older than the occurrence's version applied: changes nothing")
    state = stamp.on(replace(known, method=item.method, instances=instances))
    return Judgement(
        state, "occurrence cancelled" if item.cancelled else "occurrence updated", new_version=True
    )


@dataclass(frozen=True, slots=True)
class _Stamp:
    """Who last wrote an invite, and when."""

    sender: str | None
    message_id: str | None
    now: datetime

    def on(self, invite: Invite) -> Invite:
        return replace(invite, sender=self.sender, message_id=self.message_id, updated_at=self.now)


def _same(known: Invite, item: SeriesItem) -> bool:
    return known.sequence == item.sequence and known.dtstamp == item.dtstamp


def _merged(
    instances: list[InstanceChange], item: SeriesItem, calendar: str | None
) -> list[InstanceChange]:
    """``instances`` with the occurrences of ``item`` changed (``calendar``) or cancelled
    (None) — each only if not older than the change already recorded for it. A cancellation
    wins a tie."""
    out = {c.recurrence_id: c for c in instances}
    for rid in item.recurrence_ids:
        old = out.get(rid)
        if old is not None:
            newer = supersedes(item.sequence, item.dtstamp, old.sequence, old.dtstamp)
            tie_cancel = (
                calendar is None
                and old.calendar is not None
                and (item.sequence, item.dtstamp) == (old.sequence, old.dtstamp)
            )
            if not (newer or tie_cancel):
                continue
        out[rid] = InstanceChange(rid, item.sequence, item.dtstamp, calendar)
    return sorted(out.values(), key=lambda c: c.recurrence_id)


# -- which occurrences want a bot -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Wanted:
    """An occurrence that wants a bot; ``occurrence.meeting_url`` is the link to join.
    ``ref_suffix`` identifies it within the mailbox: the ``UID`` for a one-off meeting (stable
    when it moves), the occurrence key for an occurrence of a series."""

    ref_suffix: str
    occurrence: Occurrence


def wanted_occurrences(
    invite: Invite, window_start: datetime, window_end: datetime
) -> tuple[list[Wanted], str | None]:
    """The occurrences of the invite's current state overlapping the window that want a bot:
    not cancelled, timed (not all-day), with a joinable link (the calendar's, else one found in
    the message body). When there are none, the reason."""
    if invite.status == CANCELLED:
        return [], "cancelled by the organizer"
    if invite.calendar is None:
        return [], invite.reason
    occurrences = _occurrences(invite, window_start, window_end)
    if not occurrences:
        return [], "no occurrence ahead" + (" in the window" if invite.recurring else "")
    wanted: list[Wanted] = []
    reasons: set[str] = set()
    for occurrence in occurrences:
        if occurrence.cancelled:
            reasons.add("cancelled")
            continue
        if occurrence.all_day:
            reasons.add("an all-day event has no meeting to join")
            continue
        link = occurrence.meeting_url or invite.body_link
        if not link or _parse_link(link) is None:
            reasons.add("no joinable meeting link")
            continue
        if link != occurrence.meeting_url:
            occurrence = replace(occurrence, meeting_url=link)
        suffix = occurrence.key if invite.recurring else invite.uid
        wanted.append(Wanted(suffix, occurrence))
    if wanted:
        return wanted, None
    return [], "; ".join(sorted(reasons)) or "nothing to join"


def _parse_link(link: str) -> object | None:
    from summon.domain.meeting_urls import InvalidMeetingUrl, parse_meeting_url

    try:
        return parse_meeting_url(link)
    except InvalidMeetingUrl:
        return None


def _occurrences(invite: Invite, low: datetime, high: datetime) -> list[Occurrence]:
    """The base calendar's occurrences with the single-occurrence changes applied: a changed
    occurrence replaces the base's wherever either lies, a cancelled one is gone."""
    assert invite.calendar is not None
    base, _ = expand(parse_calendar(invite.calendar), low, high)
    changed = {c.recurrence_id: c for c in invite.instances}
    out = [o for o in base if o.recurrence_id not in changed]
    for change in changed.values():
        if change.calendar is None:
            continue
        moved, _ = expand(parse_calendar(change.calendar), low, high)
        out.extend(o for o in moved if o.recurrence_id == change.recurrence_id)
    out.sort(key=lambda o: (o.start, o.recurrence_id))
    return out
