"""Transcription: the speech segmenter (synthetic audio), platform captions from the sandbox's
scripted speech, the transcript artifact, and — slow — the local Whisper engine on speech made
by ``espeak-ng`` (Debian package ``espeak-ng``), two speakers, words and timestamps checked."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from summon.abc import Participant, Word
from summon.drivers.sandbox import WORD_SECONDS, SandboxDriver
from summon.media.timeline import RecordingSpans, Stamper
from summon.media.transcriber import (
    MODEL_ENV,
    PARTIAL_EVERY_S,
    CaptionsTranscriber,
    SpeechSegmenter,
    TranscriberUnavailable,
    Utterance,
    WhisperTranscriber,
    default_model_path,
    provider_name,
    transcriber_for,
    transcript_artifact,
    wants_partials,
)
from tests.unit.test_session import SteppingClock, advance_to

av = pytest.importorskip("av")
np = pytest.importorskip("numpy")

ALICE = Participant("100", "alice")
BOB = Participant("101", "bob")
RATE = 16_000


# -- segmentation -------------------------------------------------------------------------------
def sound(seconds: float, amp: float, freq: float = 220.0, *, steady: bool = False) -> Any:
    """Speech-like sound at 16 kHz: a tone in 0.25 s syllables with 50 ms pauses (``steady``:
    without pauses, like a hum), over a little noise; ``amp`` 0 is near-silence."""
    n = round(seconds * RATE)
    rng = np.random.default_rng(int(seconds * 1000 + amp * 100))
    noise = rng.normal(0, 0.0005, n).astype(np.float32)
    t = np.arange(n) / RATE
    envelope = np.ones(n) if steady else ((t % 0.3) < 0.25).astype(np.float64)
    return (amp * envelope * np.sin(2 * np.pi * freq * t)).astype(np.float32) + noise


def push_in_frames(seg: SpeechSegmenter, audio: Any, at: float) -> list[Any]:
    out = []
    for i in range(0, audio.size, 320):
        out.extend(seg.push(audio[i : i + 320], at + i / RATE))
    return out


def test_an_utterance_gives_interim_results_then_a_final_one() -> None:
    seg = SpeechSegmenter(partial_every_s=1.0)
    audio = np.concatenate([sound(1.0, 0), sound(2.5, 0.3), sound(1.5, 0)])
    segments = push_in_frames(seg, audio, at=50.0)
    assert [s.final for s in segments] == [False, False, True]
    final = segments[-1]
    assert final.start == pytest.approx(50.0 + 1.0 - 0.2)  # with 0.2 s before the onset
    assert final.audio.size / RATE == pytest.approx(0.2 + 2.5 + 0.2, abs=0.03)
    assert all(s.start == final.start for s in segments)
    assert segments[0].audio.size < segments[1].audio.size < final.audio.size
    assert not seg.speaking


def test_short_noises_and_silence_give_nothing() -> None:
    seg = SpeechSegmenter()
    audio = np.concatenate([sound(1.0, 0), sound(0.1, 0.5), sound(2.0, 0)])
    assert push_in_frames(seg, audio, at=0.0) == []
    assert seg.finish() == []


def test_steady_background_noise_is_learned_not_transcribed() -> None:
    seg = SpeechSegmenter(partial_every_s=None)
    hum = sound(5.0, 0.02, freq=50, steady=True)  # -37 dBFS: above the absolute threshold
    speech = sound(1.0, 0.3) + sound(1.0, 0.02, freq=50, steady=True)
    segments = push_in_frames(seg, np.concatenate([hum, speech, hum[: RATE]]), at=0.0)
    assert [s.final for s in segments] == [True]  # only the speech, after the floor rose
    assert segments[0].start == pytest.approx(5.0 - 0.2, abs=0.05)


def test_a_break_in_the_stream_ends_the_utterance() -> None:
    seg = SpeechSegmenter(partial_every_s=None)
    first = push_in_frames(seg, sound(1.0, 0.3), at=10.0)
    assert first == [] and seg.speaking
    later = push_in_frames(seg, sound(1.0, 0.3), at=20.0)  # 9 s without frames
    assert [s.start for s in later if s.final] == [10.0]
    assert seg.speaking  # the new audio opened a new utterance
    (last,) = seg.finish()
    assert last.start == pytest.approx(20.0) and last.final


def test_long_speech_is_cut_into_whisper_sized_utterances() -> None:
    seg = SpeechSegmenter(max_utterance_s=4.0, partial_every_s=None)
    segments = push_in_frames(seg, sound(10.0, 0.3), at=0.0) + seg.finish()
    assert [s.audio.size / RATE for s in segments] == pytest.approx([4.0, 4.0, 2.0], abs=0.1)
    assert [s.start for s in segments] == pytest.approx([0.0, 4.0, 8.0], abs=0.1)
    assert all(s.final for s in segments)


# -- captions and the artifact --------------------------------------------------------------------
class CaptionsListener:
    """DriverEvents that hands the sandbox's transcript events to a transcriber."""

    def __init__(self, transcriber: CaptionsTranscriber) -> None:
        self.transcriber = transcriber

    def transcript(self, p: Participant, words: list[Word], final: bool) -> None:
        self.transcriber.add_captions(p, words, final)

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None  # every other event: not needed here


