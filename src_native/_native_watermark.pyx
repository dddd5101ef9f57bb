# cython: boundscheck=False, wraparound=False, cdivision=True, language_level=3
"""Kernels of the image watermark: embed, filters, fold, lattice scoring, Viterbi.

Twins of the same names live in labelkit/_kernels_py.py. Float kernels agree with them to
rounding (sums are taken in another order); embed_tile is bit-identical given the same inputs.
"""

import numpy as np

cimport numpy as cnp
from libc.math cimport cos, floor, sin
from libc.stdint cimport int64_t, uint8_t, uint32_t

cnp.import_array()

__all__ = ["luma_down", "box_blur", "extreme_filter", "embed_tile", "fold_tile",
           "lattice_scores", "viterbi_decode"]


def luma_down(const uint8_t[:, :, ::1] image, Py_ssize_t d):
    """BT.601 luma of an (H, W, C) uint8 image, box-averaged over d x d blocks (float32)."""
    if d < 1:
        raise ValueError("d must be >= 1")
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], c = image.shape[2]
    cdef Py_ssize_t hd = h // d, wd = w // d, i, j, a, b
    out = np.empty((hd, wd), dtype=np.float32)
    cdef float[:, ::1] o = out
    cdef double acc
    cdef float y
    cdef const uint8_t* px
    cdef double norm = 1.0 / (d * d)
    with nogil:
        for i in range(hd):
            for j in range(wd):
                acc = 0.0
                for a in range(i * d, i * d + d):
                    for b in range(j * d, j * d + d):
                        px = &image[a, b, 0]
                        if c >= 3:
                            y = (<float>0.299 * <float>px[0] + <float>0.587 * <float>px[1]) + <float>0.114 * <float>px[2]
                        else:
                            y = <float>px[0]
                        acc += y
                if d == 1:
                    o[i, j] = <float>acc
                else:
                    o[i, j] = <float>(acc * norm)
    return out


cdef void _box_line(const float* src, float* dst, Py_ssize_t n, Py_ssize_t stride,
                    Py_ssize_t r, double* buf) noexcept nogil:
    # running sum over a clamped line (src/dst strided); buf holds the line in double
    cdef Py_ssize_t i
    cdef double acc = 0.0, inv = 1.0 / (2 * r + 1)
    for i in range(n):
        buf[i] = src[i * stride]
    for i in range(-r, r + 1):
        acc += buf[min(max(i, 0), n - 1)]
    for i in range(n):
        dst[i * stride] = <float>(acc * inv)
        acc += buf[min(i + r + 1, n - 1)] - buf[max(i - r, 0)]


def box_blur(const float[:, ::1] image, Py_ssize_t radius):
    """Mean over a (2r+1) x (2r+1) box, edges clamped (float32 in and out)."""
    if radius < 0:
        raise ValueError("radius must be >= 0")
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], i, j
    out = np.array(image, dtype=np.float32, copy=True)
    if radius == 0 or h == 0 or w == 0:
        return out
    cdef float[:, ::1] o = out
    cdef double[::1] buf = np.empty(max(h, w), dtype=np.float64)
    with nogil:
        for i in range(h):
            _box_line(&o[i, 0], &o[i, 0], w, 1, radius, &buf[0])
        for j in range(w):
            _box_line(&o[0, j], &o[0, j], h, w, radius, &buf[0])
    return out


cdef void _extreme_line(const float* src, float* dst, Py_ssize_t n, Py_ssize_t stride,
                        Py_ssize_t lo, Py_ssize_t hi, bint take_max, float* buf) noexcept nogil:
    cdef Py_ssize_t i, k
    cdef float v, x
    for i in range(n):
        buf[i] = src[i * stride]
    for i in range(n):
        v = buf[min(max(i - lo, 0), n - 1)]
        for k in range(i - lo + 1, i + hi + 1):
            x = buf[min(max(k, 0), n - 1)]
            if take_max:
                if x > v:
                    v = x
            elif x < v:
                v = x
        dst[i * stride] = v


def extreme_filter(const float[:, ::1] image, Py_ssize_t size, bint take_max):
    """Minimum (or maximum) over a size x size box centred on each pixel, edges clamped."""
    if size < 1:
        raise ValueError("size must be >= 1")
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], i, j
    cdef Py_ssize_t lo = (size - 1) // 2, hi = size // 2
    out = np.array(image, dtype=np.float32, copy=True)
    if h == 0 or w == 0:
        return out
    cdef float[:, ::1] o = out
    cdef float[::1] buf = np.empty(max(h, w), dtype=np.float32)
    with nogil:
        for i in range(h):
            _extreme_line(&o[i, 0], &o[i, 0], w, 1, lo, hi, take_max, &buf[0])
        for j in range(w):
            _extreme_line(&o[0, j], &o[0, j], h, w, lo, hi, take_max, &buf[0])
    return out


