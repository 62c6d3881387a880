"""The Janus driver against a real Janus server, with scripted aiortc participants.

Everything runs inside a private network namespace (see ``tests/media/__init__.py``): Janus
(its own configuration), the bot's driver (in this process: the test's thread enters the
namespace) and the participants. Participants speak real speech made with espeak-ng and show
generated pictures; the bot's output is checked by a participant that watches it.

The first tests are quick checks of the driver's pure pieces (no server).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import math
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiortc")

import aiohttp
import av
import numpy as np
from aiohttp import web

from summon.abc import DriverError
from summon.clock import SystemClock
from summon.domain.meeting_urls import parse_meeting_url
from summon.drivers import _janus_api as janus_api
from summon.drivers import driver_for
from summon.drivers.janus import (
    FRAME_SECONDS,
    JanusDriver,
    SpeechDetector,
    decode_clip,
    decode_image,
    frame_level_dbfs,
)
from summon.runtime.session import BotSession, BotSpec
from summon.runtime.timing import JoinTimer
from tests.media.janus_server import JanusServer, Room, janus_unavailable
from tests.media.netns import NetNs, create_netns, netns_unavailable
from tests.media.participants import (
    DriverLog,
    ScriptedParticipant,
    espeak_unavailable,
    jpeg_bytes,
    mp3_bytes,
    poll_until,
    speech_samples,
    speech_wav,
)

ROOM = 1234
PIN = "open-sesame"
FULL_ROOM = 77  # one publisher at most
OPEN_ROOM = 5  # no pin
RED = (220, 30, 30)
BLUE = (30, 40, 220)
GREEN = (40, 200, 60)


# -- the pure pieces (fast) ------------------------------------------------------------------------
def test_speech_detector_has_hysteresis() -> None:
    detector = SpeechDetector()
    frame = FRAME_SECONDS
    assert detector.update(-20.0, frame) is None  # one loud frame is a click
    assert detector.update(-80.0, frame) is None
    changes = [detector.update(-20.0, frame) for _ in range(3)]
    assert changes == [None, None, True]  # 60 ms of sound: speaking
    # Short pauses between words and levels between the thresholds keep it speaking.
    assert all(detector.update(-80.0, frame) is None for _ in range(20))  # 0.4 s
    assert detector.update(-45.0, frame) is None
    assert all(detector.update(-80.0, frame) is None for _ in range(29))
    assert detector.update(-80.0, frame) is False  # 0.6 s of quiet: stopped
    assert detector.update(-45.0, frame) is None  # between thresholds: not enough to start
    assert detector.reset() is False


@pytest.mark.parametrize("layout", ["mono", "stereo"])
def test_frame_level_is_the_rms_in_dbfs(layout: str) -> None:
    channels = 1 if layout == "mono" else 2
    t = np.arange(960) / 48_000
    wave = (0.25 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    packed = np.repeat(wave, channels).reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(packed, format="s16", layout=layout)
    expected = 20 * math.log10(0.25 / math.sqrt(2))  # a sine's RMS is its peak / sqrt(2)
    assert frame_level_dbfs(frame) == pytest.approx(expected, abs=0.05)
    planar = av.AudioFrame.from_ndarray(
        np.tile(wave.astype(np.float32) / 32768, (channels, 1)), format="fltp", layout=layout
    )
    assert frame_level_dbfs(planar) == pytest.approx(expected, abs=0.05)
    silent = av.AudioFrame.from_ndarray(np.zeros_like(packed), format="s16", layout=layout)
    assert frame_level_dbfs(silent) == -math.inf


def test_decoders_turn_media_into_samples_and_pictures(tmp_path: Path) -> None:
    if reason := espeak_unavailable():
        pytest.skip(reason)
    wav = speech_wav(tmp_path, "one two three")
    clip = decode_clip(mp3_bytes(wav))
    assert clip.dtype == np.int16 and clip.ndim == 1
    assert abs(clip.size / 48_000 - speech_samples(wav).size / 48_000) < 0.2
    assert np.abs(clip).max() > 3000  # speech, not silence
    picture = decode_image(jpeg_bytes(RED, 1280, 720))
    assert picture.shape == (360 * 3 // 2, 640)  # yuv420p, scaled to 640 wide
    with pytest.raises(DriverError) as bad:
        decode_clip(b"not audio at all")
    assert bad.value.sub_code == "invalid_media"
    with pytest.raises(DriverError):
        decode_image(b"\xff\xd8 not an image")


class _Transport:
    """What an RTCRtpReceiver asks of its transport, for a receiver fed packets by hand."""

    state = "connected"
    _stats_id = "transport"

    def _register_rtp_receiver(self, receiver: Any, parameters: Any) -> None:
        pass

    def _unregister_rtp_receiver(self, receiver: Any) -> None:
        pass

    async def _send_rtp(self, data: bytes) -> None:
        pass


def _opus_packets(count: int) -> list[bytes]:
    """``count`` 20 ms Opus packets of a 440 Hz tone, as a participant's encoder makes them."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.format, encoder.layout, encoder.sample_rate = "s16", "stereo", 48_000
    encoder.bit_rate = 64_000
    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(960 * count) / 48_000)).astype(np.int16)
    packets: list[bytes] = []
    for i in range(count):
        chunk = np.repeat(tone[i * 960 : (i + 1) * 960], 2).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
        frame.sample_rate, frame.pts = 48_000, i * 960
        packets += [bytes(p) for p in encoder.encode(frame)]
    return packets


