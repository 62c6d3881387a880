"""A Janus meeting through the whole service: the API, webhooks, a recording and a transcript.

The issue's "done when", as one test: scheduling a bot for a Janus room through the API yields,
**without any polling**, the full lifecycle by webhook, a playable recording, and a transcript
whose words match what the participants said.

What runs, all inside a private network namespace (``tests/media/netns.py``; WebRTC ignores
loopback):

- Janus with a configuration of its own (``tests/media/janus_server.py``);
- a real ``summon serve`` subprocess (``tests/e2e/conftest.py``'s ``start_service``), started by
  this thread while it is inside the namespace, so the service, its fleet agent and the runtime
  process hosting the bot are all in it. Its API listens on the namespace's 127.0.0.1;
- a webhook receiver (``http.server`` on a thread, on the namespace's 127.0.0.1, announcing
  arrivals to the test's event loop) that verifies every delivery with the ``standardwebhooks``
  package: workspace webhooks with the endpoint's secret, the bot's real-time events with the
  workspace's real-time secret;
- two scripted aiortc participants (``tests/media/participants.py``), Alice and Bob, each
  speaking one espeak-ng sentence.

The test never asks the API for the bot's state: it books the bot a few seconds ahead (a
scheduled bot: ``scheduled → staged → joining_call`` at ``join_at``), then only waits on what
the receiver gets. ``bot.in_call_recording`` says the bot is in; the real-time
``participant_events.speech_on`` of a first, priming sentence says the bot hears that
participant (what is said before the bot's subscription is up is lost to it, as to anyone not
listening yet); then each says their sentence for the record; both leave, and the bot leaves
by itself (``automatic_leave.everyone_left_timeout``: 2 s). ``bot.done``, ``recording.done``,
``audio_mixed.done`` and ``transcript.done`` end the wait. Then, once, the bot is read for its
status changes and its recording's signed URLs; the mixed MP3 is decoded with PyAV and the
transcript is checked word by word, per speaker.
"""

from __future__ import annotations

import asyncio
import io
import math
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aiortc")

import aiohttp
import av
import httpx
import numpy as np
from standardwebhooks.webhooks import Webhook as StandardWebhook

from summon.media.transcriber import TranscriberUnavailable, default_model_path
from tests.e2e.conftest import KEY_LINE, Service, start_service
from tests.e2e.fleet_helpers import FAST, runtime_pids
from tests.media.janus_server import JanusServer, Room, janus_unavailable
from tests.media.netns import NetNs, create_netns, netns_unavailable
from tests.media.participants import (
    ScriptedParticipant,
    espeak_unavailable,
    speech_samples,
    wait_until,
)

ROOM = 4321
ALICE_SAYS = "the quick brown fox jumps over the lazy dog"
BOB_SAYS = "please send the report to the sales team by friday morning"
#: Words of each sentence that the other one does not have (what attribution is checked on).
ALICE_WORDS = {"quick", "brown", "fox", "jumps", "over", "lazy", "dog"}
BOB_WORDS = {"please", "send", "report", "sales", "team", "friday", "morning"}
#: Whisper (tiny.en) may miss or mangle a word or two of espeak's voice: a subset is enough.
ENOUGH = 0.6
#: A bot booked a few seconds ahead is a scheduled bot (FAST: the threshold is 2 s). It is
#: staged STAGE_LEAD_S before join_at, and staging the first Janus bot of a runtime imports the
#: media stack (aiortc, PyAV: 1-3 s on a busy 2-core machine), so the lead must cover that for
#: the bot to join on time (the default lead is 120 s).
STAGE_LEAD_S = 6.0
JOIN_IN_S = STAGE_LEAD_S + 3.0
LIFECYCLE = [
    "bot.scheduled",
    "bot.staged",
    "bot.joining_call",
    "bot.in_call_not_recording",
    "bot.in_call_recording",
    "bot.call_ended",
    "bot.recording_done",
    "bot.done",
]
RECORDING_DONE = {"recording.done", "audio_mixed.done", "transcript.done"}
TIMEOUT_S = 30.0


