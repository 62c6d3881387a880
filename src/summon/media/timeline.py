"""Recording time and the JSON artifacts that describe a meeting (SPEC §9), as pure code.

A recording is made of *spans*: it starts, may be paused and resumed, and stops. Recall cuts
paused intervals out of the media, so a file's position ``x`` seconds means "``x`` seconds of
recording", not "``x`` seconds after the start". Every artifact that points into the media —
participant events, the speaker timeline, transcript words — must use the same position, so
:class:`RecordingSpans` is the one place that maps an instant of the clock's monotonic time to a
position in the recording (``relative``): instants before the first start are negative (Recall's
speaker timeline does this too), instants inside a pause map to the position where the pause
cut the media, instants after the stop to the end.

:class:`Timeline` collects what participants did (join, leave, update, speech, webcam,
screen-share, chat) and renders Recall's download shapes (docs.recall.ai, "Download Schemas"):

- participant events: ``[{"id", "action", "participant", "timestamp": {"absolute",
  "relative"}, "data"}]`` (``data`` is ``{"text", "to"}`` for chat, else ``null``);
- speaker timeline: ``[{"participant", "start_timestamp", "end_timestamp"}]`` from speech on/off;
- participants: ``[{"id", "name", "is_host", "platform", "extra_data", "email"}]``;

and :func:`meeting_metadata` the ``meeting_metadata`` artifact's data. Nothing here reads a
clock or touches a file: times are given by the caller.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from summon.abc import Participant
from summon.clock import isoformat_z

__all__ = [
    "ACTIONS",
    "ParticipantEvent",
    "RecordingSpans",
    "Stamper",
    "Timeline",
    "meeting_metadata",
    "participant_json",
]

#: The actions of Recall's participant events, in the names the download schema uses.
ACTIONS = frozenset(
    {
        "join",
        "leave",
        "update",
        "speech_on",
        "speech_off",
        "webcam_on",
        "webcam_off",
        "screenshare_on",
        "screenshare_off",
        "chat_message",
    }
)


def participant_json(p: Participant) -> dict[str, Any]:
    """Recall's participant object. Numeric ids are rendered as numbers (Recall's ids are
    integers); platforms with other ids keep their strings."""
    pid: int | str = int(p.id) if p.id.isdecimal() and str(int(p.id)) == p.id else p.id
    return {
        "id": pid,
        "name": p.name,
        "is_host": p.is_host,
        "platform": p.platform,
        "extra_data": {},
        "email": p.email,
    }


class RecordingSpans:
    """The recorded intervals of one recording, on the clock's monotonic time.

    ``start`` → (``pause`` → ``resume``)* → ``stop``. Calls out of order raise ``ValueError``
    (pausing a paused recording, resuming a running one, anything after ``stop``); instants must
    not go backwards. Not thread-safe: one owner mutates it; others may read a copy.
    """

    def __init__(self, start: float) -> None:
        self.start = start
        self._spans: list[list[float | None]] = [[start, None]]  # [begin, end]
        self._stopped = False

    def copy(self) -> RecordingSpans:
        other = RecordingSpans(self.start)
        other._spans = [list(s) for s in self._spans]
        other._stopped = self._stopped
        return other

    @property
    def running(self) -> bool:
        """True while recording (not paused, not stopped)."""
        return self._spans[-1][1] is None

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def end(self) -> float | None:
        """The instant recording stopped, or None while it goes on."""
        return self._spans[-1][1] if self._stopped else None

    def pause(self, at: float) -> None:
        if self._stopped or not self.running:
            raise ValueError("only a running recording can be paused")
        self._close(at)

    def resume(self, at: float) -> None:
        if self._stopped or self.running:
            raise ValueError("only a paused recording can be resumed")
        last_end = self._spans[-1][1]
        assert last_end is not None
        self._spans.append([max(at, last_end), None])

    def stop(self, at: float) -> None:
        """Stop for good; a paused recording stops at the instant it was paused."""
        if self._stopped:
            raise ValueError("the recording already stopped")
        if self.running:
            self._close(at)
        self._stopped = True

    def _close(self, at: float) -> None:
        begin = self._spans[-1][0]
        assert begin is not None
        self._spans[-1][1] = max(at, begin)

    def recording(self, at: float) -> bool:
        """True if ``at`` falls inside a recorded span (whose end is excluded)."""
        for begin, end in self._spans:
            assert begin is not None
            if begin <= at and (end is None or at < end):
                return True
        return False

    def relative(self, at: float) -> float:
        """The recording position (seconds of recorded media) of instant ``at``: negative
        before the start, frozen during pauses and after the stop."""
        if at < self.start:
            return at - self.start
        position = 0.0
        for begin, end in self._spans:
            assert begin is not None
            if at < begin:
                return position
            if end is None or at < end:
                return position + (at - begin)
            position += end - begin
        return position

    def duration(self, now: float) -> float:
        """Seconds recorded up to ``now`` (the whole recording once stopped)."""
        return max(0.0, self.relative(now))


@dataclass(frozen=True, slots=True)
class Stamper:
    """Renders Recall's ``{"absolute", "relative"}`` timestamps: ``relative`` from
    :class:`RecordingSpans`, ``absolute`` from the wall clock (``wall_offset`` = wall epoch
    seconds minus monotonic seconds, taken once when the recording started)."""

    spans: RecordingSpans
    wall_offset: float

    def __call__(self, at: float, wall: float | None = None) -> dict[str, Any]:
        """The timestamp of monotonic instant ``at``; ``wall`` (epoch seconds) when known
        exactly, else derived from ``at``."""
        epoch = self.wall_offset + at if wall is None else wall
        return {
            "absolute": isoformat_z(datetime.fromtimestamp(epoch, UTC)),
            "relative": round(self.spans.relative(at), 6),
        }


@dataclass(frozen=True, slots=True)
class ParticipantEvent:
    """One thing a participant did: ``action`` is one of :data:`ACTIONS`, ``at`` the monotonic
    instant, ``wall`` the same instant as UTC epoch seconds."""

    action: str
    participant: Participant
    at: float
    wall: float
    data: Mapping[str, Any] | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


class Timeline:
    """The participant events of one bot's stay, in the order they happened.

    :meth:`record` is cheap (an append); the renderers build the download artifacts at the
    end. Memory grows with the number of events (a few hundred bytes each), not with time.
    """

    def __init__(self) -> None:
        self._events: list[ParticipantEvent] = []

    def __len__(self) -> int:
        return len(self._events)

    def record(
        self,
        action: str,
        participant: Participant,
        at: float,
        wall: float,
        data: Mapping[str, Any] | None = None,
    ) -> ParticipantEvent:
        """Add an event. ``action`` may also be given as the real-time event name
        (``participant_events.speech_on``). Raises ``ValueError`` for an unknown action."""
        action = action.removeprefix("participant_events.")
        if action not in ACTIONS:
            raise ValueError(f"unknown participant action {action!r}")
        event = ParticipantEvent(action, participant, at, wall, dict(data) if data else None)
        self._events.append(event)
        return event

    @property
    def events(self) -> list[ParticipantEvent]:
        return list(self._events)

    def participant_events(self, stamp: Stamper) -> list[dict[str, Any]]:
        """Recall's participant-events download: every event, chat ``data`` as
        ``{"text", "to"}`` with ``to`` ``"everyone"`` or ``"only_bot"`` (a private message to
        the bot), ``null`` for the other actions."""
        return [
            {
                "id": e.id,
                "action": e.action,
                "participant": participant_json(e.participant),
                "timestamp": stamp(e.at, e.wall),
                "data": _event_data(e),
            }
            for e in self._events
        ]

    def speaker_timeline(self, stamp: Stamper, end: float | None = None) -> list[dict[str, Any]]:
        """Recall's speaker-timeline download, ordered by start: one entry per ``speech_on``,
        ending at that participant's next ``speech_off`` (or their ``leave``). A turn still open
        at the end ends at ``end`` (monotonic; e.g. the recording's stop), or has a ``null``
        end when ``end`` is None."""
        open_turns: dict[str, dict[str, Any]] = {}
        turns: list[dict[str, Any]] = []
        for e in self._events:
            pid = e.participant.id
            if e.action == "speech_on":
                if pid in open_turns:  # two "on" in a row: the first turn ends here
                    open_turns.pop(pid)["end_timestamp"] = stamp(e.at, e.wall)
                turn = {
                    "participant": participant_json(e.participant),
                    "start_timestamp": stamp(e.at, e.wall),
                    "end_timestamp": None,
                }
                open_turns[pid] = turn
                turns.append(turn)
            elif e.action in ("speech_off", "leave") and pid in open_turns:
                open_turns.pop(pid)["end_timestamp"] = stamp(e.at, e.wall)
        if end is not None:
            for turn in open_turns.values():
                turn["end_timestamp"] = stamp(end)
        return turns

    def participants(self) -> list[dict[str, Any]]:
        """Recall's participants download: everyone seen, once, in the order they first
        appeared, with their latest details (name changes)."""
        latest: dict[str, Participant] = {}
        for e in self._events:
            latest[e.participant.id] = e.participant  # dicts keep first-insertion order
        return [participant_json(p) for p in latest.values()]


def _event_data(e: ParticipantEvent) -> dict[str, Any] | None:
    if e.action != "chat_message" or e.data is None:
        return None
    to = e.data.get("to")
    return {"text": e.data.get("text"), "to": "everyone" if to == "everyone" else "only_bot"}


def meeting_metadata(title: str | None, *, zoom_meeting_uuid: str | None = None) -> dict[str, Any]:
    """The ``meeting_metadata`` artifact's ``data`` (Recall: ``{"title", "zoom"}``); ``zoom``
    is ``{"meeting_uuid"}`` only for Zoom meetings, else ``null``."""
    return {
        "title": title,
        "zoom": {"meeting_uuid": zoom_meeting_uuid} if zoom_meeting_uuid is not None else None,
    }
