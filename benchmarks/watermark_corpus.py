"""The pictures the watermark is judged on: the robustness set and the unmarked (null) corpus.

Robustness set (``suite_images``): real photos from scikit-image's wheel, fitted (centre crop to
the aspect, then Lanczos) to 512x512, 1920x1080 and portrait 1080x1920, and flat synthetic
"generated-looking" pictures at the same sizes. The photos are small (300-1400 px), so the 1080p
fits are upscaled and soft, as many generated pictures are. The synthetic pictures are smooth
almost everywhere (sky gradients, a plain wall, soft shapes, a studio backdrop, render noise of
half a level): the worst case for a texture-masked mark, both to hide and to find.

Null corpus (``null_item(i)``): unmarked items for the false-positive run, each built from its
index alone (a seeded generator), so a run can be split across processes or machines, resumed
from any index, and any single item rebuilt to look at it. Short sides are log-uniform over
192-1600 px (the detector looks from MIN_SIDE // 2). Items cycle through ``NULL_KINDS``:
photos at many sizes, random crops and rescales of them, rotated and flipped crops, synthetic
pictures, JPEG/WebP re-encodes, and pictures marked with ANOTHER key (a different key per item;
some of them attacked afterwards), which are unmarked for the key under test. The sources are
every file of ``skimage.data`` that Pillow opens (``NULL_SOURCES``), photos and non-photos alike
(text, a chessboard, a logo, a tiny GIF): periodic and synthetic content is where a lattice
finder is most likely to fool itself.

The generators use numpy's seeded ``default_rng``: reproducible with a given numpy, which is all a
benchmark needs (the watermark's own keyed material never uses numpy's streams).
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from labelkit.watermark import MIN_SIDE, WatermarkKey, embed_image

from . import watermark_attacks

__all__ = [
    "CORE_PHOTOS",
    "EXTRA_PHOTOS",
    "NULL_KINDS",
    "NULL_SOURCES",
    "SIZES",
    "SYNTHETIC_STYLES",
    "NullItem",
    "SuiteImage",
    "data_dir",
    "load_source",
    "null_item",
    "other_key",
    "photo",
    "suite_images",
    "synthetic",
]

SIZES: tuple[tuple[int, int], ...] = ((512, 512), (1920, 1080), (1080, 1920))  # (width, height)

CORE_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png")
"""The five colour photos the research prototype was measured on (its 97.5% is on these)."""

EXTRA_PHOTOS = ("hubble_deep_field.jpg", "retina.jpg", "ihc.png", "camera.png")
"""More real photos from the wheel: a dark star field, a fundus photo on black, a stained tissue
micrograph, and the grey cameraman (as three equal channels)."""

NULL_SOURCES = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png",
    "chessboard_GRAY.png", "chessboard_RGB.png", "clock_motion.png", "coffee.png", "coins.png",
    "color.png", "grass.png", "gravel.png", "horse.png", "hubble_deep_field.jpg", "ihc.png",
    "logo.png", "microaneurysms.png", "moon.png", "motorcycle_left.png", "motorcycle_right.png",
    "multipage.tif", "no_time_for_that_tiny.gif", "page.png", "phantom.png", "retina.jpg",
    "rocket.jpg", "text.png",
)
"""Every file of skimage.data (scikit-image 0.26) that Pillow opens; missing ones are skipped."""

SYNTHETIC_STYLES = ("sky", "wall", "shapes", "studio")

NULL_KINDS = (
    "photo", "crop", "synthetic", "reencoded",
    "other_key", "rotated", "other_key_synthetic", "other_key_attacked",
)

_SYNTH_SEED = 0x5717
_NULL_SEED = 0x9011
_NULL_SHORT_SIDE = (192, 1600)  # px; detect_image looks from MIN_SIDE // 2 = 192 px (MIN_SIDE 384)
_MAX_LONG_SIDE = 2400


@lru_cache(maxsize=1)
def data_dir() -> Path:
    """scikit-image's bundled data folder."""
    import skimage.data

    return Path(skimage.data.__file__).parent


def available(names) -> list[str]:
    """The files of ``names`` present in this scikit-image's data folder."""
    return [n for n in names if (data_dir() / n).is_file()]


