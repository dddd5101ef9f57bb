"""The image attacks of /work/shared/spec/robustness.md, for the watermark evaluation harness.

Every attack maps a uint8 RGB array (H, W, 3) to a new uint8 RGB array, possibly of another size
(the resizes and crops) and always deterministic: the same input gives the same output, so two
runs of the suite, or one run split across processes, judge exactly the same pictures.

Choices the spec leaves open, made here once for every run:

- resampling is Pillow's bicubic (antialiased when it shrinks), as most editors and sites use;
- crops keep the aspect and put the window off-centre, at 30% of the horizontal slack and 70% of
  the vertical one, so neither the tile grid's origin nor the centre survives;
- rotations are counter-clockwise about the centre, the corners filled with black; the "crop"
  variants keep the largest centred window of the same aspect that holds no fill;
- brightness and contrast are Pillow's ImageEnhance (contrast pivots on the mean grey);
- noise is independent per channel, seeded from the attack and the picture's size;
- the text overlay is an opaque dark caption band, full width and 10% of the height (10% of the
  area), in the lower third, with white text in Pillow's default font.

``ATTACKS`` lists them in the spec's order (without the identity; ``attack("none")`` gives it).
"""

from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

Attack = Callable[[np.ndarray], np.ndarray]

__all__ = ["ATTACKS", "Attack", "attack", "attack_names"]

_CROP_OFFSET = (0.3, 0.7)  # fraction of the horizontal / vertical slack left of / above the window
_NOISE_SEED = 0x5EED


def _image(pixels: np.ndarray) -> Image.Image:
    """The Pillow image of an RGB array."""
    return Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))


def _array(image: Image.Image) -> np.ndarray:
    """The uint8 RGB array of a Pillow image of any mode."""
    return np.array(image.convert("RGB"), dtype=np.uint8)


def _reencode(fmt: str, quality: int) -> Attack:
    """Save in ``fmt`` at ``quality`` and decode again."""

    def run(pixels: np.ndarray) -> np.ndarray:
        """Lossy re-encoding."""
        buf = io.BytesIO()
        _image(pixels).save(buf, fmt, quality=quality)
        with Image.open(io.BytesIO(buf.getvalue())) as decoded:
            return _array(decoded)

    return run


def jpeg(quality: int) -> Attack:
    """JPEG at ``quality`` (Pillow's default 4:2:0 chroma subsampling)."""
    return _reencode("JPEG", quality)


def webp(quality: int) -> Attack:
    """Lossy WebP at ``quality``."""
    return _reencode("WEBP", quality)


def resize(fx: float, fy: float | None = None, back: bool = False) -> Attack:
    """Scale width by ``fx``, height by ``fy`` (default ``fx``); ``back``: then restore the size."""
    fy = fx if fy is None else fy

    def run(pixels: np.ndarray) -> np.ndarray:
        """Bicubic resize."""
        h, w = pixels.shape[:2]
        scaled = _image(pixels).resize((max(1, round(w * fx)), max(1, round(h * fy))),
                                       Image.Resampling.BICUBIC)
        if back:
            scaled = scaled.resize((w, h), Image.Resampling.BICUBIC)
        return _array(scaled)

    return run


def crop(area: float, offset: tuple[float, float] = _CROP_OFFSET) -> Attack:
    """Keep ``area`` of the picture (same aspect), the window at ``offset`` (fractions of slack)."""
    side = math.sqrt(area)

    def run(pixels: np.ndarray) -> np.ndarray:
        """Off-centre crop."""
        h, w = pixels.shape[:2]
        cw, ch = round(w * side), round(h * side)
        x0, y0 = round((w - cw) * offset[0]), round((h - ch) * offset[1])
        return pixels[y0:y0 + ch, x0:x0 + cw].copy()

    return run


def _inner_window(w: int, h: int, degrees: float) -> tuple[int, int, int, int]:
    """The largest centred window of aspect w:h inside a w x h frame rotated by ``degrees``."""
    t = math.radians(abs(degrees))
    c, s = math.cos(t), math.sin(t)
    k = min(w / (w * c + h * s), h / (w * s + h * c))
    cw, ch = int(w * k), int(h * k)
    return (w - cw) // 2, (h - ch) // 2, cw, ch


def rotate(degrees: float, crop_borders: bool) -> Attack:
    """Rotate by ``degrees`` about the centre; ``crop_borders``: cut the black corners away."""

    def run(pixels: np.ndarray) -> np.ndarray:
        """Bicubic rotation, same frame."""
        out = _array(_image(pixels).rotate(degrees, resample=Image.Resampling.BICUBIC,
                                           expand=False, fillcolor=(0, 0, 0)))
        if crop_borders:
            h, w = pixels.shape[:2]
            x0, y0, cw, ch = _inner_window(w, h, degrees)
            out = out[y0:y0 + ch, x0:x0 + cw].copy()
        return out

    return run


