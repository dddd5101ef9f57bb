# cython: boundscheck=False, wraparound=False, cdivision=True, language_level=3
"""Audio watermark kernels; numpy twins of the same names are in labelkit/_kernels_py.py."""

import numpy as np

cimport numpy as cnp
from libc.stdlib cimport free, malloc

cnp.import_array()


cdef inline double _cover(Py_ssize_t i, double a, double b) noexcept nogil:
    """The share of cell [i, i + 1) inside [a, b)."""
    cdef double lo = a if a > i else i
    cdef double hi = b if b < i + 1 else i + 1
    return hi - lo if hi > lo else 0.0


def tile_energies(const float[:, ::1] power, rows, cols, double[:, ::1] out):
    """Sum a (frames, bins) power map over the cells [rows[j], rows[j+1]) x [cols[b], cols[b+1]).

    Positions are fractional (a cell counts by its covered share) and must lie in
    [0, frames) and [0, bins); ``out`` is (len(rows) - 1, len(cols) - 1) float64."""
    cdef const double[::1] r = np.ascontiguousarray(rows, dtype=np.float64)
    cdef const double[::1] c = np.ascontiguousarray(cols, dtype=np.float64)
    cdef Py_ssize_t frames = power.shape[0], bins = power.shape[1]
    cdef Py_ssize_t nj = r.shape[0] - 1, nb = c.shape[0] - 1
    if out.shape[0] != nj or out.shape[1] != nb:
        raise ValueError("out must be a (len(rows) - 1, len(cols) - 1) float64 array")
    if nj > 0 and not (0 <= np.min(rows) and np.max(rows) < frames):
        raise ValueError("rows out of range")
    if nb > 0 and not (0 <= np.min(cols) and np.max(cols) < bins):
        raise ValueError("cols out of range")
    cdef Py_ssize_t j, b, f, k, k0, k1, f0, f1
    cdef double s, w
    cdef double *band = <double *> malloc(max(nb, 1) * sizeof(double))
    if band == NULL:
        raise MemoryError()
    try:
        with nogil:
            for j in range(nj):
                for b in range(nb):
                    out[j, b] = 0.0
                f0 = <Py_ssize_t> r[j]
                f1 = <Py_ssize_t> r[j + 1]
                for f in range(f0, min(f1 + 1, frames)):
                    w = _cover(f, r[j], r[j + 1])
                    if w <= 0.0:
                        continue
                    for b in range(nb):
                        k0 = <Py_ssize_t> c[b]
                        k1 = <Py_ssize_t> c[b + 1]
                        s = 0.0
                        for k in range(k0, min(k1 + 1, bins)):
                            s += power[f, k] * _cover(k, c[b], c[b + 1])
                        out[j, b] += w * s
    finally:
        free(band)
