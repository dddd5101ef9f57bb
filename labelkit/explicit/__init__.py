"""Explicit (visible or audible) labels, GB 45438 ch. 5: the picture overlay for now."""

from __future__ import annotations

from .image import (
    VisibleLabel,
    VisibleLabelDetection,
    apply_image_label,
    detect_image_label,
    label_ink_height,
)

__all__ = [
    "VisibleLabel",
    "VisibleLabelDetection",
    "apply_image_label",
    "detect_image_label",
    "label_ink_height",
]