def hflip(pixels: np.ndarray) -> np.ndarray:
    """Mirror left to right."""
    return pixels[:, ::-1].copy()


def brightness(factor: float) -> Attack:
    """Multiply the brightness by ``factor`` (Pillow ImageEnhance.Brightness)."""
    return lambda pixels: _array(ImageEnhance.Brightness(_image(pixels)).enhance(factor))


def contrast(factor: float) -> Attack:
    """Scale the contrast about the mean grey by ``factor`` (Pillow ImageEnhance.Contrast)."""
    return lambda pixels: _array(ImageEnhance.Contrast(_image(pixels)).enhance(factor))


def gamma(g: float) -> Attack:
    """Apply out = 255 (in / 255) ** g to every channel."""
    lut = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** g), 0, 255).astype(np.uint8)
    return lambda pixels: lut[pixels]


def noise(sigma: float) -> Attack:
    """Add white Gaussian noise of standard deviation ``sigma`` levels, clipped and rounded."""

    def run(pixels: np.ndarray) -> np.ndarray:
        """Seeded Gaussian noise."""
        h, w = pixels.shape[:2]
        rng = np.random.default_rng([_NOISE_SEED, round(sigma * 1000), h, w])
        noisy = pixels.astype(np.float32) + rng.normal(0.0, sigma, pixels.shape).astype(np.float32)
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)

    return run


def blur(sigma: float) -> Attack:
    """Gaussian blur of standard deviation ``sigma`` px (Pillow GaussianBlur)."""
    return lambda pixels: _array(_image(pixels).filter(ImageFilter.GaussianBlur(sigma)))


def median(size: int) -> Attack:
    """Median filter over a ``size`` x ``size`` window, per channel."""
    return lambda pixels: _array(_image(pixels).filter(ImageFilter.MedianFilter(size)))


def grayscale(pixels: np.ndarray) -> np.ndarray:
    """Convert to grey (ITU-R 601 luma) and back to three equal channels."""
    return _array(_image(pixels).convert("L"))


def text_overlay(area: float = 0.10) -> Attack:
    """An opaque caption band with white text covering ``area`` of the picture, lower third."""

    def run(pixels: np.ndarray) -> np.ndarray:
        """Caption band."""
        image = _image(pixels).convert("RGB")
        w, h = image.size
        band = max(1, round(h * area))
        y0 = round(h * 0.72)
        draw = ImageDraw.Draw(image)
        draw.rectangle((0, y0, w - 1, y0 + band - 1), fill=(24, 24, 24))
        font = ImageFont.load_default(size=max(8, round(band * 0.6)))
        draw.text((round(w * 0.03), y0 + band // 2), "Generated by AI - labelkit 2025",
                  fill=(250, 250, 250), font=font, anchor="lm")
        return _array(image)

    return run


def chain(*steps: Attack) -> Attack:
    """Apply ``steps`` in order."""

    def run(pixels: np.ndarray) -> np.ndarray:
        """Chained attacks."""
        for step in steps:
            pixels = step(pixels)
        return pixels

    return run


def identity(pixels: np.ndarray) -> np.ndarray:
    """No attack (a copy)."""
    return pixels.copy()


ATTACKS: dict[str, Attack] = {
    "jpeg90": jpeg(90),
    "jpeg75": jpeg(75),
    "jpeg50": jpeg(50),
    "webp80": webp(80),
    "webp60": webp(60),
    "resize0.5_back": resize(0.5, back=True),
    "down0.75": resize(0.75),
    "down0.5": resize(0.5),
    "up1.5": resize(1.5),
    "crop90": crop(0.90),
    "crop70": crop(0.70),
    "crop50": crop(0.50),
    "aspect_w0.8": resize(0.8, 1.0),
    "rot1": rotate(1, False),
    "rot2": rotate(2, False),
    "rot1_crop": rotate(1, True),
    "rot2_crop": rotate(2, True),
    "hflip": hflip,
    "bright1.2": brightness(1.2),
    "bright0.8": brightness(0.8),
    "contrast0.7": contrast(0.7),
    "contrast1.3": contrast(1.3),
    "gamma0.8": gamma(0.8),
    "noise5": noise(5),
    "noise10": noise(10),
    "blur1": blur(1.0),
    "median3": median(3),
    "grayscale": grayscale,
    "text10": text_overlay(0.10),
    "chain_crop80_r0.7_j75": chain(crop(0.80, (0.6, 0.25)), resize(0.7), jpeg(75)),
}


def attack_names(with_none: bool = True) -> list[str]:
    """The attack names in the spec's order, "none" first if ``with_none``."""
    return (["none"] if with_none else []) + list(ATTACKS)


def attack(name: str) -> Attack:
    """The attack called ``name`` ("none" is the identity); KeyError names the known ones."""
    if name == "none":
        return identity
    try:
        return ATTACKS[name]
    except KeyError:
        raise KeyError(f"unknown attack {name!r}; known: {', '.join(attack_names())}") from None
