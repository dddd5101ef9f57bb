"""The one place that picks the native kernels or their pure numpy twins.

Each native module ``labelkit._native_<group>`` exports kernels whose twins of the same name and
signature live in ``labelkit._kernels_py``. ``LABELKIT_PURE_PYTHON=1`` forces the twins; otherwise
a native module that fails to load falls back to the twin and the reason is kept in
``NATIVE_ERRORS`` (``python -m labelkit --report`` shows it, and a test fails on it).
"""

from __future__ import annotations

import importlib
import os

from . import _kernels_py

__all__ = ["IMPLEMENTATION", "NATIVE_ERRORS", "PURE_REQUESTED", "kernel", "KERNELS"]

PURE_REQUESTED = os.environ.get("LABELKIT_PURE_PYTHON", "") == "1"

# kernel name -> native module group that provides it
KERNELS: dict[str, str] = {
    "blend_mask": "blend",
    "luma_down": "watermark",
    "luma_stats": "watermark",
    "plane_stats": "watermark",
    "box_blur": "watermark",
    "extreme_filter": "watermark",
    "embed_tile": "watermark",
    "embed_plane": "watermark",
    "fold_tile": "watermark",
    "lattice_scores": "watermark",
    "viterbi_decode": "watermark",
    "tile_energies": "audio",
    "mix_down": "audio",
    "halfband_decimate": "audio",
    "halfband_interpolate": "audio",
    "frame_window": "audio",
    "overlap_add": "audio",
    "add_clipped": "audio",
    "vs_runs": "text",
    "paragraph_marks": "text",
    "splice": "text",
    "green_bias": "tokens",
    "green_mask": "tokens",
}

NATIVE_ERRORS: dict[str, str] = {}
_chosen: dict[str, object] = {}


def _load_group(group: str):
    try:
        return importlib.import_module(f"labelkit._native_{group}")
    except ImportError as exc:
        NATIVE_ERRORS[group] = str(exc)
        return None


def _resolve() -> str:
    groups: dict[str, object] = {}
    native_used = False
    for name, group in KERNELS.items():
        impl = None
        if not PURE_REQUESTED:
            if group not in groups:
                groups[group] = _load_group(group)
            impl = getattr(groups[group], name, None) if groups[group] is not None else None
        if impl is None:
            impl = getattr(_kernels_py, name)
        else:
            native_used = True
        _chosen[name] = impl
    if PURE_REQUESTED or not native_used:
        return "pure"
    return "native" if not NATIVE_ERRORS else "mixed"


def kernel(name: str):
    """Return the active implementation of kernel ``name``."""
    return _chosen[name]


IMPLEMENTATION = _resolve()
