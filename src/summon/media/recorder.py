"""The recorder: decoded meeting media in, progressive audio/video files out (SPEC §9).

A driver hands the bot session decoded frames per participant (PyAV ``AudioFrame``s, e.g.
48 kHz s16 mono or stereo in 20 ms frames, and ``VideoFrame``s); the session passes them to a
:class:`Recorder`, which writes:

- ``audio_mixed.mp3`` or ``audio_mixed.wav`` — every participant mixed, mono (mixed at 48 kHz;
  the MP3 is encoded at 32 kHz, 64 kbit/s);
- ``audio_separate/<participant>.mp3|wav`` — one file per participant, when asked for, from
  the moment the participant is first heard (:attr:`MediaFile.offset`: that position in the
  recording — a participant joining after an hour does not cost an hour of encoded silence)
  to the recording's stop, silence where they said nothing;
- ``video_mixed.mp4`` — when asked for: a grid of the participants' latest video frames,
  640x360 at 10 fps (H.264 with libx264, MPEG-4 part 2 without it), with the mixed audio as an
  AAC track.

Why the shape:

- **A fixed grid.** The mixer works in 20 ms blocks of recording time, wall-clock aligned: a
  block is written once the clock passed its end (plus :data:`JITTER_S` for late frames),
  whoever sent audio. A silent meeting, or one where nobody sends audio, still yields a file
  as long as the recording; a participant's missing frames are silence. Each participant's
  frames are laid end to end as long as their arrival times agree with that (within
  :data:`RESYNC_S`), so network jitter does not tear the audio; a larger disagreement (a
  stalled stream, a clock running fast) re-anchors the participant at the arrival time.
  Summing uses a limiter (instant attack, slow release) and clips only as a last resort, so
  loud speakers together never wrap around.
- **Progressive files.** A process killed with ``SIGKILL`` must leave files that play up to
  a second or so before the kill. MP3 is a sequence of frames (the muxer flushes every packet).
  WAV is written with the "unknown size" header (``0xFFFFFFFF``) that readers treat as "until
  the end of the file" and is patched with the real sizes on :meth:`Recorder.stop`. The MP4 is
  fragmented (``frag_keyframe+empty_moov+default_base_moof``, a key frame every second, every
  packet flushed), so each finished fragment is playable.
- **Timebases are ours.** Every frame written gets its ``pts`` from the recording position
  (audio in samples at 1/48000, video in ticks at 1/10), never from the incoming frames, so
  both tracks of the MP4 run on the recording's clock.
- **Pauses are cut**, like Recall: a paused interval is not in the files, and
  :meth:`Recorder.media_time` maps an instant to its position in the files (see
  :class:`~summon.media.timeline.RecordingSpans`), so the JSON artifacts point at the same
  positions as the media.
- **The event loop never waits.** ``add_audio``/``add_video``/``pause``/``resume`` only queue
  (a bounded queue: when full, frames are dropped and counted, never buffered without bound);
  converting, mixing, composing and encoding happen on the recorder's own thread (PyAV and
  numpy release the GIL while they work). :meth:`Recorder.stop` blocks until the files are
  closed: call it through ``asyncio.to_thread`` from a coroutine.

``av`` and ``numpy`` are imported when a recorder is built, never at import time.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import queue
import re
import struct
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from summon.abc import Clock
from summon.media.timeline import RecordingSpans

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "BLOCK_SAMPLES",
    "JITTER_S",
    "RESYNC_S",
    "MP3_SAMPLE_RATE",
    "SAMPLE_RATE",
    "VIDEO_FPS",
    "VIDEO_SIZE",
    "MediaFile",
    "Recorder",
    "RecorderOptions",
    "RecordingFailed",
    "RecordingFiles",
]

log = logging.getLogger(__name__)

#: The mixer's sample rate (mono) and its block: 20 ms.
SAMPLE_RATE = 48_000
BLOCK_SAMPLES = SAMPLE_RATE // 50
#: How long the mixer waits for late frames before writing a block.
JITTER_S = 0.2
#: The recorder's thread takes what was queued this often.
TICK_S = 0.1
#: A participant's frame within this of where their previous frame ended continues it.
RESYNC_S = 0.12
#: Frames stamped further than this in the future are dropped (a sender with a bad clock).
MAX_AHEAD_S = 5.0
#: The mixed video: size and frame rate, one key frame (and MP4 fragment) per second.
VIDEO_SIZE = (640, 360)
VIDEO_FPS = 10
VIDEO_GOP = VIDEO_FPS
#: Fragmented MP4: a playable file after every fragment, whatever happens to the process.
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
#: A participant whose last video frame is older than this leaves the grid (camera off).
VIDEO_STALE_S = 2.0
#: Queue bound: ~13 s of 20 ms frames from three participants.
MAX_QUEUE = 2000
MP3_BIT_RATE = 64_000
#: MP3 files are encoded at 32 kHz: LAME low-passes 64 kbit/s mono at about 16.5 kHz anyway
#: (measured), so a 48 kHz file would carry almost nothing more, and 32 kHz costs a third less.
MP3_SAMPLE_RATE = 32_000
AAC_BIT_RATE = 96_000
#: The limiter keeps the mix's peak at this (of 32767) and recovers by this much per block.
LIMIT = 32_000.0
RELEASE_PER_BLOCK = 0.02

AudioFormat = Literal["mp3", "wav"]
_CONTENT_TYPES = {"mp3": "audio/mpeg", "wav": "audio/wav", "mp4": "video/mp4"}
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class MediaFile:
    """One file written by the recorder: ``duration`` seconds of the recording, starting at
    position ``offset`` of the recording (0 except for participants first heard later)."""

    path: Path
    duration: float
    size: int
    content_type: str
    offset: float = 0.0


@dataclass(frozen=True, slots=True)
class RecordingFiles:
    """What :meth:`Recorder.stop` produced. ``audio_separate`` is keyed by participant id.
    ``dropped_frames`` counts frames lost: to a full queue, arriving too late for their block,
    stamped far in the future, or undecodable. Frames of paused intervals are not counted: they
    are cut on purpose."""

    audio_mixed: MediaFile
    audio_separate: dict[str, MediaFile]
    video_mixed: MediaFile | None
    duration: float
    dropped_frames: int


@dataclass(frozen=True, slots=True)
class RecorderOptions:
    """The recorder's settings, from a bot's ``recording_config`` (Recall's names)."""

    audio_format: AudioFormat = "mp3"
    separate_audio: bool = False
    video: bool = True

    @classmethod
    def from_config(cls, recording_config: Mapping[str, Any] | None) -> RecorderOptions:
        """``audio_mixed_raw`` asks for uncompressed audio (WAV), otherwise MP3;
        ``audio_separate_mp3``/``audio_separate_raw`` for per-participant files;
        ``video_mixed_mp4`` (on by default) for the video, unless the layout is ``audio_only``."""
        rc = recording_config or {}
        raw = rc.get("audio_mixed_raw") is not None and rc.get("audio_mixed_mp3") is None
        separate = (
            rc.get("audio_separate_mp3") is not None or rc.get("audio_separate_raw") is not None
        )
        video = (
            rc.get("video_mixed_mp4", {}) is not None
            and rc.get("video_mixed_layout", "speaker_view") != "audio_only"
        )
        return cls("wav" if raw else "mp3", separate, video)


class RecordingFailed(Exception):
    """Writing the recording failed (disk full, encoder error). ``files`` holds what was
    written before the failure (the files are playable up to that point), if anything."""

    def __init__(self, cause: BaseException, files: RecordingFiles | None = None) -> None:
        self.cause = cause
        self.files = files
        super().__init__(f"recording failed: {cause!r}")


@dataclass(slots=True)
class _Frame:
    kind: Literal["audio", "video"]
    participant_id: str
    frame: Any
    at: float


_STOP = object()


class Recorder:
    """One recording of one bot: see the module docstring.

    Thread contract: ``add_audio``, ``add_video``, ``pause``, ``resume``, ``media_time`` and
    ``stop`` may be called from any one thread (the bot's event loop); they never block except
    ``stop``. Recording starts when the recorder is built (or at ``start``, a monotonic instant
    of ``clock``). ``at`` arguments are instants of ``clock.monotonic()``: for a frame, when
    its first sample was captured — in practice, when the driver received it.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        audio_format: AudioFormat = "mp3",
        separate_audio: bool = False,
        video: bool = False,
        clock: Clock,
        start: float | None = None,
        max_queue: int = MAX_QUEUE,
        on_mixed: Callable[[np.ndarray, float], None] | None = None,
    ) -> None:
        """``on_mixed``, when given, is called on the recorder's thread with every block of the
        mix as it is written (48 kHz mono int16) and its position in the recording (seconds);
        it must be quick and must not raise (what it raises is logged and ignored)."""
        if audio_format not in ("mp3", "wav"):
            raise ValueError(f"audio_format must be mp3 or wav, not {audio_format!r}")
        import av  # noqa: F401  (fail here, not on the thread, when PyAV is missing)
        import numpy  # noqa: F401

        self.directory = Path(directory)
        self.audio_format: AudioFormat = audio_format
        self.separate_audio = separate_audio
        self.video = video
        self.on_mixed = on_mixed
        self._clock = clock
        self._lock = threading.Lock()
        self._spans = RecordingSpans(clock.monotonic() if start is None else start)
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._wake = threading.Event()
        self._dropped = 0
        self._stopping = False
        self._result: RecordingFiles | None = None
        self._error: BaseException | None = None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._writer = _Writer(self)
        self._thread = threading.Thread(
            target=self._writer.run, name=f"recorder:{self.directory.name}", daemon=True
        )
        self._thread.start()

    # -- feeding -------------------------------------------------------------------------------
    def add_audio(self, participant_id: str, frame: Any, at: float) -> bool:
        """Queue one decoded audio frame of a participant. False if it was dropped (queue
        full, recording stopped or failed)."""
        return self._put(_Frame("audio", participant_id, frame, at))

    def add_video(self, participant_id: str, frame: Any, at: float) -> bool:
        """Queue one decoded video frame of a participant (ignored unless ``video``)."""
        if not self.video:
            return False
        return self._put(_Frame("video", participant_id, frame, at))

    def _put(self, item: _Frame) -> bool:
        if self._stopping or self._error is not None:
            return False
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 500 == 0:
                log.warning(
                    "recorder %s: queue full, %d frames dropped so far",
                    self.directory,
                    self._dropped,
                )
            return False
        return True

    # -- control -------------------------------------------------------------------------------
    def pause(self, at: float | None = None) -> None:
        """Stop recording until :meth:`resume`; the paused interval is cut out of the files.
        Raises ``ValueError`` unless recording."""
        with self._lock:
            self._spans.pause(self._clock.monotonic() if at is None else at)

    def resume(self, at: float | None = None) -> None:
        """Continue a paused recording. Raises ``ValueError`` unless paused."""
        with self._lock:
            self._spans.resume(self._clock.monotonic() if at is None else at)

    @property
    def paused(self) -> bool:
        with self._lock:
            return not self._spans.running and not self._spans.stopped

    @property
    def spans(self) -> RecordingSpans:
        """A copy of the recorded spans (for rendering timestamps)."""
        with self._lock:
            return self._spans.copy()

    @property
    def dropped_frames(self) -> int:
        return self._dropped + self._writer.dropped

    def media_time(self, at: float) -> float:
        """The position in the files (seconds) of monotonic instant ``at``; see
        :meth:`RecordingSpans.relative`."""
        with self._lock:
            return self._spans.relative(at)

    def stop(self, at: float | None = None) -> RecordingFiles:
        """Stop for good: write what is due up to ``at`` (default: now), close the files and
        return them. Blocks until done. Idempotent: later calls return the same result.
        Raises :class:`RecordingFailed` if writing failed."""
        with self._lock:
            first = not self._stopping
            if first:
                self._stopping = True
                self._spans.stop(self._clock.monotonic() if at is None else at)
        if first:
            self._queue.put(_STOP)  # blocking: the stop must not be lost to a full queue
            self._wake.set()
        self._thread.join()
        if self._error is not None:
            raise RecordingFailed(self._error, self._result)
        assert self._result is not None
        return self._result


class _Writer:
    """The recorder's thread: everything that costs CPU or touches files."""

    def __init__(self, recorder: Recorder) -> None:
        self.r = recorder
        self.dropped = 0
        self.dropped_bad = 0
        self.mixer = _Mixer()
        self.cursors: dict[str, int] = {}
        self.mixed: _AudioSink | None = None
        self.separate: dict[str, _AudioSink] = {}
        self.separate_from: dict[str, int] = {}  # the recording position each file starts at
        self.video: _VideoWriter | None = None
        self.layout: _Layout | None = None
        self.resamplers: dict[str, Any] = {}
        self.written = 0  # samples written (the recording position, in samples)
        self.ticks = 0  # video frames written

    def run(self) -> None:
        r = self.r
        try:
            self._open()
            done = False
            while not done:
                # Wake on a period, not per frame: a wake-up per 20 ms frame per participant
                # would cost more than the mixing itself. stop() wakes the thread at once.
                r._wake.wait(TICK_S)
                r._wake.clear()
                now = r._clock.monotonic()  # read before draining: see _drain's docstring
                items = self._drain()
                with r._lock:
                    spans = r._spans.copy()
                # Nothing queued so far can be later than this (beyond: a sender's bad clock).
                latest = spans.relative(r._clock.monotonic()) + MAX_AHEAD_S
                for item in items:
                    if item is _STOP:
                        done = True
                        continue
                    try:
                        self._take(item, spans, latest)
                    except Exception:  # one undecodable frame is not worth the recording
                        self.dropped += 1
                        if self.dropped_bad == 0:
                            log.exception("recorder %s: a frame could not be used", r.directory)
                        self.dropped_bad += 1
                if done:
                    assert spans.end is not None
                    self._flush(spans.relative(spans.end))
                else:
                    self._flush(spans.relative(now - JITTER_S))
        except BaseException as exc:
            log.exception("recorder %s: writing failed", r.directory)
            r._error = exc
            self._discard_queue()
        finally:
            self._close()

    def _drain(self) -> list[Any]:
        """Everything queued now. The clock was read before: a frame queued before the clock
        moved past its block is taken before that block is written (no race with a fake clock
        that a test advances right after feeding)."""
        items: list[Any] = []
        while True:
            try:
                items.append(self.r._queue.get_nowait())
            except queue.Empty:
                return items

    def _discard_queue(self) -> None:
        # After a failure nothing is written; keep stop() from waiting on a full queue.
        while True:
            self.r._wake.wait(0.5)
            self.r._wake.clear()
            if _STOP in self._drain() or (self.r._stopping and self.r._queue.empty()):
                return  # (the stop may have been taken with the items that failed)

    # -- files ---------------------------------------------------------------------------------
    def _open(self) -> None:
        r = self.r
        self.mixed = _open_audio(r.directory / f"audio_mixed.{r.audio_format}", r.audio_format)
        if r.video:
            self.video = _VideoWriter(r.directory / "video_mixed.mp4")
            self.layout = _Layout()

    def _open_separate(self, pid: str, start: int) -> _AudioSink:
        """The participant's file, starting at recording position ``start`` (a block's)."""
        r = self.r
        folder = r.directory / "audio_separate"
        folder.mkdir(exist_ok=True)
        name = _SAFE.sub("_", pid)[:64] or "participant"
        if name != pid:  # keep names apart that the cleaning made equal
            name = f"{name}-{hashlib.sha256(pid.encode()).hexdigest()[:8]}"
        sink = _open_audio(folder / f"{name}.{r.audio_format}", r.audio_format)
        self.separate[pid] = sink
        self.separate_from[pid] = start
        return sink

    def _close(self) -> None:
        r = self.r
        duration = self.written / SAMPLE_RATE
        errors: list[BaseException] = []

        def close(sink: _AudioSink | _VideoWriter | None, start: int = 0) -> MediaFile | None:
            if sink is None:
                return None
            try:
                sink.close()
            except BaseException as exc:  # keep closing the others
                log.exception("recorder %s: closing %s failed", r.directory, sink.path)
                errors.append(exc)
            return _media_file(sink.path, (self.written - start) / SAMPLE_RATE, start / SAMPLE_RATE)

        mixed = close(self.mixed)
        separate = {
            pid: close(sink, self.separate_from[pid]) for pid, sink in self.separate.items()
        }
        video = close(self.video)
        if errors and r._error is None:
            r._error = errors[0]
        if mixed is not None:
            r._result = RecordingFiles(
                audio_mixed=mixed,
                audio_separate={pid: f for pid, f in separate.items() if f is not None},
                video_mixed=video,
                duration=duration,
                dropped_frames=r._dropped + self.dropped,
            )

    # -- frames --------------------------------------------------------------------------------
    def _take(self, item: _Frame, spans: RecordingSpans, latest: float) -> None:
        if not spans.recording(item.at):
            return  # paused, or outside the recording: cut, as intended
        if spans.relative(item.at) > latest:
            self.dropped += 1
            return
        if item.kind == "video":
            if self.layout is not None:
                self.layout.add(item.participant_id, item.frame, spans.relative(item.at))
            return
        samples = self._mono(item.participant_id, item.frame)
        if samples.size == 0:
            return
        pid = item.participant_id
        arrival = round(spans.relative(item.at) * SAMPLE_RATE)
        cursor = self.cursors.get(pid)
        contiguous = cursor is not None and abs(arrival - cursor) <= RESYNC_S * SAMPLE_RATE
        position = cursor if contiguous and cursor is not None else arrival
        if not self.mixer.place(pid, samples, position, self.written):
            self.dropped += 1
        self.cursors[pid] = position + samples.size
        if self.r.separate_audio and pid not in self.separate:
            self._open_separate(pid, max(self.written, position // BLOCK_SAMPLES * BLOCK_SAMPLES))

    def _mono(self, pid: str, frame: Any) -> np.ndarray:
        """The frame as 48 kHz mono int16 samples."""
        import numpy as np

        fmt = frame.format.name
        channels = len(frame.layout.channels)
        if frame.sample_rate == SAMPLE_RATE and fmt == "s16" and channels <= 2:
            # What decoders give (packed, interleaved): read straight from the frame's buffer
            # (this runs for every 20 ms of every participant; to_ndarray and a float mean cost
            # more than the mixing itself).
            count = frame.samples * channels
            raw = np.frombuffer(memoryview(frame.planes[0]), dtype=np.int16, count=count)
            if channels == 1:
                return raw.copy()
            pair = raw.astype(np.int32)
            return ((pair[0::2] + pair[1::2]) >> 1).astype(np.int16)
        if frame.sample_rate == SAMPLE_RATE and fmt in ("s16", "s16p"):
            data = frame.to_ndarray()
            if channels == 1:
                return data.reshape(-1).astype(np.int16, copy=False)
            if fmt == "s16":  # packed: (1, samples * channels), interleaved
                data = data.reshape(-1, channels)
                return data.astype(np.int32).mean(axis=1).astype(np.int16)
            return data.astype(np.int32).mean(axis=0).astype(np.int16)
        resampler = self.resamplers.get(pid)
        if resampler is None:
            import av

            resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            self.resamplers[pid] = resampler
        import av

        # A copy without pts: timing comes from `at`, and the driver's frame is shared with the
        # transcriber's thread.
        copy = av.AudioFrame.from_ndarray(
            frame.to_ndarray(), format=frame.format.name, layout=frame.layout.name
        )
        copy.sample_rate = frame.sample_rate
        chunks = [f.to_ndarray().reshape(-1) for f in resampler.resample(copy)]
        if not chunks:
            return np.zeros(0, np.int16)
        return np.concatenate(chunks).astype(np.int16, copy=False)

    # -- writing -------------------------------------------------------------------------------
    def _flush(self, target_seconds: float) -> None:
        """Write every whole block that ends at or before ``target_seconds`` of recording."""
        import numpy as np

        blocks = math.floor(max(0.0, target_seconds) * SAMPLE_RATE / BLOCK_SAMPLES + 1e-6)
        target = blocks * BLOCK_SAMPLES
        # The audio files get this flush's blocks in one write: an encoder call costs as much
        # in fixed overhead as encoding a block or two (a third of LAME's time at 20 ms).
        mixes: list[np.ndarray] = []
        parts_of: dict[str, list[np.ndarray]] = {pid: [] for pid in self.separate}
        while self.written + BLOCK_SAMPLES <= target:
            mix, parts = self.mixer.take(self.written // BLOCK_SAMPLES, self.separate.keys())
            mixes.append(mix)
            for pid in self.separate:
                if self.written >= self.separate_from[pid]:
                    parts_of[pid].append(parts[pid])
            if self.video is not None:
                self.video.write_audio(mix, self.written)
            if self.r.on_mixed is not None:
                try:
                    self.r.on_mixed(mix, self.written / SAMPLE_RATE)
                except Exception:
                    log.exception("the mixed-audio listener failed")
            self.written += BLOCK_SAMPLES
            self._tick_video()
        assert self.mixed is not None
        if mixes:
            self.mixed.write(mixes[0] if len(mixes) == 1 else np.concatenate(mixes))
        for pid, sink in self.separate.items():
            if chunks := parts_of[pid]:
                sink.write(chunks[0] if len(chunks) == 1 else np.concatenate(chunks))
        for sink in (self.mixed, *self.separate.values()):
            if sink is not None:
                sink.flush()

    def _tick_video(self) -> None:
        if self.video is None or self.layout is None:
            return
        # Frame k shows the meeting at k / fps; written once the audio passed that instant.
        while self.ticks * SAMPLE_RATE < self.written * VIDEO_FPS:
            canvas = self.layout.compose(self.ticks / VIDEO_FPS)
            self.video.write_video(canvas, self.ticks)
            self.ticks += 1


class _Mixer:
    """Per-participant samples on the block grid, summed block by block. Each participant's
    pending audio is a map from block index to that block's samples, so placing a frame costs
    the same however far ahead of the written position it lands."""

    def __init__(self) -> None:
        import numpy as np

        self._np = np
        self.blocks: dict[str, dict[int, np.ndarray]] = {}
        self.gain = 1.0

    def place(self, pid: str, samples: np.ndarray, position: int, written: int) -> bool:
        """Put ``samples`` at ``position`` (samples of recording), over what was there. Parts
        already written are lost (late); False if nothing could be placed."""
        np = self._np
        if position + samples.size <= written:
            return False
        if position < written:
            samples = samples[written - position :]
            position = written
        blocks = self.blocks.setdefault(pid, {})
        while samples.size:
            index, offset = divmod(position, BLOCK_SAMPLES)
            n = min(BLOCK_SAMPLES - offset, samples.size)
            block = blocks.get(index)
            if block is None:
                block = blocks[index] = np.zeros(BLOCK_SAMPLES, np.int16)
            block[offset : offset + n] = samples[:n]
            samples, position = samples[n:], position + n
        return True

    def take(self, index: int, keep: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Block ``index``: the limited mix, and each participant's own samples (for everyone
        in ``keep``, silence if they sent nothing)."""
        np = self._np
        total = np.zeros(BLOCK_SAMPLES, np.float32)
        parts: dict[str, np.ndarray] = {}
        for pid, blocks in self.blocks.items():
            part = blocks.pop(index, None)
            if part is not None:
                total += part
                parts[pid] = part
        for pid in keep:
            if pid not in parts:
                parts[pid] = np.zeros(BLOCK_SAMPLES, np.int16)
        return self._limit(total), parts

    def _limit(self, total: np.ndarray) -> np.ndarray:
        np = self._np
        peak = float(np.abs(total).max()) if total.size else 0.0
        wanted = 1.0 if peak <= LIMIT else LIMIT / peak
        start = min(self.gain, wanted)  # attack at once
        end = wanted if wanted < start else min(wanted, start + RELEASE_PER_BLOCK)  # release
        if start < 1.0 or end < 1.0:
            total = total * np.linspace(start, end, total.size, dtype=np.float32)
        self.gain = end
        return np.clip(total, -32768, 32767).astype(np.int16)


# -- audio files --------------------------------------------------------------------------------
class _AudioSink:
    path: Path

    def write(self, samples: np.ndarray) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        """Hand what was written to the operating system (survives a killed process)."""

    def close(self) -> None:
        raise NotImplementedError


def _open_audio(path: Path, audio_format: AudioFormat) -> _AudioSink:
    return _WavFile(path) if audio_format == "wav" else _Mp3File(path)


class _WavFile(_AudioSink):
    """16-bit PCM WAV, written as a stream: the sizes in the header say "unknown"
    (``0xFFFFFFFF``, which readers take as "up to the end of the file") until ``close``
    writes the real ones."""

    UNKNOWN = 0xFFFF_FFFF

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115  (closed in close())
        self._bytes = 0
        self._file.write(self._header(self.UNKNOWN, self.UNKNOWN))

    @staticmethod
    def _header(riff_size: int, data_size: int) -> bytes:
        return (
            b"RIFF"
            + struct.pack("<I", riff_size)
            + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, SAMPLE_RATE, SAMPLE_RATE * 2, 2, 16)
            + b"data"
            + struct.pack("<I", data_size)
        )

    def write(self, samples: np.ndarray) -> None:
        data = samples.astype("<i2", copy=False).tobytes()
        self._file.write(data)
        self._bytes += len(data)

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            if self._bytes + 36 < self.UNKNOWN:  # beyond 4 GiB the header stays "unknown"
                self._file.seek(0)
                self._file.write(self._header(self._bytes + 36, self._bytes))
        finally:
            self._file.close()


class _Mp3File(_AudioSink):
    """MP3 (LAME) frames appended as they are encoded; every packet reaches the file."""

    def __init__(self, path: Path) -> None:
        import av

        self.path = path
        self._av = av
        self._container = av.open(str(path), "w", format="mp3", options={"flush_packets": "1"})
        self._stream = self._container.add_stream(
            "libmp3lame",
            rate=MP3_SAMPLE_RATE,
            layout="mono",
            options={"compression_level": "7"},  # LAME -q 7: a third less CPU, fine for speech
        )
        self._stream.bit_rate = MP3_BIT_RATE
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=MP3_SAMPLE_RATE)
        self._pts = 0  # in samples of the mix (SAMPLE_RATE)
        self._encoded = 0  # in samples of the file (MP3_SAMPLE_RATE)

    def write(self, samples: np.ndarray) -> None:
        frame = _audio_frame(self._av, samples, self._pts)
        self._pts += samples.size
        self._encode(self._resampler.resample(frame))

    def _encode(self, frames: list[Any]) -> None:
        for frame in frames:
            frame.pts, frame.time_base = self._encoded, Fraction(1, MP3_SAMPLE_RATE)
            self._encoded += frame.samples
            for packet in self._stream.encode(frame):
                self._container.mux(packet)

    def close(self) -> None:
        try:
            self._encode(self._resampler.resample(None))
            for packet in self._stream.encode(None):
                self._container.mux(packet)
        finally:
            self._container.close()


# -- video ------------------------------------------------------------------------------------
class _VideoWriter:
    """Fragmented MP4: the composed video and the mixed audio, both timed by the recorder."""

    def __init__(self, path: Path) -> None:
        import av

        self.path = path
        self._av = av
        self._container = av.open(
            str(path),
            "w",
            format="mp4",
            options={"movflags": MOVFLAGS, "flush_packets": "1"},
        )
        width, height = VIDEO_SIZE
        try:
            video = self._container.add_stream(
                "libx264",
                rate=VIDEO_FPS,
                options={"preset": "veryfast", "tune": "zerolatency", "g": str(VIDEO_GOP)},
            )
        except (av.error.FFmpegError, ValueError, KeyError):  # PyAV built without libx264
            video = self._container.add_stream(
                "mpeg4", rate=VIDEO_FPS, options={"g": str(VIDEO_GOP)}
            )
            video.bit_rate = 600_000
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = Fraction(1, VIDEO_FPS)
        video.codec_context.thread_count = 1
        audio = self._container.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        audio.bit_rate = AAC_BIT_RATE
        audio.time_base = Fraction(1, SAMPLE_RATE)
        self._video, self._audio = video, audio

    def write_audio(self, samples: np.ndarray, position: int) -> None:
        for packet in self._audio.encode(_audio_frame(self._av, samples, position)):
            self._container.mux(packet)

    def write_video(self, canvas: np.ndarray, tick: int) -> None:
        frame = self._av.VideoFrame.from_ndarray(canvas, format="yuv420p")
        frame.pts = tick
        frame.time_base = Fraction(1, VIDEO_FPS)
        for packet in self._video.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        try:
            for stream in (self._audio, self._video):
                for packet in stream.encode(None):
                    self._container.mux(packet)
        finally:
            self._container.close()


@dataclass(slots=True)
class _Tile:
    pending: deque[tuple[float, Any]] = field(default_factory=lambda: deque(maxlen=64))
    frame: Any = None
    shown_at: float = -math.inf  # recording position of `frame`
    cached: tuple[Any, int, int, Any] | None = None  # (frame, cell w, cell h, planes)


class _Layout:
    """The grid: every participant whose camera sent a frame in the last
    :data:`VIDEO_STALE_S`, in order of first appearance, each frame fitted (letterboxed) into
    an equal cell; a dark canvas when nobody shows video."""

    def __init__(self) -> None:
        import numpy as np

        self._np = np
        self.tiles: dict[str, _Tile] = {}

    def add(self, pid: str, frame: Any, position: float) -> None:
        tile = self.tiles.setdefault(pid, _Tile())
        tile.pending.append((position, frame))

    def compose(self, position: float) -> np.ndarray:
        """The canvas (yuv420p, stacked planes: shape ``(h * 3 / 2, w)``) at ``position``."""
        np = self._np
        width, height = VIDEO_SIZE
        y = np.full((height, width), 16, np.uint8)
        u = np.full((height // 2, width // 2), 128, np.uint8)
        v = np.full((height // 2, width // 2), 128, np.uint8)
        shown = []
        for pid, tile in self.tiles.items():
            while tile.pending and tile.pending[0][0] <= position:
                tile.shown_at, tile.frame = tile.pending.popleft()
            if tile.frame is not None and position - tile.shown_at <= VIDEO_STALE_S:
                shown.append(tile)
        if shown:
            cols = math.ceil(math.sqrt(len(shown)))
            rows = math.ceil(len(shown) / cols)
            cell_w, cell_h = width // cols, height // rows
            for i, tile in enumerate(shown):
                row, col = divmod(i, cols)
                ty, tu, tv = self._fit(tile, cell_w, cell_h)
                h, w = ty.shape
                top = row * cell_h + ((cell_h - h) // 2 & ~1)
                left = col * cell_w + ((cell_w - w) // 2 & ~1)
                y[top : top + h, left : left + w] = ty
                u[top // 2 : top // 2 + h // 2, left // 2 : left // 2 + w // 2] = tu
                v[top // 2 : top // 2 + h // 2, left // 2 : left // 2 + w // 2] = tv
        return np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(-1, width)

    def _fit(self, tile: _Tile, cell_w: int, cell_h: int) -> tuple[Any, Any, Any]:
        frame = tile.frame
        cached = tile.cached
        if cached is not None and cached[0] is frame and cached[1:3] == (cell_w, cell_h):
            planes: tuple[Any, Any, Any] = cached[3]
            return planes
        scale = min(cell_w / max(1, frame.width), cell_h / max(1, frame.height))
        w = max(2, int(frame.width * scale) & ~1)
        h = max(2, int(frame.height * scale) & ~1)
        flat = frame.reformat(width=w, height=h, format="yuv420p").to_ndarray().reshape(-1)
        planes = (
            flat[: w * h].reshape(h, w),
            flat[w * h : w * h + w * h // 4].reshape(h // 2, w // 2),
            flat[w * h + w * h // 4 : w * h * 3 // 2].reshape(h // 2, w // 2),
        )
        tile.cached = (frame, cell_w, cell_h, planes)
        return planes


def _audio_frame(av: Any, samples: np.ndarray, pts: int) -> Any:
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = SAMPLE_RATE
    frame.pts = pts
    frame.time_base = Fraction(1, SAMPLE_RATE)
    return frame


def _media_file(path: Path, duration: float, offset: float = 0.0) -> MediaFile:
    try:
        size = path.stat().st_size if path.is_file() else 0
    except OSError:
        size = 0
    return MediaFile(path, duration, size, _CONTENT_TYPES[path.suffix.lstrip(".")], offset)
