"""Automatic-leave rules with plain numbers as times (seconds of a monotonic clock)."""

from __future__ import annotations

import pytest

from summon.api.bot_config import default_config
from summon.domain.autoleave import AutoLeave, AutoLeaveConfig, Deadline, Heuristic
from summon.domain.lifecycle import SubCode

WAITING_ROOM = SubCode.TIMEOUT_EXCEEDED_WAITING_ROOM
NOONE = SubCode.TIMEOUT_EXCEEDED_NOONE_JOINED
EVERYONE_LEFT = SubCode.TIMEOUT_EXCEEDED_EVERYONE_LEFT
NOT_RECORDING = SubCode.TIMEOUT_EXCEEDED_IN_CALL_NOT_RECORDING
RECORDING = SubCode.TIMEOUT_EXCEEDED_IN_CALL_RECORDING
DENIED = SubCode.TIMEOUT_EXCEEDED_RECORDING_PERMISSION_DENIED
SILENCE = SubCode.TIMEOUT_EXCEEDED_SILENCE_DETECTED
BOTS_EVENTS = SubCode.TIMEOUT_EXCEEDED_ONLY_BOTS_DETECTED_USING_PARTICIPANT_EVENTS
BOTS_NAMES = SubCode.TIMEOUT_EXCEEDED_ONLY_BOTS_DETECTED_USING_PARTICIPANT_NAMES

OFF = AutoLeaveConfig(
    waiting_room_timeout=None,
    noone_joined_timeout=None,
    everyone_left_timeout=None,
    in_call_not_recording_timeout=None,
    in_call_recording_timeout=None,
    recording_permission_denied_timeout=None,
    silence_detection=None,
    bots_by_events=None,
    bots_by_names=None,
)


def rules(**only: object) -> AutoLeave:
    """Every rule off except the ones given: one rule at a time, no interference."""
    fields = {name: getattr(OFF, name) for name in OFF.__dataclass_fields__}
    fields.update(only)
    return AutoLeave(AutoLeaveConfig(**fields))  # type: ignore[arg-type]


def in_call(a: AutoLeave, at: float = 100.0) -> AutoLeave:
    a.joining_started(at - 5)
    a.joined_call(at)
    return a


def sub_codes(a: AutoLeave) -> dict[str, float]:
    return {d.sub_code: d.when for d in a.deadlines()}


# -- configuration --------------------------------------------------------------------------------


def test_defaults_match_recall_and_the_stored_default_config() -> None:
    stored = default_config()["automatic_leave"]
    assert AutoLeaveConfig.from_config(stored) == AutoLeaveConfig()
    assert AutoLeaveConfig.from_config(None) == AutoLeaveConfig()
    c = AutoLeaveConfig()
    assert (c.waiting_room_timeout, c.noone_joined_timeout, c.everyone_left_timeout) == (1200, 1200, 2)
    assert c.in_call_not_recording_timeout == 3600 and c.in_call_recording_timeout is None
    assert c.recording_permission_denied_timeout == 30
    assert c.silence_detection == Heuristic(3600, 1200)
    assert c.bots_by_events == Heuristic(600, 1200) and c.bots_by_names is None


def test_config_forms() -> None:
    c = AutoLeaveConfig.from_config(
        {
            "everyone_left_timeout": 7,  # the older integer form
            "in_call_recording_timeout": 900,
            "silence_detection": {"timeout": 60},
            "bot_detection": {
                "using_participant_events": None,
                "using_participant_names": {"timeout": 30, "activate_after": 5, "matches": ["Bot", "NoteTaker"]},
            },
        }
    )
    assert (c.everyone_left_timeout, c.everyone_left_activate_after) == (7, None)
    assert c.in_call_recording_timeout == 900
    assert c.silence_detection == Heuristic(60, 1200)
    assert c.bots_by_events is None
    assert c.bots_by_names == Heuristic(30, 5) and c.bot_name_matches == ("bot", "notetaker")
    obj = AutoLeaveConfig.from_config({"everyone_left_timeout": {"timeout": 3, "activate_after": 60}})
    assert (obj.everyone_left_timeout, obj.everyone_left_activate_after) == (3, 60)
    # A names heuristic without anything to match can never fire.
    assert AutoLeaveConfig.from_config(
        {"bot_detection": {"using_participant_names": {"timeout": 30, "activate_after": 5, "matches": []}}}
    ).bots_by_names is None


# -- waiting room ------------------------------------------------------------------------------------


def test_waiting_room_counts_from_entering_it() -> None:
    a = rules(waiting_room_timeout=30)
    assert a.next_deadline() is None
    a.joining_started(10)
    assert a.next_deadline() == Deadline(40, WAITING_ROOM)  # not let in at all yet
    a.entered_waiting_room(12)
    assert a.next_deadline() == Deadline(42, WAITING_ROOM)
    assert a.due(41.9) is None and a.due(42) == WAITING_ROOM
    a.joined_call(20)
    assert a.next_deadline() is None


# -- no one joined / everyone left -------------------------------------------------------------------------


