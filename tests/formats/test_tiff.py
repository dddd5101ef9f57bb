"""TIFF specifics: the appended IFD0, strips left in place, byte orders, other pages."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from labelkit import formats
from labelkit.errors import CorruptInput, UnsupportedFormat

from .samples import LABEL, LABEL2, OLD, photo, sample


def _ifd_offsets(data: bytes) -> list[int]:
    endian = "<" if data[:2] == b"II" else ">"
    offsets, pos = [], struct.unpack_from(endian + "I", data, 4)[0]
    while pos:
        offsets.append(pos)
        (count,) = struct.unpack_from(endian + "H", data, pos)
        pos = struct.unpack_from(endian + "I", data, pos + 2 + 12 * count)[0]
    return offsets


@pytest.mark.parametrize(
    "name", ["tiff-multipage", "tiff-rich", "tiff-preloaded", "tiff-bigendian"]
)
def test_original_bytes_stay_and_ifd0_is_appended(name):
    s = sample(name)
    out = formats.parse(s.data, s.name).with_label(LABEL)
    assert out[:4] == s.data[:4]  # byte order kept
    new_ifds, old_ifds = _ifd_offsets(out), _ifd_offsets(s.data)
    assert new_ifds[0] >= len(s.data) and new_ifds[0] % 2 == 0
    assert len(new_ifds) == len(old_ifds)
    # Every original byte after the header is still there, at the same offset; the only
    # change is that a replaced label's old value is zeroed.
    a = np.frombuffer(s.data, np.uint8)[8:]
    b = np.frombuffer(out, np.uint8)[8 : len(s.data)]
    changed = a != b
    assert not b[changed].any()
    assert changed.any() == bool(s.planted)


def test_big_endian_pages_after_the_labelled_one_are_untouched():
    s = sample("tiff-bigendian")
    out = formats.parse(s.data, s.name).with_label(LABEL)
    assert out[:2] == b"MM"
    old, new = _ifd_offsets(s.data), _ifd_offsets(out)
    assert new[2] == old[2]  # page 3 had no label: still the original IFD
    assert new[1] != old[1]  # page 2 carried one: rewritten without it
    import tifffile

    with tifffile.TiffFile(io.BytesIO(out)) as tif:
        assert len(tif.pages) == 3
        for page, original in zip(tif.pages, tifffile.TiffFile(io.BytesIO(s.data)).pages):
            np.testing.assert_array_equal(page.asarray(), original.asarray())


def test_relabel_keeps_exactly_one():
    s = sample("tiff-preloaded")
    once = formats.parse(s.data, s.name).with_label(LABEL)
    twice = formats.parse(formats.parse(once, "once").with_label(LABEL2), "twice")
    assert [c.text for c in twice.carriers] == [LABEL2]
    assert OLD.encode() not in twice._data and LABEL.encode() not in twice._data


def test_bigtiff_is_unsupported_with_a_clear_message():
    import tifffile

    out = io.BytesIO()
    tifffile.imwrite(out, np.asarray(photo("coffee.png", (16, 8))), bigtiff=True)
    with pytest.raises(UnsupportedFormat, match="big.tif: BigTIFF is not supported"):
        formats.parse(out.getvalue(), "big.tif")


def test_ifd_loop_is_corrupt():
    data = bytearray(sample("tiff-rich").data)
    (first,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, first)
    struct.pack_into("<I", data, first + 2 + 12 * count, first)  # next IFD = itself
    with pytest.raises(CorruptInput, match="loop.tif.*loops"):
        formats.parse(bytes(data), "loop.tif")
