"""The sandbox platform: a **simulated** meeting, for trying the API, for tests and load tests.

Nothing here touches a network or a real meeting. A sandbox link is a script:
``sandbox://<name>?<params>``, and the "meeting" plays that script against the bot's clock, the
same way every time. Times are seconds after the bot starts joining (``Driver.join()``);
decimals are allowed (``2.5``).

=========================  ==================================================================
parameter                  meaning
=========================  ==================================================================
``admit_after``            when the bot is let in (default ``0``); ``never``: it never is, and
                           the bot's ``waiting_room_timeout`` decides
``waiting_room``           ``1``: the bot waits in a waiting room until admitted; ``0``: it just
                           takes that long to join. Default: ``1`` unless admitted at ``0``
``participants``           ``alice@0-60,bob@5``: ``name@join[-leave]``, the leave optional.
                           Whoever is present when the bot is admitted is reported as joined
                           at that moment; comings and goings before are not reported
``bots``                   the same, for participants the platform flags as bots
``host``                   which participant is the host (default: the first one listed)
``say``                    ``alice@3:Hello team;bob@5:Hi``: scripted speech. ``speech`` on, one
                           word every 0.3 s delivered as transcript words (an interim result
                           after each word, the final one at the end), ``speech`` off. Said
                           only while the speaker is present and the bot is in the call
``chat``                   ``alice@4:hi;bob@6:there``: chat messages to everyone
``recording_permission``   ``granted`` or ``denied``: the host's answer when the bot asks to
                           record, given at admission. Absent: recording needs no permission
``end_after``              the host ends the meeting (``call_ended_by_host``)
``kick_after``             the bot is removed: ``bot_kicked_from_call`` in the call,
                           ``bot_removed_from_waiting_room`` (fatal) before admission
``fail``                   joining fails with this ``fatal`` sub-code (``meeting_not_found``,
                           ``meeting_password_incorrect``, ``meeting_full``, …)
``fail_after``             when ``fail`` happens (default ``0``)
``prepare_s``              how long getting ready takes, before joining (default ``0``): stands
                           for a driver that loads a media stack or opens a browser while staged
=========================  ==================================================================

Participants get ids ``"100"``, ``"101"``, … in the order listed (``participants`` first, then
``bots``). Names are 1-100 characters without ``@ , ; :``, unique; ``say``/``chat`` texts cannot
contain ``;``. At one instant things happen in this order: waiting room, failure, participant
joins, admission (with the permission answer and the joins of those present), speech and chat,
participant leaves, kick, end. Unknown parameters, malformed values and references to unknown
participants make :meth:`SandboxDriver.prepare` raise ``DriverError("invalid_sandbox_url")``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from summon.abc import Clock, Driver, DriverError, DriverEvents, Participant, Word
from summon.domain.lifecycle import SUB_CODE_STATUS, Status, SubCode

__all__ = ["DRIVER", "WORD_SECONDS", "SandboxDriver", "SandboxScript", "parse_script"]

log = logging.getLogger(__name__)

#: How long one scripted word takes to say.
WORD_SECONDS = 0.3
#: Latest scripted instant: a week is more than any test or demo needs.
MAX_SECONDS = 7 * 24 * 3600.0
INVALID = "invalid_sandbox_url"

_TIME = re.compile(r"\d{1,9}(?:\.\d{1,6})?")
_NAME = re.compile(r"[^@,;:\x00-\x1f\x7f]{1,100}")
_SUB_CODE = re.compile(r"[a-z][a-z0-9_]{0,99}")
_PARAMS = frozenset(
    {
        "admit_after",
        "waiting_room",
        "participants",
        "bots",
        "host",
        "say",
        "chat",
        "recording_permission",
        "end_after",
        "kick_after",
        "fail",
        "fail_after",
        "prepare_s",
    }
)


@dataclass(frozen=True, slots=True)
class _Person:
    participant: Participant
    join: float
    leave: float | None


@dataclass(frozen=True, slots=True)
class _Line:
    name: str
    at: float
    text: str


@dataclass(frozen=True, slots=True)
class SandboxScript:
    """A sandbox link's parameters, validated. Times in seconds after joining starts."""

    admit_after: float | None  # None: never
    waiting_room: bool
    people: tuple[_Person, ...]
    say: tuple[_Line, ...]
    chat: tuple[_Line, ...]
    recording_permission: bool | None  # None: not asked
    end_after: float | None
    kick_after: float | None
    fail: str | None
    fail_after: float
    prepare_s: float = 0.0


