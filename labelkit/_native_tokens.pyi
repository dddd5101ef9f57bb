"""Type stubs for the compiled token kernels (src_native/_native_tokens.pyx, green_list.h)."""

import numpy as np
import numpy.typing as npt

__all__ = ["green_bias", "green_mask"]

def green_bias(
    scores: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    out: npt.NDArray[np.float32] | npt.NDArray[np.float64],
    hv: npt.NDArray[np.uint32], hp: npt.NDArray[np.uint32], threshold: int, delta: float,
) -> None:
    """out[r, i] = scores[r, i] + (delta if fmix32(hv[i] ^ hp[r]) < threshold else 0)."""

def green_mask(mask: npt.NDArray[np.uint8], hv: npt.NDArray[np.uint32],
               hp: npt.NDArray[np.uint32], threshold: int) -> None:
    """mask[r, i] = fmix32(hv[i] ^ hp[r]) < threshold."""
