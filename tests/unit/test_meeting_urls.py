"""parse_meeting_url: the real-world spellings of each platform's join links, Recall's object
shapes, canonical links and keys, and the look-alikes and tricks that must be refused."""

from __future__ import annotations

import base64
import json
import pickle
import time
from typing import Any
from urllib.parse import quote

import pytest

from summon.domain.meeting_urls import (
    MAX_URL_LENGTH,
    PLATFORMS,
    InvalidMeetingUrl,
    MeetingUrl,
    TeamsUrl,
    ZoomUrl,
    parse_meeting_url,
)

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
ORGANIZER = "a1b2c3d4-5e6f-4a5b-8c7d-9e0f1a2b3c4d"
THREAD = "19:meeting_NmFjMzE3MDEtMGVhNi00NGU3LWJmYjItN2E1ZTQ1ZmM1YzFk@thread.v2"
THREAD_ENC = "19%3ameeting_NmFjMzE3MDEtMGVhNi00NGU3LWJmYjItN2E1ZTQ1ZmM1YzFk%40thread.v2"
CONTEXT_ENC = f"%7b%22Tid%22%3a%22{TENANT}%22%2c%22Oid%22%3a%22{ORGANIZER}%22%7d"
MEETUP_JOIN = f"https://teams.microsoft.com/l/meetup-join/{THREAD_ENC}/0?context={CONTEXT_ENC}"
MTID = "m5c2a1f9e8d7c6b5a4f3e2d1c0b9a8f7e"


def _coords(data: dict[str, str]) -> str:
    return quote(base64.b64encode(json.dumps(data).encode()).decode(), safe="")


LIGHT_THREAD = _coords(
    {"conversationId": THREAD, "tenantId": TENANT, "organizerId": ORGANIZER, "messageId": "0"}
)
LIGHT_CODE = _coords({"meetingCode": "9326458712345", "passcode": "abc"})


def zoom(meeting_id: str, password: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"meeting_id": meeting_id, "meeting_password": password, "platform": "zoom", **extra}


def meet(meeting_id: str) -> dict[str, Any]:
    return {"meeting_id": meeting_id, "platform": "google_meet"}


