"""Type stubs for the compiled text kernels (src_native/_native_text.pyx)."""

import numpy as np
import numpy.typing as npt

__all__ = ["vs_runs", "paragraph_marks", "splice"]

def vs_runs(
    data: bytes | bytearray | memoryview, min_chars: int, starts: npt.NDArray[np.int64],
    ends: npt.NDArray[np.int64], offset: int = 0,
) -> tuple[int, int]:
    """Find runs of >= ``min_chars`` consecutive U+FE00..U+FE0F in UTF-8; (found, resume)."""

def paragraph_marks(data: bytes | bytearray | memoryview, out: npt.NDArray[np.int64]) -> int:
    """Byte offsets after the first grapheme of each paragraph of UTF-8 prose; how many."""

def splice(data: bytes | bytearray | memoryview, positions: npt.NDArray[np.int64],
           insert: bytes, out: bytearray | memoryview) -> None:
    """out = data with ``insert`` put at each of the increasing byte offsets ``positions``."""
