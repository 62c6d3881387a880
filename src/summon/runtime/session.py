"""One bot's life inside a runtime process: from staged to done.

A :class:`BotSession` owns one bot's driver, its lifecycle and its automatic-leave timers. The
runtime process creates it when a bot is assigned, calls :meth:`~BotSession.stage` (driver
built and prepared: everything that can happen before ``join_at``), then
:meth:`~BotSession.run`, which waits for ``join_at`` on the process's shared
:class:`~summon.runtime.timing.JoinTimer`, joins, follows the meeting and returns when the bot
is finished. Commands from the API (leave, chat, media, recording control) arrive through
:meth:`~BotSession.command` at any time. Everything the world should know leaves through
:class:`SessionEvents`: status changes, real-time participant/transcript events, and
``finished`` once the slot is free.

Statuses the session reports, each checked with :func:`summon.domain.lifecycle.check_transition`
against the previous one (an illegal one is logged and not reported)::

    (staged) ─► joining_call ─► [in_waiting_room] ─► in_call_not_recording
                 ─► [recording_permission_allowed | recording_permission_denied] ⇄ in_call_recording
                 ─► call_ended(sub_code) ─► [recording_done] ─► done
    any of them ─► fatal(sub_code)        (staged) ─► done(bot_removed_before_join)

The session does not report ``staged`` itself: it takes over a bot that the store holds as
``scheduled``, ``ready`` or ``staged``, and every move it makes from there (``joining_call``,
``done``, ``fatal``) is legal from all three.

Recording follows ``recording_config.start_recording_on``: ``call_join`` (at admission),
``participant_join`` (Recall's default: when someone else is in the call), ``participant_speak``
(at the first speech), ``manual`` (only ``start_recording``). When the platform asks the host
for permission (``Driver.recording_permission_required``) nothing is recorded until it is
granted. There is one recording per bot; pausing or stopping and starting again continues it.
``recording_done`` is reported after ``call_ended`` only if something was recorded.

Real-time events (``SessionEvents.event``) carry the inner ``data`` object of Recall's
real-time payloads — ``{"participant", "timestamp", "data"}`` for ``participant_events.*`` and
``{"words", "participant"}`` for ``transcript.data``/``transcript.partial_data``,
``{"buffer", "timestamp"}`` for ``audio_mixed_raw.data`` (:mod:`summon.media.raw_audio`); the runtime
wraps them (``bot``, ``recording``, ``realtime_endpoint``) and routes them to the endpoints that
subscribed. ``relative`` timestamps count from the start of the recording, or from the bot's
admission while nothing has been recorded yet. Transcript words are relayed only while
recording (a transcript belongs to a recording); participant events whenever the bot is in the
call.

The recording itself (SPEC §9) exists when the runtime gives the bot a media directory
(``BotSpec.media_dir``): from the first start, :class:`~summon.media.timeline.RecordingSpans`
map instants to positions in the media (pauses and stops cut), a
:class:`~summon.media.recorder.Recorder` takes the decoded frames of drivers that deliver
media, a transcriber (``recording_config.transcript.provider``) the audio or the platform's
captions, and a :class:`~summon.media.timeline.Timeline` every participant event. When the bot
leaves, everything is closed and written next to the media (participant events, speaker
timeline, participants, transcript, meeting metadata, as Recall's downloads) and reported once
through ``SessionEvents.recording`` — before ``recording_done``. A driver without media gets a
silent audio file as long as the recording, written at the end. A recording problem never
fails the bot: it is logged and the recording is reported ``failed``.

Time: ``at`` values are UTC epoch seconds from the injected clock; automatic-leave deadlines
run on the clock's monotonic time, so a fake clock drives every timer in tests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson

from summon import drivers
from summon.abc import Clock, Driver, DriverError, Participant, Word
from summon.clock import isoformat_z
from summon.domain.autoleave import AutoLeave, AutoLeaveConfig
from summon.domain.lifecycle import (
    IllegalTransition,
    Status,
    SubCode,
    check_transition,
)
from summon.media.raw_audio import MixedAudioChunk, MixedAudioChunker, wants_mixed_audio
from summon.media.recorder import (
    JITTER_S,
    MediaFile,
    Recorder,
    RecorderOptions,
    RecordingFailed,
    RecordingFiles,
)
from summon.media.timeline import (
    RecordingSpans,
    Stamper,
    Timeline,
    meeting_metadata,
    participant_json,
)
from summon.media.transcriber import (
    Transcriber,
    provider_name,
    transcriber_for,
    transcript_artifact,
)
from summon.runtime.timing import JoinTimer

__all__ = [
    "JOIN_TIMEOUT_S",
    "LATE_NOTICE_S",
    "LEAVE_TIMEOUT_S",
    "BotSession",
    "BotSpec",
    "SessionCommandError",
    "SessionEvents",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A ``joining_call`` later than this after ``join_at`` says how late it is in its message.
LATE_NOTICE_S = 1.0
#: ``Driver.join()`` only starts joining; if it takes longer than this the platform is broken.
JOIN_TIMEOUT_S = 60.0
#: Longest wait for ``Driver.leave()``; the bot is reported gone afterwards regardless.
LEAVE_TIMEOUT_S = 30.0
#: Longest wait for the recording's files to be closed and written (a guard, not a rule).
RECORDING_CLOSE_TIMEOUT_S = 300.0

S = Status
IN_CALL: frozenset[Status] = frozenset(
    {
        S.IN_CALL_NOT_RECORDING,
        S.RECORDING_PERMISSION_ALLOWED,
        S.RECORDING_PERMISSION_DENIED,
        S.IN_CALL_RECORDING,
    }
)
_JOINING = frozenset({S.JOINING_CALL, S.IN_WAITING_ROOM})
_RECORDING_COMMANDS = frozenset(
    {"start_recording", "stop_recording", "pause_recording", "resume_recording"}
)
_MEDIA_COMMANDS = frozenset({"output_audio", "output_video"})
MAX_CHAT_MESSAGE = 4096


@dataclass(frozen=True, slots=True)
class BotSpec:
    """What a runtime needs to know to run one bot."""

    bot_id: str
    meeting_url: dict[str, Any]  # the parsed object (MeetingUrl.to_dict()), has "platform"
    bot_name: str
    config: dict[str, Any]  # the stored configuration (api.bot_config.default_config() shape)
    join_at: float | None  # UTC epoch seconds; None: join as soon as run() is called
    #: Where this bot's recording goes (``<media root>/<bot id>``); None: nothing is written.
    media_dir: str | None = None
    #: A CTranslate2 Whisper model directory for the local transcriber (None: the default).
    whisper_model: str | None = None


class SessionEvents(Protocol):
    """Where a session reports; implemented by the runtime process. Calls must not block (they
    run on the bot's event loop at the instant things happen) and should not raise."""

    def status(
        self, bot_id: str, code: str, sub_code: str | None, message: str | None, at: float
    ) -> None:
        """The bot moved to status ``code``; ``at`` is when (UTC epoch seconds)."""

    def event(self, bot_id: str, kind: str, data: dict[str, Any], at: float) -> None:
        """A real-time event: ``kind`` is ``participant_events.join|leave|update|speech_on|
        speech_off|webcam_on|webcam_off|screenshare_on|screenshare_off|chat_message``,
        ``transcript.data``, ``transcript.partial_data`` or ``audio_mixed_raw.data`` (only when
        a websocket endpoint asked for it, about every 100 ms while recording a driver's media);
        ``data`` is the inner ``data`` of Recall's real-time payload."""

    def recording(self, bot_id: str, report: dict[str, Any]) -> None:
        """The bot's recording is closed and its files written (reported once, before
        ``recording_done``): the :class:`~summon.domain.recordings.RecordingReport` fields."""

    def finished(self, bot_id: str) -> None:
        """The session is over (its terminal status was reported); the slot is free."""


class SessionCommandError(Exception):
    """A command that makes no sense in the bot's current state. ``code`` is machine-readable
    (``cannot_command_unstarted_bot``, ``cannot_command_completed_bot``, ``unknown_command``,
    ``invalid_command_arguments``, ``recording_not_permitted``, ``already_recording``,
    ``not_recording``, ``recording_not_paused``, or a driver's sub-code)."""

    def __init__(self, code: str, detail: str) -> None:
        self.code, self.detail = code, detail
        super().__init__(f"{code}: {detail}")


@dataclass(frozen=True, slots=True)
class _Ending:
    code: Status  # call_ended, fatal, or done (removed before joining)
    sub_code: str | None
    message: str | None
    leave: bool  # the bot may still be in the meeting: ask the driver to leave


class _DriverListener:
    """The session's :class:`~summon.abc.DriverEvents`, kept off BotSession's public surface."""

    def __init__(self, session: BotSession) -> None:
        self._s = session

    def waiting_room(self) -> None:
        self._s._on_waiting_room()

    def admitted(self) -> None:
        self._s._on_admitted()

    def participant_joined(self, p: Participant) -> None:
        self._s._on_participant(p, "join")

    def participant_left(self, p: Participant) -> None:
        self._s._on_participant(p, "leave")

    def participant_updated(self, p: Participant) -> None:
        self._s._on_participant(p, "update")

    def speech(self, p: Participant, speaking: bool) -> None:
        self._s._on_speech(p, speaking)

    def webcam(self, p: Participant, on: bool) -> None:
        self._s._on_media(p, "webcam", on)

    def screenshare(self, p: Participant, on: bool) -> None:
        self._s._on_media(p, "screenshare", on)

    def chat_message(self, p: Participant, text: str, to: str) -> None:
        self._s._on_chat(p, text, to)

    def transcript(self, p: Participant, words: list[Word], final: bool) -> None:
        self._s._on_transcript(p, words, final)

    def recording_permission(self, granted: bool) -> None:
        self._s._on_permission(granted)

    def meeting_ended(self, sub_code: str) -> None:
        self._s._end(S.CALL_ENDED, sub_code, None, leave=False)

    def failed(self, sub_code: str, message: str | None = None) -> None:
        self._s._end(S.FATAL, sub_code, message, leave=False)


class BotSession:
    """One bot in one runtime: see the module docstring for the whole contract.

    - :meth:`stage`, then :meth:`run` (which stages first if that was not done), each once.
    - Neither raises. A failure is reported as ``fatal`` (the driver's sub-code, or
      ``platform_driver_unavailable`` when no driver serves the platform, or
      ``platform_connection_error`` with the exception as message for anything unexpected)
      followed by ``finished``. Cancelling :meth:`run` (process shutdown) closes the driver
      and propagates the cancellation without reporting a status.
    - ``events.finished`` is called exactly once, after the last status.
    """

    def __init__(
        self,
        spec: BotSpec,
        events: SessionEvents,
        clock: Clock,
        timer: JoinTimer,
        driver_factory: Callable[[str], type[Driver]] = drivers.driver_for,
    ) -> None:
        self.spec = spec
        self._events = events
        self._clock = clock
        self._timer = timer
        self._driver_factory = driver_factory
        self._driver: Driver | None = None
        self._listener = _DriverListener(self)
        self._state: Status = S.STAGED
        self._staged = False
        self._started = False  # run() was called
        self._finished = False
        self._ending: _Ending | None = None
        self._wake = asyncio.Event()
        self._waiting_for_join_at: asyncio.Task[Any] | None = None
        self._removed_before_join = False
        self._actions: asyncio.Queue[tuple[str, Callable[[], Awaitable[None]]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

        config = spec.config or {}
        self._autoleave = AutoLeave(AutoLeaveConfig.from_config(config.get("automatic_leave")))
        recording_config = config.get("recording_config") or {}
        self._start_on: str = recording_config.get("start_recording_on") or "participant_join"
        self._participants: dict[str, Participant] = {}
        self._in_call_at: float | None = None  # monotonic
        self._rec_origin: float | None = None  # monotonic, first recording start
        self._recording = False
        self._recorded = False
        self._paused = False
        self._manual_stop = False  # stop_recording: no automatic restart
        self._start_armed = False  # the start_recording_on condition happened
        self._permission: bool | None = None
        self._media = _AutomaticMedia(config, clock)
        self._manual_video = False
        # The recording (see the module docstring); nothing of it exists before the first start.
        self._media_dir = Path(spec.media_dir) if spec.media_dir else None
        self._timeline = Timeline()
        self._spans: RecordingSpans | None = None
        self._span_log: list[tuple[str, float]] = []  # pauses and resumes, for a silent file
        self._wall_offset = 0.0
        self._recorder: Recorder | None = None
        self._mixed_chunker: MixedAudioChunker | None = None  # audio_mixed_raw.data, if asked
        self._transcriber: Transcriber | None = None
        self._recording_closed = False
        self._recording_problems: list[str] = []
        self._recorder_broken = False  # the driver has media but the recorder could not start

    # -- public surface -----------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """The last status reported (``staged`` before the first)."""
        return self._state.value

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def driver(self) -> Driver | None:
        """The driver, once :meth:`stage` built it (for inspection)."""
        return self._driver

    async def stage(self) -> None:
        """Build the driver and ``prepare()`` it. On failure report ``fatal`` and finish."""
        if self._staged or self._finished:
            return
        self._staged = True
        platform = str(self.spec.meeting_url.get("platform"))
        try:
            driver_class = self._driver_factory(platform)
        except LookupError as exc:
            self._fail_now(SubCode.PLATFORM_DRIVER_UNAVAILABLE, str(exc))
            return
        except Exception as exc:
            self._fail_now(SubCode.PLATFORM_DRIVER_UNAVAILABLE, repr(exc))
            return
        try:
            self._driver = driver_class(
                dict(self.spec.meeting_url),
                self.spec.bot_name,
                self.spec.config,
                self._listener,
                self._clock,
            )
            await self._driver.prepare()
            self._connect_media_sinks()
        except asyncio.CancelledError:
            await self._close_driver()
            raise
        except DriverError as exc:
            self._fail_now(exc.sub_code, exc.message)
        except Exception as exc:
            log.exception("bot %s: preparing the driver failed", self.spec.bot_id)
            self._fail_now(SubCode.PLATFORM_CONNECTION_ERROR, f"preparing the driver failed: {exc!r}")
        if self._finished:  # failed, or removed while preparing
            await self._close_driver()

    async def run(self) -> None:
        """Wait for ``join_at`` (never early), join, follow the meeting until the bot is out, report
        the end, release the driver, and call ``finished``. Returns when all that is done."""
        if self._started:
            return
        self._started = True
        try:
            await self.stage()
            if self._finished:
                return
            released = await self._wait_for_join_at()
            if released is None:  # removed before joining
                await self._conclude()
                return
            self._begin_joining(released)
            await self._join()
            # Bots released at the same instant share this loop: let them all start joining
            # before this one spends time on its own set-up (alarms, tasks).
            await asyncio.sleep(0)
            await self._attend()
            await self._conclude()
        except asyncio.CancelledError:
            await self._abandon()
            raise
        except Exception as exc:
            log.exception("bot %s: session failed", self.spec.bot_id)
            await self._crash(exc)

    async def command(self, name: str, args: Mapping[str, Any] | None = None) -> None:
        """Apply a command from the API. Returns once it is applied (``leave``: once the bot is
        leaving — :meth:`run` reports the end). Raises :class:`SessionCommandError` when the
        command makes no sense now; never changes anything then.

        ``leave``; ``send_chat_message`` ``{to="everyone", message}``; ``output_audio``
        ``{b64_data}`` (``None``/no data stops); ``output_video`` ``{b64_data}`` (likewise);
        ``start_recording``, ``stop_recording``, ``pause_recording``, ``resume_recording``.
        """
        args = args or {}
        if name == "leave":
            await self._leave_command()
            return
        known = _RECORDING_COMMANDS | _MEDIA_COMMANDS | {"send_chat_message"}
        if name not in known:
            raise SessionCommandError("unknown_command", f"unknown bot command {name!r}")
        self._require_in_call()
        if name == "send_chat_message":
            await self._send_chat(args)
        elif name in _MEDIA_COMMANDS:
            await self._output_media(name, args)
        else:
            self._recording_command(name)

    # -- joining ------------------------------------------------------------------------------------
    async def _wait_for_join_at(self) -> float | None:
        """The wall time at which joining may begin, or None if the bot was removed meanwhile.

        The timer is awaited in this task itself — not in a helper task — so the bot resumes in
        the very loop iteration in which the timer releases it. A leave command interrupts the
        wait by cancelling this task (and taking that cancellation back).
        """
        if self._removed_before_join:
            return None
        if self.spec.join_at is None:
            return self._wall()
        task = asyncio.current_task()
        self._waiting_for_join_at = task
        try:
            return await self._timer.wait_until(self.spec.join_at)
        except asyncio.CancelledError:
            if not self._removed_before_join or task is None or task.uncancel() > 0:
                raise  # someone else cancelled us too
            return None
        finally:
            self._waiting_for_join_at = None

    def _begin_joining(self, released: float) -> None:
        message = None
        if self.spec.join_at is not None:
            late = released - self.spec.join_at
            if late > LATE_NOTICE_S:
                message = f"joined {late:.1f} s after join_at"
        self._report(S.JOINING_CALL, at=released, message=message)
        self._autoleave.joining_started(self._mono())

    async def _join(self) -> None:
        """Call ``driver.join()`` right here, in the step that reported ``joining_call``: that
        report's time is when joining began, so joining must not wait for another task.

        A watchdog catches a driver whose ``join()`` never returns. It is armed one loop step
        later, and only if ``join()`` is still running then: at the join instant every
        microsecond spent per bot delays all the bots released after it. It runs on the event
        loop's own clock — a guard against broken drivers, not a product timer."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        timed_out = joined = False
        handle: asyncio.TimerHandle | None = None

        def watchdog() -> None:
            nonlocal timed_out
            timed_out = True
            if task is not None:
                task.cancel()

        def arm() -> None:
            nonlocal handle
            if not joined:
                handle = loop.call_later(JOIN_TIMEOUT_S, watchdog)

        loop.call_soon(arm)
        try:
            await self._driver_or_fail().join()
        except asyncio.CancelledError:
            if not timed_out or task is None or task.uncancel() > 0:
                raise
            self._end(
                S.FATAL,
                SubCode.PLATFORM_CONNECTION_ERROR,
                f"joining did not get under way within {JOIN_TIMEOUT_S:g} s",
                leave=True,
            )
        except DriverError as exc:
            self._end(S.FATAL, exc.sub_code, exc.message, leave=False)
        except Exception as exc:
            log.exception("bot %s: joining failed", self.spec.bot_id)
            self._end(S.FATAL, SubCode.PLATFORM_CONNECTION_ERROR, f"joining failed: {exc!r}", leave=True)
        finally:
            joined = True
            if handle is not None:
                handle.cancel()

    # -- in the meeting -------------------------------------------------------------------------------
    async def _attend(self) -> None:
        """Follow the meeting until something ends the bot's stay: driver events are handled as
        they come (callbacks); this loop only keeps an alarm on the next automatic-leave
        deadline and wakes on every change."""
        alarm: asyncio.Task[None] | None = None
        armed: float | None = None
        try:
            while self._ending is None:
                self._wake.clear()
                deadline = self._autoleave.next_deadline()
                if deadline is not None and deadline.when <= self._mono():
                    self._end(S.CALL_ENDED, deadline.sub_code, None, leave=True)
                    break
                when = deadline.when if deadline is not None else None
                if when != armed:
                    if alarm is not None:
                        alarm.cancel()
                    alarm, armed = None, when
                    if when is not None:
                        alarm = asyncio.get_running_loop().create_task(self._alarm(when))
                await self._wake.wait()
        finally:
            if alarm is not None:
                alarm.cancel()

    async def _alarm(self, when: float) -> None:
        # Sleep to an absolute instant: the clock may move between arming and the first step.
        while (delay := when - self._mono()) > 0:
            await self._clock.sleep(delay)
        self._wake.set()

    def _on_waiting_room(self) -> None:
        if self._ending is None and self._state is S.JOINING_CALL:
            self._report(S.IN_WAITING_ROOM)
            self._autoleave.entered_waiting_room(self._mono())
            self._wake.set()

    def _on_admitted(self) -> None:
        if self._ending is not None or self._state not in _JOINING:
            return
        now = self._mono()
        self._report(S.IN_CALL_NOT_RECORDING)
        self._in_call_at = now
        self._autoleave.joined_call(now)
        self._after_admission()
        if self._start_on == "call_join":
            self._start_armed = True
        self._maybe_start_recording()
        self._show_automatic_video()
        self._wake.set()

    def _after_admission(self) -> None:
        on_join = self._media.chat_on_bot_join
        if on_join is not None:
            to, message = on_join
            self._act("chat on bot join", lambda: self._driver_or_fail().send_chat(to, message))

    def _on_participant(self, p: Participant, what: str) -> None:
        if self._ending is not None or self._state not in IN_CALL:
            return
        now = self._mono()
        if what == "join":
            self._participants[p.id] = p
            self._autoleave.participant_joined(now, p.id, p.name, p.is_bot)
        elif what == "leave":
            self._participants.pop(p.id, None)
            self._autoleave.participant_left(now, p.id)
        else:
            self._participants[p.id] = p
            self._autoleave.participant_renamed(now, p.id, p.name)
        self._relay(f"participant_events.{what}", p)
        if what == "join":
            if self._start_on == "participant_join":
                self._start_armed = True
                self._maybe_start_recording()
            self._greet(p)
            self._media.participant_joined(self._play_audio, self._recording)
        self._wake.set()

    def _greet(self, p: Participant) -> None:
        greeting = self._media.chat_on_participant_join
        if greeting is None or p.is_bot:
            return
        message, exclude_host = greeting
        if not (exclude_host and p.is_host):
            self._act("chat on participant join", lambda: self._driver_or_fail().send_chat(p.id, message))

    def _on_speech(self, p: Participant, speaking: bool) -> None:
        if self._ending is not None or self._state not in IN_CALL:
            return
        self._autoleave.speech(self._mono(), p.id, speaking)
        self._relay("participant_events.speech_on" if speaking else "participant_events.speech_off", p)
        if speaking and self._start_on == "participant_speak":
            self._start_armed = True
            self._maybe_start_recording()
        self._wake.set()

    def _on_media(self, p: Participant, kind: str, on: bool) -> None:
        if self._ending is not None or self._state not in IN_CALL:
            return
        if kind == "screenshare" and on:
            self._autoleave.activity(self._mono(), p.id)
        self._relay(f"participant_events.{kind}_{'on' if on else 'off'}", p)
        self._wake.set()

    def _on_chat(self, p: Participant, text: str, to: str) -> None:
        if self._ending is None and self._state in IN_CALL:
            self._relay("participant_events.chat_message", p, {"text": text, "to": to})

    def _on_transcript(self, p: Participant, words: list[Word], final: bool) -> None:
        if self._ending is not None or not self._recording or not words:
            return
        if self._transcriber is not None:
            self._transcriber.add_captions(p, words, final)
        now_mono, now_wall = self._mono(), self._wall()
        origin = self._rec_origin if self._rec_origin is not None else now_mono

        def stamp(t: float) -> dict[str, Any]:
            return {
                "relative": round(max(0.0, t - origin), 6),
                "absolute": _iso(now_wall + (t - now_mono)),
            }

        data = {
            "words": [
                {"text": w.text, "start_timestamp": stamp(w.start), "end_timestamp": stamp(w.end)}
                for w in words
            ],
            "participant": participant_json(p),
        }
        kind = "transcript.data" if final else "transcript.partial_data"
        self._emit(kind, data, now_wall)

    def _on_permission(self, granted: bool) -> None:
        if self._ending is not None or self._state not in IN_CALL:
            return
        now = self._mono()
        self._permission = granted
        if granted:
            self._autoleave.permission_granted(now)
            if self._state is not S.RECORDING_PERMISSION_ALLOWED and not self._recording:
                self._report(S.RECORDING_PERMISSION_ALLOWED)
            self._maybe_start_recording()
        else:
            if self._recording:
                self._recording = False
                self._autoleave.recording_stopped(now)
                self._pause_media(now)
            if self._state is not S.RECORDING_PERMISSION_DENIED:
                self._report(S.RECORDING_PERMISSION_DENIED)
            self._autoleave.permission_denied(now)
        self._wake.set()

    # -- recording ----------------------------------------------------------------------------------
    def _may_record(self) -> bool:
        required = self._driver is not None and self._driver.recording_permission_required
        return self._state in IN_CALL and (not required or self._permission is True)

    def _maybe_start_recording(self) -> None:
        if self._start_armed and not (self._recording or self._paused or self._manual_stop):
            if self._may_record():
                self._start_recording()

    def _start_recording(self) -> None:
        now = self._mono()
        self._report(S.IN_CALL_RECORDING)
        self._recording, self._paused, self._recorded = True, False, True
        if self._rec_origin is None:
            self._rec_origin = now
            self._media.recording_started(self._play_audio)
            self._open_recording(now)
        else:
            self._resume_media(now)
        self._autoleave.recording_started(now)
        self._show_automatic_video()

    def _stop_recording(self, *, paused: bool) -> None:
        self._report(S.IN_CALL_NOT_RECORDING)
        self._recording, self._paused = False, paused
        self._autoleave.recording_stopped(self._mono())
        self._pause_media(self._mono())  # stopping too: a later start continues the recording
        self._show_automatic_video()

    def _recording_command(self, name: str) -> None:
        if name == "start_recording":
            if self._recording:
                raise SessionCommandError("already_recording", "the bot is already recording")
            if not self._may_record():
                raise SessionCommandError(
                    "recording_not_permitted", "the host has not allowed the bot to record"
                )
            self._manual_stop = False
            self._start_recording()
        elif name == "stop_recording":
            if not (self._recording or self._paused):
                raise SessionCommandError("not_recording", "the bot is not recording")
            if self._recording:
                self._stop_recording(paused=False)
            self._paused, self._manual_stop = False, True
        elif name == "pause_recording":
            if not self._recording:
                raise SessionCommandError("not_recording", "the bot is not recording")
            self._stop_recording(paused=True)
        else:  # resume_recording
            if not self._paused:
                raise SessionCommandError("recording_not_paused", "the recording is not paused")
            if not self._may_record():
                raise SessionCommandError(
                    "recording_not_permitted", "the host has not allowed the bot to record"
                )
            self._start_recording()
        self._wake.set()

    # -- the recording's media and artifacts -------------------------------------------------------
    def _recording_config(self) -> dict[str, Any]:
        return (self.spec.config or {}).get("recording_config") or {}

    def _delivers_media(self) -> bool:
        driver = self._driver
        return driver is not None and type(driver).delivers_media

    def _connect_media_sinks(self) -> None:
        """A driver with media hands its frames to the recording (video only if recorded)."""
        driver = self._driver
        if driver is None or self._media_dir is None or not self._delivers_media():
            return

        def on_audio(p: Participant, frame: Any) -> None:
            self._on_frame(p, frame, self._mono(), video=False)

        def on_video(p: Participant, frame: Any) -> None:
            self._on_frame(p, frame, self._mono(), video=True)

        video = RecorderOptions.from_config(self._recording_config()).video
        driver.set_media_sinks(on_audio=on_audio, on_video=on_video if video else None)

    def _open_recording(self, now: float) -> None:
        """The first start: spans, recorder (drivers with media) and transcriber. A part that
        cannot start is logged and left out; the bot goes on."""
        self._spans = RecordingSpans(now)
        self._wall_offset = self._wall() - now
        if self._media_dir is None:
            return
        config = self._recording_config()
        try:
            self._transcriber = transcriber_for(
                config, clock=self._clock, on_words=self._listener.transcript,
                model_path=self.spec.whisper_model,
            )
        except Exception as exc:
            log.warning("bot %s: no transcript: %r", self.spec.bot_id, exc)
            self._recording_problems.append(f"transcription unavailable: {exc}")
        if self._delivers_media():
            try:
                options = asdict(RecorderOptions.from_config(config))
                if wants_mixed_audio(config):
                    options["on_mixed"] = self._mixed_audio_tap()
                self._recorder = Recorder(self._media_dir, **options, clock=self._clock, start=now)
            except Exception as exc:
                log.exception("bot %s: the recorder could not start", self.spec.bot_id)
                self._recording_problems.append(f"the recorder could not start: {exc!r}")
                self._recorder_broken = True

    def _mixed_audio_tap(self) -> Callable[[Any, float], None]:
        """What the recorder's thread calls with each block of the mix: gathered into
        ``audio_mixed_raw.data`` chunks, which are relayed from the bot's event loop."""
        loop = asyncio.get_running_loop()
        chunker = self._mixed_chunker = MixedAudioChunker()

        def tap(block: Any, position: float) -> None:
            chunk = chunker.add(block, position)
            if chunk is not None:
                loop.call_soon_threadsafe(self._on_mixed_audio, chunk)

        return tap

    def _on_mixed_audio(self, chunk: MixedAudioChunk) -> None:
        # The recorder writes a block once the clock is past its end (plus its jitter allowance).
        started = self._wall() - JITTER_S - chunk.duration
        self._emit("audio_mixed_raw.data", {
            "buffer": chunk.buffer,
            "timestamp": {"relative": round(chunk.position, 6), "absolute": _iso(started)},
        }, started)

    def _pause_media(self, now: float) -> None:
        if self._spans is None or not self._spans.running or self._spans.stopped:
            return
        self._spans.pause(now)
        self._span_log.append(("pause", now))
        if self._recorder is not None:
            with contextlib.suppress(ValueError):
                self._recorder.pause(now)

    def _resume_media(self, now: float) -> None:
        if self._spans is None or self._spans.running or self._spans.stopped:
            return
        self._spans.resume(now)
        self._span_log.append(("resume", now))
        if self._recorder is not None:
            with contextlib.suppress(ValueError):
                self._recorder.resume(now)

    def _on_frame(self, p: Participant, frame: Any, at: float, *, video: bool) -> None:
        recorder, transcriber = self._recorder, self._transcriber
        if video:
            if recorder is not None:
                recorder.add_video(p.id, frame, at)
            return
        if recorder is not None:
            recorder.add_audio(p.id, frame, at)  # the recorder cuts paused intervals itself
        if transcriber is not None and self._recording:
            transcriber.add_audio(p, frame, at)

    async def _finish_recording(self) -> None:
        """Close the recording, write its artifacts, report them. Once; never raises."""
        if self._spans is None or self._media_dir is None or self._recording_closed:
            return
        self._recording_closed = True
        end = self._mono()
        started = self._wall_offset + self._spans.start
        try:
            report = await asyncio.wait_for(self._write_recording(end), RECORDING_CLOSE_TIMEOUT_S)
        except Exception as exc:
            log.exception("bot %s: writing the recording failed", self.spec.bot_id)
            report = {"status": "failed", "error": f"writing the recording failed: {exc!r}",
                      "started_at": started, "completed_at": self._wall_offset + end,
                      "duration": 0.0, "files": {}}
        report["reported_at"] = self._wall()
        try:
            self._events.recording(self.spec.bot_id, report)
        except Exception:
            log.exception("bot %s: reporting the recording failed", self.spec.bot_id)

    async def _write_recording(self, end: float) -> dict[str, Any]:
        assert self._spans is not None and self._media_dir is not None
        spans, directory = self._spans, self._media_dir
        if not spans.stopped:
            spans.stop(end)
        config = self._recording_config()
        options = RecorderOptions.from_config(config)
        status = "failed" if self._recorder_broken else "done"
        errors = list(self._recording_problems)
        files: RecordingFiles | None
        try:
            if self._recorder is not None:
                files = await asyncio.to_thread(self._recorder.stop, end)
                if self._mixed_chunker is not None and (rest := self._mixed_chunker.flush()):
                    self._on_mixed_audio(rest)
            else:
                files = await asyncio.to_thread(
                    _silent_recording, directory, options, self._clock, spans.start, end,
                    list(self._span_log),
                )
        except RecordingFailed as exc:
            status, files = "failed", exc.files
            errors.append(str(exc))
        transcriber = self._transcriber
        if transcriber is not None:
            await transcriber.aclose()
        stamp = Stamper(spans, self._wall_offset)
        documents: dict[str, Any] = {}
        metadata = meeting_metadata(self.spec.meeting_url.get("title"))
        # An artifact set to null in the configuration is not produced (Recall's rule).
        if config.get("participant_events", {}) is not None:
            documents["participant_events"] = self._timeline.participant_events(stamp)
            documents["speaker_timeline"] = self._timeline.speaker_timeline(stamp, end)
            documents["participants"] = self._timeline.participants()
        if config.get("meeting_metadata", {}) is not None:
            documents["meeting_metadata"] = metadata
        if transcriber is not None:
            documents["transcript"] = transcript_artifact(transcriber.utterances(), stamp)
        written = await asyncio.to_thread(_write_documents, directory, documents)
        root = directory.parent
        reported: dict[str, dict[str, Any]] = {}
        separate: list[dict[str, Any]] = []
        if files is not None:
            media: dict[str, MediaFile | None] = {
                "audio_mixed": files.audio_mixed, "video_mixed": files.video_mixed}
            # One file per participant, in the order they were first heard: audio_separate_1…
            people = {str(p["id"]): p for p in self._timeline.participants()}
            heard = sorted(files.audio_separate.items(), key=lambda item: item[1].offset)
            for number, (pid, media_file) in enumerate(heard, 1):
                label = f"audio_separate_{number}"
                media[label] = media_file
                separate.append({
                    "label": label,
                    "participant": people.get(pid) or {"id": pid, "name": None},
                    "offset": round(media_file.offset, 6),
                    "duration": round(media_file.duration, 6),
                })
            for label, media_file in media.items():
                if media_file is not None:
                    reported[label] = {"path": str(media_file.path.relative_to(root)),
                                       "content_type": media_file.content_type,
                                       "size": media_file.size}
        for label, path in written.items():
            reported[label] = {"path": str(path.relative_to(root)),
                               "content_type": "application/json", "size": path.stat().st_size}
        return {
            "status": status if files is not None else "failed",
            "error": "; ".join(errors) or None,
            "started_at": self._wall_offset + spans.start,
            "completed_at": self._wall_offset + end,
            "duration": files.duration if files is not None else spans.duration(end),
            "files": reported,
            "audio_format": options.audio_format,
            "transcript_provider": provider_name(config) if transcriber is not None else None,
            "meeting_metadata": metadata,
            "audio_separate": separate,
        }

    async def _drop_recording(self) -> None:
        """Shutdown: stop the recording's threads; nothing is reported (the files stay)."""
        self._recording_closed = True
        with contextlib.suppress(Exception):
            if self._recorder is not None:
                await asyncio.to_thread(self._recorder.stop)
        with contextlib.suppress(Exception):
            if self._transcriber is not None:
                await self._transcriber.aclose()

    # -- commands -------------------------------------------------------------------------------------
    async def _leave_command(self) -> None:
        if self._finished:
            raise SessionCommandError("cannot_command_completed_bot", "the bot has already finished")
        if self._ending is not None:
            return  # already leaving
        if self._state is S.STAGED:
            self._removed_before_join = True
            if self._waiting_for_join_at is not None:
                self._waiting_for_join_at.cancel()  # run() concludes
            elif not self._started:
                # Nobody runs this bot yet (or stage() is still preparing): end it right here.
                self._end(S.DONE, SubCode.BOT_REMOVED_BEFORE_JOIN, None, leave=False)
                self._started = True  # a later run() has nothing to do
                await self._conclude()
            return
        self._end(S.CALL_ENDED, SubCode.BOT_RECEIVED_LEAVE_CALL, None, leave=True)

    def _require_in_call(self) -> None:
        if self._finished or self._ending is not None:
            raise SessionCommandError("cannot_command_completed_bot", "the bot has left the call")
        if self._state not in IN_CALL:
            raise SessionCommandError(
                "cannot_command_unstarted_bot", f"the bot is not in the call yet ({self._state})"
            )

    async def _send_chat(self, args: Mapping[str, Any]) -> None:
        to, message = args.get("to", "everyone"), args.get("message")
        if not isinstance(to, str) or not to or not isinstance(message, str):
            raise SessionCommandError("invalid_command_arguments", "expected {to, message} strings")
        if not 1 <= len(message) <= MAX_CHAT_MESSAGE:
            raise SessionCommandError("invalid_command_arguments", "message must be 1-4096 characters")
        try:
            await self._driver_or_fail().send_chat(to, message)
        except DriverError as exc:
            raise SessionCommandError(exc.sub_code, exc.message or "the platform refused the message") from exc

    async def _output_media(self, name: str, args: Mapping[str, Any]) -> None:
        raw = args.get("b64_data")
        data: bytes | None = None
        if raw is not None:
            if not isinstance(raw, str):
                raise SessionCommandError("invalid_command_arguments", "b64_data must be a string")
            try:
                data = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise SessionCommandError("invalid_command_arguments", "b64_data is not base64") from exc
        driver = self._driver_or_fail()
        if name == "output_audio":
            await driver.output_audio(data)
        else:
            self._manual_video = True  # the API's image wins over automatic_video_output
            await driver.output_video(data)

    # -- the end ----------------------------------------------------------------------------------------
    def _end(self, code: Status, sub_code: str | None, message: str | None, *, leave: bool) -> None:
        """Decide how the bot's stay ends; the first decision wins."""
        if self._ending is not None or self._finished:
            return
        sub_code, message = _clean_sub_code(code, sub_code, message)
        self._ending = _Ending(code, sub_code, message, leave)
        self._wake.set()

    async def _conclude(self) -> None:
        """Carry out the ending: leave, report the final statuses, release everything."""
        ending = self._ending or _Ending(S.DONE, SubCode.BOT_REMOVED_BEFORE_JOIN, None, False)
        if ending.leave:
            try:
                await self._bounded(self._driver_or_fail().leave(), LEAVE_TIMEOUT_S, "leaving")
            except Exception as exc:  # the bot is reported gone regardless; say what happened
                log.warning("bot %s: leaving failed: %r", self.spec.bot_id, exc)
        self._autoleave.left(self._mono())
        self._recording = False
        if ending.code is S.CALL_ENDED:
            self._report(S.CALL_ENDED, ending.sub_code, ending.message)
            if self._recorded:
                await self._finish_recording()
                self._report(S.RECORDING_DONE)
            self._report(S.DONE)
        else:
            self._report(ending.code, ending.sub_code, ending.message)
            await self._finish_recording()
        await self._release()

    def _fail_now(self, sub_code: str, message: str | None) -> None:
        """Fail before the bot's stay began (staging): report and finish; the caller closes."""
        if self._finished:
            return
        sub_code, message = _clean_sub_code(S.FATAL, sub_code, message)
        self._report(S.FATAL, sub_code, message)
        self._finish()

    async def _crash(self, exc: BaseException) -> None:
        joined = self._state is not S.STAGED  # before the fatal report changes it
        if not self._finished:
            self._report(S.FATAL, SubCode.PLATFORM_CONNECTION_ERROR, f"bot session failed: {exc!r}")
        try:
            if self._driver is not None and joined:
                await self._bounded(self._driver.leave(), LEAVE_TIMEOUT_S, "leaving")
        except Exception as leave_exc:
            log.warning("bot %s: leaving after a failure failed: %r", self.spec.bot_id, leave_exc)
        await self._finish_recording()
        await self._release()

    async def _abandon(self) -> None:
        """run() was cancelled (shutdown): let go of the meeting, report nothing."""
        if self._worker is not None:
            self._worker.cancel()
        self._media.cancel()
        await self._close_driver()
        await self._drop_recording()

    async def _release(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.wait([self._worker])
        self._media.cancel()
        await self._close_driver()
        self._finish()

    def _finish(self) -> None:
        if not self._finished:
            self._finished = True
            try:
                self._events.finished(self.spec.bot_id)
            except Exception:
                log.exception("bot %s: reporting the end failed", self.spec.bot_id)

    async def _close_driver(self) -> None:
        if self._driver is None:
            return
        try:
            await self._bounded(self._driver.close(), LEAVE_TIMEOUT_S, "closing")
        except Exception as exc:
            log.warning("bot %s: closing the driver failed: %r", self.spec.bot_id, exc)

    # -- plumbing ---------------------------------------------------------------------------------------
    def _report(
        self,
        code: Status,
        sub_code: str | None = None,
        message: str | None = None,
        *,
        at: float | None = None,
    ) -> bool:
        """Move to ``code`` if the lifecycle allows it and tell the runtime; False if refused."""
        if self._finished:
            return False
        try:
            self._state = check_transition(self._state, code, sub_code)
        except IllegalTransition as exc:
            log.error("bot %s: refused to report %s", self.spec.bot_id, exc)
            return False
        sub = None if sub_code is None else str(sub_code)  # plain str over the pipe, not an enum
        try:
            self._events.status(
                self.spec.bot_id, code.value, sub, message, self._wall() if at is None else at
            )
        except Exception:
            log.exception("bot %s: reporting status %s failed", self.spec.bot_id, code.value)
        return True

    def _relay(self, kind: str, p: Participant, data: dict[str, Any] | None = None) -> None:
        now_mono, now_wall = self._mono(), self._wall()
        try:
            self._timeline.record(kind, p, now_mono, now_wall, data)
        except ValueError:
            log.error("bot %s: %s is not a participant event", self.spec.bot_id, kind)
        origin = self._rec_origin if self._rec_origin is not None else self._in_call_at
        relative = max(0.0, now_mono - origin) if origin is not None else 0.0
        payload = {
            "participant": participant_json(p),
            "timestamp": {"absolute": _iso(now_wall), "relative": round(relative, 6)},
            "data": data,
        }
        self._emit(kind, payload, now_wall)

    def _emit(self, kind: str, data: dict[str, Any], at: float) -> None:
        try:
            self._events.event(self.spec.bot_id, kind, data, at)
        except Exception:
            log.exception("bot %s: relaying %s failed", self.spec.bot_id, kind)

    def _act(self, what: str, action: Callable[[], Awaitable[None]]) -> None:
        """Queue a driver call made on the bot's own initiative (greetings, automatic media).
        They run one at a time, in order; a failure is logged, never fatal."""
        if self._ending is not None or self._finished:
            return
        self._actions.put_nowait((what, action))
        if self._worker is None:  # most bots never act on their own: no task until needed
            self._worker = asyncio.get_running_loop().create_task(
                self._work(), name=f"bot:{self.spec.bot_id}:actions"
            )

    async def _work(self) -> None:
        while True:
            what, action = await self._actions.get()
            if self._ending is not None:
                continue
            try:
                await action()
            except Exception as exc:
                log.warning("bot %s: %s failed: %r", self.spec.bot_id, what, exc)

    def _play_audio(self, mp3: bytes) -> None:
        self._act("automatic audio", lambda: self._driver_or_fail().output_audio(mp3))

    def _show_automatic_video(self) -> None:
        if self._manual_video:
            return
        image = self._media.video_for(recording=self._recording)
        if image is not None and image != self._media.shown:
            self._media.shown = image
            self._act("automatic video", lambda: self._driver_or_fail().output_video(image))

    async def _bounded(self, aw: Awaitable[T], seconds: float, what: str) -> T:
        """Await ``aw`` for at most ``seconds`` of the clock; a timeout is a connection error."""
        task = asyncio.ensure_future(aw)
        alarm = asyncio.ensure_future(self._clock.sleep(seconds))
        try:
            await asyncio.wait({task, alarm}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            alarm.cancel()
        if not task.done():
            task.cancel()
            raise DriverError(
                SubCode.PLATFORM_CONNECTION_ERROR, f"{what} took longer than {seconds:g} s"
            )
        return task.result()

    def _driver_or_fail(self) -> Driver:
        if self._driver is None:
            raise DriverError(SubCode.PLATFORM_CONNECTION_ERROR, "no driver")
        return self._driver

    def _mono(self) -> float:
        return self._clock.monotonic()

    def _wall(self) -> float:
        return self._clock.now().timestamp()


class _AutomaticMedia:
    """The bot's own chat and media from its configuration (``chat``, ``automatic_audio_output``,
    ``automatic_video_output``): what to send, and when audio is replayed."""

    def __init__(self, config: Mapping[str, Any], clock: Clock) -> None:
        self._clock = clock
        chat = config.get("chat") or {}
        on_bot_join = chat.get("on_bot_join")
        self.chat_on_bot_join: tuple[str, str] | None = (
            (on_bot_join.get("send_to", "everyone"), on_bot_join["message"])
            if isinstance(on_bot_join, Mapping) and on_bot_join.get("message")
            else None
        )
        on_join = chat.get("on_participant_join")
        self.chat_on_participant_join: tuple[str, bool] | None = (
            (on_join["message"], bool(on_join.get("exclude_host")))
            if isinstance(on_join, Mapping) and on_join.get("message")
            else None
        )
        video = config.get("automatic_video_output") or {}
        self._video_recording = _b64(video.get("in_call_recording"))
        self._video_not_recording = _b64(video.get("in_call_not_recording"))
        self.shown: bytes | None = None
        audio = (config.get("automatic_audio_output") or {}).get("in_call_recording") or {}
        self._audio = _b64(audio.get("data"))
        replay = audio.get("replay_on_participant_join") or None
        self._replay: Mapping[str, Any] | None = replay if isinstance(replay, Mapping) else None
        self._first_play: float | None = None
        self._last_play: float | None = None
        self._pending_replay: asyncio.Task[None] | None = None

    def video_for(self, *, recording: bool) -> bytes | None:
        # Recall: the not-recording image falls back to the recording one.
        if recording:
            return self._video_recording
        return self._video_not_recording or self._video_recording

    def recording_started(self, play: Callable[[bytes], None]) -> None:
        """First start of the recording: play the automatic audio once."""
        if self._audio is not None:
            self._play(play)

    def participant_joined(self, play: Callable[[bytes], None], recording: bool) -> None:
        """Replay the automatic audio for newcomers, debounced (``replay_on_participant_join``)."""
        replay, now = self._replay, self._clock.monotonic()
        if replay is None or self._audio is None or self._first_play is None or not recording:
            return
        if now <= self._first_play:
            return  # present when the clip first played: they heard it
        disable_after = replay.get("disable_after")
        if disable_after is not None and now - self._first_play > float(disable_after):
            return
        interval = float(replay.get("debounce_interval") or 0)
        if replay.get("debounce_mode") == "leading":
            if self._last_play is None or now - self._last_play >= interval:
                self._play(play)
            return
        # trailing: play once joins have stopped for `interval` seconds
        if self._pending_replay is not None:
            self._pending_replay.cancel()
        self._pending_replay = asyncio.get_running_loop().create_task(self._later(play, interval))

    async def _later(self, play: Callable[[bytes], None], delay: float) -> None:
        await self._clock.sleep(delay)
        self._pending_replay = None
        self._play(play)

    def _play(self, play: Callable[[bytes], None]) -> None:
        now = self._clock.monotonic()
        self._first_play = now if self._first_play is None else self._first_play
        self._last_play = now
        if self._audio is not None:
            play(self._audio)

    def cancel(self) -> None:
        if self._pending_replay is not None:
            self._pending_replay.cancel()
            self._pending_replay = None


def _b64(obj: Any) -> bytes | None:
    if not isinstance(obj, Mapping) or not isinstance(obj.get("b64_data"), str):
        return None
    try:
        return base64.b64decode(obj["b64_data"], validate=True)
    except (binascii.Error, ValueError):
        return None


def _clean_sub_code(code: Status, sub_code: str | None, message: str | None) -> tuple[str | None, str | None]:
    """A driver may report a sub-code that belongs to another status, or a malformed one: keep
    the status, drop the sub-code into the message rather than report an illegal change."""
    if sub_code is None:
        return None, message
    probe = S.STAGED if code is S.DONE else S.JOINING_CALL  # a status `code` is legal from
    try:
        check_transition(probe, code, sub_code)
    except IllegalTransition:
        log.error("sub-code %r does not fit status %s; reported without it", sub_code, code.value)
        detail = f"reported sub_code {sub_code!r}"
        return None, f"{message} ({detail})" if message else detail
    return sub_code, message


def _iso(epoch: float) -> str:
    return isoformat_z(datetime.fromtimestamp(epoch, UTC))


class _HeldClock:
    """``clock`` standing still at monotonic instant ``at``: a recorder built after the fact
    writes nothing until it is stopped, then everything at once."""

    def __init__(self, clock: Clock, at: float) -> None:
        self._clock, self._at = clock, at

    def now(self) -> datetime:
        return self._clock.now()

    def monotonic(self) -> float:
        return self._at

    async def sleep(self, seconds: float) -> None:
        await self._clock.sleep(seconds)


def _silent_recording(
    directory: Path, options: RecorderOptions, clock: Clock, start: float, end: float,
    span_log: list[tuple[str, float]],
) -> RecordingFiles:
    """The audio of a meeting whose driver delivers no media: silence as long as the recording
    (pauses cut), written in one go. Blocks: run it on a thread."""
    held = _HeldClock(clock, start)
    recorder = Recorder(directory, audio_format=options.audio_format, clock=held, start=start)
    for what, at in span_log:
        (recorder.pause if what == "pause" else recorder.resume)(at)
    return recorder.stop(end)


def _write_documents(directory: Path, documents: Mapping[str, Any]) -> dict[str, Path]:
    """Write each document as ``<name>.json`` (atomically: a reader never sees half a file)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, document in documents.items():
        path = directory / f"{name}.json"
        partial = path.with_suffix(".json.part")
        partial.write_bytes(orjson.dumps(document))
        os.replace(partial, path)
        written[name] = path
    return written
