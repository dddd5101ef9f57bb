"""Find the tile lattice of a watermarked picture without the original (key independent).

A periodic tile draws discrete spectral lines; after cropping, rescaling, rotation, aspect
change or flip they move together as one lattice (P1, P2, theta). The searches, in the order
find_lattices yields them: the known tile periods at the angle their lines prefer (rotation);
one-parameter rescales (a uniform scale, or one axis kept at a known period); the general
matched search of the lines in the whitened power spectrum over (P1, P2, theta); and two
readings of the whitened autocorrelation (single peaks near the axes, harmonics summed along
rays). All look only at the band's shape, not at keyed phases, so the detector tests each
proposal with the keyed pilot and counts every one in the p-value.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import numpy as np

from .._impl import kernel

__all__ = ["whitened_spectrum", "find_lattices"]

MIN_PERIOD = 30.0  # working pixels: no attack in the suite leaves the tile smaller than this


def _local_mean(power: np.ndarray, radius: int) -> np.ndarray:
    """Box mean of a half-plane power spectrum, continued across its edges as the full plane
    continues: rows wrap (frequencies are periodic), and the columns beyond the first and the
    last are the conjugate-symmetric ones (P[-ky, -kx] = P[ky, kx])."""
    h, wh = power.shape
    r = min(radius, wh - 1)
    flip = (-np.arange(h)) % h
    left = power[flip][:, r:0:-1]
    right = power[flip][:, wh - 2 : wh - 2 - r : -1] if wh > r + 1 else power[:, :0]
    padded = np.concatenate([left, power, right], axis=1)
    padded = np.concatenate([padded[-radius:], padded, padded[:radius]], axis=0)
    blurred = kernel("box_blur")(np.ascontiguousarray(padded, dtype=np.float32), radius)
    return blurred[radius : radius + h, r : r + wh]


def whitened_spectrum(residual: np.ndarray) -> np.ndarray:
    """|rfft2(residual)|^2 over a robust local mean: ~1 for image content, >> 1 on the lines.

    The local mean is recomputed twice with the spectrum clipped at 4x the previous estimate,
    so that lines 3-5 bins apart (a cropped picture holds few periods) do not whiten
    themselves away. Capped at 30 so that one strong line cannot dominate a score."""
    spec = np.fft.rfft2(residual)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    local = _local_mean(power, 7) + np.float32(1e-9)
    for _ in range(2):
        local = _local_mean(np.minimum(power, 4.0 * local), 7) + np.float32(1e-9)
    white = power / local
    white[0, 0] = 0.0
    return np.minimum(white, 30.0).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _lag_grid(h: int, w: int):
    """Lags (dx, dy) of an fftshifted (h, w) autocorrelation, and where peaks are looked for."""
    cy, cx = h // 2, w // 2
    dy, dx = np.mgrid[-cy : h - cy, -cx : w - cx]
    radius = np.hypot(dx, dy)
    # short lags belong to the picture's own structure; every attack in the suite leaves the
    # period at >= ~0.12 of the short side
    valid = (radius >= max(MIN_PERIOD, 0.1 * min(h, w))) & (radius <= 0.7 * min(h, w))
    return dx, dy, valid


def _autocorrelation(white: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The whitened autocorrelation of the residual, lag (0, 0) at the centre (float64)."""
    return np.fft.fftshift(np.fft.irfft2(white - white.mean(), s=shape))


def _peak_seeds(auto: np.ndarray, per_axis: int = 4) -> list:
    """(P1, P2, theta) seeds from the strongest autocorrelation peaks near the x and y axes."""
    h, w = auto.shape
    corr = auto.astype(np.float32)
    dx, dy, valid = _lag_grid(h, w)
    masked = np.where(valid, corr, np.float32(-np.inf)).astype(np.float32)
    peaks = (masked == kernel("extreme_filter")(masked, 5, True)) & valid
    idx = np.flatnonzero(peaks)
    if idx.size == 0:
        return []
    idx = idx[np.argsort(-corr.ravel()[idx])][:96]
    vx, vy = dx.ravel()[idx].astype(float), dy.ravel()[idx].astype(float)
    angle = np.degrees(np.arctan2(np.abs(vy), np.abs(vx)))
    near_x = [(x * np.sign(x), y * np.sign(x)) for x, y, a in zip(vx, vy, angle) if a < 15]
    near_y = [(x * np.sign(y), y * np.sign(y)) for x, y, a in zip(vx, vy, angle) if a > 75]

    def distinct(vectors):
        out = []
        for v in vectors:
            if not any(abs(v[0] - o[0]) < 3 and abs(v[1] - o[1]) < 3 for o in out):
                out.append(v)
            if len(out) >= per_axis:
                break
        return out

    seeds = []
    for a in distinct(near_x):
        for b in distinct(near_y):
            theta = 0.5 * (math.atan2(a[1], a[0]) + math.atan2(-b[0], b[1]))
            seeds.append(np.array([math.hypot(*a), math.hypot(*b), theta]))
    return seeds