def test_noone_joined_from_joining_the_call() -> None:
    a = in_call(rules(noone_joined_timeout=60), at=100)
    assert a.next_deadline() == Deadline(160, NOONE)
    a.participant_joined(130, "1", "alice")
    assert a.next_deadline() is None
    a.participant_left(140, "1")
    assert NOONE not in sub_codes(a)  # someone was there: never again


def test_participants_before_admission_do_not_count_but_those_present_at_admission_do() -> None:
    a = rules(noone_joined_timeout=60)
    a.joining_started(0)
    a.participant_joined(1, "1", "alice")  # ignored: the bot is not in the call
    a.joined_call(5)
    assert a.next_deadline() == Deadline(65, NOONE)
    a.participant_joined(5, "1", "alice")  # reported at admission
    assert a.next_deadline() is None


def test_everyone_left_after_the_last_one_left() -> None:
    a = in_call(rules(everyone_left_timeout=2), at=0)
    assert a.next_deadline() is None  # nobody was ever here: that is noone_joined's business
    a.participant_joined(1, "1", "alice")
    a.participant_joined(2, "2", "bob")
    a.participant_left(10, "1")
    assert a.next_deadline() is None
    a.participant_left(20, "2")
    assert a.next_deadline() == Deadline(22, EVERYONE_LEFT)
    a.participant_joined(21, "3", "carol")
    assert a.next_deadline() is None


def test_everyone_left_counts_platform_bots_as_participants() -> None:
    a = in_call(rules(everyone_left_timeout=2), at=0)
    a.participant_joined(1, "1", "alice")
    a.participant_joined(1, "9", "otter", is_bot=True)
    a.participant_left(5, "1")
    assert a.next_deadline() is None
    a.participant_left(6, "9")
    assert a.next_deadline() == Deadline(8, EVERYONE_LEFT)


def test_everyone_left_activate_after_counts_from_recording_start_and_ignores_pauses() -> None:
    a = in_call(rules(everyone_left_timeout=2, everyone_left_activate_after=60), at=0)
    a.participant_joined(1, "1", "alice")
    a.participant_left(5, "1")
    assert a.next_deadline() is None  # never recorded: not active
    a.recording_started(10)
    assert a.next_deadline() == Deadline(72, EVERYONE_LEFT)  # active from 10 + 60
    a.recording_stopped(20)  # paused: this waiter stays active (Recall)
    assert a.next_deadline() == Deadline(72, EVERYONE_LEFT)
    b = in_call(rules(everyone_left_timeout=2, everyone_left_activate_after=60), at=0)
    b.recording_started(0)
    b.participant_joined(1, "1", "alice")
    b.participant_left(100, "1")
    assert b.next_deadline() == Deadline(102, EVERYONE_LEFT)


# -- recording -------------------------------------------------------------------------------------


def test_in_call_not_recording_is_a_continuous_period() -> None:
    a = in_call(rules(in_call_not_recording_timeout=100), at=0)
    assert a.next_deadline() == Deadline(100, NOT_RECORDING)
    a.recording_started(50)
    assert a.next_deadline() is None
    a.recording_stopped(80)  # a new period starts, the earlier one does not add up
    assert a.next_deadline() == Deadline(180, NOT_RECORDING)


def test_in_call_recording_sums_recorded_time_over_pauses() -> None:
    a = in_call(rules(in_call_recording_timeout=100), at=0)
    assert a.next_deadline() is None
    a.recording_started(10)
    assert a.next_deadline() == Deadline(110, RECORDING)
    a.recording_stopped(40)  # 30 s recorded
    assert a.next_deadline() is None
    a.recording_started(100)
    assert a.next_deadline() == Deadline(170, RECORDING)


def test_permission_denied_from_the_denial() -> None:
    a = in_call(rules(recording_permission_denied_timeout=30), at=0)
    assert a.next_deadline() is None
    a.permission_denied(5)
    assert a.next_deadline() == Deadline(35, DENIED)
    a.permission_granted(10)
    assert a.next_deadline() is None
    a.permission_denied(12)
    a.recording_started(13)  # recording after all: nothing to leave for
    assert a.next_deadline() is None


# -- silence ------------------------------------------------------------------------------------------


def test_silence_only_after_activation_in_recording_time() -> None:
    a = in_call(rules(silence_detection=Heuristic(timeout=60, activate_after=100)), at=0)
    a.participant_joined(0, "1", "alice")
    assert a.next_deadline() is None  # nothing recorded yet
    a.recording_started(10)
    assert a.next_deadline() == Deadline(170, SILENCE)  # 10 + 100 activation + 60 silence
    a.speech(150, "1", True)
    assert a.next_deadline() is None  # someone is speaking
    a.speech(155, "1", False)
    assert a.next_deadline() == Deadline(215, SILENCE)


def test_silence_is_frozen_while_recording_is_paused() -> None:
    a = in_call(rules(silence_detection=Heuristic(timeout=60, activate_after=10)), at=0)
    a.recording_started(0)
    assert a.next_deadline() == Deadline(70, SILENCE)
    a.recording_stopped(40)  # 40 s recorded
    assert a.next_deadline() is None
    a.recording_started(1000)  # 30 s of silence still to go
    assert a.next_deadline() == Deadline(1030, SILENCE)


