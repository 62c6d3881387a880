"""iMIP invitations: finding calendars in real mail layouts, sender rules, and what each message
does to a mailbox's invite (schedule, update, cancel, ignore), with the e-mails Google Calendar,
Outlook/Exchange, Teams, Zoom and Apple Calendar send (``tests/fixtures/mail``)."""

from __future__ import annotations

import base64
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from summon.domain import invites
from summon.domain.errors import FieldInvalid
from summon.domain.invites import (
    AuthResults,
    SeriesItem,
    authentication_problem,
    authentication_results,
    envelope_identity,
    judge,
    read_message,
    series_items,
    wanted_occurrences,
)
from summon.domain.mailboxes import (
    CANCELLED,
    IGNORED,
    SCHEDULED,
    Invite,
    normalise_address,
    normalise_sender_entry,
    sender_allowed,
    validate_allowed_senders,
    without_tag,
)

FIXTURES = Path(__file__).parent.parent / "fixtures" / "mail"
NOW = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
WINDOW_END = NOW + timedelta(days=28)
MAILBOX, WORKSPACE = uuid4(), uuid4()
MEET = "https://meet.google.com/abc-mnop-xyz"


def load(name: str) -> bytes:
    """A fixture as it travels: CRLF line ends."""
    return (FIXTURES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def items(name: str) -> list[SeriesItem]:
    found, reason = series_items(read_message(load(name)))
    assert found, reason
    return found


def apply(current: Invite | None, name: str, now: datetime = NOW) -> invites.Judgement:
    (item,) = items(name)
    return judge(
        current,
        item,
        now=now,
        mailbox_id=MAILBOX,
        workspace_id=WORKSPACE,
        sender="x@acme.example",
        message_id="<m@x>",
        body_text=read_message(load(name)).body_text,
    )


def chain(*names: str) -> Invite:
    """Apply messages in order the way the service does (state kept when one changes it)."""
    state: Invite | None = None
    for name in names:
        outcome = apply(state, name)
        if outcome.state is not None:
            state = replace(outcome.state, version=(state.version + 1) if state else 1)
    assert state is not None
    return state


def starts(invite: Invite, end: datetime = WINDOW_END) -> list[tuple[str, str]]:
    wanted, _ = wanted_occurrences(invite, NOW, end)
    return [
        (w.occurrence.start.strftime("%m-%d %H:%M"), w.occurrence.meeting_url or "") for w in wanted
    ]


# -- finding the calendar -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "method", "inline"),
    [
        (
            "google_request.eml",
            "REQUEST",
            True,
        ),  # inline text/calendar + application/ics attachment
        ("outlook_request.eml", "REQUEST", True),  # text/calendar, base64
        ("teams_body_link.eml", "REQUEST", True),
        ("zoom_recurring_request.eml", None, False),  # application/octet-stream attachment *.ics
        (
            "apple_request.eml",
            "REQUEST",
            True,
        ),  # the whole message is the calendar, quoted-printable
        ("reply.eml", "REPLY", True),
        ("counter.eml", "COUNTER", True),
    ],
)
def test_calendar_found_where_clients_put_it(name: str, method: str | None, inline: bool) -> None:
    message = read_message(load(name))
    assert len(message.calendars) == 1, message.problems
    (part,) = message.calendars
    assert part.method == method and part.inline is inline
    assert part.text.lstrip("\ufeff").startswith("BEGIN:VCALENDAR")


def test_same_calendar_inline_and_attached_is_one() -> None:
    raw = load("google_request.eml")
    assert (
        raw.count(b"BEGIN:VCALENDAR") == 1 and b"application/ics" in raw
    )  # one inline, one base64
    message = read_message(raw)
    assert len(message.calendars) == 1 and message.calendars[0].inline


def test_attachment_with_an_older_version_loses_to_the_newer_inline_one() -> None:
    newer = read_message(load("google_update.eml")).calendars[0].text
    older = read_message(load("google_request.eml")).calendars[0].text
    raw = _mixed(
        [
            ("text/calendar; method=REQUEST; charset=UTF-8", "inline", older.encode()),
            ("application/ics; name=invite.ics", "attachment", newer.encode()),
        ]
    )
    message = read_message(raw)
    assert len(message.calendars) == 2
    (item,), _ = series_items(message)
    assert item.sequence == 1


