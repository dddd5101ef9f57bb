"""The audio embedder's signal path: half-band resampling and its kernels, native and twin.

Each kernel is checked against its numpy twin bit for bit, and against a direct formula; the
half-band stages are checked for their frequency response and for giving the same samples for
any chunking; the embedder is checked at every rate class (no halving, one, several)."""

from __future__ import annotations

import numpy as np
import pytest

from labelkit import _kernels_py
from labelkit._impl import kernel
from labelkit.watermark import WatermarkKey
from labelkit.watermark.audio import AudioEmbedder, embed_audio
from labelkit.watermark.halfband import (P, Decimator, Interpolator, _decimator_taps,
                                         _interpolator_taps, halvings)

from .conftest import PURE

KEY = WatermarkKey(bytes(range(32)))
RNG = np.random.default_rng(11)


def _f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _both(name: str, *args) -> list[list[np.ndarray]]:
    """Run kernel ``name`` and its twin on copies of ``args``; return the arguments after each."""
    runs = []
    for impl in (kernel(name), getattr(_kernels_py, name)):
        copies = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
        impl(*copies)
        runs.append(copies)
    return runs


def _same_bits(runs: list[list[np.ndarray]]) -> None:
    for a, b in zip(*runs):
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b)


def test_mix_down():
    for ch in (1, 2, 3, 8):
        x = _f32(1000, ch)
        runs = _both("mix_down", x, np.empty(1000, np.float32))
        _same_bits(runs)
        assert np.allclose(runs[0][1], x.mean(axis=1), atol=1e-6)


