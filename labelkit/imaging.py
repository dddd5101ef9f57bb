"""Pixel access for the layers that change content: decode under limits, re-encode faithfully.

Only layers 1 and 2 (visible label, watermark) need pixels. Re-encoding keeps how the source
was coded: JPEG quantisation tables and subsampling (so quality does not drift), lossless WebP,
TIFF compression, every frame of an animation with its timing. Metadata (EXIF, ICC, XMP, IPTC,
text chunks, comments) is not handled here: the format handler carries the original's blocks
around the new essence (``Container.with_label(metadata_from=...)``).
"""

from __future__ import annotations

import io
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageSequence

from .errors import CorruptInput, LabelkitError, LimitExceeded
from .limits import DEFAULT_LIMITS, Limits

__all__ = ["FORMATS", "Decoded", "decode", "decode_first_frame", "encode", "fingerprint", "fingerprint_bytes", "hamming"]

_PIL_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "gif": "GIF", "tiff": "TIFF"}
FORMATS = tuple(_PIL_FORMAT)  # formats whose pixels labelkit can re-encode


@dataclass
class Decoded:
    """Frames as uint8 arrays (H, W, C) plus what re-encoding needs to stay faithful."""

    format: str
    frames: list[np.ndarray]
    mode: str  # Pillow mode of the arrays: "RGB", "RGBA" or "L"
    save_args: dict[str, Any] = field(default_factory=dict)
    durations: list[int] = field(default_factory=list)


@contextmanager
def _pillow(source: str, doing: str = "decode"):
    """Turn whatever Pillow raises on hostile input into a LabelkitError naming the file.

    Pillow's codecs raise almost anything on crafted files (KeyError, TypeError, RuntimeError,
    struct.error...), so everything but our own errors is mapped. Pillow's own bomb warning is
    silenced: labelkit enforces its configurable ``Limits`` instead of Pillow's global one.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    except LabelkitError:
        raise
    except Image.DecompressionBombError as exc:
        raise LimitExceeded(f"Pillow refuses to {doing} it: {exc}", source=source) from None
    except MemoryError:
        raise LimitExceeded(f"not enough memory to {doing} the image", source=source) from None
    except Exception as exc:  # noqa: BLE001 - see the docstring
        raise CorruptInput(f"cannot {doing} image: {type(exc).__name__}: {exc}",
                           source=source) from None


def _open(data: bytes, source: str, limits: Limits) -> Image.Image:
    with _pillow(source):
        im = Image.open(io.BytesIO(data))
    if im.width * im.height > limits.max_pixels:
        raise LimitExceeded(
            f"{im.width}x{im.height} pixels is over the limit of {limits.max_pixels}",
            source=source,
        )
    return im


def _check_budget(total: int, limits: Limits, source: str) -> None:
    if total > limits.max_decoded_bytes:
        raise LimitExceeded(
            f"decoding needs more than {limits.max_decoded_bytes} bytes of pixels "
            "(frames x width x height x channels)", source=source)


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
    with _pillow(source):
        if fmt == "jpeg":
            from PIL import JpegImagePlugin

            args["qtables"] = im.quantization
            sub = JpegImagePlugin.get_sampling(im)
            if sub >= 0:
                args["subsampling"] = sub
            if info.get("progressive") or info.get("progression"):
                args["progressive"] = True
        elif fmt == "png":
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
        total = 0
        for frame in ImageSequence.Iterator(im):
            if mode is None:
                mode = _array_mode(frame)
            # Budget checked before each frame is decoded: a tiny animated file can declare a
            # huge canvas and thousands of frames.
            total += frame.width * frame.height * len(mode)
            _check_budget(total, limits, source)
            frames.append(np.array(frame.convert(mode), dtype=np.uint8, order="C"))
            durations.append(int(frame.info.get("duration", 0) or 0))
        if len(frames) > 1:
            args["save_all"] = True
            args["loop"] = info.get("loop", 0)
    return Decoded(fmt, frames, mode or "RGB", args, durations)


def encode(decoded: Decoded, source: str = "<image>") -> bytes:
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
    with _pillow(source, "encode"):
        images[0].save(out, _PIL_FORMAT[decoded.format], **args)
    return out.getvalue()


def decode_first_frame(data: bytes, fmt: str, source: str, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """The first frame as a uint8 array (H, W, 3) or (H, W, 4), for detectors."""
    im = _open(data, source, limits)
    with _pillow(source):
        im.seek(0)
        mode = "RGBA" if _array_mode(im) == "RGBA" else "RGB"
        _check_budget(im.width * im.height * len(mode), limits, source)
        return np.asarray(im if im.mode == mode else im.convert(mode))  # no copy when RGB


def fingerprint(pixels: np.ndarray) -> bytes:
    """64-bit difference hash of the picture: stable under re-encoding, far for other content."""
    im = Image.fromarray(pixels if pixels.ndim == 2 or pixels.shape[2] != 4 else pixels[:, :, :3])
    small = np.asarray(im.convert("L").resize((9, 8), Image.Resampling.BOX), dtype=np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return np.packbits(bits).tobytes()


def fingerprint_bytes(data: bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Fingerprint of an encoded image's first frame (JPEG decodes at 1/8 scale: cheap)."""
    im = _open(data, source, limits)
    with _pillow(source):
        if im.format == "JPEG":
            im.draft("RGB", (max(1, im.width // 8), max(1, im.height // 8)))
        im.seek(0)
        return fingerprint(np.asarray(im.convert("RGB")))


def hamming(a: bytes, b: bytes) -> int:
    """Number of differing bits between two fingerprints."""
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()

