"""Bots joining sandbox meetings for real: runtime processes, the scheduler, the fleet agent."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import KEY_LINE, Service, start_service
from tests.e2e.fleet_helpers import FAST, Api, codes, iso_in, kill, lateness_ms, runtime_pids

pytestmark = pytest.mark.slow
TERMINAL = {"done", "fatal"}


def start(tmp_path: Path, **env: str) -> tuple[Service, Api]:
    svc = start_service(tmp_path / "data", {**FAST, **env})
    key = svc.wait_for_line(KEY_LINE).group(1)
    svc.wait_ready()
    return svc, Api(svc.url, key)


@pytest.fixture
def fleet(tmp_path: Path):  # type: ignore[no-untyped-def]
    svc, api = start(tmp_path)
    yield svc, api
    svc.stop()


def test_scheduled_bot_goes_through_every_state_on_time(fleet) -> None:  # type: ignore[no-untyped-def]
    _, api = fleet
    bot = api.create(meeting_url="sandbox://standup?participants=alice@0-30,bob@0.5&admit_after=0.3&end_after=1.5",
                     join_at=iso_in(3), bot_name="Punctual")
    assert bot["state"] == "scheduled"
    done = api.wait_state(bot["id"], TERMINAL, timeout=20)
    assert codes(done) == [
        "scheduled", "staged", "joining_call", "in_waiting_room", "in_call_not_recording",
        "in_call_recording", "call_ended", "recording_done", "done",
    ], done["status_changes"]
    assert done["status_changes"][6]["sub_code"] == "call_ended_by_host"
    assert 0 <= lateness_ms(done) < 100


def test_adhoc_bot_joins_at_once(fleet) -> None:  # type: ignore[no-untyped-def]
    _, api = fleet
    bot = api.create(meeting_url="sandbox://now?participants=alice@0&end_after=0.5")
    assert bot["state"] == "ready"
    done = api.wait_state(bot["id"], TERMINAL)
    assert codes(done)[:2] == ["ready", "joining_call"] and done["state"] == "done"
    created = bot["created_at"]
    joining = next(c for c in done["status_changes"] if c["code"] == "joining_call")["created_at"]
    from tests.e2e.fleet_helpers import parse_ts

    assert (parse_ts(joining) - parse_ts(created)).total_seconds() < 1.0


def test_a_staging_that_ends_after_join_at_is_recorded_before_the_join(fleet) -> None:  # type: ignore[no-untyped-def]
    """A driver still getting ready at ``join_at`` (a media stack to load) joins as soon as it is
    ready and says how late it is; its status changes stay in order: ``staged`` is stamped when
    staging ended, on the clock that stamps ``joining_call``, not when the agent wrote it."""
    from tests.e2e.fleet_helpers import parse_ts

    _, api = fleet
    bot = api.create(meeting_url="sandbox://slow?participants=alice@0&end_after=0.5&prepare_s=2.5",
                     join_at=iso_in(3))
    done = api.wait_state(bot["id"], TERMINAL, timeout=30)
    assert codes(done)[:3] == ["scheduled", "staged", "joining_call"] and done["state"] == "done"
    stamps = [parse_ts(c["created_at"]) for c in done["status_changes"]]
    assert stamps == sorted(stamps), done["status_changes"]
    joining = done["status_changes"][2]
    assert "after join_at" in (joining["message"] or ""), joining


def test_join_failure_and_waiting_room_timeout(fleet) -> None:  # type: ignore[no-untyped-def]
    _, api = fleet
    failing = api.create(meeting_url="sandbox://gone?fail=meeting_not_found")
    stuck = api.create(meeting_url="sandbox://locked?admit_after=never", automatic_leave={"waiting_room_timeout": 30})
    failed = api.wait_state(failing["id"], TERMINAL)
    assert failed["state"] == "fatal" and failed["status_changes"][-1]["sub_code"] == "meeting_not_found"
    api.wait_state(stuck["id"], {"in_waiting_room"})


def test_leave_call_and_chat_for_a_bot_in_a_call(fleet) -> None:  # type: ignore[no-untyped-def]
    _, api = fleet
    bot = api.create(meeting_url="sandbox://long?participants=alice@0")
    api.wait_state(bot["id"], {"in_call_recording"})
    r = api.client.post(f"/api/v1/bot/{bot['id']}/send_chat_message/", json={"message": "hello from the bot"})
    assert r.status_code == 200, r.text
    r = api.client.post(f"/api/v1/bot/{bot['id']}/pause_recording/")
    assert r.status_code == 200
    api.wait_state(bot["id"], {"in_call_not_recording"})
    r = api.client.post(f"/api/v1/bot/{bot['id']}/leave_call/")
    assert r.status_code == 200
    done = api.wait_state(bot["id"], TERMINAL)
    ended = next(c for c in done["status_changes"] if c["code"] == "call_ended")
    assert ended["sub_code"] == "bot_received_leave_call" and done["state"] == "done"


def test_crashed_runtime_fails_its_bots_only(tmp_path: Path) -> None:
    svc, api = start(tmp_path, SUMMON_SLOTS_PER_RUNTIME="1")
    try:
        a = api.create(meeting_url="sandbox://a?participants=alice@0")
        b = api.create(meeting_url="sandbox://b?participants=bob@0")
        api.wait_state(a["id"], {"in_call_recording"})
        api.wait_state(b["id"], {"in_call_recording"})
        host_a = int(svc.wait_for_line(re.compile(rf"bot {a['id']} hosted by runtime (\d+)")).group(1))
        host_b = int(svc.wait_for_line(re.compile(rf"bot {b['id']} hosted by runtime (\d+)")).group(1))
        assert host_a != host_b and host_a in runtime_pids(svc.process.pid)
        kill(host_a)
        failed = api.wait_state(a["id"], TERMINAL, timeout=30)
        assert failed["state"] == "fatal" and failed["status_changes"][-1]["sub_code"] == "bot_process_crashed"
        assert api.get(b["id"])["state"] == "in_call_recording"
        # The pool is refilled, and new bots still run.
        c = api.create_when_pool_allows(meeting_url="sandbox://c?participants=carol@0&end_after=0.5")
        assert api.wait_state(c["id"], TERMINAL)["state"] == "done"
    finally:
        svc.stop()


def test_hung_runtime_is_detected_by_heartbeat(tmp_path: Path) -> None:
    svc, api = start(tmp_path, SUMMON_SLOTS_PER_RUNTIME="1")
    try:
        bot = api.create(meeting_url="sandbox://hang?participants=alice@0")
        api.wait_state(bot["id"], {"in_call_recording"})
        host = int(svc.wait_for_line(re.compile(rf"bot {bot['id']} hosted by runtime (\d+)")).group(1))
        kill(host, signal.SIGSTOP)  # alive but silent: only its heartbeats can tell
        try:
            failed = api.wait_state(bot["id"], TERMINAL, timeout=30)
        finally:
            kill(host, signal.SIGCONT)
        assert failed["state"] == "fatal" and failed["status_changes"][-1]["sub_code"] == "heartbeat_timeout"
    finally:
        svc.stop()


def test_bots_watch_shows_states_and_lateness(fleet) -> None:  # type: ignore[no-untyped-def]
    from tests.e2e.conftest import summon_cli

    svc, api = fleet
    bot = api.create(meeting_url="sandbox://watched?participants=alice@0&end_after=0.3", join_at=iso_in(2.5),
                     bot_name="Watched bot")
    api.wait_state(bot["id"], {"done"}, timeout=20)
    env = {**svc.env, "SUMMON_URL": svc.url, "SUMMON_API_KEY": api.client.headers["Authorization"].split()[1],
           "COLUMNS": "160"}
    out = summon_cli(env, "bots", "watch", "--once")
    assert out.returncode == 0, out.stderr
    assert bot["id"][:8] in out.stdout and "Watched bot" in out.stdout and "done" in out.stdout
    assert " ms" in out.stdout  # its lateness


def test_graceful_stop_keeps_staged_bots_and_ends_calls_cleanly(tmp_path: Path) -> None:
    slow = {"SUMMON_STAGE_LEAD_S": "8", "SUMMON_SCHEDULED_THRESHOLD_S": "9"}
    svc, api = start(tmp_path, **slow)
    try:
        in_call = api.create(meeting_url="sandbox://busy?participants=alice@0")
        staged = api.create(meeting_url="sandbox://later?participants=alice@0&end_after=0.5", join_at=iso_in(10))
        api.wait_state(in_call["id"], {"in_call_recording"})
        api.wait_state(staged["id"], {"staged"})
    finally:
        svc.stop()  # SIGTERM: a graceful stop
    again = start_service(tmp_path / "data", {**FAST, **slow})
    try:
        again.wait_ready()
        api = Api(again.url, api.client.headers["Authorization"].split()[1])
        ended = api.get(in_call["id"])
        assert ended["state"] == "done", ended["status_changes"]
        assert next(c for c in ended["status_changes"] if c["code"] == "call_ended")["sub_code"] == "bot_received_leave_call"
        # The staged bot was not cancelled by the stop: it is staged again and joins on time.
        done = api.wait_state(staged["id"], {"done", "fatal"}, timeout=60)
        assert done["state"] == "done" and codes(done).count("joining_call") == 1
        assert 0 <= lateness_ms(done) < 100
    finally:
        again.stop()


def test_parse_endpoint_says_which_platforms_the_fleet_can_join(fleet) -> None:  # type: ignore[no-untyped-def]
    _, api = fleet
    sandbox = api.client.post("/api/v1/meeting_url/parse/", json={"url": "sandbox://x?end_after=1"}).json()
    zoom = api.client.post("/api/v1/meeting_url/parse/", json={"url": "https://zoom.us/j/123456789"}).json()
    assert sandbox["supported"] is True and zoom["supported"] is False
    # A bot for a platform no runtime can serve is accepted, and fails when it is staged.
    bot = api.create(meeting_url="https://zoom.us/j/123456789")
    failed = api.wait_state(bot["id"], {"fatal", "done"})
    assert failed["state"] == "fatal" and failed["status_changes"][-1]["sub_code"] == "platform_driver_unavailable"


def test_slots_per_runtime_per_platform(tmp_path: Path) -> None:
    svc, api = start(tmp_path, SUMMON_SLOTS_PER_RUNTIME="1", SUMMON_RUNTIME_SLOTS='{"sandbox": 3}')
    try:
        bots = [api.create_when_pool_allows(meeting_url=f"sandbox://shared{i}?participants=alice@0") for i in range(4)]
        for bot in bots:
            api.wait_state(bot["id"], {"in_call_recording"})
        hosts = [int(svc.wait_for_line(re.compile(rf"bot {b['id']} hosted by runtime (\d+)")).group(1)) for b in bots]
        # Three sandbox bots share a runtime; the fourth needs another one.
        assert sorted(hosts.count(h) for h in set(hosts)) == [1, 3], hosts
    finally:
        svc.stop()


@pytest.mark.parametrize(
    ("meeting", "automatic_leave", "sub_code"),
    [
        # Alice leaves after 1 s; the default everyone_left_timeout (2 s) ends the call.
        ("sandbox://left?participants=alice@0-1", None, "timeout_exceeded_everyone_left"),
        # Recording may last 2 s in all.
        ("sandbox://capped?participants=alice@0", {"in_call_recording_timeout": 2}, "timeout_exceeded_in_call_recording"),
        # The host never lets the recording happen.
        ("sandbox://nope?participants=alice@0&recording_permission=denied", {"recording_permission_denied_timeout": 1},
         "timeout_exceeded_recording_permission_denied"),
    ],
)
def test_automatic_leave_end_to_end(fleet, meeting: str, automatic_leave: dict | None, sub_code: str) -> None:  # type: ignore[no-untyped-def, type-arg]
    _, api = fleet
    body: dict = {"meeting_url": meeting}  # type: ignore[type-arg]
    if automatic_leave:
        body["automatic_leave"] = automatic_leave
    bot = api.create_when_pool_allows(**body)
    done = api.wait_state(bot["id"], {"done", "fatal"}, timeout=30)
    ended = next(c for c in done["status_changes"] if c["code"] == "call_ended")
    assert ended["sub_code"] == sub_code, done["status_changes"]
    assert done["state"] == "done"
