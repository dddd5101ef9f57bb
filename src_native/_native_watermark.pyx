# cython: boundscheck=False, wraparound=False, cdivision=True, language_level=3
"""Kernels of the image watermark: embed, filters, fold, lattice scoring, Viterbi.

Twins of the same names live in labelkit/_kernels_py.py. Float kernels agree with them to
rounding (sums are taken in another order); embed_tile is bit-identical given the same inputs.
"""

import numpy as np

cimport numpy as cnp
from libc.math cimport cos, floor, sin
from libc.stdint cimport int32_t, int64_t, uint8_t, uint32_t

cnp.import_array()

__all__ = ["luma_down", "luma_stats", "plane_stats", "box_blur", "extreme_filter", "embed_tile", "embed_plane",
           "fold_tile",
           "lattice_scores", "viterbi_decode"]


def luma_down(const uint8_t[:, :, ::1] image, Py_ssize_t d):
    """BT.601 luma of an (H, W, C) uint8 image, box-averaged over d x d blocks (float32)."""
    if d < 1:
        raise ValueError("d must be >= 1")
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], c = image.shape[2]
    cdef Py_ssize_t hd = h // d, wd = w // d, i, j, a, jj, k
    out = np.empty((hd, wd), dtype=np.float32)
    if hd == 0 or wd == 0:
        return out
    cdef float[:, ::1] o = out
    # integer channel sums per block, weighted once per block (the twin does the same)
    cdef int64_t[::1] s0 = np.zeros(wd, dtype=np.int64)
    cdef int64_t[::1] s1 = np.zeros(wd, dtype=np.int64)
    cdef int64_t[::1] s2 = np.zeros(wd, dtype=np.int64)
    cdef const uint8_t* p
    cdef double norm = 1.0 / (d * d)
    cdef bint colour = c >= 3
    cdef int64_t t0, t1, t2
    with nogil:
        for i in range(hd):
            for j in range(wd):
                s0[j] = 0
                s1[j] = 0
                s2[j] = 0
            for a in range(i * d, i * d + d):
                p = &image[a, 0, 0]
                for jj in range(wd):
                    t0 = 0
                    t1 = 0
                    t2 = 0
                    for k in range(d):
                        t0 = t0 + p[0]
                        if colour:
                            t1 = t1 + p[1]
                            t2 = t2 + p[2]
                        p += c
                    s0[jj] += t0
                    s1[jj] += t1
                    s2[jj] += t2
            for j in range(wd):
                if colour:
                    o[i, j] = <float>((0.299 * s0[j] + 0.587 * s1[j] + 0.114 * s2[j]) * norm)
                else:
                    o[i, j] = <float>(s0[j] * norm)
    return out


def luma_stats(const uint8_t[:, :, ::1] image, Py_ssize_t d):
    """Mean and variance of an integer BT.601 luma, (77 R + 150 G + 29 B + 128) >> 8, over
    each d x d block of an (H, W, C) uint8 image (float32; sums are exact integers)."""
    if d < 1:
        raise ValueError("d must be >= 1")
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], c = image.shape[2]
    cdef Py_ssize_t hd = h // d, wd = w // d, i, j, a, jj, k
    mean = np.empty((hd, wd), dtype=np.float32)
    var = np.empty((hd, wd), dtype=np.float32)
    if hd == 0 or wd == 0:
        return mean, var
    cdef float[:, ::1] mo = mean
    cdef float[:, ::1] vo = var
    cdef int64_t[::1] s1 = np.zeros(wd, dtype=np.int64)
    cdef int64_t[::1] s2 = np.zeros(wd, dtype=np.int64)
    cdef const uint8_t* p
    cdef double norm = 1.0 / (d * d), mu
    cdef int32_t t1, t2, y
    cdef bint colour = c >= 3
    with nogil:
        for i in range(hd):
            for j in range(wd):
                s1[j] = 0
                s2[j] = 0
            for a in range(i * d, i * d + d):
                p = &image[a, 0, 0]
                if colour:  # two loops, so that neither tests the channel count per pixel
                    for jj in range(wd):
                        t1 = 0
                        t2 = 0
                        for k in range(d):
                            y = (77 * p[0] + 150 * p[1] + 29 * p[2] + 128) >> 8
                            t1 = t1 + y
                            t2 = t2 + y * y
                            p += c
                        s1[jj] += t1
                        s2[jj] += t2
                else:
                    for jj in range(wd):
                        t1 = 0
                        t2 = 0
                        for k in range(d):
                            y = p[0]
                            t1 = t1 + y
                            t2 = t2 + y * y
                            p += c
                        s1[jj] += t1
                        s2[jj] += t2
            for j in range(wd):
                mu = s1[j] * norm
                mo[i, j] = <float>mu
                vo[i, j] = <float>max(s2[j] * norm - mu * mu, 0.0)
    return mean, var