def _unavailable() -> str | None:
    for reason in (netns_unavailable(), janus_unavailable(), espeak_unavailable()):
        if reason:
            return reason
    try:
        default_model_path()
    except TranscriberUnavailable as exc:
        return f"no speech model for the transcript: {exc}"
    return None


def _spoken(folder: Path, name: str, text: str) -> np.ndarray:
    """``text`` said by espeak-ng at 140 words/min (clearer for Whisper than the default 175),
    as 48 kHz mono int16 samples."""
    path = folder / f"{name}.wav"
    subprocess.run(
        ["espeak-ng", "-s", "140", "-w", str(path), text],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return speech_samples(path)


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- the receiver ----------------------------------------------------------------------------------
@dataclass
class Delivery:
    path: str  # /hooks (workspace webhooks) or /rt (real-time events)
    webhook_id: str
    payload: dict[str, Any]

    @property
    def event(self) -> str:
        return str(self.payload["event"])

    @property
    def bot_id(self) -> str | None:
        bot = (self.payload.get("data") or {}).get("bot") or {}
        return bot.get("id")


class Receiver:
    """Webhooks and real-time events, each verified with ``standardwebhooks`` before it counts;
    a delivery that does not verify is answered 400 and counted in ``rejected``.

    An ``http.server`` on a thread of its own (like ``tests/e2e/test_webhooks.py``'s); arrivals
    are announced to the test's event loop through ``changed``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.secrets: dict[str, str] = {}  # path → whsec_…
        self.received: list[Delivery] = []
        self.rejected: list[str] = []
        self.changed = asyncio.Condition()
        self._loop = loop
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["content-length"]))
                ok = receiver._take(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                self.send_response(204 if ok else 400)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        # Created by the test's thread inside the namespace: the socket is the namespace's.
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def _take(self, path: str, headers: dict[str, str], body: bytes) -> bool:
        """On the server's thread: verify and keep one delivery; False if it does not verify."""
        secret = self.secrets.get(path)
        try:
            assert secret is not None, f"no secret for {path}"
            payload = StandardWebhook(secret).verify(body, headers)
        except Exception as exc:
            with self._lock:
                self.rejected.append(f"{path}: {exc!r}")
            return False
        with self._lock:
            self.received.append(Delivery(path, headers["webhook-id"], payload))
        self._loop.call_soon_threadsafe(self._poke)
        return True

    def _all(self) -> list[Delivery]:
        with self._lock:
            return list(self.received)

    def _poke(self) -> None:
        self._loop.create_task(self._notify())

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    def hooks(self, bot_id: str) -> list[Delivery]:
        """Workspace webhooks about ``bot_id``, first received first, duplicates (the same
        ``webhook-id`` again: delivery is at least once) left out."""
        seen: set[str] = set()
        out = []
        for d in self._all():
            if d.path == "/hooks" and d.bot_id == bot_id and d.webhook_id not in seen:
                seen.add(d.webhook_id)
                out.append(d)
        return out

    def events(self, bot_id: str) -> list[str]:
        return [d.event for d in self.hooks(bot_id)]

    def realtime(self, kind: str, name: str) -> int:
        """How many real-time ``kind`` events about participant ``name`` arrived."""
        return sum(
            1
            for d in self._all()
            if d.path == "/rt"
            and d.event == kind
            and d.payload["data"]["data"]["participant"]["name"] == name
        )

    async def wait(self, condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
        await wait_until(condition, self.changed, timeout, what)


# -- the world -------------------------------------------------------------------------------------
@dataclass
class World:
    ns: NetNs
    janus: JanusServer
    service: Service
    api: httpx.AsyncClient
    receiver: Receiver
    http: aiohttp.ClientSession
    folder: Path
    stack: AsyncExitStack

    async def participant(self, name: str, speech: np.ndarray) -> ScriptedParticipant:
        person = ScriptedParticipant(self.http, self.janus.api_url, ROOM, name, speech=speech)
        self.stack.push_async_callback(person.close)
        await person.join()
        return person

    def log_tail(self) -> str:
        return "\n".join(self.service.lines[-60:])


def _stop_service(service: Service) -> None:
    """Stop ``summon serve`` and make sure its runtime processes are gone too (they leave when
    their agent's pipe closes; one that does not within 10 s is killed)."""
    runtimes = runtime_pids(service.process.pid) if service.process.poll() is None else []
    service.stop()
    for pid in runtimes:
        for _ in range(100):
            if not os.path.exists(f"/proc/{pid}") or _zombie(pid):
                break
            _pause(0.1)
        else:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _pause(seconds: float) -> None:
    # Teardown only, waiting for a process that announces nothing to this one.
    time.sleep(seconds)


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    if reason := _unavailable():
        pytest.skip(reason)
    ns = create_netns()
    try:
        with ns.entered():
            async with AsyncExitStack() as stack:
                janus = JanusServer(ns, tmp_path / "janus", (Room(ROOM),))
                await janus.start()
                stack.push_async_callback(janus.stop)
                receiver = Receiver(asyncio.get_running_loop())
                receiver.start()
                stack.callback(receiver.stop)
                # Started by this thread inside the namespace: the service and its runtimes
                # live there. (Blocking waits are fine here: nothing else runs yet.)
                env = {**FAST, "SUMMON_POOL_SIZE": "1", "SUMMON_STAGE_LEAD_S": str(STAGE_LEAD_S)}
                service = start_service(tmp_path / "data", env)
                stack.callback(_stop_service, service)
                key = service.wait_for_line(KEY_LINE, timeout=30).group(1)
                service.wait_ready(timeout=30)
                api = await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=service.url,
                        headers={"Authorization": f"Token {key}"},
                        timeout=30,
                    )
                )
                http = await stack.enter_async_context(aiohttp.ClientSession())
                yield World(ns, janus, service, api, receiver, http, tmp_path, stack)
    finally:
        ns.destroy()


