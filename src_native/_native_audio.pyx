# cython: boundscheck=False, wraparound=False, cdivision=True, language_level=3
"""Audio watermark kernels; numpy twins of the same names are in labelkit/_kernels_py.py."""

import numpy as np

cimport numpy as cnp
from libc.stdlib cimport free, malloc

cnp.import_array()


cdef inline double _cover(Py_ssize_t i, double a, double b) noexcept nogil:
    """The share of cell [i, i + 1) inside [a, b)."""
    cdef double lo = a if a > i else i
    cdef double hi = b if b < i + 1 else i + 1
    return hi - lo if hi > lo else 0.0


def tile_energies(const float[:, ::1] power, rows, cols, double[:, ::1] out):
    """Sum a (frames, bins) power map over the cells [rows[j], rows[j+1]) x [cols[b], cols[b+1]).

    Positions are fractional (a cell counts by its covered share) and must lie in
    [0, frames) and [0, bins); ``out`` is (len(rows) - 1, len(cols) - 1) float64."""
    cdef const double[::1] r = np.ascontiguousarray(rows, dtype=np.float64)
    cdef const double[::1] c = np.ascontiguousarray(cols, dtype=np.float64)
    cdef Py_ssize_t frames = power.shape[0], bins = power.shape[1]
    cdef Py_ssize_t nj = r.shape[0] - 1, nb = c.shape[0] - 1
    if out.shape[0] != nj or out.shape[1] != nb:
        raise ValueError("out must be a (len(rows) - 1, len(cols) - 1) float64 array")
    if nj > 0 and not (0 <= np.min(rows) and np.max(rows) < frames):
        raise ValueError("rows out of range")
    if nb > 0 and not (0 <= np.min(cols) and np.max(cols) < bins):
        raise ValueError("cols out of range")
    cdef Py_ssize_t j, b, f, k, k0, k1, f0, f1
    cdef double s, w
    cdef double *band = <double *> malloc(max(nb, 1) * sizeof(double))
    if band == NULL:
        raise MemoryError()
    try:
        with nogil:
            for j in range(nj):
                for b in range(nb):
                    out[j, b] = 0.0
                f0 = <Py_ssize_t> r[j]
                f1 = <Py_ssize_t> r[j + 1]
                for f in range(f0, min(f1 + 1, frames)):
                    w = _cover(f, r[j], r[j + 1])
                    if w <= 0.0:
                        continue
                    for b in range(nb):
                        k0 = <Py_ssize_t> c[b]
                        k1 = <Py_ssize_t> c[b + 1]
                        s = 0.0
                        for k in range(k0, min(k1 + 1, bins)):
                            s += power[f, k] * _cover(k, c[b], c[b + 1])
                        out[j, b] += w * s
    finally:
        free(band)


# -- the embedder's signal path: every operation in float32, in the order of the numpy twins,
# so that both give the same bits (x86-64 SSE arithmetic, no fused multiply-add).


def mix_down(const float[:, ::1] x, float[::1] out):
    """out[i] = the mean of row i of the (n, channels) ``x``: channels summed in order."""
    cdef Py_ssize_t n = x.shape[0], ch = x.shape[1], i, c
    if out.shape[0] != n or ch < 1:
        raise ValueError("out must have one sample per row of x, and x a channel at least")
    cdef float scale = <float> (1.0 / ch), acc
    with nogil:
        for i in range(n):
            acc = x[i, 0]
            for c in range(1, ch):
                acc = acc + x[i, c]
            out[i] = acc * scale if ch > 1 else acc


