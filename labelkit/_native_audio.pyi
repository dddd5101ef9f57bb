"""Type stubs for the compiled audio watermark kernels (src_native/_native_audio.pyx)."""

import numpy as np
import numpy.typing as npt

__all__ = ["tile_energies"]

def tile_energies(
    power: npt.NDArray[np.float32], rows: npt.ArrayLike, cols: npt.ArrayLike,
    out: npt.NDArray[np.float64],
) -> None:
    """Sum a (frames, bins) power map over fractional cells [rows[j], rows[j+1]) x [cols[b], cols[b+1])."""
