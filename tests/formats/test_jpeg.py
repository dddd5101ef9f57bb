"""JPEG specifics: segment placement, scans untouched, several XMP segments, big packets."""

from __future__ import annotations

import struct

import pytest

from labelkit import formats
from labelkit.errors import CorruptInput, LimitExceeded
from labelkit.formats import jpeg

from .samples import LABEL, TITLE, dc_title, jpeg_segments, sample, xmp_packet

XMP_ID = b"http://ns.adobe.com/xap/1.0/\0"


def _kinds(data: bytes) -> list[str]:
    names = []
    for marker, head in jpeg_segments(data):
        if marker == 0xE1 and head.startswith(b"Exif"):
            names.append("exif")
        elif marker == 0xE1 and head.startswith(XMP_ID[:28]):
            names.append("xmp")
        else:
            names.append(f"{marker:02x}")
    return names


@pytest.mark.parametrize("name", ["jpeg-plain", "jpeg-rich", "jpeg-progressive", "jpeg-preloaded"])
def test_scan_bytes_identical(name):
    original = formats.parse(sample(name).data, name)
    out = formats.parse(original.with_label(LABEL), "out")
    assert [bytes(s) for s in out.scans()] == [bytes(s) for s in original.scans()]
    assert original.scans()


def test_progressive_with_restart_markers_is_walked():
    s = sample("jpeg-progressive")
    scans = formats.parse(s.data, s.name).scans()
    assert len(scans) > 1  # progressive: several scans, with DHT segments between them
    assert any(b"\xff\xd0" in bytes(scan) for scan in scans)  # restart markers inside scans


def test_label_goes_right_after_soi_app0_exif():
    s = sample("jpeg-rich")
    before, after = _kinds(s.data), _kinds(formats.parse(s.data, s.name).with_label(LABEL))
    assert before[:2] == ["e0", "exif"]
    assert after[:3] == ["e0", "exif", "xmp"]
    assert after.count("xmp") == 1  # merged into the file's own packet, which moved up
    assert [k for k in after if k != "xmp"] == [k for k in before if k != "xmp"]


def test_label_goes_right_after_soi_without_app0():
    data = sample("jpeg-plain").data
    bare = data[:2] + data[2 + 2 + struct.unpack_from(">H", data, 4)[0] :]  # drop JFIF APP0
    assert _kinds(bare)[0] != "e0"
    assert _kinds(formats.parse(bare, "bare").with_label(LABEL))[0] == "xmp"


def test_merges_into_the_existing_packet():
    s = sample("jpeg-rich")
    out = formats.parse(formats.parse(s.data, s.name).with_label(LABEL), "out")
    assert dc_title(out.xmp) == TITLE
    assert [c.text for c in out.carriers] == [LABEL]


def test_further_xmp_segments_lose_only_their_label():
    s = sample("jpeg-preloaded")
    out = formats.parse(s.data, s.name).with_label(LABEL)
    assert _kinds(out).count("xmp") == 2
    parsed = formats.parse(out, "out")
    assert [(c.kind, c.location.startswith("APP1 segment at 0x")) for c in parsed.carriers] == [
        ("xmp-element", True)
    ]


def test_extended_xmp_is_ignored_and_kept():
    data = sample("jpeg-plain").data
    ext = b"http://ns.adobe.com/xmp/extension/\0" + b"0" * 32 + struct.pack(">II", 10, 0)
    ext += b"<x:xmp>..."
    seg = struct.pack(">BBH", 0xFF, 0xE1, len(ext) + 2) + ext
    data = data[:2] + seg + data[2:]
    parsed = formats.parse(data, "ext.jpg")
    assert parsed.carriers == []
    assert seg in parsed.with_label(LABEL)


def test_data_after_eoi_and_fill_bytes_are_kept():
    data = sample("jpeg-plain").data
    pos = data.index(b"\xff\xdb")  # first DQT
    data = data[:pos] + b"\xff\xff" + data[pos:] + b"TRAILER"
    out = formats.parse(data, "fill.jpg").with_label(LABEL)
    assert out.endswith(b"\xff\xd9TRAILER")
    assert b"\xff\xff\xff\xdb" in out


def test_packet_too_big_for_one_segment():
    packet = xmp_packet(title="t" * 70_000)
    with pytest.raises(LimitExceeded, match="big.jpg.*ExtendedXMP"):
        formats.parse(sample("jpeg-plain").data, "big.jpg").with_label(LABEL, xmp=packet)


def test_module_constants():
    assert jpeg.NAME == "jpeg" and jpeg.MIME == "image/jpeg" and ".jpg" in jpeg.EXTENSIONS


def test_essence_ignores_data_after_eoi():
    # A file ending with EOI is parsed without reading its scans; one with a trailer is
    # walked to the end at once. Both must give the same essence.
    data = sample("jpeg-progressive").data
    plain = formats.parse(data, "plain.jpg")
    trailer = formats.parse(data + b"MPF-like trailer", "trailer.jpg")
    assert formats.essence_digest(plain) == formats.essence_digest(trailer)
    assert [bytes(s) for s in plain.scans()] == [bytes(s) for s in trailer.scans()]


def test_metadata_after_the_first_scan_is_not_read():
    # Like exiftool, labelkit reads metadata segments up to the first SOS only.
    s = sample("jpeg-progressive")
    second_sos = s.data.index(b"\xff\xda", s.data.index(b"\xff\xda") + 2)
    packet = xmp_packet(aigc_elem=LABEL)
    seg = struct.pack(">BBH", 0xFF, 0xE1, len(packet) + 2 + len(XMP_ID)) + XMP_ID + packet
    data = s.data[:second_sos] + seg + s.data[second_sos:]
    parsed = formats.parse(data, "late.jpg")
    assert parsed.carriers == []
    assert bytes(seg) not in b"".join(bytes(p) for p in parsed.essence())


def test_broken_structure_between_scans_is_found_when_the_scans_are_read():
    s = sample("jpeg-progressive")
    second_sos = s.data.index(b"\xff\xda", s.data.index(b"\xff\xda") + 2)
    data = bytearray(s.data)
    data[second_sos + 1] = 0x00  # "0xff00" where a marker must be: a broken scan boundary
    parsed = formats.parse(bytes(data), "broken.jpg")  # ends with EOI: scans not read yet
    with pytest.raises(CorruptInput, match="broken.jpg"):
        formats.essence_digest(parsed)