@lru_cache(maxsize=64)
def load_source(name: str, frame: int = 0) -> tuple[np.ndarray, str]:
    """Frame ``frame`` of a bundled file as uint8 RGB (alpha over white) and its original mode."""
    with Image.open(data_dir() / name) as im:
        im.seek(frame % getattr(im, "n_frames", 1))
        mode = im.mode
        if "A" in im.getbands() or im.info.get("transparency") is not None:
            rgba = im.convert("RGBA")
            im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        rgb = np.array(im.convert("RGB"), dtype=np.uint8)
    rgb.setflags(write=False)
    return rgb, mode


def _frames(name: str) -> int:
    """How many frames a bundled file holds."""
    with Image.open(data_dir() / name) as im:
        return getattr(im, "n_frames", 1)


def photo(name: str, size: tuple[int, int]) -> np.ndarray:
    """A bundled photo fitted to ``size`` (width, height): centre crop to the aspect, Lanczos."""
    rgb, _ = load_source(name)
    return np.array(ImageOps.fit(Image.fromarray(rgb), size, Image.Resampling.LANCZOS),
                    dtype=np.uint8)


# ------------------------------------------------------------------------ synthetic pictures
def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Unit-variance noise smooth over ``cell`` px: bicubic upsampling of a coarse grid."""
    gh, gw = max(2, math.ceil(h / cell) + 1), max(2, math.ceil(w / cell) + 1)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    field = np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BICUBIC))
    return (field - field.mean()) / (field.std() + 1e-6)


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    """0 below edge0, 1 above edge1, a smooth cubic between (anti-aliased rendered edges)."""
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _rgb(rng, lo: float, hi: float) -> np.ndarray:
    """A random colour, each channel uniform in [lo, hi), as float32."""
    return rng.uniform(lo, hi, 3).astype(np.float32)


def _over(canvas: np.ndarray, colour, alpha: np.ndarray) -> None:
    """Paint ``colour`` over ``canvas`` with per-pixel ``alpha``, in place."""
    canvas += (np.asarray(colour, dtype=np.float32) - canvas) * alpha[..., None]


def _sky(rng, u, v, aa, canvas, h, w):
    """Sky gradient, a soft sun with its glow, two layers of smooth hills."""
    horizon, zenith = _rgb(rng, 150, 235), _rgb(rng, 40, 140)
    t = np.clip(v / v.max(), 0, 1) ** rng.uniform(0.7, 1.3)
    canvas[:] = zenith + (horizon - zenith) * t[..., None]
    su, sv = rng.uniform(0.2, 0.8) * u.max(), rng.uniform(0.12, 0.3) * v.max()
    sr = rng.uniform(0.04, 0.08)
    d = np.hypot(u - su, v - sv)
    _over(canvas, _rgb(rng, 235, 255), 0.5 * np.exp(-((d / (4 * sr)) ** 2)))
    _over(canvas, (255, 250, 235), 1 - _smoothstep(sr - aa, sr + aa, d))
    for layer, (base, amp) in enumerate(((0.62, 0.06), (0.78, 0.04))):
        ridge = (base * v.max() + amp * np.sin(u[0] * rng.uniform(4, 9) + rng.uniform(0, 6))
                 + 0.5 * amp * np.sin(u[0] * rng.uniform(13, 25) + rng.uniform(0, 6)))
        colour = _rgb(rng, 30, 120) * np.float32(1.0 - 0.25 * layer)
        fill = colour + 6 * _smooth_noise(rng, h, w, 0.05 * min(h, w))[..., None]
        alpha = _smoothstep(-aa, aa, v - ridge[None, :])
        canvas += (fill - canvas) * alpha[..., None]


def _wall(rng, u, v, aa, canvas, h, w):
    """A plain painted wall lit from one side, a floor, a soft shadow and a framed panel."""
    paint = _rgb(rng, 150, 225)
    light = 1 + np.float32(0.04 * rng.choice((-1, 1))) * (u / u.max() - 0.5)
    canvas[:] = paint * light[..., None]
    floor_at = rng.uniform(0.72, 0.85) * v.max()
    _over(canvas, _rgb(rng, 60, 130), _smoothstep(floor_at - aa, floor_at + aa, v))
    x0, x1 = sorted(rng.uniform(0.15, 0.85, 2) * u.max())
    x1 = max(x1, x0 + 0.2)
    y0, y1 = 0.2 * v.max(), min(floor_at - 0.1, 0.2 * v.max() + (x1 - x0) * rng.uniform(0.5, 1.0))
    inside = np.minimum.reduce([u - x0, x1 - u, v - y0, y1 - v])
    shadow = 0.18 * (1 - _smoothstep(-0.03, 0.03, np.minimum.reduce(
        [u - x0 - 0.02, x1 + 0.02 - u, v - y0 - 0.02, y1 + 0.02 - v])))
    _over(canvas, (0, 0, 0), shadow * (inside < 0))
    _over(canvas, _rgb(rng, 30, 90), _smoothstep(-aa, aa, inside))  # the frame
    panel = _rgb(rng, 120, 220)
    _over(canvas, panel, _smoothstep(-aa, aa, inside - 0.015))


def _shapes(rng, u, v, aa, canvas, h, w):
    """A pastel diagonal gradient with overlapping soft-edged blobs (flat illustration)."""
    a, b = _rgb(rng, 170, 240), _rgb(rng, 120, 220)
    t = np.clip((u + v) / (u.max() + v.max()), 0, 1)
    canvas[:] = a + (b - a) * t[..., None]
    for _ in range(int(rng.integers(3, 7))):
        cu, cv = rng.uniform(0, u.max()), rng.uniform(0, v.max())
        ru, rv = rng.uniform(0.06, 0.25, 2)
        theta = rng.uniform(0, math.pi)
        du, dv = u - cu, v - cv
        pu = (du * math.cos(theta) + dv * math.sin(theta)) / ru
        pv = (-du * math.sin(theta) + dv * math.cos(theta)) / rv
        r = np.sqrt(pu * pu + pv * pv)
        soft = rng.uniform(1.0, 6.0) * aa / min(ru, rv)
        opacity = rng.uniform(0.6, 1.0)
        _over(canvas, _rgb(rng, 60, 250), opacity * (1 - _smoothstep(1 - soft, 1 + soft, r)))


def _studio(rng, u, v, aa, canvas, h, w):
    """A product shot: vignetted backdrop, a shaded sphere and its soft contact shadow."""
    centre = (0.5 * u.max(), 0.45 * v.max())
    back = _rgb(rng, 140, 230)
    vignette = 1 - 0.35 * np.hypot(u - centre[0], v - centre[1]) ** 2
    canvas[:] = back * vignette[..., None]
    radius = rng.uniform(0.15, 0.28)
    cu, cv = centre[0] + rng.uniform(-0.1, 0.1), centre[1] + rng.uniform(-0.05, 0.08)
    shadow = np.hypot((u - cu) / (1.3 * radius), (v - cv - radius) / (0.25 * radius))
    _over(canvas, (0, 0, 0), 0.45 * np.exp(-shadow ** 2))
    du, dv = (u - cu) / radius, (v - cv) / radius
    r2 = du * du + dv * dv
    nz = np.sqrt(np.clip(1 - r2, 0, 1))
    lx, ly, lz = -0.4, -0.5, 0.77
    shade = np.clip(lx * du + ly * dv + lz * nz, 0, 1)
    body = _rgb(rng, 60, 220)
    sphere = body * (0.25 + 0.75 * shade[..., None]) + 120 * (shade[..., None] ** 40)
    alpha = 1 - _smoothstep(1 - aa / radius, 1 + aa / radius, np.sqrt(r2))
    canvas += (sphere - canvas) * alpha[..., None]


_STYLE_PAINTERS = {"sky": _sky, "wall": _wall, "shapes": _shapes, "studio": _studio}


def synthetic(width: int, height: int, seed: int, style: str | None = None) -> np.ndarray:
    """A flat 'generated-looking' uint8 RGB picture, deterministic (style from ``seed`` if None)."""
    style = SYNTHETIC_STYLES[seed % len(SYNTHETIC_STYLES)] if style is None else style
    rng = np.random.default_rng([_SYNTH_SEED, seed, width, height])
    side = min(width, height)
    v, u = np.mgrid[0:height, 0:width].astype(np.float32) / side  # short side = 1
    aa = 1.2 / side  # rendered edges ~2.4 px wide
    canvas = np.empty((height, width, 3), dtype=np.float32)
    _STYLE_PAINTERS[style](rng, u, v, aa, canvas, height, width)
    canvas += 0.5 * rng.standard_normal(canvas.shape, dtype=np.float32)  # faint render noise
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- robustness set
@dataclass(frozen=True)
class SuiteImage:
    """One picture of the robustness set, built on demand by ``pixels()``."""

    name: str  # e.g. "astronaut@1920x1080"
    cls: str  # "photo" or "synthetic"
    source: str  # photo file, or synthetic style
    size: tuple[int, int]  # (width, height)
    core: bool  # among the prototype's five photos or the synthetic set
    seed: int = 0

    def pixels(self) -> np.ndarray:
        """The picture, uint8 RGB (height, width, 3)."""
        if self.cls == "photo":
            return photo(self.source, self.size)
        return synthetic(self.size[0], self.size[1], self.seed, self.source)


def suite_images(photos=None, n_synthetic: int = len(SYNTHETIC_STYLES),
                 sizes=SIZES) -> list[SuiteImage]:
    """The robustness set: photos (default: core + extra ones bundled) and synthetic, all sizes."""
    photos = available(CORE_PHOTOS + EXTRA_PHOTOS) if photos is None else list(photos)
    out = []
    for name in photos:
        for size in sizes:
            out.append(SuiteImage(f"{Path(name).stem}@{size[0]}x{size[1]}", "photo", name,
                                  tuple(size), name in CORE_PHOTOS))
    for k in range(n_synthetic):
        style = SYNTHETIC_STYLES[k % len(SYNTHETIC_STYLES)]
        for size in sizes:
            out.append(SuiteImage(f"synth{k}-{style}@{size[0]}x{size[1]}", "synthetic", style,
                                  tuple(size), True, seed=100 + k))
    return out


# ------------------------------------------------------------------------------ null corpus
@dataclass(frozen=True)
class NullItem:
    """An unmarked item of the null corpus and how it was made."""

    index: int
    kind: str
    recipe: str
    pixels: np.ndarray


def other_key(index: int) -> WatermarkKey:
    """The foreign key item ``index`` is marked with (a different one per item)."""
    return WatermarkKey(hashlib.sha256(b"labelkit-bench other key %d" % index).digest())


def _short_side(rng) -> int:
    """A short side, log-uniform over _NULL_SHORT_SIDE."""
    lo, hi = _NULL_SHORT_SIDE
    return int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))


def _rescale(pixels: np.ndarray, short: int, max_long: int = _MAX_LONG_SIDE) -> np.ndarray:
    """Resize (bicubic) so the short side is ``short`` px, the long side at most ``max_long``."""
    h, w = pixels.shape[:2]
    k = min(short / min(h, w), max_long / max(h, w))
    size = (max(1, round(w * k)), max(1, round(h * k)))
    return np.array(Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC), dtype=np.uint8)


def _source(rng) -> tuple[np.ndarray, str, str]:
    """A random bundled file (random frame): pixels, original mode, and its description."""
    names = available(NULL_SOURCES)
    name = names[int(rng.integers(len(names)))]
    frames = _frames(name)
    frame = int(rng.integers(frames)) if frames > 1 else 0
    rgb, mode = load_source(name, frame)
    return rgb, mode, name + (f"[{frame}]" if frames > 1 else "")


def _random_crop(rng, pixels: np.ndarray) -> tuple[np.ndarray, str]:
    """A random window keeping 30-100% of each side (at least 48 px)."""
    h, w = pixels.shape[:2]
    ch = int(rng.integers(min(h, max(48, int(0.3 * h))), h + 1))
    cw = int(rng.integers(min(w, max(48, int(0.3 * w))), w + 1))
    y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return pixels[y0:y0 + ch, x0:x0 + cw], f"crop {cw}x{ch}+{x0}+{y0}"


def _photo_like(rng, crop_it: bool) -> tuple[np.ndarray, str]:
    """A bundled file, optionally cropped, rescaled to a random size (maybe mirrored)."""
    rgb, _, desc = _source(rng)
    if crop_it:
        rgb, how = _random_crop(rng, rgb)
        desc += " " + how
    out = _rescale(rgb, _short_side(rng))
    if rng.random() < 0.25:
        out, desc = out[:, ::-1], desc + " hflip"
    return np.ascontiguousarray(out), desc + f" -> {out.shape[1]}x{out.shape[0]}"


def _synthetic_item(rng) -> tuple[np.ndarray, str]:
    """A synthetic picture of a random style, size and aspect."""
    short = min(_short_side(rng), 1080)
    aspect = float(rng.choice((1.0, 4 / 3, 3 / 2, 16 / 9, 9 / 16, 3 / 4, 2 / 3)))
    w, h = (round(short * aspect), short) if aspect >= 1 else (short, round(short / aspect))
    seed = int(rng.integers(1 << 30))
    style = SYNTHETIC_STYLES[int(rng.integers(len(SYNTHETIC_STYLES)))]
    return synthetic(w, h, seed, style), f"synthetic {style} seed {seed} {w}x{h}"


def _reencode(rng, pixels: np.ndarray) -> tuple[np.ndarray, str]:
    """JPEG (quality 30-95) or WebP (40-90), once or twice."""
    desc = []
    for _ in range(1 if rng.random() < 0.7 else 2):
        if rng.random() < 0.7:
            q = int(rng.integers(30, 96))
            fmt = "JPEG"
        else:
            q = int(rng.integers(40, 91))
            fmt = "WEBP"
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, fmt, quality=q)
        with Image.open(io.BytesIO(buf.getvalue())) as im:
            pixels = np.array(im.convert("RGB"), dtype=np.uint8)
        desc.append(f"{fmt.lower()}{q}")
    return pixels, "+".join(desc)


def _mark_other(rng, index: int, pixels: np.ndarray) -> tuple[np.ndarray, str]:
    """Mark with item ``index``'s foreign key (random payload, strength 0.5-2), scaled up first
    if it is below MIN_SIDE."""
    desc = ""
    h, w = pixels.shape[:2]
    if min(h, w) < MIN_SIDE:
        if max(h, w) > 3 * min(h, w):  # too long to scale up within _MAX_LONG_SIDE: cut it
            pixels = pixels[: 3 * min(h, w), : 3 * min(h, w)]
        pixels = _rescale(pixels, int(rng.integers(MIN_SIDE, 2 * MIN_SIDE)))
        desc = f"-> {pixels.shape[1]}x{pixels.shape[0]}; "
    strength = float(rng.uniform(0.5, 2.0))
    payload = int(rng.integers(0, 1 << 63)) * 2 + int(rng.integers(0, 2))
    marked = embed_image(pixels, other_key(index), payload, strength=strength)
    return marked, desc + f"marked other key s={strength:.2f}"


def _rotated(rng, pixels: np.ndarray) -> tuple[np.ndarray, str]:
    """Rotate by -10..10 degrees (bicubic, black corners or cropped away)."""
    deg = float(rng.uniform(-10, 10))
    cut = bool(rng.random() < 0.5)
    return watermark_attacks.rotate(deg, cut)(pixels), f"rot{deg:+.1f}{' crop' if cut else ''}"


def null_item(index: int) -> NullItem:
    """Item ``index`` of the null corpus (unmarked for the key under test), deterministic."""
    rng = np.random.default_rng([_NULL_SEED, index])
    kind = NULL_KINDS[index % len(NULL_KINDS)]
    steps = []
    if kind in ("synthetic", "other_key_synthetic"):
        pixels, desc = _synthetic_item(rng)
    else:
        pixels, desc = _photo_like(rng, crop_it=kind != "photo" and rng.random() < 0.8)
    steps.append(desc)
    if kind == "rotated":
        pixels, desc = _rotated(rng, pixels)
        steps.append(desc)
    if kind.startswith("other_key"):
        pixels, desc = _mark_other(rng, index, pixels)
        steps.append(desc)
    if kind == "other_key_attacked":
        name = list(watermark_attacks.ATTACKS)[int(rng.integers(len(watermark_attacks.ATTACKS)))]
        pixels = watermark_attacks.attack(name)(pixels)
        steps.append(name)
    if kind == "reencoded" or (kind in ("crop", "rotated", "other_key") and rng.random() < 0.3):
        pixels, desc = _reencode(rng, pixels)
        steps.append(desc)
    if min(pixels.shape[:2]) < _NULL_SHORT_SIDE[0]:  # a rotated crop can fall below the floor
        pixels = _rescale(pixels, _NULL_SHORT_SIDE[0])
        steps.append(f"-> {pixels.shape[1]}x{pixels.shape[0]}")
    return NullItem(index, kind, "; ".join(steps), np.ascontiguousarray(pixels))
