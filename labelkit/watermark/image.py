"""Robust invisible image watermark: a keyed, tiled spread-spectrum mark in luma.

The mark is one periodic tile, defined in the Fourier domain on a 128 x 128 grid of reference
pixels: every bin of a mid-frequency ring carries a unit coefficient with a keyed phase. A keyed
third of the bins is the pilot; the others carry two coded bits each (QPSK), so all chips are
orthogonal. The tile is synthesised at one of a few fixed periods (PERIODS, about a quarter of
the short side) and added to R, G and B alike, scaled by a mask whose shape follows SSIM's cost
and whose gain spends a per-picture SSIM budget or the PSNR floor, whichever comes first.

Detection needs no original: luma at ~512 px short side, a locally normalised high-pass, then
lattices in stages (the known periods upright, at their best angle, one-parameter rescales, the
general finders of lattice.py). Each lattice folds the picture into one tile, and the pilot's
circular cross-correlation gives the shift and a z score for the tile and its mirror (flips).
The p-value is a union bound over every (lattice, mirror, shift) the detector may try; the
payload is read by soft Viterbi and accepted only if its CRC holds.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .._impl import kernel
from ..errors import LabelkitError
from . import ecc
from .detection import P_THRESHOLD, Detection, union_p_value
from .keys import WatermarkKey, keyed_permutation, keyed_uniform
from .lattice import MAX_CANDIDATES, MIN_PERIOD, find_lattices

__all__ = [
    "embed_image",
    "detect_image",
    "MIN_SIDE",
    "DEFAULT_STRENGTH",
    "WatermarkTooSmall",
    "ImageStrength",
    "PROFILES",
]

T = 128  # tile size in reference pixels
BAND = (0.025, 0.20)  # cycles per reference pixel
PILOT_FRACTION = 1.0 / 3.0
REF_SIDE = 512  # one reference pixel per image pixel up to a 512 px short side
# The tile's period in pixels is one of these: the largest not above T * short side / REF_SIDE
# (about a quarter of the short side). A crop keeps the period, so the detector tries these
# few exact periods before it searches: crops at any offset cost a handful of folds.
PERIODS = (128, 160, 200, 256, 320, 400, 512, 640, 800, 1024)
# Below this short side the folded tile averages too few pixels: measured on photos at 320 px,
# the payload is lost even without an attack (at 384 px it survives JPEG 75).
MIN_SIDE = 384
DEFAULT_STRENGTH = 1.0


class WatermarkTooSmall(LabelkitError):
    """The picture is too small to carry (or to show) the watermark."""


@dataclass(frozen=True)
class ImageStrength:
    """How strong the mark is where, in 8-bit levels of luma per unit-RMS tile.

    SSIM compares 7x7 windows: a mark of in-window variance n^2 in a window of variance s^2
    costs about n^2 / (2 s^2 + n^2 + C2) of its SSIM (C2 = (0.03 * 255)^2). The mask has the shape
    sqrt(1 + 2 s^2 / C2), the same SSIM cost everywhere (measured against a flat shape and
    against (1 + 2 s^2 / C2)^(1/4): more payloads survived at equal SSIM), and one gain per
    picture scales it up to whichever comes first: the SSIM budget (predicted from that
    formula, which matches skimage's SSIM within ~15% on photos) or the RMS cap (the PSNR
    floor). A spectral tilt of the tile towards low frequencies was tried too and survived
    no better at equal SSIM."""

    ssim_loss: float = 0.0075  # SSIM budget per picture: >= 0.99 with a margin for the model
    ceiling: float = 6.0  # amplitude on the busiest texture, in levels
    rms_cap: float = 2.3  # global cap on the mark's RMS: PSNR >= 20 log10(255 / 2.3) = 40.9 dB
    edge_guard: int = 3  # min-filter width in mask pixels: no halo beside edges on flat areas
    # The SSIM model sees the tile alone; the mask's block steps and the dither add in-window
    # variance of their own, so low-frequency (large-period) tiles are charged at least this
    # (measured: SSIM 0.985 at 1080p when charged the model's 0.5).
    fraction_floor: float = 0.85


STRENGTH = ImageStrength()
# Named profiles (measured with `make watermark-suite`, 39 pictures x 30 attacks):
#   invisible  PSNR >= 41 dB, SSIM >= 0.99 on photos; the exact payload in 95.8% of attack cases
#   robust     PSNR >= 40.7 dB (the RMS cap binds), SSIM 0.966-0.985; 99.2% (SSIM budget 0.03)
PROFILES = {"invisible": STRENGTH, "robust": ImageStrength(ssim_loss=0.03)}


@dataclass(frozen=True)
class _Material:
    kr: np.ndarray  # band bins: row frequency (signed)
    kc: np.ndarray  # band bins: column frequency (>= 1)
    pilot: np.ndarray  # bool per bin
    psi: np.ndarray  # keyed phase per bin
    chip_bit: np.ndarray  # (n_data_bins, 2): coded bit of the real and imaginary chip


_MATERIAL: OrderedDict[bytes, _Material] = OrderedDict()
_MATERIAL_LOCK = threading.Lock()  # services label from many threads with few keys


def _material(key: WatermarkKey) -> _Material:
    with _MATERIAL_LOCK:
        found = _MATERIAL.get(key.secret)
    if found is not None:
        return found
    kr, kc = np.meshgrid(np.arange(-T // 2 + 1, T // 2), np.arange(1, T // 2), indexing="ij")
    radius = np.hypot(kr, kc) / T
    band = (radius >= BAND[0]) & (radius <= BAND[1])
    kr, kc = kr[band].astype(np.int64), kc[band].astype(np.int64)
    n = kr.size
    pilot = np.zeros(n, dtype=bool)
    pilot[keyed_permutation(key.secret, "image/pilot", n)[: round(n * PILOT_FRACTION)]] = True
    psi = 2 * math.pi * keyed_uniform(key.secret, "image/phase", n)
    n_data = int((~pilot).sum())
    chips = np.arange(2 * n_data) % ecc.N_CODED
    chip_bit = chips[keyed_permutation(key.secret, "image/chips", 2 * n_data)].reshape(n_data, 2)
    found = _Material(kr, kc, pilot, psi, chip_bit)
    with _MATERIAL_LOCK:
        _MATERIAL[key.secret] = found
        while len(_MATERIAL) > 16:
            _MATERIAL.popitem(last=False)
    return found


def _period(h: int, w: int) -> int:
    """The tile period the embedder uses at this size: about a quarter of the short side."""
    return max(p for p in PERIODS if p <= T * max(1.0, min(h, w) / REF_SIDE))


def _tile(mat: _Material, payload: int, period: int) -> np.ndarray:
    """The period x period tile (unit RMS, float32) carrying ``payload``."""
    coded = ecc.encode(payload).astype(np.float64) * 2 - 1
    coef = np.exp(1j * mat.psi)
    data = ~mat.pilot
    coef[data] *= (coded[mat.chip_bit[:, 0]] + 1j * coded[mat.chip_bit[:, 1]]) / math.sqrt(2)
    spec = np.zeros((period, period // 2 + 1), dtype=complex)
    spec[mat.kr % period, mat.kc] = coef
    tile = np.fft.irfft2(spec, s=(period, period))
    return (tile / tile.std()).astype(np.float32)


def _gauss(image: np.ndarray, sigma: float, passes: int = 3) -> np.ndarray:
    """Repeated box passes: a Gaussian of about ``sigma`` in O(1) per pixel."""
    # each pass of width n adds (n^2 - 1) / 12 to the variance
    radius = max(1, round((math.sqrt(12 * sigma * sigma / passes + 1) - 1) / 2))
    blur = kernel("box_blur")
    for _ in range(passes):
        image = blur(image, radius)
    return image


def _as_hwc(pixels: np.ndarray) -> np.ndarray:
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise TypeError("pixels must be a uint8 numpy array")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"pixels must be (H, W) or (H, W, 1-4), not {pixels.shape}")
    return np.ascontiguousarray(pixels)


_DITHER_PERIOD = 8209  # prime and wider than an 8K row: each row is a shifted copy of one sequence


def _hash32(values: np.ndarray, seed: int) -> np.ndarray:
    """murmur3's 32-bit finaliser of values + seed (a stateless, white integer hash)."""
    with np.errstate(over="ignore"):
        v = values.astype(np.uint32) * np.uint32(0x9E3779B1) + np.uint32(seed & 0xFFFFFFFF)
        v ^= v >> np.uint32(16)
        v *= np.uint32(0x85EBCA6B)
        v ^= v >> np.uint32(13)
        v *= np.uint32(0xC2B2AE35)
        v ^= v >> np.uint32(16)
    return v