async def test_meeting_captions_from_the_sandbox_script() -> None:
    clock = SteppingClock()
    captions = CaptionsTranscriber()
    url = {
        "meeting_id": "demo",
        "platform": "sandbox",
        "params": {
            "participants": "alice@0,bob@0",
            "say": "alice@3:Hello team;bob@5:Hi there all",
        },
    }
    listener: Any = CaptionsListener(captions)
    driver = SandboxDriver(url, "Bot", {}, listener, clock)
    await driver.prepare()
    joined = clock.monotonic()
    await driver.join()
    spans = RecordingSpans(joined + 1.0)  # recording began a second after joining
    await advance_to(clock, joined + 30)
    await driver.close()
    await captions.aclose()

    artifact = transcript_artifact(captions.utterances(), Stamper(spans, clock.origin))
    assert [(e["participant"]["id"], e["participant"]["name"]) for e in artifact] == [
        (100, "alice"),
        (101, "bob"),
    ]
    assert [[w["text"] for w in e["words"]] for e in artifact] == [
        ["Hello", "team"],
        ["Hi", "there", "all"],
    ]
    bob_words = artifact[1]["words"]
    assert [w["start_timestamp"]["relative"] for w in bob_words] == pytest.approx(
        [4.0, 4.0 + WORD_SECONDS, 4.0 + 2 * WORD_SECONDS]
    )
    assert bob_words[0]["end_timestamp"]["relative"] == pytest.approx(4.0 + WORD_SECONDS)
    assert bob_words[0]["start_timestamp"]["absolute"].endswith("Z")


def test_interim_captions_are_replaced_and_the_last_one_kept_at_the_end() -> None:
    captions = CaptionsTranscriber()
    captions.add_captions(ALICE, [Word("Hel", 1.0, 1.2)], final=False)
    captions.add_captions(ALICE, [Word("Hello", 1.0, 1.3)], final=True)
    captions.add_captions(BOB, [Word("Bye", 0.5, 0.8)], final=False)  # never finalised
    assert [u.words[0].text for u in captions.utterances()] == ["Hello"]
    assert not captions.add_audio(ALICE, None, 0.0)  # captions need no audio
    captions.close()
    assert [u.words[0].text for u in captions.utterances()] == ["Bye", "Hello"]  # by start


def test_artifact_shape_and_order() -> None:
    spans = RecordingSpans(10.0)
    stamp = Stamper(spans, wall_offset=1_900_000_000.0)
    artifact = transcript_artifact(
        [
            Utterance(BOB, (Word("later", 13.0, 13.4),)),
            Utterance(ALICE, (Word("first", 11.0, 11.5), Word("words", 11.5, 12.0))),
            Utterance(BOB, ()),  # empty: left out
        ],
        stamp,
    )
    assert artifact == [
        {
            "participant": {
                "id": 100, "name": "alice", "is_host": False, "platform": None,
                "extra_data": {}, "email": None,
            },
            "words": [
                {"text": "first", "start_timestamp": stamp(11.0), "end_timestamp": stamp(11.5)},
                {"text": "words", "start_timestamp": stamp(11.5), "end_timestamp": stamp(12.0)},
            ],
        },
        {
            "participant": {
                "id": 101, "name": "bob", "is_host": False, "platform": None,
                "extra_data": {}, "email": None,
            },
            "words": [
                {"text": "later", "start_timestamp": stamp(13.0), "end_timestamp": stamp(13.4)},
            ],
        },
    ]  # fmt: skip
    assert artifact[0]["words"][0]["start_timestamp"]["relative"] == 1.0


def test_providers() -> None:
    def config(provider: dict[str, Any]) -> dict[str, Any]:
        return {"transcript": {"provider": provider}}

    clock = SteppingClock()
    assert provider_name({}) is None
    assert provider_name(config({"summon_whisper": {}})) == "summon_whisper"
    assert transcriber_for(None, clock=clock) is None
    assert transcriber_for(config({"deepgram_streaming": {}}), clock=clock) is None
    captions = transcriber_for(config({"meeting_captions": {}}), clock=clock)
    assert isinstance(captions, CaptionsTranscriber)
    for name in ("recallai_streaming", "summon_whisper"):
        engine = transcriber_for(config({name: {"language_code": "en"}}), clock=clock)
        assert isinstance(engine, WhisperTranscriber)
        engine.close()  # never started: nothing to wait for


def test_interim_results_only_for_endpoints_that_want_them() -> None:
    def config(*events: str) -> dict[str, Any]:
        return {
            "transcript": {"provider": {"recallai_streaming": {}}},
            "realtime_endpoints": [{"type": "webhook", "url": "https://x.test/", "events": events}],
        }

    assert not wants_partials(config("transcript.data"))
    assert wants_partials(config("transcript.data", "transcript.partial_data"))
    clock = SteppingClock()
    quiet = transcriber_for(config("transcript.data"), clock=clock)
    chatty = transcriber_for(config("transcript.partial_data"), clock=clock)
    assert isinstance(quiet, WhisperTranscriber) and isinstance(chatty, WhisperTranscriber)
    assert quiet.partial_every_s is None and chatty.partial_every_s == PARTIAL_EVERY_S