def test_headers_and_bodies() -> None:
    google = read_message(load("google_request.eml"))
    assert google.from_address == "alice@acme.example"
    assert google.sender_address == "calendar-notification@google.com"
    assert (google.return_path or "").endswith("@calendar-server.bounces.google.com")
    assert google.addressed_to == ("notes@bots.summon.test",)
    assert MEET in google.body_text  # from the base64 text part and the quoted-printable HTML
    apple = read_message(load("apple_request.eml"))
    assert apple.subject == "Invitation: Café with Zoë"
    assert "SUMMARY:Café with Zoë – budget" in apple.calendars[0].text  # quoted-printable UTF-8
    outlook = read_message(load("outlook_request.eml"))
    assert outlook.addressed_to == ("notes@bots.summon.test", "erik.sand@contoso.example")
    assert outlook.authentication_results and "dkim=pass" in outlook.authentication_results[0]


@pytest.mark.parametrize(
    ("name", "uid_start", "method", "whole", "cancelled", "organizer"),
    [
        ("google_request.eml", "7kukuqrfedlm", "REQUEST", True, False, "alice@acme.example"),
        ("google_cancel.eml", "7kukuqrfedlm", "CANCEL", True, True, "alice@acme.example"),
        (
            "outlook_request.eml",
            "040000008200E",
            "REQUEST",
            True,
            False,
            "dana.kruger@contoso.example",
        ),
        ("zoom_cancel_occurrence.eml", "ZOOM854", "CANCEL", False, True, "sam.lee@acme.example"),
        ("zoom_move_occurrence.eml", "ZOOM854", "REQUEST", False, False, "sam.lee@acme.example"),
        (
            "google_recurring_instance_cancel.eml",
            "1r2e3c",
            "CANCEL",
            False,
            True,
            "alice@acme.example",
        ),
        ("apple_cancel.eml", "5F0E7A4C", "CANCEL", True, True, "zoe@acme.example"),
    ],
)
def test_series_items(
    name: str, uid_start: str, method: str, whole: bool, cancelled: bool, organizer: str
) -> None:
    (item,) = items(name)
    assert item.uid.startswith(uid_start)
    assert (item.method, item.whole, item.cancelled, item.organizer) == (
        method,
        whole,
        cancelled,
        organizer,
    )
    assert item.whole or item.recurrence_ids


def test_free_busy_and_plain_mail_have_no_series() -> None:
    found, reason = series_items(read_message(load("freebusy_request.eml")))
    assert found == [] and reason == "a free/busy request changes nothing"
    plain = b"From: a@acme.example\r\nTo: notes@bots.summon.test\r\nSubject: hi\r\n\r\nHello\r\n"
    assert read_message(plain).calendars == ()


# -- who may schedule -----------------------------------------------------------------------
def test_sender_entries_and_matching() -> None:
    allowed = validate_allowed_senders(
        ["Acme.Example", "@contoso.example", "*.corp.example", "Eve@Partner.example"]
    )
    assert allowed == ["acme.example", "contoso.example", "*.corp.example", "eve@partner.example"]
    assert sender_allowed(allowed, "ALICE@acme.example")
    assert sender_allowed(allowed, "<MAILTO:bob@contoso.example>")
    assert sender_allowed(allowed, "x@corp.example") and sender_allowed(
        allowed, "x@eu.corp.example"
    )
    assert sender_allowed(allowed, "eve@partner.example")
    for stranger in (
        "mallory@evil.example",
        "x@sub.acme.example",
        "x@acme.example.evil.example",
        "other@partner.example",
        "",
        None,
        "<>",
        "not an address",
        "a@acme.example, b@evil.example",
    ):
        assert not sender_allowed(allowed, stranger), stranger
    assert not sender_allowed([], "alice@acme.example")
    for bad in ("", "*", "*.", "@", "a@", "exa mple.com", "example..com", "-x.com"):
        assert normalise_sender_entry(bad) == "", bad
    with pytest.raises(FieldInvalid) as raised:
        validate_allowed_senders(["acme.example", "not valid!"])
    assert raised.value.field == "allowed_senders.1"


