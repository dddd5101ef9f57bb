"""What this installation can do: versions, implementation in use, formats and layers."""

from __future__ import annotations

import importlib.util
import platform
import sys
from importlib import metadata

__all__ = ["report", "report_text", "LAYERS"]

# Layers in the order they are applied (DESIGN.md); False: its optional dependency is missing.
LAYERS = {
    "explicit": True,
    "watermark": True,
    "metadata": True,
    "signature": True,
    # found without importing it: its native library takes ~100 ms to load
    "c2pa": importlib.util.find_spec("c2pa") is not None,
}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _video_encoders() -> dict[str, bool]:
    """Which of the encoders video re-encoding uses this PyAV build has."""
    try:
        import av
    except ImportError:
        return {}
    found = {}
    for name in ("libx264", "libx265", "libvpx-vp9", "libsvtav1"):
        try:
            av.Codec(name, "w")
            found[name] = True
        except Exception:  # noqa: BLE001 - PyAV raises its own UnknownCodecError
            found[name] = False
    return found


def report() -> dict:
    """A dict describing versions, the active kernels, formats and layers."""
    from . import __version__, _impl, formats

    return {
        "labelkit": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "implementation": _impl.IMPLEMENTATION,
        "pure_requested": _impl.PURE_REQUESTED,
        "native_errors": dict(_impl.NATIVE_ERRORS),
        "kernels": {n: getattr(_impl.kernel(n), "__module__", "?") for n in _impl.KERNELS},
        "dependencies": {d: _version(d) for d in ("numpy", "pillow", "cryptography", "av",
                                                  "c2pa-python")},
        "video_encoders": _video_encoders(),
        "formats": {n: m.MIME for n, m in formats.handlers().items()},
        "formats_unavailable": formats.unavailable(),
        "layers": dict(LAYERS),
    }


def report_text() -> str:
    """The report as readable lines."""
    r = report()
    lines = [
        f"labelkit {r['labelkit']} on Python {r['python']} ({r['platform']})",
        f"implementation: {r['implementation']}"
        + (" (LABELKIT_PURE_PYTHON=1)" if r["pure_requested"] else ""),
    ]
    for group, err in r["native_errors"].items():
        lines.append(f"  native {group} unavailable: {err}")
    for name, module in r["kernels"].items():
        lines.append(f"  kernel {name}: {module}")
    lines.append("dependencies: " + ", ".join(f"{k} {v or 'missing'}"
                                             for k, v in r["dependencies"].items()))
    lines.append("formats: " + ", ".join(r["formats"]))
    if r["video_encoders"]:
        lines.append("video encoders: " + ", ".join(
            f"{k} {'yes' if v else 'missing'}" for k, v in r["video_encoders"].items()))
    for name, why in r["formats_unavailable"].items():
        lines.append(f"  {name} unavailable: {why}")
    lines.append("layers: " + ", ".join(
        f"{k} {'yes' if v else 'missing'}" for k, v in r["layers"].items()))
    if not r["layers"]["c2pa"]:
        lines.append("  c2pa needs c2pa-python: pip install 'labelkit[c2pa]'")
    return "\n".join(lines)
