"""The recorder alone: what mixing and encoding a meeting costs, per second of meeting.

Three participants send 20 ms frames in real time, as the Janus driver hands them over (48 kHz
s16 mono, as it decodes Opus; 10 fps 640x480 webcam frames when video is recorded),
and a :class:`~summon.media.recorder.Recorder` on the system clock writes the files. What is
measured is the CPU of everything but the feeding thread (the recorder's own thread: converting,
mixing, limiting, encoding and writing), as % of one core, for each configuration:

- mixed MP3 (the default ``audio_mixed``), mixed WAV (``audio_mixed_raw``-like, no encoder);
- mixed MP3 plus one MP3 per participant (``audio_separate_mp3``);
- mixed MP3 plus the mixed MP4 video (``video_mixed_mp4``).

Each configuration runs ``--seconds`` (default 15) and ``--rounds`` times (default 3); the
median round is printed with the spread. No targets of its own: this is the recorder's share of
``bench/janus_bots.py``'s CPU per bot.

    .venv/bin/python bench/recorder.py [--seconds 15] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import av  # noqa: E402
import numpy as np  # noqa: E402

from summon.clock import SystemClock  # noqa: E402
from summon.media.recorder import BLOCK_SAMPLES, SAMPLE_RATE, Recorder  # noqa: E402

PARTICIPANTS = 3
FRAME_S = BLOCK_SAMPLES / SAMPLE_RATE
VIDEO_EVERY = 5  # a webcam frame every 5 audio frames: 10 fps
CONFIGS: dict[str, dict[str, Any]] = {
    "mixed MP3": {"audio_format": "mp3"},
    "mixed WAV": {"audio_format": "wav"},
    "mixed MP3 + per-participant MP3s": {"audio_format": "mp3", "separate_audio": True},
    "mixed MP3 + video": {"audio_format": "mp3", "video": True},
}


def audio_frames(participant: int, count: int) -> list[av.AudioFrame]:
    """A voice-like signal (a wobbling tone over a noise bed), as decoded mono frames."""
    rng = np.random.default_rng(participant)
    out = []
    for i in range(count):
        t = (np.arange(BLOCK_SAMPLES) + i * BLOCK_SAMPLES) / SAMPLE_RATE
        voice = 4000 * np.sin(2 * np.pi * (150 + 40 * participant) * t * (1 + 0.05 * np.sin(3 * t)))
        mono = voice * (0.5 + 0.5 * np.sin(2 * np.pi * 0.4 * t + participant)) + rng.normal(0, 200, t.size)
        frame = av.AudioFrame.from_ndarray(mono.astype(np.int16).reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        out.append(frame)
    return out


def video_frames(participant: int, count: int) -> list[av.VideoFrame]:
    rng = np.random.default_rng(100 + participant)
    return [av.VideoFrame.from_ndarray(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), format="rgb24")
            for _ in range(count)]


def cpu_of_process() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_round(options: dict[str, Any], seconds: float, audio: list[list[Any]], video: list[list[Any]]) -> float:
    """% of one core spent outside the feeding thread while ``seconds`` of meeting are recorded."""
    clock = SystemClock()
    with tempfile.TemporaryDirectory(prefix="summon-bench-rec-") as directory:
        recorder = Recorder(Path(directory), clock=clock, **options)
        process0, feeder0 = cpu_of_process(), time.thread_time()
        start = clock.monotonic()
        for i in range(round(seconds / FRAME_S)):
            due = start + i * FRAME_S
            if (ahead := due - clock.monotonic()) > 0:
                time.sleep(ahead)  # pacing: frames arrive in real time, as from a meeting
            at = clock.monotonic()
            for p in range(PARTICIPANTS):
                recorder.add_audio(str(p), audio[p][i % len(audio[p])], at)
                if options.get("video") and i % VIDEO_EVERY == 0:
                    recorder.add_video(str(p), video[p][(i // VIDEO_EVERY) % len(video[p])], at)
        files = recorder.stop()
        spent = (cpu_of_process() - process0) - (time.thread_time() - feeder0)
        if recorder.dropped_frames:
            raise SystemExit(f"the recorder dropped {recorder.dropped_frames} frames: it did not keep up")
        assert files.audio_mixed is not None and files.audio_mixed.size > 0
    return 100.0 * spent / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small CI-safe run")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 2.0, 1
    audio = [audio_frames(p, 250) for p in range(PARTICIPANTS)]
    video = [video_frames(p, 10) for p in range(PARTICIPANTS)]
    results = {name: [one_round(options, args.seconds, audio, video) for _ in range(args.rounds)]
               for name, options in CONFIGS.items()}
    print(f"\nSummon recorder — {PARTICIPANTS} participants in real time, {args.seconds:g} s x {args.rounds} "
          f"rounds, {os.cpu_count()} CPUs; recorder CPU, % of one core")
    print(f"{'configuration':36} {'median':>8} {'min':>8} {'max':>8}")
    for name, values in results.items():
        print(f"{name:36} {statistics.median(values):8.2f} {min(values):8.2f} {max(values):8.2f}")


if __name__ == "__main__":
    main()
