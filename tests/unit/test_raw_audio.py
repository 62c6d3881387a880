"""``audio_mixed_raw.data`` chunks: 48 kHz blocks in, 16 kHz S16LE base64 out."""

from __future__ import annotations

import base64

import numpy as np

from summon.media.raw_audio import MixedAudioChunker, wants_mixed_audio
from summon.media.recorder import BLOCK_SAMPLES, SAMPLE_RATE


def _pcm(buffer: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(buffer), "<i2")


def test_blocks_become_100_ms_chunks_at_16_khz() -> None:
    chunker = MixedAudioChunker()
    out = []
    for i in range(12):  # 12 blocks of 20 ms = 240 ms
        block = np.full(BLOCK_SAMPLES, 1000 * (i + 1), np.int16)
        chunk = chunker.add(block, i * BLOCK_SAMPLES / SAMPLE_RATE)
        if chunk:
            out.append(chunk)
    assert [c.position for c in out] == [0.0, 0.1]
    assert all(c.duration == 0.1 for c in out)
    first = _pcm(out[0].buffer)
    assert first.size == 1600  # 100 ms at 16 kHz
    assert list(first[::320]) == [1000, 2000, 3000, 4000, 5000]  # block by block, in order
    rest = chunker.flush()
    assert rest is not None and rest.position == 0.2 and _pcm(rest.buffer).size == 640
    assert chunker.flush() is None


def test_decimation_averages_and_keeps_a_tone() -> None:
    t = np.arange(BLOCK_SAMPLES * 5) / SAMPLE_RATE
    tone = (10000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    chunker = MixedAudioChunker()
    chunk = None
    for i in range(5):
        chunk = chunker.add(tone[i * BLOCK_SAMPLES:(i + 1) * BLOCK_SAMPLES], i * 0.02) or chunk
    assert chunk is not None
    pcm = _pcm(chunk.buffer).astype(np.float64)
    expected = tone.astype(np.int32).reshape(-1, 3).mean(axis=1)
    assert np.abs(pcm - expected).max() <= 1
    spectrum = np.abs(np.fft.rfft(pcm))
    assert abs(np.argmax(spectrum) * 16_000 / pcm.size - 440) < 15


def test_extremes_do_not_wrap() -> None:
    chunker = MixedAudioChunker(chunk_s=0.02)
    chunk = chunker.add(np.full(BLOCK_SAMPLES, -32768, np.int16), 0.0)
    assert chunk is not None and set(_pcm(chunk.buffer)) == {-32768}


def test_only_websockets_that_asked_get_raw_audio() -> None:
    def config(*endpoints: dict) -> dict:
        return {"realtime_endpoints": list(endpoints)}

    raw = "audio_mixed_raw.data"
    assert wants_mixed_audio(config({"type": "websocket", "url": "ws://x", "events": [raw]}))
    assert not wants_mixed_audio(config({"type": "webhook", "url": "http://x", "events": [raw]}))
    assert not wants_mixed_audio(config({"type": "websocket", "url": "ws://x", "events": ["transcript.data"]}))
    assert not wants_mixed_audio({})
    assert not wants_mixed_audio(config("junk"))  # type: ignore[arg-type]
