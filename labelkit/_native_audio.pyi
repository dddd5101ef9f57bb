"""Type stubs for the compiled audio watermark kernels (src_native/_native_audio.pyx)."""

import numpy as np
import numpy.typing as npt

__all__ = [
    "tile_energies", "mix_down", "halfband_decimate", "halfband_interpolate", "frame_window",
    "overlap_add", "add_clipped",
]

def tile_energies(
    power: npt.NDArray[np.float32], rows: npt.ArrayLike, cols: npt.ArrayLike,
    out: npt.NDArray[np.float64],
) -> None:
    """Sum a (frames, bins) power map over fractional cells [rows[j], rows[j+1]) x [cols[b], cols[b+1])."""

F32 = npt.NDArray[np.float32]

def mix_down(x: F32, out: F32) -> None:
    """out[i] = the mean of row i of the (n, channels) ``x``: channels summed in order."""

def halfband_decimate(x: F32, taps: F32, out: F32) -> None:
    """Half-band low-pass and keep every other sample (taps = centre, then the odd taps)."""

def halfband_interpolate(y: F32, taps: F32, out: F32) -> None:
    """Double the rate through a half-band filter (taps = centre, then the odd taps)."""

def frame_window(x: F32, hop: int, window: F32, out: F32) -> None:
    """out[k, i] = x[k * hop + i] * window[i]: windowed frames, ``hop`` apart."""

def overlap_add(frames: F32, window: F32, acc: F32, out: F32) -> None:
    """Window the frames and add them at half-frame hops; ``acc`` carries the last tail."""

def add_clipped(x: F32, mark: F32, out: F32) -> None:
    """out[i, c] = x[i, c] + mark[i], clipped to [-1, 1]."""
