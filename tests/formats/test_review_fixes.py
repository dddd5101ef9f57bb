"""Regressions from the format review: each test builds its malformed file at run time."""

from __future__ import annotations

import io
import json
import struct
import time
import zlib

import pytest
from PIL import Image

from labelkit import exif, formats
from labelkit.errors import CorruptInput, LimitExceeded
from labelkit.formats import essence_digest
from labelkit.limits import Limits

from .samples import (
    LABEL,
    OLD,
    _save,
    exif_blob,
    exiftool,
    photo,
    png_chunks,
    sample,
    xmp_packet,
)

# -- TIFF: zero counts, duplicate tags, one UserComment reader ----------------------------------


def _tiff_entry(data: bytes, tag: int) -> tuple[str, int]:
    """(byte order, offset) of IFD0's entry for tag."""
    endian = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(endian + "I", data, 4)
    (count,) = struct.unpack_from(endian + "H", data, ifd)
    for i in range(count):
        at = ifd + 2 + 12 * i
        if struct.unpack_from(endian + "H", data, at)[0] == tag:
            return endian, at
    raise KeyError(tag)


def _patched(data: bytes, tag: int, fmt: str, pos: int, *values) -> bytes:
    endian, at = _tiff_entry(data, tag)
    buf = bytearray(data)
    struct.pack_into(endian + fmt, buf, at + pos, *values)
    return bytes(buf)


@pytest.mark.parametrize("tag", [256, 257, 273, 279, exif.EXIF_IFD])
def test_tiff_entry_with_count_zero_is_corrupt(tag):
    data = _patched(sample("tiff-rich").data, tag, "I", 4, 0)
    with pytest.raises(CorruptInput, match=f"zero.tif: IFD0 at 0x[0-9a-f]+ tag {tag} has no value"):
        formats.parse(data, "zero.tif")


def test_tiff_duplicate_tag_is_corrupt():
    data = sample("tiff-rich").data
    # Turn SamplesPerPixel into a second PhotometricInterpretation (a reader taking the last
    # one would see other pixels than one taking the first).
    dup = _patched(data, 277, "H", 0, 262)
    message = "dup.tif: IFD0 at 0x[0-9a-f]+ has tag 262 more than once"
    with pytest.raises(CorruptInput, match=message):
        formats.parse(dup, "dup.tif")


def test_exif_duplicate_tag_is_corrupt():
    blob = exif_blob(user_comment=b"ASCII\0\0\0" + OLD.encode(), endian="<")
    buf = bytearray(blob)
    ifd0 = 6 + struct.unpack_from("<I", buf, 10)[0]
    first_tag = struct.unpack_from("<H", buf, ifd0 + 2)[0]
    struct.pack_into("<H", buf, ifd0 + 14, first_tag)  # the second entry repeats the first
    with pytest.raises(CorruptInput, match="f: unreadable EXIF block: .*more than once"):
        exif.find_aigc(bytes(buf), "f")


def test_exif_pointer_of_the_wrong_type_is_corrupt():
    blob = bytearray(exif_blob(user_comment=b"ASCII\0\0\0" + OLD.encode(), endian="<"))
    ifd = exif.read_ifd(blob, 6, struct.unpack_from("<I", blob, 10)[0], "<", "f", "IFD0")
    pointer = ifd.get(exif.EXIF_IFD)
    struct.pack_into("<H", blob, pointer.pos + 2, 5)  # RATIONAL
    with pytest.raises(CorruptInput, match="non-integer type 5"):
        exif.find_aigc(bytes(blob), "f")


def _tiff_with_comment(comment: bytes) -> bytes:
    e = Image.Exif()
    e.load(exif_blob(user_comment=comment, endian="<"))
    return _save(photo("coffee.png", (32, 24)), "TIFF", exif=e.tobytes())


@pytest.mark.parametrize(
    "comment",
    [
        b"ASCII\0\0\0" + OLD.encode(),
        b"UNICODE\0" + OLD.encode("utf-16-le"),
        b"ASCII\0\0\0" + b'{"Lable":"1","ContentProducr":"x"}',
        b"ASCII\0\0\0Shot on a phone",
    ],
)
def test_tiff_and_exif_blobs_read_the_user_comment_alike(comment):
    blob = exif_blob(user_comment=comment, endian="<")
    tiff = formats.parse(_tiff_with_comment(comment), "t.tif")
    from_tiff = [c.text for c in tiff.carriers if c.kind == "exif-usercomment"]
    from_blob = exif.find_aigc(blob, "b")
    assert from_tiff == ([] if from_blob is None else [from_blob])


