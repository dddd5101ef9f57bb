# cython: boundscheck=False, wraparound=False, cdivision=True, language_level=3
"""Alpha-blend a coverage mask of one colour into an image, in place (twin: _kernels_py)."""

from libc.stdint cimport uint8_t, uint32_t

__all__ = ["blend_mask"]


cdef inline uint8_t _mix(uint8_t x, uint32_t keep, uint32_t add) noexcept nogil:
    # round((x * (255 - a) + colour * a) / 255) without a division, given keep = 255 - a and
    # add = colour * a + 128: (t + (t >> 8)) >> 8 is exact for t <= 255 * 255 + 128.
    cdef uint32_t t = x * keep + add
    return <uint8_t>((t + (t >> 8)) >> 8)


def blend_mask(uint8_t[:, :, ::1] image, const uint8_t[:, ::1] mask,
               Py_ssize_t y0, Py_ssize_t x0, const uint8_t[::1] color):
    """Blend ``color`` into ``image`` (H, W, C) through ``mask`` placed at (y0, x0), clipped."""
    cdef Py_ssize_t height = image.shape[0], width = image.shape[1], channels = image.shape[2]
    cdef Py_ssize_t i, j, c, i_start, i_stop, j_start, j_stop
    cdef uint32_t a, keep
    cdef uint8_t* px
    if color.shape[0] != channels:
        raise ValueError(f"color has {color.shape[0]} components, the image {channels} channels")
    # Clip the mask rectangle to the image, so callers may place it partly outside.
    i_start = max(0, -y0)
    i_stop = min(mask.shape[0], height - y0)
    j_start = max(0, -x0)
    j_stop = min(mask.shape[1], width - x0)
    if i_start >= i_stop or j_start >= j_stop:
        return
    with nogil:
        for i in range(i_start, i_stop):
            for j in range(j_start, j_stop):
                a = mask[i, j]
                if a == 0:
                    continue  # an exact no-op: x * 255 / 255 rounds back to x
                keep = 255 - a
                px = &image[y0 + i, x0 + j, 0]
                if channels == 3:  # the common case, unrolled
                    px[0] = _mix(px[0], keep, color[0] * a + 128)
                    px[1] = _mix(px[1], keep, color[1] * a + 128)
                    px[2] = _mix(px[2], keep, color[2] * a + 128)
                else:
                    for c in range(channels):
                        px[c] = _mix(px[c], keep, color[c] * a + 128)
