"""Build the Cython kernels in src_native/ into private labelkit._native* modules.

LABELKIT_PURE_PYTHON=1 skips the native build: labelkit then runs on its numpy twins.
"""
import glob
import os

from setuptools import setup

ext_modules = []
if os.environ.get("LABELKIT_PURE_PYTHON") != "1":
    import numpy
    from Cython.Build import cythonize
    from setuptools import Extension

    def _ext(name: str) -> Extension:
        return Extension(
            f"labelkit._native_{name}",
            [f"src_native/_native_{name}.pyx"],
            include_dirs=[numpy.get_include(), "src_native"],
            # plain-C kernels (see green_list.h for why): rebuilt when they change, and shipped
            depends=sorted(glob.glob("src_native/*.h")),
            extra_compile_args=["-O3"],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        )

    sources = sorted(
        f[len("_native_") : -len(".pyx")]
        for f in os.listdir("src_native")
        if f.startswith("_native_") and f.endswith(".pyx")
    )
    ext_modules = cythonize([_ext(n) for n in sources], language_level=3)

setup(ext_modules=ext_modules)