cdef inline float _dither(uint32_t x, uint32_t y, uint32_t c, uint32_t seed) noexcept nogil:
    # murmur3's finaliser over (x, y, channel, seed), as in the twin
    cdef uint32_t v = x * 0x9E3779B1u + y * 0x85EBCA77u
    v = v + c * 0xC2B2AE3Du + seed
    v ^= v >> 16
    v *= 0x85EBCA6Bu
    v ^= v >> 13
    v *= 0xC2B2AE35u
    v ^= v >> 16
    return <float>(v >> 8) * <float>(1.0 / 16777216.0) - <float>0.5


def embed_tile(uint8_t[:, :, ::1] image, const float[:, ::1] tile, const float[:, ::1] mask,
               Py_ssize_t m, float gain, Py_ssize_t channels, uint32_t seed):
    """Add gain * mask[y//m, x//m] * tile[y%P, x%P] to the first ``channels`` channels, in place,
    with dithered rounding: floor(v + d + 0.5 + u), u uniform in [-0.5, 0.5)."""
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], c = image.shape[2]
    cdef Py_ssize_t ph = tile.shape[0], pw = tile.shape[1]
    if m < 1 or mask.shape[0] * m < h or mask.shape[1] * m < w:
        raise ValueError("mask does not cover the image")
    if not 1 <= channels <= c:
        raise ValueError("channels out of range")
    if ph < 1 or pw < 1:
        raise ValueError("empty tile")
    cdef Py_ssize_t i, j, k, ti, tj
    cdef float dlt, v
    cdef uint8_t* px
    cdef const float* trow
    cdef const float* mrow
    with nogil:
        for i in range(h):
            trow = &tile[i % ph, 0]
            mrow = &mask[i // m, 0]
            tj = 0
            for j in range(w):
                dlt = (gain * mrow[j // m]) * trow[tj]
                tj += 1
                if tj == pw:
                    tj = 0
                px = &image[i, j, 0]
                for k in range(channels):
                    v = (<float>px[k] + dlt) + <float>0.5
                    v = <float>floor(v + _dither(<uint32_t>j, <uint32_t>i, <uint32_t>k, seed))
                    if v < <float>0.0:
                        v = <float>0.0
                    elif v > <float>255.0:
                        v = <float>255.0
                    px[k] = <uint8_t>v
    return None


def fold_tile(const float[:, ::1] residual, binv, Py_ssize_t t):
    """Fold pixels into a t x t tile: pixel (x, y) adds to bin round(binv @ (x, y)) mod t.

    Returns (sums float64 (t, t), counts int64 (t, t)); binv already includes the factor t."""
    cdef double[:, ::1] b = np.ascontiguousarray(binv, dtype=np.float64).reshape(2, 2)
    cdef Py_ssize_t h = residual.shape[0], w = residual.shape[1], y, x
    sums = np.zeros((t, t), dtype=np.float64)
    counts = np.zeros((t, t), dtype=np.int64)
    cdef double[:, ::1] s = sums
    cdef int64_t[:, ::1] n = counts
    cdef double b00 = b[0, 0], b01 = b[0, 1], b10 = b[1, 0], b11 = b[1, 1]
    cdef double u0, v0, u, v
    cdef int64_t iu, iv
    with nogil:
        for y in range(h):
            u0 = b01 * y
            v0 = b11 * y
            for x in range(w):
                u = b00 * x + u0
                v = b10 * x + v0
                iu = <int64_t>floor(u + 0.5) % t
                iv = <int64_t>floor(v + 0.5) % t
                if iu < 0:
                    iu += t
                if iv < 0:
                    iv += t
                s[iv, iu] += residual[y, x]
                n[iv, iu] += 1
    return sums, counts


def lattice_scores(const float[:, ::1] spectrum, params, kr, kc, bint bilinear):
    """Mean of a half-plane power map at the spectral lines of each lattice (P1, P2, theta).

    ``spectrum`` is (h, w//2+1) from rfft2 of an (h, w) picture; each line (kr, kc) maps to
    (fx, fy) cycles per picture, folded into the half plane by conjugate symmetry. A lattice with
    fewer than 80% of its lines inside the picture's band scores 0."""
    cdef double[:, ::1] p = np.ascontiguousarray(params, dtype=np.float64).reshape(-1, 3)
    cdef double[::1] r = np.ascontiguousarray(kr, dtype=np.float64)
    cdef double[::1] q = np.ascontiguousarray(kc, dtype=np.float64)
    cdef Py_ssize_t h = spectrum.shape[0], wh = spectrum.shape[1], w = 2 * (wh - 1)
    cdef Py_ssize_t n_par = p.shape[0], n_pts = r.shape[0], i, k, n, x0, y0, y1, x1
    out = np.zeros(n_par, dtype=np.float64)
    cdef double[::1] o = out
    cdef double c, sn, p1, p2, fx, fy, yy, total, ax, ay, val
    with nogil:
        for i in range(n_par):
            p1 = p[i, 0]
            p2 = p[i, 1]
            c = cos(p[i, 2])
            sn = sin(p[i, 2])
            total = 0.0
            n = 0
            for k in range(n_pts):
                fx = (q[k] * c / p1 - r[k] * sn / p2) * w
                fy = (q[k] * sn / p1 + r[k] * c / p2) * h
                if fx < 0:
                    fx = -fx
                    fy = -fy
                if not (fx <= wh - 1 - 1e-9 and (fy if fy >= 0 else -fy) <= h / 2.0 - 1):
                    continue
                yy = fy + h if fy < 0 else fy
                n += 1
                if bilinear:
                    x0 = <Py_ssize_t>floor(fx)
                    ax = fx - x0
                    y0 = <Py_ssize_t>floor(yy)
                    ay = yy - y0
                    y0 = y0 % h
                    y1 = (y0 + 1) % h
                    x1 = min(x0 + 1, wh - 1)
                    val = (spectrum[y0, x0] * (1 - ax) * (1 - ay) + spectrum[y0, x1] * ax * (1 - ay)
                           + spectrum[y1, x0] * (1 - ax) * ay + spectrum[y1, x1] * ax * ay)
                else:
                    x0 = <Py_ssize_t>floor(fx + 0.5)
                    y0 = (<Py_ssize_t>floor(yy + 0.5)) % h
                    val = spectrum[y0, x0]
                total += val
            if n >= 0.8 * n_pts and n > 0:
                o[i] = total / n
    return out


def viterbi_decode(soft, outputs):
    """Soft-decision Viterbi for a rate-1/n, 64-state convolutional code, tail-terminated.

    ``soft`` (n_steps * n,) float64: > 0 favours coded bit 1. ``outputs`` (64, 2, n) int8: the
    coded bits emitted from each (state, input). Returns the decoded input bits (uint8)."""
    cdef const double[::1] y = np.ascontiguousarray(soft, dtype=np.float64).ravel()
    cdef const cnp.int8_t[:, :, ::1] out = np.ascontiguousarray(outputs, dtype=np.int8)
    cdef Py_ssize_t ns = out.shape[0], rate = out.shape[2], half = ns // 2
    if out.shape[1] != 2 or ns != 64 or rate < 1 or y.shape[0] % rate:
        raise ValueError("viterbi_decode expects a 64-state code and whole steps")
    cdef Py_ssize_t steps = y.shape[0] // rate, t, d, k, s, p0, p1, b
    cdef double[::1] metric = np.full(ns, -np.inf)
    cdef double[::1] nxt = np.empty(ns)
    cdef double[:, ::1] branch = np.empty((ns, 2))
    choice_arr = np.zeros((max(steps, 1), ns), dtype=np.uint8)
    cdef uint8_t[:, ::1] choice = choice_arr
    bits_arr = np.zeros(steps, dtype=np.uint8)
    cdef uint8_t[::1] bits = bits_arr
    cdef double c0, c1, acc
    metric[0] = 0.0
    with nogil:
        for t in range(steps):
            for s in range(ns):
                for b in range(2):
                    acc = 0.0
                    for k in range(rate):
                        acc += (2.0 * out[s, b, k] - 1.0) * y[t * rate + k]
                    branch[s, b] = acc
            for d in range(ns):
                p0 = d >> 1
                p1 = p0 | half
                b = d & 1
                c0 = metric[p0] + branch[p0, b]
                c1 = metric[p1] + branch[p1, b]
                if c1 > c0:
                    choice[t, d] = 1
                    nxt[d] = c1
                else:
                    choice[t, d] = 0
                    nxt[d] = c0
            for d in range(ns):
                metric[d] = nxt[d]
        s = 0
        for t in range(steps - 1, -1, -1):
            bits[t] = s & 1
            s = (s >> 1) | (choice[t, s] * half)
    return bits_arr
