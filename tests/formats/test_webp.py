"""WebP specifics: simple to extended conversion, VP8X flags, chunk order, RIFF size."""

from __future__ import annotations

import struct

import pytest

from labelkit import formats
from labelkit.formats import webp

from .samples import LABEL, OLD, riff_chunks, sample, xmp_packet


def _labeled(name: str, **kw) -> bytes:
    s = sample(name)
    return formats.parse(s.data, s.name).with_label(LABEL, **kw)


def _vp8x(data: bytes) -> tuple[int, int, int]:
    fourcc, payload = riff_chunks(data)[0]
    assert fourcc == b"VP8X"
    w = 1 + int.from_bytes(payload[4:7], "little")
    h = 1 + int.from_bytes(payload[7:10], "little")
    return payload[0], w, h


@pytest.mark.parametrize(
    "name, alpha", [("webp-lossy", False), ("webp-lossless-alpha", True)]
)
def test_simple_file_becomes_extended(name, alpha):
    s = sample(name)
    assert riff_chunks(s.data)[0][0] in (b"VP8 ", b"VP8L")
    out = _labeled(name)
    flags, w, h = _vp8x(out)
    assert (w, h) == (320, 320)
    assert flags == webp.FLAG_XMP | (webp.FLAG_ALPHA if alpha else 0)
    assert [c for c, _ in riff_chunks(out)] == [b"VP8X", riff_chunks(s.data)[0][0], b"XMP "]


@pytest.mark.parametrize("name", ["webp-lossy", "webp-rich", "webp-anim", "webp-preloaded"])
def test_riff_size_and_padding(name):
    out = _labeled(name, xmp=xmp_packet(title="odd" * 3 + "x"))
    assert struct.unpack_from("<I", out, 4)[0] == len(out) - 8
    assert sum(8 + len(p) + (len(p) & 1) for _, p in riff_chunks(out)) == len(out) - 12


@pytest.mark.parametrize("name", ["webp-rich", "webp-anim", "webp-preloaded"])
def test_extended_flags_kept_and_xmp_after_image_and_exif(name):
    s = sample(name)
    out = _labeled(name)
    old_flags = riff_chunks(s.data)[0][1][0]
    flags, *_ = _vp8x(out)
    assert flags == old_flags | webp.FLAG_XMP
    order = [c for c, _ in riff_chunks(out)]
    assert order.count(b"XMP ") == 1
    assert order.index(b"XMP ") > order.index(b"EXIF")
    image = [i for i, c in enumerate(order) if c in (b"VP8 ", b"VP8L", b"ANMF")]
    assert order.index(b"XMP ") > max(image)
    if name == "webp-anim":
        assert order.count(b"ANMF") == 24 and b"ANIM" in order


def test_old_labels_gone_from_exif_and_xmp():
    out = _labeled("webp-preloaded")
    assert OLD.encode() not in out
    assert [c.text for c in formats.parse(out, "out").carriers] == [LABEL]


def test_a_second_xmp_chunk_is_stripped_not_dropped():
    s = sample("webp-rich")
    packet = xmp_packet(title="second", aigc_elem=OLD)
    second = struct.pack("<4sI", b"XMP ", len(packet)) + packet + b"\0" * (len(packet) & 1)
    data = s.data + second
    data = data[:4] + struct.pack("<I", len(data) - 8) + data[8:]
    parsed = formats.parse(data, "two.webp")
    assert [c.text for c in parsed.carriers] == [OLD]
    out = parsed.with_label(LABEL)
    assert [c for c, _ in riff_chunks(out)].count(b"XMP ") == 2
    assert [c.text for c in formats.parse(out, "out").carriers] == [LABEL]
