"""BotSession end to end on the sandbox platform, on a fake clock.

Time never passes for real here: :class:`SteppingClock` knows when its sleepers are due and
:func:`run_until` / :func:`advance_to` jump from one such instant to the next, letting every task
run in between. So every timeout is exercised at its exact instant, in milliseconds of real time.
(The helpers are also used by ``test_sandbox.py`` and ``test_timing.py``.)
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from summon.abc import DriverError
from summon.clock import FakeClock
from summon.domain.lifecycle import Status, check_transition
from summon.drivers import DriverUnavailable
from summon.drivers.sandbox import SandboxDriver
from summon.runtime.session import BotSession, BotSpec, SessionCommandError
from summon.runtime.timing import JoinTimer

# -- fake time ---------------------------------------------------------------------------------------


class SteppingClock(FakeClock):
    """A :class:`FakeClock` that knows when its sleepers are due."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[float] = []
        self.origin = self.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        deadline = self.monotonic() + max(0.0, seconds)
        self.pending.append(deadline)
        try:
            await super().sleep(seconds)
        finally:
            self.pending.remove(deadline)

    @property
    def epoch(self) -> float:
        return self.now().timestamp()

    def next_due(self) -> float | None:
        now = self.monotonic()
        later = [d for d in self.pending if d > now]
        return min(later) if later else None


