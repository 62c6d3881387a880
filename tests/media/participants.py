"""Scripted meeting participants: aiortc peers that take part in a Janus room like people do.

A :class:`ScriptedParticipant` joins the VideoRoom as a publisher — a microphone that speaks a
real recorded sentence (made with ``espeak-ng``) when told to and is silent otherwise, and
optionally a camera showing a generated picture — chats through the TextRoom (username = its
VideoRoom id, display = its name), and can *watch* another publisher (the bot): it subscribes
to that feed and keeps what it hears (audio levels) and sees (decoded frames' mean colour).

Also here: :class:`DriverLog`, a :class:`summon.abc.DriverEvents` that records everything a
driver reports and lets a test wait for a condition; and media makers (speech WAV, MP3, JPEG).

Everything waits for conditions with timeouts; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import fractions
import io
import json
import math
import secrets
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from summon.abc import Participant, Word
from summon.clock import SystemClock
from summon.drivers._janus_api import JanusHandle, JanusSession, PluginEvent

__all__ = [
    "DriverLog",
    "ScriptedParticipant",
    "espeak_unavailable",
    "jpeg_bytes",
    "mp3_bytes",
    "poll_until",
    "speech_samples",
    "speech_wav",
    "wait_until",
]

SAMPLE_RATE = 48_000
FRAME = 960
DEFAULT_TIMEOUT_S = 20.0


async def wait_until(
    condition: Callable[[], bool], changed: asyncio.Condition, timeout: float, what: str
) -> None:
    """Wait until ``condition()`` holds, re-checking whenever ``changed`` is notified."""

    async def check() -> None:
        async with changed:
            await changed.wait_for(condition)

    try:
        await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None


async def poll_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until ``condition()`` holds, for state that announces no change: re-checked every
    50 ms."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)


# -- what a driver reports -------------------------------------------------------------------------
@dataclass
class DriverLog:
    """Records every :class:`~summon.abc.DriverEvents` call as ``(name, *args)``."""

    calls: list[tuple[Any, ...]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def _add(self, *call: Any) -> None:
        self.calls.append(call)
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def of(self, name: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == name]

    def about(self, name: str, participant_name: str) -> list[tuple[Any, ...]]:
        """Calls ``name`` whose participant is called ``participant_name``."""
        return [
            c
            for c in self.of(name)
            if isinstance(c[1], Participant) and c[1].name == participant_name
        ]

    async def wait(
        self, condition: Callable[[], bool], what: str, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        await wait_until(condition, self.changed, timeout, what)

    # DriverEvents
    def waiting_room(self) -> None:
        self._add("waiting_room")

    def admitted(self) -> None:
        self._add("admitted")

    def participant_joined(self, p: Participant) -> None:
        self._add("participant_joined", p)

    def participant_left(self, p: Participant) -> None:
        self._add("participant_left", p)

    def participant_updated(self, p: Participant) -> None:
        self._add("participant_updated", p)

    def speech(self, p: Participant, speaking: bool) -> None:
        self._add("speech", p, speaking)

    def webcam(self, p: Participant, on: bool) -> None:
        self._add("webcam", p, on)

    def screenshare(self, p: Participant, on: bool) -> None:
        self._add("screenshare", p, on)

    def chat_message(self, p: Participant, text: str, to: str) -> None:
        self._add("chat_message", p, text, to)

    def transcript(self, p: Participant, words: list[Word], final: bool) -> None:
        self._add("transcript", p, words, final)

    def recording_permission(self, granted: bool) -> None:
        self._add("recording_permission", granted)

    def meeting_ended(self, sub_code: str) -> None:
        self._add("meeting_ended", sub_code)

    def failed(self, sub_code: str, message: str | None = None) -> None:
        self._add("failed", sub_code, message)


# -- media makers ----------------------------------------------------------------------------------
def espeak_unavailable() -> str | None:
    return None if shutil.which("espeak-ng") else "espeak-ng is not installed"


def speech_wav(folder: Path, text: str) -> Path:
    """``text`` spoken by espeak-ng, as a WAV file in ``folder``."""
    path = folder / f"speech-{secrets.token_hex(4)}.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(path), text], check=True, capture_output=True, timeout=30
    )
    return path


def speech_samples(path: Path) -> np.ndarray:
    """An audio file as 48 kHz mono int16 samples."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(frame))
        chunks.extend(out.to_ndarray().reshape(-1) for out in resampler.resample(None))
    return np.concatenate(chunks).astype(np.int16)