def teams(platform: str = "microsoft_teams", **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(
        [
            "meeting_id",
            "meeting_password",
            "organizer_id",
            "tenant_id",
            "message_id",
            "thread_id",
            "business_meeting_id",
            "business_meeting_password",
        ]
    )
    out.update(fields, platform=platform)
    return out


def meetup(thread: str = THREAD, message: str = "0", tenant: str | None = TENANT,
           organizer: str | None = ORGANIZER, platform: str = "microsoft_teams") -> dict[str, Any]:
    return teams(platform, thread_id=thread, message_id=message, tenant_id=tenant,
                 organizer_id=organizer)


def webex(sub: str, mtid: str, path: str) -> dict[str, Any]:
    return {"meeting_subdomain": sub, "meeting_mtid": mtid, "meeting_path": path,
            "platform": "webex"}


def webex_room(sub: str, room: str) -> dict[str, Any]:
    return {"meeting_subdomain": sub, "meeting_personal_room_id": room, "platform": "webex"}


def goto(meeting_id: str) -> dict[str, Any]:
    return {"meeting_id": meeting_id, "platform": "goto_meeting"}


ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    # --- Zoom ------------------------------------------------------------------------------
    ("https://zoom.us/j/123456789", zoom("123456789")),
    ("https://zoom.us/j/85412345678?pwd=dGhpcyBpcyBhIHRlc3Q.1", zoom("85412345678", "dGhpcyBpcyBhIHRlc3Q.1")),
    ("zoom.us/j/1234567890", zoom("1234567890")),
    ("//zoom.us/j/1234567890", zoom("1234567890")),
    ("http://zoom.us/j/1234567890", zoom("1234567890")),
    ("HTTPS://US02WEB.ZOOM.US/J/85412345678?PWD=XyZ", zoom("85412345678", "XyZ")),
    ("https://us02web.zoom.us/j/85412345678?pwd=abc#success", zoom("85412345678", "abc")),
    ("https://us06web.zoom.us/j/81234567890?pwd=Qm9vaw&from=addon", zoom("81234567890", "Qm9vaw")),
    ("https://company.zoom.us/j/81234567890", zoom("81234567890")),
    ("https://www.zoom.us/j/81234567890", zoom("81234567890")),
    ("https://zoom.com/j/81234567890", zoom("81234567890")),
    ("https://acme.zoom.com/j/81234567890", zoom("81234567890")),
    ("https://zoom.us./j/81234567890", zoom("81234567890")),
    ("https://zoom.us/j/123-456-7890", zoom("1234567890")),
    ("https://zoom.us/j/123%20456%207890", zoom("1234567890")),
    ("https://zoom.us/j/1234567890/", zoom("1234567890")),
    ("https://zoom.us/j/1234567890?pwd=", zoom("1234567890")),
    ("https://zoom.us/j/1234567890?uname=B%C3%B6b&pwd=p%2Bq", zoom("1234567890", "p+q")),
    ("https://zoom.us/j/1234567890?PWD=first&pwd=second", zoom("1234567890", "first")),
    ("https://zoom.us/w/99912345678?tk=REGTOKEN.abc", zoom("99912345678", tk="REGTOKEN.abc")),
    ("https://zoom.us/w/99912345678?tk=t&pwd=p", zoom("99912345678", "p", tk="t")),
    ("https://zoom.us/s/81234567890?zak=secret-host-token", zoom("81234567890")),
    ("https://zoom.us/wc/join/81234567890?pwd=abc", zoom("81234567890", "abc")),
    ("https://app.zoom.us/wc/81234567890/join?fromPWA=1&pwd=abc", zoom("81234567890", "abc")),
    ("https://zoom.us/wc/81234567890/start", zoom("81234567890")),
    ("https://zoom.us/my/john.smith", zoom("john.smith")),
    ("https://acme.zoom.us/my/JaneDoe?pwd=x", zoom("JaneDoe", "x")),
    ("https://zoom.us/join?confno=81234567890&pwd=abc", zoom("81234567890", "abc")),
    ("zoommtg://zoom.us/join?action=join&confno=81234567890&pwd=abc", zoom("81234567890", "abc")),
    ("zoommtg://us02web.zoom.us/join?confno=81234567890&zc=0&uname=Bot", zoom("81234567890")),
    ("zoomus://zoom.us/join?confno=81234567890", zoom("81234567890")),
    ("zoommtg://zoom.us/start?confno=81234567890", zoom("81234567890")),
    ("https://zoomgov.com/j/1612345678?pwd=abc", zoom("1612345678", "abc")),
    ("https://agency.zoomgov.com/j/1612345678", zoom("1612345678")),
    # edges and e-mail/chat decoration
    ("<https://zoom.us/j/1234567890>", zoom("1234567890")),
    ('"https://zoom.us/j/1234567890".', zoom("1234567890")),
    ("(https://zoom.us/j/1234567890),", zoom("1234567890")),
    ("https://zoom.us/j/1234567890?pwd=abc.", zoom("1234567890", "abc")),
    ("'https://zoom.us/j/1234567890'", zoom("1234567890")),
    ("**https://zoom.us/j/1234567890**", zoom("1234567890")),
    ("  \u200bhttps://zoom.us/j/1234567890\n", zoom("1234567890")),
    ("https://zoom.us/j/1234567890?pwd=abc&amp;uname=Bot", zoom("1234567890", "abc")),
    ("https%3A%2F%2Fzoom.us%2Fj%2F1234567890%3Fpwd%3Dabc", zoom("1234567890", "abc")),
    # --- Google Meet -----------------------------------------------------------------------
    ("https://meet.google.com/abc-defg-hij", meet("abc-defg-hij")),
    ("meet.google.com/abc-defg-hij", meet("abc-defg-hij")),
    ("http://meet.google.com/abc-defg-hij", meet("abc-defg-hij")),
    ("https://MEET.GOOGLE.COM/ABC-DEFG-HIJ", meet("abc-defg-hij")),
    ("https://meet.google.com/abcdefghij", meet("abc-defg-hij")),
    ("https://meet.google.com/abc-defg-hij?authuser=0", meet("abc-defg-hij")),
    ("https://meet.google.com/abc-defg-hij?hs=122&authuser=1", meet("abc-defg-hij")),
    ("https://meet.google.com/abc-defg-hij?pli=1", meet("abc-defg-hij")),
    ("https://meet.google.com/abc-defg-hij/", meet("abc-defg-hij")),
    ("https://meet.google.com/_meet/abc-defg-hij?ijlm=1", meet("abc-defg-hij")),
    ("https://meet.google.com/lookup/TeamStandup?authuser=0&hs=179", meet("lookup/teamstandup")),
    ("https://g.co/meet/abc-defg-hij", meet("abc-defg-hij")),
    ("<https://meet.google.com/gvy-zzra-ktd>", meet("gvy-zzra-ktd")),
    # --- Microsoft Teams -------------------------------------------------------------------
    (MEETUP_JOIN, meetup()),
    (MEETUP_JOIN.replace("https://", "http://"), meetup()),
    (MEETUP_JOIN.replace("https://", ""), meetup()),
    (MEETUP_JOIN.replace("%3a", "%3A").replace("%40", "%40"), meetup()),
    (MEETUP_JOIN + "&anon=true&deeplinkId=0c8a", meetup()),
    (MEETUP_JOIN.replace("/0?", "?"), meetup()),
    (MEETUP_JOIN.replace("teams.microsoft.com", "teams.cloud.microsoft"), meetup()),
    # the web client carries the route in the fragment
    (f"https://teams.microsoft.com/v2/?meetingjoin=true#/l/meetup-join/{THREAD}/0"
     f"?context={CONTEXT_ENC}&anon=true", meetup()),
    (f"https://teams.microsoft.com/_#/l/meetup-join/{THREAD_ENC}/0?context={CONTEXT_ENC}", meetup()),
    (f"https://teams.microsoft.com/_#/meetup-join/{THREAD}/0?context={CONTEXT_ENC}", meetup()),
    # plain JSON context, and the old tenantId query parameter
    (f'https://teams.microsoft.com/l/meetup-join/{THREAD}/0?context={{"Tid":"{TENANT}","Oid":"{ORGANIZER}"}}',
     meetup()),
    (f"https://teams.microsoft.com/l/meetup-join/19%3a900876baa3134907b0dcb41a0d220e31%40thread.skype/"
     f"1501527539926?tenantId={TENANT}",
     meetup("19:900876baa3134907b0dcb41a0d220e31@thread.skype", "1501527539926", TENANT, None)),
    # channel meeting: the message id names the meeting in the channel thread
    (f"https://teams.microsoft.com/l/meetup-join/19%3a5c1f0e7a3b2d4c9e8f7a6b5c4d3e2f1a%40thread.tacv2/"
     f"1603212345678?context=%7b%22Tid%22%3a%22{TENANT}%22%2c%22Oid%22%3a%22{ORGANIZER}%22%2c"
     f"%22MessageId%22%3a%221603212345678%22%7d",
     meetup("19:5c1f0e7a3b2d4c9e8f7a6b5c4d3e2f1a@thread.tacv2", "1603212345678")),
    # a context that does not decode is ignored, not fatal
    (f"https://teams.microsoft.com/l/meetup-join/{THREAD_ENC}/0?context=%7b%22Tid%22%3a",
     meetup(tenant=None, organizer=None)),
    # government clouds
    (MEETUP_JOIN.replace("teams.microsoft.com", "gov.teams.microsoft.us"), meetup()),
    (MEETUP_JOIN.replace("teams.microsoft.com", "dod.teams.microsoft.us"), meetup()),
    # launcher and SafeLinks around the real link
    ("https://teams.microsoft.com/dl/launcher/launcher.html?url=%2F_%23%2Fl%2Fmeetup-join%2F"
     "19%3Ameeting_NmFjMzE3MDEtMGVhNi00NGU3LWJmYjItN2E1ZTQ1ZmM1YzFk%40thread.v2%2F0%3Fcontext%3D"
     "%257b%2522Tid%2522%253a%252272f988bf-86f1-41af-91ab-2d7cd011db47%2522%252c%2522Oid%2522%253a"
     "%2522a1b2c3d4-5e6f-4a5b-8c7d-9e0f1a2b3c4d%2522%257d%26anon%3Dtrue&type=meetup-join"
     "&deeplinkId=54ccd357&directDl=true&msLaunch=true&enableMobilePage=true&suppressPrompt=true",
     meetup()),
    ("https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Fteams.microsoft.com%2Fl%2F"
     "meetup-join%2F19%253ameeting_NmFjMzE3MDEtMGVhNi00NGU3LWJmYjItN2E1ZTQ1ZmM1YzFk%2540thread.v2%2F0"
     "%3Fcontext%3D%257b%2522Tid%2522%253a%252272f988bf-86f1-41af-91ab-2d7cd011db47%2522%252c%2522Oid"
     "%2522%253a%2522a1b2c3d4-5e6f-4a5b-8c7d-9e0f1a2b3c4d%2522%257d&data=05%7C01%7Cx%40y.com%7C1"
     "&sdata=abc%3D&reserved=0",
     meetup()),
    ("https://statics.teams.cdn.office.net/evergreen-assets/safelinks/1/atp-safelinks.html?url="
     + MEETUP_JOIN.replace("%", "%25").replace("?", "%3F").replace("&", "%26") + "&locale=en-us",
     meetup()),
    # short links
    ("https://teams.microsoft.com/meet/2345678901234?p=AbCdEf123",
     teams(business_meeting_id="2345678901234", business_meeting_password="AbCdEf123")),
    ("https://teams.cloud.microsoft/meet/2345678901234?p=AbCdEf123",
     teams(business_meeting_id="2345678901234", business_meeting_password="AbCdEf123")),
    ("https://teams.microsoft.com/v2/?meetingjoin=true#/meet/2345678901234?p=AbCd&anon=true",
     teams(business_meeting_id="2345678901234", business_meeting_password="AbCd")),
    ("https://teams.microsoft.com/meet/2345678901234",
     teams(business_meeting_id="2345678901234")),
    ("https://teams.live.com/meet/9558125431827?p=xYz987",
     teams("microsoft_teams_live", meeting_id="9558125431827", meeting_password="xYz987")),
    ("teams.live.com/meet/9477691496180",
     teams("microsoft_teams_live", meeting_id="9477691496180")),
    ("https://teams.microsoft.com/dl/launcher/launcher.html?url=%2F_%23%2Fmeet%2F2345678901234%3Fp%3DAbCd"
     "%26anon%3Dtrue&type=meet&deeplinkId=x&directDl=true&msLaunch=true",
     teams(business_meeting_id="2345678901234", business_meeting_password="AbCd")),
    # light-meetings: the JSON "coordinates" are base64 in the query
    (f"https://teams.microsoft.com/light-meetings/launch?agent=web&version=25010100&coords={LIGHT_THREAD}"
     "&deeplinkId=0c8a&correlationId=1", meetup()),
    (f"https://teams.live.com/light-meetings/launch?coords={LIGHT_CODE}",
     teams("microsoft_teams_live", meeting_id="9326458712345", meeting_password="abc")),
    # --- Webex -----------------------------------------------------------------------------
    (f"https://acme.webex.com/acme/j.php?MTID={MTID}", webex("acme", MTID, "acme/j.php")),
    (f"https://ACME.webex.com/acme/j.php?mtid={MTID}&siteurl=acme", webex("acme", MTID, "acme/j.php")),
    (f"https://meetingsamer34.webex.com/meet/j.php?MTID={MTID}",
     webex("meetingsamer34", MTID, "meet/j.php")),
    (f"https://acme.webex.com/j.php?MTID={MTID}", webex("acme", MTID, "j.php")),
    (f"https://acme.webex.com/acme/k2/j.php?MTID={MTID}", webex("acme", MTID, "acme/k2/j.php")),
    (f"https://acme.my.webex.com/acme.my/j.php?MTID={MTID}", webex("acme.my", MTID, "acme.my/j.php")),
    (f"https://veteransaffairs.webex.com/wbxmjs/joinservice/sites/veteransaffairs/meeting/download/"
     f"0602006047574141a9f001afcc3a873c?siteurl=veteransaffairs&amp;MTID={MTID}",
     webex("veteransaffairs", MTID, "wbxmjs/joinservice/sites/veteransaffairs/meeting/download/"
           "0602006047574141a9f001afcc3a873c")),
    (f"https://acme.webex.com/webappng/sites/acme/meeting/download/6a5e9486079f2d17e0531aa2fd0a881b?MTID={MTID}",
     webex("acme", MTID, "webappng/sites/acme/meeting/download/6a5e9486079f2d17e0531aa2fd0a881b")),
    ("https://acme.webex.com/meet/jsmith", webex_room("acme", "jsmith")),
    ("https://acme.webex.com/meet/john.smith/", webex_room("acme", "john.smith")),
    ("https://acme.my.webex.com/meet/jsmith", webex_room("acme.my", "jsmith")),
    ("https://acme.webex.com/join/jsmith", webex_room("acme", "jsmith")),
    ("acme.webex.com/meet/jsmith", webex_room("acme", "jsmith")),
    # --- GoTo ------------------------------------------------------------------------------
    ("https://global.gotomeeting.com/join/123456789", goto("123456789")),
    ("https://www.gotomeeting.com/join/123-456-789", goto("123456789")),
    ("gotomeeting.com/join/123456789", goto("123456789")),
    ("https://app.gotomeeting.com/?meetingId=123456789", goto("123456789")),
    ("https://app.gotomeeting.com/index.html?meetingid=123456789", goto("123456789")),
    ("https://meet.goto.com/123456789", goto("123456789")),
    ("https://meet.goto.com/JohnSmith", goto("JohnSmith")),
    ("https://app.goto.com/meeting/957100141", goto("957100141")),
    ("https://goto.com/meeting/957100141", goto("957100141")),
    ("https://gotomeet.me/john-smith", goto("john-smith")),
    # --- redirect wrappers around anything -----------------------------------------------
    ("https://www.google.com/url?q=https%3A%2F%2Fus02web.zoom.us%2Fj%2F85412345678%3Fpwd%3Dabc"
     "&sa=D&source=calendar&ust=1700000000000000&usg=AOvVaw0",
     zoom("85412345678", "abc")),
    ("https://www.google.com/url?q=https://meet.google.com/abc-defg-hij&amp;sa=D&amp;source=calendar",
     meet("abc-defg-hij")),
    ("https://eur03.safelinks.protection.outlook.com/?url=https%3A%2F%2Facme.webex.com%2Fmeet%2Fjsmith"
     "&data=05%7C02&reserved=0", webex_room("acme", "jsmith")),
    ("https://urldefense.com/v3/__https://zoom.us/j/1234567890?pwd=abc__;!!ABCD!efgh$",
     zoom("1234567890", "abc")),
    ("https://urldefense.proofpoint.com/v2/url?u=https-3A__zoom.us_j_1234567890-3Fpwd-3Dabc"
     "&d=DwMFaQ&c=x&r=y&m=z&s=w&e=", zoom("1234567890", "abc")),
    # SafeLinks around a Google redirect around Zoom
    ("https://nam12.safelinks.protection.outlook.com/?url=https%3A%2F%2Fwww.google.com%2Furl%3Fq%3D"
     "https%253A%252F%252Fzoom.us%252Fj%252F1234567890%26sa%3DD&data=1", zoom("1234567890")),
]


