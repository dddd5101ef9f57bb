# cython: boundscheck=False, wraparound=False, cdivision=True, language_level=3
"""Token kernels of the generation-time watermark: the keyed green-list bias over a vocabulary.

The loops are in green_list.h (see there why C); the numpy twins are in labelkit/_kernels_py.py."""

from cython cimport floating
from libc.stdint cimport uint8_t, uint32_t

cdef extern from "green_list.h" nogil:
    void lk_green_bias_f32(const float *scores, float *out, const uint32_t *hv, size_t n,
                           uint32_t hp, uint32_t threshold, float delta)
    void lk_green_bias_f64(const double *scores, double *out, const uint32_t *hv, size_t n,
                           uint32_t hp, uint32_t threshold, double delta)
    void lk_green_mask(uint8_t *mask, const uint32_t *hv, size_t n, uint32_t hp,
                       uint32_t threshold)

__all__ = ["green_bias", "green_mask"]


cdef _check(Py_ssize_t rows, Py_ssize_t vocab, Py_ssize_t out_rows, Py_ssize_t out_vocab,
            Py_ssize_t table, Py_ssize_t contexts):
    if out_rows != rows or out_vocab != vocab:
        raise ValueError(f"out is {out_rows}x{out_vocab}, the scores {rows}x{vocab}")
    if table < vocab:
        raise ValueError(f"the token table has {table} entries for a vocabulary of {vocab}")
    if contexts != rows:
        raise ValueError(f"{contexts} context hashes for {rows} rows of scores")


def green_bias(const floating[:, ::1] scores, floating[:, ::1] out, const uint32_t[::1] hv,
               const uint32_t[::1] hp, uint32_t threshold, double delta):
    """out[r, i] = scores[r, i] + delta where fmix32(hv[i] ^ hp[r]) < threshold, else scores[r, i].

    ``out`` may be ``scores`` itself."""
    cdef Py_ssize_t rows = scores.shape[0], vocab = scores.shape[1], r
    _check(rows, vocab, out.shape[0], out.shape[1], hv.shape[0], hp.shape[0])
    if rows == 0 or vocab == 0:
        return
    with nogil:
        for r in range(rows):
            if floating is float:
                lk_green_bias_f32(&scores[r, 0], &out[r, 0], &hv[0], vocab, hp[r], threshold,
                                  <float> delta)
            else:
                lk_green_bias_f64(&scores[r, 0], &out[r, 0], &hv[0], vocab, hp[r], threshold,
                                  delta)


def green_mask(uint8_t[:, ::1] mask, const uint32_t[::1] hv, const uint32_t[::1] hp,
               uint32_t threshold):
    """mask[r, i] = 1 where fmix32(hv[i] ^ hp[r]) < threshold, else 0."""
    cdef Py_ssize_t rows = mask.shape[0], vocab = mask.shape[1], r
    _check(rows, vocab, rows, vocab, hv.shape[0], hp.shape[0])
    if rows == 0 or vocab == 0:
        return
    with nogil:
        for r in range(rows):
            lk_green_mask(&mask[r, 0], &hv[0], vocab, hp[r], threshold)