def test_calendar_relays_stand_for_the_from_address() -> None:
    google = read_message(load("google_request.eml"))
    relays = ["*.bounces.google.com", "calendar-notification@google.com"]
    assert envelope_identity(google.return_path, google, relays) == "alice@acme.example"
    assert envelope_identity("Calendar-Notification@google.com", google, relays) == (
        "alice@acme.example"
    )
    assert envelope_identity("alice@acme.example", google, relays) == "alice@acme.example"
    lookalike = "x@bounces.google.com.evil.example"
    assert envelope_identity(lookalike, google, relays) == lookalike
    assert envelope_identity(google.return_path, google, []) == google.return_path
    assert envelope_identity("", google, relays) == ""


def test_addresses() -> None:
    assert normalise_address(" <Notes@Bots.Summon.Test> ") == "notes@bots.summon.test"
    assert normalise_address("MAILTO:notes@bots.summon.test") == "notes@bots.summon.test"
    assert normalise_address("Notes <notes@x.test>") == ""
    assert without_tag("notes+team-a@bots.summon.test") == "notes@bots.summon.test"
    assert without_tag("notes@bots.summon.test") == "notes@bots.summon.test"


def test_authentication_results_only_from_the_trusted_server() -> None:
    values = (
        "mx.bots.summon.test; dkim=pass header.d=contoso.example header.s=s1; spf=pass "
        "smtp.mailfrom=contoso.example",
        # Below ours: added by the sender, forged.
        "mx.bots.summon.test; dkim=fail header.d=evil.example; spf=fail",
    )
    results = authentication_results(values, "MX.bots.summon.test")
    assert results == AuthResults("pass", frozenset({"contoso.example"}))
    forged_only = ("mx.evil.example; dkim=pass header.d=contoso.example; spf=pass",)
    assert authentication_results(forged_only, "mx.bots.summon.test") is None
    allowed = ["contoso.example"]
    assert authentication_problem(["spf", "dkim"], results, "dana@contoso.example", allowed) is None
    assert authentication_problem([], None, None, allowed) is None
    assert authentication_problem(["dkim"], None, "dana@contoso.example", allowed) is not None
    assert (
        authentication_problem(["spf"], AuthResults("softfail"), "dana@contoso.example", allowed)
        == "SPF softfail"
    )
    google_signed = AuthResults("pass", frozenset({"google.com"}))
    assert (
        authentication_problem(["dkim"], google_signed, "alice@acme.example", ["acme.example"])
        is not None
    )
    assert (
        authentication_problem(
            ["dkim"], google_signed, "alice@acme.example", ["acme.example", "google.com"]
        )
        is None
    )
    sub = AuthResults(None, frozenset({"contoso.example"}))
    assert (
        authentication_problem(["dkim"], sub, "dana@eu.contoso.example", []) is None
    )  # parent domain signs


# -- what a message does ---------------------------------------------------------------------------
def test_google_invite_update_cancel() -> None:
    first = apply(None, "google_request.eml")
    assert first.new_version and first.state is not None and first.state.status == SCHEDULED
    assert starts(first.state) == [("01-06 15:00", MEET)]
    updated = chain("google_request.eml", "google_update.eml")
    assert (updated.sequence, starts(updated)) == (1, [("01-06 16:00", MEET)])
    cancelled = chain("google_request.eml", "google_update.eml", "google_cancel.eml")
    assert cancelled.status == CANCELLED and starts(cancelled) == []


def test_late_older_versions_change_nothing() -> None:
    updated = chain("google_request.eml", "google_update.eml")
    late = apply(updated, "google_request.eml")
    assert late.state is None and "older" in late.outcome
    cancelled = chain("google_request.eml", "google_update.eml", "google_cancel.eml")
    for name in ("google_request.eml", "google_update.eml"):
        assert apply(cancelled, name).state is None
    again = apply(updated, "google_update.eml")  # the same version delivered twice
    assert again.state is not None and not again.new_version and again.outcome == "already applied"