@pytest.mark.parametrize(("url", "expected"), ACCEPTED, ids=[u[:80] for u, _ in ACCEPTED])
def test_accepts_real_world_links(url: str, expected: dict[str, Any]) -> None:
    meeting = parse_meeting_url(url)
    assert meeting.to_dict() == expected
    assert meeting.platform == expected["platform"]
    assert meeting.platform in PLATFORMS
    assert isinstance(meeting, MeetingUrl)


@pytest.mark.parametrize(("url", "_expected"), ACCEPTED, ids=[u[:80] for u, _ in ACCEPTED])
def test_canonical_link_round_trips(url: str, _expected: dict[str, Any]) -> None:
    meeting = parse_meeting_url(url)
    canonical = meeting.format()
    again = parse_meeting_url(canonical)
    assert again == meeting
    assert again.format() == canonical
    assert again.key == meeting.key
    assert json.loads(json.dumps(meeting.to_dict())) == meeting.to_dict()


REJECTED: list[str] = [
    # look-alike hosts
    "https://zoom.us.evil.com/j/1234567890",
    "zoom.us.evil.com/j/1234567890",
    "https://evilzoom.us/j/1234567890",
    "https://zoomus.com/j/1234567890",
    "https://zoom.usa/j/1234567890",
    "https://zoom-us.com/j/1234567890",
    "https://xn--zom-ted.us/j/1234567890",
    "https://z\u043e\u043em.us/j/1234567890",  # Cyrillic o
    "https://\uff5a\uff4f\uff4f\uff4d.us/j/1234567890",  # full-width letters
    "https://meet.google.com.evil.com/abc-defg-hij",
    "https://evilmeet.google.com/abc-defg-hij",
    "https://google.com/abc-defg-hij",
    "https://teams.microsoft.com.evil.com/l/meetup-join/" + THREAD_ENC + "/0",
    "https://notteams.microsoft.com/meet/2345678901234",
    "https://webex.com.evil.com/meet/jsmith",
    "https://acme.webex.co/meet/jsmith",
    "https://gotomeeting.com.evil.com/join/123456789",
    # the meeting link is only a path or query of another site
    "https://evil.com/zoom.us/j/1234567890",
    "https://evil.com/?next=https://zoom.us/j/1234567890",
    "https://evil.com/url?q=https://zoom.us/j/1234567890",
    "https://safelinks.protection.outlook.com.evil.com/?url=https%3A%2F%2Fzoom.us%2Fj%2F1234567890",
    # user-info tricks
    "https://zoom.us@evil.com/j/1234567890",
    "https://evil.com@zoom.us.evil.com/j/1234567890",
    "https://user:pass@zoom.us/j/1234567890",
    "https://evil.com@zoom.us/j/1234567890",
    "zoom.us@evil.com/j/1234567890",
    "https://evil.com\\@zoom.us/j/1234567890",
    "https://zoom.us\\.evil.com/j/1234567890",
    "https://zoom.us%2F@evil.com/j/1234567890",
    "https://zoom%2Eus/j/1234567890",
    # ports, schemes
    "https://zoom.us:443/j/1234567890",
    "https://zoom.us:8443/j/1234567890",
    "zoom.us:443/j/1234567890",
    "ftp://zoom.us/j/1234567890",
    "file:///zoom.us/j/1234567890",
    "javascript:alert(1)//zoom.us/j/1234567890",
    "mailto:someone@zoom.us",
    "msteams://teams.microsoft.com/l/meetup-join/" + THREAD_ENC + "/0",
    "https:/zoom.us/j/1234567890",
    "zoommtg://evil.com/join?confno=1234567890",
    "zoommtg://zoom.us/join",
    "zoommtg://zoom.us/launch?confno=1234567890",
    # truncated or incomplete
    "",
    "   ",
    "https://",
    "https://zoom.us",
    "https://zoom.us/",
    "https://zoom.us/j/",
    "https://zoom.us/j",
    "zoom.us/j/123",
    "https://zoom.us/j/12345678",
    "https://zoom.us/j/123456789012",
    "https://zoom.us/j/12345678a",
    "https://zoom.us/j/1234567890/extra",
    "https://zoom.us//j/1234567890",
    "https://zoom.us/join",
    "https://zoom.us/my/",
    "https://zoom.us/my/1234567890",
    "meet.google.com/abc-defg",
    "https://meet.google.com/",
    "https://meet.google.com/abc-defg-hi",
    "https://meet.google.com/abc-defg-hijk",
    "https://meet.google.com/abc-defghij",
    "https://meet.google.com/ab1-defg-hij",
    "https://meet.google.com/new",
    "https://meet.google.com/landing",
    "https://meet.google.com/lookup/",
    "https://meet.google.com/\u212abc-defg-hij",  # Kelvin sign folds to k under re.IGNORECASE
    "https://teams.microsoft.com/l/meetup-join/",
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_",
    "https://teams.microsoft.com/l/meetup-join/not-a-thread/0",
    "https://teams.microsoft.com/l/meetup-join/" + THREAD_ENC + "/zero",
    "https://teams.microsoft.com/v2/?meetingjoin=true",
    "https://teams.microsoft.com/v2/",
    "https://teams.microsoft.com/meetup-join/" + THREAD_ENC + "/0",
    "https://teams.microsoft.com/_#/conversations/General?threadId=19:x",
    "https://teams.microsoft.com/_#/calendarv2",
    "https://teams.microsoft.com/",
    "https://teams.microsoft.com/meet/",
    "https://teams.microsoft.com/meet/abc?p=x",
    "https://teams.live.com/meet/",
    "https://teams.microsoft.com/dl/launcher/launcher.html?type=meetup-join",
    "https://teams.microsoft.com/light-meetings/launch?agent=web",
    "https://teams.microsoft.com/light-meetings/launch?coords=not-base64-json",
    "https://teams.microsoft.com/light-meetings/launch?coords=" + _coords({"conversationId": "x"}),
    "https://teams.microsoft.com/light-meetings/launch?coords=" + _coords({"hello": "world"}),
    "https://acme.webex.com/acme/j.php",
    "https://acme.webex.com/acme/j.php?MTID=",
    "https://acme.webex.com/meet/",
    "https://webex.com/meet/jsmith",
    "https://www.webex.com/meet/jsmith",
    "https://global.gotomeeting.com/join/",
    "https://global.gotomeeting.com/join/12345",
    "https://meet.goto.com/",
    # not join links on the platforms' own hosts
    "https://zoom.us/webinar/register/WN_abcDEF123",
    "https://zoom.us/meeting/register/tJUkcu2rqjkpGtPuc",
    "https://us02web.zoom.us/u/kdEXAMPLE",
    "https://zoom.us/download",
    "https://support.zoom.us/hc/en-us/articles/201362193",
    "https://support.zoom.us/j/1234567890",
    "https://us02web.zoom.us/skype/85412345678",
    "https://zoom.us/rec/share/abcdef",
    "https://zoom.us/launch/chat?src=direct_chat_link",
    "https://events.zoom.us/ej/abcdef",
    "https://teams.microsoft.com/meetingOptions/?organizerId=x&tenantId=y&threadId=19_meeting_x"
    "@thread.v2&messageId=0&language=en-US",
    "https://dialin.teams.microsoft.com/8551f4c1-bea3-441a-8738-69aa517a91c5?id=123456789",
    "https://aka.ms/JoinTeamsMeeting",
    "https://teams.microsoft.com/l/chat/0/0?users=someone@example.com",
    "https://acme.webex.com/webappng/sites/acme/meeting/info/abcdef0123456789",
    f"https://acme.webex.com/webappng/sites/acme/meeting/info/abcdef0123456789?MTID={MTID}",
    "https://mche.webex.com/wbxmjs/joinservice/sites/mche/meeting/download/6A5E9486079F2D17E0531AA2FD0A881B",
    f"https://acme.webex.com/acme/e.php?MTID={MTID}",
    "https://acme.webex.com/acme/ldr.php?RCID=abcdef",
    "https://help.webex.com/meet/jsmith",
    "https://meet.goto.com/install",
    "https://global.gotomeeting.com/install/123456789",
    "https://global.gotowebinar.com/join/1234567890123456789/123456789",
    "https://tel.meet/abc-defg-hij?pin=1234567890",
    # unsupported platforms
    "https://whereby.com/room",
    "https://meet.jit.si/SomeRoom",
    "https://example.com/",
    "not a link at all",
    "Meeting ID: 123 4567 8901",
    # control characters, inner whitespace, invisible characters
    "https://zoom.us/j/1234567890\x00",
    "https://zoom.us/j/123\x00456789",
    "https://zoom.us/j/12345\t67890",
    "https://zoom.us/j/123 456 7890",
    "https://zoom\u200b.us/j/1234567890",
    "https://zoom.us/j/1234567890\u202e",
    "https://zoom.us/j/1234567890?pwd=a\x7fb",
    "https://zoom.us/j/1234567890?pwd=a%00b",
    "https://zoom.us/j/1234567890\ud800",
    # over-long
    "https://zoom.us/j/1234567890?pwd=" + "a" * MAX_URL_LENGTH,
    " " * (MAX_URL_LENGTH + 1),
]


