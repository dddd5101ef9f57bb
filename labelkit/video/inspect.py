"""What verify looks at in a video's frames: the visible label from the start, and the watermark.

One decoding pass over the opening seconds: the label is looked for about every 0.1 s of
presentation time until it disappears (its duration from the start is what GB 45438 measures),
and the Y planes of the first WATERMARK_SECONDS go to the watermark detector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import imaging
from ..errors import CorruptInput
from ..explicit.video import detect_frame_label, display_view
from ..limits import Limits
from ..policy import Policy
from ._av import av, ffmpeg_errors, open_input, video_info
from .frames import frame_planes, frame_seconds

__all__ = ["VideoInspection", "inspect_video", "WATERMARK_SECONDS", "LABEL_STEP_S"]

WATERMARK_SECONDS = 2.5  # the detector needs 2 s; a little more gives it margin
LABEL_STEP_S = 0.1  # how finely the label's duration is measured
MAX_LABEL_SECONDS = 30.0  # a label still showing past this is reported as "at least"


@dataclass
class VideoInspection:
    """The frames' findings, for the report."""

    width: int = 0
    height: int = 0
    rotation: int = 0
    fingerprint: bytes = b""
    visible: Any = None  # VisibleLabelDetection on the first frame
    visible_until: float | None = None  # presentation time the opening label ends at
    visible_capped: bool = False  # still showing at MAX_LABEL_SECONDS (or at the end)
    watermark: Any = None  # Detection
    frames_seen: int = 0
    notes: list[str] = field(default_factory=list)


def inspect_video(src: Any, source: str, limits: Limits, policy: Policy, *,
                  detect_visible: bool = True, watermark_key: Any = None) -> VideoInspection:
    """Decode the opening seconds of ``src`` (path or bytes) and look at the frames."""
    found = VideoInspection()
    luma: list[tuple[float, np.ndarray]] = []
    with ffmpeg_errors(source), open_input(src, source) as container:
        info = video_info(container, source, limits)
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(info.rate) if info.rate else None
        first_pts, index, next_check, last_t = None, 0, 0.0, 0.0
        looking = detect_visible
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                found.notes.append("a damaged packet was skipped")
                continue
            for frame in frames:
                if first_pts is None:
                    first_pts = frame.pts
                t = frame_seconds(frame, first_pts, index, rate)
                index += 1
                y = frame_planes(frame)[0]
                if y.dtype != np.uint8:
                    y = (y >> 2).astype(np.uint8)
                if index == 1:
                    found.rotation = int(frame.rotation or 0)
                    found.height, found.width = y.shape
                    found.fingerprint = imaging.fingerprint(
                        np.ascontiguousarray(display_view(y, found.rotation)))
                if looking and t >= next_check:
                    hit = detect_frame_label(y, policy.image, found.rotation, info.full_range)
                    if index == 1:
                        found.visible = hit
                        looking = hit.present
                    elif not hit.present:
                        found.visible_until, looking = t, False
                    next_check = t + LABEL_STEP_S
                    if looking and t >= MAX_LABEL_SECONDS:
                        found.visible_until, found.visible_capped, looking = t, True, False
                if watermark_key is not None and t < WATERMARK_SECONDS:
                    luma.append((t, np.array(y)))
                last_t = t
                if not looking and (watermark_key is None or t >= WATERMARK_SECONDS):
                    break
            else:
                continue
            break
        found.frames_seen = index
    if index == 0:
        raise CorruptInput("no video frame could be decoded", source=source)
    if looking:  # shown on every frame decoded: to the end of the video
        found.visible_until = last_t + (1.0 / rate if rate else 0.0)
        found.visible_capped = True
    if watermark_key is not None:
        from ..watermark.video import detect_video

        found.watermark = detect_video(luma, watermark_key)
    return found