def test_a_speaker_who_leaves_stops_speaking() -> None:
    a = in_call(rules(silence_detection=Heuristic(timeout=60, activate_after=1)), at=0)
    a.recording_started(0)
    a.participant_joined(0, "1", "alice")
    a.speech(5, "1", True)
    assert a.next_deadline() is None
    a.participant_left(10, "1")
    assert a.next_deadline() == Deadline(70, SILENCE)


def test_speech_off_for_someone_not_speaking_changes_nothing() -> None:
    a = in_call(rules(silence_detection=Heuristic(timeout=60, activate_after=1)), at=0)
    a.recording_started(0)
    a.participant_joined(0, "1", "alice")
    a.speech(30, "1", False)
    assert a.next_deadline() == Deadline(61, SILENCE)


# -- bot detection ----------------------------------------------------------------------------------------


def test_bots_by_events_silent_participants_are_bots_until_they_speak() -> None:
    a = in_call(rules(bots_by_events=Heuristic(timeout=600, activate_after=1200)), at=0)
    a.recording_started(0)
    a.participant_joined(1, "1", "alice")
    assert a.next_deadline() == Deadline(1800, BOTS_EVENTS)  # activation 1200 + 600
    a.speech(100, "1", True)  # a person after all
    assert a.next_deadline() is None
    a.participant_joined(2000, "2", "silent-bob")
    assert a.next_deadline() is None  # alice is still there and she is a person
    a.participant_left(2100, "1")
    assert a.next_deadline() == Deadline(2700, BOTS_EVENTS)  # only silent bob left at 2100
    a.activity(2200, "2")  # bob shares his screen
    assert a.next_deadline() is None


def test_bots_by_events_platform_flag_and_empty_call() -> None:
    a = in_call(rules(bots_by_events=Heuristic(timeout=10, activate_after=5)), at=0)
    a.recording_started(0)
    assert a.next_deadline() is None  # nobody at all is not "only bots"
    a.participant_joined(0, "9", "otter", is_bot=True)
    a.speech(1, "9", True)  # a bot that talks is still flagged a bot by the platform
    assert a.next_deadline() == Deadline(15, BOTS_EVENTS)


def test_bots_by_names_case_insensitive() -> None:
    a = in_call(
        rules(bots_by_names=Heuristic(timeout=30, activate_after=10), bot_name_matches=("notetaker",)),
        at=0,
    )
    a.recording_started(0)
    a.participant_joined(1, "1", "Acme NoteTaker")
    assert a.next_deadline() == Deadline(40, BOTS_NAMES)
    a.participant_joined(20, "2", "Alice")
    assert a.next_deadline() is None
    a.participant_renamed(25, "2", "Alice's notetaker")
    assert a.next_deadline() == Deadline(55, BOTS_NAMES)


def test_bot_detection_frozen_while_paused() -> None:
    a = in_call(rules(bots_by_events=Heuristic(timeout=10, activate_after=5)), at=0)
    a.participant_joined(0, "1", "alice")
    a.recording_started(100)
    assert a.next_deadline() == Deadline(115, BOTS_EVENTS)
    a.recording_stopped(110)
    assert a.next_deadline() is None
    a.recording_started(500)
    assert a.next_deadline() == Deadline(505, BOTS_EVENTS)


# -- together -----------------------------------------------------------------------------------------------


def test_earliest_deadline_wins_and_ties_follow_rule_order() -> None:
    a = in_call(AutoLeave(), at=0)  # Recall's defaults
    assert a.next_deadline() == Deadline(1200, NOONE)
    assert sub_codes(a) == {NOONE: 1200, NOT_RECORDING: 3600}
    tie = in_call(rules(noone_joined_timeout=50, in_call_not_recording_timeout=50), at=0)
    assert tie.next_deadline() == Deadline(50, NOONE)


def test_defaults_over_a_typical_meeting() -> None:
    a = in_call(AutoLeave(), at=0)
    a.participant_joined(0, "1", "alice")
    a.recording_started(0)
    a.speech(10, "1", True)
    a.speech(20, "1", False)
    # Silence: 1200 s activation, then an hour; bot detection: alice spoke, so none.
    assert sub_codes(a) == {SILENCE: 4800}
    a.participant_left(30, "1")
    assert a.next_deadline() == Deadline(32, EVERYONE_LEFT)


def test_after_leaving_nothing_fires_and_late_facts_are_ignored() -> None:
    a = in_call(AutoLeave(), at=0)
    a.recording_started(0)
    a.left(10)
    assert a.next_deadline() is None
    a.participant_joined(11, "1", "alice")
    a.recording_started(12)
    a.joined_call(13)
    assert a.next_deadline() is None and not a.recording


@pytest.mark.parametrize("late", [0.0, 1e6])
def test_a_deadline_in_the_past_is_due_at_once(late: float) -> None:
    a = in_call(rules(noone_joined_timeout=30), at=0)
    assert a.due(30 + late) == NOONE