# -- GIF: frames that grow the canvas -----------------------------------------------------------

_GIF_HEAD = b"GIF89a" + struct.pack("<HHBBB", 64, 64, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"


def _frame(x: int, y: int, w: int, h: int) -> bytes:
    return b"\x2c" + struct.pack("<HHHHB", x, y, w, h, 0) + b"\x02\x02\x44\x01\x00"


def test_gif_frame_placed_far_off_the_screen_is_a_bomb():
    data = _GIF_HEAD + _frame(0, 0, 64, 64) + _frame(20000, 20000, 1, 1) + b"\x3b"
    with pytest.raises(LimitExceeded, match=r"off.gif: frame at 0x22 \(1x1 at 20000,20000\)"):
        formats.parse(data, "off.gif")


def test_gif_canvas_growth_adds_up_over_frames():
    # Each frame alone grows the 64x64 screen to 576000 pixels; decoders keep the grown
    # canvas, so after both it is 9000 x 9000.
    data = _GIF_HEAD + _frame(8999, 0, 1, 1) + _frame(0, 8999, 1, 1) + b"\x3b"
    formats.parse(data, "ok.gif")
    with pytest.raises(LimitExceeded, match=r"big.gif: frame at 0x22 .* 9000x9000 pixels"):
        formats.parse(data, "big.gif", Limits(max_pixels=1_000_000))


# -- PNG: text chunks ----------------------------------------------------------------------------


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(ctype + payload)
    return struct.pack(">I4s", len(payload), ctype) + payload + struct.pack(">I", crc)


def _png_with(*chunks: bytes) -> bytes:
    data = sample("png-plain").data
    return data[:33] + b"".join(chunks) + data[33:]


def test_png_keywordless_text_chunks_are_skipped_in_linear_time():
    chunks = [_chunk(b"tEXt", b"no-nul-keyword")] * 2000 + [_chunk(b"raNd", bytes(10_000_000))]
    data = _png_with(*chunks)
    start = time.perf_counter()
    parsed = formats.parse(data, "nokw.png")
    assert time.perf_counter() - start < 2  # was quadratic: 2000 copies of the file's rest
    assert parsed.carriers == []
    assert parsed.with_label(LABEL).count(b"no-nul-keyword") == 2000  # copied as they were


def _raw_profile(packet: bytes) -> bytes:
    digits = packet.hex()
    lines = "\n".join(digits[i : i + 72] for i in range(0, len(digits), 72))
    return b"\nxmp\n%8d\n" % len(packet) + lines.encode() + b"\n"


PNG_XMP_FORMS = {
    "tEXt": lambda p: _chunk(b"tEXt", b"XML:com.adobe.xmp\0" + p),
    "zTXt": lambda p: _chunk(b"zTXt", b"XML:com.adobe.xmp\0\0" + zlib.compress(p)),
    "raw-tEXt": lambda p: _chunk(b"tEXt", b"Raw profile type xmp\0" + _raw_profile(p)),
    "raw-zTXt": lambda p: _chunk(
        b"zTXt", b"Raw profile type xmp\0\0" + zlib.compress(_raw_profile(p))
    ),
}


@pytest.mark.parametrize("form", sorted(PNG_XMP_FORMS))
def test_png_xmp_in_other_text_chunks_is_read_and_replaced(form, tmp_path, exiftool_path):
    data = _png_with(PNG_XMP_FORMS[form](xmp_packet(aigc_attr=OLD)))
    parsed = formats.parse(data, "in.png")
    assert [c.text for c in parsed.carriers] == [OLD]
    out = parsed.with_label(LABEL)
    assert [c.text for c in formats.parse(out, "out.png").carriers] == [LABEL]
    path = tmp_path / "out.png"
    path.write_bytes(out)
    assert exiftool("-a", "-s3", "-XMP-TC260:AIGC", str(path)).splitlines() == [LABEL]
    assert exiftool("-a", "-s3", "-XMP-dc:Title", str(path)).splitlines() == [
        "A title & <its> escapes"
    ]


@pytest.mark.parametrize("form", sorted(PNG_XMP_FORMS))
def test_png_second_xmp_in_other_text_chunks_loses_only_its_aigc(form):
    second = xmp_packet(title="second", aigc_elem=OLD)
    data = _png_with(_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0" + xmp_packet()),
                     PNG_XMP_FORMS[form](second))  # fmt: skip
    out = formats.parse(data, "in.png").with_label(LABEL)
    assert [c.text for c in formats.parse(out, "out.png").carriers] == [LABEL]
    # The label's iTXt, and the second packet without its AIGC but in its own form.
    texts = [p for t, p in png_chunks(out) if t in (b"tEXt", b"zTXt", b"iTXt")]
    keywords = [p.split(b"\0", 1)[0] for p in texts]
    xmp_keywords = [k for k in keywords if k in (b"XML:com.adobe.xmp", b"Raw profile type xmp")]
    assert len(xmp_keywords) == 2
    raw = form.startswith("raw")
    assert xmp_keywords[1] == (b"Raw profile type xmp" if raw else b"XML:com.adobe.xmp")
    with Image.open(io.BytesIO(out)) as im:
        im.load()


def test_png_bad_raw_profile_is_corrupt():
    data = _png_with(_chunk(b"tEXt", b"Raw profile type xmp\0\nxmp\n      10\nzz\n"))
    with pytest.raises(CorruptInput, match="raw.png: tEXt chunk at 0x21: bad hex digits"):
        formats.parse(data, "raw.png")


# -- essence: JPEG APP14 Adobe, WebP canvas and ANIM --------------------------------------------


def test_jpeg_adobe_segment_is_essence():
    im = photo("coffee.png", (40, 30))
    data = _save(im.convert("CMYK"), "JPEG")
    at = data.index(b"\xff\xeeAdobe"[:2] + b"\x00\x0eAdobe")
    before = essence_digest(formats.parse(data, "a.jpg"))
    flipped = bytearray(data)
    flipped[at + 15] ^= 1  # the transform flag
    assert essence_digest(formats.parse(bytes(flipped), "b.jpg")) != before
    labeled = formats.parse(data, "a.jpg").with_label(LABEL)
    assert essence_digest(formats.parse(labeled, "c.jpg")) == before


def test_webp_canvas_and_anim_are_essence():
    data = sample("webp-anim").data
    before = essence_digest(formats.parse(data, "a.webp"))
    wider = bytearray(data)
    wider[24] ^= 1  # canvas width - 1, lowest byte
    assert essence_digest(formats.parse(bytes(wider), "b.webp")) != before
    anim = bytearray(data)
    at = data.index(b"ANIM")
    anim[at + 12] ^= 1  # loop count
    assert essence_digest(formats.parse(bytes(anim), "c.webp")) != before


def test_simple_webp_essence_survives_getting_a_vp8x():
    data = sample("webp-lossy").data
    assert data[12:16] == b"VP8 "
    out = formats.parse(data, "a.webp").with_label(LABEL)
    assert out[12:16] == b"VP8X"
    assert essence_digest(formats.parse(out, "b")) == essence_digest(formats.parse(data, "a"))


# -- EXIF: misspelled Annex E keys ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ('{"Lable":"1","ContentProducr":"x"}', True),
        ('{"AIGc":{"Lable":"1"}}', True),
        ('{"produceid":"1"}', True),
        ('{"camera":"x","lens":"y"}', False),
        ("[" * 100_000, False),  # too deep for json: not a label, not a crash
        ('{"a":' + "1" * 5000 + "}", False),  # too long an integer for json
    ],
)
def test_looks_like_aigc_with_misspelled_keys(text, expected):
    assert exif.looks_like_aigc(text) is expected


def test_misspelled_user_comment_is_a_carrier():
    comment = json.dumps({"Lable": "1", "ContentProducr": "x"}).encode()
    blob = exif_blob(user_comment=b"ASCII\0\0\0" + comment)
    assert exif.find_aigc(blob, "f") == comment.decode()


def test_tiff_strip_over_the_header_is_corrupt():
    # Found by fuzzing: labeling rewrites the header's IFD0 offset, so such pixels would change.
    data = _patched(sample("tiff-rich").data, 273, "HI", 2, 4, 1)  # LONG, count 1 ...
    endian, at = _tiff_entry(data, 273)
    data = data[: at + 8] + struct.pack(endian + "I", 0) + data[at + 12 :]  # ... at offset 0
    message = "head.tif: strip/tile 0 of IFD0 .* overlaps the TIFF header"
    with pytest.raises(CorruptInput, match=message):
        formats.parse(data, "head.tif")
