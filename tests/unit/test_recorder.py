"""The recorder: synthetic frames in (sine tones per participant), files out, read back with PyAV.

Time is a fake clock moved by the test: the recorder's thread reads it, and ``stop()`` waits
for the thread, so every assertion is about finished files. The kill test runs a recorder in a
real process on the real clock and kills it with SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest

from summon.clock import FakeClock
from summon.media.recorder import (
    BLOCK_SAMPLES,
    MP3_SAMPLE_RATE,
    SAMPLE_RATE,
    VIDEO_SIZE,
    Recorder,
    RecorderOptions,
    RecordingFailed,
    RecordingFiles,
)

av = pytest.importorskip("av")
np = pytest.importorskip("numpy")

FRAME_S = BLOCK_SAMPLES / SAMPLE_RATE  # 20 ms, what WebRTC delivers
ROOT = Path(__file__).resolve().parents[2]


# -- synthetic media ------------------------------------------------------------------------------
def tone(freq: float, index: int, amp: float = 0.3, channels: int = 1) -> Any:
    """The ``index``-th 20 ms frame of a sine tone (48 kHz s16, mono or stereo)."""
    t = (np.arange(BLOCK_SAMPLES) + index * BLOCK_SAMPLES) / SAMPLE_RATE
    samples = (np.sin(2 * np.pi * freq * t) * amp * 32767).astype(np.int16)
    if channels == 2:
        samples = np.repeat(samples, 2)  # interleaved L R
    frame = av.AudioFrame.from_ndarray(
        samples.reshape(1, -1), format="s16", layout="mono" if channels == 1 else "stereo"
    )
    frame.sample_rate = SAMPLE_RATE
    return frame


def picture(rgb: tuple[int, int, int], size: tuple[int, int] = (320, 240)) -> Any:
    image = np.zeros((size[1], size[0], 3), np.uint8)
    image[:] = rgb
    return av.VideoFrame.from_ndarray(image, format="rgb24")


def decode(path: Path) -> Any:
    """The whole audio track as mono float samples in [-1, 1] at 48 kHz."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
    chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    return np.concatenate(chunks).astype(np.float32) / 32768.0


def window(samples: Any, start: float, end: float) -> Any:
    return samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]


def rms(samples: Any) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0


def amplitude_at(samples: Any, freq: float) -> float:
    """The amplitude of the ``freq`` component (a sine of amplitude A gives ≈ A)."""
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    bins = np.fft.rfftfreq(samples.size, 1 / SAMPLE_RATE)
    near = np.abs(bins - freq) < 15
    return float(spectrum[near].max() * 2 / np.hanning(samples.size).sum())


def stream_durations(path: Path) -> dict[str, float]:
    with av.open(str(path)) as container:
        return {
            s.type: float(s.duration * s.time_base)
            for s in container.streams
            if s.duration is not None
        }


def feed(
    recorder: Recorder,
    clock: FakeClock,
    seconds: float,
    sources: dict[str, Any],
    *,
    video: dict[str, Any] | None = None,
) -> None:
    """Feed 20 ms frames for ``seconds`` while moving the clock: ``sources`` maps a
    participant to ``f(index) -> frame | None``; ``video`` likewise, at 10 fps."""
    for i in range(round(seconds / FRAME_S)):
        at = clock.monotonic()
        for pid, source in sources.items():
            frame = source(i)
            if frame is not None:
                assert recorder.add_audio(pid, frame, at)
        if video and i % 5 == 0:
            for pid, source in video.items():
                recorder.add_video(pid, source(i), at)
        clock.advance(FRAME_S)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- mixing ---------------------------------------------------------------------------------------
