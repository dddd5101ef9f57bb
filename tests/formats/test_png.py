"""PNG specifics: chunk placement, text chunks, compressed carriers, APNG."""

from __future__ import annotations

import struct
import zlib

import pytest

from labelkit import formats
from labelkit.errors import LimitExceeded
from labelkit.limits import Limits

from .samples import LABEL, OLD, png_chunks, sample

CARRIERS = {b"XML:com.adobe.xmp", b"AIGC"}


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", len(payload), ctype) + payload + struct.pack(
        ">I", zlib.crc32(ctype + payload)
    )


def _insert_after_ihdr(data: bytes, chunk: bytes) -> bytes:
    return data[:33] + chunk + data[33:]


def _keyword(payload: bytes) -> bytes:
    return payload.split(b"\0", 1)[0]


def test_xmp_itxt_right_after_ihdr_uncompressed():
    s = sample("png-rich")
    chunks = png_chunks(formats.parse(s.data, s.name).with_label(LABEL))
    assert chunks[0][0] == b"IHDR"
    ctype, payload = chunks[1]
    assert ctype == b"iTXt" and payload.startswith(b"XML:com.adobe.xmp\0\0\0\0\0")
    assert [c for c, _ in chunks].index(b"IDAT") > 1


@pytest.mark.parametrize("name", ["png-rich", "png-preloaded", "png-apng", "png-plain"])
def test_every_other_chunk_is_kept_byte_identical_and_in_order(name):
    s = sample(name)
    out = formats.parse(s.data, s.name).with_label(LABEL)

    def others(data, drop_exif):
        keep = []
        for ctype, payload in png_chunks(data):
            if ctype in (b"tEXt", b"iTXt", b"zTXt") and _keyword(payload) in CARRIERS:
                continue
            if drop_exif and ctype == b"eXIf":
                continue
            keep.append((ctype, payload))
        return keep

    planted = bool(s.planted)  # its eXIf carried the old label and is edited in place
    assert others(out, planted) == others(s.data, planted)


def test_aigc_text_chunks_of_every_kind_are_removed():
    s = sample("png-preloaded")
    kinds = [(c, _keyword(p)) for c, p in png_chunks(s.data)]
    for ctype in (b"tEXt", b"zTXt", b"iTXt"):
        assert (ctype, b"AIGC") in kinds
    out = png_chunks(formats.parse(s.data, s.name).with_label(LABEL))
    assert not [c for c, p in out if _keyword(p) == b"AIGC"]


def test_compressed_xmp_itxt_is_read_and_a_second_one_stripped():
    s = sample("png-plain")
    packet = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
    packet += b'02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:TC260="http://www.tc'
    packet += b'260.org.cn/ns/AIGC/1.0/"><TC260:AIGC>' + OLD.encode() + b"</TC260:AIGC>"
    packet += b"</rdf:Description></rdf:RDF></x:xmpmeta>"
    itxt = _chunk(b"iTXt", b"XML:com.adobe.xmp\0\1\0\0\0" + zlib.compress(packet))
    data = _insert_after_ihdr(s.data, itxt + itxt)
    parsed = formats.parse(data, "z.png")
    assert [(c.kind, c.text) for c in parsed.carriers] == [("xmp-element", OLD)] * 2
    out = formats.parse(parsed.with_label(LABEL), "out")
    assert [c.text for c in out.carriers] == [LABEL]


def test_ztxt_bomb_is_refused():
    bomb = _chunk(b"zTXt", b"AIGC\0\0" + zlib.compress(b"{" * 10_000_000))
    data = _insert_after_ihdr(sample("png-plain").data, bomb)
    with pytest.raises(LimitExceeded, match="zbomb.png"):
        formats.parse(data, "zbomb.png")


def test_other_compressed_text_is_never_inflated():
    bomb = _chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"a" * 10_000_000))
    data = _insert_after_ihdr(sample("png-plain").data, bomb)
    assert formats.parse(data, "big-comment.png", Limits(max_metadata_bytes=100)).carriers == []


def test_apng_frames_and_essence():
    s = sample("png-apng")
    parsed = formats.parse(s.data, s.name)
    assert parsed.frames == 24
    types = {bytes(p[:4]) for p in parsed.essence()}
    assert {b"IHDR", b"acTL", b"fcTL", b"IDAT", b"fdAT"} <= types


def test_chunk_count_limit():
    extra = _chunk(b"tEXt", b"k\0v") * 20
    data = _insert_after_ihdr(sample("png-plain").data, extra)
    with pytest.raises(LimitExceeded, match="many.png"):
        formats.parse(data, "many.png", Limits(max_chunks=10))