@pytest.mark.parametrize("url", REJECTED, ids=[repr(u[:80]) for u in REJECTED])
def test_refuses_look_alikes_tricks_and_non_join_links(url: str) -> None:
    with pytest.raises(InvalidMeetingUrl) as caught:
        parse_meeting_url(url)
    assert caught.value.reason
    assert len(caught.value.url) <= 201


@pytest.mark.parametrize("value", [None, 123, b"https://zoom.us/j/1234567890", ["x"]])
def test_non_strings_are_invalid_meeting_urls_too(value: Any) -> None:
    with pytest.raises(InvalidMeetingUrl):
        parse_meeting_url(value)


def test_invalid_meeting_url_carries_truncated_input_and_reason() -> None:
    url = "https://evil.example/" + "x" * 1000
    with pytest.raises(InvalidMeetingUrl) as caught:
        parse_meeting_url(url)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.url == url[:200] + "…"
    assert error.reason == "unsupported host 'evil.example'"
    assert error.reason in str(error) and error.url[:40] in str(error)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.url, copy.reason) == (error.url, error.reason)


def test_platforms_are_the_recall_names_plus_ours() -> None:
    assert PLATFORMS == (
        "zoom", "google_meet", "microsoft_teams", "microsoft_teams_live", "webex",
        "goto_meeting", "sandbox", "janus",
    )