def _bilinear(img: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """img at fractional (y, x), 0 outside."""
    h, w = img.shape
    ok = (x >= 0) & (x < w - 1) & (y >= 0) & (y < h - 1)
    x = np.where(ok, x, 0)
    y = np.where(ok, y, 0)
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    ax, ay = x - x0, y - y0
    v = (img[y0, x0] * (1 - ax) * (1 - ay) + img[y0, x0 + 1] * ax * (1 - ay)
         + img[y0 + 1, x0] * (1 - ax) * ay + img[y0 + 1, x0 + 1] * ax * ay)
    return np.where(ok, v, 0.0)


def _ray_seeds(auto: np.ndarray, per_axis: int = 6) -> list:
    """(P1, P2, theta) seeds from the whitened autocorrelation, summed along rays.

    A tile lattice puts autocorrelation peaks at every n*v1 + m*v2. One peak is weak when
    the mark is weak; summing the first harmonics along a ray (v, 2v, 3v) at each angle and
    period separates the lattice from the picture's own, isolated, correlations. The best
    periods near the x axis and near the y axis, at nearby angles, are paired and scored with
    their diagonals (v1 + v2, v1 - v2)."""
    h, w = auto.shape
    corr = auto / (auto.std() or 1.0)
    cy, cx = h // 2, w // 2
    lo = max(MIN_PERIOD, 0.1 * min(h, w))
    hi = 0.6 * min(h, w)
    if hi <= lo:
        return []
    periods = np.exp(np.arange(math.log(lo), math.log(hi), 0.006))
    thetas = np.deg2rad(np.arange(-4.0, 4.01, 0.25))
    harmonics = np.arange(1, 4)[None, None, :]
    th = thetas[:, None, None]
    length = periods[None, :, None] * harmonics
    reach = length <= 0.75 * min(h, w)

    def ray(dx, dy):  # summed harmonics along direction (dx, dy): (theta, period)
        v = _bilinear(corr, cy + length * dy, cx + length * dx)
        return np.where(reach, v, 0.0).sum(-1) / np.sqrt(np.maximum(reach.sum(-1), 1))

    along_x = ray(np.cos(th), np.sin(th))
    along_y = ray(-np.sin(th), np.cos(th))

    def best(score):
        out = []
        for i in np.argsort(-score.ravel()):
            t, p = divmod(int(i), score.shape[1])
            if any(abs(t - u) <= 4 and abs(math.log(periods[p] / q)) < 0.04 for u, q, _ in out):
                continue
            out.append((t, float(periods[p]), float(score.ravel()[i])))
            if len(out) >= per_axis:
                break
        return out

    seeds = []
    for tx, p1, s1 in best(along_x):
        for ty, p2, s2 in best(along_y):
            if abs(tx - ty) > 6:  # the two axes of one lattice are perpendicular
                continue
            theta = 0.5 * (thetas[tx] + thetas[ty])
            c, s = math.cos(theta), math.sin(theta)
            diag = _bilinear(corr, np.array([cy + p1 * s + p2 * c, cy + p1 * s - p2 * c]),
                             np.array([cx + p1 * c - p2 * s, cx + p1 * c + p2 * s])).sum()
            seeds.append((s1 + s2 + diag / math.sqrt(2), np.array([p1, p2, theta])))
    seeds.sort(key=lambda t: -t[0])
    return [p for _, p in seeds]


def _nelder_mead(f, x0: np.ndarray, step: np.ndarray, iters: int = 150, tol: float = 1e-4):
    """Minimise f from x0 (a small dependency-free Nelder-Mead)."""
    n = x0.size
    simplex = [x0] + [x0 + np.eye(n)[i] * step[i] for i in range(n)]
    values = [f(x) for x in simplex]
    for _ in range(iters):
        order = np.argsort(values)
        simplex = [simplex[i] for i in order]
        values = [values[i] for i in order]
        if abs(values[-1] - values[0]) < tol and np.abs(simplex[-1] - simplex[0]).max() < tol:
            break
        centroid = np.mean(simplex[:-1], axis=0)
        reflected = centroid + (centroid - simplex[-1])
        fr = f(reflected)
        if fr < values[0]:
            expanded = centroid + 2.0 * (centroid - simplex[-1])
            fe = f(expanded)
            simplex[-1], values[-1] = (expanded, fe) if fe < fr else (reflected, fr)
        elif fr < values[-2]:
            simplex[-1], values[-1] = reflected, fr
        else:
            contracted = centroid + 0.5 * (simplex[-1] - centroid)
            fc = f(contracted)
            if fc < values[-1]:
                simplex[-1], values[-1] = contracted, fc
            else:
                best = simplex[0]
                simplex = [best] + [best + 0.5 * (x - best) for x in simplex[1:]]
                values = [values[0]] + [f(x) for x in simplex[1:]]
    i = int(np.argmin(values))
    return simplex[i], values[i]


def _basis(p1: float, p2: float, theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[p1 * c, -p2 * s], [p1 * s, p2 * c]])


