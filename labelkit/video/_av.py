"""Opening media with PyAV under labelkit's limits, with FFmpeg's errors named for users."""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterator

from ..errors import CorruptInput, LabelkitError, LimitExceeded, UnsupportedFormat
from ..limits import Limits

__all__ = ["ffmpeg_errors", "open_input", "VideoInfo", "video_info"]

try:  # optional at import time: images work without PyAV
    import av
except ImportError as exc:  # pragma: no cover - the dependency is declared
    av = None
    _MISSING = str(exc)


@contextmanager
def ffmpeg_errors(source: str, doing: str = "decode", what: str = "video") -> Iterator[None]:
    """Turn FFmpeg's errors (and PyAV's) on hostile input into a LabelkitError naming the file
    and what was being done to what ("cannot decode audio: ...")."""
    try:
        yield
    except LabelkitError:
        raise
    except MemoryError:
        raise LimitExceeded(f"not enough memory to {doing} the {what}", source=source) from None
    except Exception as exc:  # noqa: BLE001 - FFmpeg maps every failure to some OSError/ValueError
        if av is not None and isinstance(exc, av.error.FFmpegError):
            raise CorruptInput(f"cannot {doing} {what}: {exc.strerror or exc}",
                               source=source) from None
        if isinstance(exc, (OSError, ValueError, EOFError, IndexError, KeyError, TypeError)):
            raise CorruptInput(f"cannot {doing} {what}: {type(exc).__name__}: {exc}",
                               source=source) from None
        raise


class _BufferFile(io.RawIOBase):
    """A read-only, seekable file over a buffer (a mapped file), without copying it."""

    def __init__(self, buffer: Any) -> None:
        super().__init__()
        self.view = memoryview(buffer).cast("B")
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, out) -> int:
        n = max(0, min(len(out), len(self.view) - self.pos))
        out[:n] = self.view[self.pos : self.pos + n]
        self.pos += n
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: len(self.view)}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        self.view.release()
        super().close()


def open_input(data: Any, source: str, what: str = "video") -> Any:
    """An av.InputContainer over a path or a bytes-like buffer (not copied)."""
    if av is None:
        raise UnsupportedFormat(f"{what} needs PyAV: {_MISSING}", source=source)
    if isinstance(data, (str, os.PathLike)):
        target = data
    elif isinstance(data, bytes):
        target = io.BytesIO(data)  # shares the bytes until written to, which it never is
    else:
        target = _BufferFile(data)
    with ffmpeg_errors(source, "open", what):
        # Don't let FFmpeg probe forever on junk, nor open other files or URLs a crafted
        # playlist could name (only the given input is read).
        return av.open(target, "r", options={"protocol_whitelist": "file,pipe"})


_AVCOL_RANGE_JPEG = 2  # FFmpeg's AVColorRange for full-range ("JPEG") video


@dataclass(frozen=True)
class VideoInfo:
    """What labeling needs to know about a file's first video stream."""

    width: int
    height: int
    codec: str
    pix_fmt: str
    rate: Fraction | None
    time_base: Fraction
    duration_s: float  # 0 when the container does not say
    full_range: bool


def video_info(container: Any, source: str, limits: Limits) -> VideoInfo:
    """Check the first video stream against the limits and describe it."""
    if not container.streams.video:
        raise UnsupportedFormat("no video stream", source=source)
    stream = container.streams.video[0]
    ctx = stream.codec_context
    width, height = ctx.width, ctx.height
    if width <= 0 or height <= 0:
        raise CorruptInput(f"video stream declares {width}x{height} pixels", source=source)
    if width * height > limits.max_pixels:
        raise LimitExceeded(f"video frames of {width}x{height} pixels are over the limit of "
                            f"{limits.max_pixels}", source=source)
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    if duration > limits.max_duration_s:
        raise LimitExceeded(f"video declares {duration:.0f} s, over the limit of "
                            f"{limits.max_duration_s:.0f} s", source=source)
    if stream.frames and stream.frames > limits.max_frames:
        raise LimitExceeded(f"video declares {stream.frames} frames, over the limit of "
                            f"{limits.max_frames}", source=source)
    rate = stream.average_rate or stream.guessed_rate
    pix_fmt = ctx.pix_fmt or "yuv420p"
    full_range = pix_fmt.startswith("yuvj") or int(ctx.color_range or 0) == _AVCOL_RANGE_JPEG
    return VideoInfo(width, height, ctx.name, pix_fmt, Fraction(rate) if rate else None,
                     Fraction(stream.time_base), duration, full_range)