def test_mixes_participants_at_their_levels_and_keeps_them_apart(
    tmp_path: Path, clock: FakeClock
) -> None:
    rec = Recorder(tmp_path, audio_format="wav", separate_audio=True, clock=clock)
    feed(
        rec,
        clock,
        3.0,
        {"100": lambda i: tone(440, i, 0.3), "101": lambda i: tone(660, i, 0.2, channels=2)},
    )
    files = rec.stop()
    assert files.duration == pytest.approx(3.0)
    assert files.audio_mixed.path.name == "audio_mixed.wav"
    assert files.audio_mixed.size == 44 + 3 * SAMPLE_RATE * 2  # header patched: a plain WAV
    mixed = decode(files.audio_mixed.path)
    assert mixed.size == 3 * SAMPLE_RATE
    middle = window(mixed, 0.5, 2.5)
    assert amplitude_at(middle, 440) == pytest.approx(0.3, abs=0.02)
    assert amplitude_at(middle, 660) == pytest.approx(0.2, abs=0.02)
    assert np.abs(mixed).max() <= 0.52  # summed, not limited: 0.3 + 0.2

    assert set(files.audio_separate) == {"100", "101"}
    alice = window(decode(files.audio_separate["100"].path), 0.5, 2.5)
    bob = window(decode(files.audio_separate["101"].path), 0.5, 2.5)
    assert amplitude_at(alice, 440) == pytest.approx(0.3, abs=0.02)
    assert amplitude_at(alice, 660) < 0.01
    assert amplitude_at(bob, 660) == pytest.approx(0.2, abs=0.02)  # stereo folded to mono
    assert amplitude_at(bob, 440) < 0.01


def test_loud_participants_together_are_limited_not_wrapped(
    tmp_path: Path, clock: FakeClock
) -> None:
    rec = Recorder(tmp_path, audio_format="wav", clock=clock)
    feed(rec, clock, 2.0, {p: (lambda i: tone(440, i, 0.9)) for p in ("1", "2", "3")})
    mixed = window(decode(rec.stop().audio_mixed.path), 0.2, 1.8)
    reference = np.sin(2 * np.pi * 440 * (np.arange(mixed.size) + 0.2 * SAMPLE_RATE) / SAMPLE_RATE)
    assert np.abs(mixed).max() <= 1.0
    assert rms(mixed) > 0.6  # near full scale (a 2.7 sum brought down, not silenced)
    # Wrapping around (int16 overflow) would flip signs and destroy the waveform.
    assert float(np.corrcoef(mixed, reference)[0, 1]) > 0.99


def test_gaps_are_silence_on_the_wall_clock(tmp_path: Path, clock: FakeClock) -> None:
    rec = Recorder(tmp_path, audio_format="mp3", clock=clock)
    feed(rec, clock, 1.0, {"1": lambda i: tone(440, i)})
    feed(rec, clock, 2.0, {"1": lambda i: None})  # their stream stalls: no frames at all
    feed(rec, clock, 1.0, {"1": lambda i: tone(440, i)})
    files = rec.stop()
    assert files.duration == pytest.approx(4.0)
    assert stream_durations(files.audio_mixed.path)["audio"] == pytest.approx(4.0, abs=0.05)
    mixed = decode(files.audio_mixed.path)
    assert rms(window(mixed, 0.1, 0.9)) > 0.15
    assert rms(window(mixed, 1.2, 2.8)) < 0.01
    assert rms(window(mixed, 3.1, 3.9)) > 0.15


def test_mp3_files_are_32_khz_and_keep_speech_bandwidth_and_timing(tmp_path: Path, clock: FakeClock) -> None:
    """The MP3 is encoded at 32 kHz: a 10 kHz component (well above speech's formants) comes
    through, and a tone that starts at 1.0 s starts there in the file (no resampling delay)."""
    rec = Recorder(tmp_path, audio_format="mp3", separate_audio=True, clock=clock)
    feed(rec, clock, 1.0, {"1": lambda i: None})
    feed(rec, clock, 2.0, {"1": lambda i: tone(10_000, i)})
    files = rec.stop()
    for path in (files.audio_mixed.path, *(f.path for f in files.audio_separate.values())):
        with av.open(str(path)) as container:
            assert container.streams.audio[0].codec_context.sample_rate == MP3_SAMPLE_RATE == 32_000
        mixed = decode(path)
        assert amplitude_at(window(mixed, 1.5, 2.5), 10_000) == pytest.approx(0.3, abs=0.06)
        start = files.duration - stream_durations(path)["audio"]  # a participant's file starts later
        onset = int(np.argmax(np.abs(mixed) > 0.1)) / SAMPLE_RATE + start
        assert onset == pytest.approx(1.0, abs=0.01)


