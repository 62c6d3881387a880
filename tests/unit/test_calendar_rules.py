"""Auto-record rules, deduplication keys, event diffs and webhook payloads (pure domain)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from summon.domain.calendars import (
    CONNECTING,
    AutoRecord,
    AutoRecordRules,
    Calendar,
    CalendarEvent,
    calendar_sync_events_event,
    calendar_update_event,
    default_dedup_key,
    desired_bot,
    diff_events,
    event_from_occurrence,
    meeting_kind,
    merge_event,
    wants_bot,
)
from summon.domain.icalendar import Attendee, Occurrence, occurrence_key

NOW = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=3)
OWNER = "me@acme.test"


def calendar(**fields: Any) -> Calendar:
    values: dict[str, Any] = dict(
        id=uuid4(),
        workspace_id=uuid4(),
        platform="caldav",
        status=CONNECTING,
        status_reason=None,
        sealed_credentials="x",
        state={},
        auto_record=AutoRecord({"bot_name": "Notes"}),
        email=OWNER,
        platform_email=None,
        created_at=NOW,
        updated_at=NOW,
    )
    values.update(fields)
    return Calendar(**values)


def event(**fields: Any) -> CalendarEvent:
    values: dict[str, Any] = dict(
        id=uuid4(),
        workspace_id=uuid4(),
        calendar_id=uuid4(),
        platform="caldav",
        key="uid-1",
        ical_uid="uid-1",
        recurrence_id=None,
        start_time=LATER,
        end_time=LATER + timedelta(minutes=30),
        all_day=False,
        title="Sync",
        meeting_url="https://zoom.us/j/123456789",
        meeting_platform="zoom",
        recurring=False,
        cancelled=False,
        is_deleted=False,
        organizer={"email": OWNER, "name": "Me"},
        attendees=[
            {"email": OWNER, "partstat": "ACCEPTED"},
            {"email": "bo@acme.test", "partstat": "NEEDS-ACTION"},
        ],
        details={},
        raw={},
        created_at=NOW,
        updated_at=NOW,
    )
    values.update(fields)
    return CalendarEvent(**values)


EXTERNAL = event(attendees=[{"email": OWNER, "partstat": "ACCEPTED"}, {"email": "x@client.test"}])
INVITED = event(
    organizer={"email": "boss@acme.test"},
    attendees=[
        {"email": OWNER, "partstat": "TENTATIVE"},
        {"email": "boss@acme.test", "partstat": "ACCEPTED"},
    ],
)


def test_absent_rules_record_every_timed_future_meeting_with_a_link() -> None:
    rules = AutoRecordRules()
    assert wants_bot(event(), rules, OWNER, NOW)
    assert wants_bot(EXTERNAL, rules, None, NOW)  # no owner needed when no rule asks about it
    assert not wants_bot(event(all_day=True), rules, OWNER, NOW)
    assert not wants_bot(event(cancelled=True), rules, OWNER, NOW)
    assert not wants_bot(event(is_deleted=True), rules, OWNER, NOW)
    assert not wants_bot(event(meeting_url=None), rules, OWNER, NOW)
    assert not wants_bot(event(meeting_url="https://example.com/not-a-meeting"), rules, OWNER, NOW)
    assert not wants_bot(event(start_time=NOW), rules, OWNER, NOW)  # already started
    assert not wants_bot(event(start_time=NOW - timedelta(minutes=1)), rules, OWNER, NOW)


@pytest.mark.parametrize(
    ("rules", "internal", "external"),
    [
        (AutoRecordRules(external=True), False, True),
        (AutoRecordRules(internal=True), True, False),
        (AutoRecordRules(external=True, internal=True), True, True),
        (AutoRecordRules(external=False), True, False),
        (AutoRecordRules(internal=False), False, True),
        (AutoRecordRules(internal=True, external=False), True, False),
        (AutoRecordRules(external=False, internal=False), False, False),
    ],
)
def test_internal_and_external(rules: AutoRecordRules, internal: bool, external: bool) -> None:
    assert wants_bot(event(), rules, OWNER, NOW) is internal
    assert wants_bot(EXTERNAL, rules, OWNER, NOW) is external


def test_meeting_kind_uses_the_owner_domain_and_subdomains() -> None:
    assert meeting_kind(event(), OWNER) == "internal"
    assert meeting_kind(EXTERNAL, OWNER) == "external"
    sub = event(
        attendees=[{"email": "eu@sales.acme.test"}], organizer={"email": "MAILTO:x@ACME.test"}
    )
    assert meeting_kind(sub, OWNER) == "internal"
    lookalike = event(attendees=[{"email": "x@notacme.test"}])
    assert meeting_kind(lookalike, OWNER) == "external"
    room = event(attendees=[{"email": "room@resources.other.test", "role": "NON-PARTICIPANT"}])
    assert meeting_kind(room, OWNER) == "internal"
    assert meeting_kind(event(), None) is None
    # Unknown owner: a rule about the kind never matches.
    assert not wants_bot(event(), AutoRecordRules(internal=True), None, NOW)
    assert not wants_bot(event(), AutoRecordRules(external=False), None, NOW)


def test_series_rules() -> None:
    series, single = event(recurring=True), event(recurring=False)
    assert wants_bot(series, AutoRecordRules(recurring=True), OWNER, NOW)
    assert not wants_bot(single, AutoRecordRules(recurring=True), OWNER, NOW)
    assert wants_bot(single, AutoRecordRules(non_recurring=True), OWNER, NOW)
    assert not wants_bot(series, AutoRecordRules(non_recurring=True), OWNER, NOW)
    assert not wants_bot(series, AutoRecordRules(recurring=False), OWNER, NOW)
    assert wants_bot(single, AutoRecordRules(recurring=False), OWNER, NOW)


def test_organizer_and_acceptance() -> None:
    organizer_only = AutoRecordRules(only_if_organizer=True)
    assert wants_bot(event(), organizer_only, OWNER, NOW)
    assert wants_bot(event(), organizer_only, "ME@Acme.Test", NOW)  # addresses compare case-blind
    assert not wants_bot(INVITED, organizer_only, OWNER, NOW)
    assert not wants_bot(event(), organizer_only, None, NOW)
    accepted_only = AutoRecordRules(only_accepted=True)
    assert wants_bot(event(), accepted_only, OWNER, NOW)
    assert not wants_bot(INVITED, accepted_only, OWNER, NOW)
    accepted = replace(INVITED, attendees=[{"email": OWNER, "partstat": "accepted"}])
    assert wants_bot(accepted, accepted_only, OWNER, NOW)
    # An organizer not listed as attendee counts as accepted; one who declined does not.
    assert wants_bot(event(attendees=[]), accepted_only, OWNER, NOW)
    declined = event(attendees=[{"email": OWNER, "partstat": "DECLINED"}])
    assert not wants_bot(declined, accepted_only, OWNER, NOW)


def test_desired_bot_prefers_the_clients_request_and_respects_an_opt_out() -> None:
    cal = calendar()
    auto = desired_bot(cal, event(), NOW)
    assert auto == (default_dedup_key(LATER, "https://zoom.us/j/123456789"), {"bot_name": "Notes"})
    manual = event(
        manual_bot={"deduplication_key": "mine", "bot_config": {"bot_name": "X"}}, all_day=True
    )
    assert desired_bot(cal, manual, NOW) == ("mine", {"bot_name": "X"})
    assert desired_bot(cal, event(bot_opt_out=True), NOW) is None
    assert desired_bot(calendar(auto_record=None), event(), NOW) is None
    assert desired_bot(cal, replace(manual, is_deleted=True), NOW) is None
    picky = calendar(auto_record=AutoRecord({}, AutoRecordRules(external=True)))
    assert desired_bot(picky, event(), NOW) is None
    assert desired_bot(picky, EXTERNAL, NOW) is not None
    # The owner may be known only from the provider.
    assert desired_bot(
        calendar(email=None, platform_email=OWNER, auto_record=picky.auto_record), EXTERNAL, NOW
    )


def test_default_dedup_key_is_shared_by_spellings_of_one_meeting() -> None:
    a = default_dedup_key(LATER, "https://us02web.zoom.us/j/123456789?pwd=abc")
    b = default_dedup_key(LATER, "zoom.us/j/123456789")
    assert a == b == "2030-01-01T12:00:00.000000Z-zoom:123456789"
    assert default_dedup_key(LATER + timedelta(minutes=1), "zoom.us/j/123456789") != a
    assert default_dedup_key(LATER, "https://zoom.us/j/987654321") != a
    assert default_dedup_key(LATER, "not a link").endswith("-not a link")


def occurrence(uid: str = "uid-1", start: datetime = LATER, **fields: Any) -> Occurrence:
    """A real occurrence as the iCalendar engine makes them (key = UID and original start)."""
    rid = fields.pop("recurrence_id", start)
    values: dict[str, Any] = dict(
        uid=uid,
        recurrence_id=rid,
        key=occurrence_key(uid, rid),
        start=start,
        end=start + timedelta(minutes=30),
        all_day=False,
        title="Sync",
        description="Join: https://zoom.us/j/123456789",
        location=None,
        meeting_url="https://zoom.us/j/123456789",
        organizer="me@acme.test",
        attendees=(Attendee("bo@acme.test", "Bo", "ACCEPTED", "REQ-PARTICIPANT"),),
        cancelled=False,
        sequence=0,
        dtstamp=NOW,
        recurring=False,
        raw={"SUMMARY": "Sync", "DTSTAMP": "20300101T090000Z"},
    )
    values.update(fields)
    return Occurrence(**values)


def test_events_from_occurrences_and_what_counts_as_a_change() -> None:
    cal = calendar()
    first = event_from_occurrence(occurrence(), event_id=uuid4(), calendar=cal, now=NOW)
    assert (
        first.calendar_id == cal.id
        and first.workspace_id == cal.workspace_id
        and first.platform == "caldav"
    )
    assert first.organizer == {"email": "me@acme.test", "name": None}
    assert first.attendees == [
        {"email": "bo@acme.test", "name": "Bo", "partstat": "ACCEPTED", "role": "REQ-PARTICIPANT"}
    ]
    assert first.meeting_platform == "zoom" and not first.is_deleted
    assert merge_event(None, first) is first

    # A feed regenerated (new DTSTAMP) is no change; a moved start is.
    regenerated = occurrence(
        dtstamp=NOW + timedelta(hours=1), raw={"SUMMARY": "Sync", "DTSTAMP": "20300101T100000Z"}
    )
    assert (
        merge_event(
            first, event_from_occurrence(regenerated, event_id=uuid4(), calendar=cal, now=NOW)
        )
        is None
    )
    later = NOW + timedelta(minutes=5)
    moved = merge_event(
        replace(first, manual_bot={"deduplication_key": "k", "bot_config": {}}),
        event_from_occurrence(
            occurrence(start=LATER + timedelta(hours=1), recurrence_id=LATER),
            event_id=uuid4(),
            calendar=cal,
            now=later,
        ),
    )
    assert (
        moved is not None
        and moved.id == first.id
        and moved.created_at == NOW
        and moved.updated_at == later
    )
    assert moved.manual_bot == {"deduplication_key": "k", "bot_config": {}}
    cancelled = event_from_occurrence(
        occurrence(cancelled=True), event_id=uuid4(), calendar=cal, now=NOW
    )
    assert cancelled.is_deleted and merge_event(first, cancelled) is not None
    # A deleted event that comes back is a change too.
    assert merge_event(replace(first, is_deleted=True), first) is not None


def test_webhook_payloads_follow_recalls_catalogue() -> None:
    cal = calendar()
    update = calendar_update_event(cal, NOW)
    assert update.event_type == "calendar.update" and update.bot_id is None
    assert update.payload == {"event": "calendar.update", "data": {"calendar_id": str(cal.id)}}
    sync = calendar_sync_events_event(cal, NOW)
    assert sync.payload == {
        "event": "calendar.sync_events",
        "data": {"calendar_id": str(cal.id), "last_updated_ts": "2030-01-01T09:00:00.000000Z"},
    }


def test_status_changes_are_recorded_once() -> None:
    cal = calendar()
    assert cal.with_status("connected", None, NOW)
    assert not cal.with_status("connected", None, NOW)
    assert cal.with_status("disconnected", "401", LATER)
    assert [(s.status, s.reason) for s in cal.status_changes] == [
        ("connected", None),
        ("disconnected", "401"),
    ]


def test_diff_keeps_an_event_whose_key_changed_with_its_start() -> None:
    cal = calendar()
    window = (NOW - timedelta(days=1), NOW + timedelta(days=28))
    first = diff_events(
        cal,
        [],
        [
            occurrence("one"),
            occurrence("series", LATER, recurring=True),
            occurrence("series", LATER + timedelta(days=1), recurring=True),
            occurrence("gone", LATER),
        ],
        window,
        NOW,
    )
    assert sorted(e.ical_uid for e in first) == ["gone", "one", "series", "series"]
    assert (
        diff_events(
            cal,
            first,
            [
                occurrence("one"),
                *[
                    occurrence("series", e.start_time, recurring=True)
                    for e in first
                    if e.ical_uid == "series"
                ],
                occurrence("gone", LATER),
            ],
            window,
            NOW,
        )
        == []
    )

    later = NOW + timedelta(minutes=1)
    moved = LATER + timedelta(hours=2)
    second = diff_events(
        cal,
        first,
        [
            occurrence("one", moved),  # a single event moved: a new key
            occurrence(
                "series", LATER + timedelta(hours=1), recurring=True
            ),  # the whole series moved
            occurrence("series", LATER + timedelta(days=1, hours=1), recurring=True),
            occurrence("new", LATER),
        ],
        window,
        later,
    )
    by_uid: dict[str, list[CalendarEvent]] = {}
    for e in second:
        by_uid.setdefault(e.ical_uid, []).append(e)
    old = {e.ical_uid: e for e in first if e.ical_uid != "series"}
    (one,) = by_uid["one"]
    assert (
        one.id == old["one"].id
        and one.start_time == moved
        and one.key == occurrence("one", moved).key
    )
    assert not one.is_deleted and one.updated_at == later
    old_series = sorted((e for e in first if e.ical_uid == "series"), key=lambda e: e.start_time)
    new_series = sorted(by_uid["series"], key=lambda e: e.start_time)
    assert [e.id for e in new_series] == [e.id for e in old_series]
    assert [e.start_time - o.start_time for e, o in zip(new_series, old_series, strict=True)] == [
        timedelta(hours=1)
    ] * 2
    (gone,) = by_uid["gone"]
    assert gone.id == old["gone"].id and gone.is_deleted
    (new,) = by_uid["new"]
    assert new.id not in {e.id for e in first}
    # Outside the window nothing counts as gone (it was only not asked for).
    past = replace(old["one"], start_time=NOW - timedelta(days=3), key="past")
    assert diff_events(cal, [past], [], window, later) == []
