"""VideoWriter: frames in as a model generates them, a labeled video out (file or MP4 fragments).

Every frame is labeled in YUV as it arrives (visible label on the opening seconds, watermark on
all), encoded, and muxed. ``close()`` signs the finished essence and writes the file with its one
label. With ``on_chunk`` the writer also streams fragmented MP4 as it goes: first the init
segment (``ftyp`` + ``moov``) carrying the label, then one ``moof`` + ``mdat`` chunk per
fragment. The init segment leaves ReservedCode1 empty: it is sent before the content it would
sign exists. The file written at ``close()`` carries the signature.
"""

from __future__ import annotations

import io
import os
import struct
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .. import formats
from ..errors import LabelkitError, PolicyError
from ..fileio import atomic_write, map_input, release
from ..record import AIGCRecord, new_produce_id
from ._av import av
from .codecs import encoder_for
from .pipeline import _temp_beside, frame_labeler

if TYPE_CHECKING:
    from ..labeler import Labeler, LabelResult

__all__ = ["VideoWriter", "TIME_BASE"]

TIME_BASE = Fraction(1, 90000)  # MPEG's clock: exact for 24, 25, 30, 50, 60 and NTSC rates
_CONTAINERS = {"mp4": "mp4", "mov": "mov", "mkv": "matroska", "webm": "webm"}
_FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"


class _Fragments(io.RawIOBase):
    """A write-only sink that cuts the muxer's output into top-level MP4 boxes as they complete."""

    def __init__(self, on_init: Callable[[bytes], None], on_chunk: Callable[[bytes], None],
                 tee: Any = None) -> None:
        super().__init__()
        self.buffer = bytearray()
        self.pending = bytearray()  # boxes of the chunk being assembled (moof before its mdat)
        self.on_init, self.on_chunk, self.tee = on_init, on_chunk, tee
        self.init_done = False

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data) -> int:
        if self.tee is not None:
            self.tee.write(data)
        self.buffer += data
        while len(self.buffer) >= 8:
            size, kind = struct.unpack_from(">I4s", self.buffer)
            if size == 1:
                if len(self.buffer) < 16:
                    break
                size = struct.unpack_from(">Q", self.buffer, 8)[0]
            if size < 8 or len(self.buffer) < size:
                break
            box = bytes(self.buffer[:size])
            del self.buffer[:size]
            self.pending += box
            if not self.init_done and kind == b"moov":
                self.init_done = True
                self.on_init(bytes(self.pending))
                self.pending.clear()
            elif self.init_done and kind in (b"mdat", b"mfra"):
                self.on_chunk(bytes(self.pending))
                self.pending.clear()
        return len(data)

    def finish(self) -> None:
        """Hand on whatever the muxer wrote last."""
        rest = bytes(self.pending + self.buffer)
        if rest:
            self.on_chunk(rest)
        self.pending.clear()
        self.buffer.clear()


