"""The iCalendar model against calendars in the shapes real producers write.

Every fixture in ``tests/fixtures/ics/`` has its expected occurrences written out here by hand
(UTC times worked out from the zone rules: Europe/Berlin is +01:00 until 2030-03-31 01:00 UTC
and +02:00 until 2030-10-27; America/New_York and America/Los_Angeles switch on 2030-03-10;
Europe/London on 2030-03-31).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from summon.domain.icalendar import (
    MAX_OCCURRENCES,
    Attendee,
    Occurrence,
    ParsedCalendar,
    Problem,
    Property,
    Series,
    expand,
    find_occurrence_link,
    occurrence_key,
    parse_calendar,
    supersedes,
)
from summon.domain.windows_zones import WINDOWS_ZONES, windows_to_iana

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "ics"

MEET = "https://meet.google.com/abc-defg-hij"
MEET2 = "https://meet.google.com/xyz-abcd-efg"
ZOOM = "https://zoom.us/j/98765432109?pwd=Zm9vYmFyYmF6"
WEBEX = "https://example.webex.com/meet/jdoe"
TEAMS = (
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_NjQ3ZmE1YjItOGM4Yy00ZDMyLWI0NzAtMjc5"
    "OTc2ZTk3ZjI4%40thread.v2/0?context=%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd011db47%2"
    "2%2c%22Oid%22%3a%229a5a8f43-3c4f-4a2e-8d1c-1f2b3c4d5e6f%22%7d"
)
TEAMS2 = (
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_ZGQ1MjM0YTMtNzQ4Mi00YmNmLWE1ZDEtODc2"
    "NTQzMjEwZmVk%40thread.v2/0?context=%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd011db47%2"
    "2%2c%22Oid%22%3a%221b2c3d4e-5f60-4718-293a-4b5c6d7e8f90%22%7d"
)


def Z(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def load(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def run(
    data: str | bytes, start: datetime, end: datetime
) -> tuple[ParsedCalendar, list[Occurrence], list[Problem]]:
    parsed = parse_calendar(data)
    occurrences, problems = expand(parsed, start, end)
    return parsed, occurrences, [*parsed.problems, *problems]


def times(occurrences: list[Occurrence]) -> list[tuple[datetime, datetime, datetime]]:
    """(recurrence_id, start, end) of each occurrence, in the order given."""
    return [(o.recurrence_id, o.start, o.end) for o in occurrences]


def of(occurrences: list[Occurrence], uid_part: str) -> list[Occurrence]:
    return [o for o in occurrences if uid_part in o.uid]


def ical(*events: str, head: str = "") -> str:
    """A small calendar around VEVENT bodies (each a block of content lines)."""
    body = "".join(f"BEGIN:VEVENT\n{e.strip()}\nEND:VEVENT\n" for e in events)
    return f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//test//EN\n{head}{body}END:VCALENDAR\n"


# ---------------------------------------------------------------------------------------------
# Producers
# ---------------------------------------------------------------------------------------------


def test_google_export_weekly_series_with_exdate_moved_and_cancelled_instances() -> None:
    parsed, occurrences, problems = run(load("google_export.ics"), Z(2030, 3, 1), Z(2030, 4, 16))
    assert problems == []
    assert parsed.method == "PUBLISH"
    standup = of(occurrences, "5b1kq8c0")
    assert times(standup) == [
        (Z(2030, 3, 4, 8), Z(2030, 3, 4, 8), Z(2030, 3, 4, 8, 30)),
        (Z(2030, 3, 11, 8), Z(2030, 3, 11, 8), Z(2030, 3, 11, 8, 30)),
        # 18 March is an EXDATE; 25 March was moved to Tuesday 10:00 CET.
        (Z(2030, 3, 25, 8), Z(2030, 3, 26, 9), Z(2030, 3, 26, 9, 30)),
        # After the DST change 9:00 Berlin is 07:00 UTC.
        (Z(2030, 4, 1, 7), Z(2030, 4, 1, 7), Z(2030, 4, 1, 7, 30)),
        (Z(2030, 4, 8, 7), Z(2030, 4, 8, 7), Z(2030, 4, 8, 7, 30)),
        (Z(2030, 4, 15, 7), Z(2030, 4, 15, 7), Z(2030, 4, 15, 7, 30)),
    ]
    assert [o.cancelled for o in standup] == [False, False, False, False, True, False]
    assert [o.sequence for o in standup] == [0, 0, 1, 0, 1, 0]
    assert standup[2].title == "Team standup (moved)"
    assert {o.meeting_url for o in standup if not o.cancelled} == {MEET}
    assert all(o.recurring for o in standup)
    assert standup[0].key == "5b1kq8c0nvd2a3t4e5s6t7u8v9@google.com|20300304T080000Z"
    assert standup[2].key == "5b1kq8c0nvd2a3t4e5s6t7u8v9@google.com|20300325T080000Z"
    assert standup[0].organizer == "jane.doe@example.com"
    assert standup[0].attendees == (
        Attendee("jane.doe@example.com", "Jane Doe", "ACCEPTED", "REQ-PARTICIPANT"),
        Attendee("rob@example.com", "rob@example.com", "NEEDS-ACTION", "REQ-PARTICIPANT"),
    )
    assert standup[0].dtstamp == Z(2030, 3, 1, 8)

    offsite = of(occurrences, "0a1b2c3d")
    assert times(offsite) == [(Z(2030, 3, 20), Z(2030, 3, 20), Z(2030, 3, 22))]
    assert offsite[0].all_day and not offsite[0].recurring and offsite[0].meeting_url is None
    assert offsite[0].location == "Lisbon"

    partner = of(occurrences, "7f8e9d0c")
    assert times(partner) == [(Z(2030, 3, 12, 15), Z(2030, 3, 12, 15), Z(2030, 3, 12, 16))]
    assert partner[0].meeting_url == ZOOM  # from the description, without the "(…" after it

    # A recurring series written in UTC follows the calendar's X-WR-TIMEZONE across DST.
    thursday = of(occurrences, "3c4d5e6f")
    assert [o.start for o in thursday] == [Z(2030, 3, 21, 8), Z(2030, 3, 28, 8), Z(2030, 4, 4, 7)]
    assert {o.meeting_url for o in thursday} == {MEET2}

    assert not of(occurrences, "old-event-2020")
    assert [o.start for o in occurrences] == sorted(o.start for o in occurrences)


def test_google_invite_request() -> None:
    parsed, occurrences, problems = run(load("google_invite.ics"), Z(2030, 3, 1), Z(2030, 4, 1))
    assert problems == [] and parsed.method == "REQUEST"
    [series] = parsed.series
    assert (series.uid, series.sequence, series.recurring) == (
        "1q2w3e4r5t6y7u8i9o0p1a2s3d@google.com", 0, False)
    assert series.dtstamp == Z(2030, 3, 5, 16, 15) + timedelta(seconds=12)
    [occurrence] = occurrences
    # 13:00 New York on 11 March 2030 is daylight time (EDT, UTC-4).
    assert times(occurrences) == [(Z(2030, 3, 11, 17), Z(2030, 3, 11, 17), Z(2030, 3, 11, 17, 45))]
    assert occurrence.meeting_url == "https://meet.google.com/qrs-tuvw-xyz"
    assert occurrence.organizer == "pat.lee@example.com"
    assert occurrence.attendees == (
        Attendee("notes@bots.example.net", "notes@bots.example.net", "NEEDS-ACTION",
                 "REQ-PARTICIPANT"),
        Attendee("pat.lee@example.com", "Pat Lee", "ACCEPTED", "REQ-PARTICIPANT"),
        Attendee("sam.roe@example.com", "Sam Roe", "TENTATIVE", "OPT-PARTICIPANT"),
    )
    # The VALARM's DESCRIPTION/SUMMARY/ATTENDEE belong to the alarm, not to the event.
    assert occurrence.title == "Pricing review"
    assert occurrence.description is not None
    assert occurrence.description.startswith("-::~:~::~")
    assert "Join with Google Meet: https://meet.google.com/qrs-tuvw-xyz\n" in occurrence.description
    assert not occurrence.cancelled


def test_google_cancel_supersedes_the_request() -> None:
    request = parse_calendar(load("google_invite.ics")).series[0]
    parsed, occurrences, problems = run(load("google_cancel.ics"), Z(2030, 3, 1), Z(2030, 4, 1))
    assert problems == [] and parsed.method == "CANCEL"
    [cancel] = parsed.series
    assert cancel.uid == request.uid and cancel.cancelled
    assert supersedes(cancel.sequence, cancel.dtstamp, request.sequence, request.dtstamp)
    assert not supersedes(request.sequence, request.dtstamp, cancel.sequence, cancel.dtstamp)
    [occurrence] = occurrences
    assert occurrence.cancelled and occurrence.start == Z(2030, 3, 11, 17)
    assert occurrence.key == occurrence_key(request.uid, Z(2030, 3, 11, 17))


def test_google_cancel_of_one_instance_is_an_override_only_series() -> None:
    parsed, occurrences, problems = run(
        load("google_cancel_instance.ics"), Z(2030, 4, 1), Z(2030, 5, 1))
    assert problems == [] and parsed.method == "CANCEL"
    [series] = parsed.series
    assert series.recurring and not series.cancelled
    assert series.recurrence_ids == (Z(2030, 4, 15, 7),)
    assert series.sequence == 2
    [occurrence] = occurrences
    assert occurrence.cancelled and occurrence.recurring
    assert occurrence.key == "5b1kq8c0nvd2a3t4e5s6t7u8v9@google.com|20300415T070000Z"
    # The same key the full series gives that instance: the cancel finds the right occurrence.
    _, series_occurrences, _ = run(load("google_export.ics"), Z(2030, 4, 14), Z(2030, 4, 16))
    assert occurrence.key in {o.key for o in series_occurrences}


def test_outlook_teams_invite_with_windows_zone() -> None:
    parsed, occurrences, problems = run(
        load("outlook_teams_invite.ics"), Z(2030, 4, 1), Z(2030, 4, 30))
    assert problems == [] and parsed.method == "REQUEST"
    [occurrence] = occurrences
    # 14:00 "W. Europe Standard Time" on 2 April 2030 is CEST (UTC+2).
    assert times(occurrences) == [(Z(2030, 4, 2, 12), Z(2030, 4, 2, 12), Z(2030, 4, 2, 13))]
    assert occurrence.meeting_url == TEAMS  # X-MICROSOFT-SKYPETEAMSMEETINGURL
    assert occurrence.location == "Microsoft Teams Meeting"
    assert occurrence.organizer == "max.mustermann@contoso.com"
    assert occurrence.title == "Quarterly review"
    assert occurrence.description is not None
    assert "Join on your computer, mobile app or room device" in occurrence.description
    assert occurrence.raw["X-MICROSOFT-CDO-BUSYSTATUS"] == "TENTATIVE"
    assert occurrence.raw["X-MICROSOFT-SKYPETEAMSPROPERTIES"].startswith('{"cid":')
    assert '"private":true,' in occurrence.raw["X-MICROSOFT-SKYPETEAMSPROPERTIES"]


def test_outlook_recurring_pacific_with_teams_link_in_description_only() -> None:
    _, occurrences, problems = run(
        load("outlook_recurring_pacific.ics"), Z(2030, 3, 1), Z(2030, 4, 30))
    assert problems == []
    # Tue/Thu 10:00 Pacific: PST (UTC-8) until 10 March, PDT (UTC-7) after. 14 March is an
    # EXDATE, 19 March moved to 11:00, UNTIL is 28 March 17:00 UTC (inclusive).
    assert times(occurrences) == [
        (Z(2030, 3, 5, 18), Z(2030, 3, 5, 18), Z(2030, 3, 5, 18, 30)),
        (Z(2030, 3, 7, 18), Z(2030, 3, 7, 18), Z(2030, 3, 7, 18, 30)),
        (Z(2030, 3, 12, 17), Z(2030, 3, 12, 17), Z(2030, 3, 12, 17, 30)),
        (Z(2030, 3, 19, 17), Z(2030, 3, 19, 18), Z(2030, 3, 19, 18, 30)),
        (Z(2030, 3, 21, 17), Z(2030, 3, 21, 17), Z(2030, 3, 21, 17, 30)),
        (Z(2030, 3, 26, 17), Z(2030, 3, 26, 17), Z(2030, 3, 26, 17, 30)),
        (Z(2030, 3, 28, 17), Z(2030, 3, 28, 17), Z(2030, 3, 28, 17, 30)),
    ]
    assert {o.meeting_url for o in occurrences} == {TEAMS2}
    assert occurrences[3].sequence == 1
    assert occurrences[3].description is not None
    assert occurrences[3].description.startswith("Moved by an hour this week.")


def test_outlook_custom_zones_use_the_embedded_vtimezone() -> None:
    _, occurrences, problems = run(
        load("outlook_custom_zones.ics"), Z(2030, 3, 1), Z(2030, 4, 30))
    assert problems == []
    # "Customized Time Zone" is defined only by its VTIMEZONE (CET/CEST rules): 09:00 local
    # is 08:00 UTC before 31 March and 07:00 UTC after.
    weekly = [o for o in occurrences if o.title == "Wednesday review"]
    assert [o.start for o in weekly] == [Z(2030, 3, 20, 8), Z(2030, 3, 27, 8), Z(2030, 4, 3, 7)]
    assert {o.meeting_url for o in weekly} == {WEBEX}
    # "Customized Time Zone 1" is +05:30 without DST.
    [india] = [o for o in occurrences if o.title == "Bangalore stand-up"]
    assert (india.start, india.end) == (Z(2030, 3, 15, 4, 30), Z(2030, 3, 15, 5, 30))
    # An Outlook display name as TZID.
    [display] = [o for o in occurrences if o.title == "Display-name zone"]
    assert (display.start, display.end) == (Z(2030, 4, 10, 7), Z(2030, 4, 10, 7, 30))


def test_outlook_all_day_events() -> None:
    _, occurrences, problems = run(load("outlook_all_day.ics"), Z(2030, 4, 1), Z(2030, 4, 30))
    assert problems == []
    assert [(o.title, o.all_day, o.start, o.end) for o in occurrences] == [
        ("Betriebsausflug", True, Z(2030, 4, 5), Z(2030, 4, 6)),
        # Midnight-to-midnight with X-MICROSOFT-CDO-ALLDAYEVENT:TRUE is an all-day event.
        ("Messe", True, Z(2030, 4, 8), Z(2030, 4, 10)),
    ]


def test_thunderbird_monthly_rule_and_prefixed_tzid() -> None:
    _, occurrences, problems = run(load("thunderbird.ics"), Z(2030, 3, 1), Z(2030, 5, 1))
    assert problems == []
    monthly = [o for o in occurrences if o.title == "Monthly planning"]
    # Second Wednesday at 16:00 London: GMT in March, BST in April.
    assert times(monthly) == [
        (Z(2030, 3, 13, 16), Z(2030, 3, 13, 16), Z(2030, 3, 13, 17)),
        (Z(2030, 4, 10, 15), Z(2030, 4, 10, 15), Z(2030, 4, 10, 16)),
    ]
    assert monthly[0].meeting_url == WEBEX
    assert monthly[0].description == "Agenda:\n1. numbers\n2. plans"  # not the VALARM's
    assert monthly[0].organizer == "alex@example.co.uk"
    assert monthly[0].attendees == (
        Attendee("chris@example.co.uk", None, "NEEDS-ACTION", "REQ-PARTICIPANT"),)
    assert monthly[0].sequence == 2
    [lunch] = [o for o in occurrences if o.title == "Lunch & learn"]
    # TZID=/mozilla.org/20050126_1/Europe/London, 12:00 BST.
    assert (lunch.start, lunch.end) == (Z(2030, 4, 3, 11), Z(2030, 4, 3, 12))
    assert lunch.meeting_url is None
    assert lunch.description == "Bring questions. Dial-in only, no video."


def test_apple_icloud_url_attendee_email_params_floating_and_yearly() -> None:
    parsed, occurrences, problems = run(load("apple_icloud.ics"), Z(2030, 3, 1), Z(2030, 4, 1))
    assert problems == [] and parsed.method is None
    assert [(o.title, o.start, o.end, o.all_day) for o in occurrences] == [
        ("Design sync", Z(2030, 3, 14, 14), Z(2030, 3, 14, 14, 30), False),
        ("Floating lunch", Z(2030, 3, 16, 12), Z(2030, 3, 16, 13), False),  # floating → UTC
        ("St. Patrick's Day", Z(2030, 3, 17), Z(2030, 3, 18), True),
    ]
    design = occurrences[0]
    assert design.meeting_url == ZOOM  # from URL; LOCATION is a room
    assert design.location == (
        "Conference Room 4\nOne Apple Park Way, Cupertino, CA 95014, United States")
    assert design.organizer == "ann@icloud.com"  # EMAIL parameter of a urn:uuid: organizer
    assert design.attendees == (
        Attendee("ann@icloud.com", "Ann Appleseed", "ACCEPTED", "CHAIR"),
        Attendee("bob@example.com", "Bob Builder", "TENTATIVE", "REQ-PARTICIPANT"),
    )
    assert design.sequence == 1
    assert occurrences[2].recurring
    assert occurrences[2].key == "1A2B3C4D-5E6F-4A7B-8C9D-0E1F2A3B4C5E|20300317T000000Z"


def test_nextcloud_rdate_duration_and_conference_preference() -> None:
    _, occurrences, problems = run(load("nextcloud_caldav.ics"), Z(2030, 3, 1), Z(2030, 4, 15))
    assert problems == []
    # Every other Tuesday 14:00 Berlin for 90 minutes, plus an RDATE on Wednesday 13 March.
    assert times(occurrences) == [
        (Z(2030, 3, 5, 13), Z(2030, 3, 5, 13), Z(2030, 3, 5, 14, 30)),
        (Z(2030, 3, 13, 13), Z(2030, 3, 13, 13), Z(2030, 3, 13, 14, 30)),
        (Z(2030, 3, 19, 13), Z(2030, 3, 19, 13), Z(2030, 3, 19, 14, 30)),
        (Z(2030, 4, 2, 12), Z(2030, 4, 2, 12), Z(2030, 4, 2, 13, 30)),
    ]
    # CONFERENCE with FEATURE=VIDEO wins over the audio-only one listed first.
    assert {o.meeting_url for o in occurrences} == {MEET2}
    assert {o.sequence for o in occurrences} == {2}


def test_radicale_durations_and_defaults() -> None:
    _, occurrences, problems = run(
        load("radicale_durations.ics"), Z(2030, 3, 1), Z(2030, 4, 1))
    assert problems == []
    by_uid: dict[str, list[tuple[datetime, datetime]]] = {}
    for o in occurrences:
        by_uid.setdefault(o.uid, []).append((o.start, o.end))
    assert by_uid == {
        # COUNT=5 every other day from 1 March, minus the EXDATE list (3 and 7 March).
        "radicale-daily-1": [
            (Z(2030, 3, 1, 9), Z(2030, 3, 1, 9, 45)),
            (Z(2030, 3, 5, 9), Z(2030, 3, 5, 9, 45)),
            (Z(2030, 3, 9, 9), Z(2030, 3, 9, 9, 45)),
        ],
        "radicale-allday-2": [(Z(2030, 3, 10), Z(2030, 3, 12))],
        # P1D is one calendar day (23 hours across spring-forward); PT24H is exact.
        "radicale-nominal-3": [(Z(2030, 3, 30, 11), Z(2030, 3, 31, 10))],
        "radicale-exact-4": [(Z(2030, 3, 30, 11), Z(2030, 3, 31, 11))],
        # RFC 5545: no end means zero length, stretched to one second (end > start).
        "radicale-noend-5": [(Z(2030, 3, 20, 10), Z(2030, 3, 20, 10) + timedelta(seconds=1))],
        "radicale-allday-noend-6": [(Z(2030, 3, 21), Z(2030, 3, 22))],
    }
    daily = of(occurrences, "radicale-daily-1")
    assert {o.meeting_url for o in daily} == {
        "https://example.webex.com/example/j.php?MTID=m0123456789abcdef0123456789abcdef"}


def test_zoom_invite() -> None:
    parsed, occurrences, problems = run(load("zoom_invite.ics"), Z(2030, 3, 1), Z(2030, 4, 1))
    assert problems == [] and parsed.method == "PUBLISH"
    [occurrence] = occurrences
    assert (occurrence.start, occurrence.end) == (Z(2030, 3, 20, 16), Z(2030, 3, 20, 17))
    assert occurrence.meeting_url == (
        "https://us02web.zoom.us/j/85412345678?pwd=aBcDeFgHiJkLmNoPqRsTuVwXyZ.1")
    assert occurrence.description is not None
    assert "+16699006833,,85412345678#,,,,*246810# US (San Jose)" in occurrence.description
    assert occurrence.description.startswith("Hi there,\n\nJohn Smith is inviting you")


def test_rrule_variety() -> None:
    _, occurrences, problems = run(load("rrule_variety.ics"), Z(2030, 1, 1), Z(2031, 1, 1))
    assert problems == []
    starts: dict[str, list[datetime]] = {}
    for o in occurrences:
        starts.setdefault(o.uid, []).append(o.start)
    assert starts == {
        # Last weekday of the month (BYSETPOS=-1), four times.
        "last-workday-of-month": [
            Z(2030, 1, 31, 16), Z(2030, 2, 28, 16), Z(2030, 3, 29, 16), Z(2030, 4, 30, 16)],
        # Yearly all-day until 2032; only 2030 is in the window.
        "yearly-until": [Z(2030, 6, 15)],
        # Every third week on Monday and Friday until 15 February.
        "every-third-week": [
            Z(2030, 1, 7, 8), Z(2030, 1, 11, 8), Z(2030, 1, 28, 8), Z(2030, 2, 1, 8)],
        # COUNT=3 from 31 December 2029: two of them fall in the window.
        "daily-count-straddles-window": [Z(2030, 1, 1, 10), Z(2030, 1, 2, 10)],
        # BYMONTHDAY=31 skips the months without a 31st.
        "monthday-31": [
            Z(2030, 1, 31, 12), Z(2030, 3, 31, 12), Z(2030, 5, 31, 12), Z(2030, 7, 31, 12)],
        # DTSTART is the first instance and counts towards COUNT (RFC 5545 §3.3.10).
        "unsynchronised-dtstart": [Z(2030, 1, 2, 10), Z(2030, 1, 4, 10), Z(2030, 1, 11, 10)],
        # Second-to-last Thursday, every other month, 14:00 New York (EST, then EDT).
        "second-to-last-thursday": [Z(2030, 1, 24, 19), Z(2030, 3, 21, 18), Z(2030, 5, 23, 18)],
    }
    [anniversary] = of(occurrences, "yearly-until")
    assert anniversary.all_day and anniversary.end == Z(2030, 6, 16)


def test_overrides_moved_in_moved_out_cancelled_and_changed_link() -> None:
    parsed, occurrences, problems = run(load("overrides.ics"), Z(2030, 4, 1), Z(2030, 5, 1))
    assert problems == []
    assert [
        (o.recurrence_id, o.start, o.cancelled, o.meeting_url, o.title) for o in occurrences
    ] == [
        (Z(2030, 4, 3, 13), Z(2030, 4, 3, 13), False, MEET, "Weekly design review"),
        # The 27 March instance was moved into the window.
        (Z(2030, 3, 27, 14), Z(2030, 4, 5, 13), False, MEET,
         "Weekly design review (moved into April)"),
        # 10 April was moved to May (out of the window): absent.
        (Z(2030, 4, 17, 13), Z(2030, 4, 17, 13), True, MEET, "Weekly design review"),
        # The stale copy with a lower SEQUENCE does not win.
        (Z(2030, 4, 24, 13), Z(2030, 4, 24, 13), False, ZOOM, "Weekly design review (on Zoom)"),
    ]
    [series] = parsed.series
    assert series.sequence == 1
    assert series.recurrence_ids == (
        Z(2030, 3, 27, 14), Z(2030, 4, 10, 13), Z(2030, 4, 17, 13), Z(2030, 4, 24, 13))
    # In May the moved instance appears, at its new time and with its original identity.
    _, may, _ = run(load("overrides.ics"), Z(2030, 5, 8), Z(2030, 5, 9))
    assert [(o.recurrence_id, o.start) for o in may] == [
        (Z(2030, 4, 10, 13), Z(2030, 5, 8, 13)), (Z(2030, 5, 8, 13), Z(2030, 5, 8, 13))]


def test_range_this_and_future() -> None:
    _, occurrences, problems = run(load("this_and_future.ics"), Z(2030, 4, 1), Z(2030, 5, 5))
    assert problems == []
    assert [(o.recurrence_id, o.start, o.end, o.title) for o in occurrences] == [
        (Z(2030, 4, 4, 10), Z(2030, 4, 4, 10), Z(2030, 4, 4, 10, 30), "Early slot"),
        (Z(2030, 4, 11, 10), Z(2030, 4, 11, 10), Z(2030, 4, 11, 10, 30), "Early slot"),
        (Z(2030, 4, 18, 10), Z(2030, 4, 18, 11), Z(2030, 4, 18, 12), "Later slot"),
        (Z(2030, 4, 25, 10), Z(2030, 4, 25, 11), Z(2030, 4, 25, 12), "Later slot"),
        (Z(2030, 5, 2, 10), Z(2030, 5, 2, 11), Z(2030, 5, 2, 12), "Later slot"),
    ]
    assert [o.sequence for o in occurrences] == [0, 0, 1, 1, 1]


def test_broken_events_are_skipped_and_reported_the_rest_syncs() -> None:
    parsed, occurrences, problems = run(load("broken.ics"), Z(2030, 4, 1), Z(2030, 5, 1))
    assert [(o.uid, o.start, o.meeting_url) for o in occurrences] == [
        ("good@example.com", Z(2030, 4, 3, 9), MEET)]
    reasons = {p.uid: p.reason for p in problems}
    assert set(reasons) == {
        "bad-rrule@example.com", "no-start@example.com", "bad-start@example.com",
        "bad-interval@example.com"}
    assert reasons["bad-rrule@example.com"].startswith("invalid RRULE: ")
    assert "FORTNIGHTLY" in reasons["bad-rrule@example.com"]
    assert reasons["no-start@example.com"] == "missing DTSTART"
    assert reasons["bad-start@example.com"].startswith("invalid DTSTART: ")
    assert reasons["bad-interval@example.com"].startswith("invalid RRULE: ")
    assert [s.uid for s in parsed.series] == ["good@example.com"]


def test_floating_times_are_utc_unless_the_calendar_names_a_zone() -> None:
    _, plain, problems = run(load("floating.ics"), Z(2030, 4, 1), Z(2030, 5, 1))
    assert problems == []
    assert [(o.start, o.end) for o in plain] == [(Z(2030, 4, 5, 9), Z(2030, 4, 5, 10))]
    _, named, problems = run(load("floating_x_wr_timezone.ics"), Z(2030, 4, 1), Z(2030, 5, 1))
    assert problems == []
    assert [(o.start, o.end) for o in named] == [(Z(2030, 4, 5, 13), Z(2030, 4, 5, 14))]


def test_dst_gaps_and_overlaps() -> None:
    _, occurrences, problems = run(load("dst.ics"), Z(2030, 1, 1), Z(2031, 1, 1))
    assert problems == []
    starts: dict[str, list[datetime]] = {}
    for o in occurrences:
        starts.setdefault(o.uid, []).append(o.start)
    assert starts == {
        # 02:30 does not exist on 31 March in Berlin: it moves forward by the gap (03:30 CEST).
        "spring-gap@example.com": [Z(2030, 3, 29, 1, 30), Z(2030, 3, 30, 1, 30),
                                   Z(2030, 3, 31, 1, 30)],
        # 02:30 happens twice on 27 October: the first one (CEST) is meant.
        "autumn-overlap@example.com": [Z(2030, 10, 26, 0, 30), Z(2030, 10, 27, 0, 30)],
        # 9:00 New York stays 9:00 across the US change on 10 March.
        "new-york-monday@example.com": [Z(2030, 3, 4, 14), Z(2030, 3, 11, 13)],
    }
    [gap] = [o for o in occurrences if o.start == Z(2030, 3, 31, 1, 30)]
    assert gap.end == Z(2030, 3, 31, 2)  # 30 minutes later: 04:00 CEST


def test_encoding_bom_crlf_split_utf8_fold_and_escapes() -> None:
    data = load("encoding_bom_crlf.ics")
    assert data.startswith(b"\xef\xbb\xbf") and b"\r\n " in data
    for given in (data, data.decode("utf-8", errors="replace")):
        _, occurrences, problems = run(data, Z(2030, 4, 1), Z(2030, 5, 1))
        assert problems == [], given[:10]
        [occurrence] = occurrences
        assert occurrence.title == "Réunion; budget, Q2 \\ révision"
        assert occurrence.location == "Salle 3, Bâtiment A"
        assert occurrence.description == (
            "Ligne 1\nLigne 2\nLigne 3, avec virgule; et point-virgule")
        assert occurrence.raw["SUMMARY"] == "Réunion; budget, Q2 \\ révision"


def test_windows_1252_file() -> None:
    _, occurrences, problems = run(load("outlook_cp1252.ics"), Z(2030, 4, 1), Z(2030, 5, 1))
    assert problems == []
    assert [o.title for o in occurrences] == ["Café – Planung"]


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.ics")))
def test_every_fixture_round_trips_through_series_to_ical(name: str) -> None:
    parsed = parse_calendar(load(name))
    window = (Z(2029, 12, 1), Z(2031, 1, 1))
    expected, _ = expand(parsed, *window)
    again: list[Occurrence] = []
    for series in parsed.series:
        copy = parse_calendar(series.to_ical())
        assert copy.method == parsed.method
        assert [s.uid for s in copy.series] == [series.uid]
        assert copy.series[0] == series
        again.extend(expand(copy, *window)[0])
    again.sort(key=lambda o: (o.start, o.uid, o.recurrence_id))
    assert again == expected


# ---------------------------------------------------------------------------------------------
# Rules, limits and edge cases
# ---------------------------------------------------------------------------------------------


def test_unparseable_input_gives_no_series_and_one_problem() -> None:
    for data in (b"", "", b"\x00\xff garbage", "hello world", "BEGIN:VTODO\nEND:VTODO\n",
                 b"\xff\xfe" + "garbage".encode("utf-16-le")):
        parsed = parse_calendar(data)
        assert parsed.series == () and len(parsed.problems) == 1, data
        assert parsed.method is None
    assert parse_calendar(12345).problems  # type: ignore[arg-type]


def test_empty_calendar_has_no_problems() -> None:
    parsed = parse_calendar("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n")
    assert parsed == ParsedCalendar(None, (), ())


def test_bare_vevent_and_missing_end_lines_are_accepted() -> None:
    parsed = parse_calendar("BEGIN:VEVENT\nUID:x\nDTSTART:20300101T100000Z\n")
    [series] = parsed.series
    occurrences, _ = expand(series, Z(2030, 1, 1), Z(2030, 1, 2))
    assert [o.start for o in occurrences] == [Z(2030, 1, 1, 10)]


def test_several_vcalendars_in_one_text() -> None:
    text = ical("UID:a\nDTSTART:20300101T100000Z") + ical("UID:b\nDTSTART:20300101T110000Z")
    parsed = parse_calendar(text)
    assert [s.uid for s in parsed.series] == ["a", "b"]


def test_missing_dtstart_in_a_cancel_keeps_the_series_without_a_problem() -> None:
    text = ical("UID:gone@example.com\nSEQUENCE:3\nDTSTAMP:20300301T000000Z\nSTATUS:CANCELLED",
                head="METHOD:CANCEL\n")
    parsed = parse_calendar(text)
    assert parsed.problems == ()
    [series] = parsed.series
    assert (series.uid, series.sequence, series.cancelled) == ("gone@example.com", 3, True)
    assert expand(parsed, Z(2000, 1, 1), Z(2100, 1, 1)) == ([], [])
    request = parse_calendar(ical("UID:gone@example.com\nSUMMARY:x", head="METHOD:REQUEST\n"))
    assert [p.reason for p in request.problems] == ["missing DTSTART"]
    assert request.series == ()


def test_method_cancel_cancels_even_without_status() -> None:
    text = ical("UID:m\nDTSTART:20300101T100000Z\nSEQUENCE:1", head="METHOD:CANCEL\n")
    occurrences, _ = expand(parse_calendar(text), Z(2030, 1, 1), Z(2030, 1, 2))
    assert [o.cancelled for o in occurrences] == [True]


def test_reply_and_other_methods_are_reported() -> None:
    for method in ("REPLY", "COUNTER", "REFRESH", "PUBLISH", "request"):
        parsed = parse_calendar(ical("UID:r\nDTSTART:20300101T100000Z", head=f"METHOD:{method}\n"))
        assert parsed.method == method.upper()


def test_missing_uid_gets_a_stable_one() -> None:
    text = ical("DTSTART:20300101T100000Z\nSUMMARY:Anonymous")
    first, second = parse_calendar(text), parse_calendar(text)
    assert first.series[0].uid == second.series[0].uid
    assert first.series[0].uid.startswith("summon-derived-")


def test_unknown_time_zone_is_read_as_utc_and_reported() -> None:
    _, occurrences, problems = run(
        ical("UID:tz\nDTSTART;TZID=Mars/Olympus_Mons:20300101T100000"), Z(2030, 1, 1),
        Z(2030, 1, 2))
    assert [o.start for o in occurrences] == [Z(2030, 1, 1, 10)]
    assert [p.uid for p in problems] == ["tz"]
    assert "Mars/Olympus_Mons" in problems[0].reason


@pytest.mark.parametrize(
    ("tzid", "expected"),
    [
        ("Europe/Berlin", Z(2030, 1, 1, 9)),
        ("europe/berlin", Z(2030, 1, 1, 9)),
        ("W. Europe Standard Time", Z(2030, 1, 1, 9)),
        ("Pacific Standard Time", Z(2030, 1, 1, 18)),
        ("Eastern Standard Time", Z(2030, 1, 1, 15)),
        ("India Standard Time", Z(2030, 1, 1, 4, 30)),
        ("(UTC-05:00) Eastern Time (US & Canada)", Z(2030, 1, 1, 15)),
        ("/freeassociation.sourceforge.net/Tzfile/Asia/Tokyo", Z(2030, 1, 1, 1)),
        ("tzone://Microsoft/Pacific Standard Time", Z(2030, 1, 1, 18)),
        ("(GMT+03:00) Somewhere Unlisted", Z(2030, 1, 1, 7)),
        ("UTC", Z(2030, 1, 1, 10)),
    ],
)
def test_time_zone_names(tzid: str, expected: datetime) -> None:
    _, occurrences, problems = run(
        ical(f'UID:z\nDTSTART;TZID="{tzid}":20300101T100000'), Z(2029, 12, 31), Z(2030, 1, 3))
    assert problems == []
    assert [o.start for o in occurrences] == [expected]


def test_windows_zone_table() -> None:
    assert windows_to_iana("W. Europe Standard Time") == "Europe/Berlin"
    assert windows_to_iana("  pacific standard time ") == "America/Los_Angeles"
    assert windows_to_iana("GMT Standard Time") == "Europe/London"
    assert windows_to_iana(
        "(UTC+01:00) Brussels, Copenhagen, Madrid, Paris") == "Europe/Paris"
    assert windows_to_iana("Europe/Berlin") is None
    assert windows_to_iana("") is None
    assert len(WINDOWS_ZONES) > 130


def test_weekly_meeting_stays_at_local_time_across_dst_even_when_started_long_ago() -> None:
    text = ical(
        "UID:old\nDTSTART;TZID=Europe/Berlin:20090105T090000\n"
        "DTEND;TZID=Europe/Berlin:20090105T091500\nRRULE:FREQ=WEEKLY;BYDAY=MO")
    occurrences, problems = expand(parse_calendar(text), Z(2030, 3, 20), Z(2030, 4, 5))
    assert problems == []
    assert [o.start for o in occurrences] == [Z(2030, 3, 25, 8), Z(2030, 4, 1, 7)]
    assert [o.key for o in occurrences] == ["old|20300325T080000Z", "old|20300401T070000Z"]


def test_runaway_rules_are_bounded_and_reported() -> None:
    secondly = ical("UID:s\nDTSTART:20300101T000000Z\nRRULE:FREQ=SECONDLY")
    occurrences, problems = expand(parse_calendar(secondly), Z(2030, 1, 1), Z(2030, 2, 1))
    assert len(occurrences) <= MAX_OCCURRENCES
    assert [p.uid for p in problems] and {p.uid for p in problems} == {"s"}
    assert occurrences[:3] == sorted(occurrences[:3], key=lambda o: o.start)
    assert occurrences[1].start - occurrences[0].start == timedelta(seconds=1)

    # A rule that never matches, with a COUNT that can never be reached.
    impossible = ical(
        "UID:i\nDTSTART:20300201T090000Z\nRRULE:FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30;COUNT=5")
    occurrences, problems = expand(parse_calendar(impossible), Z(2030, 1, 1), Z(2030, 3, 1))
    assert [o.start for o in occurrences] == [Z(2030, 2, 1, 9)]  # DTSTART only
    assert problems == []  # the search stops at the window's end
    # ... but counting towards a window centuries later would walk a million empty days.
    occurrences, problems = expand(parse_calendar(impossible), Z(2900, 1, 1), Z(2900, 3, 1))
    assert occurrences == []
    assert [p.uid for p in problems] == ["i"] and "too much work" in problems[0].reason

    # A daily series over a hundred years costs only its window.
    century = ical("UID:c\nDTSTART:19300101T090000Z\nRRULE:FREQ=DAILY;UNTIL=20391231T090000Z")
    occurrences, problems = expand(parse_calendar(century), Z(2030, 1, 1), Z(2030, 1, 30))
    assert problems == [] and len(occurrences) == 29


def test_huge_count_is_counted_not_hung() -> None:
    text = ical("UID:n\nDTSTART:20300101T090000Z\nRRULE:FREQ=DAILY;COUNT=1000000")
    occurrences, problems = expand(parse_calendar(text), Z(2030, 3, 1), Z(2030, 3, 3))
    assert problems == []
    assert [o.start for o in occurrences] == [Z(2030, 3, 1, 9), Z(2030, 3, 2, 9)]


def test_exrule_rdate_period_and_date_exdate() -> None:
    text = ical(
        "UID:x\nDTSTART:20300401T090000Z\nDTEND:20300401T100000Z\nRRULE:FREQ=DAILY;COUNT=10\n"
        "EXRULE:FREQ=WEEKLY;BYDAY=SA,SU\nEXDATE;VALUE=DATE:20300403\n"
        "RDATE;VALUE=PERIOD:20300420T150000Z/20300420T170000Z,20300421T150000Z/PT30M")
    occurrences, problems = expand(parse_calendar(text), Z(2030, 4, 1), Z(2030, 5, 1))
    assert problems == []
    # 1-10 April daily, without the weekend (6, 7 April) and without 3 April; two RDATEs.
    assert [(o.start, o.end) for o in occurrences] == [
        (Z(2030, 4, 1, 9), Z(2030, 4, 1, 10)),
        (Z(2030, 4, 2, 9), Z(2030, 4, 2, 10)),
        (Z(2030, 4, 4, 9), Z(2030, 4, 4, 10)),
        (Z(2030, 4, 5, 9), Z(2030, 4, 5, 10)),
        (Z(2030, 4, 8, 9), Z(2030, 4, 8, 10)),
        (Z(2030, 4, 9, 9), Z(2030, 4, 9, 10)),
        (Z(2030, 4, 10, 9), Z(2030, 4, 10, 10)),
        (Z(2030, 4, 20, 15), Z(2030, 4, 20, 17)),
        (Z(2030, 4, 21, 15), Z(2030, 4, 21, 15, 30)),
    ]


def test_an_instance_overlapping_the_window_start_is_included() -> None:
    text = ical("UID:long\nDTSTART:20300101T220000Z\nDTEND:20300102T020000Z\nRRULE:FREQ=DAILY")
    occurrences, _ = expand(parse_calendar(text), Z(2030, 1, 5), Z(2030, 1, 6))
    # The 4 January instance runs until 02:00 on the 5th; the 5 January one starts at 22:00.
    assert [o.start for o in occurrences] == [Z(2030, 1, 4, 22), Z(2030, 1, 5, 22)]
    # The window is half-open: an instance ending exactly at its start is out.
    occurrences, _ = expand(parse_calendar(text), Z(2030, 1, 5, 2), Z(2030, 1, 5, 22))
    assert occurrences == []


def test_naive_window_bounds_are_utc_and_an_empty_window_is_empty() -> None:
    text = ical("UID:w\nDTSTART:20300101T100000Z")
    parsed = parse_calendar(text)
    assert len(expand(parsed, datetime(2030, 1, 1), datetime(2030, 1, 2))[0]) == 1
    assert expand(parsed, Z(2030, 1, 2), Z(2030, 1, 1)) == ([], [])


def test_expand_a_single_series() -> None:
    parsed = parse_calendar(load("google_export.ics"))
    [standup] = [s for s in parsed.series if s.uid.startswith("5b1kq8c0")]
    assert isinstance(standup, Series) and standup.recurring and standup.sequence == 1
    occurrences, problems = expand(standup, Z(2030, 3, 1), Z(2030, 3, 12))
    assert problems == [] and [o.start for o in occurrences] == [
        Z(2030, 3, 4, 8), Z(2030, 3, 11, 8)]


def test_duplicate_components_keep_the_newest() -> None:
    older = "UID:d\nSEQUENCE:1\nDTSTAMP:20300101T000000Z\nDTSTART:20300105T100000Z\nSUMMARY:A"
    newer = "UID:d\nSEQUENCE:1\nDTSTAMP:20300102T000000Z\nDTSTART:20300106T100000Z\nSUMMARY:B"
    for events in ((older, newer), (newer, older)):
        occurrences, _ = expand(parse_calendar(ical(*events)), Z(2030, 1, 1), Z(2030, 2, 1))
        assert [o.title for o in occurrences] == ["B"]
    higher = "UID:d\nSEQUENCE:2\nDTSTAMP:20291231T000000Z\nDTSTART:20300107T100000Z\nSUMMARY:C"
    occurrences, _ = expand(parse_calendar(ical(newer, higher)), Z(2030, 1, 1), Z(2030, 2, 1))
    assert [o.title for o in occurrences] == ["C"]


def test_supersedes() -> None:
    t1, t2 = Z(2030, 1, 1), Z(2030, 1, 2)
    assert supersedes(2, None, 1, t2)
    assert not supersedes(1, t2, 2, t1)
    assert supersedes(1, t2, 1, t1)
    assert not supersedes(1, t1, 1, t2)
    assert not supersedes(1, t1, 1, t1)  # the same version again
    assert supersedes(1, t1, 1, None)
    assert not supersedes(1, None, 1, t1)
    assert not supersedes(1, None, 1, None)
    assert supersedes(0, datetime(2030, 1, 2), 0, Z(2030, 1, 1, 23))  # naive is UTC


def test_occurrence_key() -> None:
    assert occurrence_key("u|1", Z(2030, 1, 2, 3, 4)) == "u|1|20300102T030400Z"
    plus_two = datetime(2030, 1, 2, 5, 4, tzinfo=UTC).astimezone(
        __import__("zoneinfo").ZoneInfo("Europe/Athens"))
    assert occurrence_key("u", plus_two) == "u|20300102T050400Z"


def test_all_day_override_recurrence_id_given_as_date_time() -> None:
    text = ical(
        "UID:a\nDTSTART;VALUE=DATE:20300101\nRRULE:FREQ=DAILY;COUNT=3\nSUMMARY:Day",
        "UID:a\nRECURRENCE-ID:20300102T000000Z\nDTSTART;VALUE=DATE:20300102\nSUMMARY:Changed")
    occurrences, _ = expand(parse_calendar(text), Z(2030, 1, 1), Z(2030, 1, 10))
    assert [(o.start, o.title) for o in occurrences] == [
        (Z(2030, 1, 1), "Day"), (Z(2030, 1, 2), "Changed"), (Z(2030, 1, 3), "Day")]
    # An override without its own length keeps the series' one (one day).
    assert occurrences[1].end == Z(2030, 1, 3)


def test_raw_is_json_safe_and_keeps_repeated_properties() -> None:
    text = ical(
        "UID:r\nDTSTART:20300101T100000Z\nCATEGORIES:a\\,b\nCATEGORIES:c\nX-CUSTOM;P=1:v\\;w\n"
        "ATTENDEE:MAILTO:One@Example.com\nATTENDEE;EMAIL=two@example.com:urn:uuid:1\n"
        "ATTENDEE:urn:uuid:no-mail")
    [occurrence] = expand(parse_calendar(text), Z(2030, 1, 1), Z(2030, 1, 2))[0]
    assert json.loads(json.dumps(occurrence.raw)) == occurrence.raw
    assert occurrence.raw["CATEGORIES"] == ["a,b", "c"]
    assert occurrence.raw["X-CUSTOM"] == "v;w"
    assert occurrence.raw["DTSTART"] == "20300101T100000Z"
    assert [a.email for a in occurrence.attendees] == ["one@example.com", "two@example.com"]


# ---------------------------------------------------------------------------------------------
# Meeting links
# ---------------------------------------------------------------------------------------------


def props(text: str) -> list[Property]:
    """Content lines ``NAME[;P=V...]:value`` (unquoted parameters only) as properties."""
    found = []
    for line in text.split("\n"):
        head, _, value = line.partition(":")
        name, *pairs = head.split(";")
        params = {key.upper(): val for key, _, val in (pair.partition("=") for pair in pairs)}
        found.append(Property(name.upper(), params, value))
    return found


def test_link_priority_conference_properties_then_location_then_description() -> None:
    assert find_occurrence_link(props(
        f"DESCRIPTION:{ZOOM}\nLOCATION:{MEET2}\nX-GOOGLE-CONFERENCE:{MEET}")) == MEET
    assert find_occurrence_link(props(
        f"DESCRIPTION:{ZOOM}\nLOCATION:Room 1 / {MEET2}")) == MEET2
    assert find_occurrence_link(props(f"DESCRIPTION:join at <{ZOOM}>.")) == ZOOM
    assert find_occurrence_link(props(
        f"X-MICROSOFT-ONLINEMEETINGCONFLINK:conf:sip:x@y\nLOCATION:{MEET}")) == MEET
    assert find_occurrence_link(props(
        f"URL:https://example.com/event/1\nLOCATION:{ZOOM}")) == ZOOM
    assert find_occurrence_link(props(f"URL:{ZOOM}\nLOCATION:{MEET}")) == ZOOM
    assert find_occurrence_link(props("LOCATION:Room 1\nDESCRIPTION:no link here")) is None


def test_link_from_html_alternative_description() -> None:
    html = f'<a href="{TEAMS2.replace("&", "&amp;")}">Join the meeting now</a>'
    assert find_occurrence_link(props(
        f"DESCRIPTION:Please join.\nX-ALT-DESC;FMTTYPE=text/html:{html}")) == TEAMS2


def test_link_from_zoom_invitation_text_without_link_is_canonical() -> None:
    link = find_occurrence_link(props(
        "DESCRIPTION:Zoom meeting\\nMeeting ID: 854 1234 5678\\nPasscode: 246810"))
    assert link is not None and link.startswith("https://zoom.us/j/85412345678")


def test_sandbox_link_in_description() -> None:
    link = find_occurrence_link(props("DESCRIPTION:Test call sandbox://demo?join_delay=1 ok"))
    assert link == "sandbox://demo?join_delay=1"


def test_series_summary_for_invites() -> None:
    [whole] = parse_calendar(load("google_invite.ics")).series
    assert whole.has_master and not whole.cancelled
    assert (whole.organizer, whole.title) == ("pat.lee@example.com", "Pricing review")
    [instance] = parse_calendar(load("google_cancel_instance.ics")).series
    assert not instance.has_master
    assert (instance.organizer, instance.title) == ("jane.doe@example.com", "Team standup")
    # A CANCEL may name an instance by RECURRENCE-ID alone, without DTSTART.
    text = ical("UID:c\nRECURRENCE-ID:20300105T100000Z\nSEQUENCE:2", head="METHOD:CANCEL\n")
    [named] = parse_calendar(text).series
    assert not named.has_master and named.recurrence_ids == (Z(2030, 1, 5, 10),)
    assert named.organizer is None and named.title is None
