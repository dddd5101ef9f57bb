"""Pure numpy twins of the native kernels: same names, same signatures, bit-identical output."""

from __future__ import annotations

import re

import numpy as np

__all__: list[str] = [
    "blend_mask",
    "luma_down",
    "luma_stats",
    "plane_stats",
    "box_blur",
    "extreme_filter",
    "embed_tile",
    "embed_plane",
    "fold_tile",
    "lattice_scores",
    "viterbi_decode",
    "tile_energies",
    "mix_down",
    "halfband_decimate",
    "halfband_interpolate",
    "frame_window",
    "overlap_add",
    "add_clipped",
    "vs_runs",
    "paragraph_marks",
    "splice",
    "green_bias",
    "green_mask",
]


def _require(array: np.ndarray, name: str, ndim: int, writeable: bool = False) -> None:
    # The same refusals the typed memoryviews of the native kernels make, with the same types.
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, not {type(array).__name__}")
    if array.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 array, not {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, not {array.ndim}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if writeable and not array.flags.writeable:
        raise ValueError(f"{name} is read-only")


def blend_mask(
    image: np.ndarray, mask: np.ndarray, y0: int, x0: int, color: np.ndarray
) -> None:
    """Blend ``color`` into ``image`` (H, W, C) through ``mask`` placed at (y0, x0), clipped."""
    _require(image, "image", 3, writeable=True)
    _require(mask, "mask", 2)
    _require(color, "color", 1)
    height, width, channels = image.shape
    if color.shape[0] != channels:
        raise ValueError(f"color has {color.shape[0]} components, the image {channels} channels")
    y0, x0 = int(y0), int(x0)
    i_start, i_stop = max(0, -y0), min(mask.shape[0], height - y0)
    j_start, j_stop = max(0, -x0), min(mask.shape[1], width - x0)
    if i_start >= i_stop or j_start >= j_stop:
        return
    region = image[y0 + i_start : y0 + i_stop, x0 + j_start : x0 + j_stop]
    # uint16 is enough: t <= 255 * 255 + 128 and t + (t >> 8) < 65536, and it halves the traffic.
    a = mask[i_start:i_stop, j_start:j_stop, None].astype(np.uint16)
    t = region * (255 - a) + color.astype(np.uint16) * a + 128
    # round(t / 255) without a division, exact in this range (as in the native kernel)
    region[...] = (t + (t >> 8)) >> 8


# ---------------------------------------------------------------------------- watermark kernels
# Float kernels agree with the native ones to rounding (sums are taken in another order);
# embed_tile is bit-identical given the same inputs.


def _require_f32(array: np.ndarray, name: str, ndim: int) -> None:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, not {type(array).__name__}")
    if array.dtype != np.float32 or array.ndim != ndim or not array.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous {ndim}-d float32 array")


def _blocks(image: np.ndarray, d: int) -> tuple[int, int, int, int]:
    # what the block kernels check and need: (d, channels, block rows, block columns)
    _require(image, "image", 3)
    d = int(d)
    if d < 1:
        raise ValueError("d must be >= 1")
    h, w, c = image.shape
    return d, c, h // d, w // d


def luma_down(image: np.ndarray, d: int) -> np.ndarray:
    """BT.601 luma of an (H, W, C) uint8 image, box-averaged over d x d blocks (float32)."""
    d, c, hd, wd = _blocks(image, d)
    sums = image[: hd * d, : wd * d, : 3 if c >= 3 else 1].reshape(hd, d, wd, d, -1)
    sums = sums.sum(axis=(1, 3), dtype=np.int64).astype(np.float64)
    norm = 1.0 / (d * d)
    if c >= 3:
        luma = (0.299 * sums[..., 0] + 0.587 * sums[..., 1] + 0.114 * sums[..., 2]) * norm
    else:
        luma = sums[..., 0] * norm
    return np.ascontiguousarray(luma, dtype=np.float32)


def luma_stats(image: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of an integer BT.601 luma, (77 R + 150 G + 29 B + 128) >> 8, over
    each d x d block of an (H, W, C) uint8 image (float32; sums are exact integers)."""
    d, c, hd, wd = _blocks(image, d)
    px = image[: hd * d, : wd * d].astype(np.int64)
    if c >= 3:
        y = (77 * px[..., 0] + 150 * px[..., 1] + 29 * px[..., 2] + 128) >> 8
    else:
        y = px[..., 0]
    blocks = y.reshape(hd, d, wd, d)
    norm = 1.0 / (d * d)
    mean = blocks.sum(axis=(1, 3)) * norm
    var = np.maximum((blocks * blocks).sum(axis=(1, 3)) * norm - mean * mean, 0.0)
    return mean.astype(np.float32), var.astype(np.float32)


def plane_stats(plane: np.ndarray, m: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance over each m x m block of a uint8 plane (H, W), whose rows may be
    strided (a video frame's Y plane), from every step-th row and column of the block
    (float32; sums are exact integers). step must divide m."""
    if not isinstance(plane, np.ndarray):
        raise TypeError(f"plane must be a numpy array, not {type(plane).__name__}")
    if plane.dtype != np.uint8 or plane.ndim != 2:
        raise ValueError("plane must be a 2-d uint8 array")
    m, step = int(m), int(step)
    if m < 1 or step < 1 or m % step:
        raise ValueError("m must be >= 1 and a multiple of step >= 1")
    if plane.shape[1] > 1 and plane.strides[1] != 1:
        raise ValueError("the plane's rows must be contiguous")
    hd, wd = plane.shape[0] // m, plane.shape[1] // m
    per = m // step
    y = plane[: hd * m : step, : wd * m : step].astype(np.int64).reshape(hd, per, wd, per)
    norm = 1.0 / (per * per)
    mean = y.sum(axis=(1, 3)) * norm
    var = np.maximum((y * y).sum(axis=(1, 3)) * norm - mean * mean, 0.0)
    return mean.astype(np.float32), var.astype(np.float32)


def box_blur(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1) x (2r+1) box, edges clamped (float32 in and out)."""
    _require_f32(image, "image", 2)
    r = int(radius)
    if r < 0:
        raise ValueError("radius must be >= 0")
    if r == 0:
        return image.copy()
    out = image.astype(np.float64)
    for axis in (1, 0):
        n = out.shape[axis]
        idx = np.clip(np.arange(-r - 1, n + r), 0, n - 1)
        padded = np.take(out, idx, axis=axis)
        c = np.cumsum(padded, axis=axis)
        hi = np.take(c, np.arange(2 * r + 1, n + 2 * r + 1), axis=axis)
        lo = np.take(c, np.arange(0, n), axis=axis)
        out = (hi - lo) / (2 * r + 1)
    return out.astype(np.float32)


def extreme_filter(image: np.ndarray, size: int, take_max: bool) -> np.ndarray:
    """Minimum (or maximum) over a size x size box centred on each pixel, edges clamped."""
    _require_f32(image, "image", 2)
    size = int(size)
    if size < 1:
        raise ValueError("size must be >= 1")
    lo, hi = (size - 1) // 2, size // 2
    op = np.maximum if take_max else np.minimum
    out = image
    for axis in (1, 0):
        n = out.shape[axis]
        acc = None
        for k in range(-lo, hi + 1):
            v = np.take(out, np.clip(np.arange(n) + k, 0, n - 1), axis=axis)
            acc = v if acc is None else op(acc, v)
        out = acc
    return np.ascontiguousarray(out, dtype=np.float32)


def embed_tile(
    image: np.ndarray, tile: np.ndarray, mask: np.ndarray, m: int, gain: float,
    dither: np.ndarray, offsets: np.ndarray,
) -> None:
    """Add gain * mask[y//m, x//m] * tile[y%P, x%P] to every channel of an (H, W, 1|3) image,
    in place, rounding with a dither: row y uses dither[offsets[y] : offsets[y] + W*C], in
    1/256 of a level (the twin does the same fixed-point arithmetic)."""
    _require(image, "image", 3, writeable=True)
    _require_f32(tile, "tile", 2)
    _require_f32(mask, "mask", 2)
    h, w, c = image.shape
    m = int(m)
    if m < 1 or mask.shape[0] * m < h or mask.shape[1] * m < w:
        raise ValueError("mask does not cover the image")
    if c not in (1, 3):
        raise ValueError("the image must have 1 or 3 channels")
    p_h, p_w = tile.shape
    if p_h < 1 or p_w < 1:
        raise ValueError("empty tile")
    offsets = np.asarray(offsets, dtype=np.int32)
    if offsets.shape[0] < h:
        raise ValueError("one dither offset per row")
    if (offsets[:h] < 0).any() or (offsets[:h] + w * c > dither.shape[0]).any():
        raise ValueError("dither offset out of range")
    mk = mask[np.arange(h) // m][:, np.arange(w) // m]
    tl = tile[np.arange(h) % p_h][:, np.arange(w) % p_w]
    x = ((np.float32(gain) * mk) * tl) * np.float32(256.0) + np.float32(1048576.5)
    d = x.astype(np.int32) - 1048448
    rows = offsets[:h, None] + np.arange(w * c)[None, :]
    du = np.asarray(dither, dtype=np.int32)[rows].reshape(h, w, c)
    q = ((image.astype(np.int32) << 8) + d[:, :, None] + du) >> 8
    image[...] = np.clip(q, 0, 255).astype(np.uint8)


def embed_plane(
    plane: np.ndarray, wide: np.ndarray, mask: np.ndarray, m: int, gain: float,
    dither: np.ndarray, offsets: np.ndarray,
) -> None:
    """embed_tile for one uint8 plane (H, W) whose rows may be strided (a video frame's Y
    plane), in place, with the tile's rows already repeated to the plane's width (``wide``,
    P x W): the same arithmetic and result as embed_tile on a contiguous copy."""
    if not isinstance(plane, np.ndarray):
        raise TypeError(f"plane must be a numpy array, not {type(plane).__name__}")
    if plane.dtype != np.uint8 or plane.ndim != 2:
        raise ValueError("plane must be a 2-d uint8 array")
    if not plane.flags.writeable:
        raise ValueError("plane is read-only")
    h, w = plane.shape
    if w > 1 and plane.strides[1] != 1:
        raise ValueError("the plane's rows must be contiguous")
    _require_f32(wide, "wide", 2)
    if wide.shape[0] < 1 or wide.shape[1] < w:
        raise ValueError("the wide tile must cover the plane's width")
    image = np.ascontiguousarray(plane)[:, :, None]
    embed_tile(image, np.ascontiguousarray(wide[:, :w]), mask, m, gain, dither, offsets)
    plane[...] = image[:, :, 0]


def fold_tile(residual: np.ndarray, binv: np.ndarray, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Fold pixels into a t x t tile (t a power of two): pixel (x, y) adds to bin
    round(binv @ (x, y)) mod t. Returns (sums float64 (t, t), counts int64 (t, t))."""
    _require_f32(residual, "residual", 2)
    t = int(t)
    if t < 1 or t & (t - 1):
        raise ValueError("t must be a power of two")
    h, w = residual.shape
    b = np.asarray(binv, dtype=np.float64).reshape(2, 2)
    ys = np.arange(h, dtype=np.float64)[:, None]
    xs = np.arange(w, dtype=np.float64)[None, :]
    off = 0.5 + t * 1048576.0  # truncation after a positive offset rounds, as in the kernel
    iu = ((b[0, 0] * xs + b[0, 1] * ys) + off).astype(np.int64) & (t - 1)
    iv = ((b[1, 0] * xs + b[1, 1] * ys) + off).astype(np.int64) & (t - 1)
    idx = (iv * t + iu).ravel()
    sums = np.bincount(idx, weights=residual.ravel().astype(np.float64), minlength=t * t)
    counts = np.bincount(idx, minlength=t * t)
    return sums.reshape(t, t), counts.reshape(t, t).astype(np.int64)


def lattice_scores(
    spectrum: np.ndarray, params: np.ndarray, kr: np.ndarray, kc: np.ndarray, bilinear: bool
) -> np.ndarray:
    """Mean of a half-plane power map at the spectral lines of each lattice (P1, P2, theta).

    ``spectrum`` is (h, w//2+1) from rfft2 of an (h, w) picture, with ``w`` = 2*(cols-1) assumed;
    each line (kr, kc) maps to (fx, fy) cycles per picture, folded into the half plane by
    conjugate symmetry. Lines outside the picture's band count as missing; a lattice with fewer
    than 80% of its lines present scores 0."""
    _require_f32(spectrum, "spectrum", 2)
    h, wh = spectrum.shape
    w = 2 * (wh - 1)
    params = np.asarray(params, dtype=np.float64).reshape(-1, 3)
    kr = np.asarray(kr, dtype=np.float64)[None, :]
    kc = np.asarray(kc, dtype=np.float64)[None, :]
    p1, p2, th = params[:, 0:1], params[:, 1:2], params[:, 2:3]
    a00, a01 = np.cos(th) / p1 * w, -np.sin(th) / p2 * w
    a10, a11 = np.sin(th) / p1 * h, np.cos(th) / p2 * h
    fx = kc * a00 + kr * a01
    fy = kc * a10 + kr * a11
    neg = fx < 0
    fx = np.where(neg, -fx, fx)
    fy = np.where(neg, -fy, fy)
    y = np.where(fy < 0, fy + h, fy)
    inside = (fx <= wh - 1 - 1e-9) & (np.abs(fy) <= h / 2 - 1)
    if bilinear:
        x0 = np.floor(np.where(inside, fx, 0)).astype(np.int64)
        y0f = np.floor(np.where(inside, y, 0))
        ax = np.where(inside, fx, 0) - x0
        ay = np.where(inside, y, 0) - y0f
        y0 = y0f.astype(np.int64) % h
        y1 = (y0 + 1) % h
        x1 = np.minimum(x0 + 1, wh - 1)
        sp = spectrum.astype(np.float64)
        val = (sp[y0, x0] * (1 - ax) * (1 - ay) + sp[y0, x1] * ax * (1 - ay)
               + sp[y1, x0] * (1 - ax) * ay + sp[y1, x1] * ax * ay)
    else:
        xi = np.floor(np.where(inside, fx, 0) + 0.5).astype(np.int64)
        yi = np.floor(np.where(inside, y, 0) + 0.5).astype(np.int64) % h
        val = spectrum[yi, xi].astype(np.float64)
    val = np.where(inside, val, 0.0)
    n = inside.sum(axis=1)
    total = val.sum(axis=1)
    ok = n >= 0.8 * kr.shape[1]
    return np.where(ok, total / np.maximum(n, 1), 0.0)


def viterbi_decode(soft: np.ndarray, outputs: np.ndarray) -> np.ndarray:
    """Soft-decision Viterbi for a rate-1/n, 64-state convolutional code, tail-terminated.

    ``soft`` (n_steps * n,) float64: > 0 favours coded bit 1. ``outputs`` (64, 2, n) int8: the
    coded bits emitted from each (state, input). Returns the decoded input bits (uint8)."""
    soft = np.asarray(soft, dtype=np.float64)
    outputs = np.asarray(outputs, dtype=np.int8)
    n_states, _, rate = outputs.shape
    y = soft.reshape(-1, rate)
    steps = y.shape[0]
    sign = 2.0 * outputs - 1.0
    metric = np.full(n_states, -np.inf)
    metric[0] = 0.0
    choice = np.zeros((steps, n_states), dtype=np.uint8)  # which predecessor won
    states = np.arange(n_states)
    # state s = last 6 inputs (newest in bit 0); from s with input b -> ((s << 1) | b) & 63.
    # Predecessors of d: s0 = d >> 1 and s1 = (d >> 1) | 32, both with input b = d & 1.
    pred0, pred1, bit = states >> 1, (states >> 1) | (n_states >> 1), states & 1
    for t in range(steps):
        branch = sign @ y[t]                            # (state, input)
        c0 = metric[pred0] + branch[pred0, bit]
        c1 = metric[pred1] + branch[pred1, bit]
        pick1 = c1 > c0
        choice[t] = pick1
        metric = np.where(pick1, c1, c0)
    bits = np.zeros(steps, dtype=np.uint8)
    s = 0
    for t in range(steps - 1, -1, -1):
        bits[t] = s & 1
        s = (s >> 1) | (int(choice[t, s]) * (n_states >> 1))
    return bits


# ------------------------------------------------------------------------------- audio kernels


def _fractional(prefix: np.ndarray, cells: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """The integral up to fractional positions ``pos`` along axis 0 of a piecewise-constant map."""
    i = np.minimum(pos.astype(np.int64), cells.shape[0] - 1)
    frac = (pos - i)[(...,) + (None,) * (cells.ndim - 1)]
    return prefix[i] + frac * cells[i]


def tile_energies(power: np.ndarray, rows: np.ndarray, cols: np.ndarray, out: np.ndarray) -> None:
    """Sum a (frames, bins) power map over the cells [rows[j], rows[j+1]) x [cols[b], cols[b+1]).

    Positions are fractional (a cell counts by its covered share) and must lie in
    [0, frames) and [0, bins); ``out`` is (len(rows) - 1, len(cols) - 1) float64."""
    _require_f32(power, "power", 2)
    rows = np.asarray(rows, np.float64)
    cols = np.asarray(cols, np.float64)
    if out.shape != (rows.size - 1, cols.size - 1) or out.dtype != np.float64:
        raise ValueError("out must be a (len(rows) - 1, len(cols) - 1) float64 array")
    frames, bins = power.shape
    if rows.size and not (0 <= rows.min() and rows.max() < frames):
        raise ValueError("rows out of range")
    if cols.size and not (0 <= cols.min() and cols.max() < bins):
        raise ValueError("cols out of range")
    p = power.astype(np.float64).T  # (bins, frames): integrate over bins first
    prefix = np.concatenate([np.zeros((1, frames)), np.cumsum(p, axis=0)])
    at = _fractional(prefix, p, cols)  # (len(cols), frames)
    band = (at[1:] - at[:-1]).T  # (frames, bands)
    prefix = np.concatenate([np.zeros((1, band.shape[1])), np.cumsum(band, axis=0)])
    at = _fractional(prefix, band, rows)
    out[...] = at[1:] - at[:-1]


# The embedder's signal path: float32 throughout, in the native kernels' order of operations.


def mix_down(x: np.ndarray, out: np.ndarray) -> None:
    """out[i] = the mean of row i of the (n, channels) ``x``: channels summed in order."""
    _require_f32(x, "x", 2)
    _require_f32(out, "out", 1)
    n, ch = x.shape
    if out.shape[0] != n or ch < 1:
        raise ValueError("out must have one sample per row of x, and x a channel at least")
    acc = x[:, 0].copy()
    for c in range(1, ch):
        acc += x[:, c]
    if ch > 1:
        acc *= np.float32(1.0 / ch)
    out[...] = acc


def halfband_decimate(x: np.ndarray, taps: np.ndarray, out: np.ndarray) -> None:
    """Half-band low-pass and keep every other sample.

    With taps = (c, a_0, ..., a_{P-1}) and the centre of output k at x[2k + 2P - 1]:
    out[k] = c * centre + sum_i a_i * (x[2k + 2P - 2 - 2i] + x[2k + 2P + 2i])."""
    for a, name in ((x, "x"), (taps, "taps"), (out, "out")):
        _require_f32(a, name, 1)
    p, count = taps.size - 1, out.size
    if p < 1 or (count and x.size < 2 * (count - 1) + 4 * p - 1):
        raise ValueError("x is too short for out, or no taps")
    if not count:
        return

    def at(start: int) -> np.ndarray:
        return x[start : start + 2 * count - 1 : 2]

    m = 2 * p - 1
    acc = taps[0] * at(m)
    for i in range(p):
        acc += taps[i + 1] * (at(m - 1 - 2 * i) + at(m + 1 + 2 * i))
    out[...] = acc


def halfband_interpolate(y: np.ndarray, taps: np.ndarray, out: np.ndarray) -> None:
    """Double the rate through a half-band filter, two outputs per centre y[k + P - 1].

    With taps = (c, b_0, ..., b_{P-1}): out[2k] = c * y[k + P - 1] and
    out[2k + 1] = sum_i b_i * (y[k + P - 1 - i] + y[k + P + i])."""
    for a, name in ((y, "y"), (taps, "taps"), (out, "out")):
        _require_f32(a, name, 1)
    p, count = taps.size - 1, out.size // 2
    if p < 1 or out.size % 2 or (count and y.size < count + 2 * p - 1):
        raise ValueError("y is too short for out, out is odd, or no taps")
    if not count:
        return
    m = p - 1

    def at(start: int) -> np.ndarray:
        return y[start : start + count]

    out[0::2] = taps[0] * at(m)
    acc = taps[1] * (at(m) + at(m + 1))
    for i in range(1, p):
        acc += taps[i + 1] * (at(m - i) + at(m + 1 + i))
    out[1::2] = acc


def frame_window(x: np.ndarray, hop: int, window: np.ndarray, out: np.ndarray) -> None:
    """out[k, i] = x[k * hop + i] * window[i]: windowed frames, ``hop`` apart."""
    _require_f32(x, "x", 1)
    _require_f32(window, "window", 1)
    _require_f32(out, "out", 2)
    count, n = out.shape
    if window.size != n or hop < 1 or (count and x.size < (count - 1) * hop + n):
        raise ValueError("window must match the frames, hop be positive and x long enough")
    if count:
        frames = np.lib.stride_tricks.sliding_window_view(x, n)[:: int(hop)][:count]
        np.multiply(frames, window, out=out)


def overlap_add(frames: np.ndarray, window: np.ndarray, acc: np.ndarray, out: np.ndarray) -> None:
    """Window the frames and add them at half-frame hops.

    Segment k of ``out`` (hop = n / 2 samples) is head(frame k) + tail(frame k - 1), the tail
    before frame 0 being ``acc``, which then holds the last frame's tail."""
    _require_f32(frames, "frames", 2)
    for a, name in ((window, "window"), (acc, "acc"), (out, "out")):
        _require_f32(a, name, 1)
    count, n = frames.shape
    hop = n // 2
    if n % 2 or window.size != n or acc.size != hop or out.size != count * hop:
        raise ValueError("frames must be (count, 2 * hop), window n, acc hop, out count * hop")
    if not count:
        return
    seg = out.reshape(count, hop)
    np.multiply(frames[:, :hop], window[:hop], out=seg)
    tails = frames[:, hop:] * window[hop:]
    seg[0] += acc
    seg[1:] += tails[:-1]
    acc[...] = tails[-1]


def add_clipped(x: np.ndarray, mark: np.ndarray, out: np.ndarray) -> None:
    """out[i, c] = x[i, c] + mark[i], clipped to [-1, 1]."""
    _require_f32(x, "x", 2)
    _require_f32(mark, "mark", 1)
    _require_f32(out, "out", 2)
    if mark.shape[0] != x.shape[0] or out.shape != x.shape:
        raise ValueError("x, mark and out must have the same number of samples")
    np.add(x, mark[:, None], out=out)
    np.clip(out, -1.0, 1.0, out=out)


# ------------------------------------------------------------------------------- text kernels

_VS_RUN = re.compile(rb"(?:\xef\xb8[\x80-\x8f])+")


def vs_runs(data, min_chars: int, starts: np.ndarray, ends: np.ndarray,
            offset: int = 0) -> tuple[int, int]:
    """Find runs of at least ``min_chars`` consecutive U+FE00..U+FE0F (EF B8 80..8F) in UTF-8.

    Scans from byte ``offset``; writes the byte offsets [start, end) of up to len(starts) runs
    and returns (runs found, where to resume): resume < len(data) when ``starts`` filled up."""
    if ends.shape[0] != starts.shape[0]:
        raise ValueError("starts and ends must have the same length")
    if min_chars < 1 or offset < 0:
        raise ValueError("min_chars must be >= 1 and offset >= 0")
    found, cap = 0, starts.shape[0]
    if cap == 0:
        return 0, offset
    for m in _VS_RUN.finditer(data, offset):
        if (m.end() - m.start()) // 3 < min_chars:
            continue
        starts[found], ends[found] = m.start(), m.end()
        found += 1
        if found == cap:  # full: resume after the last run found
            return found, m.end()
    return found, len(data)


# The carrier's place: the same character classes as _native_text (not Python's \s).
_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_MARK = ("\u0300-\u036f\u0483-\u0489\u0591-\u05bd\u0610-\u061a\u064b-\u065f\u0900-\u0903"
         "\u093a-\u094f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe00-\ufe0f\ufe20-\ufe2f"
         "\U0001f3fb-\U0001f3ff\U000e0100-\U000e01ef")
_PARAGRAPH = re.compile(f"(?:\\A|\\n[ \\t\\r\\x0c\\x0b]*\\n)[{_SPACE}]*"
                        f"[^{_SPACE}{_MARK}][{_MARK}]*(?:\u200d[^{_SPACE}][{_MARK}]*)*")


def paragraph_marks(data, out: np.ndarray) -> int:
    """Where a carrier goes in each paragraph of UTF-8 prose: the byte offset after its first
    grapheme (a visible character, the marks after it, and characters joined by U+200D).

    Paragraphs start at 0 and after every blank line ("\\n", spaces/tabs/CR/FF/VT, "\\n"); a
    paragraph whose first visible character is itself a mark gets none. Returns how many
    offsets were written; ``out`` needs one per newline plus one."""
    text = bytes(data).decode("utf-8", "replace")
    count, done_chars, done_bytes = 0, 0, 0
    for m in _PARAGRAPH.finditer(text):
        if count == out.shape[0]:
            raise ValueError("out is too small: one offset per newline plus one")
        done_bytes += len(text[done_chars : m.end()].encode("utf-8"))
        done_chars = m.end()
        out[count] = done_bytes
        count += 1
    return count


def splice(data, positions: np.ndarray, insert, out) -> None:
    """out = data with ``insert`` put at each of the increasing byte offsets ``positions``."""
    data, insert = memoryview(data).cast("B"), bytes(insert)
    n, k = len(data), positions.shape[0]
    if len(out) != n + k * len(insert):
        raise ValueError("out must hold the data and every insertion")
    pos = [int(p) for p in positions]
    if any(b < a for a, b in zip([0, *pos], pos)) or (pos and pos[-1] > n):
        raise ValueError("positions must increase and lie within the data")
    bounds = [0, *pos, n]
    out[:] = insert.join(bytes(data[a:b]) for a, b in zip(bounds, bounds[1:]))


def fmix32(x: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finaliser over a uint32 array (green_list.h's lk_fmix32)."""
    x = x ^ (x >> np.uint32(16))
    x *= np.uint32(0x85EBCA6B)
    x ^= x >> np.uint32(13)
    x *= np.uint32(0xC2B2AE35)
    x ^= x >> np.uint32(16)
    return x


def _green_rows(hv: np.ndarray, hp: np.ndarray, rows: int, vocab: int, threshold: int):
    # The same refusals as _native_tokens' _check, with the same exception type.
    if hv.dtype != np.uint32 or hp.dtype != np.uint32 or hv.ndim != 1 or hp.ndim != 1:
        raise ValueError("hv and hp must be 1-D uint32 arrays")
    if hv.shape[0] < vocab:
        raise ValueError(f"the token table has {hv.shape[0]} entries for a vocabulary of {vocab}")
    if hp.shape[0] != rows:
        raise ValueError(f"{hp.shape[0]} context hashes for {rows} rows of scores")
    for r in range(rows):
        yield r, fmix32(hv[:vocab] ^ hp[r]) < np.uint32(threshold)


def green_bias(scores: np.ndarray, out: np.ndarray, hv: np.ndarray, hp: np.ndarray,
               threshold: int, delta: float) -> None:
    """out[r, i] = scores[r, i] + delta where fmix32(hv[i] ^ hp[r]) < threshold, else + 0.

    ``out`` may be ``scores`` itself."""
    if scores.dtype not in (np.float32, np.float64) or out.dtype != scores.dtype:
        raise ValueError("scores and out must both be float32 or both float64")
    if scores.ndim != 2 or out.ndim != 2 or not out.flags.writeable:
        raise ValueError("scores and out must be 2-D and out writeable")
    if out.shape != scores.shape:
        raise ValueError(f"out is {out.shape[0]}x{out.shape[1]}, "
                         f"the scores {scores.shape[0]}x{scores.shape[1]}")
    step = scores.dtype.type(delta)
    zero = scores.dtype.type(0)
    for r, green in _green_rows(hv, hp, scores.shape[0], scores.shape[1], threshold):
        np.add(scores[r], np.where(green, step, zero), out=out[r])


def green_mask(mask: np.ndarray, hv: np.ndarray, hp: np.ndarray, threshold: int) -> None:
    """mask[r, i] = 1 where fmix32(hv[i] ^ hp[r]) < threshold, else 0."""
    if mask.dtype != np.uint8 or mask.ndim != 2 or not mask.flags.writeable:
        raise ValueError("mask must be a writeable 2-D uint8 array")
    for r, green in _green_rows(hv, hp, mask.shape[0], mask.shape[1], threshold):
        mask[r] = green
