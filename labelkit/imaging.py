"""Pixel access for the layers that change content: decode under limits, re-encode faithfully.

Only layers 1 and 2 (visible label, watermark) need pixels. Re-encoding keeps what the source
had: JPEG quantisation tables and subsampling (so quality does not drift), PNG text chunks, ICC
profile, EXIF, DPI, every frame of an animation with its timing, TIFF compression and tags. The
XMP packet is carried over by the format handler, not here.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageSequence, PngImagePlugin

from .errors import CorruptInput, LimitExceeded
from .limits import DEFAULT_LIMITS, Limits

__all__ = ["Decoded", "decode", "decode_first_frame", "encode", "fingerprint", "fingerprint_bytes", "hamming"]

_PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "tiff": "TIFF"}


@dataclass
class Decoded:
    """Frames as uint8 arrays (H, W, C) plus what re-encoding needs to stay faithful."""

    format: str
    frames: list[np.ndarray]
    mode: str  # Pillow mode of the arrays: "RGB", "RGBA" or "L"
    save_args: dict[str, Any] = field(default_factory=dict)
    durations: list[int] = field(default_factory=list)


def _open(data: bytes, source: str, limits: Limits) -> Image.Image:
    # Pillow's own bomb check is global state; the handler already checked the header against
    # our limit, so here we only turn Pillow's failures into our errors.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
            if im.width * im.height > limits.max_pixels:
                raise LimitExceeded(
                    f"{im.width}x{im.height} pixels is over the limit of {limits.max_pixels}",
                    source=source,
                )
            return im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise LimitExceeded(str(exc), source=source) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise CorruptInput(f"cannot decode image: {exc}", source=source) from None


def _array_mode(im: Image.Image) -> str:
    if im.mode in ("L", "RGB", "RGBA"):
        return im.mode
    if im.mode in ("LA", "PA") or "transparency" in im.info or im.mode.endswith("A"):
        return "RGBA"
    if im.mode in ("1", "I;16", "I", "F"):
        return "L"
    return "RGB"


def decode(data: bytes, fmt: str, source: str, limits: Limits = DEFAULT_LIMITS) -> Decoded:
    """Decode every frame of ``data`` to uint8 arrays, keeping what re-encoding needs."""
    im = _open(data, source, limits)
    info = im.info
    args: dict[str, Any] = {}
    for key in ("icc_profile", "exif", "dpi"):
        if info.get(key):
            args[key] = info[key]
    try:
        if fmt == "jpeg":
            from PIL import JpegImagePlugin

            args["qtables"] = im.quantization
            sub = JpegImagePlugin.get_sampling(im)
            if sub >= 0:
                args["subsampling"] = sub
            if info.get("progressive") or info.get("progression"):
                args["progressive"] = True
        elif fmt == "png":
            text = PngImagePlugin.PngInfo()
            for k, v in getattr(im, "text", {}).items():
                if k != "AIGC" and k != "XML:com.adobe.xmp":  # label carriers are rewritten
                    text.add_text(k, v)
            args["pnginfo"] = text
            args["optimize"] = False
        elif fmt == "webp":
            # Keep lossless files lossless; lossy ones get a high quality so the label is crisp.
            vp8, vp8l = data.find(b"VP8 ", 12), data.find(b"VP8L", 12)
            args["lossless"] = vp8l >= 0 and (vp8 < 0 or vp8l < vp8)
            args["quality"] = 100 if args["lossless"] else 95
        elif fmt == "tiff":
            comp = info.get("compression", "raw")
            args["compression"] = None if comp == "raw" else comp
        frames, durations = [], []
        mode = None
        for frame in ImageSequence.Iterator(im):
            if mode is None:
                mode = _array_mode(frame)
            frames.append(np.array(frame.convert(mode), dtype=np.uint8, order="C"))
            durations.append(int(frame.info.get("duration", 0) or 0))
            if len(frames) > 10_000:
                raise LimitExceeded("more than 10000 frames", source=source)
        if len(frames) > 1:
            args["save_all"] = True
            args["loop"] = info.get("loop", 0)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptInput(f"cannot decode image: {exc}", source=source) from None
    return Decoded(fmt, frames, mode or "RGB", args, durations)


def encode(decoded: Decoded) -> bytes:
    """Encode the (possibly modified) frames back in their format with the saved settings."""
    images = [Image.fromarray(f, decoded.mode) for f in decoded.frames]
    args = dict(decoded.save_args)
    if len(images) > 1:
        args["append_images"] = images[1:]
        if any(decoded.durations):
            args["duration"] = decoded.durations
    if decoded.format == "jpeg" and images[0].mode == "RGBA":
        images[0] = images[0].convert("RGB")
    out = io.BytesIO()
    images[0].save(out, _PIL_FORMAT[decoded.format], **args)
    return out.getvalue()


def decode_first_frame(data: bytes, fmt: str, source: str, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """The first frame as a uint8 array (H, W, 3) or (H, W, 4), for detectors."""
    im = _open(data, source, limits)
    try:
        im.seek(0)
        mode = "RGBA" if _array_mode(im) == "RGBA" else "RGB"
        return np.asarray(im if im.mode == mode else im.convert(mode))  # no copy when RGB
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptInput(f"cannot decode image: {exc}", source=source) from None


def fingerprint(pixels: np.ndarray) -> bytes:
    """64-bit difference hash of the picture: stable under re-encoding, far for other content."""
    im = Image.fromarray(pixels if pixels.ndim == 2 or pixels.shape[2] != 4 else pixels[:, :, :3])
    small = np.asarray(im.convert("L").resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return np.packbits(bits).tobytes()


def fingerprint_bytes(data: bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Fingerprint of an encoded image's first frame (JPEG decodes at 1/8 scale: cheap)."""
    im = _open(data, source, limits)
    try:
        if im.format == "JPEG":
            im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
        im.seek(0)
        return fingerprint(np.asarray(im.convert("RGB")))
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptInput(f"cannot decode image: {exc}", source=source) from None


def hamming(a: bytes, b: bytes) -> int:
    """Number of differing bits between two fingerprints."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()