def test_halfband_decimate_matches_the_convolution():
    x, taps = _f32(500), _decimator_taps()
    out = np.empty((500 - (4 * P - 1)) // 2 + 1, np.float32)
    runs = _both("halfband_decimate", x, taps, out)
    _same_bits(runs)
    h = np.zeros(4 * P - 1)
    h[2 * P - 1] = taps[0]
    h[2 * P - 1 + np.arange(1, 2 * P, 2)] = taps[1:]
    h[2 * P - 1 - np.arange(1, 2 * P, 2)] = taps[1:]
    full = np.convolve(x.astype(np.float64), h, mode="valid")[::2]
    assert np.allclose(runs[0][2], full[: out.size], atol=1e-5)


def test_halfband_interpolate_matches_zero_stuffing():
    y, taps = _f32(300), _interpolator_taps()
    count = 300 - (2 * P - 1)
    runs = _both("halfband_interpolate", y, taps, np.empty(2 * count, np.float32))
    _same_bits(runs)
    u = np.zeros(600)
    u[::2] = 2 * y  # zero-stuffed at twice the rate, level kept
    h = np.zeros(4 * P - 1)
    h[2 * P - 1] = 0.5
    h[2 * P - 1 + np.arange(1, 2 * P, 2)] = taps[1:] / 2
    h[2 * P - 1 - np.arange(1, 2 * P, 2)] = taps[1:] / 2
    full = np.convolve(u, h, mode="same")
    got = runs[0][2]
    start = 2 * (P - 1)  # output 0 is centred on input P - 1
    assert np.allclose(got, full[start : start + got.size], atol=1e-5)


def test_frame_window_overlap_add_and_add_clipped():
    x, w = _f32(5000), np.abs(_f32(512))
    _same_bits(_both("frame_window", x, 128, w, np.empty((36, 512), np.float32)))
    frames, acc = _f32(7, 512), _f32(256)
    runs = _both("overlap_add", frames, w, acc, np.empty(7 * 256, np.float32))
    _same_bits(runs)
    seg = runs[0][3].reshape(7, 256)
    assert np.allclose(seg[0], frames[0, :256] * w[:256] + acc)
    assert np.allclose(seg[3], frames[3, :256] * w[:256] + frames[2, 256:] * w[256:])
    assert np.array_equal(runs[0][2], frames[6, 256:] * w[256:])  # the open tail is carried
    x2, mark = _f32(999, 3), _f32(999)
    runs = _both("add_clipped", x2, mark, np.empty((999, 3), np.float32))
    _same_bits(runs)
    assert np.array_equal(runs[0][2], np.clip(x2 + mark[:, None], -1, 1))


@pytest.mark.parametrize("name,args", [
    ("halfband_decimate", (np.zeros(10, np.float32), _decimator_taps(), np.empty(5, np.float32))),
    ("halfband_interpolate", (np.zeros(10, np.float32), _interpolator_taps(),
                              np.empty(8, np.float32))),
    ("overlap_add", (np.zeros((2, 8), np.float32), np.zeros(8, np.float32),
                     np.zeros(3, np.float32), np.empty(8, np.float32))),
    ("add_clipped", (np.zeros((4, 2), np.float32), np.zeros(3, np.float32),
                     np.empty((4, 2), np.float32))),
    ("mix_down", (np.zeros((4, 2), np.float64), np.empty(4, np.float32))),
])
def test_kernels_refuse_bad_shapes(name, args):
    for impl in (kernel(name), getattr(_kernels_py, name)):
        with pytest.raises(ValueError):
            impl(*args)
    if not PURE:
        from labelkit import _native_audio

        assert kernel(name) is getattr(_native_audio, name)


def _through(stage_type, x: np.ndarray, sizes) -> np.ndarray:
    stage, parts, i = stage_type(), [], 0
    for n in sizes:
        parts.append(stage.push(x[i : i + n]))
        i += n
    parts.append(stage.push(x[i:]))
    parts.append(stage.flush())
    return np.concatenate(parts)


@pytest.mark.parametrize("stage_type,factor", [(Decimator, 0.5), (Interpolator, 2)])
def test_stages_give_the_same_samples_for_any_chunking(stage_type, factor):
    x = _f32(4001)
    whole = _through(stage_type, x, [])
    assert whole.size == int(np.ceil(x.size * factor))
    chunks = RNG.integers(0, 40, 300)
    assert np.array_equal(_through(stage_type, x, chunks), whole)


def _gain(freq: float, rate: int) -> float:
    """Level of a sine at ``freq`` after decimating: the in-band gain, or the alias's."""
    t = np.arange(8192) / rate
    y = _through(Decimator, np.sin(2 * np.pi * freq * t).astype(np.float32), [])
    return float(np.sqrt(2 * np.mean(y[200:-200].astype(np.float64) ** 2)))


def test_half_band_response():
    for f in (300.0, 3000.0, 7200.0):  # the marked band passes
        assert _gain(f, 44100) == pytest.approx(1.0, abs=2e-3)
    for f in (14850.0, 18000.0, 21000.0):  # what would alias into it is stopped
        assert 20 * np.log10(_gain(f, 44100)) < -60


@pytest.mark.parametrize("rate,expected", [(16000, 0), (32000, 0), (44100, 1), (48000, 1),
                                           (96000, 2), (384000, 4)])
def test_halvings(rate, expected):
    assert halvings(rate) == expected


@pytest.mark.parametrize("rate", [16000, 44100, 96000])
def test_embedder_streams_exactly_at_every_rate_class(rate):
    t = np.arange(int(rate * 1.5)) / rate
    pcm = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * RNG.standard_normal(t.size))
    pcm = np.stack([pcm, 0.8 * pcm], 1).astype(np.float32)
    whole = embed_audio(pcm, rate, KEY, 7)
    e = AudioEmbedder(KEY, 7, rate, 2)
    parts, i = [], 0
    for n in RNG.integers(1, 3000, 2000):
        if i >= pcm.shape[0]:
            break
        parts.append(e.process(pcm[i : i + n]))
        i += n
    parts.append(e.flush())
    assert np.array_equal(np.concatenate(parts), whole)
    mark = (whole - pcm).astype(np.float64)
    snr = 10 * np.log10(np.sum(pcm.astype(np.float64) ** 2) / np.sum(mark**2))
    assert 25 < snr < 40  # a mark is there, under the content
    spectrum = np.abs(np.fft.rfft(mark[:, 0])) ** 2
    freqs = np.fft.rfftfreq(mark.shape[0], 1 / rate)
    inside = spectrum[(freqs > 300) & (freqs < 7200)].sum()
    assert spectrum[freqs > 9000].sum() < 1e-5 * inside  # images 50 dB under the mark
