"""Streaming half-band resampling by two: the audio watermark works on the band it marks.

The watermark's band ends at 7.2 kHz, so the embedder shapes a copy of the content at a half
(or quarter, ...) rate and brings the mark back up: half the FFT work per second of audio. A
half-band filter has every other tap zero, so each output costs P multiplications. Both stages
keep their history and give, for any chunking, exactly the samples of one call on the whole
signal (each output is the same sum in the same order).

The filter (P = 7 odd taps, Kaiser beta 7) is flat to 0.005 dB up to 0.163 of the input rate
(7.2 kHz at 44.1 kHz) and 68 dB down from 0.337 (14.85 kHz): what aliases or images lands above
the marked band, or 68 dB under a mark that is itself 30 dB under the content.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from .._impl import kernel

__all__ = ["Decimator", "Interpolator", "halvings"]

P = 7
_BETA = 7.0
MIN_HALVED_RATE = 22050  # the rate must stay at least this after a halving


def halvings(rate: int) -> int:
    """How many times ``rate`` can be halved while the marked band stays clear of aliasing."""
    k = 0
    while rate / 2 ** (k + 1) >= MIN_HALVED_RATE:
        k += 1
    return k


@lru_cache(maxsize=1)
def _odd_taps() -> np.ndarray:
    """a_0..a_{P-1}: the taps at odd offsets 1, 3, ..., 2P-1, summing to 1/4 (unit DC gain)."""
    offsets = np.arange(1, 2 * P, 2)
    window = np.kaiser(4 * P - 1, _BETA)[2 * P - 1 + offsets]
    a = 0.5 * np.sinc(offsets / 2) * window
    return a * (0.25 / a.sum())


def _decimator_taps() -> np.ndarray:
    return np.concatenate([[0.5], _odd_taps()]).astype(np.float32)


def _interpolator_taps() -> np.ndarray:
    # zero-stuffing halves the level: twice the taps
    return np.concatenate([[1.0], 2 * _odd_taps()]).astype(np.float32)


class Decimator:
    """Half-band low-pass, then every other sample: output k is centred on input 2k."""

    def __init__(self) -> None:
        self._taps = _decimator_taps()
        self._buf = np.zeros(2 * P - 1, np.float32)  # inputs -(2P-1) .. -1 are zeros
        self._received = 0
        self._produced = 0

    def push(self, x: np.ndarray) -> np.ndarray:
        """Filter a float32 chunk; returns every output sample its inputs now determine."""
        self._received += x.size
        self._buf = np.concatenate([self._buf, x])
        return self._emit()

    def flush(self) -> np.ndarray:
        """The outputs that are left once the input has ended (ceil(inputs / 2) in all)."""
        want = -(-self._received // 2)
        missing = want - self._produced
        if missing <= 0:
            return np.zeros(0, np.float32)
        need = 2 * (missing - 1) + 4 * P - 1 - self._buf.size
        self._buf = np.concatenate([self._buf, np.zeros(max(need, 0), np.float32)])
        return self._emit(limit=missing)

    def _emit(self, limit: int | None = None) -> np.ndarray:
        count = max(0, (self._buf.size - (4 * P - 1)) // 2 + 1)
        if limit is not None:
            count = min(count, limit)
        out = np.empty(count, np.float32)
        kernel("halfband_decimate")(self._buf, self._taps, out)
        self._buf = self._buf[2 * count :]
        self._produced += count
        return out


class Interpolator:
    """Two outputs per input through the same half-band filter: output 2k is input k."""

    def __init__(self) -> None:
        self._taps = _interpolator_taps()
        self._buf = np.zeros(P - 1, np.float32)  # inputs -(P-1) .. -1 are zeros
        self._received = 0
        self._produced = 0

    def push(self, y: np.ndarray) -> np.ndarray:
        """Upsample a float32 chunk; returns every output pair its inputs now determine."""
        self._received += y.size
        self._buf = np.concatenate([self._buf, y])
        return self._emit()

    def flush(self) -> np.ndarray:
        """The output pairs that are left once the input has ended (2 * inputs in all)."""
        missing = self._received - self._produced
        if missing <= 0:
            return np.zeros(0, np.float32)
        need = missing + 2 * P - 1 - self._buf.size
        self._buf = np.concatenate([self._buf, np.zeros(max(need, 0), np.float32)])
        return self._emit(limit=missing)

    def _emit(self, limit: int | None = None) -> np.ndarray:
        count = max(0, self._buf.size - (2 * P - 1))
        if limit is not None:
            count = min(count, limit)
        out = np.empty(2 * count, np.float32)
        kernel("halfband_interpolate")(self._buf, self._taps, out)
        self._buf = self._buf[count:]
        self._produced += count
        return out
