"""Audio watermark: streaming equals whole-clip marking, kernels agree, the p-value holds.

Real speech comes from espeak-ng (Debian) when it is installed; synthetic tones otherwise."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from labelkit import _kernels_py
from labelkit._impl import kernel
from labelkit.watermark import WatermarkKey
from labelkit.watermark.audio import AudioEmbedder, detect_audio, embed_audio

from .conftest import PURE

RATE = 44100
KEY = WatermarkKey(bytes(range(32)))
PAYLOAD = 0x0123456789ABCDEF


def _music(seconds: float, seed: int = 1) -> np.ndarray:
    """Plucked harmonic notes, four a second, in stereo (a stand-in for generated music)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = np.zeros_like(t)
    for i in range(int(seconds * 4)):
        f0 = 110 * 2 ** (rng.integers(0, 24) / 12)
        s, e = int(i * RATE / 4), min(t.size, int(i * RATE / 4) + int(RATE * 0.6))
        env = np.exp(-3 * (t[s:e] - t[s]))
        for h in range(1, 8):
            x[s:e] += env * np.sin(2 * np.pi * f0 * h * t[s:e]) / h**1.2
    x = x / np.abs(x).max() * 0.5 + 0.003 * rng.standard_normal(t.size)
    return np.stack([x, 0.8 * x], 1).astype(np.float32)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    if not shutil.which("espeak-ng"):
        pytest.skip("espeak-ng is not installed")
    import av

    path = tmp_path_factory.mktemp("speech") / "s.wav"
    text = ("Artificial intelligence generated this speech. The weather today is sunny with a "
            "light breeze, and the market opened higher as investors welcomed the news.")
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    with av.open(str(path)) as c:
        res = av.AudioResampler("flt", "stereo", RATE)
        chunks = [g.to_ndarray().reshape(-1, 2) for f in c.decode(audio=0) for g in res.resample(f)]
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)


def test_streaming_equals_whole_clip():
    pcm = _music(6)
    whole = embed_audio(pcm, RATE, KEY, PAYLOAD)
    rng = np.random.default_rng(7)
    e = AudioEmbedder(KEY, PAYLOAD, RATE, 2)
    parts, i = [], 0
    while i < pcm.shape[0]:
        n = int(rng.integers(1, 6000))
        parts.append(e.process(pcm[i : i + n]))
        i += n
    parts.append(e.flush())
    streamed = np.concatenate(parts)
    assert streamed.shape == pcm.shape
    assert np.array_equal(streamed, whole)


def test_latency_is_one_frame():
    e = AudioEmbedder(KEY, PAYLOAD, RATE, 1)
    out = e.process(np.zeros((RATE, 1), np.float32) + 0.1)
    assert e.latency <= 0.05 * RATE  # one 46 ms frame and the half-band filters
    assert RATE - out.shape[0] <= e.latency  # everything else is returned


def test_snr_at_least_30_db(speech):
    for pcm in (_music(10), speech):
        marked = embed_audio(pcm, RATE, KEY, PAYLOAD)
        noise = (marked - pcm).astype(np.float64)
        snr = 10 * np.log10(np.sum(pcm.astype(np.float64) ** 2) / np.sum(noise**2))
        assert snr >= 30.0


def test_silence_stays_silent():
    pcm = np.zeros((RATE * 2, 2), np.float32)
    assert not np.any(embed_audio(pcm, RATE, KEY, PAYLOAD))
    assert detect_audio(pcm, RATE, KEY).reason == "silent"


def test_marked_music_detected_and_unmarked_not(speech):
    pcm = _music(30)
    found = detect_audio(embed_audio(pcm, RATE, KEY, PAYLOAD), RATE, KEY, speed_search=False)
    assert found.present and found.p_value <= 1e-6 and found.payload == PAYLOAD
    for plain in (pcm, speech):
        assert not detect_audio(plain, RATE, KEY, speed_search=False).present
    # another key's mark is no mark for this key
    other = embed_audio(pcm, RATE, WatermarkKey(bytes(32)), PAYLOAD, strength=2.0)
    assert not detect_audio(other, RATE, KEY, speed_search=False).present


def test_short_and_low_rate_inputs_are_reported():
    assert detect_audio(np.zeros((100, 1), np.float32) + 0.1, RATE, KEY).reason == "too_short"
    with pytest.raises(ValueError):
        AudioEmbedder(KEY, PAYLOAD, 8000, 1)


@pytest.mark.parametrize("rows,cols", [((0.0, 3.5, 7.25), (0.0, 2.0, 9.9)),
                                       ((1.2, 1.3), (0.5, 0.75, 30.0))])
def test_tile_energies_twins_agree(rows, cols):
    rng = np.random.default_rng(3)
    power = rng.random((12, 33), dtype=np.float32)
    want = np.empty((len(rows) - 1, len(cols) - 1))
    _kernels_py.tile_energies(power, np.array(rows), np.array(cols), want)
    # by hand: cell shares
    r, c = np.array(rows), np.array(cols)
    for j in range(len(rows) - 1):
        for b in range(len(cols) - 1):
            total = 0.0
            for f in range(12):
                wf = max(0.0, min(r[j + 1], f + 1) - max(r[j], f))
                for k in range(33):
                    wk = max(0.0, min(c[b + 1], k + 1) - max(c[b], k))
                    total += wf * wk * power[f, k]
            assert want[j, b] == pytest.approx(total, rel=1e-9)
    got = np.empty_like(want)
    kernel("tile_energies")(power, np.array(rows), np.array(cols), got)
    assert np.allclose(got, want, rtol=1e-9)
    if not PURE:
        from labelkit import _native_audio

        assert kernel("tile_energies") is _native_audio.tile_energies
    with pytest.raises(ValueError):
        kernel("tile_energies")(power, np.array([0.0, 50.0]), np.array(cols), np.empty((1, len(cols) - 1)))