# --- Summon's own platforms --------------------------------------------------------------


def test_sandbox_keeps_raw_decoded_params_sorted() -> None:
    url = (
        "sandbox://standup-1?participants=alice@0-60,bob@5&say=alice@3:Hello%20team;bob@5:Hi"
        "&admit_after=2.5&chat=alice@4:hi&recording_permission=granted"
    )
    meeting = parse_meeting_url(url)
    assert meeting.to_dict() == {
        "meeting_id": "standup-1",
        "params": {
            "admit_after": "2.5",
            "chat": "alice@4:hi",
            "participants": "alice@0-60,bob@5",
            "recording_permission": "granted",
            "say": "alice@3:Hello team;bob@5:Hi",
        },
        "platform": "sandbox",
    }
    assert list(meeting.to_dict()["params"]) == sorted(meeting.to_dict()["params"])
    assert meeting.format() == (
        "sandbox://standup-1?admit_after=2.5&chat=alice@4:hi&participants=alice@0-60,bob@5"
        "&recording_permission=granted&say=alice@3:Hello%20team;bob@5:Hi"
    )
    assert parse_meeting_url(meeting.format()) == meeting
    assert meeting.key == "sandbox:standup-1"


@pytest.mark.parametrize(
    ("url", "name", "params"),
    [
        ("sandbox://demo", "demo", {}),
        ("SANDBOX://demo/", "demo", {}),
        ("sandbox://demo?", "demo", {}),
        ("sandbox://a.b_c-D9", "a.b_c-D9", {}),
        ("sandbox://" + "x" * 100, "x" * 100, {}),
        ("sandbox://demo?admit_after=never", "demo", {"admit_after": "never"}),
        ("sandbox://demo?fail=meeting_not_found", "demo", {"fail": "meeting_not_found"}),
        ("sandbox://demo?say=bob@1:ok!", "demo", {"say": "bob@1:ok!"}),
        ("sandbox://demo?say=bob@1:why?", "demo", {"say": "bob@1:why?"}),
        ("sandbox://demo?say=a@1:1+1%3D2%26more", "demo", {"say": "a@1:1+1=2&more"}),
        ("sandbox://demo?say=a@1:gr%C3%BC%C3%9Fe", "demo", {"say": "a@1:grüße"}),
        ("sandbox://demo?flag", "demo", {"flag": ""}),
        ("<sandbox://demo?end_after=30>", "demo", {"end_after": "30"}),
    ],
)
def test_sandbox_variants(url: str, name: str, params: dict[str, str]) -> None:
    meeting = parse_meeting_url(url)
    assert meeting.to_dict() == {"meeting_id": name, "params": params, "platform": "sandbox"}
    assert parse_meeting_url(meeting.format()) == meeting