N_LINES = 3  # lattices kept from the spectral-line search
N_AUTO = 5  # lattices kept from the autocorrelation finder
N_ROTATED = 3  # rotated lattices kept from the known-period angle search
N_RESCALED = 4  # upright lattices kept from the one-parameter scale searches
# Every lattice find_lattices may yield: the rotated ones are isotropic; each of the others may
# bring its isotropic completion. The detector's p-value counts all of them in advance.
MAX_CANDIDATES = N_ROTATED + 2 * (N_RESCALED + N_LINES + N_AUTO)


def _with_isotropic(bases: list[np.ndarray]) -> list[np.ndarray]:
    """The bases, each anisotropic one followed by its completion (P2, P2, theta): the only
    anisotropic attack scales one axis, and the finders often get one period right and the
    other wrong."""
    out = []
    for b in bases:
        out.append(b)
        p1, p2 = math.hypot(b[0, 0], b[1, 0]), math.hypot(b[0, 1], b[1, 1])
        if abs(math.log(p1 / p2)) > 0.02:
            iso = b.copy()
            iso[:, 0] *= p2 / p1
            out.append(iso)
    return out


def _rescaled(white: np.ndarray, kr: np.ndarray, kc: np.ndarray, periods, shape) -> list:
    """Upright lattices from one-parameter searches on the spectral lines: a uniform rescale
    (P, P) at any period, and an aspect change that keeps one axis at a known period (P1, Pk)
    or (Pk, P2). One free parameter makes far fewer look-alikes than the general search, so a
    weak mark still stands out."""
    h, w = shape
    sel = np.hypot(kr, kc) >= 8
    scores = kernel("lattice_scores")
    top = 0.6 * min(h, w)
    if top <= MIN_PERIOD:
        return []
    grid = np.exp(np.arange(math.log(MIN_PERIOD), math.log(top), 0.003))
    params = [np.stack([grid, grid, np.zeros_like(grid)], -1)]
    for p in periods:
        free = grid[(grid >= 0.6 * p) & (grid <= 1.6 * p)]
        fixed = np.full_like(free, p)
        zero = np.zeros_like(free)
        params += [np.stack([free, fixed, zero], -1), np.stack([fixed, free, zero], -1)]
    params = np.concatenate(params)
    sc = scores(white, params, kr[sel], kc[sel], True)
    out: list[np.ndarray] = []
    for i in np.argsort(-sc):
        p = params[i]
        if any(abs(math.log(p[0] / q[0])) < 0.02 and abs(math.log(p[1] / q[1])) < 0.02
               for q in out):
            continue
        out.append(p)
        if len(out) >= N_RESCALED:
            break
    return [_basis(p[0], p[1], 0.0) for p in out]