def _dither(h: int, w: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rounding dither in 1/256 level, uniform in [-128, 127], and each row's offset into it.

    White, so it draws no spectral line (an ordered dither would put peaks in the lattice
    finder's autocorrelation); it keeps sub-level marks on flat 8-bit areas in the mean."""
    table = (_hash32(np.arange(c * (_DITHER_PERIOD + w)), 0x5EED1) >> np.uint32(24)).astype(
        np.int32
    ) - 128
    offsets = (_hash32(np.arange(h), seed) % np.uint32(_DITHER_PERIOD)).astype(np.int32) * c
    return table, offsets


_C2 = (0.03 * 255) ** 2  # SSIM's stabiliser for 8-bit data


def _mask(image: np.ndarray, m: int, strength: ImageStrength) -> tuple[np.ndarray, np.ndarray]:
    """The mask's shape at 1/m resolution and the local variance it was built from: grows
    with texture, kept low beside edges and in the dark, where a level shows most."""
    mean, var = kernel("luma_stats")(image, m)
    return _mask_from_stats(mean, var, image.shape[0], image.shape[1], m, strength)


def _mask_from_stats(mean: np.ndarray, var: np.ndarray, h: int, w: int, m: int,
                     strength: ImageStrength, spread: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """_mask from the luma's m x m block means and variances of an h x w picture (the video
    embedder measures them on the Y plane); ``spread=False`` takes the local variance within
    each block only (blocks already as large as SSIM's 7 x 7 window)."""
    # the last partial block row/column: repeat the edge so the mask covers the picture
    pad = (-(-h // m) - mean.shape[0], -(-w // m) - mean.shape[1])
    if any(pad):
        mean = np.ascontiguousarray(np.pad(mean, ((0, pad[0]), (0, pad[1])), mode="edge"))
        var = np.ascontiguousarray(np.pad(var, ((0, pad[0]), (0, pad[1])), mode="edge"))
    if spread:
        blur = kernel("box_blur")
        # variance over ~3x3 blocks: within-block variance plus the spread of the block means
        local = blur(np.ascontiguousarray(var + mean * mean), 1) - np.square(blur(mean, 1))
        local = np.maximum(local, 0).astype(np.float32)
    else:
        local = var
    guarded = kernel("extreme_filter")(local, strength.edge_guard, False)
    amp = np.sqrt(1.0 + (2.0 / _C2) * guarded)
    amp = amp * np.clip(mean / 40.0, 0.5, 1.0)
    amp = _gauss(np.ascontiguousarray(amp, dtype=np.float32), 1.0)
    return amp, local


def _in_window_fraction(mat: _Material, period: int) -> float:
    """The share of the tile's variance that varies inside a 7x7 window (what SSIM sees)."""

    def box(f):  # response of a 7-tap mean at f cycles per pixel
        f = np.abs(f)
        with np.errstate(invalid="ignore", divide="ignore"):
            r = np.sin(7 * math.pi * f) / (7 * np.sin(math.pi * f))
        return np.where(f < 1e-12, 1.0, r)

    kept = (box(mat.kc / period) * box(mat.kr / period)) ** 2
    return float(np.mean(1 - kept))  # every bin carries the same power


def _gain(amp: np.ndarray, local: np.ndarray, fraction: float, strength: ImageStrength) -> float:
    """The largest gain that keeps the predicted SSIM loss and the RMS within budget."""
    a2 = (amp[::3, ::3].astype(np.float64)) ** 2  # a subsample is plenty for a mean
    d = 2.0 * local[::3, ::3] + _C2
    rms = math.sqrt(float(np.mean(amp.astype(np.float64) ** 2))) or 1.0
    hi = strength.rms_cap / rms

    def loss(g):
        u = fraction * g * g * a2
        return float(np.mean(u / (d + u)))

    if loss(hi) <= strength.ssim_loss:
        return hi
    lo = 0.0
    for _ in range(16):  # to 1/65536 of the cap's gain
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if loss(mid) <= strength.ssim_loss else (lo, mid)
    return lo


def embed_image(
    pixels: np.ndarray,
    key: WatermarkKey,
    payload: int,
    strength: float = DEFAULT_STRENGTH,
    profile: ImageStrength | str = STRENGTH,
) -> np.ndarray:
    """A watermarked copy of ``pixels`` ((H, W) or (H, W, C) uint8) carrying a 64-bit payload.

    ``profile`` ("invisible", the default, or "robust", or an ImageStrength) sets where and how
    strong the mark is; ``strength`` then multiplies it (above 1 PSNR and SSIM drop below the
    profile's; 2.0 with "invisible" survived 99.7% of the attack suite at SSIM ~0.97).
    Raises WatermarkTooSmall below MIN_SIDE px on the short side."""
    image = _as_hwc(pixels)
    h, w, c = image.shape
    if min(h, w) < MIN_SIDE:
        raise WatermarkTooSmall(f"{w}x{h} is too small for the watermark (needs {MIN_SIDE} px)")
    if not 0 < strength <= 8:
        raise ValueError("strength must be in (0, 8]")
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {sorted(PROFILES)}, not {profile!r}")
        profile = PROFILES[profile]
    period = _period(h, w)
    m = 2 * max(1, int(min(h, w) / REF_SIDE))  # a mask pixel is about 2 reference pixels
    mat = _material(key)
    tile = _tile(mat, payload, period)
    amp, local = _mask(image, m, profile)
    fraction = max(_in_window_fraction(mat, period), profile.fraction_floor)
    amp = np.minimum(amp * _gain(amp, local, fraction, profile), profile.ceiling)
    gain = strength
    colour = 3 if c >= 3 else 1  # alpha (LA's second, RGBA's fourth channel) is never touched
    target = np.array(image[:, :, :colour]) if colour != c else image.copy()
    dither, offsets = _dither(h, w, colour, h * 100003 + w)
    kernel("embed_tile")(target, tile, amp, m, gain, dither, offsets)
    if colour != c:
        out = image.copy()
        out[:, :, :colour] = target
        target = out
    return target.reshape(pixels.shape)


def _residual(luma: np.ndarray) -> np.ndarray:
    """Locally normalised high-pass, with constant fill (letterbox, rotation corners) zeroed."""
    # two passes are enough here: only the band above ~1/(2 pi 12) cycles/px matters
    detail = luma - _gauss(luma, 12.0, passes=2)
    local = np.sqrt(np.maximum(_gauss(np.ascontiguousarray(detail * detail), 12.0, 2), 0)) + 1.0
    r = detail / local
    # (a constant 5x5 block needs equal horizontal neighbours: most photos have none, and
    # then the two filters are skipped)
    if (luma[:, 1:] == luma[:, :-1]).any():
        extreme = kernel("extreme_filter")
        flat = (extreme(luma, 5, True) - extreme(luma, 5, False)) == 0
        if flat.any():  # the fill's edges would draw spectral lines of their own
            r[extreme(flat.astype(np.float32), 13, True) > 0] = 0
    r -= r.mean()
    return np.clip(r, -3, 3).astype(np.float32)


def _pilot_correlation(folded: np.ndarray, mat: _Material):
    """Pilot cross-correlation over all circular shifts: (z max, sub-pixel shift, whitened bins)."""
    z, bins = _pilot_surface(_band_bins(folded, mat), mat)
    score, shift = _peak(z)
    return score, shift, bins


def _band_bins(folded: np.ndarray, mat: _Material) -> np.ndarray:
    """The band's Fourier coefficients of a folded T x T tile (complex, one per bin)."""
    return np.fft.rfft2(folded)[mat.kr % T, mat.kc]


def _pilot_surface(bins: np.ndarray, mat: _Material) -> tuple[np.ndarray, np.ndarray]:
    """The pilot's z at every circular shift (T x T) of band coefficients, and the whitened
    coefficients; z is N(0, 1)-bounded for content independent of the key."""
    bins = bins / (np.abs(bins) + 1e-12)  # PHAT: the content's spectrum does not matter
    x = np.zeros((T, T // 2 + 1), dtype=complex)
    p = mat.pilot
    x[mat.kr[p] % T, mat.kc[p]] = bins[p] * np.exp(-1j * mat.psi[p])
    z = np.fft.irfft2(x, s=(T, T)) * (T * T / 2.0) / math.sqrt(p.sum() / 2.0)
    return z, bins


def _peak(z: np.ndarray) -> tuple[float, tuple[float, float]]:
    """The highest z of a correlation surface and its sub-pixel (row, column) shift."""
    i = int(np.argmax(z))
    ty, tx = divmod(i, T)

    def vertex(a, b, c):  # parabolic peak offset, circular neighbours
        den = a - 2 * b + c
        return 0.0 if den >= 0 else 0.5 * (a - c) / den

    dy = vertex(z[(ty - 1) % T, tx], z[ty, tx], z[(ty + 1) % T, tx])
    dx = vertex(z[ty, (tx - 1) % T], z[ty, tx], z[ty, (tx + 1) % T])
    return float(z[ty, tx]), (ty + dy, tx + dx)


N_BANDS = 3  # radial bands in which the pilot measures how well the channel kept the mark
RHO_FLOOR = 0.05  # a band the pilot barely sees still votes a little (its estimate is noisy)


def _soft_bits(bins: np.ndarray, shift, mat: _Material) -> np.ndarray:
    """Soft coded bits at the found shift, each chip weighted by its band's reliability.

    The pilot is known, so its aligned projections measure, band by band, how much of the
    mark survived (compression and resampling hit some frequencies harder than others);
    weighting the data chips by rho / (1 - rho^2) of their band is maximal-ratio combining."""
    ty, tx = shift
    z = bins * np.exp(2j * math.pi * (mat.kr * ty + mat.kc * tx) / T) * np.exp(-1j * mat.psi)
    band = np.minimum((np.hypot(mat.kr, mat.kc) - T * BAND[0]) / (T * (BAND[1] - BAND[0]))
                      * N_BANDS, N_BANDS - 1).astype(np.int64)
    pilot = mat.pilot
    seen = np.bincount(band[pilot], weights=z[pilot].real, minlength=N_BANDS)
    count = np.maximum(np.bincount(band[pilot], minlength=N_BANDS), 1)
    rho = np.clip(seen / count, RHO_FLOOR, 0.95)
    weight = (rho / (1 - rho * rho))[band[~pilot]]
    if not weight.any():  # nothing measurable: fall back to equal weights
        weight = np.ones_like(weight)
    data = z[~pilot] * weight
    soft = np.zeros(ecc.N_CODED)
    np.add.at(soft, mat.chip_bit[:, 0], data.real)
    np.add.at(soft, mat.chip_bit[:, 1], data.imag)
    return soft


def _fold(residual: np.ndarray, basis: np.ndarray) -> np.ndarray:
    sums, counts = kernel("fold_tile")(residual, np.linalg.inv(basis) * T, T)
    filled = counts > 0
    tile = np.zeros((T, T))
    tile[filled] = sums[filled] / counts[filled]
    tile[filled] -= tile[filled].mean()
    return tile


# Every hypothesis the detector may try, fixed in advance so that stopping early at a decisive
# lattice never changes the p-value's meaning: the known periods upright and every candidate
# find_lattices may yield, each plain and mirrored, at every one of T x T shifts.
MAX_LATTICES = len(PERIODS) + MAX_CANDIDATES
MAX_HYPOTHESES = MAX_LATTICES * 2 * T * T


def detect_image(
    pixels: np.ndarray, key: WatermarkKey, threshold: float = P_THRESHOLD
) -> Detection:
    """Look for ``key``'s watermark in ``pixels`` under unknown crop, scale, rotation and flip."""
    image = _as_hwc(pixels)
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE // 2:  # a crop of half a marked picture is still looked at
        return Detection(False, 1.0, None, reason="too_small")
    mat = _material(key)
    d = max(1, int(round(min(h, w) / REF_SIDE)))
    luma = kernel("luma_down")(image, d)
    luma = np.ascontiguousarray(luma[: luma.shape[0] // 2 * 2, : luma.shape[1] // 2 * 2])
    residual = _residual(luma)
    search = _Search(residual, mat, threshold)
    # the periods the embedder uses, upright: an unedited or cropped picture needs no lattice
    # search at all. A crop is smaller than its original, whose period was at least this
    # size's own; smaller periods mean a rescale, which the finders handle.
    own = _period(h, w)
    periods = [p / d for p in PERIODS if p >= own and p / d <= 0.75 * min(luma.shape)]
    if not search.attempt([np.diag([p, p]) for p in periods]):
        for batch in find_lattices(residual, mat.kr, mat.kc, periods):
            if search.attempt(batch):
                break
    return search.result(d)


class _Search:
    """Fold and test lattices, keep the best, and say when one is decisive."""

    def __init__(self, residual: np.ndarray, mat: _Material, threshold: float) -> None:
        self.residual, self.mat, self.threshold = residual, mat, threshold
        self.tried: list[np.ndarray] = []
        self.best: tuple | None = None
        self.payload: tuple[int | None, np.ndarray | None] = (None, None)

    def attempt(self, bases: list[np.ndarray]) -> bool:
        """Test new lattices; True once a significant one decodes (its CRC holds)."""
        for basis in bases:
            if any(np.abs(basis - o).max() < 1.0 for o in self.tried):
                continue
            if len(self.tried) == MAX_LATTICES:  # the p-value would no longer be a bound
                raise RuntimeError("more lattices tried than MAX_HYPOTHESES counts")
            self.tried.append(basis)
            folded = _fold(self.residual, basis)
            for mirrored in (False, True):
                tile = np.roll(folded[:, ::-1], 1, axis=1) if mirrored else folded
                z, shift, bins = _pilot_correlation(tile, self.mat)
                if self.best is not None and z <= self.best[0]:
                    continue
                self.best = (z, shift, bins, basis, mirrored)
                if union_p_value(z, MAX_HYPOTHESES) <= self.threshold:
                    self.payload = ecc.decode(_soft_bits(bins, shift, self.mat))
                    if self.payload[0] is not None:
                        return True
        return False

    def result(self, d: int) -> Detection:
        z, shift, _, basis, mirrored = self.best
        p_value = union_p_value(z, MAX_HYPOTHESES)
        present = p_value <= self.threshold
        payload, confidence = self.payload if present else (None, None)
        geometry = {"basis": (basis * d).round(3).tolist(), "mirrored": mirrored,
                    "lattices_tried": len(self.tried),
                    "shift": [round(float(shift[0]), 2), round(float(shift[1]), 2)]}
        return Detection(present, p_value, payload, confidence, z, MAX_HYPOTHESES,
                         geometry=geometry)
