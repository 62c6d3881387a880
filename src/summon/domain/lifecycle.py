"""The bot lifecycle: status codes, sub-codes and the one table of legal transitions.

Every status change in Summon goes through :func:`check_transition`. An illegal transition is a
bug somewhere else (a stale actor, a driver reporting nonsense); it is refused and logged, never
silently applied.

::

    scheduled ──► staged ──► joining_call ──► in_waiting_room ──► in_call_not_recording ⇄ in_call_recording
                     ▲            │                 │                      │                     │
     ready ──────────┘ (ad-hoc)   └──► fatal ◄──────┘                      └──────► call_ended ◄─┘
                                                                                  │
                                                                recording_done ──► done ──► media_expired
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Status(StrEnum):
    SCHEDULED = "scheduled"
    STAGED = "staged"
    READY = "ready"
    JOINING_CALL = "joining_call"
    IN_WAITING_ROOM = "in_waiting_room"
    IN_CALL_NOT_RECORDING = "in_call_not_recording"
    RECORDING_PERMISSION_ALLOWED = "recording_permission_allowed"
    RECORDING_PERMISSION_DENIED = "recording_permission_denied"
    IN_CALL_RECORDING = "in_call_recording"
    RECORDING_DONE = "recording_done"
    CALL_ENDED = "call_ended"
    DONE = "done"
    FATAL = "fatal"
    MEDIA_EXPIRED = "media_expired"


S = Status

_IN_CALL = (
    S.IN_CALL_NOT_RECORDING,
    S.RECORDING_PERMISSION_ALLOWED,
    S.RECORDING_PERMISSION_DENIED,
    S.IN_CALL_RECORDING,
)

#: current status → statuses it may move to. The only place transitions are decided.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.SCHEDULED: frozenset({S.STAGED, S.JOINING_CALL, S.DONE, S.FATAL}),
    S.READY: frozenset({S.STAGED, S.JOINING_CALL, S.DONE, S.FATAL}),
    S.STAGED: frozenset({S.JOINING_CALL, S.DONE, S.FATAL}),
    S.JOINING_CALL: frozenset({S.IN_WAITING_ROOM, *_IN_CALL, S.CALL_ENDED, S.FATAL}),
    S.IN_WAITING_ROOM: frozenset({*_IN_CALL, S.CALL_ENDED, S.FATAL}),
    S.IN_CALL_NOT_RECORDING: frozenset({*_IN_CALL, S.CALL_ENDED, S.FATAL} - {S.IN_CALL_NOT_RECORDING}),
    S.RECORDING_PERMISSION_ALLOWED: frozenset({*_IN_CALL, S.CALL_ENDED, S.FATAL} - {S.RECORDING_PERMISSION_ALLOWED}),
    S.RECORDING_PERMISSION_DENIED: frozenset({*_IN_CALL, S.CALL_ENDED, S.FATAL} - {S.RECORDING_PERMISSION_DENIED}),
    S.IN_CALL_RECORDING: frozenset({*_IN_CALL, S.CALL_ENDED, S.FATAL} - {S.IN_CALL_RECORDING}),
    S.CALL_ENDED: frozenset({S.RECORDING_DONE, S.DONE, S.FATAL}),
    S.RECORDING_DONE: frozenset({S.DONE, S.FATAL}),
    S.DONE: frozenset({S.MEDIA_EXPIRED}),
    S.FATAL: frozenset({S.MEDIA_EXPIRED}),
    S.MEDIA_EXPIRED: frozenset(),
}

#: A bot in one of these will never join or act again.
FINISHED: frozenset[Status] = frozenset({S.CALL_ENDED, S.RECORDING_DONE, S.DONE, S.FATAL, S.MEDIA_EXPIRED})
#: Not yet dispatched to a meeting: it may still be cancelled without leaving a call.
NOT_JOINED: frozenset[Status] = frozenset({S.SCHEDULED, S.READY, S.STAGED})
#: In the meeting (or trying to get in): commands such as chat reach the runtime.
IN_MEETING: frozenset[Status] = frozenset({S.JOINING_CALL, S.IN_WAITING_ROOM, *_IN_CALL})


class SubCode(StrEnum):
    """Why a status change happened. Drivers may report others; these are the ones Summon sets."""

    # call_ended
    CALL_ENDED_BY_HOST = "call_ended_by_host"
    CALL_ENDED_BY_PLATFORM_IDLE = "call_ended_by_platform_idle"
    BOT_KICKED_FROM_CALL = "bot_kicked_from_call"
    BOT_RECEIVED_LEAVE_CALL = "bot_received_leave_call"
    TIMEOUT_EXCEEDED_WAITING_ROOM = "timeout_exceeded_waiting_room"
    TIMEOUT_EXCEEDED_NOONE_JOINED = "timeout_exceeded_noone_joined"
    TIMEOUT_EXCEEDED_EVERYONE_LEFT = "timeout_exceeded_everyone_left"
    TIMEOUT_EXCEEDED_IN_CALL_NOT_RECORDING = "timeout_exceeded_in_call_not_recording"
    TIMEOUT_EXCEEDED_IN_CALL_RECORDING = "timeout_exceeded_in_call_recording"
    TIMEOUT_EXCEEDED_RECORDING_PERMISSION_DENIED = "timeout_exceeded_recording_permission_denied"
    TIMEOUT_EXCEEDED_SILENCE_DETECTED = "timeout_exceeded_silence_detected"
    TIMEOUT_EXCEEDED_ONLY_BOTS_DETECTED_USING_PARTICIPANT_EVENTS = (
        "timeout_exceeded_only_bots_detected_using_participant_events"
    )
    TIMEOUT_EXCEEDED_ONLY_BOTS_DETECTED_USING_PARTICIPANT_NAMES = (
        "timeout_exceeded_only_bots_detected_using_participant_names"
    )
    # fatal
    MEETING_NOT_FOUND = "meeting_not_found"
    MEETING_PASSWORD_INCORRECT = "meeting_password_incorrect"
    MEETING_FULL = "meeting_full"
    MEETING_NOT_STARTED = "meeting_not_started"
    BOT_REMOVED_FROM_WAITING_ROOM = "bot_removed_from_waiting_room"
    JOIN_AT_MISSED = "join_at_missed"
    BOT_PROCESS_CRASHED = "bot_process_crashed"
    HEARTBEAT_TIMEOUT = "heartbeat_timeout"
    PLATFORM_CONNECTION_ERROR = "platform_connection_error"
    PLATFORM_DRIVER_UNAVAILABLE = "platform_driver_unavailable"
    NO_BOT_SLOT_AVAILABLE = "no_bot_slot_available"
    # done
    BOT_REMOVED_BEFORE_JOIN = "bot_removed_before_join"


#: Sub-codes that only make sense with a given status. Others are allowed (drivers extend them).
SUB_CODE_STATUS: dict[str, Status] = {
    **{c.value: S.CALL_ENDED for c in SubCode if c.value.startswith(("timeout_exceeded", "call_ended_by"))},
    SubCode.BOT_KICKED_FROM_CALL: S.CALL_ENDED,
    SubCode.BOT_RECEIVED_LEAVE_CALL: S.CALL_ENDED,
    SubCode.JOIN_AT_MISSED: S.FATAL,
    SubCode.BOT_PROCESS_CRASHED: S.FATAL,
    SubCode.HEARTBEAT_TIMEOUT: S.FATAL,
    SubCode.PLATFORM_DRIVER_UNAVAILABLE: S.FATAL,
    SubCode.NO_BOT_SLOT_AVAILABLE: S.FATAL,
    SubCode.BOT_REMOVED_BEFORE_JOIN: S.DONE,
}

_SUB_CODE_SHAPE = re.compile(r"[a-z][a-z0-9_]{0,99}")


class IllegalTransition(Exception):
    """A status change the lifecycle table does not allow."""

    def __init__(self, current: str, new: str, sub_code: str | None = None) -> None:
        self.current, self.new, self.sub_code = current, new, sub_code
        extra = f" ({sub_code})" if sub_code else ""
        super().__init__(f"illegal bot status transition {current} → {new}{extra}")


@dataclass(frozen=True, slots=True)
class StatusChange:
    """One row of a bot's history. ``code`` is the status the bot moved to."""

    code: Status
    sub_code: str | None
    message: str | None
    created_at: datetime


def check_transition(current: Status | str, new: Status | str, sub_code: str | None = None) -> Status:
    """Return ``new`` as a :class:`Status` if the bot may move from ``current`` to it.

    Raises :class:`IllegalTransition` when the table forbids it, when a status is unknown, or
    when the sub-code is malformed or belongs to another status.
    """
    try:
        cur, nxt = Status(current), Status(new)
    except ValueError:
        raise IllegalTransition(str(current), str(new), sub_code) from None
    if nxt not in TRANSITIONS[cur]:
        raise IllegalTransition(cur, nxt, sub_code)
    if sub_code is not None:
        if not _SUB_CODE_SHAPE.fullmatch(sub_code):
            raise IllegalTransition(cur, nxt, sub_code)
        owner = SUB_CODE_STATUS.get(sub_code)
        if owner is not None and owner is not nxt:
            raise IllegalTransition(cur, nxt, sub_code)
    return nxt


def initial_status(scheduled: bool) -> Status:
    """The status a new bot starts in: ``scheduled`` far ahead, ``ready`` for ad-hoc bots."""
    return S.SCHEDULED if scheduled else S.READY
