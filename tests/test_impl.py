"""The native kernels load when expected, the switch works, and --report says which is in use."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from labelkit import _impl, _kernels_py, features

from .conftest import PURE


def test_native_loaded_unless_pure_requested():
    if PURE:
        assert _impl.IMPLEMENTATION == "pure"
        for name in _impl.KERNELS:
            assert _impl.kernel(name) is getattr(_kernels_py, name)
    else:
        # A build that silently fell back to numpy would pass every other test: fail here.
        assert _impl.NATIVE_ERRORS == {}, _impl.NATIVE_ERRORS
        assert _impl.IMPLEMENTATION == "native"
        for name, group in _impl.KERNELS.items():
            assert _impl.kernel(name).__module__ == f"labelkit._native_{group}"


def test_every_kernel_has_a_twin_with_a_docstring():
    for name in _impl.KERNELS:
        twin = getattr(_kernels_py, name)
        assert twin.__doc__, name


def test_report_command():
    out = subprocess.run([sys.executable, "-m", "labelkit", "--report"], capture_output=True,
                         text=True, check=True).stdout
    assert f"implementation: {_impl.IMPLEMENTATION}" in out
    for fmt in ("png", "jpeg", "webp", "gif", "tiff"):
        assert fmt in out
    assert "signature yes" in out and "watermark yes" in out
    c2pa_installed = importlib.util.find_spec("c2pa") is not None
    assert ("c2pa yes" if c2pa_installed else "c2pa missing") in out
    assert features.report()["formats_unavailable"] == {}
