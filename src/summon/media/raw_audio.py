"""``audio_mixed_raw.data`` for real-time websocket endpoints (SPEC §10.4): the meeting's mixed
audio, as it is recorded, in Recall's shape — 16-bit little-endian PCM, mono, 16 kHz, base64.

The recorder mixes at 48 kHz in 20 ms blocks (:data:`summon.media.recorder.BLOCK_SAMPLES`);
:class:`MixedAudioChunker` gathers them into :data:`CHUNK_S` chunks (fewer, larger messages
through the runtime pipe and over the websocket) and decimates by three, averaging each three
samples (a box filter: cheap, and it keeps speech intelligible; the recording files keep the
full rate). It works on the recorder's thread and only packs bytes; the session hands the
chunks to its event loop.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CHUNK_S", "OUTPUT_RATE", "MixedAudioChunk", "MixedAudioChunker", "wants_mixed_audio"]

EVENT = "audio_mixed_raw.data"
#: The rate of the streamed audio (Recall's: 16 kHz mono S16LE).
OUTPUT_RATE = 16_000
INPUT_RATE = 48_000
#: Audio per message.
CHUNK_S = 0.1


@dataclass(frozen=True, slots=True)
class MixedAudioChunk:
    buffer: str  # base64 of S16LE mono 16 kHz
    position: float  # where the chunk starts in the recording, seconds
    duration: float


class MixedAudioChunker:
    """48 kHz int16 blocks in (in order, gapless: the recorder's grid), 16 kHz chunks out."""

    def __init__(self, chunk_s: float = CHUNK_S) -> None:
        import numpy as np

        self._np = np
        self._factor = INPUT_RATE // OUTPUT_RATE
        self._chunk = max(self._factor, round(chunk_s * INPUT_RATE) // self._factor * self._factor)
        self._parts: list[np.ndarray] = []
        self._size = 0
        self._start: float | None = None

    def add(self, block: np.ndarray, position: float) -> MixedAudioChunk | None:
        """Take one block (at ``position`` seconds of recording); a chunk when one is full."""
        if self._start is None:
            self._start = position
        self._parts.append(block)
        self._size += block.size
        if self._size < self._chunk:
            return None
        return self.flush()

    def flush(self) -> MixedAudioChunk | None:
        """Whatever is gathered, as a chunk (at the end of the recording); None if nothing."""
        np = self._np
        if not self._size or self._start is None:
            return None
        samples = np.concatenate(self._parts) if len(self._parts) > 1 else self._parts[0]
        usable = samples.size // self._factor * self._factor
        reduced = samples[:usable].astype(np.int32).reshape(-1, self._factor).mean(axis=1)
        pcm = np.clip(np.rint(reduced), -32768, 32767).astype("<i2").tobytes()
        chunk = MixedAudioChunk(
            buffer=base64.b64encode(pcm).decode("ascii"),
            position=self._start,
            duration=usable / INPUT_RATE,
        )
        self._parts, self._size, self._start = [], 0, None
        return chunk


def wants_mixed_audio(recording_config: Mapping[str, Any]) -> bool:
    """True if a websocket real-time endpoint subscribed to ``audio_mixed_raw.data`` (raw audio
    is streamed to websockets only)."""
    endpoints = recording_config.get("realtime_endpoints") or []
    return any(
        isinstance(e, Mapping) and e.get("type") == "websocket" and EVENT in (e.get("events") or [])
        for e in endpoints
    )
