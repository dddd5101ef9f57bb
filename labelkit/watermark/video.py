"""Video watermark: the image watermark in every frame's Y plane, its sign keyed over time.

Embedding: each frame carries the image tile of the frame's size (same payload, period and
SSIM-budgeted mask shape as embed_image, measured on the Y plane itself in place, never
through RGB), times a keyed sign per SEGMENT seconds of presentation time (so frame-rate
changes do not matter). The signs come in keyed pairs (+-) or (-+), so any whole second, and
any average over many seconds, cancels; a short raised-cosine ramp at each change of sign
avoids a one-frame flip.

Detection folds frames: frames are averaged in WINDOW-second windows (the mark is static in
position, the content moves), each window's residual is folded on a candidate lattice, and the
windows' band coefficients are combined in two ways chosen without the key: their plain sum
(an excerpt of one sign, or a static scene whose encoder kept the intra frame's mark) and
their principal component after removing the temporal mean (the sign pattern; a static
scene's content cancels). The keyed pilot tests each combination, its negation and its mirror
at every shift, and the p-value counts all of them (MAX_VIDEO_HYPOTHESES). Once the mark is
declared present, a payload that fails its CRC is read again from the windows weighted by the
pilot's own measure of each. Lattices: the embedder's periods, those of standard heights
rescaled (a 1080p upload served at 720p), then the image detector's search on the windows'
mean power spectrum.

Measured (tools/video_watermark_eval.py, tools/video_operating_points.py): the "invisible"
profile (SSIM >= 0.99 a frame) survives CRF 23, 30->24 fps, trimming and 80% crops but not
CRF 30/35 or 480p (66.7% of the suite): x264 keeps a mark that weak only in intra frames. The
"robust" profile (SSIM ~0.97-0.98, PSNR >= 41 dB) survives them (96.7-100%). Profile and
strength are one setting, the amplitude: robust at s behaves as invisible at 2s. The cost is
bitrate: a pattern fixed on screen while the content moves under it must be coded again in
every inter frame, so at CRF 18 the output grows 1.5-3.8x at invisible 1.0 and 2.2-7x at
robust 1.0 (camera pans are the worst case), and the encoder slows down as much. Changing the
sign less often does not change that; a mark the encoder's motion compensation can carry
would.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from .._impl import kernel
from ..errors import LimitExceeded
from ..limits import DEFAULT_LIMITS
from . import ecc
from .detection import P_THRESHOLD, Detection, union_p_value
from .image import (
    MIN_SIDE,
    PERIODS,
    PROFILES,
    REF_SIDE,
    STRENGTH,
    T,
    ImageStrength,
    WatermarkTooSmall,
    _band_bins,
    _dither,
    _fold,
    _gain,
    _in_window_fraction,
    _mask_from_stats,
    _material,
    _Material,
    _peak,
    _period,
    _pilot_surface,
    _residual,
    _soft_bits,
    _tile,
)
from .keys import WatermarkKey, keyed_uniform
from .lattice import MAX_CANDIDATES, find_lattices

__all__ = [
    "VideoMarker",
    "detect_video",
    "SEGMENT",
    "WINDOW",
    "DEFAULT_MAX_FRAMES",
    "MAX_VIDEO_HYPOTHESES",
]

SEGMENT = 0.5  # seconds of presentation time per keyed sign
RAMP = 0.1  # seconds of the raised-cosine crossfade centred on a sign change
WINDOW = 0.125  # seconds of frames averaged before folding (a quarter segment: few straddle)
DEFAULT_MAX_FRAMES = 150  # 5 s at 30 fps; "any 2 s suffices"
MAX_WINDOWS = 48
WORK_BYTES = 256 * 1024 * 1024  # window accumulators held at once

# Every hypothesis detect_video may try, fixed in advance (see image.MAX_HYPOTHESES): each
# lattice, plain and mirrored, two temporal combinations, each with either sign, every shift.
# Videos are resized between standard heights (a 1080p upload served at 720p or 480p): the
# embedder's period at each of these, rescaled to the height seen, is tried before any search.
STANDARD_HEIGHTS = (2160, 1440, 1080, 720, 576, 540, 480, 360)
MAX_LATTICES = len(PERIODS) + len(STANDARD_HEIGHTS) + MAX_CANDIDATES
N_COMBINATIONS = 2
MAX_VIDEO_HYPOTHESES = MAX_LATTICES * 2 * N_COMBINATIONS * 2 * T * T


def _profile(profile: ImageStrength | str) -> ImageStrength:
    if isinstance(profile, ImageStrength):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {sorted(PROFILES)}, not {profile!r}")
    return PROFILES[profile]


def _plane(luma: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Check a Y plane: 2-d uint8 with contiguous rows (any row stride), of ``shape``."""
    if not isinstance(luma, np.ndarray) or luma.dtype != np.uint8:
        raise TypeError("a Y plane must be a uint8 numpy array")
    if luma.ndim != 2:
        raise ValueError(f"a Y plane must be (H, W), not {luma.shape}")
    if luma.shape[1] > 1 and luma.strides[1] != 1:
        raise ValueError("the Y plane's rows must be contiguous (a plane view sliced by line_size)")
    if shape is not None and luma.shape != shape:
        raise ValueError(f"this marker is for {shape[1]}x{shape[0]} frames, not "
                         f"{luma.shape[1]}x{luma.shape[0]}")
    return luma