@pytest.mark.parametrize(
    "url",
    [
        "sandbox://",
        "sandbox:///demo",
        "sandbox://" + "x" * 101,
        "sandbox://de mo",
        "sandbox://de:mo",
        "sandbox://demo/extra",
        "sandbox://demo#frag",
        "sandbox://us@demo",
        "sandbox://d%20emo",
        "sandbox://demo?=1",
        "sandbox://demo?a=1&a=2",
        "sandbox://demo?a=%FF",
        "sandbox:demo",
    ],
)
def test_sandbox_rejects(url: str) -> None:
    with pytest.raises(InvalidMeetingUrl):
        parse_meeting_url(url)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("janus://127.0.0.1:8088/1234?pin=secret",
         {"host": "127.0.0.1", "port": 8088, "room": "1234", "pin": "secret", "secure": False}),
        ("janus://janus.example.org/1234",
         {"host": "janus.example.org", "port": 8088, "room": "1234", "pin": None, "secure": False}),
        ("januss://Janus.Example.org/1234",
         {"host": "janus.example.org", "port": 8089, "room": "1234", "pin": None, "secure": True}),
        ("januss://janus.example.org:443/team-room_2/",
         {"host": "janus.example.org", "port": 443, "room": "team-room_2", "pin": None, "secure": True}),
        ("janus://localhost:18088/1?pin=",
         {"host": "localhost", "port": 18088, "room": "1", "pin": None, "secure": False}),
        ("janus://[::1]:8088/1234",
         {"host": "::1", "port": 8088, "room": "1234", "pin": None, "secure": False}),
        ("janus://[2001:DB8:0:0::1]/1234?pin=a%20b",
         {"host": "2001:db8::1", "port": 8088, "room": "1234", "pin": "a b", "secure": False}),
        ("JANUS://10.0.0.5:8088/1234",
         {"host": "10.0.0.5", "port": 8088, "room": "1234", "pin": None, "secure": False}),
    ],
)
def test_janus_links(url: str, expected: dict[str, Any]) -> None:
    meeting = parse_meeting_url(url)
    assert meeting.to_dict() == {**expected, "platform": "janus"}
    assert parse_meeting_url(meeting.format()) == meeting


