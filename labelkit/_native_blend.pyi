"""Type stubs for the compiled blend kernels (src_native/_native_blend.pyx)."""

import numpy as np
import numpy.typing as npt

__all__ = ["blend_mask"]

def blend_mask(
    image: npt.NDArray[np.uint8],
    mask: npt.NDArray[np.uint8],
    y0: int,
    x0: int,
    color: npt.NDArray[np.uint8],
) -> None:
    """Blend ``color`` into ``image`` (H, W, C) through ``mask`` placed at (y0, x0), clipped."""
