"""Per-frame labeling in YUV: the visible label where the policy puts it, the watermark on all.

``FrameLabeler`` is what services that run their own encoder call per frame, and what the
transcoder and the writer call underneath. Frames stay in YUV: the label is blended into Y, U
and V, the watermark into Y. RGB arrays are accepted when the caller has only RGB.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import LabelkitError, PolicyError
from ..explicit.video import VideoOverlay, display_view
from ..policy import Policy
from .codecs import chroma_subsampling

__all__ = ["FrameLabeler", "frame_planes", "frame_seconds"]

_LUMA = (77, 150, 29)  # BT.601 integer weights, sum 256


def frame_planes(frame: Any) -> list[np.ndarray]:
    """Writable numpy views of an av.VideoFrame's planes (made private to this frame first).

    A decoder may still hold a decoded frame's buffer as a reference picture; make_writable
    copies it only then, so that labeling never corrupts the frames decoded after it."""
    frame.make_writable()
    wide = frame.format.name.endswith("10le")
    views = []
    for plane in frame.planes:
        dtype, step = (np.uint16, 2) if wide else (np.uint8, 1)
        rows = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // step)
        views.append(rows[:, : plane.width])
    return views


def frame_seconds(frame: Any, first_pts: int | None, index: int, rate: float | None) -> float:
    """Presentation time of a decoded frame from the first frame, from timestamps when present."""
    if frame.pts is not None and frame.time_base is not None and first_pts is not None:
        return float((frame.pts - first_pts) * frame.time_base)
    if rate:
        return index / rate
    raise LabelkitError("frames carry no timestamps and the stream declares no frame rate")


class FrameLabeler:
    """Labels the frames of one video, given in presentation order with their times."""

    def __init__(
        self,
        width: int,
        height: int,
        policy: Policy,
        *,
        marker: Any = None,
        rotation: int = 0,
        pix_fmt: str = "yuv420p",
        full_range: bool = False,
        duration_s: float | None = None,
        explicit: bool = True,
        produce_id: str = "",
        watermark_payload: int | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        self.policy = policy
        # What the metadata label written for these frames must carry.
        self.produce_id = produce_id
        self.watermark_payload = watermark_payload
        self.notes = notes  # layers asked for but not applied (e.g. the frame is too small)
        self.chroma = chroma_subsampling(pix_fmt)
        self.wide = pix_fmt.endswith("10le")
        self.overlay = (VideoOverlay(width, height, policy.image, rotation=rotation,
                                     chroma=self.chroma, full_range=full_range)
                        if explicit else None)
        if explicit and policy.video.placement == "start+end" and not duration_s:
            raise PolicyError("a label at the end needs the video's duration up front")
        self.duration_s = duration_s
        self.marker = marker
        self.rotation = rotation
        self.labelled_until = 0.0  # end of the last frame that carried the visible label
        self.frames = 0
        self.visible = None

    def shows_label(self, t: float) -> bool:
        """Whether the frame presented at ``t`` seconds carries the visible label."""
        if self.overlay is None:
            return False
        video = self.policy.video
        if video.placement == "throughout" or t < video.duration_s:
            return True
        return (video.placement == "start+end" and self.duration_s is not None
                and t >= self.duration_s - video.duration_s)

    def touches(self, t: float) -> bool:
        """Whether the frame at ``t`` changes at all (else it may be encoded as decoded)."""
        return self.marker is not None or self.shows_label(t)

    def label_planes(self, y: np.ndarray, u: np.ndarray | None, v: np.ndarray | None,
                     t: float) -> bool:
        """Label one frame's planes in place (stored orientation); True if the label was drawn."""
        drawn = self.shows_label(t)
        if self.wide:
            self._label_wide(y, u, v, t, drawn)
        else:
            if drawn:
                self.visible = self.overlay.apply(y, u, v)  # type: ignore[union-attr]
            if self.marker is not None:
                self.marker.mark(y, t)
        self.frames += 1
        return drawn

    def _label_wide(self, y, u, v, t, drawn) -> None:
        """10-bit planes: label and mark an 8-bit proxy, then carry the change back at 10 bits."""
        y8 = (y >> 2).astype(np.uint8)
        before = y8.copy()
        u8 = (u >> 2).astype(np.uint8) if u is not None else None
        v8 = (v >> 2).astype(np.uint8) if v is not None else None
        if drawn:
            ub, vb = (None if p is None else p.copy() for p in (u8, v8))
            self.visible = self.overlay.apply(y8, u8, v8)  # type: ignore[union-attr]
            for wide, new, old in ((u, u8, ub), (v, v8, vb)):
                if wide is not None:
                    changed = new != old
                    wide[changed] = new[changed].astype(np.uint16) << 2
        if self.marker is not None:
            self.marker.mark(y8, t)
        changed = y8 != before
        delta = (y8.astype(np.int32) - before) * 4
        y[changed] = np.clip(y[changed] + delta[changed], 0, 1023).astype(np.uint16)

    def label_frame(self, frame: Any, t: float) -> Any:
        """Label an av.VideoFrame (planar YUV) or an RGB uint8 array (H, W, 3), in place.

        Returns the frame for convenience. RGB is labeled through its luma: the watermark's
        change of Y is added to R, G and B alike, which changes Y by the same amount."""
        if isinstance(frame, np.ndarray):
            return self._label_rgb(frame, t)
        planes = frame_planes(frame)
        self.label_planes(planes[0], *(planes[1:3] if len(planes) >= 3 else (None, None)), t)
        return frame

    def _label_rgb(self, rgb: np.ndarray, t: float) -> np.ndarray:
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise LabelkitError(f"RGB frames must be uint8 (H, W, 3), not {rgb.dtype} {rgb.shape}")
        if not rgb.flags.writeable:
            raise LabelkitError("the RGB frame is read-only; pass a writable copy")
        drawn = self.shows_label(t)
        if drawn:
            from ..explicit.image import apply_image_label

            view = display_view(rgb, self.rotation)
            if view.flags.c_contiguous:
                self.visible = apply_image_label(view, self.policy.image)
            else:
                turned = np.ascontiguousarray(view)
                self.visible = apply_image_label(turned, self.policy.image)
                view[...] = turned
        if self.marker is not None:
            w = np.asarray(_LUMA, np.uint16)
            luma = ((rgb.astype(np.uint16) @ w + 128) >> 8).astype(np.uint8)
            before = luma.copy()
            self.marker.mark(luma, t)
            delta = luma.astype(np.int16) - before
            rgb[...] = np.clip(rgb + delta[:, :, None], 0, 255).astype(np.uint8)
        self.frames += 1
        return rgb