async def _heard(world: World, person: ScriptedParticipant, attempts: int = 3) -> None:
    """Say the sentence until the bot is heard to hear it (its real-time ``speech_on`` for
    ``person``), and wait for the end of it (``speech_off``). A sentence said before the bot's
    subscription was up may go unheard: then it is said again."""
    rx = world.receiver
    for _ in range(attempts):
        on, off = rx.realtime("participant_events.speech_on", person.name), rx.realtime(
            "participant_events.speech_off", person.name
        )
        duration = await person.say()
        try:
            await rx.wait(
                lambda on=on: rx.realtime("participant_events.speech_on", person.name) > on,
                f"the bot hearing {person.name}",
                timeout=duration + 3,
            )
        except AssertionError:
            continue
        await person.said(timeout=duration + 5)
        await rx.wait(
            lambda off=off: rx.realtime("participant_events.speech_off", person.name) > off,
            f"{person.name} done speaking (speech_off)",
        )
        return
    raise AssertionError(f"the bot never heard {person.name}:\n{world.log_tail()}")


def _transcript_words(transcript: list[dict[str, Any]], name: str) -> set[str]:
    return {
        word
        for entry in transcript
        if entry["participant"]["name"] == name
        for w in entry["words"]
        for word in _words(w["text"])
    }