async def test_direct_audio_decodes_on_arrival_and_drops_duplicates_and_late_packets() -> None:
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
    from aiortc.rtcrtpreceiver import RemoteStreamTrack, RTCRtpReceiver
    from aiortc.rtp import RtpPacket

    from summon.drivers.janus import DirectAudioReceive

    receiver = RTCRtpReceiver("audio", _Transport())  # type: ignore[arg-type]
    receiver._track = RemoteStreamTrack(kind="audio")  # as the peer connection does
    frames: list[Any] = []
    ended: list[bool] = []
    direct = DirectAudioReceive.install(receiver, frames.append, lambda: ended.append(True))
    assert direct is not None
    assert DirectAudioReceive.install(receiver, frames.append, lambda: None) is direct
    opus = RTCRtpCodecParameters(
        mimeType="audio/opus", clockRate=48_000, channels=2, payloadType=111
    )
    await receiver.receive(RTCRtpReceiveParameters(codecs=[opus]))
    payloads = _opus_packets(8)

    async def arrive(seq: int, ssrc: int = 1234, index: int | None = None) -> None:
        payload = payloads[seq % len(payloads) if index is None else index]
        packet = RtpPacket(
            payload_type=111,
            sequence_number=seq & 0xFFFF,
            timestamp=seq * 960,
            ssrc=ssrc,
            payload=payload,
        )
        await receiver._handle_rtp_packet(packet, arrival_time_ms=0)

    for seq in (65533, 65534, 65535, 0, 1):  # in order, across the wrap of the numbering
        await arrive(seq)
    assert len(frames) == 5 and direct.dropped == 0
    # Decoded at once (no jitter buffer holding packets back): 48 kHz mono, 20 ms each.
    shapes = {(f.sample_rate, f.samples, len(f.layout.channels)) for f in frames}
    assert shapes == {(48_000, 960, 1)}
    await arrive(1)  # a duplicate
    await arrive(0)  # late: a later packet was already played
    await arrive(65000)
    assert len(frames) == 5 and direct.dropped == 3
    await arrive(3)  # a gap is not waited for
    await arrive(40, ssrc=99, index=0)  # a new source numbers afresh
    assert len(frames) == 7 and direct.decoded == 7
    # RTCP receiver reports still have the statistics: one stream per source.
    assert set(receiver._RTCRtpReceiver__remote_streams) == {1234, 99}  # type: ignore[attr-defined]
    loud = np.abs(frames[-2].to_ndarray()).max()
    assert loud > 2000  # the tone, decoded
    await receiver.stop()  # the end reaches the driver once, and aiortc's thread ends
    assert ended == [True]
    await arrive(41, ssrc=99)
    assert len(frames) == 7