def plane_stats(const uint8_t[:, :] plane, Py_ssize_t m, Py_ssize_t step):
    """Mean and variance over each m x m block of a uint8 plane (H, W), whose rows may be
    strided (a video frame's Y plane), from every step-th row and column of the block
    (float32; sums are exact integers). step must divide m."""
    if m < 1 or step < 1 or m % step:
        raise ValueError("m must be >= 1 and a multiple of step >= 1")
    if plane.shape[1] > 1 and plane.strides[1] != 1:
        raise ValueError("the plane's rows must be contiguous")
    cdef Py_ssize_t h = plane.shape[0], w = plane.shape[1], i, j, a, k
    cdef Py_ssize_t hd = h // m, wd = w // m, per = m // step
    mean = np.empty((hd, wd), dtype=np.float32)
    var = np.empty((hd, wd), dtype=np.float32)
    if hd == 0 or wd == 0:
        return mean, var
    cdef float[:, ::1] mo = mean
    cdef float[:, ::1] vo = var
    cdef int64_t[::1] s1 = np.zeros(wd, dtype=np.int64)
    cdef int64_t[::1] s2 = np.zeros(wd, dtype=np.int64)
    cdef const uint8_t* p
    cdef double norm = 1.0 / (per * per), mu
    cdef int32_t t1, t2, y
    with nogil:
        for i in range(hd):
            for j in range(wd):
                s1[j] = 0
                s2[j] = 0
            for a in range(per):
                p = &plane[i * m + a * step, 0]
                for j in range(wd):
                    t1 = 0
                    t2 = 0
                    for k in range(per):
                        y = p[k * step]
                        t1 = t1 + y
                        t2 = t2 + y * y
                    p += m
                    s1[j] += t1
                    s2[j] += t2
            for j in range(wd):
                mu = s1[j] * norm
                mo[i, j] = <float>mu
                vo[i, j] = <float>max(s2[j] * norm - mu * mu, 0.0)
    return mean, var


cdef void _box_row(float* line, Py_ssize_t n, Py_ssize_t r, double* buf) noexcept nogil:
    # running mean over one contiguous line, edges clamped; buf holds the clamped line (n + 2r + 1)
    cdef Py_ssize_t i
    cdef double acc = 0.0, inv = 1.0 / (2 * r + 1)
    for i in range(n + 2 * r + 1):
        buf[i] = line[min(max(i - r, 0), n - 1)]
    for i in range(2 * r + 1):
        acc += buf[i]
    for i in range(n):
        line[i] = <float>(acc * inv)
        acc += buf[i + 2 * r + 1] - buf[i]


def box_blur(const float[:, ::1] image, Py_ssize_t radius):
    """Mean over a (2r+1) x (2r+1) box, edges clamped (float32 in and out)."""
    if radius < 0:
        raise ValueError("radius must be >= 0")
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], i, j, k
    rows = np.array(image, dtype=np.float32, copy=True)
    if radius == 0 or h == 0 or w == 0:
        return rows
    out = np.empty_like(rows)
    cdef float[:, ::1] t = rows
    cdef float[:, ::1] o = out
    cdef double[::1] buf = np.empty(max(h, w) + 2 * radius + 1, dtype=np.float64)
    cdef double[::1] acc = np.zeros(w, dtype=np.float64)
    cdef double inv = 1.0 / (2 * radius + 1)
    cdef float* add
    cdef float* sub
    with nogil:
        for i in range(h):
            _box_row(&t[i, 0], w, radius, &buf[0])
        # vertical pass row by row, one running sum per column (cache friendly)
        for k in range(-radius, radius + 1):
            add = &t[min(max(k, 0), h - 1), 0]
            for j in range(w):
                acc[j] += add[j]
        for i in range(h):
            for j in range(w):
                o[i, j] = <float>(acc[j] * inv)
            add = &t[min(i + radius + 1, h - 1), 0]
            sub = &t[max(i - radius, 0), 0]
            for j in range(w):
                acc[j] += add[j] - sub[j]
    return out


