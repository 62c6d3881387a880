"""Automatic leave: when a bot leaves a meeting by itself (SPEC §7), as pure rules.

:class:`AutoLeave` is fed timestamped facts about one bot's meeting — times are seconds of a
monotonic clock, any origin — and answers :meth:`AutoLeave.next_deadline`: the instant at which
the bot must leave if nothing else happens, and the ``call_ended`` sub-code to report then. The
caller (the bot session) sleeps until that instant, re-asking after every new fact; no rule here
reads a clock, sleeps or does I/O, so every rule is tested with plain numbers.

The rules follow Recall's ``automatic_leave`` settings (descriptions in
``reference/recall_openapi.json``, ``components.schemas.AutomaticLeave*``). Where Recall's text
leaves room, the choice made is stated here:

``waiting_room_timeout`` → ``timeout_exceeded_waiting_room``
    Counted from entering the waiting room until being let in. A bot that is still joining and
    has not been told about a waiting room is also "not let in": the same timeout then runs from
    the start of joining, so no bot can hang in ``joining_call`` for ever.
``noone_joined_timeout`` → ``timeout_exceeded_noone_joined``
    From entering the call, while no other participant has been in the call (participants
    already present when the bot is admitted count). Once someone was there it never fires.
``everyone_left_timeout`` ``{timeout, activate_after}`` → ``timeout_exceeded_everyone_left``
    After other participants were present and all of them left: ``timeout`` seconds after the
    last one left. With ``activate_after`` it fires no earlier than ``activate_after`` seconds
    after recording first started (and not at all if recording never started). Per Recall it
    stays active while recording is paused: it is measured in wall (monotonic) time.
``in_call_not_recording_timeout`` → ``timeout_exceeded_in_call_not_recording``
    A continuous period in the call without recording — before the first recording, and again
    after every stop or pause (Recall: "all periods when the bot is not recording").
``in_call_recording_timeout`` (``None`` = unlimited) → ``timeout_exceeded_in_call_recording``
    Total time spent recording, summed over pauses.
``recording_permission_denied_timeout`` → ``timeout_exceeded_recording_permission_denied``
    From the host's denial, unless permission is granted or recording starts meanwhile.
``silence_detection`` ``{timeout, activate_after}`` → ``timeout_exceeded_silence_detected``
    ``timeout`` seconds without anybody speaking, counted from the later of the last speech
    and the activation (``activate_after`` seconds of recording); never while someone speaks.
``bot_detection.using_participant_events`` → ``…_only_bots_detected_using_participant_events``
    A participant is a bot until they show audio (speech) or screen-share activity, or at once
    if the platform flags them ``is_bot``. Fires ``timeout`` seconds after the call came to hold
    only bots (at least one participant, all of them bots), but not before activation.
``bot_detection.using_participant_names`` → ``…_only_bots_detected_using_participant_names``
    The same with "bot" meaning: the name contains one of ``matches`` (case-insensitive).

Silence and bot detection are measured in *recording time* (seconds actually recorded since
the first start): they are inactive before recording starts and frozen while it is paused or
stopped — Recall's "other waiters are paused when recording is paused". The two timeouts that
are about not recording (``in_call_not_recording``, ``recording_permission_denied``), and
``waiting_room``/``noone_joined``/``everyone_left``, run in wall time whatever the recording does.

Everyone counts as a participant for ``noone_joined`` and ``everyone_left``, platform-flagged
bots included — Recall leaves other bots to the bot-detection rules.

When two deadlines fall on the same instant, the first in :data:`RULE_ORDER` wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

from summon.domain.lifecycle import SubCode

__all__ = [
    "RULE_ORDER",
    "AutoLeave",
    "AutoLeaveConfig",
    "Deadline",
    "Heuristic",
]

RULE_ORDER: tuple[str, ...] = (
    SubCode.TIMEOUT_EXCEEDED_WAITING_ROOM,
    SubCode.TIMEOUT_EXCEEDED_NOONE_JOINED,
    SubCode.TIMEOUT_EXCEEDED_EVERYONE_LEFT,
    SubCode.TIMEOUT_EXCEEDED_RECORDING_PERMISSION_DENIED,
    SubCode.TIMEOUT_EXCEEDED_IN_CALL_NOT_RECORDING,
    SubCode.TIMEOUT_EXCEEDED_IN_CALL_RECORDING,
    SubCode.TIMEOUT_EXCEEDED_SILENCE_DETECTED,
    SubCode.TIMEOUT_EXCEEDED_ONLY_BOTS_DETECTED_USING_PARTICIPANT_EVENTS,
    SubCode.TIMEOUT_EXCEEDED_ONLY_BOTS_DETECTED_USING_PARTICIPANT_NAMES,
)
"""Every sub-code this module produces, in tie-break order."""


class Deadline(NamedTuple):
    """When the bot must leave (monotonic seconds) and the ``call_ended`` sub-code to report."""

    when: float
    sub_code: str


@dataclass(frozen=True, slots=True)
class Heuristic:
    """A timeout that starts ``activate_after`` seconds into the recording."""

    timeout: float
    activate_after: float


@dataclass(frozen=True, slots=True)
class AutoLeaveConfig:
    """The ``automatic_leave`` settings, in seconds. ``None`` switches a rule off."""

    waiting_room_timeout: float | None = 1200
    noone_joined_timeout: float | None = 1200
    everyone_left_timeout: float | None = 2
    everyone_left_activate_after: float | None = None
    in_call_not_recording_timeout: float | None = 3600
    in_call_recording_timeout: float | None = None
    recording_permission_denied_timeout: float | None = 30
    silence_detection: Heuristic | None = Heuristic(3600, 1200)
    bots_by_events: Heuristic | None = Heuristic(600, 1200)
    bots_by_names: Heuristic | None = None
    bot_name_matches: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, automatic_leave: Mapping[str, Any] | None) -> AutoLeaveConfig:
        """Read the stored ``automatic_leave`` object (``default_config()`` shape).

        Lenient, because it reads what the API already validated: missing keys take Recall's
        defaults, ``everyone_left_timeout`` may be a bare number (older clients) or
        ``{timeout, activate_after}``, an explicit ``null`` turns the rule off.
        """
        raw = dict(automatic_leave or {})
        d = cls()

        def number(key: str, default: float | None) -> float | None:
            if key not in raw:
                return default
            value = raw[key]
            return None if value is None else float(value)

        def heuristic(value: Any, default: Heuristic | None) -> Heuristic | None:
            if value is None:
                return None
            if not isinstance(value, Mapping):
                return default
            base = default or Heuristic(0, 0)
            return Heuristic(
                float(value.get("timeout", base.timeout)),
                float(value.get("activate_after", base.activate_after)),
            )

        everyone_left: Any = raw.get("everyone_left_timeout", {})
        if everyone_left is None:
            el_timeout, el_activate = None, None
        elif isinstance(everyone_left, Mapping):
            el_timeout = float(everyone_left.get("timeout", d.everyone_left_timeout))
            activate = everyone_left.get("activate_after")
            el_activate = None if activate is None else float(activate)
        else:
            el_timeout, el_activate = float(everyone_left), None

        detection = raw.get("bot_detection", {})
        detection = detection if isinstance(detection, Mapping) else {}
        names = detection.get("using_participant_names")
        by_names = heuristic(names, None)
        matches = tuple(
            str(m).casefold() for m in (names or {}).get("matches", ()) if str(m)
        ) if isinstance(names, Mapping) else ()
        if not matches:
            by_names = None  # nothing can ever match: the rule could never fire

        return cls(
            waiting_room_timeout=number("waiting_room_timeout", d.waiting_room_timeout),
            noone_joined_timeout=number("noone_joined_timeout", d.noone_joined_timeout),
            everyone_left_timeout=el_timeout,
            everyone_left_activate_after=el_activate,
            in_call_not_recording_timeout=number(
                "in_call_not_recording_timeout", d.in_call_not_recording_timeout
            ),
            in_call_recording_timeout=number("in_call_recording_timeout", None),
            recording_permission_denied_timeout=number(
                "recording_permission_denied_timeout", d.recording_permission_denied_timeout
            ),
            silence_detection=heuristic(
                raw.get("silence_detection", {}), d.silence_detection
            ),
            bots_by_events=heuristic(
                detection.get("using_participant_events", {}), d.bots_by_events
            ),
            bots_by_names=by_names,
            bot_name_matches=matches,
        )


class _Phase(Enum):
    IDLE = "idle"  # not joining yet
    JOINING = "joining"
    WAITING_ROOM = "waiting_room"
    IN_CALL = "in_call"
    LEFT = "left"


@dataclass(slots=True)
class _Person:
    name: str
    is_bot: bool
    active: bool = False  # spoke or shared the screen at some point


@dataclass(slots=True)
class AutoLeave:
    """The automatic-leave state of one bot. Feed facts in time order; ask
    :meth:`next_deadline`. Facts that make no sense in the current phase (a participant before
    the bot is in the call, a second ``joined_call``) are ignored, never an error."""

    config: AutoLeaveConfig = field(default_factory=AutoLeaveConfig)

    _phase: _Phase = _Phase.IDLE
    _joining_since: float | None = None
    _waiting_since: float | None = None
    _in_call_since: float | None = None
    _present: dict[str, _Person] = field(default_factory=dict)
    _ever_joined: bool = False
    _empty_since: float | None = None
    _speaking: set[str] = field(default_factory=set)
    # Recording time ("R"): seconds recorded before the current segment, and where it began.
    _rec_total: float = 0.0
    _rec_since: float | None = None
    _first_rec_start: float | None = None
    _not_rec_since: float | None = None
    _denied_at: float | None = None
    _last_sound_r: float = 0.0
    _bots_by_events_since_r: float | None = None
    _bots_by_names_since_r: float | None = None

    # -- facts --------------------------------------------------------------------------------
    def joining_started(self, at: float) -> None:
        if self._phase is _Phase.IDLE:
            self._phase, self._joining_since = _Phase.JOINING, at

    def entered_waiting_room(self, at: float) -> None:
        if self._phase in (_Phase.IDLE, _Phase.JOINING):
            self._phase, self._waiting_since = _Phase.WAITING_ROOM, at

    def joined_call(self, at: float) -> None:
        """The bot is in the call (admitted)."""
        if self._phase in (_Phase.IDLE, _Phase.JOINING, _Phase.WAITING_ROOM):
            self._phase, self._in_call_since, self._not_rec_since = _Phase.IN_CALL, at, at

    def participant_joined(self, at: float, participant_id: str, name: str, is_bot: bool = False) -> None:
        if self._phase is not _Phase.IN_CALL:
            return
        known = self._present.get(participant_id)
        self._present[participant_id] = _Person(name, is_bot, known.active if known else False)
        self._ever_joined = True
        self._empty_since = None
        self._reassess_bots(at)

    def participant_left(self, at: float, participant_id: str) -> None:
        if self._phase is not _Phase.IN_CALL or participant_id not in self._present:
            return
        del self._present[participant_id]
        if participant_id in self._speaking:
            self.speech(at, participant_id, False)
        if not self._present:
            self._empty_since = at
        self._reassess_bots(at)

    def participant_renamed(self, at: float, participant_id: str, name: str) -> None:
        person = self._present.get(participant_id)
        if person is not None:
            person.name = name
            self._reassess_bots(at)

    def activity(self, at: float, participant_id: str) -> None:
        """Audio or screen-share activity: proof, for the events heuristic, of a person."""
        person = self._present.get(participant_id)
        if person is not None and not person.active:
            person.active = True
            self._reassess_bots(at)

    def speech(self, at: float, participant_id: str, speaking: bool) -> None:
        """Someone started or stopped speaking (``speaking=True`` also counts as activity)."""
        if self._phase is not _Phase.IN_CALL:
            return
        if speaking:
            if participant_id not in self._present:
                return
            self._speaking.add(participant_id)
            self.activity(at, participant_id)
        elif participant_id in self._speaking:
            self._speaking.discard(participant_id)
        else:
            return
        self._last_sound_r = self._rec_time(at)

    def recording_started(self, at: float) -> None:
        """Recording started or resumed."""
        if self._phase is not _Phase.IN_CALL or self._rec_since is not None:
            return
        self._rec_since = at
        if self._first_rec_start is None:
            self._first_rec_start = at
        self._not_rec_since = None
        self._denied_at = None

    def recording_stopped(self, at: float) -> None:
        """Recording paused or stopped (the rules treat both alike)."""
        if self._rec_since is None:
            return
        self._rec_total += at - self._rec_since
        self._rec_since = None
        if self._phase is _Phase.IN_CALL:
            self._not_rec_since = at

    def permission_denied(self, at: float) -> None:
        if self._phase is _Phase.IN_CALL and self._denied_at is None and self._rec_since is None:
            self._denied_at = at

    def permission_granted(self, at: float) -> None:
        self._denied_at = None

    def left(self, at: float) -> None:
        """The bot is out of the meeting: no deadline any more."""
        self.recording_stopped(at)
        self._phase = _Phase.LEFT

    # -- questions ----------------------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self._rec_since is not None

    def next_deadline(self) -> Deadline | None:
        """The earliest instant at which a rule fires, given the facts so far; ``None`` when no
        rule can fire without a new fact. The instant may be in the past (the caller is late):
        the bot must then leave at once."""
        best: Deadline | None = None
        for deadline in self.deadlines():
            if best is None or deadline.when < best.when:
                best = deadline
        return best

    def due(self, now: float) -> str | None:
        """The sub-code to leave with if a deadline has passed at ``now``."""
        deadline = self.next_deadline()
        return deadline.sub_code if deadline is not None and deadline.when <= now else None

    def deadlines(self) -> Iterable[Deadline]:
        """Every armed rule's deadline, in :data:`RULE_ORDER`."""
        c, phase = self.config, self._phase
        if phase in (_Phase.JOINING, _Phase.WAITING_ROOM) and c.waiting_room_timeout is not None:
            start = self._waiting_since if self._waiting_since is not None else self._joining_since
            assert start is not None
            yield Deadline(start + c.waiting_room_timeout, SubCode.TIMEOUT_EXCEEDED_WAITING_ROOM)
        if phase is not _Phase.IN_CALL:
            return
        assert self._in_call_since is not None
        if c.noone_joined_timeout is not None and not self._ever_joined:
            yield Deadline(
                self._in_call_since + c.noone_joined_timeout, SubCode.TIMEOUT_EXCEEDED_NOONE_JOINED
            )
        if c.everyone_left_timeout is not None and self._empty_since is not None:
            empty_from: float | None = self._empty_since
            if c.everyone_left_activate_after is not None:
                empty_from = (
                    None
                    if self._first_rec_start is None
                    else max(self._empty_since, self._first_rec_start + c.everyone_left_activate_after)
                )
            if empty_from is not None:
                yield Deadline(
                    empty_from + c.everyone_left_timeout, SubCode.TIMEOUT_EXCEEDED_EVERYONE_LEFT
                )
        if c.recording_permission_denied_timeout is not None and self._denied_at is not None:
            yield Deadline(
                self._denied_at + c.recording_permission_denied_timeout,
                SubCode.TIMEOUT_EXCEEDED_RECORDING_PERMISSION_DENIED,
            )
        if c.in_call_not_recording_timeout is not None and self._not_rec_since is not None:
            yield Deadline(
                self._not_rec_since + c.in_call_not_recording_timeout,
                SubCode.TIMEOUT_EXCEEDED_IN_CALL_NOT_RECORDING,
            )
        if self._rec_since is None:
            return  # every remaining rule counts recording time, which stands still now
        if c.in_call_recording_timeout is not None:
            yield Deadline(
                self._at_rec_time(c.in_call_recording_timeout),
                SubCode.TIMEOUT_EXCEEDED_IN_CALL_RECORDING,
            )
        if c.silence_detection is not None and not self._speaking:
            h = c.silence_detection
            yield Deadline(
                self._at_rec_time(max(h.activate_after, self._last_sound_r) + h.timeout),
                SubCode.TIMEOUT_EXCEEDED_SILENCE_DETECTED,
            )
        if c.bots_by_events is not None and self._bots_by_events_since_r is not None:
            h = c.bots_by_events
            yield Deadline(
                self._at_rec_time(max(h.activate_after, self._bots_by_events_since_r) + h.timeout),
                SubCode.TIMEOUT_EXCEEDED_ONLY_BOTS_DETECTED_USING_PARTICIPANT_EVENTS,
            )
        if c.bots_by_names is not None and self._bots_by_names_since_r is not None:
            h = c.bots_by_names
            yield Deadline(
                self._at_rec_time(max(h.activate_after, self._bots_by_names_since_r) + h.timeout),
                SubCode.TIMEOUT_EXCEEDED_ONLY_BOTS_DETECTED_USING_PARTICIPANT_NAMES,
            )

    # -- internals ------------------------------------------------------------------------------
    def _rec_time(self, at: float) -> float:
        """Seconds recorded up to ``at``."""
        running = at - self._rec_since if self._rec_since is not None else 0.0
        return self._rec_total + max(0.0, running)

    def _at_rec_time(self, r: float) -> float:
        """The instant at which recording time reaches ``r``, while recording."""
        assert self._rec_since is not None
        return self._rec_since + (r - self._rec_total)

    def _reassess_bots(self, at: float) -> None:
        # The "only bots" periods start when the call comes to hold only bots and end as soon as
        # a person is present; measured in recording time so that pauses freeze them.
        people = self._present.values()
        by_events = bool(self._present) and all(p.is_bot or not p.active for p in people)
        matches = self.config.bot_name_matches
        by_names = bool(self._present) and bool(matches) and all(
            any(m in p.name.casefold() for m in matches) for p in people
        )
        now_r = self._rec_time(at)
        if not by_events:
            self._bots_by_events_since_r = None
        elif self._bots_by_events_since_r is None:
            self._bots_by_events_since_r = now_r
        if not by_names:
            self._bots_by_names_since_r = None
        elif self._bots_by_names_since_r is None:
            self._bots_by_names_since_r = now_r