def test_reinvite_after_cancel_needs_a_newer_version() -> None:
    cancelled = chain("google_request.eml", "google_cancel.eml")
    (item,) = items("google_update.eml")  # SEQUENCE 1 < the cancellation's 2
    assert (
        judge(
            cancelled,
            item,
            now=NOW,
            mailbox_id=MAILBOX,
            workspace_id=WORKSPACE,
            sender=None,
            message_id=None,
        ).state
        is None
    )
    newer = replace(item, sequence=3)
    outcome = judge(
        cancelled,
        newer,
        now=NOW,
        mailbox_id=MAILBOX,
        workspace_id=WORKSPACE,
        sender=None,
        message_id=None,
    )
    assert outcome.state is not None and outcome.state.status == SCHEDULED


def test_a_cancellation_wins_a_tie() -> None:
    (request,) = items("google_request.eml")
    (cancel,) = items("google_cancel.eml")
    tied = replace(cancel, sequence=request.sequence, dtstamp=request.dtstamp)
    state = judge(
        None,
        request,
        now=NOW,
        mailbox_id=MAILBOX,
        workspace_id=WORKSPACE,
        sender=None,
        message_id=None,
    ).state
    cancelled = judge(
        state,
        tied,
        now=NOW,
        mailbox_id=MAILBOX,
        workspace_id=WORKSPACE,
        sender=None,
        message_id=None,
    ).state
    assert cancelled is not None and cancelled.status == CANCELLED
    assert (
        judge(
            cancelled,
            request,
            now=NOW,
            mailbox_id=MAILBOX,
            workspace_id=WORKSPACE,
            sender=None,
            message_id=None,
        ).state
        is None
    )


def test_outlook_windows_zone_and_teams_link() -> None:
    state = chain("outlook_request.eml")
    ((start, link),) = starts(state)
    assert start == "01-08 09:00"  # 10:00 "W. Europe Standard Time" in January
    assert link.startswith("https://teams.microsoft.com/l/meetup-join/19%3ameeting_")
    assert starts(chain("outlook_request.eml", "outlook_update.eml")) == [("01-08 13:00", link)]
    assert starts(chain("outlook_request.eml", "outlook_update.eml", "outlook_cancel.eml")) == []


def test_teams_link_only_in_the_mail_body() -> None:
    state = chain("teams_body_link.eml")
    ((start, link),) = starts(state)
    assert start == "01-09 12:30" and link.startswith("https://teams.microsoft.com/l/meetup-join/")


def test_apple_whole_message_calendar() -> None:
    assert starts(chain("apple_request.eml")) == [
        ("01-10 08:30", "https://meet.google.com/qrs-tuvw-xyz")
    ]
    assert starts(chain("apple_request.eml", "apple_update.eml")) == [
        ("01-11 08:30", "https://meet.google.com/qrs-tuvw-xyz")
    ]
    assert chain("apple_request.eml", "apple_update.eml", "apple_cancel.eml").status == CANCELLED


def test_recurring_zoom_occurrence_cancelled_and_moved_by_their_own_messages() -> None:
    base = chain("zoom_recurring_request.eml")
    assert base.recurring
    weekly = [s for s, _ in starts(base, NOW + timedelta(days=36))]
    assert weekly == ["01-08 17:00", "01-15 17:00", "01-22 17:00", "01-29 17:00", "02-05 17:00"]
    changed = chain(
        "zoom_recurring_request.eml", "zoom_cancel_occurrence.eml", "zoom_move_occurrence.eml"
    )
    assert [s for s, _ in starts(changed, NOW + timedelta(days=36))] == [
        "01-08 17:00",
        "01-22 19:00",
        "01-29 17:00",
        "02-05 17:00",
    ]
    assert changed.status == SCHEDULED and len(changed.instances) == 2
    # Each occurrence is its own ref: a one-off meeting's is its UID (it survives a move).
    wanted, _ = wanted_occurrences(changed, NOW, WINDOW_END)
    assert [w.ref_suffix for w in wanted] == [w.occurrence.key for w in wanted]
    (one_off,), _ = wanted_occurrences(chain("google_request.eml"), NOW, WINDOW_END)
    assert one_off.ref_suffix == "7kukuqrfedlm2f9t0vr6p2jg3e@google.com"