def halfband_decimate(const float[::1] x, const float[::1] taps, float[::1] out):
    """Half-band low-pass and keep every other sample.

    With taps = (c, a_0, ..., a_{P-1}) and the centre of output k at x[2k + 2P - 1]:
    out[k] = c * centre + sum_i a_i * (x[2k + 2P - 2 - 2i] + x[2k + 2P + 2i])."""
    cdef Py_ssize_t p = taps.shape[0] - 1, count = out.shape[0], k, i, m = 2 * p - 1
    if p < 1 or (count and x.shape[0] < 2 * (count - 1) + 4 * p - 1):
        raise ValueError("x is too short for out, or no taps")
    cdef float c = taps[0], a
    with nogil:
        # tap by tap over every output (the loop over k vectorises), each output summed in
        # the order of the formula
        for k in range(count):
            out[k] = c * x[2 * k + m]
        for i in range(p):
            a = taps[i + 1]
            for k in range(count):
                out[k] = out[k] + a * (x[2 * k + m - 1 - 2 * i] + x[2 * k + m + 1 + 2 * i])


def halfband_interpolate(const float[::1] y, const float[::1] taps, float[::1] out):
    """Double the rate through a half-band filter, two outputs per centre y[k + P - 1].

    With taps = (c, b_0, ..., b_{P-1}): out[2k] = c * y[k + P - 1] and
    out[2k + 1] = sum_i b_i * (y[k + P - 1 - i] + y[k + P + i])."""
    cdef Py_ssize_t p = taps.shape[0] - 1, count = out.shape[0] // 2, k, i, m = p - 1
    if p < 1 or out.shape[0] % 2 or (count and y.shape[0] < count + 2 * p - 1):
        raise ValueError("y is too short for out, out is odd, or no taps")
    cdef float c = taps[0], b
    with nogil:
        for k in range(count):
            out[2 * k] = c * y[k + m]
            out[2 * k + 1] = taps[1] * (y[k + m] + y[k + m + 1])
        for i in range(1, p):
            b = taps[i + 1]
            for k in range(count):
                out[2 * k + 1] = out[2 * k + 1] + b * (y[k + m - i] + y[k + m + 1 + i])


def frame_window(const float[::1] x, Py_ssize_t hop, const float[::1] window, float[:, ::1] out):
    """out[k, i] = x[k * hop + i] * window[i]: windowed frames, ``hop`` apart."""
    cdef Py_ssize_t count = out.shape[0], n = out.shape[1], k, i
    if window.shape[0] != n or hop < 1 or (count and x.shape[0] < (count - 1) * hop + n):
        raise ValueError("window must match the frames, hop be positive and x long enough")
    with nogil:
        for k in range(count):
            for i in range(n):
                out[k, i] = x[k * hop + i] * window[i]


def overlap_add(const float[:, ::1] frames, const float[::1] window, float[::1] acc, float[::1] out):
    """Window the frames and add them at half-frame hops.

    Segment k of ``out`` (hop = n / 2 samples) is head(frame k) + tail(frame k - 1), the tail
    before frame 0 being ``acc``, which then holds the last frame's tail."""
    cdef Py_ssize_t count = frames.shape[0], n = frames.shape[1], hop = n // 2, k, i
    if n % 2 or window.shape[0] != n or acc.shape[0] != hop or out.shape[0] != count * hop:
        raise ValueError("frames must be (count, 2 * hop), window n, acc hop, out count * hop")
    with nogil:
        for k in range(count):
            for i in range(hop):
                if k == 0:
                    out[i] = frames[0, i] * window[i] + acc[i]
                else:
                    out[k * hop + i] = (frames[k, i] * window[i]
                                        + frames[k - 1, hop + i] * window[hop + i])
        if count:
            for i in range(hop):
                acc[i] = frames[count - 1, hop + i] * window[hop + i]


def add_clipped(const float[:, ::1] x, const float[::1] mark, float[:, ::1] out):
    """out[i, c] = x[i, c] + mark[i], clipped to [-1, 1]."""
    cdef Py_ssize_t n = x.shape[0], ch = x.shape[1], i, c
    if mark.shape[0] != n or out.shape[0] != n or out.shape[1] != ch:
        raise ValueError("x, mark and out must have the same number of samples")
    cdef float v, hi = 1.0, lo = -1.0  # float constants: the comparisons stay in float
    with nogil:
        for i in range(n):
            for c in range(ch):
                v = x[i, c] + mark[i]
                out[i, c] = hi if v > hi else (lo if v < lo else v)
