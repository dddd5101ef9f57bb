"""Labeling a video file: metadata only (no re-encode), or every layer (re-encode in YUV).

Both end the way a picture does: the format handler parses the finished file, its essence is
digested and signed, and ``label_parts`` writes exactly one label (carrying the original's
metadata over after a re-encode). Parts are written as slices of the mapped file: the media is
copied once, by the final write.
"""

from __future__ import annotations

import itertools
import os
import secrets
from typing import TYPE_CHECKING, Any, Callable

from .. import formats
from ..errors import LabelkitError, PolicyError
from ..fileio import atomic_write, map_input, release
from ..record import new_produce_id
from .frames import FrameLabeler
from .transcode import transcode

if TYPE_CHECKING:
    from ..labeler import Labeler, LabelResult

__all__ = ["label_video", "frame_labeler", "make_marker"]

_counter = itertools.count()


def _output_format(container: Any) -> str:
    """PyAV's muxer name for a re-encode that stays in the source's container."""
    if container.format == "mp4":
        return "mov" if getattr(container, "brand", "mp4") == "mov" else "mp4"
    return "webm" if getattr(container, "doctype", "matroska") == "webm" else "matroska"


def make_marker(labeler: Labeler, produce_id: str, width: int, height: int
                ) -> tuple[Any, int | None, list[str]]:
    """The watermark embedder for one video (None when the policy or the key rule it out)."""
    if not labeler.policy.watermark:
        return None, None, []
    if labeler.watermark_key is None:
        return None, None, ["watermark skipped: no secret key to derive it from"]
    from ..watermark import WatermarkTooSmall
    from ..watermark.video import VideoMarker

    payload = labeler.watermark_key.payload_for(produce_id)
    image = labeler.policy.image
    try:
        marker = VideoMarker(labeler.watermark_key, payload, width, height,
                             strength=image.watermark_strength, profile=image.watermark_profile)
    except WatermarkTooSmall as exc:
        return None, None, [f"watermark skipped: {exc.reason}"]
    return marker, payload, []


def frame_labeler(labeler: Labeler, width: int, height: int, produce_id: str, rotation: int,
                  pix_fmt: str, full_range: bool, duration_s: float | None,
                  explicit: bool = True) -> FrameLabeler:
    """A FrameLabeler for one video, with its ProduceID and watermark payload attached."""
    marker, payload, notes = make_marker(labeler, produce_id, width, height)
    return FrameLabeler(width, height, labeler.policy, marker=marker, rotation=rotation,
                        pix_fmt=pix_fmt, full_range=full_range, duration_s=duration_s,
                        explicit=explicit, produce_id=produce_id, watermark_payload=payload,
                        notes=tuple(notes))


def _temp_beside(dst: str) -> str:
    folder, name = os.path.split(os.path.abspath(dst))
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f".{name}.{os.getpid()}-{next(_counter)}-"
                                f"{secrets.token_hex(4)}.lk-tmp")


def label_video(labeler: Labeler, src: Any, dst: str | os.PathLike, mode: str,
                produce_id: str | None, source: str, durable: bool,
                progress: Callable[[int, int], None] | None) -> LabelResult:
    """Label the video ``src`` (path or bytes) into ``dst``; see Labeler.label_video."""
    from ..labeler import LabelResult

    limits = labeler.limits
    in_memory = isinstance(src, (bytes, bytearray, memoryview))
    data = bytes(src) if in_memory else map_input(src, limits)
    target = os.fspath(dst)
    try:
        original = formats.parse(data, source, limits)
        handler = formats.handlers()[original.format]
        if handler.MODALITY != "video" or getattr(original, "kind", "video") != "video":
            raise PolicyError(f"{original.format} file without video: not labeled as video",
                              source=source)
        produce_id = produce_id or new_produce_id()
        if mode != "apply":
            # Metadata only: the coded samples stay byte-identical, nothing is decoded.
            record, layers = labeler._record(original, b"", produce_id, ("metadata",))
            atomic_write(target, original.label_parts(record.to_json()), durable=durable)
            return LabelResult(b"", record, original.format, layers, path=target)
        return _label_reencoded(labeler, src if not in_memory else data, original, target,
                                produce_id, source, durable, progress)
    finally:
        release(data)


def _label_reencoded(labeler: Labeler, src: Any, original: Any, target: str, produce_id: str,
                     source: str, durable: bool, progress) -> LabelResult:
    from ..labeler import LabelResult

    limits = labeler.limits
    meta: dict[str, Any] = {}

    def make(info, rotation, pix_fmt):
        frames = frame_labeler(labeler, info.width, info.height, produce_id, rotation, pix_fmt,
                               info.full_range, info.duration_s or None)
        meta["frames"] = frames
        return frames

    tmp = _temp_beside(target)
    mapped = None
    try:
        done = transcode(src, tmp, _output_format(original), make, labeler.policy.video,
                         limits, source, progress)
        mapped = map_input(tmp, limits)
        new = formats.parse(mapped, source, limits)
        frames = meta["frames"]
        layers: tuple[str, ...] = ("explicit",)
        if frames.watermark_payload is not None:
            layers = (*layers, "watermark")
        record, layers = labeler._record(new, done.fingerprint, produce_id,
                                         (*layers, "metadata"))
        atomic_write(target, new.label_parts(record.to_json(), metadata_from=original),
                     durable=durable)
    except OSError as exc:
        raise LabelkitError(f"cannot write: {exc.strerror or exc}", source=target) from None
    finally:
        release(mapped)
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
    notes = (*frames.notes, *done.notes,
             f"visible label shown for {done.labelled_until:.2f} s from the start")
    return LabelResult(b"", record, new.format, layers, done.visible, done.fingerprint,
                       frames.watermark_payload, tuple(notes), path=target)
