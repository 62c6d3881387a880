"""The sandbox driver: a scripted, simulated meeting played on a fake clock."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from summon.abc import DriverError, Participant, Word
from summon.drivers import DriverUnavailable, available_platforms, driver_for
from summon.drivers.sandbox import WORD_SECONDS, SandboxDriver, parse_script
from tests.unit.test_session import SteppingClock, advance_to, run_until, settle


class Recorder:
    """DriverEvents that writes down what happened and when (seconds after join())."""

    def __init__(self, clock: SteppingClock) -> None:
        self.clock = clock
        self.t0 = 0.0
        self.log: list[tuple[float, str, Any]] = []

    def _add(self, what: str, detail: Any = None) -> None:
        self.log.append((round(self.clock.monotonic() - self.t0, 6), what, detail))

    def waiting_room(self) -> None:
        self._add("waiting_room")

    def admitted(self) -> None:
        self._add("admitted")

    def participant_joined(self, p: Participant) -> None:
        self._add("joined", p.name)

    def participant_left(self, p: Participant) -> None:
        self._add("left", p.name)

    def participant_updated(self, p: Participant) -> None:
        self._add("updated", p.name)

    def speech(self, p: Participant, speaking: bool) -> None:
        self._add("speech_on" if speaking else "speech_off", p.name)

    def webcam(self, p: Participant, on: bool) -> None:
        self._add("webcam", (p.name, on))

    def screenshare(self, p: Participant, on: bool) -> None:
        self._add("screenshare", (p.name, on))

    def chat_message(self, p: Participant, text: str, to: str) -> None:
        self._add("chat", (p.name, text, to))

    def transcript(self, p: Participant, words: list[Word], final: bool) -> None:
        self._add("final" if final else "partial", (p.name, [w.text for w in words]))
        self.words = words

    def recording_permission(self, granted: bool) -> None:
        self._add("permission", granted)

    def meeting_ended(self, sub_code: str) -> None:
        self._add("ended", sub_code)

    def failed(self, sub_code: str, message: str | None = None) -> None:
        self._add("failed", sub_code)

    def what(self) -> list[tuple[float, str, Any]]:
        return list(self.log)


def driver(params: dict[str, str] | str, clock: SteppingClock | None = None) -> tuple[SandboxDriver, Recorder, SteppingClock]:
    clock = clock or SteppingClock()
    if isinstance(params, str):
        params = dict(p.split("=", 1) for p in params.split("&")) if params else {}
    events = Recorder(clock)
    d = SandboxDriver({"meeting_id": "demo", "params": params, "platform": "sandbox"}, "Bot", {}, events, clock)
    return d, events, clock


async def play(params: dict[str, str] | str, until: float = 1000.0) -> tuple[SandboxDriver, Recorder]:
    """Prepare, join at fake time 10, play the script until ``until`` seconds after joining."""
    d, events, clock = driver(params)
    await d.prepare()
    clock.advance(10)
    events.t0 = clock.monotonic()
    await d.join()
    assert events.log == []  # nothing is reported before join() returns
    await advance_to(clock, events.t0 + until)
    await d.close()
    return d, events


# -- the script ----------------------------------------------------------------------------------


async def test_admitted_directly_by_default() -> None:
    d, events = await play("")
    assert events.what() == [(0.0, "admitted", None)]
    assert not d.recording_permission_required


async def test_waiting_room_participants_and_leaves() -> None:
    _, events = await play("admit_after=2.5&participants=alice@0-60,bob@5,carol@1-2,dan@2.5")
    assert events.what() == [
        (0.0, "waiting_room", None),
        (2.5, "admitted", None),
        (2.5, "joined", "alice"),  # present at admission: reported then
        (2.5, "joined", "dan"),  # joins at the same instant: before the admission
        (5.0, "joined", "bob"),
        (60.0, "left", "alice"),
    ]  # carol came and went while the bot waited: never seen


async def test_slow_join_without_waiting_room() -> None:
    _, events = await play("admit_after=3&waiting_room=0")
    assert events.what() == [(3.0, "admitted", None)]


async def test_never_admitted() -> None:
    d, events = await play("admit_after=never&participants=alice@0&say=alice@1:hi&chat=alice@2:x", until=5000)
    assert events.what() == [(0.0, "waiting_room", None)]
    assert not d.in_call
    with pytest.raises(DriverError) as info:
        await d.send_chat("everyone", "let me in")
    assert info.value.sub_code == "not_in_call"


async def test_end_after_is_the_last_thing_that_happens() -> None:
    _, events = await play("participants=alice@0-50&end_after=20&chat=alice@30:too late")
    assert events.what()[-1] == (20.0, "ended", "call_ended_by_host")
    assert "chat" not in [e[1] for e in events.what()]


@pytest.mark.parametrize(
    ("params", "last"),
    [
        ("kick_after=4", (4.0, "ended", "bot_kicked_from_call")),
        ("admit_after=10&kick_after=4", (4.0, "failed", "bot_removed_from_waiting_room")),
        ("fail=meeting_not_found", (0.0, "failed", "meeting_not_found")),
        ("fail=meeting_full&fail_after=1.5&admit_after=5", (1.5, "failed", "meeting_full")),
    ],
)
async def test_kicks_and_failures(params: str, last: tuple[float, str, str]) -> None:
    _, events = await play(params)
    assert events.what()[-1] == last
    assert [e for e in events.what() if e[1] == "admitted"] == ([] if "admit_after" in params or "fail=" in params else [(0.0, "admitted", None)])


@pytest.mark.parametrize(("value", "granted"), [("granted", True), ("denied", False)])
async def test_recording_permission(value: str, granted: bool) -> None:
    d, events = await play(f"recording_permission={value}&participants=alice@0")
    assert d.recording_permission_required
    assert events.what() == [(0.0, "admitted", None), (0.0, "permission", granted), (0.0, "joined", "alice")]


async def test_say_speech_and_transcript_words() -> None:
    _, events = await play("participants=alice@0&say=alice@3:Hello team today")
    log = events.what()
    assert [(round(t, 3), what, detail) for t, what, detail in log] == [
        (0.0, "admitted", None),
        (0.0, "joined", "alice"),
        (3.0, "speech_on", "alice"),
        (3.3, "partial", ("alice", ["Hello"])),
        (3.6, "partial", ("alice", ["Hello", "team"])),
        (3.9, "final", ("alice", ["Hello", "team", "today"])),
        (3.9, "speech_off", "alice"),
    ]
    words = events.words
    assert [w.start - events.t0 for w in words] == pytest.approx([3.0, 3.3, 3.6])
    assert [w.end - w.start for w in words] == pytest.approx([WORD_SECONDS] * 3)


async def test_speech_needs_the_speaker_in_the_call() -> None:
    _, events = await play("participants=alice@5-7&say=alice@1:early;alice@6:now gone soon please")
    whats = [(round(t, 3), w) for t, w, _ in events.what()]
    assert (1.0, "speech_on") not in whats  # alice not there yet
    # Leaving mid-sentence: speech stops before she leaves; the rest is never said.
    assert whats[-3:] == [(6.9, "partial"), (7.0, "speech_off"), (7.0, "left")]


async def test_chat() -> None:
    _, events = await play("participants=alice@0,bob@1&chat=alice@4:hi all;bob@5:hey, you: there")
    assert [e for e in events.what() if e[1] == "chat"] == [
        (4.0, "chat", ("alice", "hi all", "everyone")),
        (5.0, "chat", ("bob", "hey, you: there", "everyone")),
    ]


async def test_platform_flagged_bots_and_host() -> None:
    d, events, clock = driver("participants=alice@0,bob@0&bots=otter@0&host=bob")
    await d.prepare()
    seen: list[Participant] = []
    events.participant_joined = seen.append  # type: ignore[method-assign]
    await d.join()
    await settle()
    assert [(p.id, p.name, p.is_host, p.is_bot) for p in seen] == [
        ("100", "alice", False, False),
        ("101", "bob", True, False),
        ("102", "otter", False, True),
    ]
    await d.close()


async def test_the_same_link_plays_the_same_way() -> None:
    params = "admit_after=1&participants=a@0-9,b@2&say=a@3:one two;b@4:three&chat=b@5:x&end_after=12"
    _, first = await play(params)
    _, second = await play(params)
    assert first.what() == second.what() and len(first.what()) > 10


# -- the driver's own calls ------------------------------------------------------------------------


async def test_leave_stops_the_meeting_and_is_idempotent() -> None:
    d, events, clock = driver("participants=alice@0&end_after=100")
    await d.prepare()
    await d.leave()  # before join(): nothing to leave
    assert not d.left
    await d.join()
    await run_until(clock, lambda: d.in_call)
    await d.send_chat("everyone", "bye")
    await d.output_audio(b"ID3")
    await d.output_video(None)
    assert (d.chat_sent, d.audio_out, d.video_out) == ([("everyone", "bye")], [b"ID3"], [None])
    await d.leave()
    await d.leave()
    assert d.left and not d.in_call
    await advance_to(clock, 500)
    assert [e[1] for e in events.what()] == ["admitted", "joined"]  # no end reported after leaving
    await d.close()
    await d.close()
    assert d.closed


async def test_join_before_prepare_or_twice_is_a_bug() -> None:
    d, _, _ = driver("")
    with pytest.raises(RuntimeError):
        await d.join()
    await d.prepare()
    await d.join()
    with pytest.raises(RuntimeError):
        await d.join()
    await d.close()


# -- parameters -------------------------------------------------------------------------------------


def test_parse_defaults() -> None:
    s = parse_script({})
    assert (s.admit_after, s.waiting_room, s.people, s.recording_permission, s.fail) == (0.0, False, (), None, None)
    assert parse_script({"admit_after": "never"}).waiting_room is True
    assert parse_script({"admit_after": "1.25", "waiting_room": "0"}).waiting_room is False


@pytest.mark.parametrize(
    "params",
    [
        {"colour": "blue"},
        {"admit_after": "soon"},
        {"admit_after": "-1"},
        {"admit_after": "1e3"},
        {"admit_after": "nan"},
        {"end_after": "99999999"},
        {"waiting_room": "yes"},
        {"participants": "alice"},
        {"participants": "alice@5-2"},
        {"participants": "alice@0,alice@1"},
        {"participants": "alice@x"},
        {"participants": "alice@1:hi"},
        {"participants": "@1"},
        {"participants": "alice@0", "host": "bob"},
        {"say": "bob@1:hi"},
        {"participants": "alice@0", "say": "alice@1"},
        {"participants": "alice@0", "say": "alice@1:   "},
        {"participants": "alice@0", "chat": "alice:hi"},
        {"recording_permission": "maybe"},
        {"fail": "call_ended_by_host"},
        {"fail": "bot_removed_before_join"},
        {"fail": "Not A Code"},
    ],
)
async def test_invalid_params_fail_at_prepare(params: dict[str, str]) -> None:
    d, _, _ = driver(params)
    with pytest.raises(DriverError) as info:
        await d.prepare()
    assert info.value.sub_code == "invalid_sandbox_url" and info.value.message


async def test_invalid_params_message_names_the_problem() -> None:
    d, _, _ = driver({"colour": "blue"})
    with pytest.raises(DriverError, match="colour"):
        await d.prepare()


def test_fail_accepts_any_fatal_or_driver_sub_code() -> None:
    assert parse_script({"fail": "meeting_password_incorrect"}).fail == "meeting_password_incorrect"
    assert parse_script({"fail": "join_at_missed"}).fail == "join_at_missed"
    assert parse_script({"fail": "zoom_special_error"}).fail == "zoom_special_error"


# -- registry ------------------------------------------------------------------------------------


def test_registry() -> None:
    assert driver_for("sandbox") is SandboxDriver
    assert SandboxDriver.platform == "sandbox"
    assert "sandbox" in available_platforms()
    for name in ("zoom", "../sandbox", "summon.drivers.sandbox", "", "Sandbox", "__init__"):
        with pytest.raises(DriverUnavailable) as info:
            driver_for(name)
        assert info.value.platform == name
        assert isinstance(info.value, LookupError)


async def test_close_cancels_the_script_task() -> None:
    d, _, clock = driver("participants=alice@0&end_after=100")
    await d.prepare()
    await d.join()
    await settle()
    before = {t for t in asyncio.all_tasks() if t.get_name().startswith("sandbox:")}
    assert before
    await d.close()
    assert all(t.done() for t in before)