class VideoWriter:
    """Encode generated frames into a labeled video; use as a context manager or call close()."""

    def __init__(
        self,
        labeler: Labeler,
        dst: str | os.PathLike | None,
        *,
        width: int,
        height: int,
        fps: float | Fraction,
        codec: str = "h264",
        container: str = "mp4",
        pix_fmt: str = "yuv420p",
        produce_id: str | None = None,
        duration_s: float | None = None,
        on_chunk: Callable[[bytes], None] | None = None,
        durable: bool = True,
    ) -> None:
        if av is None:
            raise LabelkitError("video needs PyAV")
        if dst is None and on_chunk is None:
            raise PolicyError("give a destination file, an on_chunk callback, or both")
        if container not in _CONTAINERS:
            raise PolicyError(f"container {container!r} is not one of {sorted(_CONTAINERS)}")
        if on_chunk is not None and container != "mp4":
            raise PolicyError("streaming chunks are fragmented MP4: use container='mp4'")
        if width <= 0 or height <= 0 or width * height > labeler.limits.max_pixels:
            raise PolicyError(f"{width}x{height} is not a frame size labelkit writes")
        self.labeler, self.dst = labeler, None if dst is None else os.fspath(dst)
        self.durable, self.width, self.height = durable, width, height
        self.rate = Fraction(fps).limit_denominator(1001)
        if self.rate <= 0:
            raise PolicyError(f"fps must be positive, not {fps}")
        self.produce_id = produce_id or new_produce_id()
        self.frames = frame_labeler(labeler, width, height, self.produce_id, 0, pix_fmt, False,
                                    duration_s)
        self.index, self.last_pts, self.closed = 0, -1, False
        self.on_chunk = on_chunk
        self._tmp = _temp_beside(self.dst) if self.dst else None
        encoder = encoder_for(codec, container, "<generated>")
        options = {"movflags": _FRAGMENTED} if on_chunk is not None else {}
        try:
            if on_chunk is not None:
                self._file = open(self._tmp, "wb") if self._tmp else None
                self._sink = _Fragments(self._send_init, on_chunk, self._file)
                target: Any = self._sink
            else:
                self._file, self._sink, target = None, None, self._tmp
            self.out = av.open(target, "w", format=_CONTAINERS[container], options=options)
            self.stream = self.out.add_stream(encoder.name, rate=self.rate,
                                              options=encoder.options(labeler.policy.video))
            ctx = self.stream.codec_context
            ctx.width, ctx.height, ctx.pix_fmt = width, height, pix_fmt
            ctx.time_base = TIME_BASE
            self.stream.time_base = TIME_BASE
            if labeler.policy.video.threads:
                ctx.thread_count = labeler.policy.video.threads
        except BaseException:
            self._discard()
            raise
        self.pix_fmt = pix_fmt

    # -- frames in ------------------------------------------------------------------------------

    def write(self, frame: Any, t: float | None = None) -> None:
        """Label and encode one frame: RGB (H, W, 3) uint8, I420 (H*3/2, W) uint8 or a VideoFrame.

        ``t`` is its presentation time in seconds from the first frame (default: index / fps);
        times must increase."""
        if self.closed:
            raise LabelkitError("the writer is closed")
        t = self.index / float(self.rate) if t is None else float(t)
        pts = round(t / TIME_BASE)
        if pts <= self.last_pts:
            raise PolicyError(f"frame times must increase (got {t} s after a later frame)")
        vf = self._video_frame(frame)
        self.frames.label_frame(vf, t)
        vf.pts, vf.time_base = pts, TIME_BASE
        vf.pict_type = av.video.frame.PictureType.NONE
        for packet in self.stream.encode(vf):
            self.out.mux(packet)
        self.last_pts = pts
        self.index += 1

    def _video_frame(self, frame: Any) -> Any:
        if isinstance(frame, av.VideoFrame):
            vf = frame
        elif isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 3 \
                and frame.shape[2] == 3:
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format=self.pix_fmt)
        elif isinstance(frame, np.ndarray) and frame.dtype == np.uint8 and frame.ndim == 2 \
                and self.pix_fmt == "yuv420p" and frame.shape == (self.height * 3 // 2, self.width):
            vf = av.VideoFrame.from_ndarray(frame, format="yuv420p")
        else:
            raise LabelkitError(f"frames must be RGB uint8 (H, W, 3), I420 uint8 (H*3/2, W) or "
                                f"av.VideoFrame, not {getattr(frame, 'shape', type(frame))}")
        if (vf.width, vf.height) != (self.width, self.height):
            raise PolicyError(f"frame is {vf.width}x{vf.height}, the writer {self.width}x"
                              f"{self.height}")
        if vf.format.name != self.pix_fmt:
            vf = vf.reformat(format=self.pix_fmt)
        return vf

    # -- chunks and file out --------------------------------------------------------------------

    def _send_init(self, init: bytes) -> None:
        """Label the init segment (unsigned: the content does not exist yet) and send it."""
        container = formats.parse(init, "<init segment>", self.labeler.limits)
        record = self._unsigned_record()
        assert self.on_chunk is not None
        self.on_chunk(b"".join(container.label_parts(record.to_json())))

    def _unsigned_record(self) -> AIGCRecord:
        """The label before (or without) the finished file that a signature would cover."""
        return AIGCRecord(label="1", content_producer=self.labeler.producer,
                          produce_id=self.produce_id)

    def close(self) -> LabelResult:
        """Flush the encoder, sign the finished video and write it; returns what was done."""
        from ..labeler import LabelResult

        if self.closed:
            raise LabelkitError("the writer is already closed")
        self.closed = True
        mapped = None
        try:
            for packet in self.stream.encode(None):
                self.out.mux(packet)
            self.out.close()
            if self._sink is not None:
                self._sink.finish()
            if self._file is not None:
                self._file.close()
            if self.index == 0:
                raise PolicyError("no frame was written")
            layers: tuple[str, ...] = ("explicit",)
            if self.frames.watermark_payload is not None:
                layers = (*layers, "watermark")
            record = None
            if self.dst is not None:
                mapped = map_input(self._tmp, self.labeler.limits)
                new = formats.parse(mapped, self.dst, self.labeler.limits)
                record, layers = self.labeler._record(new, b"", self.produce_id,
                                                      (*layers, "metadata"))
                atomic_write(self.dst, new.label_parts(record.to_json()), durable=self.durable)
            else:
                record = self._unsigned_record()
                layers = (*layers, "metadata")
        finally:
            release(mapped)
            self._discard()
        result = LabelResult(b"", record, "mp4" if self.out.format.name in ("mp4", "mov")
                             else "matroska", layers, self.frames.visible, b"",
                             self.frames.watermark_payload,
                             tuple(self.frames.notes), path=self.dst)
        self.labeler._done(result, "apply", None, self.dst or "<video stream>", "video")
        return result

    def _discard(self) -> None:
        if getattr(self, "_file", None) is not None and not self._file.closed:
            self._file.close()
        if self._tmp:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.result = self.close()
        elif not self.closed:
            self.closed = True
            try:
                self.out.close()
            except Exception:  # noqa: BLE001 - the caller's exception is the one to see
                pass
            self._discard()
