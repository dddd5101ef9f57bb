"""Speed of finding the audible cue (verify's explicit check on audio), on one core.

  pytest benchmarks/bench_audio_cue.py --benchmark-only -p no:cacheprovider

One minute of 48 kHz stereo noise with the cue at the start and the end; the baseline in the
same run is one pass that any detector makes over the samples: their RMS per 10 ms frame.
"""

from __future__ import annotations

import numpy as np

from labelkit.explicit.audio import apply_cue, detect_cue
from labelkit.policy import AudioPolicy

from .conftest import record

RATE = 48_000
GROUP = "audio cue detection (60 s, 48 kHz stereo)"


def _clip() -> np.ndarray:
    rng = np.random.default_rng(11)
    x = rng.normal(0, 0.05, (60 * RATE, 2)).astype(np.float32)
    return apply_cue(x, RATE, AudioPolicy(placement="both")).pcm


def test_frame_rms_baseline(benchmark):
    pcm = _clip()
    frames = pcm[: len(pcm) // 480 * 480].reshape(-1, 480, 2)
    benchmark(lambda: np.sqrt(np.mean(frames * frames, axis=(1, 2))))
    record(GROUP, "RMS per 10 ms frame", benchmark, nbytes=pcm.nbytes, baseline=True)


def test_detect_cue(benchmark):
    pcm = _clip()
    found = benchmark(detect_cue, pcm, RATE)
    assert [s.where for s in found.spans] == ["start", "end"]
    record(GROUP, "detect_cue", benchmark, nbytes=pcm.nbytes, target="< 1 s per minute",
           subject=True)