def test_a_silent_meeting_lasts_as_long_as_the_recording(tmp_path: Path, clock: FakeClock) -> None:
    rec = Recorder(tmp_path, audio_format="mp3", clock=clock)
    clock.advance(5.0)
    files = rec.stop()
    assert files.duration == pytest.approx(5.0)
    assert stream_durations(files.audio_mixed.path)["audio"] == pytest.approx(5.0, abs=0.05)
    assert rms(decode(files.audio_mixed.path)) < 0.001


def test_jittery_arrival_is_laid_end_to_end(tmp_path: Path, clock: FakeClock) -> None:
    """Frames arriving ±40 ms off their slot (network jitter) still make one unbroken tone."""
    rec = Recorder(tmp_path, audio_format="wav", clock=clock)
    rng = np.random.default_rng(7)
    start = clock.monotonic()
    for i in range(150):
        at = start + i * FRAME_S + float(rng.uniform(0, 0.04))
        clock.advance(max(0.0, at - clock.monotonic()))
        rec.add_audio("1", tone(440, i), at)
    clock.advance(start + 3.1 - clock.monotonic())
    mixed = decode(rec.stop().audio_mixed.path)
    body = window(mixed, 0.1, 2.9)
    blocks = body[: body.size // BLOCK_SAMPLES * BLOCK_SAMPLES].reshape(-1, BLOCK_SAMPLES)
    assert min(rms(b) for b in blocks) > 0.15  # no hole anywhere
    assert amplitude_at(body, 440) == pytest.approx(0.3, abs=0.02)  # and no doubling


def test_a_participant_heard_late_has_a_file_from_then_on(
    tmp_path: Path, clock: FakeClock
) -> None:
    rec = Recorder(tmp_path, audio_format="mp3", separate_audio=True, clock=clock)
    feed(rec, clock, 1.0, {"1": lambda i: tone(440, i)})
    feed(rec, clock, 1.0, {"1": lambda i: tone(440, i), "2": lambda i: tone(880, i)})
    feed(rec, clock, 1.0, {"1": lambda i: tone(440, i)})  # then "2" is quiet
    files = rec.stop()
    early, late = files.audio_separate["1"], files.audio_separate["2"]
    assert (early.offset, early.duration) == (0.0, pytest.approx(3.0))
    assert (late.offset, late.duration) == (pytest.approx(1.0), pytest.approx(2.0))
    assert stream_durations(late.path)["audio"] == pytest.approx(2.0, abs=0.05)
    samples = decode(late.path)  # from when they were first heard: no leading silence
    assert amplitude_at(window(samples, 0.1, 0.9), 880) == pytest.approx(0.3, abs=0.03)
    assert rms(window(samples, 1.1, 1.9)) < 0.01


# -- pause and resume -----------------------------------------------------------------------------
def test_paused_intervals_are_cut_out(tmp_path: Path, clock: FakeClock) -> None:
    rec = Recorder(tmp_path, audio_format="wav", separate_audio=True, clock=clock)
    start = clock.monotonic()
    feed(rec, clock, 2.0, {"1": lambda i: tone(440, i)})
    rec.pause()
    assert rec.paused
    feed(rec, clock, 3.0, {"1": lambda i: tone(660, i)})  # said while paused: not recorded
    rec.resume()
    feed(rec, clock, 2.0, {"1": lambda i: tone(880, i)})
    assert rec.media_time(start + 1.0) == pytest.approx(1.0)
    assert rec.media_time(start + 3.0) == pytest.approx(2.0)  # inside the pause
    assert rec.media_time(start + 6.0) == pytest.approx(3.0)
    files = rec.stop()
    assert files.duration == pytest.approx(4.0)
    mixed = decode(files.audio_mixed.path)
    assert mixed.size == 4 * SAMPLE_RATE
    before, after = window(mixed, 0.2, 1.8), window(mixed, 2.2, 3.8)
    assert amplitude_at(before, 440) > 0.25 and amplitude_at(after, 880) > 0.25
    assert amplitude_at(mixed, 660) < 0.01
    assert amplitude_at(window(mixed, 1.95, 2.45), 660) < 0.01  # not even at the cut
    assert decode(files.audio_separate["1"].path).size == mixed.size


def test_pause_and_resume_are_checked(tmp_path: Path, clock: FakeClock) -> None:
    rec = Recorder(tmp_path, clock=clock)
    with pytest.raises(ValueError):
        rec.resume()
    rec.pause()
    with pytest.raises(ValueError):
        rec.pause()
    clock.advance(1.0)
    files = rec.stop()
    assert files.duration == 0.0  # paused at once: nothing recorded
    assert rec.stop() is files  # idempotent
    assert not rec.add_audio("1", tone(440, 0), clock.monotonic())


def test_a_bad_frame_is_dropped_not_fatal(tmp_path: Path, clock: FakeClock) -> None:
    rec = Recorder(tmp_path, audio_format="wav", clock=clock)
    feed(rec, clock, 0.5, {"1": lambda i: tone(440, i)})
    rec.add_audio("1", object(), clock.monotonic())  # not an audio frame
    feed(rec, clock, 0.5, {"1": lambda i: tone(440, i + 25)})
    files = rec.stop()
    assert files.dropped_frames == 1
    assert rms(window(decode(files.audio_mixed.path), 0.1, 0.9)) > 0.15


def test_a_file_that_cannot_be_written_fails_the_recording(
    tmp_path: Path, clock: FakeClock
) -> None:
    (tmp_path / "audio_mixed.mp3").mkdir()  # the file's place is taken
    rec = Recorder(tmp_path, audio_format="mp3", clock=clock)
    feed(rec, clock, 0.5, {"1": lambda i: tone(440, i)})
    with pytest.raises(RecordingFailed) as info:
        rec.stop()
    assert isinstance(info.value.cause, OSError)
    assert not rec.add_audio("1", tone(440, 0), clock.monotonic())


# -- video ----------------------------------------------------------------------------------------
def test_video_mixed_is_a_grid_with_the_audio_muxed_on_the_same_clock(
    tmp_path: Path, clock: FakeClock
) -> None:
    rec = Recorder(tmp_path, audio_format="mp3", video=True, clock=clock)
    feed(
        rec,
        clock,
        6.0,
        {"100": lambda i: tone(440, i), "101": lambda i: tone(660, i)},
        video={"100": lambda i: picture((255, 0, 0)), "101": lambda i: picture((0, 0, 255))},
    )
    files = rec.stop()
    assert files.video_mixed is not None and files.video_mixed.path.name == "video_mixed.mp4"
    durations = stream_durations(files.video_mixed.path)
    assert set(durations) == {"video", "audio"}
    assert durations["video"] == pytest.approx(6.0, abs=0.2)
    assert durations["audio"] == pytest.approx(6.0, abs=0.2)

    with av.open(str(files.video_mixed.path)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == VIDEO_SIZE
        frames = [f for f in container.decode(stream) if 3.0 <= f.time <= 3.2]
    image = frames[0].to_ndarray(format="rgb24").astype(int)
    left, right = image[180, 160], image[180, 480]  # the two cells, side by side
    assert left[0] > 200 and left[2] < 60
    assert right[2] > 200 and right[0] < 60

    with av.open(str(files.video_mixed.path)) as container:
        track = [f.to_ndarray().reshape(-1) for f in container.decode(audio=0) if 2 < f.time < 4]
    assert amplitude_at(np.concatenate(track), 660) > 0.2


def test_without_video_nobody_is_drawn(tmp_path: Path, clock: FakeClock) -> None:
    rec = Recorder(tmp_path, audio_format="mp3", video=True, clock=clock)
    feed(rec, clock, 2.0, {"1": lambda i: tone(440, i)})
    files = rec.stop()
    assert files.video_mixed is not None
    with av.open(str(files.video_mixed.path)) as container:
        frame = next(f for f in container.decode(video=0) if f.time >= 1.0)
    assert int(frame.to_ndarray(format="rgb24").max()) < 40  # a dark canvas


def test_audio_only_recorders_take_no_video(tmp_path: Path, clock: FakeClock) -> None:
    rec = Recorder(tmp_path, audio_format="mp3", video=False, clock=clock)
    assert not rec.add_video("1", picture((255, 0, 0)), clock.monotonic())
    clock.advance(1.0)
    files = rec.stop()
    assert files.video_mixed is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audio_mixed.mp3"]


def test_options_from_recording_config() -> None:
    assert RecorderOptions.from_config({}) == RecorderOptions("mp3", False, True)
    assert RecorderOptions.from_config(
        {"video_mixed_layout": "audio_only", "audio_separate_mp3": {}}
    ) == RecorderOptions("mp3", True, False)
    assert RecorderOptions.from_config(
        {"video_mixed_mp4": None, "audio_mixed_raw": {}, "audio_separate_raw": {}}
    ) == RecorderOptions("wav", True, False)


# -- a killed process -----------------------------------------------------------------------------
def record_until_killed(directory: str, audio_format: str) -> None:
    """Run in a child process: record a tone and a changing picture on the real clock,
    printing the seconds fed so far, until killed."""
    import time

    from summon.clock import SystemClock

    clock = SystemClock()
    fmt: Any = audio_format
    rec = Recorder(directory, audio_format=fmt, video=True, clock=clock)
    start = clock.monotonic()
    for i in range(10**9):
        rec.add_audio("1", tone(440, i), clock.monotonic())
        if i % 5 == 0:
            rec.add_video("1", picture(((i * 5) % 256, 80, 160)), clock.monotonic())
        if (i + 1) % 25 == 0:
            print((i + 1) * FRAME_S, flush=True)
        time.sleep(max(0.0, start + (i + 1) * FRAME_S - clock.monotonic()))


def decoded_seconds(path: Path, kind: str) -> float:
    with av.open(str(path)) as container:
        last = 0.0
        for frame in container.decode(**{kind: 0}):
            last = float(frame.time or 0.0)
    return last


@pytest.mark.slow
@pytest.mark.parametrize("audio_format", ["mp3", "wav"])
async def test_a_killed_recorder_leaves_playable_files(tmp_path: Path, audio_format: str) -> None:
    code = (
        "import sys; from tests.unit.test_recorder import record_until_killed; "
        "record_until_killed(sys.argv[1], sys.argv[2])"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, str(tmp_path), audio_format,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    fed = 0.0
    try:
        while fed < 4.0:  # wait until four seconds were recorded
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=60)
            assert line, "the recording process ended by itself"
            fed = float(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    audio = tmp_path / f"audio_mixed.{audio_format}"
    assert decoded_seconds(audio, "audio") >= fed - 1.5
    samples = decode(audio)
    # The tone, intact: in most half-seconds of what was written. (The feeding process paces
    # itself with sleeps; on a loaded machine one stall longer than the recorder's jitter
    # allowance leaves a short silence, which is the recorder working as designed.)
    halves = [
        amplitude_at(window(samples, t / 2, t / 2 + 0.5), 440) for t in range(1, int(2 * (fed - 1.5)))
    ]
    assert len(halves) >= 3 and statistics.median(halves) > 0.25, halves
    video = tmp_path / "video_mixed.mp4"
    assert decoded_seconds(video, "video") >= fed - 2.0
    assert decoded_seconds(video, "audio") >= fed - 2.0


def test_files_report_sizes_and_types(tmp_path: Path, clock: FakeClock) -> None:
    rec = Recorder(tmp_path / "nested", audio_format="mp3", separate_audio=True, clock=clock)
    feed(rec, clock, 1.0, {"odd/id": lambda i: tone(440, i)})
    files: RecordingFiles = rec.stop()
    assert files.audio_mixed.content_type == "audio/mpeg"
    assert files.audio_mixed.size == files.audio_mixed.path.stat().st_size > 0
    (separate,) = files.audio_separate.values()
    assert separate.path.parent == tmp_path / "nested" / "audio_separate"
    assert "/" not in separate.path.name and separate.size > 0
    assert files.dropped_frames == 0
