"""Video: label files (re-encode in YUV or metadata only), frames for services, verification.

``Labeler.label_video`` and ``Labeler.frame_labeler`` are the entry points; ``VideoWriter``
takes generated frames and writes a labeled file or fragmented-MP4 chunks.
"""

from __future__ import annotations

__all__ = ["FrameLabeler", "VideoWriter"]


def __getattr__(name: str):
    # PyAV is imported only when video is used: pictures do not pay for it.
    if name == "FrameLabeler":
        from .frames import FrameLabeler

        return FrameLabeler
    if name == "VideoWriter":
        from .writer import VideoWriter

        return VideoWriter
    raise AttributeError(name)