async def settle(rounds: int = 40) -> None:
    """Let every task that can run, run (yields to the loop; no real time passes)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def _step(clock: SteppingClock, to: float) -> None:
    # advance() works in microseconds: always move at least one, or a step could go nowhere.
    clock.advance(max(to - clock.monotonic(), 1e-6))


async def run_until(clock: SteppingClock, condition: Callable[[], bool], within: float = 100_000.0) -> None:
    """Move fake time from one due sleeper to the next until ``condition()`` holds."""
    limit = clock.monotonic() + within
    while True:
        await settle()
        if condition():
            return
        due = clock.next_due()
        assert due is not None, "nothing is scheduled and the condition does not hold"
        assert due <= limit, f"condition not met within {within} s of fake time"
        _step(clock, due)


async def advance_to(clock: SteppingClock, mono: float) -> None:
    """Move fake time to ``mono``, stopping at every due sleeper on the way."""
    while True:
        await settle()
        due = clock.next_due()
        if due is None or due > mono:
            break
        _step(clock, due)
    if clock.monotonic() < mono:
        _step(clock, mono)
    await settle()


# -- a runtime that records ------------------------------------------------------------------------------


@dataclass
class Sink:
    """SessionEvents that records everything, checking every status is a legal move."""

    clock: SteppingClock
    statuses: list[tuple[str, str | None, str | None, float]] = field(default_factory=list)
    events: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)
    finished_count: int = 0
    state: str = "staged"

    def status(self, bot_id: str, code: str, sub_code: str | None, message: str | None, at: float) -> None:
        assert self.finished_count == 0, "status after finished"
        assert type(code) is str and (sub_code is None or type(sub_code) is str)
        check_transition(self.state, code, sub_code)
        self.state = code
        self.statuses.append((code, sub_code, message, at - self.clock.origin))

    def event(self, bot_id: str, kind: str, data: dict[str, Any], at: float) -> None:
        self.events.append((kind, data, at - self.clock.origin))

    def finished(self, bot_id: str) -> None:
        self.finished_count += 1

    @property
    def codes(self) -> list[str]:
        return [s[0] for s in self.statuses]

    def last(self) -> tuple[str, str | None]:
        return self.statuses[-1][0], self.statuses[-1][1]

    def at(self, code: str) -> float:
        return next(s[3] for s in self.statuses if s[0] == code)

    def kinds(self) -> list[str]:
        return [e[0] for e in self.events]


JOIN_IN = 100.0  # join_at is this many seconds after the clock's start


def quiet_leave(**overrides: Any) -> dict[str, Any]:
    """automatic_leave with every rule off except ``overrides`` (stored-config shape)."""
    config: dict[str, Any] = {
        "waiting_room_timeout": None,
        "noone_joined_timeout": None,
        "everyone_left_timeout": None,
        "in_call_not_recording_timeout": None,
        "in_call_recording_timeout": None,
        "recording_permission_denied_timeout": None,
        "silence_detection": None,
        "bot_detection": {"using_participant_events": None, "using_participant_names": None},
    }
    config.update(overrides)
    return config


def make(
    params: str | dict[str, str],
    *,
    clock: SteppingClock | None = None,
    timer: JoinTimer | None = None,
    join_in: float | None = JOIN_IN,
    start_on: str = "participant_join",
    leave: dict[str, Any] | None = None,
    **config: Any,
) -> tuple[BotSession, Sink, SteppingClock]:
    clock = clock or SteppingClock()
    if isinstance(params, str):
        params = dict(p.split("=", 1) for p in params.split("&")) if params else {}
    spec = BotSpec(
        bot_id="bot-1",
        meeting_url={"meeting_id": "demo", "params": params, "platform": "sandbox"},
        bot_name="Notetaker",
        config={
            "automatic_leave": quiet_leave() if leave is None else leave,
            "recording_config": {"start_recording_on": start_on},
            **config,
        },
        join_at=None if join_in is None else clock.origin + join_in,
    )
    sink = Sink(clock)
    return BotSession(spec, sink, clock, timer or JoinTimer(clock)), sink, clock


async def start(session: BotSession, clock: SteppingClock, *, until: str | None = None) -> asyncio.Task[None]:
    """Stage, run in a task, and drive fake time until the session reaches ``until``."""
    await session.stage()
    task = asyncio.create_task(session.run())
    if until is not None:
        await run_until(clock, lambda: session.state == until or session.finished)
        assert session.state == until
    return task


async def finish(task: asyncio.Task[None], clock: SteppingClock, within: float = 100_000.0) -> None:
    await run_until(clock, task.done, within)
    await task


def sandbox(session: BotSession) -> SandboxDriver:
    assert isinstance(session.driver, SandboxDriver)
    return session.driver


# -- the whole life -------------------------------------------------------------------------------------------


async def test_scheduled_bot_full_lifecycle() -> None:
    session, sink, clock = make(
        "waiting_room=1&admit_after=2&participants=alice@1-30,bob@5&say=alice@3:Hello team&end_after=20"
    )
    await session.stage()
    assert session.state == "staged" and sink.statuses == []
    task = asyncio.create_task(session.run())
    await finish(task, clock)
    assert sink.statuses == [
        ("joining_call", None, None, 100.0),
        ("in_waiting_room", None, None, 100.0),
        ("in_call_not_recording", None, None, 102.0),
        ("in_call_recording", None, None, 102.0),  # alice was already there
        ("call_ended", "call_ended_by_host", None, 120.0),
        ("recording_done", None, None, 120.0),
        ("done", None, None, 120.0),
    ]
    assert sink.finished_count == 1 and session.finished and sandbox(session).closed
    assert sink.kinds() == [
        "participant_events.join",
        "participant_events.speech_on",
        "transcript.partial_data",
        "transcript.data",
        "participant_events.speech_off",
        "participant_events.join",
    ]


async def test_event_payloads_follow_recalls_realtime_shapes() -> None:
    session, sink, clock = make("participants=alice@0,bob@4&say=bob@5:Hi there&chat=alice@6:hello")
    task = await start(session, clock)
    await run_until(clock, lambda: "participant_events.chat_message" in sink.kinds())
    join = sink.events[0][1]
    assert join["participant"] == {
        "id": 100, "name": "alice", "is_host": True, "platform": None, "extra_data": {}, "email": None,
    }
    assert join["timestamp"]["relative"] == 0.0 and join["timestamp"]["absolute"].endswith("Z")
    assert join["data"] is None
    final = next(data for kind, data, _ in sink.events if kind == "transcript.data")
    assert final["participant"]["name"] == "bob"
    assert [w["text"] for w in final["words"]] == ["Hi", "there"]
    assert [w["start_timestamp"]["relative"] for w in final["words"]] == pytest.approx([5.0, 5.3])
    assert final["words"][1]["end_timestamp"]["relative"] == pytest.approx(5.6)
    chat = next(data for kind, data, _ in sink.events if kind == "participant_events.chat_message")
    assert chat["data"] == {"text": "hello", "to": "everyone"}
    assert chat["timestamp"]["relative"] == pytest.approx(6.0)
    await session.command("leave")
    await finish(task, clock)


async def test_adhoc_bot_joins_at_once() -> None:
    session, sink, clock = make("participants=alice@0", join_in=None)
    clock.advance(42)
    task = await start(session, clock, until="in_call_recording")
    assert sink.statuses[0] == ("joining_call", None, None, 42.0)
    await session.command("leave")
    await finish(task, clock)


async def test_never_joins_early() -> None:
    session, sink, clock = make("")
    task = await start(session, clock)
    await advance_to(clock, JOIN_IN - 0.001)
    assert sink.statuses == [] and session.state == "staged"
    await run_until(clock, lambda: bool(sink.statuses))
    assert sink.statuses[0][0] == "joining_call" and sink.statuses[0][3] >= JOIN_IN
    await session.command("leave")
    await finish(task, clock)


async def test_a_missed_join_at_says_how_late() -> None:
    session, sink, clock = make("", join_in=JOIN_IN)
    clock.advance(JOIN_IN + 12.3)
    task = await start(session, clock, until="in_call_not_recording")
    code, _, message, at = sink.statuses[0]
    assert code == "joining_call" and at == pytest.approx(JOIN_IN + 12.3)
    assert message == "joined 12.3 s after join_at"
    await session.command("leave")
    await finish(task, clock)


async def test_less_than_a_second_late_is_not_worth_a_message() -> None:
    session, sink, clock = make("")
    clock.advance(JOIN_IN + 0.5)
    task = await start(session, clock, until="in_call_not_recording")
    assert sink.statuses[0][2] is None
    await session.command("leave")
    await finish(task, clock)


# -- automatic leave, end to end ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "leave", "start_on", "sub_code", "after_join", "recorded"),
    [
        ("admit_after=never", {"waiting_room_timeout": 30}, "participant_join",
         "timeout_exceeded_waiting_room", 30, False),
        ("", {"noone_joined_timeout": 40}, "participant_join",
         "timeout_exceeded_noone_joined", 40, False),
        ("participants=alice@0-10", {"everyone_left_timeout": {"timeout": 5, "activate_after": None}},
         "participant_join", "timeout_exceeded_everyone_left", 15, True),
        ("participants=alice@0", {"in_call_not_recording_timeout": 50}, "manual",
         "timeout_exceeded_in_call_not_recording", 50, False),
        ("participants=alice@0", {"in_call_recording_timeout": 25}, "participant_join",
         "timeout_exceeded_in_call_recording", 25, True),
        ("participants=alice@0&recording_permission=denied", {"recording_permission_denied_timeout": 30},
         "participant_join", "timeout_exceeded_recording_permission_denied", 30, False),
        ("participants=alice@0&say=alice@1:hi", {"silence_detection": {"timeout": 20, "activate_after": 10}},
         "participant_join", "timeout_exceeded_silence_detected", 30, True),
        ("participants=alice@0",
         {"bot_detection": {"using_participant_events": {"timeout": 15, "activate_after": 5}}},
         "participant_join", "timeout_exceeded_only_bots_detected_using_participant_events", 20, True),
        ("participants=Otter Notetaker@0&say=Otter Notetaker@1:beep",
         {"bot_detection": {"using_participant_events": None, "using_participant_names": {
             "timeout": 12, "activate_after": 3, "matches": ["notetaker"]}}},
         "participant_join", "timeout_exceeded_only_bots_detected_using_participant_names", 15, True),
    ],
)
async def test_automatic_leave(
    params: str, leave: dict[str, Any], start_on: str, sub_code: str, after_join: float, recorded: bool
) -> None:
    session, sink, clock = make(params, leave=quiet_leave(**leave), start_on=start_on)
    task = await start(session, clock)
    await finish(task, clock)
    ended = [s for s in sink.statuses if s[0] == "call_ended"]
    assert ended == [("call_ended", sub_code, None, pytest.approx(JOIN_IN + after_join))]
    assert ("recording_done" in sink.codes) is recorded
    assert sink.codes[-1] == "done" and sink.finished_count == 1
    assert sandbox(session).left


async def test_recording_permission_denied_lifecycle() -> None:
    session, sink, clock = make(
        "participants=alice@0&recording_permission=denied",
        leave=quiet_leave(recording_permission_denied_timeout=30),
    )
    task = await start(session, clock)
    await finish(task, clock)
    assert sink.codes == [
        "joining_call", "in_call_not_recording", "recording_permission_denied", "call_ended", "done",
    ]


async def test_recording_permission_granted_lifecycle() -> None:
    session, sink, clock = make("participants=alice@0&recording_permission=granted&end_after=9")
    task = await start(session, clock)
    await finish(task, clock)
    assert sink.codes == [
        "joining_call", "in_call_not_recording", "recording_permission_allowed", "in_call_recording",
        "call_ended", "recording_done", "done",
    ]


async def test_automatic_leave_uses_recalls_defaults_when_configured_so() -> None:
    from summon.api.bot_config import default_config

    stored = default_config()
    session, sink, clock = make("", leave=stored["automatic_leave"])
    task = await start(session, clock)
    await finish(task, clock)
    assert sink.last() == ("done", None)
    assert sink.statuses[-2][:2] == ("call_ended", "timeout_exceeded_noone_joined")
    assert sink.at("call_ended") == pytest.approx(JOIN_IN + 1200)


# -- the meeting ends the bot ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "last_statuses"),
    [
        ("participants=alice@0&kick_after=3", [("call_ended", "bot_kicked_from_call"), ("recording_done", None), ("done", None)]),
        ("fail=meeting_not_found", [("joining_call", None), ("fatal", "meeting_not_found")]),
        ("admit_after=5&fail=bot_removed_from_waiting_room&fail_after=2",
         [("in_waiting_room", None), ("fatal", "bot_removed_from_waiting_room")]),
        ("admit_after=never&kick_after=4", [("in_waiting_room", None), ("fatal", "bot_removed_from_waiting_room")]),
        ("admit_after=never&end_after=4", [("in_waiting_room", None), ("call_ended", "call_ended_by_host"), ("done", None)]),
    ],
)
async def test_the_meeting_ends_the_bot(params: str, last_statuses: list[tuple[str, str | None]]) -> None:
    session, sink, clock = make(params)
    task = await start(session, clock)
    await finish(task, clock)
    assert [s[:2] for s in sink.statuses[-len(last_statuses):]] == last_statuses
    assert sink.finished_count == 1 and sandbox(session).closed


# -- staging failures ------------------------------------------------------------------------------------------


async def test_invalid_sandbox_link_fails_at_staging() -> None:
    session, sink, clock = make("admit_after=soon")
    await session.stage()
    assert sink.statuses == [("fatal", "invalid_sandbox_url", sink.statuses[0][2], 0.0)]
    assert "admit_after" in (sink.statuses[0][2] or "")
    assert sink.finished_count == 1 and session.finished
    await session.run()  # nothing more to do
    assert len(sink.statuses) == 1 and sink.finished_count == 1


async def test_platform_without_driver_is_fatal() -> None:
    clock = SteppingClock()
    sink = Sink(clock)
    spec = BotSpec("bot-1", {"meeting_id": "123", "platform": "zoom"}, "Bot", {}, None)
    session = BotSession(spec, sink, clock, JoinTimer(clock))
    await session.run()  # stages by itself
    assert [s[:2] for s in sink.statuses] == [("fatal", "platform_driver_unavailable")]
    assert sink.finished_count == 1


class ExplodingJoin(SandboxDriver):
    async def join(self) -> None:
        raise RuntimeError("socket on fire")


class RefusingJoin(SandboxDriver):
    async def join(self) -> None:
        raise DriverError("meeting_password_incorrect", "wrong passcode")


class ConfusedDriver(SandboxDriver):
    async def join(self) -> None:
        self.events.admitted()
        self.events.meeting_ended("bot_removed_before_join")  # a done sub-code: not for call_ended


@pytest.mark.parametrize(
    ("driver", "expected"),
    [
        (ExplodingJoin, ("fatal", "platform_connection_error")),
        (RefusingJoin, ("fatal", "meeting_password_incorrect")),
        (ConfusedDriver, ("done", None)),
    ],
)
async def test_driver_failures_are_reported_never_raised(driver: type[SandboxDriver], expected: tuple[str, str | None]) -> None:
    clock = SteppingClock()
    sink = Sink(clock)
    spec = BotSpec("bot-1", {"meeting_id": "x", "params": {}, "platform": "sandbox"}, "Bot", {}, None)
    session = BotSession(spec, sink, clock, JoinTimer(clock), driver_factory=lambda platform: driver)
    await session.run()
    assert sink.last() == expected and sink.finished_count == 1
    if driver is ExplodingJoin:
        assert "socket on fire" in (sink.statuses[-1][2] or "")
    if driver is ConfusedDriver:
        # The sub-code did not fit call_ended: reported without it, and said so.
        assert sink.statuses[-2][:2] == ("call_ended", None)
        assert "bot_removed_before_join" in (sink.statuses[-2][2] or "")


async def test_unknown_platform_factory_error() -> None:
    def factory(platform: str) -> type[SandboxDriver]:
        raise DriverUnavailable(platform, "not installed here")

    clock = SteppingClock()
    sink = Sink(clock)
    spec = BotSpec("bot-1", {"meeting_id": "x", "params": {}, "platform": "sandbox"}, "Bot", {}, None)
    session = BotSession(spec, sink, clock, JoinTimer(clock), driver_factory=factory)
    await session.stage()
    assert sink.statuses[0][:2] == ("fatal", "platform_driver_unavailable")
    assert "not installed here" in (sink.statuses[0][2] or "")


# -- leave, at every phase ---------------------------------------------------------------------------------------


async def test_leave_before_run_cancels_the_bot() -> None:
    session, sink, clock = make("")
    await session.stage()
    await session.command("leave")
    assert [s[:2] for s in sink.statuses] == [("done", "bot_removed_before_join")]
    assert sink.finished_count == 1 and sandbox(session).closed and not sandbox(session).left
    await session.run()
    assert len(sink.statuses) == 1


async def test_leave_while_waiting_for_join_at() -> None:
    clock = SteppingClock()
    timer = JoinTimer(clock)
    session, sink, _ = make("", clock=clock, timer=timer)
    task = await start(session, clock)
    await advance_to(clock, 50)
    assert timer.waiting == 1
    await session.command("leave")
    await finish(task, clock)
    assert [s[:2] for s in sink.statuses] == [("done", "bot_removed_before_join")]
    assert sink.at("done") == pytest.approx(50)
    assert timer.waiting == 0 and timer.instants == 0 and sink.finished_count == 1


@pytest.mark.parametrize(
    ("params", "start_on", "phase", "codes_after"),
    [
        ("admit_after=5&waiting_room=0", "participant_join", "joining_call", ["call_ended", "done"]),
        ("admit_after=never", "participant_join", "in_waiting_room", ["call_ended", "done"]),
        ("participants=alice@0", "manual", "in_call_not_recording", ["call_ended", "done"]),
        ("participants=alice@0", "participant_join", "in_call_recording", ["call_ended", "recording_done", "done"]),
    ],
)
async def test_leave_during_the_call(params: str, start_on: str, phase: str, codes_after: list[str]) -> None:
    session, sink, clock = make(params, start_on=start_on)
    task = await start(session, clock, until=phase)
    await session.command("leave")
    await session.command("leave")  # idempotent while leaving
    await finish(task, clock)
    assert sink.codes[-len(codes_after):] == codes_after
    assert sink.statuses[-len(codes_after)][1] == "bot_received_leave_call"
    assert sandbox(session).left and sandbox(session).closed
    with pytest.raises(SessionCommandError) as info:
        await session.command("leave")
    assert info.value.code == "cannot_command_completed_bot"


async def test_cancelling_run_releases_the_driver_quietly() -> None:
    session, sink, clock = make("participants=alice@0")
    task = await start(session, clock, until="in_call_recording")
    reported = len(sink.statuses)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sandbox(session).closed and len(sink.statuses) == reported


# -- commands ---------------------------------------------------------------------------------------------


async def test_chat_before_the_call_is_refused() -> None:
    session, sink, clock = make("admit_after=10")
    await session.stage()
    with pytest.raises(SessionCommandError) as info:
        await session.command("send_chat_message", {"to": "everyone", "message": "hi"})
    assert info.value.code == "cannot_command_unstarted_bot"
    task = await start(session, clock, until="in_waiting_room")
    with pytest.raises(SessionCommandError) as info:
        await session.command("send_chat_message", {"to": "everyone", "message": "hi"})
    assert info.value.code == "cannot_command_unstarted_bot"
    await run_until(clock, lambda: session.state == "in_call_not_recording")
    await session.command("send_chat_message", {"to": "everyone", "message": "hello all"})
    await session.command("send_chat_message", {"message": "default audience"})
    assert sandbox(session).chat_sent == [("everyone", "hello all"), ("everyone", "default audience")]
    for bad in ({"message": ""}, {"to": "everyone"}, {"message": "x" * 4097}, {"to": 3, "message": "hi"}):
        with pytest.raises(SessionCommandError) as info:
            await session.command("send_chat_message", bad)
        assert info.value.code == "invalid_command_arguments"
    with pytest.raises(SessionCommandError) as info:
        await session.command("dance", {})
    assert info.value.code == "unknown_command"
    await session.command("leave")
    await finish(task, clock)
    with pytest.raises(SessionCommandError) as info:
        await session.command("send_chat_message", {"message": "too late"})
    assert info.value.code == "cannot_command_completed_bot"


async def test_media_output_commands() -> None:
    session, sink, clock = make("participants=alice@0")
    task = await start(session, clock, until="in_call_recording")
    mp3, jpeg = b"ID3fake", b"\xff\xd8fake"
    await session.command("output_audio", {"kind": "mp3", "b64_data": base64.b64encode(mp3).decode()})
    await session.command("output_audio", None)
    await session.command("output_video", {"kind": "jpeg", "b64_data": base64.b64encode(jpeg).decode()})
    await session.command("output_video", {})
    assert sandbox(session).audio_out == [mp3, None]
    assert sandbox(session).video_out == [jpeg, None]
    with pytest.raises(SessionCommandError) as info:
        await session.command("output_audio", {"b64_data": "not base64!"})
    assert info.value.code == "invalid_command_arguments"
    await session.command("leave")
    await finish(task, clock)


@pytest.mark.parametrize(
    ("start_on", "params", "recording_at"),
    [
        ("call_join", "participants=alice@5&say=alice@8:hi", 0.0),
        ("participant_join", "participants=alice@5&say=alice@8:hi", 5.0),
        ("participant_speak", "participants=alice@5&say=alice@8:hi", 8.0),
        ("manual", "participants=alice@5&say=alice@8:hi", None),
    ],
)
async def test_start_recording_on(start_on: str, params: str, recording_at: float | None) -> None:
    session, sink, clock = make(params + "&end_after=20", start_on=start_on)
    task = await start(session, clock)
    await finish(task, clock)
    if recording_at is None:
        assert "in_call_recording" not in sink.codes and "recording_done" not in sink.codes
    else:
        assert sink.at("in_call_recording") == pytest.approx(JOIN_IN + recording_at)
        assert "recording_done" in sink.codes


async def test_transcripts_only_while_recording() -> None:
    session, sink, clock = make("participants=alice@0&say=alice@1:before;alice@9:after", start_on="manual")
    task = await start(session, clock, until="in_call_not_recording")
    await advance_to(clock, JOIN_IN + 5)
    assert "participant_events.speech_on" in sink.kinds()
    assert not [k for k in sink.kinds() if k.startswith("transcript")]
    await session.command("start_recording")
    await run_until(clock, lambda: "transcript.data" in sink.kinds())
    final = next(data for kind, data, _ in sink.events if kind == "transcript.data")
    assert [w["text"] for w in final["words"]] == ["after"]
    assert final["words"][0]["start_timestamp"]["relative"] == pytest.approx(4.0)  # recording began at 5
    await session.command("leave")
    await finish(task, clock)


async def test_manual_recording_commands() -> None:
    session, sink, clock = make("participants=alice@0,bob@30", start_on="manual")
    task = await start(session, clock, until="in_call_not_recording")

    async def refused(name: str, code: str) -> None:
        with pytest.raises(SessionCommandError) as info:
            await session.command(name)
        assert info.value.code == code

    await refused("stop_recording", "not_recording")
    await refused("pause_recording", "not_recording")
    await refused("resume_recording", "recording_not_paused")
    await session.command("start_recording")
    assert session.state == "in_call_recording"
    await refused("start_recording", "already_recording")
    await session.command("pause_recording")
    assert session.state == "in_call_not_recording"
    await refused("pause_recording", "not_recording")
    await session.command("resume_recording")
    assert session.state == "in_call_recording"
    await session.command("stop_recording")
    assert session.state == "in_call_not_recording"
    await refused("resume_recording", "recording_not_paused")
    await session.command("leave")
    await finish(task, clock)
    assert sink.codes == [
        "joining_call", "in_call_not_recording", "in_call_recording", "in_call_not_recording",
        "in_call_recording", "in_call_not_recording", "call_ended", "recording_done", "done",
    ]


async def test_stopped_recording_does_not_restart_by_itself() -> None:
    session, sink, clock = make("participants=alice@0,bob@30&end_after=40")
    task = await start(session, clock, until="in_call_recording")
    await session.command("stop_recording")
    await finish(task, clock)  # bob joins at 30: start_recording_on would fire, but we stopped
    assert sink.codes.count("in_call_recording") == 1
    assert "participant_events.join" in sink.kinds()


async def test_recording_needs_permission_first() -> None:
    session, sink, clock = make(
        "participants=alice@0&recording_permission=denied", start_on="manual",
    )
    task = await start(session, clock, until="recording_permission_denied")
    with pytest.raises(SessionCommandError) as info:
        await session.command("start_recording")
    assert info.value.code == "recording_not_permitted"
    await session.command("leave")
    await finish(task, clock)


async def test_pause_keeps_everyone_left_but_freezes_silence() -> None:
    session, sink, clock = make(
        "participants=alice@0-20",
        leave=quiet_leave(
            everyone_left_timeout={"timeout": 5, "activate_after": None},
            silence_detection={"timeout": 10, "activate_after": 1},
        ),
    )
    task = await start(session, clock, until="in_call_recording")
    await advance_to(clock, JOIN_IN + 2)
    await session.command("pause_recording")  # silence would fire at 11 while recording
    await finish(task, clock)
    assert [s[:2] for s in sink.statuses[-3:]] == [
        ("call_ended", "timeout_exceeded_everyone_left"), ("recording_done", None), ("done", None),
    ]
    assert sink.at("call_ended") == pytest.approx(JOIN_IN + 25)


async def test_automatic_chat_and_media() -> None:
    jpeg_rec, jpeg_idle, mp3 = b"\xff\xd8rec", b"\xff\xd8idle", b"ID3hello"
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    session, sink, clock = make(
        "participants=alice@0,bob@4,host@1&host=host",
        start_on="participant_speak",
        chat={
            "on_bot_join": {"send_to": "everyone", "message": "I am recording", "pin": False},
            "on_participant_join": {"message": "Welcome!", "exclude_host": True},
        },
        automatic_video_output={
            "in_call_recording": {"kind": "jpeg", "b64_data": b64(jpeg_rec)},
            "in_call_not_recording": {"kind": "jpeg", "b64_data": b64(jpeg_idle)},
        },
        automatic_audio_output={"in_call_recording": {"data": {"kind": "mp3", "b64_data": b64(mp3)}}},
    )
    task = await start(session, clock, until="in_call_not_recording")
    await advance_to(clock, JOIN_IN + 5)
    driver = sandbox(session)
    assert driver.chat_sent == [("everyone", "I am recording"), ("100", "Welcome!"), ("101", "Welcome!")]
    assert driver.video_out == [jpeg_idle] and driver.audio_out == []
    await session.command("start_recording")
    await settle()
    assert driver.video_out == [jpeg_idle, jpeg_rec] and driver.audio_out == [mp3]
    await session.command("leave")
    await finish(task, clock)


async def test_audio_replay_on_participant_join_is_debounced() -> None:
    mp3 = b"ID3again"
    session, sink, clock = make(
        "participants=alice@0,bob@10,carol@11,dave@12,erin@50",
        start_on="call_join",
        automatic_audio_output={
            "in_call_recording": {
                "data": {"kind": "mp3", "b64_data": base64.b64encode(mp3).decode()},
                "replay_on_participant_join": {"debounce_mode": "trailing", "debounce_interval": 5, "disable_after": 30},
            }
        },
    )
    task = await start(session, clock, until="in_call_recording")
    await advance_to(clock, JOIN_IN + 60)
    # Played when recording started (alice, present, heard it); replayed once, 5 s after the
    # burst of joins at 10-12; erin joined after disable_after (30 s).
    assert sandbox(session).audio_out == [mp3, mp3]
    await session.command("leave")
    await finish(task, clock)


async def test_statuses_carry_plain_strings_and_state_property() -> None:
    session, sink, clock = make("participants=alice@0&end_after=1")
    assert session.state == "staged"
    task = await start(session, clock)
    await finish(task, clock)
    assert session.state == "done"
    assert all(type(code) is str for code in sink.codes)


async def test_still_joining_counts_as_not_let_in() -> None:
    session, sink, clock = make("admit_after=50&waiting_room=0", leave=quiet_leave(waiting_room_timeout=30))
    task = await start(session, clock)
    await finish(task, clock)
    assert [s[:2] for s in sink.statuses] == [
        ("joining_call", None), ("call_ended", "timeout_exceeded_waiting_room"), ("done", None),
    ]
    assert sink.at("call_ended") == pytest.approx(JOIN_IN + 30)


class HangingJoin(SandboxDriver):
    async def join(self) -> None:
        await asyncio.Event().wait()


async def test_a_join_that_never_returns_is_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    # The watchdog runs on the event loop's clock (see BotSession._join): shorten it, then wait
    # for the session to finish — an event, bounded — rather than for a fixed time.
    from summon.runtime import session as session_module

    monkeypatch.setattr(session_module, "JOIN_TIMEOUT_S", 0.01)
    clock = SteppingClock()
    sink = Sink(clock)
    spec = BotSpec("bot-1", {"meeting_id": "x", "params": {}, "platform": "sandbox"}, "Bot", {}, None)
    session = BotSession(spec, sink, clock, JoinTimer(clock), driver_factory=lambda platform: HangingJoin)
    await asyncio.wait_for(session.run(), timeout=5)
    assert [s[:2] for s in sink.statuses] == [("joining_call", None), ("fatal", "platform_connection_error")]
    assert "within" in (sink.statuses[-1][2] or "")
    assert sink.finished_count == 1


async def test_an_unexpected_error_is_fatal_and_leaves_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    from summon.domain.autoleave import AutoLeave

    session, sink, clock = make("participants=alice@0")
    task = await start(session, clock, until="in_call_recording")

    def broken(self: AutoLeave) -> None:
        raise ZeroDivisionError("rules on fire")

    monkeypatch.setattr(AutoLeave, "next_deadline", broken)
    await session.command("pause_recording")  # wakes the session, which now fails
    await finish(task, clock)
    assert sink.last()[:2] == ("fatal", "platform_connection_error")
    assert "rules on fire" in (sink.statuses[-1][2] or "")
    assert sandbox(session).left and sandbox(session).closed and sink.finished_count == 1
