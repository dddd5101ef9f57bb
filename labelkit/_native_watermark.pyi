"""Type stubs for the compiled watermark kernels (src_native/_native_watermark.pyx)."""

import numpy as np
import numpy.typing as npt

__all__ = [
    "luma_down",
    "luma_stats",
    "plane_stats",
    "box_blur",
    "extreme_filter",
    "embed_tile",
    "embed_plane",
    "fold_tile",
    "lattice_scores",
    "viterbi_decode",
]

def luma_down(image: npt.NDArray[np.uint8], d: int) -> npt.NDArray[np.float32]:
    """BT.601 luma of an (H, W, C) uint8 image, box-averaged over d x d blocks (float32)."""

def luma_stats(
    image: npt.NDArray[np.uint8], d: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Mean and variance of an integer BT.601 luma over each d x d block."""

def plane_stats(
    plane: npt.NDArray[np.uint8], m: int, step: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Mean and variance over each m x m block of a (strided) uint8 plane, sampled every step."""

def box_blur(image: npt.NDArray[np.float32], radius: int) -> npt.NDArray[np.float32]:
    """Mean over a (2r+1) x (2r+1) box, edges clamped."""

def extreme_filter(
    image: npt.NDArray[np.float32], size: int, take_max: bool
) -> npt.NDArray[np.float32]:
    """Minimum (or maximum) over a size x size box centred on each pixel, edges clamped."""

def embed_tile(
    image: npt.NDArray[np.uint8],
    tile: npt.NDArray[np.float32],
    mask: npt.NDArray[np.float32],
    m: int,
    gain: float,
    dither: npt.NDArray[np.int32],
    offsets: npt.NDArray[np.int32],
) -> None:
    """Add gain * mask * tile to every channel of an (H, W, 1|3) image in place, dithered."""

def embed_plane(
    plane: npt.NDArray[np.uint8],
    wide: npt.NDArray[np.float32],
    mask: npt.NDArray[np.float32],
    m: int,
    gain: float,
    dither: npt.NDArray[np.int32],
    offsets: npt.NDArray[np.int32],
) -> None:
    """embed_tile for one (strided) uint8 plane, in place, the tile's rows repeated to width."""

def fold_tile(
    residual: npt.NDArray[np.float32], binv: npt.ArrayLike, t: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Fold pixels into a t x t tile: (sums, counts)."""

def lattice_scores(
    spectrum: npt.NDArray[np.float32], params: npt.ArrayLike, kr: npt.ArrayLike,
    kc: npt.ArrayLike, bilinear: bool,
) -> npt.NDArray[np.float64]:
    """Mean of a half-plane power map at the spectral lines of each lattice (P1, P2, theta)."""

def viterbi_decode(soft: npt.ArrayLike, outputs: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Soft-decision Viterbi for a rate-1/n, 64-state convolutional code, tail-terminated."""
