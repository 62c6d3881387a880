"""A real CalDAV server for tests: Radicale (PyPI ``radicale``) started on a free loopback port
with its own configuration, storage and one user (HTTP Basic, plain htpasswd). Calendars and
events are created, changed and deleted with the ``caldav`` client library, as a user's
calendar app would."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import caldav
import httpx
import pytest
from caldav.lib.error import NotFoundError

from tests.e2e.conftest import free_port

USER, PASSWORD = "alice", "correct horse"


@dataclass
class Radicale:
    process: subprocess.Popen[bytes]
    url: str
    user: str = USER
    password: str = PASSWORD

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=(self.user, self.password), timeout=10)

    def dav(self) -> caldav.DAVClient:
        return caldav.DAVClient(self.url, username=self.user, password=self.password, timeout=10)

    def make_calendar(self, name: str) -> str:
        """Create a calendar collection (events only) of the user; its URL."""
        with self.dav() as dav:
            calendar = dav.principal().make_calendar(
                name=name, cal_id=name, supported_calendar_component_set=["VEVENT"]
            )
            return str(calendar.url)

    def put(self, calendar_url: str, uid: str, ics: str) -> None:
        """Create the event ``uid``, or replace it (moved, re-linked, cancelled)."""
        with self.dav() as dav:
            calendar = dav.calendar(url=calendar_url)
            try:
                event = calendar.event_by_uid(uid)
            except NotFoundError:
                calendar.save_event(ics)
                return
            event.data = ics
            event.save()

    def delete(self, calendar_url: str, uid: str) -> None:
        with self.dav() as dav:
            dav.calendar(url=calendar_url).event_by_uid(uid).delete()


def ics_event(
    uid: str,
    start: datetime,
    minutes: int = 30,
    *,
    url: str | None = None,
    sequence: int = 0,
    status: str | None = None,
    rrule: str | None = None,
    all_day: bool = False,
    summary: str | None = None,
    organizer: str = "alice@acme.test",
    attendees: tuple[str, ...] = (),
) -> str:
    """One VEVENT in a VCALENDAR, in UTC."""

    def stamp(when: datetime) -> str:
        return when.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")

    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//summon tests//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{stamp(datetime.now(UTC))}",
        f"SEQUENCE:{sequence}",
        f"SUMMARY:{summary or uid}",
        f"ORGANIZER:mailto:{organizer}",
    ]
    if all_day:
        lines += [f"DTSTART;VALUE=DATE:{start:%Y%m%d}"]
    else:
        end = start.timestamp() + minutes * 60
        lines += [f"DTSTART:{stamp(start)}", f"DTEND:{stamp(datetime.fromtimestamp(end, UTC))}"]
    lines += [f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{a}" for a in attendees]
    if url:
        lines += [f"LOCATION:{url}", f"DESCRIPTION:Join the meeting: {url}"]
    if status:
        lines.append(f"STATUS:{status}")
    if rrule:
        lines.append(f"RRULE:{rrule}")
    lines += ["END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines)


def start_radicale(root: Path) -> Radicale:
    root.mkdir(parents=True, exist_ok=True)
    users = root / "users"
    users.write_text(f"{USER}:{PASSWORD}\n")
    port = free_port()
    config = root / "config"
    config.write_text(
        "[server]\n"
        f"hosts = 127.0.0.1:{port}\n"
        "[auth]\n"
        "type = htpasswd\n"
        f"htpasswd_filename = {users}\n"
        "htpasswd_encryption = plain\n"
        "[rights]\n"
        "type = owner_only\n"
        "[storage]\n"
        f"filesystem_folder = {root / 'collections'}\n"
        "[logging]\n"
        "level = warning\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "radicale", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    server = Radicale(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 30
    while True:  # ready when it answers at all
        if process.poll() is not None:
            raise AssertionError(
                "radicale exited: " + (process.stderr.read() if process.stderr else b"").decode()
            )
        try:
            if httpx.get(server.url + "/", timeout=1).status_code < 500:
                return server
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "radicale did not start"
        time.sleep(0.05)


def stop_radicale(server: Radicale) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait(5)
    if server.process.stderr is not None:
        server.process.stderr.close()


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[Radicale]:
    server = start_radicale(tmp_path / "radicale")
    try:
        yield server
    finally:
        stop_radicale(server)