class VideoMarker:
    """Stateful per-video embedder: the tile, dither and mask geometry are made once."""

    def __init__(self, key: WatermarkKey, payload: int, width: int, height: int, *,
                 strength: float = 1.0, profile: ImageStrength | str = "invisible") -> None:
        if not isinstance(key, WatermarkKey):
            raise TypeError("key must be a WatermarkKey")
        width, height = int(width), int(height)
        if min(width, height) < MIN_SIDE:
            raise WatermarkTooSmall(
                f"{width}x{height} is too small for the watermark (needs {MIN_SIDE} px)")
        if width * height > DEFAULT_LIMITS.max_pixels:
            raise LimitExceeded(f"{width}x{height} frames exceed the pixel limit")
        if not 0 < strength <= 8:
            raise ValueError("strength must be in (0, 8]")
        self.key, self.payload = key, payload
        self.width, self.height = width, height
        self.strength = float(strength)
        self.profile = _profile(profile)
        self.period = _period(height, width)
        mat = _material(key)
        tile = _tile(mat, payload, self.period)
        # the tile's rows repeated to the frame's width once, so that each frame's rows are
        # one multiply-and-round pass (embed_plane)
        self._wide = np.ascontiguousarray(np.tile(tile, (1, -(-width // self.period)))[:, :width])
        self._fraction = max(_in_window_fraction(mat, self.period), self.profile.fraction_floor)
        # Blocks of 8 px (16 px from a 2048 px short side): the mask's filters then cost a fraction
        # of the image's (whose 4 px blocks took 3.4 ms of a 1080p frame), and an 8 x 8 block's
        # own variance is what SSIM's 7 x 7 window sees (measured on the clips of
        # tools/video_watermark_eval.py: SSIM >= 0.990 per frame, where the image's 3 x 3
        # block neighbourhood at this block size gave 0.985). The block statistics read one
        # pixel in (m / 4)^2, plenty for a variance.
        self._m = 8 * max(1, int(min(height, width) / 1024))
        self._step = max(1, self._m // 4)
        self._dither, self._offsets = _dither(height, width, 1, height * 100003 + width)
        self._signs: dict[int, int] = {}

    def _pair_flip(self, pair: int) -> bool:
        flip = self._signs.get(pair)
        if flip is None:
            if len(self._signs) > 4096:
                self._signs.clear()
            flip = int(keyed_uniform(self.key.secret, f"video/sign/{pair}", 1)[0] < 0.5)
            self._signs[pair] = flip
        return bool(flip)

    def sign(self, segment: int) -> int:
        """The keyed sign (+1 or -1) of a SEGMENT-second segment; each pair is +- or -+."""
        return -1 if (segment % 2 == 1) != self._pair_flip(segment // 2) else 1

    def amplitude(self, t: float) -> float:
        """The mark's signed amplitude at presentation time t: the segment's sign, crossfaded
        with a raised cosine over RAMP seconds around a change of sign."""
        k = math.floor(t / SEGMENT)
        here = self.sign(k)
        into = t - k * SEGMENT
        if k <= 0 and into < RAMP / 2:
            # Nothing precedes the first frame: a fade-in from the key's sign(-1) would leave
            # the opening key frame unmarked half the time, and an encoder that then skips the
            # static parts of the following frames (VP9 at its defaults does) copies that.
            return float(here)
        if into < RAMP / 2:
            before, after, u = self.sign(k - 1), here, (into + RAMP / 2) / RAMP
        elif into > SEGMENT - RAMP / 2:
            before, after, u = here, self.sign(k + 1), (into - SEGMENT + RAMP / 2) / RAMP
        else:
            return float(here)
        if before == after:
            return float(here)
        w = 0.5 - 0.5 * math.cos(math.pi * u)
        a = before * (1.0 - w) + after * w
        return 0.0 if abs(a) < 1e-9 else a  # at the crossing itself: no mark at all

    def mark(self, luma: np.ndarray, t: float) -> None:
        """Mark one frame's Y plane (H, W) uint8 in place (may be a strided view into an
        av.VideoFrame plane: rows have stride line_size); t = presentation time in seconds
        from the video's first frame."""
        _plane(luma, (self.height, self.width))
        if not luma.flags.writeable:
            raise ValueError("the Y plane is read-only")
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"presentation time must be finite, not {t}")
        a = self.amplitude(t)
        if a == 0.0:
            return
        mean, var = kernel("plane_stats")(luma, self._m, self._step)
        amp, local = _mask_from_stats(mean, var, self.height, self.width, self._m, self.profile,
                                      spread=False)
        # the gain is a mean over the frame: every other block is plenty (a third of the time)
        gain = _gain(amp[::2, ::2], local[::2, ::2], self._fraction, self.profile)
        amp = np.minimum(amp * gain, self.profile.ceiling)
        kernel("embed_plane")(luma, self._wide, amp, self._m, self.strength * a,
                              self._dither, self._offsets)


# -- detection ------------------------------------------------------------------------------


def _mirror_index(mat: _Material) -> np.ndarray:
    """For each band bin (kr, kc), the index of (-kr, kc): a horizontally mirrored tile's
    coefficient there is the conjugate of the original's at the index."""
    where = {(int(r), int(c)): i for i, (r, c) in enumerate(zip(mat.kr, mat.kc))}
    return np.array([where[(-int(r), int(c))] for r, c in zip(mat.kr, mat.kc)])


class _Windows:
    """Frames averaged per WINDOW seconds of presentation time, at the detector's scale."""

    def __init__(self, max_frames: int) -> None:
        self.max_frames = max_frames
        self.shape: tuple[int, int] | None = None
        self.d = 1
        self.t0 = 0.0
        self.sums: dict[int, np.ndarray] = {}
        self.counts: dict[int, int] = {}
        self.frames = self.skipped = 0
        self.max_windows = MAX_WINDOWS

    def add(self, t: float, luma: np.ndarray) -> bool:
        """Take one frame; False once enough frames are held."""
        luma = _plane(luma)
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"presentation time must be finite, not {t}")
        if self.shape is None:
            h, w = luma.shape
            if h * w > DEFAULT_LIMITS.max_pixels:
                raise LimitExceeded(f"{w}x{h} frames exceed the pixel limit")
            self.shape, self.t0 = (h, w), t
            self.d = max(1, int(round(min(h, w) / REF_SIDE)))
            work = (h // self.d) * (w // self.d) * 4
            self.max_windows = max(1, min(MAX_WINDOWS, WORK_BYTES // max(work, 1)))
        elif luma.shape != self.shape:  # a mid-stream size change: keep the first size's frames
            self.skipped += 1
            return self.skipped < self.max_frames
        k = math.floor((t - self.t0) / WINDOW)
        if k not in self.sums and len(self.sums) >= self.max_windows:
            return False  # as many windows as memory allows: enough to decide
        small = kernel("luma_down")(np.ascontiguousarray(luma)[:, :, None], self.d)
        if k in self.sums:
            self.sums[k] += small
            self.counts[k] += 1
        else:
            self.sums[k], self.counts[k] = small, 1
        self.frames += 1
        return self.frames < self.max_frames

    def residuals(self) -> list[np.ndarray]:
        """Each window's mean luma as the image detector's residual, in time order."""
        out = []
        for k in sorted(self.sums):
            mean = self.sums[k] / np.float32(self.counts[k])
            mean = mean[: mean.shape[0] // 2 * 2, : mean.shape[1] // 2 * 2]
            out.append(_residual(np.ascontiguousarray(mean, dtype=np.float32)))
        return out


def _power_proxy(residuals: list[np.ndarray]) -> np.ndarray:
    """A picture whose power spectrum is the windows' mean power spectrum.

    The lattice finders look only at |rfft2|^2, which does not care about the mark's sign: the
    windows' powers add the lines of every window whatever its sign. The zero-phase inverse
    transform of the root mean power has exactly that power spectrum."""
    shape = residuals[0].shape
    power = np.zeros((shape[0], shape[1] // 2 + 1))
    for r in residuals:
        spec = np.fft.rfft2(r)
        power += spec.real**2 + spec.imag**2
    return np.fft.irfft2(np.sqrt(power / len(residuals)), s=shape).astype(np.float32)


class _VideoSearch:
    """Fold every window on each lattice, combine them in time, test with the pilot."""

    def __init__(self, residuals: list[np.ndarray], mat: _Material, threshold: float) -> None:
        self.residuals, self.mat, self.threshold = residuals, mat, threshold
        self.mirror = _mirror_index(mat)
        self.tried: list[np.ndarray] = []
        self.best: tuple | None = None
        self.payload: tuple[int | None, np.ndarray | None] = (None, None)

    def _windows(self, basis: np.ndarray) -> np.ndarray:
        """Each window's band coefficients on this lattice, each bin in units of its RMS over
        the windows, so that no band dominates the principal component (key independent: the
        band is public)."""
        bins = np.stack([_band_bins(_fold(r, basis), self.mat) for r in self.residuals])
        return bins / (np.sqrt(np.mean(np.abs(bins) ** 2, axis=0)) + 1e-12)

    @staticmethod
    def _combinations(x: np.ndarray) -> list[tuple[str, np.ndarray]]:
        out = [("plain", x.sum(axis=0))]
        if len(x) >= 2:
            centred = x - x.mean(axis=0)
            gram = (centred @ centred.conj().T).real
            weights = np.linalg.eigh(gram)[1][:, -1]
            out.append(("principal", weights @ x))
        return out

    def _pilot_aided(self, x: np.ndarray, mirrored: bool, shift) -> np.ndarray:
        """The windows recombined with weights the pilot measures at the found shift (each
        window's signed share of the mark: maximal-ratio combining), for a second decoding.

        Used only after the pilot has declared the mark present: it reads the payload better
        when the key-independent combinations mixed in windows that lost the mark (x264 at a
        high CRF keeps it in intra frames); the CRC still decides."""
        mat = self.mat
        if mirrored:
            x = np.conj(x[:, self.mirror])
        ty, tx = shift
        p = mat.pilot
        ramp = np.exp(2j * math.pi * (mat.kr[p] * ty + mat.kc[p] * tx) / T - 1j * mat.psi[p])
        share = (x[:, p] * ramp).real.mean(axis=1)
        return share @ x

    def attempt(self, bases: list[np.ndarray]) -> bool:
        """Test new lattices; True once a significant one decodes (its CRC holds)."""
        for basis in bases:
            if any(np.abs(basis - o).max() < 1.0 for o in self.tried):
                continue
            if len(self.tried) == MAX_LATTICES:  # the p-value would no longer be a bound
                raise RuntimeError("more lattices tried than MAX_VIDEO_HYPOTHESES counts")
            self.tried.append(basis)
            x = self._windows(basis)
            found = []  # every combination, mirror and sign of this lattice, then best first
            for name, combined in self._combinations(x):
                for mirrored in (False, True):
                    coef = np.conj(combined[self.mirror]) if mirrored else combined
                    z, white = _pilot_surface(coef, self.mat)
                    for sign in (1, -1):
                        score, shift = _peak(z if sign > 0 else -z)
                        found.append((score, shift, mirrored, name, sign, sign * white))
            found.sort(key=lambda f: -f[0])
            if self.best is None or found[0][0] > self.best[0]:
                score, shift, mirrored, name, sign, _ = found[0]
                self.best = (score, shift, basis, mirrored, name, sign)
            for score, shift, mirrored, name, sign, bins in found:
                if union_p_value(score, MAX_VIDEO_HYPOTHESES) > self.threshold:
                    break
                payload = ecc.decode(_soft_bits(bins, shift, self.mat))
                if payload[0] is None and len(x) >= 2:
                    aided = _pilot_surface(self._pilot_aided(x, mirrored, shift), self.mat)[1]
                    payload = ecc.decode(_soft_bits(aided, shift, self.mat))
                if payload[0] is not None:
                    self.best = (score, shift, basis, mirrored, name, sign)
                    self.payload = payload
                    return True
        return False

    def result(self, d: int, extra: dict) -> Detection:
        """The Detection for the best hypothesis tried (geometry in full-size pixels)."""
        z, shift, basis, mirrored, name, sign = self.best
        p_value = union_p_value(z, MAX_VIDEO_HYPOTHESES)
        present = p_value <= self.threshold
        payload, confidence = self.payload if present else (None, None)
        geometry = {"basis": (basis * d).round(3).tolist(), "mirrored": mirrored,
                    "lattices_tried": len(self.tried), "combination": name, "sign": sign,
                    "shift": [round(float(shift[0]), 2), round(float(shift[1]), 2)], **extra}
        return Detection(present, p_value, payload, confidence, z, MAX_VIDEO_HYPOTHESES,
                         geometry=geometry)


def _known_periods(h: int, w: int, d: int, shape: tuple[int, int]) -> list[float]:
    """Tile periods (working pixels) worth trying before any search: the embedder's periods at
    this size or larger (crops keep the period), then the period a video of each standard
    height would carry, rescaled to this height (a resized upload)."""
    own = _period(h, w)
    top = 0.75 * min(shape)
    out = [p / d for p in PERIODS if p >= own and p / d <= top]
    short, long_ = min(h, w), max(h, w)
    for height in STANDARD_HEIGHTS:
        if height == short or height < MIN_SIDE:
            continue
        p = _period(height, round(height * long_ / short)) * short / height / d
        if p <= top and all(abs(p - q) >= 1.0 for q in out):
            out.append(p)
    return out


def detect_video(frames: Iterable[tuple[float, np.ndarray]], key: WatermarkKey, *,
                 threshold: float = P_THRESHOLD,
                 max_frames: int = DEFAULT_MAX_FRAMES) -> Detection:
    """Look for the mark in a sequence of (t seconds, Y plane) frames; any 2 s excerpt suffices."""
    if max_frames < 1:
        raise ValueError("max_frames must be >= 1")
    windows = _Windows(int(max_frames))
    for t, luma in frames:
        if not windows.add(t, luma):
            break
    if windows.shape is None:
        return Detection(False, 1.0, None, reason="no_frames")
    h, w = windows.shape
    if min(h, w) < MIN_SIDE // 2:  # a crop of half a marked frame is still looked at
        return Detection(False, 1.0, None, reason="too_small")
    mat = _material(key)
    residuals = windows.residuals()
    search = _VideoSearch(residuals, mat, threshold)
    d = windows.d
    shape = residuals[0].shape
    periods = _known_periods(h, w, d, shape)
    if not search.attempt([np.diag([p, p]) for p in periods]):
        proxy = _power_proxy(residuals)
        for batch in find_lattices(proxy, mat.kr, mat.kc, periods):
            if search.attempt(batch):
                break
    extra = {"frames": windows.frames, "windows": len(residuals),
             "frames_skipped": windows.skipped}
    return search.result(d, extra)