def parse_script(params: Mapping[str, str]) -> SandboxScript:
    """Validate a sandbox link's ``params`` (``meeting_url["params"]``); raises
    ``DriverError("invalid_sandbox_url", <what is wrong>)``."""
    unknown = sorted(set(params) - _PARAMS)
    if unknown:
        raise DriverError(
            INVALID, f"unknown sandbox parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(_PARAMS))}"
        )
    admit_raw = params.get("admit_after", "0")
    admit_after = None if admit_raw == "never" else _seconds("admit_after", admit_raw)
    waiting_raw = params.get("waiting_room")
    if waiting_raw is None:
        waiting_room = admit_after != 0
    elif waiting_raw in ("0", "1"):
        waiting_room = waiting_raw == "1"
    else:
        raise DriverError(INVALID, "waiting_room must be 0 or 1")

    specs = [(spec, False) for spec in _items(params.get("participants"), ",")]
    specs += [(spec, True) for spec in _items(params.get("bots"), ",")]
    host = params.get("host")
    if host is None and params.get("participants"):
        host = _items(params["participants"], ",")[0].split("@", 1)[0].strip()
    people: list[_Person] = []
    names: set[str] = set()
    for index, (spec, is_bot) in enumerate(specs):
        name, at, text = _split_entry("participants" if not is_bot else "bots", spec)
        if text is not None:
            raise DriverError(INVALID, f"participant {spec!r}: expected name@join[-leave]")
        join_raw, _, leave_raw = at.partition("-")
        join = _seconds(f"{name}'s join", join_raw)
        leave = _seconds(f"{name}'s leave", leave_raw) if leave_raw else None
        if leave is not None and leave <= join:
            raise DriverError(INVALID, f"participant {name!r} leaves before joining")
        if name in names:
            raise DriverError(INVALID, f"participant name {name!r} given twice")
        names.add(name)
        people.append(
            _Person(Participant(str(100 + index), name, is_host=name == host, is_bot=is_bot), join, leave)
        )
    if host is not None and host not in names:
        raise DriverError(INVALID, f"host {host!r} is not a participant")

    def lines(param: str) -> tuple[_Line, ...]:
        result = []
        for entry in _items(params.get(param), ";"):
            name, at, text = _split_entry(param, entry)
            if not text:
                raise DriverError(INVALID, f"{param} entry {entry!r}: expected name@seconds:text")
            if name not in names:
                raise DriverError(INVALID, f"{param}: {name!r} is not a participant")
            result.append(_Line(name, _seconds(f"{param} time", at), text))
        return tuple(result)

    permission = params.get("recording_permission")
    if permission not in (None, "granted", "denied"):
        raise DriverError(INVALID, "recording_permission must be granted or denied")
    fail = params.get("fail")
    if fail is not None and (
        not _SUB_CODE.fullmatch(fail) or SUB_CODE_STATUS.get(fail, Status.FATAL) is not Status.FATAL
    ):
        raise DriverError(INVALID, f"fail={fail!r} is not a fatal sub-code")

    def optional(param: str) -> float | None:
        raw = params.get(param)
        return None if raw is None else _seconds(param, raw)

    return SandboxScript(
        admit_after=admit_after,
        waiting_room=waiting_room,
        people=tuple(people),
        say=lines("say"),
        chat=lines("chat"),
        recording_permission=None if permission is None else permission == "granted",
        end_after=optional("end_after"),
        kick_after=optional("kick_after"),
        fail=fail,
        fail_after=optional("fail_after") or 0.0,
        prepare_s=optional("prepare_s") or 0.0,
    )


def _items(raw: str | None, sep: str) -> list[str]:
    # Blank items (a trailing separator) are harmless and skipped.
    return [item.strip() for item in (raw or "").split(sep) if item.strip()]


def _split_entry(param: str, entry: str) -> tuple[str, str, str | None]:
    """``name@time[:text]`` → name, time, text (None without a colon)."""
    head, colon, text = entry.partition(":")
    name, at_sign, at = head.partition("@")
    name = name.strip()
    if not at_sign or not _NAME.fullmatch(name):
        raise DriverError(INVALID, f"{param} entry {entry!r}: expected name@seconds")
    return name, at.strip(), text.strip() if colon else None


def _seconds(what: str, raw: str) -> float:
    value = float(raw) if _TIME.fullmatch(raw.strip()) else math.nan
    if not (0 <= value <= MAX_SECONDS):
        raise DriverError(INVALID, f"{what}: {raw!r} is not a number of seconds (0 to {MAX_SECONDS:g})")
    return value