@pytest.mark.slow
async def test_a_janus_meeting_through_the_api_webhooks_recording_and_transcript(
    world: World,
) -> None:
    rx, api = world.receiver, world.api
    r = await api.post("/api/v1/webhook_endpoints/", json={"url": f"{rx.url}/hooks"})
    assert r.status_code == 201, r.text
    rx.secrets["/hooks"] = r.json()["secret"]
    r = await api.get("/api/v1/realtime_signing_secret/")
    assert r.status_code == 200, r.text
    rx.secrets["/rt"] = r.json()["secret"]

    # The meeting is under way when the bot is sent: Alice and Bob are in, silent.
    alice_voice = _spoken(world.folder, "alice", ALICE_SAYS)
    bob_voice = _spoken(world.folder, "bob", BOB_SAYS)
    alice = await world.participant("Alice", alice_voice)
    bob = await world.participant("Bob", bob_voice)

    join_at = datetime.now(UTC) + timedelta(seconds=JOIN_IN_S)
    r = await api.post(
        "/api/v1/bot/",
        json={
            "meeting_url": world.janus.meeting_url(ROOM),
            "join_at": join_at.isoformat(),
            "bot_name": "Notetaker",
            "recording_config": {
                "start_recording_on": "call_join",
                "video_mixed_layout": "audio_only",
                "audio_mixed_mp3": {},
                "transcript": {"provider": {"recallai_streaming": {"language_code": "en"}}},
                "realtime_endpoints": [
                    {
                        "type": "webhook",
                        "url": f"{rx.url}/rt",
                        "events": [
                            "participant_events.join",
                            "participant_events.speech_on",
                            "participant_events.speech_off",
                        ],
                    }
                ],
            },
            "automatic_leave": {"everyone_left_timeout": {"timeout": 2}},
        },
    )
    assert r.status_code == 201, r.text
    assert r.json()["state"] == "scheduled"
    bot_id = r.json()["id"]
    await rx.wait(
        lambda: "bot.in_call_recording" in rx.events(bot_id) or "bot.fatal" in rx.events(bot_id),
        "bot.in_call_recording",
        timeout=JOIN_IN_S + TIMEOUT_S,
    )
    assert "bot.fatal" not in rx.events(bot_id), world.log_tail()

    # The bot hears each of them (a priming sentence, said together), then each says their
    # sentence for the record, one after the other.
    await asyncio.gather(_heard(world, alice), _heard(world, bob))
    await _heard(world, alice, attempts=1)
    await _heard(world, bob, attempts=1)

    # Everyone leaves; the bot follows by itself (everyone_left_timeout) and finishes its
    # recording and transcript.
    await alice.leave()
    await bob.leave()

    def finished() -> bool:
        events = set(rx.events(bot_id))
        return "bot.fatal" in events or (
            "bot.done" in events and RECORDING_DONE <= events
        ) or any(e.endswith(".failed") for e in events)

    await rx.wait(finished, "bot.done and the recording's webhooks", timeout=60)
    events = rx.events(bot_id)
    assert not [e for e in events if e == "bot.fatal" or e.endswith(".failed")], (
        events,
        world.log_tail(),
    )
    assert rx.rejected == []

    # Every status change arrived, signed, once per webhook-id, in order; the lifecycle is the
    # one of a bot that joined, recorded and left by itself.
    r = await api.get(f"/api/v1/bot/{bot_id}/")  # once, now that it is done: not a poll
    assert r.status_code == 200, r.text
    done = r.json()
    changes = done["status_changes"]
    lifecycle = [d for d in rx.hooks(bot_id) if d.event.startswith("bot.")]
    assert [d.event for d in lifecycle] == [f"bot.{c['code']}" for c in changes]
    assert [e for e in (d.event for d in lifecycle) if e in LIFECYCLE] == LIFECYCLE
    joining = next(c for c in changes if c["code"] == "joining_call")
    assert 0 <= (_ts(joining["created_at"]) - join_at).total_seconds() < 1.0  # on time
    ended = next(d for d in lifecycle if d.event == "bot.call_ended")
    assert ended.payload["data"]["data"]["sub_code"] == "timeout_exceeded_everyone_left"
    # Each family of webhooks arrives in updated_at order. (Across families the stamps come
    # from different moments: a recording's are when the agent stored it, a status change's
    # when the runtime made it, so recording.done may carry a stamp a fraction of a millisecond
    # later than the bot.recording_done that follows it.)
    hooks = rx.hooks(bot_id)
    for family in ("bot.", "recording_artifacts", "realtime_endpoint."):
        members = [d for d in hooks if _family(d.event) == family]
        stamps = [_ts(d.payload["data"]["data"]["updated_at"]) for d in members]
        assert members and stamps == sorted(stamps), [(d.event, str(t)) for d, t in zip(members, stamps)]
    call_ended = _ts(ended.payload["data"]["data"]["updated_at"])
    assert all(
        _ts(d.payload["data"]["data"]["updated_at"]) >= call_ended
        for d in hooks
        if _family(d.event) == "recording_artifacts"
    )
    for kind in RECORDING_DONE:
        hook = next(d for d in rx.hooks(bot_id) if d.event == kind)
        assert hook.payload["data"]["recording"]["id"] == done["recordings"][0]["id"]
    # The real-time events saw both participants come in.
    assert rx.realtime("participant_events.join", "Alice") >= 1
    assert rx.realtime("participant_events.join", "Bob") >= 1

    # The recording: one, done, its mixed audio an MP3 as long as the meeting, with speech.
    (recording,) = done["recordings"]
    shortcuts = recording["media_shortcuts"]
    assert shortcuts["audio_mixed"]["status"]["code"] == "done"
    assert shortcuts["audio_mixed"]["format"] == "mp3"
    assert shortcuts["video_mixed"] is None  # audio_only
    at = {c["code"]: _ts(c["created_at"]) for c in changes}
    meeting_s = (at["call_ended"] - at["in_call_recording"]).total_seconds()
    async with httpx.AsyncClient(timeout=30) as anonymous:  # the signed URL is the credential
        audio = await anonymous.get(shortcuts["audio_mixed"]["data"]["download_url"])
        assert audio.status_code == 200, audio.text
        assert audio.headers["content-type"] == "audio/mpeg"
        got = await anonymous.get(shortcuts["transcript"]["data"]["download_url"])
        assert got.status_code == 200, got.text
    samples, rate = _decode(audio.content)
    duration = samples.size / rate
    assert abs(duration - meeting_s) <= 1.5, (duration, meeting_s)
    levels = _levels_dbfs(samples, rate)
    loud_s = sum(1 for level in levels if level > -35) * 0.1
    # Four sentences of about 3 s each were said while the bot listened.
    assert loud_s >= 4.0, (loud_s, max(levels))

    # The transcript: each speaker's words, attributed to them.
    transcript = got.json()
    assert set(shortcuts["transcript"]["provider"]) == {"recallai_streaming"}
    assert {entry["participant"]["name"] for entry in transcript} == {"Alice", "Bob"}, transcript
    alice_heard = _transcript_words(transcript, "Alice")
    bob_heard = _transcript_words(transcript, "Bob")
    assert len(ALICE_WORDS & alice_heard) >= ENOUGH * len(ALICE_WORDS), alice_heard
    assert len(BOB_WORDS & bob_heard) >= ENOUGH * len(BOB_WORDS), bob_heard
    assert len(BOB_WORDS & alice_heard) <= 1 and len(ALICE_WORDS & bob_heard) <= 1, (
        alice_heard,
        bob_heard,
    )
    for entry in transcript:
        starts = [w["start_timestamp"]["relative"] for w in entry["words"]]
        assert starts == sorted(starts) and 0 <= starts[0] <= meeting_s + 1


def _family(event: str) -> str:
    if event.startswith(("bot.", "realtime_endpoint.")):
        return event.split(".")[0] + "."
    return "recording_artifacts"  # recording.*, audio_mixed.*, transcript.*, …


def _decode(mp3: bytes) -> tuple[np.ndarray, int]:
    """The file's audio as mono float samples in [-1, 1], and its rate."""
    chunks: list[np.ndarray] = []
    with av.open(io.BytesIO(mp3), mode="r") as container:
        stream = container.streams.audio[0]
        rate = int(stream.rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), rate


def _levels_dbfs(samples: np.ndarray, rate: int, window_s: float = 0.1) -> list[float]:
    step = int(rate * window_s)
    levels = []
    for start in range(0, samples.size - step + 1, step):
        part = samples[start : start + step].astype(np.float64)
        rms = math.sqrt(float(np.mean(part * part)))
        levels.append(20 * math.log10(rms) if rms > 0 else -math.inf)
    return levels
