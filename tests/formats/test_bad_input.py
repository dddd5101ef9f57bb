"""Bad input on real files: each raises the right LabelkitError naming the file."""

from __future__ import annotations

import struct
import zlib

import pytest

from labelkit import formats
from labelkit.errors import CorruptInput, LimitExceeded
from labelkit.limits import Limits

from .samples import sample, with_raw_xmp, xmp_packet

FORMATS = ("jpeg", "png", "webp", "gif", "tiff")
TRUNCATABLE = ("jpeg-rich", "jpeg-progressive", "png-rich", "png-apng", "webp-lossy",
               "webp-anim", "gif-rich", "gif-87a", "tiff-rich", "tiff-bigendian")  # fmt: skip


@pytest.mark.parametrize("name", TRUNCATABLE)
@pytest.mark.parametrize("fraction", [0.02, 0.1, 0.3, 0.5, 0.9, 0.999])
def test_truncated_files_are_corrupt(name, fraction):
    data = sample(name).data
    cut = data[: max(16, int(len(data) * fraction))]
    with pytest.raises(CorruptInput, match=f"cut-{name}"):
        formats.parse(cut, f"cut-{name}")


@pytest.mark.parametrize("name", TRUNCATABLE)
def test_missing_last_byte_is_corrupt(name):
    data = sample(name).data
    with pytest.raises(CorruptInput, match="(truncated|past the end)"):
        formats.parse(data[:-1], f"short-{name}")


def _flipped(where: str) -> bytes:
    data = bytearray(sample("png-rich").data)
    data[data.index(where.encode()) + 6] ^= 0x40
    return bytes(data)


@pytest.mark.parametrize("where", ["IHDR", "IDAT", "iTXt", "zTXt", "eXIf", "iCCP"])
def test_png_flipped_byte_fails_the_crc(where):
    message = f"flipped.png: {where} chunk at 0x[0-9a-f]+ has a bad CRC"
    with pytest.raises(CorruptInput, match=message):
        formats.parse(_flipped(where), "flipped.png")


def test_jpeg_segment_length_past_the_end():
    data = bytearray(with_raw_xmp("jpeg", xmp_packet()))
    pos = data.index(b"\xff\xdb")  # DQT
    struct.pack_into(">H", data, pos + 2, 0xFFF0)
    message = r"long.jpg: segment 0xffdb at 0x[0-9a-f]+ .*past the end"
    with pytest.raises(CorruptInput, match=message):
        formats.parse(bytes(data), "long.jpg")


def test_jpeg_garbage_between_segments():
    data = bytearray(sample("jpeg-plain").data)
    pos = data.index(b"\xff\xdb")
    data[pos] = 0x00
    with pytest.raises(CorruptInput, match="garbage.jpg: expected a marker"):
        formats.parse(bytes(data), "garbage.jpg")


def _png_with_ihdr(width: int, height: int) -> bytes:
    data = bytearray(sample("png-plain").data)
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _set(data: bytes, pos: int, fmt: str, *values: int) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, pos, *values)
    return bytes(buf)


def _jpeg_bomb() -> bytes:
    data = sample("jpeg-plain").data
    sof = data.index(b"\xff\xc0")
    return _set(data, sof + 5, ">HH", 65000, 65000)


def _webp_bomb() -> bytes:
    data = sample("webp-rich").data  # VP8X canvas
    return _set(data, 24, "<I", 0xFFFFFF | 0xFF << 24)  # width 2**24 and height's low byte


def _tiff_bomb() -> bytes:
    data = sample("tiff-rich").data
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    buf = bytearray(data)
    for i in range(count):
        at = ifd + 2 + 12 * i
        tag, typ = struct.unpack_from("<HH", buf, at)
        if tag in (256, 257):
            struct.pack_into("<HHII", buf, at, tag, 4, 1, 200_000)
    return bytes(buf)


BOMBS = {
    "png": lambda: _png_with_ihdr(100_000, 100_000),
    "jpeg": _jpeg_bomb,
    "gif": lambda: _set(sample("gif-rich").data, 6, "<HH", 65535, 65535),
    "webp": _webp_bomb,
    "tiff": _tiff_bomb,
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_decompression_bomb_headers(fmt):
    with pytest.raises(LimitExceeded, match=f"bomb.{fmt}: .*over the limit"):
        formats.parse(BOMBS[fmt](), f"bomb.{fmt}")


def test_gif_frame_bomb():
    data = sample("gif-rich").data
    first_image = data.index(b"\x2c\x00\x00\x00\x00")
    with pytest.raises(LimitExceeded, match="frame"):
        formats.parse(_set(data, first_image + 5, "<HH", 65535, 65535), "frame.gif")


BAD_PACKETS = {
    "malformed": (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF>', "malformed XMP"),
    "doctype": (
        b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>',
        "DOCTYPE/ENTITY",
    ),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("kind", sorted(BAD_PACKETS))
def test_bad_xmp_in_every_format(fmt, kind):
    packet, message = BAD_PACKETS[kind]
    data = with_raw_xmp(fmt, packet)
    with pytest.raises(CorruptInput, match=f"bad.{fmt}: .*{message}"):
        formats.parse(data, f"bad.{fmt}")


@pytest.mark.parametrize("fmt", FORMATS)
def test_xmp_over_the_limit_in_every_format(fmt):
    data = with_raw_xmp(fmt, xmp_packet(title="t" * 5000))
    with pytest.raises(LimitExceeded, match=f"huge.{fmt}: XMP packet in .* over the limit"):
        formats.parse(data, f"huge.{fmt}", Limits(max_metadata_bytes=4096))


def test_huge_xmp_over_the_default_limit():
    data = with_raw_xmp("png", xmp_packet(title="t" * (5 * 1024 * 1024)))
    message = "huge.png: XMP packet in iTXt chunk at 0x21 is 52.* bytes, over the limit"
    with pytest.raises(LimitExceeded, match=message):
        formats.parse(data, "huge.png")


def test_file_over_the_size_limit():
    with pytest.raises(LimitExceeded, match="big.png"):
        formats.parse(sample("png-plain").data, "big.png", Limits(max_file_bytes=1000))