def test_occurrence_cancel_before_its_invitation_still_holds() -> None:
    early = chain("zoom_cancel_occurrence.eml")
    assert early.status == IGNORED and not early.authoritative and early.instances
    after = chain("zoom_cancel_occurrence.eml", "zoom_recurring_request.eml")
    assert "01-15 17:00" not in [s for s, _ in starts(after)]


def test_recurring_google_with_exdate_override_and_instance_messages() -> None:
    base = chain("google_recurring_request.eml")
    assert [s for s, _ in starts(base)] == [
        "01-07 09:00",
        "01-15 13:00",
        "01-28 09:00",
    ]  # 21st: EXDATE
    moved = chain("google_recurring_request.eml", "google_recurring_instance_update.eml")
    assert [s for s, _ in starts(moved)] == ["01-07 09:00", "01-15 13:00", "01-28 14:00"]
    cancelled = chain(
        "google_recurring_request.eml",
        "google_recurring_instance_update.eml",
        "google_recurring_instance_cancel.eml",
    )
    assert [s for s, _ in starts(cancelled)] == ["01-15 13:00", "01-28 14:00"]
    # A newer version of the whole series keeps the occurrence cancellation.
    (item,) = items("google_recurring_request.eml")
    newer = judge(
        cancelled,
        replace(item, sequence=5),
        now=NOW,
        mailbox_id=MAILBOX,
        workspace_id=WORKSPACE,
        sender=None,
        message_id=None,
    ).state
    assert newer is not None and "01-07 09:00" not in [s for s, _ in starts(newer)]


def test_the_window_moves_for_recurring_invites() -> None:
    base = chain("google_recurring_request.eml")
    later = NOW + timedelta(days=21)
    wanted, _ = wanted_occurrences(base, later, later + timedelta(days=28))
    assert [w.occurrence.start.strftime("%m-%d") for w in wanted] == [
        "01-28",
        "02-04",
        "02-11",
        "02-18",
    ]


@pytest.mark.parametrize("name", ["reply.eml", "counter.eml"])
def test_reply_and_counter_change_nothing(name: str) -> None:
    state = chain("google_request.eml") if name == "reply.eml" else chain("outlook_request.eml")
    outcome = apply(state, name)
    assert outcome.state is None and "changes nothing" in outcome.outcome
    placeholder = apply(None, name).state  # nothing known yet: recorded, with no authority
    assert (
        placeholder is not None and placeholder.status == IGNORED and not placeholder.authoritative
    )


def test_invite_without_a_joinable_link_is_ignored_with_a_reason() -> None:
    text = read_message(load("google_request.eml")).calendars[0].text
    for line in ("X-GOOGLE-CONFERENCE", "DESCRIPTION", " "):
        text = "\r\n".join(li for li in text.split("\r\n") if not li.startswith(line))
    message = read_message(_mixed([("text/calendar; method=REQUEST", "inline", text.encode())]))
    (item,), _ = series_items(message)
    state = judge(
        None,
        item,
        now=NOW,
        mailbox_id=MAILBOX,
        workspace_id=WORKSPACE,
        sender=None,
        message_id=None,
    ).state
    assert state is not None
    assert wanted_occurrences(state, NOW, WINDOW_END) == ([], "no joinable meeting link")


def test_all_day_events_want_no_bot() -> None:
    text = read_message(load("google_request.eml")).calendars[0].text
    text = text.replace("DTSTART:20300106T150000Z", "DTSTART;VALUE=DATE:20300106").replace(
        "DTEND:20300106T153000Z", "DTEND;VALUE=DATE:20300107"
    )
    (item,), _ = series_items(
        read_message(_mixed([("text/calendar; method=REQUEST", "inline", text.encode())]))
    )
    state = judge(
        None,
        item,
        now=NOW,
        mailbox_id=MAILBOX,
        workspace_id=WORKSPACE,
        sender=None,
        message_id=None,
    ).state
    assert state is not None
    assert wanted_occurrences(state, NOW, WINDOW_END) == (
        [],
        "an all-day event has no meeting to join",
    )