def find_lattices(
    residual: np.ndarray, kr: np.ndarray, kc: np.ndarray, periods: list[float] = (),
) -> Iterator[list[np.ndarray]]:
    """Candidate tile bases (2x2, columns = period vectors in working pixels), in batches, best
    first in each: the known ``periods`` at the angle their spectral lines prefer (a rotation
    keeps the period), then the general spectral-line finder's, then the autocorrelation
    finder's; a caller that finds the mark in one batch never pays for the next. At most
    MAX_CANDIDATES lattices in all."""
    h, w = residual.shape
    scores = kernel("lattice_scores")
    white = whitened_spectrum(residual)
    kr_all, kc_all = kr.astype(np.float64), kc.astype(np.float64)
    if len(periods):
        sel = np.hypot(kr_all, kc_all) >= 8
        thetas = np.deg2rad(np.arange(-3.5, 3.51, 0.1))
        grid = np.array([[p, p, t] for p in periods for t in thetas])
        sc = scores(white, grid, kr_all[sel], kc_all[sel], True).reshape(len(periods), -1)
        best = np.argsort(-sc.max(axis=1))[:N_ROTATED]
        yield [_basis(periods[i], periods[i], thetas[int(np.argmax(sc[i]))]) for i in best]
    yield _with_isotropic(_rescaled(white, kr_all, kc_all, periods, (h, w)))
    peak = kernel("extreme_filter")(white, 3, True)
    kr = kr.astype(np.float64)
    kc = kc.astype(np.float64)
    radius = np.hypot(kr, kc)
    # coarse stage on a subset of the higher lines (13-22 bins): sub-multiples P/2, P/3 of the
    # true period push these out of the band, and low lines are masked by the image spectrum
    ring = np.flatnonzero((radius >= 13) & (radius <= 22))
    ring = ring[:: max(1, ring.size // 160)]
    top_period = max(40.0, 0.6 * min(h, w))
    periods = np.exp(np.arange(math.log(36.0), math.log(top_period), 0.008))
    thetas = np.deg2rad(np.arange(-3.0, 3.01, 0.4))
    aspects = np.array([0.8, 0.9, 1.0, 1.12, 1.25])
    grid = np.stack(np.meshgrid(periods, aspects, thetas, indexing="ij"), -1).reshape(-1, 3)
    params = np.stack([grid[:, 0] * grid[:, 1], grid[:, 0], grid[:, 2]], -1)
    coarse = scores(peak, params, kr[ring], kc[ring], False)
    top = np.argsort(-coarse)[:60]
    fine = scores(peak, params[top], kr, kc, True)
    proposals: list[np.ndarray] = []
    for i in top[np.argsort(-fine)]:
        p = params[i]
        if any(abs(math.log(p[0] / q[0])) < 0.03 and abs(math.log(p[1] / q[1])) < 0.03
               and abs(p[2] - q[2]) < 0.02 for q in proposals):
            continue
        proposals.append(p)
        if len(proposals) >= N_LINES:
            break

    high = np.flatnonzero(radius >= 8)[::2]  # the lines least masked by the image spectrum
    kr_hi, kc_hi = kr[high], kc[high]

    def cost(x):
        p = np.array([[math.exp(x[0]), math.exp(x[1]), x[2]]])
        return -float(scores(white, p, kr_hi, kc_hi, True)[0])

    def refine(p, keep_start: bool):
        x0 = np.array([math.log(p[0]), math.log(p[1]), p[2]])
        x, v = _nelder_mead(cost, x0, np.array([0.006, 0.006, 0.004]), iters=80, tol=2e-4)
        out = [(-v, _basis(math.exp(x[0]), math.exp(x[1]), x[2]))]
        if keep_start:
            out.append((-cost(x0), _basis(*p)))
        return out

    def pick(found, n, bases):
        found.sort(key=lambda t: -t[0])
        added = 0
        for _, b in found:
            if added >= n:
                break
            if any(np.abs(b - o).max() < 1.0 for o in bases):
                continue
            bases.append(b)
            added += 1
        return bases

    found = []
    for p in proposals:
        found += refine(p, keep_start=True)
    bases = pick(found, N_LINES, [])
    yield _with_isotropic(bases)
    # two autocorrelation finders: single peaks near the axes (strong marks, any geometry) and
    # harmonics summed along rays (weak marks); the line score picks the peak seeds to refine
    auto = _autocorrelation(white, (h, w))
    seeds = [p for p in _peak_seeds(auto)
             if MIN_PERIOD <= min(p[0], p[1]) and max(p[0], p[1]) <= 0.75 * min(h, w)
             and abs(p[2]) < 0.1]
    if seeds:
        first = scores(white, np.array(seeds), kr_hi, kc_hi, True)
        seeds = [seeds[i] for i in np.argsort(-first)[: 2 * N_AUTO]]
    seeds += _ray_seeds(auto)[:3]
    found = []
    for p in seeds:
        found += refine(p, keep_start=False)
    first = len(bases)
    yield _with_isotropic(pick(found, N_AUTO, bases)[first:])