def test_janus_format_and_key() -> None:
    meeting = parse_meeting_url("januss://[::1]/42?pin=x")
    assert meeting.format() == "januss://[::1]:8089/42?pin=x"
    assert meeting.key == "janus:[::1]:8089/42"
    assert parse_meeting_url("janus://h.example/7").key == parse_meeting_url("janus://H.EXAMPLE:8088/7/").key


@pytest.mark.parametrize(
    "url",
    [
        "janus://",
        "janus://host",
        "janus://host/",
        "janus://host:/1234",
        "janus://host:0/1234",
        "janus://host:65536/1234",
        "janus://host:123456/1234",
        "janus://user@host/1234",
        "janus://user:pw@host:8088/1234",
        "janus://[::1/1234",
        "janus://[::1%25eth0]/1234",
        "janus://[zz::1]/1234",
        "janus://999.1.1.1/1234",
        "janus://01.2.3.4/1234",
        "janus://-bad-.example/1234",
        "janus://bad_host.example/1234",
        "janus://host/room with space",
        "janus://host/room.dot",
        "janus://host/1234/extra",
        "janus://host/1234?pin=a&pin=b",
        "janus://host/1234?display=bot",
        "janus://host/1234#frag",
        "janus://host/" + "1" * 129,
    ],
)
def test_janus_rejects(url: str) -> None:
    with pytest.raises(InvalidMeetingUrl):
        parse_meeting_url(url)


# --- keys and canonical links ----------------------------------------------------------------


SAME_MEETING: list[tuple[str, list[str]]] = [
    ("zoom:1234567890", [
        "https://zoom.us/j/1234567890",
        "https://us02web.zoom.us/j/1234567890?pwd=abc",
        "zoom.us/j/123-456-7890",
        "https://acme.zoom.us/wc/join/1234567890",
        "https://app.zoom.us/wc/1234567890/join",
        "zoommtg://zoom.us/join?action=join&confno=1234567890&pwd=zzz",
        "https://zoom.us/s/1234567890",
        "https://zoom.com/j/1234567890",
        "<https://ZOOM.US/J/1234567890>.",
    ]),
    ("zoomgov:1234567890", ["https://zoomgov.com/j/1234567890", "https://x.zoomgov.com/j/1234567890"]),
    ("zoom:john.smith", ["https://zoom.us/my/john.smith", "https://acme.zoom.us/my/John.Smith"]),
    ("google_meet:abc-defg-hij", [
        "https://meet.google.com/abc-defg-hij",
        "meet.google.com/ABC-DEFG-HIJ?authuser=1",
        "https://meet.google.com/abcdefghij",
        "https://g.co/meet/abc-defg-hij",
    ]),
    (f"microsoft_teams:{THREAD}/0", [
        MEETUP_JOIN,
        f"https://teams.microsoft.com/v2/?meetingjoin=true#/l/meetup-join/{THREAD}/0?anon=true",
        MEETUP_JOIN.replace("teams.microsoft.com", "teams.cloud.microsoft"),
        f"https://teams.microsoft.com/l/meetup-join/{THREAD_ENC.replace('%', '%25')}/0",
    ]),
    ("microsoft_teams:meet/2345678901234", [
        "https://teams.microsoft.com/meet/2345678901234?p=a",
        "https://teams.cloud.microsoft/meet/2345678901234",
    ]),
    (f"webex:acme:{MTID}", [
        f"https://acme.webex.com/acme/j.php?MTID={MTID}",
        f"https://acme.webex.com/wbxmjs/joinservice/sites/acme/meeting/download/abc?MTID={MTID}",
        f"https://acme.webex.com/meet/j.php?MTID={MTID.upper()}",
    ]),
    ("webex:acme/meet/jsmith", ["https://acme.webex.com/meet/jsmith", "https://acme.webex.com/join/JSmith"]),
    ("goto_meeting:123456789", [
        "https://global.gotomeeting.com/join/123456789",
        "https://meet.goto.com/123-456-789",
        "https://app.goto.com/meeting/123456789",
        "https://app.gotomeeting.com/?meetingId=123456789",
    ]),
    ("goto_meeting:john", ["https://gotomeet.me/john", "https://meet.goto.com/John"]),
    ("sandbox:demo", ["sandbox://demo", "sandbox://demo?admit_after=5"]),
]


@pytest.mark.parametrize(("key", "urls"), SAME_MEETING, ids=[k for k, _ in SAME_MEETING])
def test_different_spellings_of_one_meeting_share_the_key(key: str, urls: list[str]) -> None:
    assert {parse_meeting_url(url).key for url in urls} == {key}