# -- hostile and broken mail -----------------------------------------------------------------
def _mixed(parts: list[tuple[str, str, bytes]], boundary: str = "b1") -> bytes:
    out = [
        b"From: alice@acme.example",
        b"To: notes@bots.summon.test",
        b"MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{boundary}"'.encode(),
        b"",
    ]
    for ctype, disposition, body in parts:
        out += [
            f"--{boundary}".encode(),
            f"Content-Type: {ctype}".encode(),
            f"Content-Disposition: {disposition}".encode(),
            b"Content-Transfer-Encoding: base64",
            b"",
            base64.encodebytes(body).replace(b"\n", b"\r\n"),
        ]
    out.append(f"--{boundary}--".encode())
    return b"\r\n".join(out) + b"\r\n"


def _calendar() -> bytes:
    return read_message(load("google_request.eml")).calendars[0].text.encode()


def test_deeply_nested_multiparts_are_refused_quickly() -> None:
    raw = b"From: a@acme.example\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n"
    for i in range(1, 5000):
        raw += b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i - 1, i)
    started = time.process_time()
    message = read_message(raw)
    assert message.calendars == () and message.problems
    assert time.process_time() - started < 5


def test_hostile_headers_cost_little() -> None:
    raw = (
        b"From: "
        + b"a@b.example, " * 200_000
        + b"\r\nContent-Type: multipart/mixed; "
        + b'a="x;y"; ' * 100_000
        + b"boundary=zz\r\nSubject: "
        + b"\xff" * 100_000
        + b"\r\n\r\nbody\r\n"
    )
    started = time.process_time()
    message = read_message(raw)
    assert message.calendars == ()
    assert time.process_time() - started < 5


def test_broken_encodings_and_charsets() -> None:
    good = _calendar()
    raw = (
        b"From: a@acme.example\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
        b"--x\r\nContent-Type: text/calendar; method=REQUEST; charset=no-such-charset\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(good)[:-7] + b"!!*\r\n"
        b"--x\r\nContent-Type: text/plain; charset=zlib_codec\r\n\r\nJoin "
        + MEET.encode()
        + b"\r\n"
        b'--x\r\nContent-Type: text/html; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        b'=E9=\r\n=ZZ <a href=3D"x">\xff\xfe</a>\r\n--x--\r\n'
    )
    message = read_message(raw)
    assert MEET in message.body_text
    assert len(message.calendars) <= 1  # whatever survived the broken base64; nothing raised


def test_calendar_in_utf16_and_in_an_unnamed_octet_stream() -> None:
    text = _calendar().decode()
    utf16 = _mixed(
        [("text/calendar; method=REQUEST; charset=utf-16", "inline", text.encode("utf-16"))]
    )
    assert items_of(utf16)[0].uid.startswith("7kukuqrfedlm")
    octet = _mixed([("application/octet-stream", "attachment", text.encode())])
    assert items_of(octet)[0].uid.startswith("7kukuqrfedlm")


def items_of(raw: bytes) -> list[SeriesItem]:
    found, reason = series_items(read_message(raw))
    assert found, reason
    return found


def test_an_attached_forwarded_invitation_is_not_read() -> None:
    forwarded = load("google_request.eml")
    raw = (
        b"From: alice@acme.example\r\nContent-Type: multipart/mixed; boundary=f\r\n\r\n--f\r\n"
        b"Content-Type: text/plain\r\n\r\nFYI\r\n--f\r\nContent-Type: message/rfc822\r\n\r\n"
        + forwarded
        + b"\r\n--f--\r\n"
    )
    assert read_message(raw).calendars == ()


def test_oversized_calendar_part_is_skipped() -> None:
    huge = (
        b"BEGIN:VCALENDAR\r\n"
        + b"X-PAD:"
        + b"a" * (invites.MAX_CALENDAR_BYTES + 10)
        + b"\r\nEND:VCALENDAR\r\n"
    )
    message = read_message(_mixed([("text/calendar; method=REQUEST", "inline", huge)]))
    assert message.calendars == () and any("larger" in p for p in message.problems)


@pytest.mark.parametrize("raw", [b"", b"\x00" * 100, b"garbage", "not bytes", b"\r\n\r\n\r\n"])
def test_anything_reads_without_raising(raw: bytes) -> None:
    message = read_message(raw)
    assert message.calendars == ()
