"""The Janus platform: real WebRTC meetings on a Janus server (VideoRoom + TextRoom).

A meeting is ``janus://HOST:PORT/ROOM?pin=…`` (``januss://`` for TLS). ``HOST:PORT`` is the
Janus **HTTP API** (the REST/long-poll transport, ``http://HOST:PORT/janus``; ``januss://``:
``https://…``) — not the WebSocket transport. ``ROOM`` is the room id in both plugins: the
VideoRoom room for media and the TextRoom room of the same id for chat (a number when it is all
digits, as Janus rooms are by default; a string otherwise, for ``string_ids`` servers). ``pin``
is the room's pin in both.

How the bot takes part (one Janus session, three handles, two aiortc peer connections for media
and one for chat; no STUN/TURN — ``iceServers=[]`` — the server's own candidates are used):

- **Publisher** (VideoRoom ``joinandconfigure``, display name = the bot's name): the bot's
  microphone plays the last MP3 given to :meth:`JanusDriver.output_audio` (decoded with PyAV
  to 48 kHz mono), followed by a second of silence; between clips it sends nothing, so a
  silent bot costs no encoding. Its camera shows the last JPEG given to
  :meth:`JanusDriver.output_video` as a still picture (5 frames/s, scaled to at most 640 px
  wide); the bot joins without a camera and the first picture adds one (a renegotiation), so
  nobody sees a camera that shows nothing. ``output_video(None)`` stops the frames (Janus has
  no "camera off" short of removing the stream). The join's outcome is the
  bot's admission (Janus has no waiting room): VideoRoom error 426 (no such room) →
  ``meeting_not_found``, 433 (unauthorized) → ``meeting_password_incorrect``, 432 (maximum
  number of publishers reached) → ``meeting_full``.
- **Subscriber** (one handle, Janus multistream): subscribes to the audio of every publisher,
  present and future (``join`` once, then ``update``), and answers every new offer Janus makes
  (when streams come and go). Video is subscribed only when someone wants the frames
  (:meth:`JanusDriver.set_media_sinks`): an audio-only bot never receives or decodes video.
- **Chat** (TextRoom over a data channel): joined with the bot's VideoRoom id as username, so
  others can tell which publisher wrote. Chat is best effort: a room without a TextRoom twin has
  no chat, and :meth:`JanusDriver.send_chat` raises ``DriverError("chat_unavailable")``.

What the bot reports:

- **Participants** are VideoRoom participants: publishers, and — when the room has
  ``notify_joining`` — people who joined without publishing. Ids are Janus feed ids as strings.
  A participant joins when first seen (``joining``, ``publishers``, or present at admission)
  and leaves on ``leaving``/``kicked``. Rooms without ``notify_joining`` only reveal
  publishers, and someone who stops publishing there is still counted until they leave.
- **Webcam** on/off: a publisher's video stream that is present and not disabled (a stream
  whose description mentions "screen" counts as **screenshare** instead).
- **Speech** on/off: measured on each participant's decoded audio — the RMS level of every
  20 ms frame, with hysteresis (:class:`SpeechDetector`). Audio that stops arriving counts as
  silence; someone who stops publishing or leaves stops speaking first.
- **Chat**: TextRoom messages from a user whose username is a present participant's id, or
  whose display name is exactly one present participant's name (other senders cannot be tied to
  a participant and are dropped). ``to`` is the bot's id for a whisper (private message).
- **The end**: the room destroyed → ``call_ended_by_host``; the bot kicked →
  ``bot_kicked_from_call``; Janus timing the session out → ``call_ended_by_platform_idle``; the
  server gone (the long poll and a few quick retries fail), Janus hanging up the bot's media, or
  the media connection failing → ``failed("platform_connection_error")``.

Media for a recorder: :meth:`JanusDriver.set_media_sinks` takes ``on_audio(participant,
frame)`` and ``on_video(participant, frame)``, called on the event loop with every decoded
PyAV frame (audio: 48 kHz mono ``s16``, 20 ms per frame, decoded as each packet arrives:
:class:`DirectAudioReceive`).

Time: keepalives, pacing of outgoing media, and every timeout run on the injected clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import io
import json
import logging
import math
import queue
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import numpy as np
import pylibsrtp
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcrtpreceiver import StreamStatistics
from aiortc.rtp import RtpPacket

from summon.abc import AudioSink, Clock, Driver, DriverError, DriverEvents, Participant, VideoSink
from summon.domain.lifecycle import SubCode
from summon.drivers._janus_api import (
    JanusError,
    JanusGone,
    JanusHandle,
    JanusSession,
    PluginEvent,
)

__all__ = [
    "DRIVER",
    "JanusDriver",
    "SpeechDetector",
    "decode_clip",
    "decode_image",
    "frame_level_dbfs",
]

log = logging.getLogger(__name__)


VIDEOROOM = "janus.plugin.videoroom"
TEXTROOM = "janus.plugin.textroom"

#: Longest wait for Janus to answer the bot's join (it includes the media negotiation).
JOIN_ANSWER_TIMEOUT_S = 20.0
#: ``send_chat`` right after admission waits this long for the chat to be ready.
CHAT_READY_TIMEOUT_S = 10.0
#: Bound on each step of leaving/closing (a polite goodbye must not hold the bot).
CLOSE_STEP_TIMEOUT_S = 3.0
#: A speaking participant whose audio stops arriving for this long has stopped speaking.
AUDIO_GAP_S = 0.5
#: Silence sent after a clip before the bot's microphone goes quiet (no packets).
SILENCE_TAIL_S = 1.0

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms at 48 kHz
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
#: Audio timestamps (sent and received) count samples at 48 kHz.
AUDIO_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
#: Longest clip ``output_audio`` plays (longer ones are cut): bounds memory.
MAX_CLIP_SECONDS = 600
VIDEO_FPS = 5
MAX_VIDEO_WIDTH = 640
_SILENCE_TAIL_FRAMES = round(SILENCE_TAIL_S / FRAME_SECONDS)
INVALID = "invalid_janus_url"
CHAT_UNAVAILABLE = "chat_unavailable"

#: VideoRoom error codes → fatal sub-codes.
_JOIN_ERRORS = {
    426: SubCode.MEETING_NOT_FOUND,  # JANUS_VIDEOROOM_ERROR_NO_SUCH_ROOM
    433: SubCode.MEETING_PASSWORD_INCORRECT,  # JANUS_VIDEOROOM_ERROR_UNAUTHORIZED
    432: SubCode.MEETING_FULL,  # JANUS_VIDEOROOM_ERROR_PUBLISHERS_FULL
}
_TEXTROOM_USERNAME_EXISTS = 420


# -- pure pieces ----------------------------------------------------------------------------------
@dataclass(slots=True)
class SpeechDetector:
    """Speaking or not, from the levels of consecutive audio frames, with hysteresis.

    Speech starts after ``attack_s`` of frames at or above ``on_dbfs`` (a click does not count)
    and stops after ``release_s`` of frames below ``off_dbfs`` (the pauses between words do not
    count). Levels between the two thresholds keep the current state. Time is the audio's own
    (the frames' durations), so the result does not depend on when frames are processed.
    """

    on_dbfs: float = -40.0
    off_dbfs: float = -50.0
    attack_s: float = 0.06
    release_s: float = 0.6
    speaking: bool = False
    _loud: float = 0.0
    _quiet: float = 0.0

    def update(self, level_dbfs: float, seconds: float) -> bool | None:
        """Feed one frame's level; the new state when it changed, else None."""
        if not self.speaking:
            self._loud = self._loud + seconds if level_dbfs >= self.on_dbfs else 0.0
            if self._loud >= self.attack_s - 1e-9:
                self.speaking, self._quiet = True, 0.0
                return True
        else:
            self._quiet = self._quiet + seconds if level_dbfs < self.off_dbfs else 0.0
            if self._quiet >= self.release_s - 1e-9:
                self.speaking, self._loud = False, 0.0
                return False
        return None

    def reset(self) -> bool:
        """Forget everything (the audio stopped for good); True if it was speaking."""
        was = self.speaking
        self.speaking, self._loud, self._quiet = False, 0.0, 0.0
        return was


def frame_level_dbfs(frame: av.AudioFrame) -> float:
    """RMS level of an audio frame in dB relative to full scale (``-inf`` for digital silence).
    Runs for every 20 ms of every participant: packed ``s16`` (what the Opus decoder gives) is
    read straight from the frame's buffer."""
    if frame.format.name == "s16":
        count = frame.samples * len(frame.layout.channels)
        raw = np.frombuffer(memoryview(frame.planes[0]), dtype=np.int16, count=count)
        samples = raw.astype(np.float32)
        energy = float(np.dot(samples, samples)) / (count * 32768.0 * 32768.0) if count else 0.0
    else:
        array = frame.to_ndarray()
        if array.dtype == np.int16:
            scaled = array.astype(np.float32) / 32768.0
        elif array.dtype == np.int32:
            scaled = array.astype(np.float32) / 2147483648.0
        else:
            scaled = array.astype(np.float32)
        energy = float(np.mean(scaled * scaled)) if scaled.size else 0.0
    return 10.0 * math.log10(energy) if energy > 0 else -math.inf


def decode_clip(data: bytes, max_seconds: float = MAX_CLIP_SECONDS) -> np.ndarray:
    """Decode an audio file (MP3, or anything FFmpeg reads) to 48 kHz mono ``int16`` samples,
    at most ``max_seconds`` long. Raises ``DriverError("invalid_media")`` for undecodable data."""
    limit = int(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    total = 0
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise DriverError("invalid_media", "the clip has no audio")
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += chunk.size
                if total >= limit:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.FFmpegError as exc:
        raise DriverError("invalid_media", f"cannot decode the audio clip: {exc}") from None
    if not chunks:
        return np.zeros(0, dtype=np.int16)
    return np.concatenate(chunks)[:limit].astype(np.int16, copy=False)


def decode_image(data: bytes, max_width: int = MAX_VIDEO_WIDTH) -> np.ndarray:
    """Decode an image (JPEG, or anything FFmpeg reads) to a ``yuv420p`` array at most
    ``max_width`` wide, even dimensions. Raises ``DriverError("invalid_media")``."""
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            frame = next(container.decode(video=0))
    except (av.FFmpegError, StopIteration, IndexError) as exc:
        raise DriverError("invalid_media", f"cannot decode the image: {exc}") from None
    width, height = frame.width, frame.height
    if width > max_width:
        height = round(height * max_width / width)
        width = max_width
    width, height = max(2, width - width % 2), max(2, height - height % 2)
    return frame.reformat(width=width, height=height, format="yuv420p").to_ndarray()


# -- outgoing media -------------------------------------------------------------------------------
class _ClipTrack(MediaStreamTrack):
    """The bot's microphone: plays a clip, paced in real time on the clock.

    A clip is followed by :data:`SILENCE_TAIL_S` of silence (the receivers' jitter buffers
    drain smoothly); after that the track sends nothing until the next clip. A bot that is not
    talking therefore costs no encoding and no packets. RTP timestamps keep following real time
    across the pause (``pts`` counts 20 ms steps since the track started).
    """

    kind = "audio"

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock
        self._clip: np.ndarray | None = None
        self._pos = 0
        self._start: float | None = None
        self._count = 0
        self._silent_frames = 0  # sent since the last clip ended
        self._wake = asyncio.Event()

    def play(self, samples: np.ndarray | None) -> None:
        """Play ``samples`` (48 kHz mono int16) from now on, replacing any clip; None stops."""
        self._clip, self._pos = (samples if samples is not None and samples.size else None), 0
        if self._clip is not None:
            self._silent_frames = 0
            self._wake.set()

    @property
    def playing(self) -> bool:
        return self._clip is not None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        while self._clip is None and self._silent_frames >= _SILENCE_TAIL_FRAMES:
            self._wake.clear()
            await self._wake.wait()
        now = self._clock.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._count * FRAME_SECONDS
        if due > now:
            await self._clock.sleep(due - now)
        elif now - due > 0.2:  # after a pause, or the loop stalled: resume at real time
            self._count = math.ceil((now - self._start) / FRAME_SECONDS)
        samples = np.zeros((1, FRAME_SAMPLES), dtype=np.int16)
        clip = self._clip
        if clip is not None:
            chunk = clip[self._pos : self._pos + FRAME_SAMPLES]
            samples[0, : chunk.size] = chunk
            self._pos += FRAME_SAMPLES
            if self._pos >= clip.size:
                self._clip = None
        else:
            self._silent_frames += 1
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._count * FRAME_SAMPLES
        frame.time_base = AUDIO_TIME_BASE
        self._count += 1
        return frame


class _StillTrack(MediaStreamTrack):
    """The bot's camera: one still picture, repeated; nothing at all while there is none."""

    kind = "video"

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self._clock = clock
        self._picture: np.ndarray | None = None
        self._shown = asyncio.Event()
        self._start: float | None = None
        self._time_base = fractions.Fraction(1, 90_000)

    def show(self, picture: np.ndarray | None) -> None:
        """Show ``picture`` (a ``yuv420p`` array) from the next frame on; None: camera off."""
        self._picture = picture
        if picture is None:
            self._shown.clear()
        else:
            self._shown.set()

    @property
    def showing(self) -> bool:
        return self._picture is not None

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self._shown.wait()
        now = self._clock.monotonic()
        if self._start is None:
            self._start = now
        step = 1.0 / VIDEO_FPS
        due = self._start + math.ceil((now - self._start) / step - 1e-9) * step
        if due > now:
            await self._clock.sleep(due - now)
            await self._shown.wait()
        picture = self._picture
        assert picture is not None
        frame = av.VideoFrame.from_ndarray(picture, format="yuv420p")
        frame.pts = round((due - self._start) * 90_000)
        frame.time_base = self._time_base
        return frame


# -- the driver -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Target:
    api_url: str
    room: int | str
    pin: str | None


@dataclass(slots=True)
class _Person:
    participant: Participant
    feed: Any  # the id as Janus gives it (int, or str with string_ids)
    streams: list[dict[str, Any]] = field(default_factory=list)
    webcam: bool = False
    screenshare: bool = False
    speech: SpeechDetector = field(default_factory=SpeechDetector)
    last_audio: float = 0.0  # monotonic time of the last audio frame


class JanusDriver(Driver):
    """A bot in a Janus VideoRoom; see the module docstring for the whole behaviour.

    It delivers media (:meth:`set_media_sinks`); for inspection :attr:`own_id` (the bot's feed
    id once in the call).
    """

    platform = "janus"
    delivers_media = True

    def __init__(
        self,
        meeting_url: dict[str, Any],
        bot_name: str,
        config: dict[str, Any],
        events: DriverEvents,
        clock: Clock,
    ) -> None:
        super().__init__(meeting_url, bot_name, config, events, clock)
        self.on_audio: AudioSink | None = None
        self.on_video: VideoSink | None = None
        self.own_id: str | None = None
        self._target: _Target | None = None
        self._http: aiohttp.ClientSession | None = None
        self._janus: JanusSession | None = None
        self._publisher: JanusHandle | None = None
        self._pub_pc: RTCPeerConnection | None = None
        self._subscriber: _Subscriber | None = None
        self._chat: _Chat | None = None
        self._audio_out: _ClipTrack | None = None
        self._video_out: _StillTrack | None = None
        self._people: dict[str, _Person] = {}
        self._early: list[PluginEvent] | None = []  # events that came before the join's answer
        self._tasks: set[asyncio.Task[Any]] = set()
        self._joining: asyncio.Task[None] | None = None
        self._gap_watch: asyncio.Task[None] | None = None
        self._camera_lock = asyncio.Lock()
        self._camera_published = False
        self._joined = False  # join() was called
        self._in_call = False
        self._over = False  # a final event was reported, or leave()/close() was called
        self._teardown: asyncio.Task[None] | None = None

    # -- the Driver contract ----------------------------------------------------------------------
    async def prepare(self) -> None:
        self._target = _target(self.meeting_url)
        self._audio_out = _ClipTrack(self.clock)
        self._video_out = _StillTrack(self.clock)
        # Connections are opened at join(): a pooled client is cheap, a session Janus would
        # time out while the bot waits for join_at is not.
        self._http = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None), headers={"user-agent": "Summon/1"}
        )

    async def join(self) -> None:
        if self._target is None:
            raise RuntimeError("JanusDriver.join() before prepare()")
        if self._joined:
            raise RuntimeError("JanusDriver.join() called twice")
        self._joined = True
        self._joining = self._spawn(self._join_meeting(), "join")

    async def leave(self) -> None:
        if not self._joined:
            return
        self._over = True
        await self._shut_down()

    async def send_chat(self, to: str, message: str) -> None:
        if not self._in_call or self._over:
            raise DriverError("not_in_call", "the bot is not in the call")
        chat = self._chat
        if chat is None:
            raise DriverError(CHAT_UNAVAILABLE, "this meeting has no chat")
        await chat.wait_ready()
        if to in ("everyone", "everyone_except_host"):  # Janus rooms have no host
            await chat.send(message, None)
            return
        if to == "host":
            raise DriverError("chat_recipient_not_found", "Janus rooms have no host")
        person = self._people.get(to)
        username = chat.username_of(person) if person is not None else None
        if username is None:
            raise DriverError("chat_recipient_not_found", f"participant {to} is not in the chat")
        await chat.send(message, username)

    async def output_audio(self, mp3: bytes | None) -> None:
        if self._audio_out is None:
            raise DriverError("not_in_call", "output_audio before prepare()")
        samples = None if mp3 is None else await asyncio.to_thread(decode_clip, mp3)
        self._audio_out.play(samples)

    async def output_video(self, jpeg: bytes | None) -> None:
        if self._video_out is None:
            raise DriverError("not_in_call", "output_video before prepare()")
        picture = None if jpeg is None else await asyncio.to_thread(decode_image, jpeg)
        self._video_out.show(picture)
        if picture is not None and not self._camera_published and self._in_call:
            try:
                await self._publish_camera()
            except JanusGone as exc:
                raise DriverError(SubCode.PLATFORM_CONNECTION_ERROR, exc.reason) from None

    async def close(self) -> None:
        self._over = True
        if self._joined:
            await self._shut_down()
        if self._http is not None:
            http, self._http = self._http, None
            with contextlib.suppress(Exception):
                await http.close()

    # -- media for a recorder ---------------------------------------------------------------------
    @property
    def audio_decoded_directly(self) -> int:
        """Audio frames decoded as their packets arrived (:class:`DirectAudioReceive`) on the
        current subscription, for tests."""
        subscriber = self._subscriber
        return 0 if subscriber is None else sum(d.decoded for d in subscriber.direct_audio)

    @property
    def audio_packets_from_socket(self) -> int:
        """Audio packets taken straight from the socket (:class:`DirectSrtp`) on the current
        subscription, for tests."""
        subscriber = self._subscriber
        return 0 if subscriber is None else sum(d.packets for d in subscriber.direct_srtp)

    def set_media_sinks(
        self, on_audio: AudioSink | None = None, on_video: VideoSink | None = None
    ) -> None:
        """See :meth:`Driver.set_media_sinks`. Video is subscribed from the moment ``on_video``
        is set (before ``join()``, or any time in the call); without it, no video is received
        or decoded."""
        wanted_video = self.on_video is None and on_video is not None
        self.on_audio, self.on_video = on_audio, on_video
        if wanted_video and self._subscriber is not None and self._in_call and not self._over:
            self._spawn(self._subscriber.refresh(), "subscribe video")

    # -- joining ----------------------------------------------------------------------------------
    async def _join_meeting(self) -> None:
        try:
            await self._connect()
        except asyncio.CancelledError:
            raise
        except DriverError as exc:
            self._fail(exc.sub_code, exc.message)
        except JanusGone as exc:
            self._fail(SubCode.PLATFORM_CONNECTION_ERROR, f"Janus unreachable: {exc.reason}")
        except JanusError as exc:
            self._fail(SubCode.PLATFORM_CONNECTION_ERROR, f"Janus refused the join: {exc}")
        except Exception as exc:
            log.exception("joining the Janus room failed")
            self._fail(SubCode.PLATFORM_CONNECTION_ERROR, f"joining failed: {exc!r}")

    async def _connect(self) -> None:
        target, http = self._target, self._http
        assert target is not None and http is not None
        assert self._audio_out is not None and self._video_out is not None
        janus = self._janus = JanusSession(http, target.api_url, self.clock)
        await janus.create()
        janus.lost.add_done_callback(self._on_session_lost)
        handle = self._publisher = await janus.attach(VIDEOROOM)
        handle.on_event = self._on_publisher_event
        pc = self._pub_pc = _peer_connection()
        pc.on("connectionstatechange", lambda: self._on_pc_state(pc, "the bot's media"))
        pc.addTransceiver(self._audio_out, direction="sendonly")
        if self._video_out.showing:  # a picture before joining: join with the camera on
            pc.addTransceiver(self._video_out, direction="sendonly")
            self._camera_published = True
        await pc.setLocalDescription(await pc.createOffer())
        body: dict[str, Any] = {
            "request": "joinandconfigure",
            "ptype": "publisher",
            "room": target.room,
            "display": self.bot_name,
        }
        if target.pin is not None:
            body["pin"] = target.pin
        offer = {"type": "offer", "sdp": pc.localDescription.sdp}
        try:
            data, jsep = await handle.request(body, offer, timeout=JOIN_ANSWER_TIMEOUT_S)
        except JanusError as exc:
            sub_code = _JOIN_ERRORS.get(exc.code, SubCode.PLATFORM_CONNECTION_ERROR)
            raise DriverError(sub_code, f"Janus VideoRoom: {exc.reason} ({exc.code})") from None
        if data.get("videoroom") != "joined" or jsep is None:
            raise DriverError(SubCode.PLATFORM_CONNECTION_ERROR, f"unexpected join answer: {data}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type=jsep["type"]))
        if self._over:
            return
        self.own_id = str(data["id"])
        self._subscriber = _Subscriber(self, janus, target, data.get("private_id"))
        self._chat = _Chat(self, janus, target)
        self._in_call = True
        self.events.admitted()
        present = [*(data.get("attendees") or []), *(data.get("publishers") or [])]
        for someone in present:  # everyone present joins first, then their media is told
            self._seen(someone.get("id"), someone.get("display"))
        self._on_publishers(data.get("publishers") or [])
        early, self._early = self._early or [], None
        for event in early:
            self._on_publisher_event(event)
        self._spawn(self._chat.start(), "chat")
        if self._video_out.showing and not self._camera_published:  # shown while joining
            self._spawn(self._publish_camera(), "camera")

    async def _publish_camera(self) -> None:
        """Add the camera to the bot's published media (renegotiating with Janus), once.

        The bot joins without a camera unless it already has a picture, so that others do not
        see a camera that shows nothing; the first picture adds it. Janus offers no way to
        announce a camera turned off short of removing the stream, which aiortc cannot
        renegotiate: ``output_video(None)`` stops the frames and leaves the stream."""
        async with self._camera_lock:
            pc, handle, track = self._pub_pc, self._publisher, self._video_out
            if self._camera_published or not self._in_call or self._over:
                return
            assert pc is not None and handle is not None and track is not None
            pc.addTransceiver(track, direction="sendonly")
            self._camera_published = True
            await pc.setLocalDescription(await pc.createOffer())
            offer = {"type": "offer", "sdp": pc.localDescription.sdp}
            try:
                _, jsep = await handle.request({"request": "configure"}, offer)
            except JanusError as exc:
                raise DriverError("video_refused", f"Janus VideoRoom: {exc.reason}") from None
            if jsep is None:
                raise DriverError("video_refused", "Janus did not answer the camera's offer")
            await pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type=jsep["type"]))

    # -- what Janus tells the bot -----------------------------------------------------------------
    def _on_publisher_event(self, event: PluginEvent) -> None:
        if self._over:
            return
        if self._early is not None:
            self._early.append(event)  # handled once the join's answer is in
            return
        data = event.data
        if event.kind == "hangup":
            reason = event.raw.get("reason") or "hangup"
            self._fail(
                SubCode.PLATFORM_CONNECTION_ERROR, f"Janus hung up the bot's media ({reason})"
            )
            return
        if event.kind == "detached":
            self._fail(SubCode.PLATFORM_CONNECTION_ERROR, "Janus detached the bot")
            return
        if event.kind != "event":
            return
        if data.get("videoroom") == "destroyed":
            self._end(SubCode.CALL_ENDED_BY_HOST)
            return
        if "joining" in data:
            joining = data["joining"] or {}
            self._seen(joining.get("id"), joining.get("display"))
        if "publishers" in data:
            self._on_publishers(data["publishers"] or [])
        if "unpublished" in data:
            if data["unpublished"] == "ok":
                self._fail(SubCode.PLATFORM_CONNECTION_ERROR, "Janus unpublished the bot")
                return
            self._unpublished(str(data["unpublished"]))
        for key in ("leaving", "kicked"):
            if key in data:
                who = data[key]
                # "ok": about the bot itself — it did not ask to leave (it would be over), so
                # someone removed it (Janus says reason "kicked").
                if who == "ok" or (self.own_id is not None and str(who) == self.own_id):
                    self._end(SubCode.BOT_KICKED_FROM_CALL)
                    return
                self._left(str(who))
        if "display" in data and "id" in data and len(data.keys() & {"joining", "publishers"}) == 0:
            self._renamed(str(data["id"]), data.get("display"))

    def _seen(self, feed: Any, display: Any) -> _Person | None:
        """Someone is in the room; report them if they are new."""
        if feed is None:
            return None
        pid = str(feed)
        if pid == self.own_id:
            return None
        person = self._people.get(pid)
        if person is None:
            name = str(display) if display else f"Participant {pid}"
            person = self._people[pid] = _Person(Participant(pid, name), feed)
            self.events.participant_joined(person.participant)
        return person

    def _on_publishers(self, publishers: Iterable[dict[str, Any]]) -> None:
        changed = False
        for publisher in publishers:
            person = self._seen(publisher.get("id"), publisher.get("display"))
            if person is None:
                continue
            person.streams = [s for s in publisher.get("streams") or [] if isinstance(s, dict)]
            self._media_state(person)
            changed = True
        if changed and self._subscriber is not None:
            self._spawn(self._subscriber.refresh(), "subscribe")

    def _media_state(self, person: _Person) -> None:
        video = [s for s in person.streams if s.get("type") == "video" and not s.get("disabled")]
        screen = [s for s in video if "screen" in str(s.get("description") or "").lower()]
        webcam, screenshare = len(video) > len(screen), bool(screen)
        if webcam != person.webcam:
            person.webcam = webcam
            self.events.webcam(person.participant, webcam)
        if screenshare != person.screenshare:
            person.screenshare = screenshare
            self.events.screenshare(person.participant, screenshare)

    def _unpublished(self, pid: str) -> None:
        person = self._people.get(pid)
        if person is None:
            return
        self._silence(person)
        person.streams = []
        self._media_state(person)
        if self._subscriber is not None:
            self._subscriber.forget(pid)

    def _left(self, pid: str) -> None:
        person = self._people.get(pid)
        if person is None:
            return
        self._unpublished(pid)
        del self._people[pid]
        self.events.participant_left(person.participant)

    def _renamed(self, pid: str, display: Any) -> None:
        person = self._people.get(pid)
        if person is None or not display or person.participant.name == str(display):
            return
        old = person.participant
        person.participant = Participant(
            old.id, str(display), old.is_host, old.is_bot, old.platform
        )
        self.events.participant_updated(person.participant)

    def _silence(self, person: _Person) -> None:
        if person.speech.reset():
            self.events.speech(person.participant, False)

    # -- incoming media ---------------------------------------------------------------------------
    def _audio_frame(self, pid: str | None, frame: av.AudioFrame) -> None:
        person = self._people.get(pid) if pid is not None else None
        if person is None or self._over:
            return
        seconds = frame.samples / (frame.sample_rate or SAMPLE_RATE)
        person.last_audio = self.clock.monotonic()
        change = person.speech.update(frame_level_dbfs(frame), seconds)
        if change is not None:
            self.events.speech(person.participant, change)
            if change and self._gap_watch is None:
                self._gap_watch = self._spawn(self._watch_gaps(), "audio gaps")
        sink = self.on_audio
        if sink is not None:
            try:
                sink(person.participant, frame)
            except Exception:
                log.exception("the audio sink failed")

    def _audio_gap(self, pid: str | None) -> None:
        """``pid``'s audio track ended: silence, as far as speech goes."""
        person = self._people.get(pid) if pid is not None else None
        if person is not None and not self._over:
            self._silence(person)

    async def _watch_gaps(self) -> None:
        """While someone speaks: audio that stops arriving (a muted or lost sender sends no
        packets, so the detector never sees the quiet) ends their speech. Runs only while
        someone is speaking; checks twice per :data:`AUDIO_GAP_S`."""
        try:
            while not self._over:
                speaking = [p for p in self._people.values() if p.speech.speaking]
                if not speaking:
                    return
                now = self.clock.monotonic()
                for person in speaking:
                    if now - person.last_audio >= AUDIO_GAP_S:
                        self._silence(person)
                await self.clock.sleep(AUDIO_GAP_S / 2)
        finally:
            self._gap_watch = None

    def _video_frame(self, pid: str | None, frame: av.VideoFrame) -> None:
        person = self._people.get(pid) if pid is not None else None
        sink = self.on_video
        if person is None or sink is None or self._over:
            return
        try:
            sink(person.participant, frame)
        except Exception:
            log.exception("the video sink failed")

    # -- chat -------------------------------------------------------------------------------------
    def _chat_from(self, username: str, display: str | None, text: str, whisper: bool) -> None:
        if self._over or not self._in_call:
            return
        person = self._people.get(username)
        if person is None and display:
            named = [p for p in self._people.values() if p.participant.name == display]
            person = named[0] if len(named) == 1 else None
        if person is None:
            log.debug("chat from %r (%r) matches no participant; dropped", username, display)
            return
        to = self.own_id if whisper and self.own_id is not None else "everyone"
        self.events.chat_message(person.participant, text, to)

    # -- the end ----------------------------------------------------------------------------------
    def _on_session_lost(self, lost: asyncio.Future[str]) -> None:
        if lost.cancelled() or self._over:
            return
        janus = self._janus
        if janus is not None and janus.timed_out and self._in_call:
            self._end(SubCode.CALL_ENDED_BY_PLATFORM_IDLE)
        else:
            self._fail(SubCode.PLATFORM_CONNECTION_ERROR, lost.result())

    def _on_pc_state(self, pc: RTCPeerConnection, what: str) -> None:
        if pc.connectionState == "failed":
            self._fail(SubCode.PLATFORM_CONNECTION_ERROR, f"{what}: the media connection failed")

    def _end(self, sub_code: str) -> None:
        if not self._over:
            self._over = True
            self.events.meeting_ended(sub_code)

    def _fail(self, sub_code: str, message: str | None) -> None:
        if not self._over:
            self._over = True
            self.events.failed(sub_code, message)

    async def _shut_down(self) -> None:
        """Leave and let go of everything; one teardown however many callers, bounded."""
        if self._teardown is None:
            self._teardown = asyncio.get_running_loop().create_task(self._tear_down())
        await asyncio.shield(self._teardown)

    async def _tear_down(self) -> None:
        current = asyncio.current_task()
        if self._joining is not None and self._joining is not current:
            self._joining.cancel()
            await asyncio.wait([self._joining], timeout=CLOSE_STEP_TIMEOUT_S)
        janus = self._janus
        polite = janus is not None and janus.alive and self._in_call
        if self._chat is not None:
            await _bounded(self._chat.close(polite=polite))
        if polite and self._publisher is not None:
            await _bounded(self._publisher.request({"request": "leave"}, wait_event=False))
        if self._subscriber is not None:
            await _bounded(self._subscriber.close())
        if self._pub_pc is not None:
            await _bounded(self._pub_pc.close())
        for track in (self._audio_out, self._video_out):
            if track is not None:
                track.stop()
        if janus is not None:
            await _bounded(janus.destroy())
        tasks = [t for t in self._tasks if t is not current and not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=CLOSE_STEP_TIMEOUT_S)
        self._in_call = False

    def _spawn(self, coro: Awaitable[Any], what: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(_logged(coro, what), name=f"janus:{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


class _Subscriber:
    """The bot's one subscription: every publisher's audio (and video when wanted), kept in
    step with the room by ``join``/``update`` and by answering every offer Janus sends.

    Janus hangs a subscription up when its last stream goes (everyone left); a hung-up or
    failed subscription is dropped and made again from scratch for whoever is publishing."""

    def __init__(
        self, driver: JanusDriver, janus: JanusSession, target: _Target, private_id: Any
    ) -> None:
        self._driver = driver
        self._janus = janus
        self._target = target
        self._private_id = private_id
        self.direct_audio: list[DirectAudioReceive] = []
        self.direct_srtp: list[DirectSrtp] = []
        self._handle: JanusHandle | None = None
        self._pc: RTCPeerConnection | None = None
        self._lock = asyncio.Lock()
        self._requested: set[tuple[str, str]] = set()  # (participant id, publisher mid)
        self._mids: dict[str, str] = {}  # our mid → participant id
        self._closed = False

    async def refresh(self) -> None:
        """Subscribe to every wanted stream of every present publisher not subscribed yet."""
        async with self._lock:
            if self._closed:
                return
            want_video = self._driver.on_video is not None
            wanted: list[dict[str, Any]] = []
            for pid, person in list(self._driver._people.items()):
                for stream in person.streams:
                    kind, mid = stream.get("type"), stream.get("mid")
                    if mid is None or stream.get("disabled"):
                        continue
                    wanted_kind = kind == "audio" or (kind == "video" and want_video)
                    if wanted_kind and (pid, str(mid)) not in self._requested:
                        wanted.append({"feed": person.feed, "mid": str(mid)})
                        self._requested.add((pid, str(mid)))
            if not wanted:
                return
            try:
                if self._handle is None:
                    await self._join(wanted)
                else:
                    data, jsep = await self._handle.request(
                        {"request": "update", "subscribe": wanted}
                    )
                    self._note_streams(data)
                    if jsep is not None:
                        await self._answer(jsep)
            except JanusError as exc:
                # A publisher that left meanwhile (no such feed): forget, a later event retries.
                log.info("subscribing to %s failed: %s", wanted, exc)
                for item in wanted:
                    self._requested.discard((str(item["feed"]), item["mid"]))

    def forget(self, pid: str) -> None:
        """``pid`` stopped publishing: Janus drops their streams; subscribe again if they return."""
        self._requested = {key for key in self._requested if key[0] != pid}

    async def _join(self, wanted: list[dict[str, Any]]) -> None:
        handle = await self._janus.attach(VIDEOROOM)
        handle.on_event = lambda event: self._on_event(handle, event)
        self._handle = handle
        pc = self._pc = _peer_connection()
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", lambda: self._on_pc_state(pc))
        body: dict[str, Any] = {
            "request": "join",
            "ptype": "subscriber",
            "room": self._target.room,
            "streams": wanted,
        }
        if self._private_id is not None:
            body["private_id"] = self._private_id
        if self._target.pin is not None:
            body["pin"] = self._target.pin
        data, jsep = await handle.request(body)
        self._note_streams(data)
        if jsep is not None:
            await self._answer(jsep)

    def _on_event(self, handle: JanusHandle, event: PluginEvent) -> None:
        log.debug("subscriber: %s %s", event.kind, event.data)
        if self._closed or handle is not self._handle:
            return
        if event.kind in ("hangup", "detached"):
            self._driver._spawn(self._restart(handle), "resubscribe")
            return
        if event.kind != "event":
            return
        self._note_streams(event.data)
        if event.jsep is not None and event.jsep.get("type") == "offer":
            self._driver._spawn(self._renegotiate(handle, event.jsep), "renegotiate")

    def _on_pc_state(self, pc: RTCPeerConnection) -> None:
        if pc is not self._pc or self._closed:
            return
        if pc.connectionState == "connected":
            for transport in {t.receiver.transport for t in pc.getTransceivers()}:
                direct = DirectSrtp.install(transport)
                if direct is not None and direct not in self.direct_srtp:
                    self.direct_srtp.append(direct)
        elif pc.connectionState == "failed":
            self._driver._spawn(self._restart(self._handle), "resubscribe")

    async def _restart(self, handle: JanusHandle | None) -> None:
        """Drop the subscription ``handle`` (if it is still the current one) and subscribe
        again to everyone publishing."""
        async with self._lock:
            if self._closed or handle is None or handle is not self._handle:
                return
            pc, self._pc, self._handle = self._pc, None, None
            self._requested.clear()
            self._mids.clear()
            self.direct_audio.clear()  # they belong to the dropped connection: let it go
            self.direct_srtp.clear()
        if pc is not None:
            await _bounded(pc.close())
        await _bounded(handle.detach())
        await self.refresh()

    async def _renegotiate(self, handle: JanusHandle, jsep: dict[str, Any]) -> None:
        async with self._lock:
            if not self._closed and handle is self._handle:
                await self._answer(jsep)

    async def _answer(self, offer: dict[str, Any]) -> None:
        pc, handle = self._pc, self._handle
        assert pc is not None and handle is not None
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
        await pc.setLocalDescription(await pc.createAnswer())
        answer = {"type": "answer", "sdp": pc.localDescription.sdp}
        await handle.request({"request": "start"}, answer)

    def _note_streams(self, data: dict[str, Any]) -> None:
        for stream in data.get("streams") or []:
            mid = stream.get("mid")
            if mid is None:
                continue
            feed = stream.get("feed_id")
            if stream.get("active", True) and feed is not None:
                self._mids[str(mid)] = str(feed)
            else:
                self._mids.pop(str(mid), None)

    def _on_track(self, track: MediaStreamTrack) -> None:
        pc = self._pc
        transceiver = None
        if pc is not None:
            transceiver = next((t for t in pc.getTransceivers() if t.receiver.track is track), None)
        if transceiver is None or transceiver.mid is None:
            log.warning("a %s track without a mid; ignored", track.kind)
            return
        mid = transceiver.mid
        if track.kind == "audio":
            direct = DirectAudioReceive.install(
                transceiver.receiver,
                on_frame=lambda frame: self._driver._audio_frame(self._mids.get(mid), frame),
                on_end=lambda: self._driver._audio_gap(self._mids.get(mid)),
            )
            if direct is not None:
                if direct not in self.direct_audio:
                    self.direct_audio.append(direct)
                return
        consume = self._consume_audio if track.kind == "audio" else self._consume_video
        self._driver._spawn(consume(mid, track), f"receive {track.kind} {mid}")

    async def _consume_audio(self, mid: str, track: MediaStreamTrack) -> None:
        driver = self._driver
        while not self._closed:
            try:
                frame = await track.recv()
            except MediaStreamError:
                driver._audio_gap(self._mids.get(mid))
                return
            if isinstance(frame, av.AudioFrame):
                driver._audio_frame(self._mids.get(mid), frame)

    async def _consume_video(self, mid: str, track: MediaStreamTrack) -> None:
        # Frames are taken off the track even without a sink: aiortc queues them unbounded.
        while not self._closed:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.VideoFrame):
                self._driver._video_frame(self._mids.get(mid), frame)

    async def close(self) -> None:
        self._closed = True
        if self._pc is not None:
            await self._pc.close()
        if self._handle is not None:
            await self._handle.detach()


class _Chat:
    """The TextRoom twin of the VideoRoom room, over a data channel."""

    def __init__(self, driver: JanusDriver, janus: JanusSession, target: _Target) -> None:
        self._driver = driver
        self._janus = janus
        self._target = target
        self._handle: JanusHandle | None = None
        self._pc: RTCPeerConnection | None = None
        self._channel: RTCDataChannel | None = None
        self._ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._users: dict[str, str | None] = {}  # username → display
        self.username = driver.own_id or f"summon-{secrets.token_hex(6)}"
        self._joined = False

    async def start(self) -> None:
        """Attach, negotiate the data channel and join; failures make the chat unavailable."""
        try:
            handle = self._handle = await self._janus.attach(TEXTROOM)
            pc = self._pc = _peer_connection()
            _, offer = await handle.request({"request": "setup"})
            if offer is None:
                raise JanusError(0, "TextRoom sent no offer")
            await pc.setRemoteDescription(
                RTCSessionDescription(sdp=offer["sdp"], type=offer["type"])
            )
            channel = self._channel = pc.createDataChannel("JanusDataChannel")
            channel.on("message", self._on_message)
            opened = asyncio.Event()
            channel.on("open", opened.set)
            await pc.setLocalDescription(await pc.createAnswer())
            answer = {"type": "answer", "sdp": pc.localDescription.sdp}
            await handle.request({"request": "ack"}, answer)
            await self._within(opened.wait(), CHAT_READY_TIMEOUT_S, "the chat channel to open")
            await self._join()
        except asyncio.CancelledError:
            self._unavailable("the bot left")
            raise
        except (JanusError, JanusGone, DriverError, OSError) as exc:
            log.info("chat unavailable in room %s: %s", self._target.room, exc)
            self._unavailable(str(exc))
            return
        self._joined = True
        if not self._ready.done():
            self._ready.set_result(None)

    async def _join(self) -> None:
        body: dict[str, Any] = {
            "textroom": "join",
            "room": self._target.room,
            "username": self.username,
            "display": self._driver.bot_name,
        }
        if self._target.pin is not None:
            body["pin"] = self._target.pin
        try:
            answer = await self._call(body)
        except JanusError as exc:
            if exc.code != _TEXTROOM_USERNAME_EXISTS:
                raise
            self.username = f"summon-{secrets.token_hex(6)}"
            answer = await self._call({**body, "username": self.username})
        for user in answer.get("participants") or []:
            if isinstance(user, dict) and user.get("username"):
                self._users[str(user["username"])] = user.get("display")

    async def wait_ready(self) -> None:
        await self._within(asyncio.shield(self._ready), CHAT_READY_TIMEOUT_S, "the chat")

    def username_of(self, person: _Person) -> str | None:
        if person.participant.id in self._users:
            return person.participant.id
        named = [u for u, d in self._users.items() if d == person.participant.name]
        return named[0] if len(named) == 1 else None

    async def send(self, text: str, to: str | None) -> None:
        body: dict[str, Any] = {"textroom": "message", "room": self._target.room, "text": text}
        if to is not None:
            body["to"] = to
        try:
            await self._call(body)
        except JanusError as exc:
            raise DriverError(
                "chat_refused", f"Janus TextRoom: {exc.reason} ({exc.code})"
            ) from None

    async def _call(self, body: dict[str, Any]) -> dict[str, Any]:
        channel = self._channel
        if channel is None or channel.readyState != "open":
            raise DriverError(CHAT_UNAVAILABLE, "the chat channel is closed")
        transaction = secrets.token_hex(8)
        waiter = asyncio.get_running_loop().create_future()
        self._pending[transaction] = waiter
        try:
            channel.send(json.dumps({**body, "transaction": transaction}))
            answer = await self._within(
                waiter, CHAT_READY_TIMEOUT_S, f"TextRoom {body['textroom']}"
            )
        finally:
            self._pending.pop(transaction, None)
        if answer.get("textroom") == "error":
            raise JanusError(int(answer.get("error_code") or 0), str(answer.get("error") or ""))
        return answer

    def _on_message(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if not isinstance(message, dict):
            return
        transaction = message.get("transaction")
        waiter = self._pending.get(transaction) if isinstance(transaction, str) else None
        if waiter is not None and not waiter.done():
            waiter.set_result(message)
            return
        kind = message.get("textroom")
        if kind == "join" and message.get("username"):
            self._users[str(message["username"])] = message.get("display")
        elif kind == "leave" and message.get("username"):
            self._users.pop(str(message["username"]), None)
        elif kind == "message" and message.get("from") and isinstance(message.get("text"), str):
            sender = str(message["from"])
            if sender != self.username:
                display = self._users.get(sender)
                self._driver._chat_from(
                    sender, display, message["text"], bool(message.get("whisper"))
                )

    async def _within(self, aw: Awaitable[Any], seconds: float, what: str) -> Any:
        task = asyncio.ensure_future(aw)
        alarm = asyncio.ensure_future(self._driver.clock.sleep(seconds))
        try:
            await asyncio.wait({task, alarm}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            alarm.cancel()
        if not task.done():
            task.cancel()
            raise DriverError(CHAT_UNAVAILABLE, f"no answer from {what} within {seconds:g} s")
        return task.result()

    def _unavailable(self, reason: str) -> None:
        if not self._ready.done():
            self._ready.set_exception(DriverError(CHAT_UNAVAILABLE, f"no chat: {reason}"))
            self._ready.exception()  # retrieved: maybe nobody ever waits for the chat

    async def close(self, *, polite: bool) -> None:
        self._unavailable("the bot left")
        if polite and self._joined:
            with contextlib.suppress(Exception):
                channel = self._channel
                if channel is not None and channel.readyState == "open":
                    leave = {"textroom": "leave", "room": self._target.room}
                    channel.send(json.dumps({**leave, "transaction": secrets.token_hex(8)}))
        if self._pc is not None:
            await self._pc.close()
        if self._handle is not None:
            await self._handle.detach()


# -- helpers --------------------------------------------------------------------------------------
def _target(meeting_url: dict[str, Any]) -> _Target:
    host, port, room = meeting_url.get("host"), meeting_url.get("port"), meeting_url.get("room")
    pin = meeting_url.get("pin")
    if not isinstance(host, str) or not host or ("/" in host) or ("@" in host):
        raise DriverError(INVALID, "meeting_url.host must be a host name or address")
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise DriverError(INVALID, "meeting_url.port must be a port number")
    if not isinstance(room, str) or not room or not all(c.isalnum() or c in "_-" for c in room):
        raise DriverError(INVALID, "meeting_url.room must be a room id")
    if pin is not None and not isinstance(pin, str):
        raise DriverError(INVALID, "meeting_url.pin must be a string")
    scheme = "https" if meeting_url.get("secure") else "http"
    netloc = f"[{host}]" if ":" in host else host
    room_id: int | str = int(room) if room.isdigit() and len(room) <= 18 else room
    return _Target(f"{scheme}://{netloc}:{port}/janus", room_id, pin)


class DirectAudioReceive:
    """An audio receiver whose packets are decoded as they arrive and handed straight to the
    driver.

    For every 20 ms packet aiortc's receiver notes the source's time, feeds the RTCP
    statistics, puts the packet through a jitter buffer (which holds back the first four
    packets: 80 ms), hands the encoded frame to a decoder thread per track through a
    ``queue.Queue``, and the thread hands the decoded frame back with
    ``run_coroutine_threadsafe`` to an ``asyncio.Queue`` that a task awaits on the track: two
    thread switches and a task switch per packet, which cost more than decoding. Installed on a
    receiver before it starts, this object takes its ``_handle_rtp_packet``: :meth:`handle`
    keeps the RTCP statistics (receiver reports still go out), drops duplicates and packets that
    arrive after a later one (Opus conceals a missing 20 ms; the recorder places frames by
    arrival time anyway), decodes at once and calls ``on_frame`` on the event loop. It also
    stands in for the decoder queue: the thread aiortc still starts waits in :meth:`get` for the
    end, and the end (the receiver stops) calls ``on_end``. Known to aiortc 1.x's receiver
    layout (its private ``__codecs``, ``__remote_streams`` and ``__decoder_queue``); with any
    other the receiver is left alone and its track is read as usual.
    """

    _SLOTS = (
        "_RTCRtpReceiver__codecs",
        "_RTCRtpReceiver__remote_streams",
        "_RTCRtpReceiver__decoder_queue",
    )

    def __init__(
        self,
        receiver: Any,
        on_frame: Callable[[av.AudioFrame], None],
        on_end: Callable[[], None],
    ) -> None:
        codecs, streams, _ = (getattr(receiver, slot) for slot in self._SLOTS)
        self._receiver = receiver
        self._codecs: dict[int, Any] = codecs
        self._streams: dict[int, Any] = streams
        self._on_frame = on_frame
        self._on_end = on_end
        self._end: queue.Queue[None] = queue.Queue()
        self._ended = False
        self._decoder: Any = None
        self._decoder_codec: str | None = None
        self._ssrc: int | None = None
        self._last_seq = 0
        self.decoded = 0  # frames decoded here
        self.dropped = 0  # duplicate or late packets

    @classmethod
    def install(
        cls, receiver: Any, on_frame: Callable[[av.AudioFrame], None], on_end: Callable[[], None]
    ) -> DirectAudioReceive | None:
        """Take over ``receiver`` (if it has not started); the instance, or None when the
        receiver is not one this knows how to take over."""
        current = getattr(receiver, "_RTCRtpReceiver__decoder_queue", None)
        if isinstance(current, cls):
            return current
        if (
            getattr(receiver, "_RTCRtpReceiver__started", True)
            or not isinstance(current, queue.Queue)
            or not all(isinstance(getattr(receiver, slot, None), dict) for slot in cls._SLOTS[:2])
            or not callable(getattr(receiver, "_handle_rtp_packet", None))
        ):
            return None
        direct = cls(receiver, on_frame, on_end)
        receiver._RTCRtpReceiver__decoder_queue = direct
        receiver._handle_rtp_packet = direct.handle
        return direct

    async def handle(self, packet: Any, arrival_time_ms: int) -> None:
        """What the receiver does with each RTP packet (see the class docstring)."""
        self.receive(packet)

    def receive(self, packet: Any) -> None:
        """:meth:`handle`, called directly (:class:`DirectSrtp`)."""
        if not getattr(self._receiver, "_enabled", True) or self._ended:
            return
        codec = self._codecs.get(packet.payload_type)
        if codec is None or codec.name.lower() == "rtx":
            return
        stats = self._streams.get(packet.ssrc)
        if stats is None:
            stats = self._streams[packet.ssrc] = StreamStatistics(codec.clockRate)
        stats.add(packet)
        seq = packet.sequence_number
        if packet.ssrc != self._ssrc:  # a new source: its numbering starts afresh
            self._ssrc = packet.ssrc
        elif not 0 < (seq - self._last_seq) & 0xFFFF < 0x8000:  # a duplicate, or late
            self.dropped += 1
            return
        self._last_seq = seq
        if not packet.payload:
            return
        if codec.name != self._decoder_codec:
            self._decoder, self._decoder_codec = _audio_decoder(codec), codec.name
        try:
            frames = self._decoder.decode(
                JitterFrame(data=packet.payload, timestamp=packet.timestamp)
            )
        except av.FFmpegError as exc:
            log.debug("an undecodable %s frame: %s", codec.name, exc)
            return
        for frame in frames:
            self.decoded += 1
            self._on_frame(frame)

    # -- the decoder queue aiortc's receiver and its thread see ------------------------------------
    def put(self, task: tuple[Any, Any] | None) -> None:
        """Only the end comes here (the receiver stops): release the thread, end the audio."""
        if task is None and not self._ended:
            self._ended = True
            self._end.put(None)
            self._on_end()

    def get(self) -> None:
        """What aiortc's decoder thread waits on: only the end."""
        return self._end.get()


class DirectSrtp:
    """Audio packets taken from the socket straight to their :class:`DirectAudioReceive`.

    Below aiortc's receivers every datagram goes through aioice, which first parses it as a
    STUN message (failing, with an exception, for every media packet), then through an
    ``asyncio.Queue`` to the reading task of the DTLS transport, which decrypts, parses and
    routes it: a task switch and a handful of coroutine frames per 20 ms packet. Installed on
    the sockets of a connected peer connection, this takes each SRTP packet whose source (SSRC)
    belongs to a receiver with :class:`DirectAudioReceive` through SRTP, RTP parsing and that
    receiver, in the socket's callback; everything else (STUN, DTLS, RTCP, video, sources not
    routed yet) goes the usual way. Known to aiortc 1.x and aioice internals (the DTLS
    transport's ``_rx_srtp``, ``_rtp_router`` and ``_rtp_header_extensions_map``; the ICE
    connection's ``_protocols``); with others nothing is installed.
    """

    def __init__(self, dtls: Any) -> None:
        self._dtls = dtls
        self._router = dtls._rtp_router
        self._extensions = dtls._rtp_header_extensions_map
        self.packets = 0  # taken directly

    @classmethod
    def install(cls, dtls: Any) -> DirectSrtp | None:
        """Take ``dtls``'s audio packets directly (once); the instance, or None."""
        current = getattr(dtls, "_summon_direct_srtp", None)
        if isinstance(current, cls):
            return current
        connection = getattr(getattr(dtls, "transport", None), "_connection", None)
        protocols = getattr(connection, "_protocols", None)
        router = getattr(dtls, "_rtp_router", None)
        if (
            not isinstance(protocols, list)
            or not protocols
            or not isinstance(getattr(router, "ssrc_table", None), dict)
            or not hasattr(dtls, "_rx_srtp")
            or not hasattr(dtls, "_rtp_header_extensions_map")
        ):
            return None
        direct = cls(dtls)
        for protocol in protocols:
            protocol.datagram_received = direct._wrap(protocol.datagram_received)
        dtls._summon_direct_srtp = direct
        return direct

    def _wrap(self, usual: Callable[[Any, Any], None]) -> Callable[[Any, Any], None]:
        def datagram_received(data: Any, addr: Any) -> None:
            if not self._take(data):
                usual(data, addr)

        return datagram_received

    def _take(self, data: bytes) -> bool:
        """Whether ``data`` was an audio packet for a direct receiver (and was handled)."""
        # RTP: version 2 (first byte 128-191; STUN starts with 0-3, DTLS with 20-63), and not
        # RTCP (second byte 192-223).
        if len(data) < 12 or not 127 < data[0] < 192 or 191 < data[1] < 224:
            return False
        srtp = self._dtls._rx_srtp
        if srtp is None:
            return False
        receiver = self._router.ssrc_table.get(int.from_bytes(data[8:12], "big"))
        direct = getattr(receiver, "_RTCRtpReceiver__decoder_queue", None)
        if not isinstance(direct, DirectAudioReceive):
            return False
        try:
            packet = RtpPacket.parse(srtp.unprotect(data), self._extensions)
        except (pylibsrtp.Error, ValueError) as exc:
            log.debug("x an audio packet dropped: %s", exc)
            return True
        self.packets += 1
        try:
            direct.receive(packet)
        except Exception:
            log.exception("an audio packet could not be handled")
        return True


class _MonoOpusDecoder:
    """Opus decoded to 48 kHz mono: what the recorder, the speech detector and the transcriber
    all use. aiortc's decoder gives stereo (two identical channels for a voice), which costs
    more to decode and is halved again by each of them."""

    def __init__(self) -> None:
        self._codec = av.CodecContext.create("libopus", "r")
        self._codec.format = "s16"
        self._codec.layout = "mono"
        self._codec.sample_rate = SAMPLE_RATE

    def decode(self, encoded: JitterFrame) -> list[av.AudioFrame]:
        packet = av.Packet(encoded.data)
        packet.pts = encoded.timestamp
        packet.time_base = AUDIO_TIME_BASE
        return self._codec.decode(packet)  # type: ignore[return-value]


def _audio_decoder(codec: Any) -> Any:
    return _MonoOpusDecoder() if codec.name.lower() == "opus" else get_decoder(codec)


def _peer_connection() -> RTCPeerConnection:
    # No STUN/TURN servers: aiortc would otherwise ask a public STUN server for an address.
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def _bounded(aw: Awaitable[Any], seconds: float = CLOSE_STEP_TIMEOUT_S) -> None:
    """Await a cleanup step for at most ``seconds``; its failure is logged, never raised."""
    try:
        await asyncio.wait_for(aw, seconds)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - cleanup is best effort by contract
        log.debug("Janus cleanup step failed: %r", exc)


async def _logged(aw: Awaitable[Any], what: str) -> Any:
    try:
        return await aw
    except asyncio.CancelledError:
        raise
    except (JanusGone, MediaStreamError) as exc:
        log.debug("janus %s stopped: %r", what, exc)
    except Exception:
        log.exception("janus %s failed", what)
    return None


DRIVER = JanusDriver
