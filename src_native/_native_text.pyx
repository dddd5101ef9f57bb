# cython: boundscheck=False, wraparound=False, cdivision=True, language_level=3
"""Text kernels on UTF-8 bytes: where carriers go, splicing them in, finding them again.

The numpy/re twins are in labelkit/_kernels_py.py."""

from libc.stdint cimport int64_t, uint8_t
from libc.string cimport memchr, memcpy

__all__ = ["vs_runs", "paragraph_marks", "splice"]


def vs_runs(const uint8_t[::1] data, Py_ssize_t min_chars, int64_t[::1] starts,
            int64_t[::1] ends, Py_ssize_t offset=0):
    """Find runs of at least ``min_chars`` consecutive U+FE00..U+FE0F (EF B8 80..8F) in UTF-8.

    Scans from byte ``offset``; writes the byte offsets [start, end) of up to len(starts) runs
    and returns (runs found, where to resume): resume < len(data) when ``starts`` filled up."""
    cdef Py_ssize_t n = data.shape[0], cap = starts.shape[0], found = 0, i, run_start, chars
    cdef const uint8_t *base = &data[0] if n else NULL
    cdef const void *hit
    if ends.shape[0] != cap:
        raise ValueError("starts and ends must have the same length")
    if min_chars < 1 or offset < 0:
        raise ValueError("min_chars must be >= 1 and offset >= 0")
    i = offset
    with nogil:
        while i + 3 <= n and found < cap:
            hit = memchr(base + i, 0xEF, n - i)
            if hit == NULL:
                i = n
                break
            i = <const uint8_t *> hit - base
            run_start, chars = i, 0
            while i + 3 <= n and base[i] == 0xEF and base[i + 1] == 0xB8 and (base[i + 2] & 0xF0) == 0x80:
                chars += 1
                i += 3
            if chars == 0:
                i += 1
            elif chars >= min_chars:
                starts[found] = run_start
                ends[found] = i
                found += 1
    # Full: resume after the last run found; otherwise everything was scanned.
    return found, (i if found == cap else n)


cdef inline Py_ssize_t _decode(const uint8_t *p, Py_ssize_t n, int *cp) noexcept nogil:
    """Decode the code point at p (n bytes left): its length; bytes that are not valid UTF-8
    count as one-byte characters (the caller validated the text; this only keeps us in bounds)."""
    cdef uint8_t b = p[0]
    if b < 0x80:
        cp[0] = b
        return 1
    if b >= 0xC2 and b < 0xE0 and n >= 2:
        cp[0] = ((b & 0x1F) << 6) | (p[1] & 0x3F)
        return 2
    if b >= 0xE0 and b < 0xF0 and n >= 3:
        cp[0] = ((b & 0x0F) << 12) | ((p[1] & 0x3F) << 6) | (p[2] & 0x3F)
        return 3
    if b >= 0xF0 and b < 0xF5 and n >= 4:
        cp[0] = ((b & 0x07) << 18) | ((p[1] & 0x3F) << 12) | ((p[2] & 0x3F) << 6) | (p[3] & 0x3F)
        return 4
    cp[0] = 0xFFFD
    return 1


cdef inline bint _is_space(int c) noexcept nogil:
    return ((0x09 <= c <= 0x0D) or c == 0x20 or c == 0x85 or c == 0xA0 or c == 0x1680
            or (0x2000 <= c <= 0x200A) or c == 0x2028 or c == 0x2029 or c == 0x202F
            or c == 0x205F or c == 0x3000)


cdef inline bint _is_mark(int c) noexcept nogil:
    # what attaches to the character before it (labelkit.watermark.text._MARKS)
    return ((0x0300 <= c <= 0x036F) or (0x0483 <= c <= 0x0489) or (0x0591 <= c <= 0x05BD)
            or (0x0610 <= c <= 0x061A) or (0x064B <= c <= 0x065F) or (0x0900 <= c <= 0x0903)
            or (0x093A <= c <= 0x094F) or (0x1AB0 <= c <= 0x1AFF) or (0x1DC0 <= c <= 0x1DFF)
            or (0x20D0 <= c <= 0x20FF) or (0xFE00 <= c <= 0xFE0F) or (0xFE20 <= c <= 0xFE2F)
            or (0x1F3FB <= c <= 0x1F3FF) or (0xE0100 <= c <= 0xE01EF))


def paragraph_marks(const uint8_t[::1] data, int64_t[::1] out):
    """Where a carrier goes in each paragraph of UTF-8 prose: the byte offset after its first
    grapheme (a visible character, the marks after it, and characters joined by U+200D).

    Paragraphs start at 0 and after every blank line ("\\n", spaces/tabs/CR/FF/VT, "\\n"); a
    paragraph whose first visible character is itself a mark gets none. Returns how many
    offsets were written; ``out`` needs one per newline plus one."""
    cdef Py_ssize_t n = data.shape[0], cap = out.shape[0], count = 0, i = 0, j, step, step2
    cdef const uint8_t *base = &data[0] if n else NULL
    cdef const void *hit
    cdef int cp = 0, cp2 = 0
    cdef bint start = True
    with nogil:
        while i < n:
            if start:
                start = False
                while i < n:
                    step = _decode(base + i, n - i, &cp)
                    if not _is_space(cp):
                        break
                    i += step
                if i >= n:
                    break
                if not _is_mark(cp):
                    i += step
                    while i < n:
                        step = _decode(base + i, n - i, &cp)
                        if _is_mark(cp):
                            i += step
                        elif cp == 0x200D and i + step < n:
                            step2 = _decode(base + i + step, n - i - step, &cp2)
                            if _is_space(cp2):
                                break
                            i += step + step2
                        else:
                            break
                    if count == cap:
                        with gil:
                            raise ValueError("out is too small: one offset per newline plus one")
                    out[count] = i
                    count += 1
            hit = memchr(base + i, 0x0A, n - i)
            if hit == NULL:
                break
            i = <const uint8_t *> hit - base + 1
            j = i
            while j < n and (base[j] == 0x20 or base[j] == 0x09 or base[j] == 0x0D
                             or base[j] == 0x0C or base[j] == 0x0B):
                j += 1
            if j < n and base[j] == 0x0A:
                i = j + 1
                start = True
    return count


def splice(const uint8_t[::1] data, const int64_t[::1] positions, const uint8_t[::1] insert,
           uint8_t[::1] out):
    """out = data with ``insert`` put at each of the increasing byte offsets ``positions``."""
    cdef Py_ssize_t n = data.shape[0], k = positions.shape[0], m = insert.shape[0]
    cdef Py_ssize_t prev = 0, o = 0, idx, pos
    if out.shape[0] != n + k * m:
        raise ValueError("out must hold the data and every insertion")
    for idx in range(k):
        if positions[idx] < prev or positions[idx] > n:
            raise ValueError("positions must increase and lie within the data")
        prev = positions[idx]
    prev = 0
    with nogil:
        for idx in range(k):
            pos = positions[idx]
            if pos > prev:
                memcpy(&out[o], &data[prev], pos - prev)
                o += pos - prev
            if m:
                memcpy(&out[o], &insert[0], m)
            o += m
            prev = pos
        if n > prev:
            memcpy(&out[o], &data[prev], n - prev)
