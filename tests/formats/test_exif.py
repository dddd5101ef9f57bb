"""labelkit.exif: UserComment decoding, AIGC recognition and removal."""

from __future__ import annotations

import pytest
from PIL import Image

from labelkit import exif
from labelkit.errors import CorruptInput, LimitExceeded
from labelkit.limits import Limits

from .samples import OLD, OLD_WRAPPED, exif_blob


def _tags(blob: bytes) -> tuple[dict, dict]:
    e = Image.Exif()
    e.load(blob)
    return {k: v for k, v in e.items() if k != exif.EXIF_IFD}, dict(e.get_ifd(exif.EXIF_IFD))


@pytest.mark.parametrize(
    "raw, endian, text",
    [
        (b"ASCII\0\0\0" + OLD.encode(), "<", OLD),
        (b"ASCII\0\0\0" + OLD.encode() + b"\0\0  ", "<", OLD),
        (b"UNICODE\0" + OLD.encode("utf-16-le"), "<", OLD),
        (b"UNICODE\0" + OLD.encode("utf-16-be"), ">", OLD),
        (b"UNICODE\0" + OLD.encode("utf-16-le"), ">", OLD),  # writer ignored the byte order
        (b"UNICODE\0" + OLD.encode("utf-16"), ">", OLD),  # with a BOM
        (b"\0" * 8 + OLD.encode(), "<", OLD),
        (OLD.encode(), "<", OLD),  # no charset prefix at all
    ],
)
def test_decode_user_comment(raw, endian, text):
    assert exif.decode_user_comment(raw, endian) == text


@pytest.mark.parametrize(
    "text, expected",
    [
        (OLD, True),
        (OLD_WRAPPED, True),
        ('  {"ContentProducer":"x","Label":"1"}', True),
        ('{"Label": broken', True),  # a broken label is still a label claim to report
        ("Shot on a phone", False),
        ('{"camera":"x"}', False),
        ("", False),
    ],
)
def test_looks_like_aigc(text, expected):
    assert exif.looks_like_aigc(text) is expected


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize(
    "comment", [b"ASCII\0\0\0" + OLD_WRAPPED.encode(), b"UNICODE\0" + OLD.encode("utf-16-le")]
)
def test_find_and_strip(endian, comment):
    blob = exif_blob(user_comment=comment, endian=endian)
    assert exif.find_aigc(blob, "f") in (OLD, OLD_WRAPPED)
    stripped = exif.strip_aigc(blob, "f")
    assert len(stripped) == len(blob)  # edited in place: every offset stays valid
    assert exif.find_aigc(stripped, "f") is None
    top_a, sub_a = _tags(blob)
    top_b, sub_b = _tags(stripped)
    del sub_a[exif.USER_COMMENT]
    assert (top_b, sub_b) == (top_a, sub_a)
    assert OLD.encode() not in stripped and OLD.encode("utf-16-le") not in stripped


def test_non_aigc_comment_is_left_byte_identical():
    blob = exif_blob(user_comment=b"ASCII\0\0\0holiday in Hangzhou")
    assert exif.find_aigc(blob, "f") is None
    assert exif.strip_aigc(blob, "f") is blob


def test_blob_without_exif_ifd_or_header():
    e = Image.Exif()
    e[0x010F] = "maker"
    blob = e.tobytes()[6:]  # bare TIFF structure, as in WebP EXIF chunks written by some tools
    assert exif.find_aigc(blob, "f") is None


def test_an_emptied_exif_ifd_is_unlinked():
    e = Image.Exif()
    e[0x010F] = "maker"
    e.get_ifd(exif.EXIF_IFD)[exif.USER_COMMENT] = b"ASCII\0\0\0" + OLD.encode()
    stripped = exif.strip_aigc(e.tobytes(), "f")
    top, sub = _tags(stripped)
    assert top == {0x010F: "maker"} and sub == {}


def test_ifd_reader_bounds():
    blob = exif_blob()
    with pytest.raises(CorruptInput, match="x.jpg"):
        exif.read_ifd(blob, 6, len(blob), ">", "x.jpg", "IFD0")


def test_limits():
    blob = exif_blob(user_comment=b"ASCII\0\0\0" + OLD.encode())
    with pytest.raises(LimitExceeded, match="x.png"):
        exif.find_aigc(blob, "x.png", Limits(max_metadata_bytes=64))


def test_garbage_exif_with_a_user_comment_tag_is_corrupt_input():
    with pytest.raises(CorruptInput, match="x.webp: unreadable EXIF block in EXIF chunk"):
        exif.find_aigc(b"Exif\0\0XX*\0\0\0\0\x08\x92\x86garbage", "x.webp", where="EXIF chunk")


def test_exif_without_a_user_comment_is_not_interpreted():
    # Only a UserComment can carry a label; other EXIF, even broken, is kept as it is.
    garbage = b"Exif\0\0XX*\0\0\0\0\x08garbage"
    assert exif.find_aigc(garbage, "x.webp") is None
    assert exif.strip_aigc(garbage, "x.webp") is garbage