def extreme_filter(const float[:, ::1] image, Py_ssize_t size, bint take_max):
    """Minimum (or maximum) over a size x size box centred on each pixel, edges clamped."""
    if size < 1:
        raise ValueError("size must be >= 1")
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], i, j, k
    cdef Py_ssize_t lo = (size - 1) // 2, hi = size // 2
    rows = np.array(image, dtype=np.float32, copy=True)
    if h == 0 or w == 0 or size == 1:
        return rows
    out = np.empty_like(rows)
    cdef float[:, ::1] t = rows
    cdef float[:, ::1] o = out
    cdef float[::1] buf = np.empty(w + size, dtype=np.float32)
    cdef float v, x
    cdef float* src
    cdef float* dst
    with nogil:
        for i in range(h):
            for j in range(w + lo + hi):
                buf[j] = t[i, min(max(j - lo, 0), w - 1)]
            for j in range(w):
                v = buf[j]
                for k in range(1, size):
                    x = buf[j + k]
                    if take_max:
                        v = x if x > v else v
                    else:
                        v = x if x < v else v
                t[i, j] = v
        for i in range(h):
            dst = &o[i, 0]
            src = &t[min(max(i - lo, 0), h - 1), 0]
            for j in range(w):
                dst[j] = src[j]
            for k in range(i - lo + 1, i + hi + 1):
                src = &t[min(max(k, 0), h - 1), 0]
                if take_max:
                    for j in range(w):
                        dst[j] = src[j] if src[j] > dst[j] else dst[j]
                else:
                    for j in range(w):
                        dst[j] = src[j] if src[j] < dst[j] else dst[j]
    return out


cdef extern from *:
    """
    /* fixed point, 1/256 level: floor(px + delta + dither) with the rounding half in delta.
       Plain C with restrict pointers so that compilers vectorise it (Cython's own loop kept
       GCC from doing so). */
    static void lk_add_row(unsigned char *restrict px, const int *restrict delta,
                           const int *restrict dither, Py_ssize_t n) {
        for (Py_ssize_t j = 0; j < n; j++) {
            int q = (((int)px[j] << 8) + delta[j] + dither[j]) >> 8;
            q = q < 0 ? 0 : q;
            q = q > 255 ? 255 : q;
            px[j] = (unsigned char)q;
        }
    }

    /* One row of the mark in 1/256 level, + 128 (the half for floor): the mask row widened
       m times and the tile row repeated, then one multiply per pixel; each loop is plain
       enough to vectorise. */
    static void lk_delta_row(const float *restrict mrow, Py_ssize_t m,
                             const float *restrict trow, Py_ssize_t pw, Py_ssize_t w,
                             float gain, Py_ssize_t c, float *restrict g,
                             float *restrict t, int *restrict out) {
        for (Py_ssize_t j0 = 0, b = 0; j0 < w; j0 += m, b++) {
            float v = gain * mrow[b];
            Py_ssize_t n = w - j0 < m ? w - j0 : m;
            for (Py_ssize_t j = 0; j < n; j++) g[j0 + j] = v;
        }
        for (Py_ssize_t j0 = 0; j0 < w; j0 += pw) {
            Py_ssize_t n = w - j0 < pw ? w - j0 : pw;
            for (Py_ssize_t j = 0; j < n; j++) t[j0 + j] = trow[j];
        }
        if (c == 3) {
            for (Py_ssize_t j = 0; j < w; j++) {
                int d = (int)(g[j] * t[j] * 256.0f + 1048576.5f) - 1048448;
                out[3 * j] = d; out[3 * j + 1] = d; out[3 * j + 2] = d;
            }
        } else {
            for (Py_ssize_t j = 0; j < w; j++)
                out[j] = (int)(g[j] * t[j] * 256.0f + 1048576.5f) - 1048448;
        }
    }

    /* One plane row of the mark, fused: the gain row g (the mask row widened, times the
       gain) times the tile row already repeated to the plane's width, rounded as lk_add_row
       rounds lk_delta_row's output (the same float and integer operations, in one pass). */
    /* x86-64 GCC/clang: an AVX2 clone of the plane row beside the baseline one, picked at
       load time (the same operations, so the same results); elsewhere the plain function. */
    #if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(_WIN32)
    #define LK_CLONES __attribute__((target_clones("avx2", "default")))
    #else
    #define LK_CLONES
    #endif
    LK_CLONES
    static void lk_plane_row(unsigned char *restrict px, const float *restrict g,
                             const float *restrict t, const int *restrict dither,
                             int *restrict d, Py_ssize_t n) {
        for (Py_ssize_t j = 0; j < n; j++)
            d[j] = (int)(g[j] * t[j] * 256.0f + 1048576.5f) - 1048448;
        for (Py_ssize_t j = 0; j < n; j++) {  /* lk_add_row, inlined into each clone */
            int q = (((int)px[j] << 8) + d[j] + dither[j]) >> 8;
            q = q < 0 ? 0 : q;
            q = q > 255 ? 255 : q;
            px[j] = (unsigned char)q;
        }
    }
    """
    void lk_plane_row(uint8_t* px, const float* g, const float* t, const int32_t* dither,
                      int32_t* d, Py_ssize_t n) nogil
    void lk_add_row(uint8_t* px, const int32_t* delta, const int32_t* dither,
                    Py_ssize_t n) nogil
    void lk_delta_row(const float* mrow, Py_ssize_t m, const float* trow, Py_ssize_t pw,
                      Py_ssize_t w, float gain, Py_ssize_t c, float* g, float* t,
                      int32_t* out) nogil