def test_different_meetings_have_different_keys() -> None:
    urls = [
        "https://zoom.us/j/1234567890",
        "https://zoom.us/j/1234567891",
        "https://zoomgov.com/j/1234567890",
        "https://meet.google.com/abc-defg-hij",
        "https://meet.google.com/lookup/abcdefghij",
        MEETUP_JOIN,
        MEETUP_JOIN.replace("/0?", "/1603212345678?"),
        "https://teams.microsoft.com/meet/2345678901234",
        "https://teams.live.com/meet/2345678901234",
        f"https://acme.webex.com/acme/j.php?MTID={MTID}",
        f"https://other.webex.com/other/j.php?MTID={MTID}",
        "https://acme.webex.com/meet/jsmith",
        "https://acme.my.webex.com/meet/jsmith",
        "https://meet.goto.com/123456789",
        "sandbox://demo",
        "janus://localhost/1",
        "januss://localhost/1",
    ]
    keys = [parse_meeting_url(url).key for url in urls]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("us02web.zoom.us/j/123-4567-8901?uname=x&pwd=p&tk=t", "https://zoom.us/j/12345678901?pwd=p&tk=t"),
        ("https://acme.zoom.us/my/jane.doe", "https://zoom.us/my/jane.doe"),
        ("https://agency.zoomgov.com/wc/join/1612345678", "https://zoomgov.com/j/1612345678"),
        ("https://zoom.us/j/1234567890?pwd=a%26b%3D", "https://zoom.us/j/1234567890?pwd=a%26b%3D"),
        ("meet.google.com/ABCDEFGHIJ?authuser=2", "https://meet.google.com/abc-defg-hij"),
        ("https://teams.live.com/meet/9558125431827?p=x", "https://teams.live.com/meet/9558125431827?p=x"),
        ("https://gov.teams.microsoft.us/meet/2345678901234?p=x",
         "https://gov.teams.microsoft.us/meet/2345678901234?p=x"),
        (MEETUP_JOIN + "&anon=true",
         f"https://teams.microsoft.com/l/meetup-join/19%3Ameeting_NmFjMzE3MDEtMGVhNi00NGU3LWJmYjItN2E1ZTQ1ZmM1YzFk"
         f"%40thread.v2/0?context=%7B%22Tid%22%3A%22{TENANT}%22%2C%22Oid%22%3A%22{ORGANIZER}%22%7D"),
        ("https://acme.webex.com/join/jsmith", "https://acme.webex.com/meet/jsmith"),
        (f"https://acme.webex.com/acme/j.php?siteurl=acme&MTID={MTID}",
         f"https://acme.webex.com/acme/j.php?MTID={MTID}"),
        ("https://global.gotomeeting.com/join/123-456-789", "https://meet.goto.com/123456789"),
        ("gotomeet.me/john", "https://meet.goto.com/john"),
    ],
)
def test_canonical_links(url: str, canonical: str) -> None:
    assert parse_meeting_url(url).format() == canonical


def test_results_are_immutable_hashable_values() -> None:
    first = parse_meeting_url("https://zoom.us/j/1234567890?pwd=a")
    second = parse_meeting_url("zoom.us/j/1234567890?pwd=a")
    assert first == second and hash(first) == hash(second)
    assert isinstance(first, ZoomUrl)
    with pytest.raises(AttributeError):
        first.meeting_id = "1"  # type: ignore[misc]
    assert len({first, second, parse_meeting_url("https://zoom.us/j/1234567890")}) == 2


def test_recall_teams_object_always_has_all_keys() -> None:
    for url in (MEETUP_JOIN, "https://teams.live.com/meet/9558125431827",
                "https://teams.microsoft.com/meet/2345678901234?p=x"):
        data = parse_meeting_url(url).to_dict()
        assert set(data) == {
            "meeting_id", "meeting_password", "organizer_id", "tenant_id", "message_id",
            "thread_id", "business_meeting_id", "business_meeting_password", "platform",
        }


def test_teams_platform_is_checked() -> None:
    with pytest.raises(ValueError):
        TeamsUrl(platform="zoom", thread_id=THREAD)


def test_zoom_tk_only_when_present() -> None:
    assert "tk" not in parse_meeting_url("https://zoom.us/w/12345678901").to_dict()
    assert parse_meeting_url("https://zoom.us/w/12345678901?tk=abc").to_dict()["tk"] == "abc"


# --- robustness ------------------------------------------------------------------------------

ADVERSARIAL = [
    "https://" + "a." * 2040,
    "https://zoom.us/" + "/" * 4000,
    "https://zoom.us/j/" + "1" * 4000,
    "https://zoom.us/j/1234567890?" + "&" * 4000,
    "https://zoom.us/j/1234567890?pwd=" + "%" * 4000,
    "https://zoom.us/j/1234567890?pwd=" + "%2" * 1300,
    "https://teams.microsoft.com/l/meetup-join/19:" + "a" * 4000,
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0?context=" + "[" * 4000,
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0?context=" + "%5B" * 1300,
    "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0?context=" + "9" * 4000,
    "sandbox://demo?" + "a=1&" * 1000,
    "janus://" + "1." * 2000 + "/1",
    "(" * 4096,
    ")" * 4096,
    "'" * 4096,
    "https://www.google.com/url?q=" + "https%253A%252F%252F" * 200,
    "&amp;" * 800,
    "&#" + "9" * 4000,
    "https://nam12.safelinks.protection.outlook.com/?url=" * 70,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=[f"adversarial-{i}" for i in range(len(ADVERSARIAL))])
def test_adversarial_4kb_inputs_finish_fast(text: str) -> None:
    assert len(text) <= MAX_URL_LENGTH
    # CPU time (not wall time), best of three: a shared, loaded machine must not fail this.
    # Generous bound: catastrophic backtracking would take seconds to forever, a pass takes <1 ms.
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        try:
            parse_meeting_url(text)  # some are valid links (a Teams context that fails is ignored)
        except InvalidMeetingUrl:
            pass
        best = min(best, time.process_time() - started)
    assert best < 0.25


def test_wrappers_nest_only_so_deep() -> None:
    url = "https://zoom.us/j/1234567890"
    for _ in range(8):
        url = "https://www.google.com/url?q=" + url.replace("%", "%25").replace("&", "%26").replace("?", "%3F")
    with pytest.raises(InvalidMeetingUrl, match="redirect wrappers"):
        parse_meeting_url(url)


def test_typical_parse_is_fast() -> None:
    # A sanity check, not a benchmark: ~10 µs for Zoom and ~30 µs for a long Teams link on a
    # slow CI box; the bound only catches an accidental order-of-magnitude regression.
    links = ["https://us02web.zoom.us/j/85412345678?pwd=dGhpcyBpcyBhIHRlc3Q.1", MEETUP_JOIN,
             "https://meet.google.com/abc-defg-hij"]
    rounds = 300
    started = time.process_time()  # CPU time: a loaded machine must not fail this
    for _ in range(rounds):
        for link in links:
            parse_meeting_url(link)
    per_parse = (time.process_time() - started) / (rounds * len(links))
    assert per_parse < 500e-6
