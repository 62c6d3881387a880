from __future__ import annotations

import pytest

from summon.domain.lifecycle import (
    FINISHED,
    TRANSITIONS,
    IllegalTransition,
    Status,
    SubCode,
    check_transition,
    initial_status,
)

S = Status

HAPPY_SCHEDULED = [
    S.SCHEDULED, S.STAGED, S.JOINING_CALL, S.IN_WAITING_ROOM, S.IN_CALL_NOT_RECORDING,
    S.IN_CALL_RECORDING, S.CALL_ENDED, S.RECORDING_DONE, S.DONE, S.MEDIA_EXPIRED,
]


def test_every_status_has_a_row() -> None:
    assert set(TRANSITIONS) == set(Status)


def test_happy_paths_are_legal() -> None:
    for current, new in zip(HAPPY_SCHEDULED, HAPPY_SCHEDULED[1:], strict=False):
        assert check_transition(current, new) is new
    for path in ([S.READY, S.JOINING_CALL], [S.READY, S.STAGED, S.JOINING_CALL]):
        for current, new in zip(path, path[1:], strict=False):
            check_transition(current, new)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.SCHEDULED, S.IN_CALL_RECORDING),
        (S.DONE, S.JOINING_CALL),
        (S.FATAL, S.DONE),
        (S.MEDIA_EXPIRED, S.DONE),
        (S.CALL_ENDED, S.IN_CALL_RECORDING),
        (S.STAGED, S.SCHEDULED),
        (S.IN_CALL_RECORDING, S.IN_CALL_RECORDING),
        (S.READY, S.SCHEDULED),
    ],
)
def test_illegal_transitions_are_refused(current: Status, new: Status) -> None:
    with pytest.raises(IllegalTransition) as info:
        check_transition(current, new)
    assert current.value in str(info.value) and new.value in str(info.value)


def test_no_way_back_from_finished() -> None:
    for status in FINISHED:
        for new in TRANSITIONS[status]:
            assert new in FINISHED


def test_every_non_terminal_status_can_fail() -> None:
    for status, targets in TRANSITIONS.items():
        if status not in FINISHED:
            assert S.FATAL in targets, status


def test_sub_codes_belong_to_their_status() -> None:
    check_transition(S.IN_CALL_RECORDING, S.CALL_ENDED, SubCode.TIMEOUT_EXCEEDED_EVERYONE_LEFT)
    check_transition(S.SCHEDULED, S.FATAL, SubCode.JOIN_AT_MISSED)
    check_transition(S.SCHEDULED, S.DONE, SubCode.BOT_REMOVED_BEFORE_JOIN)
    check_transition(S.JOINING_CALL, S.FATAL, "some_driver_specific_reason")
    with pytest.raises(IllegalTransition):
        check_transition(S.IN_CALL_RECORDING, S.FATAL, SubCode.BOT_RECEIVED_LEAVE_CALL)
    with pytest.raises(IllegalTransition):
        check_transition(S.SCHEDULED, S.FATAL, "Not A Sub Code")


def test_unknown_statuses_are_refused() -> None:
    with pytest.raises(IllegalTransition):
        check_transition("scheduled", "teleported")
    with pytest.raises(IllegalTransition):
        check_transition("nowhere", "done")


def test_initial_status() -> None:
    assert initial_status(True) is S.SCHEDULED
    assert initial_status(False) is S.READY
