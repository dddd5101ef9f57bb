"""Invisible watermarks: keyed, robust, detected without the original (robustness.md)."""

from .detection import P_THRESHOLD, Detection, union_p_value
from .image import DEFAULT_STRENGTH, MIN_SIDE, WatermarkTooSmall, detect_image, embed_image
from .keys import WatermarkKey

__all__ = [
    "DEFAULT_STRENGTH",
    "Detection",
    "MIN_SIDE",
    "P_THRESHOLD",
    "WatermarkKey",
    "WatermarkTooSmall",
    "detect_image",
    "embed_image",
    "union_p_value",
]
