"""Invisible watermarks: keyed, robust, detected without the original (robustness.md)."""

from .detection import P_THRESHOLD, Detection, union_p_value
from .image import (
    DEFAULT_STRENGTH,
    MIN_SIDE,
    PROFILES,
    ImageStrength,
    WatermarkTooSmall,
    detect_image,
    embed_image,
)
from .keys import WatermarkKey
from .video import VideoMarker, detect_video

__all__ = [
    "DEFAULT_STRENGTH",
    "Detection",
    "ImageStrength",
    "MIN_SIDE",
    "PROFILES",
    "P_THRESHOLD",
    "VideoMarker",
    "WatermarkKey",
    "WatermarkTooSmall",
    "detect_image",
    "detect_video",
    "embed_image",
    "union_p_value",
]