def mp3_bytes(path: Path) -> bytes:
    """An audio file re-encoded as MP3 (what the API's ``output_audio`` carries)."""
    out = io.BytesIO()
    samples = speech_samples(path)
    with av.open(out, mode="w", format="mp3") as container:
        stream = container.add_stream("libmp3lame", rate=SAMPLE_RATE, layout="mono")
        for start in range(0, samples.size, 1152):
            chunk = samples[start : start + 1152].reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
            frame.sample_rate = SAMPLE_RATE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def picture(rgb: tuple[int, int, int], width: int = 320, height: int = 240) -> np.ndarray:
    """A ``height × width`` RGB picture: ``rgb`` with a white bar (so it is not flat)."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:, :] = rgb
    image[height // 2 - 4 : height // 2 + 4, :] = 255
    return image


def jpeg_bytes(rgb: tuple[int, int, int], width: int = 640, height: int = 360) -> bytes:
    """A JPEG of :func:`picture` (what the API's ``output_video`` carries)."""
    codec = av.CodecContext.create("mjpeg", "w")
    codec.width, codec.height, codec.pix_fmt = width, height, "yuvj420p"
    codec.time_base = fractions.Fraction(1, 1)
    frame = av.VideoFrame.from_ndarray(picture(rgb, width, height), format="rgb24")
    packets = codec.encode(frame.reformat(format="yuvj420p")) + codec.encode(None)
    return b"".join(bytes(packet) for packet in packets)


# -- tracks ----------------------------------------------------------------------------------------
class Voice(MediaStreamTrack):
    """A microphone: silence, or the speech clip while :meth:`say` plays it."""

    kind = "audio"

    def __init__(self, samples: np.ndarray | None) -> None:
        super().__init__()
        self._samples = samples
        self._pos: int | None = None
        self._start: float | None = None
        self._count = 0
        self.done = asyncio.Event()

    def say(self) -> float:
        """Start speaking the clip; returns its duration in seconds."""
        assert self._samples is not None, "this participant has nothing to say"
        self.done.clear()
        self._pos = 0
        return self._samples.size / SAMPLE_RATE

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self._count * FRAME / SAMPLE_RATE
        if due > loop.time():
            await asyncio.sleep(due - loop.time())  # real-time pacing of a live source
        chunk = np.zeros((1, FRAME), dtype=np.int16)
        if self._pos is not None and self._samples is not None:
            part = self._samples[self._pos : self._pos + FRAME]
            chunk[0, : part.size] = part
            self._pos += FRAME
            if self._pos >= self._samples.size:
                self._pos = None
                self.done.set()
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._count * FRAME
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._count += 1
        return frame


class Camera(MediaStreamTrack):
    """A camera showing one picture at 10 frames/s."""

    kind = "video"

    def __init__(self, rgb: tuple[int, int, int]) -> None:
        super().__init__()
        self._image = picture(rgb)
        self._start: float | None = None
        self._count = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        due = self._start + self._count / 10
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
        frame = av.VideoFrame.from_ndarray(self._image, format="rgb24").reformat(format="yuv420p")
        frame.pts = self._count * 9000
        frame.time_base = fractions.Fraction(1, 90_000)
        self._count += 1
        return frame


def _pc() -> RTCPeerConnection:
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: nothing leaves the netns


def _rms_dbfs(frame: av.AudioFrame) -> float:
    samples = frame.to_ndarray().astype(np.float32) / 32768.0
    rms = float(np.sqrt(np.mean(samples * samples))) if samples.size else 0.0
    return 20 * math.log10(rms) if rms > 0 else -math.inf


# -- the participant -------------------------------------------------------------------------------
class ScriptedParticipant:
    """One person in a Janus room, driven by the test. ``speech``: samples to :meth:`say`;
    ``camera``: an RGB colour to show, or None for no camera."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        api_url: str,
        room: int,
        name: str,
        *,
        pin: str | None = None,
        speech: np.ndarray | None = None,
        camera: tuple[int, int, int] | None = None,
    ) -> None:
        self.name = name
        self._http, self._api_url, self._room, self._pin = http, api_url, room, pin
        self._voice = Voice(speech)
        self._camera = Camera(camera) if camera is not None else None
        self.session: JanusSession | None = None
        self._pub: JanusHandle | None = None
        self._pub_pc: RTCPeerConnection | None = None
        self.feed_id: int | None = None
        self.private_id: int | None = None
        self.changed = asyncio.Condition()
        self.published = False
        self.publishers: dict[str, dict[str, Any]] = {}  # others' feeds, by id
        # chat
        self._chat_pc: RTCPeerConnection | None = None
        self._channel: RTCDataChannel | None = None
        self._chat_handle: JanusHandle | None = None
        self.chat_inbox: list[dict[str, Any]] = []
        self._chat_waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        # watching another publisher (the bot)
        self._watch_pc: RTCPeerConnection | None = None
        self._watch_handle: JanusHandle | None = None
        self.heard_dbfs: list[float] = []
        self.seen_colors: list[tuple[float, float, float]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def _poke(self) -> None:
        asyncio.get_running_loop().create_task(self._notify())

    async def wait(
        self, condition: Callable[[], bool], what: str, timeout: float = DEFAULT_TIMEOUT_S
    ) -> None:
        await wait_until(condition, self.changed, timeout, f"{self.name}: {what}")

    # -- joining and publishing --------------------------------------------------------------------
    async def join(self) -> None:
        """Join as a publisher and wait until Janus has the media flowing."""
        self.session = JanusSession(self._http, self._api_url, SystemClock())
        await self.session.create()
        self._pub = await self.session.attach("janus.plugin.videoroom")
        self._pub.on_event = self._on_pub_event
        pc = self._pub_pc = _pc()
        pc.addTransceiver(self._voice, direction="sendonly")
        if self._camera is not None:
            pc.addTransceiver(self._camera, direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        body: dict[str, Any] = {
            "request": "joinandconfigure",
            "ptype": "publisher",
            "room": self._room,
            "display": self.name,
        }
        if self._pin is not None:
            body["pin"] = self._pin
        data, jsep = await self._pub.request(
            body, {"type": "offer", "sdp": pc.localDescription.sdp}
        )
        assert data.get("videoroom") == "joined", data
        assert jsep is not None
        self.feed_id, self.private_id = data["id"], data.get("private_id")
        for publisher in data.get("publishers") or []:
            self.publishers[str(publisher["id"])] = publisher
        await pc.setRemoteDescription(RTCSessionDescription(sdp=jsep["sdp"], type=jsep["type"]))
        await self.wait(lambda: self.published, "media up (webrtcup)")

    def _on_pub_event(self, event: PluginEvent) -> None:
        if event.kind == "webrtcup":
            self.published = True
        for publisher in event.data.get("publishers") or []:
            self.publishers[str(publisher["id"])] = publisher
        for key in ("unpublished", "leaving"):
            if key in event.data:
                self.publishers.pop(str(event.data[key]), None)
        self._poke()

    async def say(self) -> float:
        """Start saying the sentence; its duration in seconds."""
        return self._voice.say()

    async def said(self, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        """Wait until the sentence has been sent."""
        await asyncio.wait_for(self._voice.done.wait(), timeout)

    async def unpublish(self) -> None:
        assert self._pub is not None
        await self._pub.request({"request": "unpublish"})
        if self._pub_pc is not None:
            await self._pub_pc.close()

    async def kick(self, feed_id: int | str) -> None:
        """Remove someone from the room, as a host would."""
        assert self._pub is not None
        data, _ = await self._pub.request(
            {"request": "kick", "room": self._room, "id": int(feed_id)}
        )
        assert data.get("videoroom") == "success", data

    async def end_meeting(self) -> None:
        """Destroy the room, as a host ending the meeting would."""
        assert self._pub is not None
        data, _ = await self._pub.request({"request": "destroy", "room": self._room})
        assert data.get("videoroom") == "destroyed", data

    async def leave(self) -> None:
        """Leave the room (politely) and close everything."""
        if self._pub is not None and self.session is not None and self.session.alive:
            await self._pub.request({"request": "leave"}, wait_event=False)
        await self.close()

    # -- chat --------------------------------------------------------------------------------------
    async def open_chat(self) -> None:
        """Join the TextRoom twin (username = the VideoRoom id)."""
        assert self.session is not None and self.feed_id is not None
        handle = self._chat_handle = await self.session.attach("janus.plugin.textroom")
        pc = self._chat_pc = _pc()
        _, offer = await handle.request({"request": "setup"})
        assert offer is not None
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
        channel = self._channel = pc.createDataChannel("JanusDataChannel")
        opened = asyncio.Event()
        channel.on("open", opened.set)
        channel.on("message", self._on_chat)
        await pc.setLocalDescription(await pc.createAnswer())
        await handle.request({"request": "ack"}, {"type": "answer", "sdp": pc.localDescription.sdp})
        await asyncio.wait_for(opened.wait(), DEFAULT_TIMEOUT_S)
        body: dict[str, Any] = {
            "textroom": "join",
            "room": self._room,
            "username": str(self.feed_id),
            "display": self.name,
        }
        if self._pin is not None:
            body["pin"] = self._pin
        answer = await self._chat_call(body)
        assert answer.get("textroom") == "success", answer

    async def chat(self, text: str, to: str | None = None) -> None:
        body: dict[str, Any] = {"textroom": "message", "room": self._room, "text": text}
        if to is not None:
            body["to"] = to
        answer = await self._chat_call(body)
        assert answer.get("textroom") == "success", answer

    async def _chat_call(self, body: dict[str, Any]) -> dict[str, Any]:
        assert self._channel is not None
        transaction = secrets.token_hex(6)
        waiter = asyncio.get_running_loop().create_future()
        self._chat_waiting[transaction] = waiter
        self._channel.send(json.dumps({**body, "transaction": transaction}))
        try:
            return await asyncio.wait_for(waiter, DEFAULT_TIMEOUT_S)
        finally:
            self._chat_waiting.pop(transaction, None)

    def _on_chat(self, raw: str | bytes) -> None:
        message = json.loads(raw)
        waiter = self._chat_waiting.get(message.get("transaction"))
        if waiter is not None and not waiter.done():
            waiter.set_result(message)
            return
        if message.get("textroom") == "message" and message.get("from") != str(self.feed_id):
            self.chat_inbox.append(message)  # (TextRoom echoes our own messages back)
            self._poke()

    # -- watching the bot --------------------------------------------------------------------------
    async def watch(self, feed_id: int | str) -> None:
        """Subscribe to every stream of ``feed_id``; keep levels heard and colours seen."""
        assert self.session is not None
        handle = self._watch_handle = await self.session.attach("janus.plugin.videoroom")
        pc = self._watch_pc = _pc()
        pc.on("track", self._on_watch_track)
        body: dict[str, Any] = {
            "request": "join",
            "ptype": "subscriber",
            "room": self._room,
            "streams": [{"feed": int(feed_id)}],
        }
        if self._pin is not None:
            body["pin"] = self._pin
        _, offer = await handle.request(body)
        assert offer is not None
        await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
        await pc.setLocalDescription(await pc.createAnswer())
        await handle.request(
            {"request": "start"}, {"type": "answer", "sdp": pc.localDescription.sdp}
        )

    def _on_watch_track(self, track: MediaStreamTrack) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._receive(track)))

    async def _receive(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.AudioFrame):
                self.heard_dbfs.append(_rms_dbfs(frame))
            elif isinstance(frame, av.VideoFrame):
                r, g, b = frame.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
                self.seen_colors.append((float(r), float(g), float(b)))
            self._poke()

    # -- the end -----------------------------------------------------------------------------------
    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for pc in (self._watch_pc, self._chat_pc, self._pub_pc):
            if pc is not None:
                await asyncio.wait_for(pc.close(), 10)
        for track in (self._voice, self._camera):
            if track is not None:
                track.stop()
        if self.session is not None:
            await self.session.destroy()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