def embed_tile(uint8_t[:, :, ::1] image, const float[:, ::1] tile, const float[:, ::1] mask,
               Py_ssize_t m, float gain, const int32_t[::1] dither, const int32_t[::1] offsets):
    """Add gain * mask[y//m, x//m] * tile[y%P, x%P] to every channel of an (H, W, 1|3) image,
    in place, rounding with a dither: row y uses dither[offsets[y] : offsets[y] + W*C], in
    1/256 of a level (the twin does the same fixed-point arithmetic)."""
    cdef Py_ssize_t h = image.shape[0], w = image.shape[1], c = image.shape[2]
    cdef Py_ssize_t ph = tile.shape[0], pw = tile.shape[1]
    if m < 1 or mask.shape[0] * m < h or mask.shape[1] * m < w:
        raise ValueError("mask does not cover the image")
    if c != 1 and c != 3:
        raise ValueError("the image must have 1 or 3 channels")
    if ph < 1 or pw < 1:
        raise ValueError("empty tile")
    if offsets.shape[0] < h:
        raise ValueError("one dither offset per row")
    cdef Py_ssize_t i, j, k, tj, mj, jm
    for i in range(h):
        if offsets[i] < 0 or offsets[i] + w * c > dither.shape[0]:
            raise ValueError("dither offset out of range")
    cdef int32_t[::1] row = np.empty(max(w * c, 1), dtype=np.int32)
    cdef float[::1] gbuf = np.empty(max(w, 1), dtype=np.float32)
    cdef float[::1] tbuf = np.empty(max(w, 1), dtype=np.float32)
    cdef int32_t* dp = &row[0]
    with nogil:
        for i in range(h):
            lk_delta_row(&mask[i // m, 0], m, &tile[i % ph, 0], pw, w, gain, c,
                         &gbuf[0], &tbuf[0], dp)
            lk_add_row(&image[i, 0, 0], dp, &dither[offsets[i]], w * c)
    return None


def embed_plane(uint8_t[:, :] plane, const float[:, ::1] wide, const float[:, ::1] mask,
                Py_ssize_t m, float gain, const int32_t[::1] dither, const int32_t[::1] offsets):
    """embed_tile for one uint8 plane (H, W) whose rows may be strided (a video frame's Y
    plane), in place, with the tile's rows already repeated to the plane's width (``wide``,
    P x W): the same arithmetic and result as embed_tile on a contiguous copy."""
    cdef Py_ssize_t h = plane.shape[0], w = plane.shape[1], ph = wide.shape[0]
    if w > 1 and plane.strides[1] != 1:
        raise ValueError("the plane's rows must be contiguous")
    if m < 1 or mask.shape[0] * m < h or mask.shape[1] * m < w:
        raise ValueError("mask does not cover the image")
    if ph < 1 or wide.shape[1] < w:
        raise ValueError("the wide tile must cover the plane's width")
    if offsets.shape[0] < h:
        raise ValueError("one dither offset per row")
    cdef Py_ssize_t i, j, b
    for i in range(h):
        if offsets[i] < 0 or offsets[i] + w > dither.shape[0]:
            raise ValueError("dither offset out of range")
    if h == 0 or w == 0:
        return None
    cdef float[::1] gbuf = np.empty(w, dtype=np.float32)
    cdef int32_t[::1] dbuf = np.empty(w, dtype=np.int32)
    cdef float v
    with nogil:
        for i in range(h):
            if i % m == 0:  # one gain row serves m plane rows
                for b in range((w + m - 1) // m):
                    v = gain * mask[i // m, b]
                    for j in range(b * m, min(b * m + m, w)):
                        gbuf[j] = v
            lk_plane_row(&plane[i, 0], &gbuf[0], &wide[i % ph, 0], &dither[offsets[i]],
                         &dbuf[0], w)
    return None


def fold_tile(const float[:, ::1] residual, binv, Py_ssize_t t):
    """Fold pixels into a t x t tile (t a power of two): pixel (x, y) adds to bin
    round(binv @ (x, y)) mod t. Returns (sums float64 (t, t), counts int64 (t, t))."""
    if t < 1 or t & (t - 1):
        raise ValueError("t must be a power of two")
    cdef double[:, ::1] b = np.ascontiguousarray(binv, dtype=np.float64).reshape(2, 2)
    cdef Py_ssize_t h = residual.shape[0], w = residual.shape[1], y, x
    sums = np.zeros((t, t), dtype=np.float64)
    counts = np.zeros((t, t), dtype=np.int64)
    cdef double[:, ::1] s = sums
    cdef int64_t[:, ::1] n = counts
    cdef double b00 = b[0, 0], b01 = b[0, 1], b10 = b[1, 0], b11 = b[1, 1]
    # rounding by truncation after a large positive offset (a multiple of t): exact, and the
    # twin does the same arithmetic
    cdef double off = 0.5 + t * 1048576.0
    cdef double u0, v0
    cdef int64_t mask = t - 1, shift = 0
    while (1 << shift) < t:
        shift += 1
    cdef double* sp = &s[0, 0]
    cdef int64_t* np_ = &n[0, 0]
    cdef const float* row
    cdef Py_ssize_t idx
    with nogil:
        for y in range(h):
            u0 = b01 * y
            v0 = b11 * y
            row = &residual[y, 0]
            for x in range(w):
                idx = ((((<int64_t>((b10 * x + v0) + off)) & mask) << shift)
                       | ((<int64_t>((b00 * x + u0) + off)) & mask))
                sp[idx] += row[x]
                np_[idx] += 1
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
    cdef double a00, a01, a10, a11, fx, fy, yy, total, ax, ay, val, half_h = h / 2.0 - 1
    cdef double right = wh - 1 - 1e-9
    with nogil:
        for i in range(n_par):
            # the lattice's line positions are a linear map of (kc, kr): precompute it
            a00 = cos(p[i, 2]) / p[i, 0] * w
            a01 = -sin(p[i, 2]) / p[i, 1] * w
            a10 = sin(p[i, 2]) / p[i, 0] * h
            a11 = cos(p[i, 2]) / p[i, 1] * h
            total = 0.0
            n = 0
            for k in range(n_pts):
                fx = q[k] * a00 + r[k] * a01
                fy = q[k] * a10 + r[k] * a11
                if fx < 0:
                    fx = -fx
                    fy = -fy
                if not (fx <= right and (fy if fy >= 0 else -fy) <= half_h):
                    continue
                yy = fy + h if fy < 0 else fy
                n += 1
                if bilinear:
                    x0 = <Py_ssize_t>fx
                    ax = fx - x0
                    y0 = <Py_ssize_t>yy
                    ay = yy - y0
                    y0 = y0 % h
                    y1 = (y0 + 1) % h
                    x1 = min(x0 + 1, wh - 1)
                    val = (spectrum[y0, x0] * (1 - ax) * (1 - ay) + spectrum[y0, x1] * ax * (1 - ay)
                           + spectrum[y1, x0] * (1 - ax) * ay + spectrum[y1, x1] * ax * ay)
                else:
                    x0 = <Py_ssize_t>(fx + 0.5)
                    y0 = (<Py_ssize_t>(yy + 0.5)) % h
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