class _Rank(IntEnum):
    """What happens first when several things are scripted for the same instant."""

    WAITING_ROOM = 0
    FAIL = 1
    JOIN = 2
    ADMIT = 3
    TALK = 4
    LEAVE = 5
    KICK = 6
    END = 7


@dataclass(frozen=True, slots=True)
class _Step:
    at: float
    rank: _Rank
    seq: int
    action: Callable[[], bool]  # True: the script is over (the bot is out)


class SandboxDriver(Driver):
    """Plays a :class:`SandboxScript` against the injected clock; see the module docstring.

    For inspection (tests, demos) it keeps what the bot sent: :attr:`chat_sent`
    (``(to, message)``), :attr:`audio_out` and :attr:`video_out` (every clip/image, ``None`` for
    stop), and whether it :attr:`left`/:attr:`closed`.
    """

    platform = "sandbox"

    def __init__(
        self,
        meeting_url: dict[str, Any],
        bot_name: str,
        config: dict[str, Any],
        events: DriverEvents,
        clock: Clock,
    ) -> None:
        super().__init__(meeting_url, bot_name, config, events, clock)
        self.script: SandboxScript | None = None
        self.chat_sent: list[tuple[str, str]] = []
        self.audio_out: list[bytes | None] = []
        self.video_out: list[bytes | None] = []
        self.left = False
        self.closed = False
        self._player: asyncio.Task[None] | None = None
        self._steps: list[_Step] = []
        self._joined = False
        self._t0 = 0.0
        self._in_call = False
        self._over = False  # the script ended the bot's stay, or the bot left
        self._present: dict[str, Participant] = {}
        self._speaking: set[str] = set()

    @property
    def recording_permission_required(self) -> bool:
        return self.script is not None and self.script.recording_permission is not None

    @property
    def in_call(self) -> bool:
        return self._in_call and not self._over

    async def prepare(self) -> None:
        params = self.meeting_url.get("params") or {}
        if not isinstance(params, Mapping):
            raise DriverError(INVALID, "meeting_url.params must be an object")
        self.script = parse_script({str(k): str(v) for k, v in params.items()})
        self._steps = self._timeline(self.script)  # ready before join_at: join() only starts it
        if self.script.prepare_s:
            await self.clock.sleep(self.script.prepare_s)

    async def join(self) -> None:
        if self.script is None:
            raise RuntimeError("SandboxDriver.join() before prepare()")
        if self._joined:
            raise RuntimeError("SandboxDriver.join() called twice")
        self._joined = True
        self._t0 = self.clock.monotonic()  # the script's time starts now...
        # ...and its task is created a step later: at the join instant many bots share the loop,
        # and a scheduled call costs far less than a task. No event comes before join() returns.
        asyncio.get_running_loop().call_soon(self._start_player)

    def _start_player(self) -> None:
        if not self._over:
            self._player = asyncio.get_running_loop().create_task(
                self._play(self._steps), name=f"sandbox:{self.meeting_url.get('meeting_id')}"
            )

    async def leave(self) -> None:
        if not self._joined:
            return  # nothing to leave yet (Driver contract)
        self._over = True
        self.left = True
        await self._stop()

    async def send_chat(self, to: str, message: str) -> None:
        if not self.in_call:
            raise DriverError("not_in_call", "the sandbox bot is not in the call")
        self.chat_sent.append((to, message))

    async def output_audio(self, mp3: bytes | None) -> None:
        self.audio_out.append(mp3)

    async def output_video(self, jpeg: bytes | None) -> None:
        self.video_out.append(jpeg)

    async def close(self) -> None:
        self._over = True
        self.closed = True
        await self._stop()

    # -- the script -------------------------------------------------------------------------------
    async def _stop(self) -> None:
        player, self._player = self._player, None
        if player is None or player.done() or player is asyncio.current_task():
            return
        player.cancel()
        # wait() neither raises the player's CancelledError nor swallows our own cancellation.
        await asyncio.wait([player])

    async def _play(self, steps: list[_Step]) -> None:
        try:
            for step in steps:
                # Sleep to the scripted instant measured from t0, so delays never accumulate.
                delay = self._t0 + step.at - self.clock.monotonic()
                if delay > 0:
                    await self.clock.sleep(delay)
                if self._over:
                    return
                if step.action():
                    self._over = True
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug in the script runner must not leave the bot hanging
            log.exception("sandbox script failed")
            if not self._over:
                self._over = True
                self.events.failed(SubCode.PLATFORM_CONNECTION_ERROR, f"sandbox script error: {exc}")

    def _timeline(self, s: SandboxScript) -> list[_Step]:
        steps: list[_Step] = []

        def add(at: float, rank: _Rank, action: Callable[[], bool]) -> None:
            steps.append(_Step(at, rank, len(steps), action))

        if s.waiting_room:
            add(0.0, _Rank.WAITING_ROOM, self._enter_waiting_room)
        if s.fail is not None:
            add(s.fail_after, _Rank.FAIL, lambda code=s.fail: self._fail(code))
        for person in s.people:
            add(person.join, _Rank.JOIN, lambda p=person.participant: self._join(p))
            if person.leave is not None:
                add(person.leave, _Rank.LEAVE, lambda p=person.participant: self._leave(p))
        if s.admit_after is not None:
            add(s.admit_after, _Rank.ADMIT, self._admit)
        by_name = {person.participant.name: person.participant for person in s.people}
        for line in s.say:
            self._add_speech(add, by_name[line.name], line)
        for line in s.chat:
            add(line.at, _Rank.TALK, lambda p=by_name[line.name], t=line.text: self._chat(p, t))
        if s.kick_after is not None:
            add(s.kick_after, _Rank.KICK, self._kick)
        if s.end_after is not None:
            add(s.end_after, _Rank.END, self._end)
        steps.sort(key=lambda step: (step.at, step.rank, step.seq))
        return steps

    def _add_speech(
        self, add: Callable[[float, _Rank, Callable[[], bool]], None], p: Participant, line: _Line
    ) -> None:
        texts = line.text.split()
        add(line.at, _Rank.TALK, lambda: self._speech(p, True))
        for n in range(1, len(texts) + 1):
            final = n == len(texts)
            add(line.at + n * WORD_SECONDS, _Rank.TALK, lambda n=n, f=final: self._words(p, line, texts[:n], f))
        add(line.at + len(texts) * WORD_SECONDS, _Rank.TALK, lambda: self._speech(p, False))

    # Each action reports what the bot would see, and returns True when the bot's stay is over.
    def _enter_waiting_room(self) -> bool:
        self.events.waiting_room()
        return False

    def _fail(self, sub_code: str) -> bool:
        self.events.failed(sub_code, f"simulated by the sandbox link (fail={sub_code})")
        return True

    def _admit(self) -> bool:
        self._in_call = True
        self.events.admitted()
        assert self.script is not None
        if self.script.recording_permission is not None:
            self.events.recording_permission(self.script.recording_permission)
        for p in self._present.values():
            self.events.participant_joined(p)
        return False

    def _join(self, p: Participant) -> bool:
        self._present[p.id] = p
        if self._in_call:
            self.events.participant_joined(p)
        return False

    def _leave(self, p: Participant) -> bool:
        if self._in_call and p.id in self._present:
            self._speech(p, False)  # someone leaving mid-sentence stops speaking first
            self.events.participant_left(p)
        self._present.pop(p.id, None)
        return False

    def _speech(self, p: Participant, speaking: bool) -> bool:
        if not self._in_call or p.id not in self._present:
            return False
        if speaking:
            self._speaking.add(p.id)
        elif p.id in self._speaking:
            self._speaking.discard(p.id)
        else:
            return False
        self.events.speech(p, speaking)
        return False

    def _words(self, p: Participant, line: _Line, texts: list[str], final: bool) -> bool:
        if self._in_call and p.id in self._speaking:
            start = self._t0 + line.at  # word times as scripted, on the driver's clock
            words = [
                Word(text, start + i * WORD_SECONDS, start + (i + 1) * WORD_SECONDS)
                for i, text in enumerate(texts)
            ]
            self.events.transcript(p, words, final)
        return False

    def _chat(self, p: Participant, text: str) -> bool:
        if self._in_call and p.id in self._present:
            self.events.chat_message(p, text, "everyone")
        return False

    def _kick(self) -> bool:
        if self._in_call:
            self.events.meeting_ended(SubCode.BOT_KICKED_FROM_CALL)
        else:
            self.events.failed(SubCode.BOT_REMOVED_FROM_WAITING_ROOM, "removed by the sandbox script")
        return True

    def _end(self) -> bool:
        self.events.meeting_ended(SubCode.CALL_ENDED_BY_HOST)
        return True


DRIVER = SandboxDriver
