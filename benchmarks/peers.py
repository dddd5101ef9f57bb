"""The watermark speed benchmark's peers, imported the way they have to be here.

invisible-watermark (module ``imwatermark``: dwtDct, Stable Diffusion XL's default, and
dwtDctSvd) and blind-watermark are benchmark-only extras, never labelkit dependencies. Both
declare dependencies they do not need for what is measured: ``opencv-python`` (the GUI build;
the headless build provides the same ``cv2``) and, for invisible-watermark, ``torch``, which only
its rivaGan method uses. So they are installed in two steps (benchmarks/requirements-peers.txt):

    pip install -r benchmarks/requirements-peers.txt
    pip install --no-deps -r benchmarks/requirements-peers-nodeps.txt

imwatermark's package ``__init__`` imports ``watermark.py``, which imports ``rivaGan.py``, which
runs ``import torch`` at module level, so without torch the whole package fails to import even
though dwtDct and dwtDctSvd never touch it. When (and only when) torch is absent,
:func:`imwatermark` puts an empty stand-in module under ``sys.modules["torch"]`` for the length
of that import, then takes it out again, so nothing imported later mistakes it for torch. Any
attribute looked up on the stand-in (which only rivaGan would do) raises AttributeError saying
what it is. When torch is installed, it is imported as usual and nothing is stood in.

Every loader raises :class:`PeerMissing` (an ImportError) naming the install commands, so a
benchmark can skip with a clear reason instead of reporting a number it did not measure. OpenCV
is pinned to one thread (``cv2.setNumThreads(1)``) as soon as it is imported through here.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
import types

INSTALL = ("pip install -r benchmarks/requirements-peers.txt && "
           "pip install --no-deps -r benchmarks/requirements-peers-nodeps.txt")


class PeerMissing(ImportError):
    """A peer (or one of the libraries it needs) is not installed."""


def _require(module: str) -> types.ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise PeerMissing(f"{module} is not importable ({exc}); install the benchmark-only "
                          f"peers: {INSTALL}") from exc


def version(distribution: str) -> str:
    """The installed version of a distribution, or '?' if its metadata is missing."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def cv2() -> types.ModuleType:
    """OpenCV (opencv-python-headless), limited to one thread."""
    mod = _require("cv2")
    mod.setNumThreads(1)
    return mod


def _torch_present() -> bool:
    if "torch" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def _torch_stand_in() -> types.ModuleType:
    stand_in = types.ModuleType("torch", "Empty stand-in for torch (benchmarks/peers.py).")

    def __getattr__(name: str):
        raise AttributeError(
            f"torch.{name}: torch is not installed; this is the benchmark's empty stand-in, "
            "enough to import imwatermark, whose dwtDct and dwtDctSvd never use torch "
            "(only rivaGan does)")

    stand_in.__getattr__ = __getattr__  # module-level __getattr__ (PEP 562)
    return stand_in


def imwatermark() -> types.ModuleType:
    """invisible-watermark's ``imwatermark`` (WatermarkEncoder / WatermarkDecoder)."""
    cv2()
    _require("pywt")
    if "imwatermark" in sys.modules:
        return sys.modules["imwatermark"]
    stand_in = None if _torch_present() else _torch_stand_in()
    if stand_in is not None:
        sys.modules["torch"] = stand_in
    try:
        return _require("imwatermark")
    finally:
        if stand_in is not None and sys.modules.get("torch") is stand_in:
            del sys.modules["torch"]


def blind_watermark() -> types.ModuleType:
    """blind-watermark's ``blind_watermark`` (WaterMark), with its welcome banner silenced.

    Its ``pool.py`` calls ``multiprocessing.set_start_method('fork')`` on import; that is
    Linux's default already, and only the 'common' (in-process, single-thread) mode is used."""
    cv2()
    _require("pywt")
    mod = _require("blind_watermark")
    mod.bw_notes.close()  # WaterMark() otherwise prints a banner the first time
    return mod
