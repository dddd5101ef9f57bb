"""Pure numpy twins of the native kernels: same names, same signatures, bit-identical output."""

from __future__ import annotations

import numpy as np

__all__: list[str] = ["blend_mask"]


def _require(array: np.ndarray, name: str, ndim: int, writeable: bool = False) -> None:
    # The same refusals the typed memoryviews of the native kernels make, with the same types.
    if not isinstance(array, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, not {type(array).__name__}")
    if array.dtype != np.uint8:
        raise ValueError(f"{name} must be a uint8 array, not {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, not {array.ndim}")
    if not array.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous")
    if writeable and not array.flags.writeable:
        raise ValueError(f"{name} is read-only")


def blend_mask(
    image: np.ndarray, mask: np.ndarray, y0: int, x0: int, color: np.ndarray
) -> None:
    """Blend ``color`` into ``image`` (H, W, C) through ``mask`` placed at (y0, x0), clipped."""
    _require(image, "image", 3, writeable=True)
    _require(mask, "mask", 2)
    _require(color, "color", 1)
    height, width, channels = image.shape
    if color.shape[0] != channels:
        raise ValueError(f"color has {color.shape[0]} components, the image {channels} channels")
    y0, x0 = int(y0), int(x0)
    i_start, i_stop = max(0, -y0), min(mask.shape[0], height - y0)
    j_start, j_stop = max(0, -x0), min(mask.shape[1], width - x0)
    if i_start >= i_stop or j_start >= j_stop:
        return
    region = image[y0 + i_start : y0 + i_stop, x0 + j_start : x0 + j_stop]
    # uint16 is enough: t <= 255 * 255 + 128 and t + (t >> 8) < 65536, and it halves the traffic.
    a = mask[i_start:i_stop, j_start:j_stop, None].astype(np.uint16)
    t = region * (255 - a) + color.astype(np.uint16) * a + 128
    # round(t / 255) without a division, exact in this range (as in the native kernel)
    region[...] = (t + (t >> 8)) >> 8