def test_the_model_comes_from_the_environment_or_the_installed_package(tmp_path: Path) -> None:
    installed = default_model_path({})
    assert (installed / "model.bin").is_file() and installed.name == "model"
    assert default_model_path({MODEL_ENV: str(installed)}) == installed
    with pytest.raises(TranscriberUnavailable):
        default_model_path({MODEL_ENV: str(tmp_path)})  # no model.bin there
    with pytest.raises(TranscriberUnavailable):
        WhisperTranscriber(clock=SteppingClock(), model_path=tmp_path)


# -- the local engine on real speech ------------------------------------------------------------
FOX = "the quick brown fox jumps over the lazy dog"
REPORT = "please send the report to the sales team by friday morning"


def spoken(text: str, tmp_path: Path) -> Any:
    """``text`` said by espeak-ng, as 48 kHz mono int16 samples (what a driver delivers)."""
    path = tmp_path / f"{abs(hash(text))}.wav"
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(path), text], check=True)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=48_000)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(chunks)


def frames(samples: Any, channels: int = 1) -> list[Any]:
    samples = np.concatenate([samples, np.zeros(-samples.size % 960, np.int16)])
    out = []
    for i in range(0, samples.size, 960):
        chunk = samples[i : i + 960]
        if channels == 2:
            chunk = np.repeat(chunk, 2)
        frame = av.AudioFrame.from_ndarray(
            chunk.reshape(1, -1), format="s16", layout="stereo" if channels == 2 else "mono"
        )
        frame.sample_rate = 48_000
        out.append(frame)
    return out


def words_of(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def matched(expected: list[str], got: list[str]) -> int:
    """Words of ``expected`` found in order in ``got`` (longest common subsequence)."""
    table = [[0] * (len(got) + 1) for _ in range(len(expected) + 1)]
    for i, a in enumerate(expected):
        for j, b in enumerate(got):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if a == b else max(table[i][j + 1], table[i + 1][j])
            )
    return table[-1][-1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng (Debian package)")
async def test_whisper_transcribes_two_speakers_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import faster_whisper.transcribe
    import faster_whisper.utils

    def no_download(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a model download was attempted")

    monkeypatch.setattr(faster_whisper.utils, "download_model", no_download)
    monkeypatch.setattr(faster_whisper.transcribe, "download_model", no_download)

    silence = np.zeros(48_000, np.int16)
    alice_audio = np.concatenate([silence, spoken(FOX, tmp_path), silence, silence])
    bob_audio = np.concatenate([silence, spoken(REPORT, tmp_path), silence, silence])
    loop_thread = threading.get_ident()
    events: list[tuple[str, list[Word], bool]] = []
    threads: set[int] = set()

    def on_words(p: Participant, words: list[Word], final: bool) -> None:
        threads.add(threading.get_ident())
        events.append((p.name, words, final))

    engine = WhisperTranscriber(
        clock=SteppingClock(), on_words=on_words, language="en", partial_backlog=None,
        max_queue=10_000,
    )  # fmt: skip
    alice_at, bob_at = 100.0, 101.5  # they overlap: separate streams keep them apart
    alice_frames, bob_frames = frames(alice_audio), frames(bob_audio, channels=2)
    for i in range(max(len(alice_frames), len(bob_frames))):
        if i < len(alice_frames):
            assert engine.add_audio(ALICE, alice_frames[i], alice_at + i * 0.02)
        if i < len(bob_frames):
            assert engine.add_audio(BOB, bob_frames[i], bob_at + i * 0.02)
    await engine.aclose()
    await asyncio.sleep(0)  # let the last results scheduled on this loop run

    assert threads == {loop_thread}  # results arrive on the event loop
    by_speaker = {u.participant.name: u for u in engine.utterances()}
    assert set(by_speaker) == {"alice", "bob"}
    for name, text, at, audio in (
        ("alice", FOX, alice_at, alice_audio),
        ("bob", REPORT, bob_at, bob_audio),
    ):
        utterance = by_speaker[name]
        got = words_of(" ".join(w.text for w in utterance.words))
        expected = words_of(text)
        assert matched(expected, got) >= len(expected) * 0.7, got  # a small word error rate
        starts = [w.start for w in utterance.words]
        assert starts == sorted(starts)
        assert all(w.start <= w.end for w in utterance.words)
        # within the audio, which has a second of silence before the speech
        assert at + 0.5 <= starts[0] and utterance.words[-1].end <= at + audio.size / 48_000
        mine = [(words, final) for who, words, final in events if who == name]
        assert mine[-1] == (list(utterance.words), True)
        assert any(not final for _, final in mine)  # interim results came first
        assert all(not final for _, final in mine[:-1])

    assert engine.dropped_frames == 0
    assert engine.audio_seconds > 0 and engine.engine_seconds > 0