async def test_direct_srtp_takes_only_audio_packets_of_direct_receivers() -> None:
    import pylibsrtp
    from aiortc.rtcdtlstransport import RtpRouter
    from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
    from aiortc.rtcrtpreceiver import RemoteStreamTrack, RTCRtpReceiver
    from aiortc.rtp import HeaderExtensionsMap, RtpPacket

    from summon.drivers.janus import DirectAudioReceive, DirectSrtp

    class Protocol:  # an aioice socket protocol: what it got the usual way
        def __init__(self) -> None:
            self.usual: list[bytes] = []

        def datagram_received(self, data: bytes, addr: Any) -> None:
            self.usual.append(data)

    class Dtls:  # the parts of a connected RTCDtlsTransport that DirectSrtp uses
        def __init__(self, protocol: Protocol, key: bytes) -> None:
            self.transport = type("Ice", (), {"_connection": type("C", (), {})()})()
            self.transport._connection._protocols = [protocol]
            inbound = pylibsrtp.Policy(key, pylibsrtp.Policy.SSRC_ANY_INBOUND)
            self._rx_srtp = pylibsrtp.Session(inbound)
            self._rtp_router = RtpRouter()
            self._rtp_header_extensions_map = HeaderExtensionsMap()

    key = bytes(range(30))
    sender = pylibsrtp.Session(pylibsrtp.Policy(key, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    protocol = Protocol()
    dtls = Dtls(protocol, key)
    direct = DirectSrtp.install(dtls)
    assert direct is not None and DirectSrtp.install(dtls) is direct

    opus = RTCRtpCodecParameters(
        mimeType="audio/opus", clockRate=48_000, channels=2, payloadType=111
    )
    receiver = RTCRtpReceiver("audio", _Transport())  # type: ignore[arg-type]
    receiver._track = RemoteStreamTrack(kind="audio")
    frames: list[Any] = []
    assert DirectAudioReceive.install(receiver, frames.append, lambda: None) is not None
    await receiver.receive(RTCRtpReceiveParameters(codecs=[opus]))
    dtls._rtp_router.register_receiver(receiver, ssrcs=[1234], payload_types=[111])
    plain = RTCRtpReceiver("audio", _Transport())  # type: ignore[arg-type]
    dtls._rtp_router.register_receiver(plain, ssrcs=[777], payload_types=[111])

    payloads = _opus_packets(3)

    def srtp(seq: int, ssrc: int) -> bytes:
        packet = RtpPacket(
            payload_type=111,
            sequence_number=seq,
            timestamp=seq * 960,
            ssrc=ssrc,
            payload=payloads[seq],
        )
        return sender.protect(packet.serialize())

    stun = bytes.fromhex("0001 0000 2112a442") + bytes(12)  # a binding request
    dtls_record = bytes([22, 0xFE, 0xFD]) + bytes(20)
    rtcp = sender.protect_rtcp(bytes.fromhex("80c9 0001") + (1234).to_bytes(4, "big"))
    usual = [stun, dtls_record, rtcp, srtp(0, 777), srtp(0, 5555), b"\x80"]
    for data in usual:
        protocol.datagram_received(data, ("10.0.0.1", 5000))
    assert protocol.usual == usual and direct.packets == 0 and not frames
    # The direct receiver's packets: decrypted, parsed and decoded in the socket's callback.
    protocol.datagram_received(srtp(0, 1234), ("10.0.0.1", 5000))
    protocol.datagram_received(srtp(1, 1234), ("10.0.0.1", 5000))
    assert direct.packets == 2 and len(frames) == 2 and protocol.usual == usual
    # A packet that fails authentication is dropped, not handed on.
    forged = bytearray(srtp(2, 1234))
    forged[-1] ^= 0xFF
    protocol.datagram_received(bytes(forged), ("10.0.0.1", 5000))
    assert direct.packets == 2 and len(frames) == 2 and protocol.usual == usual
    await receiver.stop()


@pytest.mark.parametrize(
    "url",
    [
        {"platform": "janus", "host": "", "port": 8088, "room": "1"},
        {"platform": "janus", "host": "h", "port": 0, "room": "1"},
        {"platform": "janus", "host": "h", "port": 8088, "room": "a/b"},
        {"platform": "janus", "host": "h", "port": 8088, "room": "1", "pin": 5},
    ],
)
async def test_prepare_refuses_malformed_meeting_urls(url: dict[str, Any]) -> None:
    driver = JanusDriver(url, "Bot", {}, DriverLog(), SystemClock())
    with pytest.raises(DriverError) as refused:
        await driver.prepare()
    assert refused.value.sub_code == "invalid_janus_url"
    await driver.close()


@pytest.mark.parametrize(
    "answer", ["", '{"janus": "error", "error": {"code": 490, "reason": "x"}}']
)
async def test_a_server_answering_nonsense_ends_the_session_without_spinning(answer: str) -> None:
    """Long polls that fail at once are retried a few times, with pauses, then the session
    counts as lost (a server on 127.0.0.1 that answers like a broken Janus)."""
    polls = 0

    async def create(request: web.Request) -> web.Response:
        return web.json_response({"janus": "success", "data": {"id": 7}})

    async def poll(request: web.Request) -> web.Response:
        nonlocal polls
        polls += 1
        return web.Response(text=answer, content_type="application/json")

    app = web.Application()
    app.router.add_post("/janus", create)
    app.router.add_get("/janus/7", poll)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as http:
            session = janus_api.JanusSession(http, f"http://127.0.0.1:{port}/janus", SystemClock())
            await session.create()
            reason = await asyncio.wait_for(session.lost, 10)
            assert "long poll" in reason
            assert polls == janus_api.POLL_RETRIES
            await session.destroy()
    finally:
        await runner.cleanup()


def test_the_registry_serves_janus() -> None:
    assert driver_for("janus") is JanusDriver


# -- a real meeting --------------------------------------------------------------------------------
@dataclass
class World:
    ns: NetNs
    janus: JanusServer
    http: aiohttp.ClientSession
    folder: Path
    stack: AsyncExitStack

    def url(self, room: int | str = ROOM, pin: str | None = PIN) -> dict[str, Any]:
        return parse_meeting_url(self.janus.meeting_url(room, pin)).to_dict()

    async def participant(self, name: str, **kwargs: Any) -> ScriptedParticipant:
        kwargs.setdefault("pin", PIN)
        person = ScriptedParticipant(
            self.http, self.janus.api_url, kwargs.pop("room", ROOM), name, **kwargs
        )
        self.stack.push_async_callback(person.close)
        return person

    async def bot(
        self, url: dict[str, Any] | None = None, name: str = "Summon Bot"
    ) -> tuple[JanusDriver, DriverLog]:
        log = DriverLog()
        driver = JanusDriver(url or self.url(), name, {}, log, SystemClock())
        self.stack.push_async_callback(driver.close)
        await driver.prepare()
        return driver, log


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    for reason in (netns_unavailable(), janus_unavailable(), espeak_unavailable()):
        if reason:
            pytest.skip(reason)
    ns = create_netns()
    try:
        with ns.entered():
            rooms = (Room(ROOM, pin=PIN), Room(FULL_ROOM, publishers=1), Room(OPEN_ROOM))
            janus = JanusServer(ns, tmp_path / "janus", rooms)
            async with AsyncExitStack() as stack:
                await janus.start()
                stack.push_async_callback(janus.stop)
                http = await stack.enter_async_context(aiohttp.ClientSession())
                yield World(ns, janus, http, tmp_path, stack)
    finally:
        ns.destroy()


async def _hearing(driver: JanusDriver, name: str) -> None:
    """Wait until the bot receives ``name``'s audio (their silence, before they speak): what
    they say before that is lost to the bot, as to anyone who is not listening yet."""
    heard: set[str] = set()
    driver.set_media_sinks(on_audio=lambda p, frame: heard.add(p.name), on_video=driver.on_video)
    await poll_until(lambda: name in heard, 20, f"the bot receiving {name}'s audio")
    driver.set_media_sinks(on_audio=None, on_video=driver.on_video)


def _speaking(log: DriverLog, name: str) -> list[bool]:
    return [c[2] for c in log.about("speech", name)]


def _webcam(log: DriverLog, name: str) -> list[bool]:
    return [c[2] for c in log.about("webcam", name)]


def _has_video(publisher: dict[str, Any] | None) -> bool:
    streams = (publisher or {}).get("streams") or []
    return any(s.get("type") == "video" and not s.get("disabled") for s in streams)


def _close_to(
    color: tuple[float, float, float], expected: tuple[int, int, int], slack: float = 40
) -> bool:
    return all(abs(c - e) <= slack for c, e in zip(color, expected, strict=True))


@pytest.mark.slow
async def test_bot_follows_a_meeting_with_real_participants(world: World) -> None:
    words = speech_samples(
        speech_wav(world.folder, "Good morning everyone, let us look at the numbers.")
    )
    alice = await world.participant("Alice", speech=words, camera=RED)
    await alice.join()
    await alice.open_chat()

    driver, log = await world.bot()
    await driver.join()
    await log.wait(lambda: "participant_joined" in log.names(), "Alice reported")
    assert log.names()[0] == "admitted"
    assert [c[1].name for c in log.of("participant_joined")] == ["Alice"]
    alice_p = log.of("participant_joined")[0][1]
    assert alice_p.id == str(alice.feed_id)
    await log.wait(lambda: _webcam(log, "Alice") == [True], "Alice's webcam on")

    # Speech: nothing while Alice is silent, then on while she talks and off after.
    assert _speaking(log, "Alice") == []
    await _hearing(driver, "Alice")
    duration = await alice.say()
    started = time.monotonic()
    await log.wait(lambda: _speaking(log, "Alice") == [True], "Alice speaking")
    assert time.monotonic() - started < duration
    await alice.said()
    await log.wait(lambda: _speaking(log, "Alice") == [True, False], "Alice done speaking")

    # A second participant, audio only, comes and goes; Alice turns her camera off.
    bob = await world.participant("Bob")
    await bob.join()
    await log.wait(lambda: len(log.about("participant_joined", "Bob")) == 1, "Bob joined")
    assert _webcam(log, "Bob") == []
    await alice.unpublish()
    await log.wait(lambda: _webcam(log, "Alice") == [True, False], "Alice's webcam off")
    await bob.leave()
    await log.wait(lambda: len(log.about("participant_left", "Bob")) == 1, "Bob left")
    assert not log.about("participant_left", "Alice")

    # Chat from a participant reaches the bot; the bot's chat reaches the participant.
    await alice.chat("hello bot")
    await log.wait(lambda: bool(log.of("chat_message")), "a chat message")
    ((_, sender, text, to),) = log.of("chat_message")
    assert (sender.id, text, to) == (alice_p.id, "hello bot", "everyone")
    await alice.chat("psst", to=driver.own_id)
    await log.wait(lambda: len(log.of("chat_message")) == 2, "a private message")
    assert log.of("chat_message")[1][2:] == ("psst", driver.own_id)
    await driver.send_chat("everyone", "Hi, I am the note taker")
    await driver.send_chat(alice_p.id, "just for you")
    await alice.wait(lambda: len(alice.chat_inbox) == 2, "the bot's messages")
    assert [(m["text"], bool(m.get("whisper"))) for m in alice.chat_inbox] == [
        ("Hi, I am the note taker", False),
        ("just for you", True),
    ]
    with pytest.raises(DriverError):
        await driver.send_chat("999999", "nobody")

    # The bot's camera and microphone reach a participant who watches it. The bot has no
    # camera until it has a picture to show.
    bot_id = driver.own_id
    assert bot_id is not None and not _has_video(alice.publishers[bot_id])
    await driver.output_video(jpeg_bytes(BLUE))
    await alice.wait(lambda: _has_video(alice.publishers[bot_id]), "the bot's camera")
    await alice.watch(bot_id)
    await alice.wait(lambda: len(alice.seen_colors) >= 3, "the bot's picture")
    assert _close_to(alice.seen_colors[-1], BLUE)
    await driver.output_audio(mp3_bytes(speech_wav(world.folder, "This is the bot speaking.")))
    await alice.wait(lambda: any(level > -35 for level in alice.heard_dbfs), "the bot's voice")

    # Leaving: Alice sees the bot go; the driver reports nothing more.
    reported = len(log.calls)
    await driver.leave()
    await alice.wait(lambda: driver.own_id not in alice.publishers, "the bot gone")
    await driver.close()
    assert len(log.calls) == reported


@pytest.mark.slow
async def test_the_bot_hears_newcomers_after_everyone_left(world: World) -> None:
    """When the last publisher goes, Janus may drop the bot's subscription; the next one who
    comes is still heard."""
    words = speech_samples(speech_wav(world.folder, "Is anybody still here?"))
    ivan = await world.participant("Ivan", speech=words)
    await ivan.join()
    driver, log = await world.bot()
    await driver.join()
    await _hearing(driver, "Ivan")
    await ivan.say()
    await log.wait(lambda: _speaking(log, "Ivan") == [True], "Ivan speaking")
    await ivan.leave()
    await log.wait(lambda: bool(log.about("participant_left", "Ivan")), "Ivan gone")
    assert _speaking(log, "Ivan") == [True, False]  # stopped speaking before leaving
    judy = await world.participant("Judy", speech=words)
    await judy.join()
    await log.wait(lambda: bool(log.about("participant_joined", "Judy")), "Judy reported")
    await _hearing(driver, "Judy")
    await judy.say()
    await log.wait(lambda: _speaking(log, "Judy") == [True], "Judy heard speaking")
    await judy.said()
    await log.wait(lambda: _speaking(log, "Judy") == [True, False], "Judy done")
    assert not log.of("failed") and not log.of("meeting_ended")


@pytest.mark.slow
async def test_a_session_greets_shows_and_plays_and_leaves(world: World) -> None:
    """The bot session with this driver: chat.on_bot_join, automatic video and audio, leave."""
    carol = await world.participant("Carol", camera=GREEN)
    await carol.join()
    await carol.open_chat()
    clip = mp3_bytes(speech_wav(world.folder, "This meeting is being recorded."))
    config = {
        "chat": {"on_bot_join": {"send_to": "everyone", "message": "Recording starts now"}},
        "automatic_video_output": {
            "in_call_recording": {
                "kind": "jpeg",
                "b64_data": base64.b64encode(jpeg_bytes(RED)).decode(),
            }
        },
        "automatic_audio_output": {
            "in_call_recording": {
                "data": {"kind": "mp3", "b64_data": base64.b64encode(clip).decode()}
            }
        },
        "recording_config": {"start_recording_on": "call_join"},
    }
    statuses: list[tuple[str, str | None]] = []
    changed = asyncio.Event()

    class Runtime:
        def status(
            self, bot_id: str, code: str, sub_code: str | None, message: str | None, at: float
        ) -> None:
            statuses.append((code, sub_code))
            changed.set()

        def event(self, bot_id: str, kind: str, data: dict[str, Any], at: float) -> None:
            changed.set()

        def finished(self, bot_id: str) -> None:
            changed.set()

    clock = SystemClock()
    spec = BotSpec("bot-1", world.url(), "Recorder", config, None)
    session = BotSession(spec, Runtime(), clock, JoinTimer(clock, spin=False))
    run = asyncio.get_running_loop().create_task(session.run())
    try:
        await carol.wait(lambda: bool(carol.chat_inbox), "the greeting", timeout=30)
        assert carol.chat_inbox[0]["text"] == "Recording starts now"
        assert ("in_call_recording", None) in statuses
        driver = session.driver
        assert isinstance(driver, JanusDriver) and driver.own_id is not None
        bot_id = driver.own_id
        await carol.wait(lambda: _has_video(carol.publishers.get(bot_id)), "the bot's camera")
        await carol.watch(bot_id)
        await carol.wait(lambda: len(carol.seen_colors) >= 3, "the bot's automatic picture")
        assert _close_to(carol.seen_colors[-1], RED)
        await session.command("output_audio", {"b64_data": base64.b64encode(clip).decode()})
        await carol.wait(lambda: any(level > -35 for level in carol.heard_dbfs), "the bot's audio")
        await session.command("leave")
        await asyncio.wait_for(run, 15)
    finally:
        run.cancel()
        await asyncio.wait([run])
    assert statuses[-2:] == [("recording_done", None), ("done", None)]
    assert ("call_ended", "bot_received_leave_call") in statuses
    await carol.wait(lambda: driver.own_id not in carol.publishers, "the bot gone")


@pytest.mark.slow
async def test_the_server_going_away_is_reported_within_seconds(world: World) -> None:
    dave = await world.participant("Dave")
    await dave.join()
    driver, log = await world.bot()
    await driver.join()
    await log.wait(lambda: bool(log.of("participant_joined")), "Dave reported")
    world.janus.kill()
    killed = time.monotonic()
    await log.wait(
        lambda: bool(log.of("failed") or log.of("meeting_ended")), "the loss", timeout=15
    )
    assert time.monotonic() - killed < 10
    assert log.of("failed")[0][1] == "platform_connection_error"
    closing = time.monotonic()
    await driver.close()
    assert time.monotonic() - closing < 15  # never hangs on a dead server


@pytest.mark.slow
async def test_being_kicked_and_the_meeting_ending_are_reported(world: World) -> None:
    host = await world.participant("Hannah", room=OPEN_ROOM, pin=None)
    await host.join()
    kicked, kicked_log = await world.bot(world.url(room=OPEN_ROOM, pin=None))
    await kicked.join()
    await kicked_log.wait(lambda: bool(kicked_log.of("participant_joined")), "Hannah reported")
    assert kicked.own_id is not None
    await host.kick(kicked.own_id)
    await kicked_log.wait(lambda: bool(kicked_log.of("meeting_ended")), "the kick")
    assert kicked_log.of("meeting_ended") == [("meeting_ended", "bot_kicked_from_call")]

    ended, ended_log = await world.bot(world.url(room=OPEN_ROOM, pin=None))
    await ended.join()
    await ended_log.wait(lambda: bool(ended_log.of("participant_joined")), "Hannah reported")
    await host.end_meeting()
    await ended_log.wait(lambda: bool(ended_log.of("meeting_ended")), "the end")
    assert ended_log.of("meeting_ended") == [("meeting_ended", "call_ended_by_host")]
    assert not ended_log.of("failed") and not kicked_log.of("failed")


@pytest.mark.slow
async def test_keepalives_hold_the_session_and_without_them_janus_ends_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    strict = JanusServer(world.ns, world.folder / "strict", (Room(OPEN_ROOM),), session_timeout=2)
    await strict.start()
    world.stack.push_async_callback(strict.stop)
    url = parse_meeting_url(strict.meeting_url(OPEN_ROOM)).to_dict()

    monkeypatch.setattr(janus_api, "KEEPALIVE_S", 0.5)
    kept, kept_log = await world.bot(url)
    await kept.join()
    await kept_log.wait(lambda: "admitted" in kept_log.names(), "admission")
    session = kept._janus
    assert session is not None
    # Twelve keepalives take 6 s: three times Janus's timeout, the session is still there.
    await poll_until(lambda: session.keepalives >= 12 or len(kept_log.calls) > 1, 20, "keepalives")
    assert kept_log.names() == ["admitted"]

    monkeypatch.setattr(janus_api, "KEEPALIVE_S", 3600.0)
    idle, idle_log = await world.bot(url)
    await idle.join()
    await idle_log.wait(lambda: bool(idle_log.of("meeting_ended")), "the timeout", timeout=15)
    assert idle_log.of("meeting_ended") == [("meeting_ended", "call_ended_by_platform_idle")]
    assert not idle_log.of("failed")


@pytest.mark.slow
async def test_joining_fails_with_the_right_sub_code(world: World) -> None:
    async def outcome(url: dict[str, Any]) -> tuple[Any, ...]:
        driver, log = await world.bot(url)
        await driver.join()
        await log.wait(lambda: bool(log.calls), "the join's outcome")
        await driver.close()
        return log.calls[0]

    assert (await outcome(world.url(room=4242)))[:2] == ("failed", "meeting_not_found")
    assert (await outcome(world.url(pin="wrong")))[:2] == ("failed", "meeting_password_incorrect")
    eve = await world.participant("Eve", room=FULL_ROOM, pin=None)
    await eve.join()
    assert (await outcome(world.url(room=FULL_ROOM, pin=None)))[:2] == ("failed", "meeting_full")
    # A server that is not there at all.
    gone = parse_meeting_url(f"janus://{world.ns.peer_address}:9/{ROOM}").to_dict()
    assert (await outcome(gone))[:2] == ("failed", "platform_connection_error")


@pytest.mark.slow
async def test_media_sinks_receive_decoded_frames(world: World) -> None:
    words = speech_samples(speech_wav(world.folder, "Recording this sentence."))
    frank = await world.participant("Frank", room=OPEN_ROOM, pin=None, speech=words, camera=BLUE)
    await frank.join()
    driver, log = await world.bot(world.url(room=OPEN_ROOM, pin=None))
    audio: list[tuple[str, Any]] = []
    video: list[tuple[str, Any]] = []
    driver.set_media_sinks(
        on_audio=lambda p, f: audio.append((p.name, f)),
        on_video=lambda p, f: video.append((p.name, f)),
    )
    await driver.join()
    await poll_until(lambda: any(name == "Frank" for name, _ in audio), 20, "Frank's audio")
    await frank.say()
    await log.wait(lambda: _speaking(log, "Frank") == [True], "Frank speaking")
    await poll_until(lambda: len(video) >= 3 and len(audio) >= 50, 20, "frames for the recorder")
    name, frame = audio[-1]
    assert name == "Frank" and frame.sample_rate == 48_000 and frame.samples == 960
    # Decoded as the packets arrived (DirectAudioReceive), not on aiortc's decoder threads.
    assert driver.audio_decoded_directly > 0
    # Most of them taken from the socket directly (DirectSrtp), not through aiortc's queue.
    assert driver.audio_packets_from_socket > driver.audio_decoded_directly / 2
    name, picture = video[-1]
    r, g, b = picture.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0)
    assert name == "Frank" and _close_to((float(r), float(g), float(b)), BLUE)
    loud = [f for _, f in audio if not math.isinf(_level(f)) and _level(f) > -35]
    assert loud, "the recorder got Frank's speech"


def _level(frame: Any) -> float:
    samples = frame.to_ndarray().astype(np.float32) / 32768.0
    rms = float(np.sqrt(np.mean(samples * samples)))
    return 20 * math.log10(rms) if rms > 0 else -math.inf


@pytest.mark.slow
async def test_a_recording_session_streams_the_mixed_audio_and_writes_it(
    world: World, tmp_path: Path
) -> None:
    """A session recording a Janus meeting: the mixed audio streams as ``audio_mixed_raw.data``
    (16 kHz S16LE, base64, contiguous) while the call goes on, and the recorded MP3 holds the
    same speech."""
    words = speech_samples(speech_wav(world.folder, "Streaming the meeting audio live."))
    grace = await world.participant("Grace", speech=words)
    await grace.join()
    config = {
        "recording_config": {
            "start_recording_on": "call_join",
            "audio_separate_mp3": {},
            "realtime_endpoints": [{"type": "websocket", "url": "ws://127.0.0.1:9/",
                                    "events": ["audio_mixed_raw.data"]}],
        },
    }
    chunks: list[dict[str, Any]] = []
    statuses: list[str] = []
    reports: list[dict[str, Any]] = []

    class Runtime:
        def status(self, bot_id: str, code: str, sub_code: str | None, message: str | None,
                   at: float) -> None:
            statuses.append(code)

        def event(self, bot_id: str, kind: str, data: dict[str, Any], at: float) -> None:
            if kind == "audio_mixed_raw.data":
                chunks.append(data)

        def recording(self, bot_id: str, report: dict[str, Any]) -> None:
            reports.append(report)

        def finished(self, bot_id: str) -> None:
            pass

    clock = SystemClock()
    media = tmp_path / "media" / "bot-raw"
    spec = BotSpec("bot-raw", world.url(), "Listener", config, None, media_dir=str(media))
    session = BotSession(spec, Runtime(), clock, JoinTimer(clock, spin=False))
    run = asyncio.get_running_loop().create_task(session.run())
    try:
        await poll_until(lambda: "in_call_recording" in statuses, 30, "recording")
        assert isinstance(session.driver, JanusDriver)
        # What Grace says before the bot has subscribed to her is lost to it: say it again
        # until the stream carries it (each try waits for the condition, not a fixed time).
        for _ in range(4):
            spoken = await grace.say()
            with contextlib.suppress(AssertionError, TimeoutError):
                await poll_until(lambda: _loud_chunks(chunks), spoken + 3, "Grace's voice streamed")
                break
            await grace.said()
        assert _loud_chunks(chunks), "Grace's voice never reached the stream"
        await session.command("leave")
        await asyncio.wait_for(run, 30)
    finally:
        run.cancel()
        await asyncio.wait([run])
    assert statuses[-2:] == ["recording_done", "done"]
    # Contiguous 100 ms chunks of 16 kHz mono PCM, positions counting up from the start.
    positions = [c["timestamp"]["relative"] for c in chunks]
    assert positions == sorted(positions) and positions[0] < 0.5
    sizes = [len(base64.b64decode(c["buffer"])) for c in chunks]
    assert all(s == 3200 for s in sizes[:-1]) and 0 < sizes[-1] <= 3200
    for before, after in zip(positions, positions[1:], strict=False):
        assert after - before == pytest.approx(0.1, abs=1e-6)
    # The recording holds the same meeting: as long as the stream, and Grace is in it.
    assert reports and reports[0]["status"] == "done", reports
    mixed = next(media.glob("audio_mixed.*"))
    with av.open(str(mixed)) as container:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(audio=0)])
        rate = container.streams.audio[0].rate
    streamed = sum(sizes) / 2 / 16_000
    assert abs(samples.size / rate - streamed) < 0.5
    # Grace's own file is reported with who she is.
    [grace_part] = reports[0]["audio_separate"]
    assert grace_part["participant"]["name"] == "Grace" and grace_part["label"] == "audio_separate_1"
    own = reports[0]["files"]["audio_separate_1"]
    assert (media.parent / own["path"]).stat().st_size == own["size"] > 0
    peak = float(np.abs(samples.astype(np.float32)).max())
    if samples.dtype.kind == "f":  # MP3 decodes to floats in [-1, 1]
        peak *= 32768
    assert peak > 3000


def _loud_chunks(chunks: list[dict[str, Any]]) -> bool:
    for chunk in chunks:
        pcm = np.frombuffer(base64.b64decode(chunk["buffer"]), "<i2").astype(np.float32)
        if pcm.size and float(np.sqrt(np.mean(pcm * pcm))) > 1000:
            return True
    return False
