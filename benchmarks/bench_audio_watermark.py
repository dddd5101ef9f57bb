"""Speed of the audio watermark on one core, 44.1 kHz stereo, as multiples of real time.

  pytest benchmarks/bench_audio_watermark.py --benchmark-only

Issue 5's targets: embed >= 1000x and detect >= 100x real time. The peer, audiowmark (C++, on
neither PyPI nor Debian, so it cannot be measured in this run), was measured on this kind of
machine at 330-530x for embedding and 13-19x for decoding per core; those figures are printed
beside labelkit's. Detection is timed on marked audio (the nominal-scale pass finds it) and on
unmarked audio (the speed search runs in full: the worst case).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from labelkit.watermark import WatermarkKey
from labelkit.watermark.audio import detect_audio, embed_audio

from .conftest import record

KEY = WatermarkKey(hashlib.sha256(b"labelkit audio watermark benchmark").digest())
PAYLOAD = KEY.payload_for("01J9ZQ4T7K3M8X2R5V6W1Y0AUD")
RATE, SECONDS = 44100, 10.0
PEER = {"embed": "330-530x", "detect": "13-19x"}


def _audio() -> np.ndarray:
    rng = np.random.default_rng(5)
    t = np.arange(int(RATE * SECONDS)) / RATE
    x = sum(np.sin(2 * np.pi * f * t) * (0.3 + 0.2 * np.sin(t * k)) / k
            for k, f in enumerate((220.0, 330.0, 440.0, 660.0, 880.0), 1))
    x = 0.25 * x + 0.01 * rng.standard_normal(t.size)
    return np.stack([x, 0.9 * x], 1).astype(np.float32)


def _report(benchmark, what: str) -> None:
    if benchmark.stats is None:
        return
    speed = SECONDS / benchmark.stats.stats.median
    print(f"\naudio watermark {what}: {speed:.0f}x real time (audiowmark: {PEER[what.split()[0]]})")


def test_embed_speed(benchmark):
    pcm = _audio()
    benchmark.pedantic(embed_audio, args=(pcm, RATE, KEY, PAYLOAD), rounds=5, iterations=1)
    record("audio watermark (10 s, 44.1 kHz stereo)", "embed", benchmark,
           nbytes=pcm.nbytes, target=">= 1000x real time", subject=True)
    _report(benchmark, "embed")


@pytest.mark.parametrize("marked", [True, False], ids=["marked", "unmarked-full-search"])
def test_detect_speed(benchmark, marked):
    pcm = _audio()
    if marked:
        pcm = embed_audio(pcm, RATE, KEY, PAYLOAD, strength=2.0)
    benchmark.pedantic(detect_audio, args=(pcm, RATE, KEY), rounds=3, iterations=1)
    record("audio watermark (10 s, 44.1 kHz stereo)", f"detect ({'marked' if marked else 'unmarked'})",
           benchmark, nbytes=pcm.nbytes, target=">= 100x real time")
    _report(benchmark, "detect " + ("marked" if marked else "unmarked"))
