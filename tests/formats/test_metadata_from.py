"""with_label(metadata_from=original): re-encoded pixels keep the original's metadata.

Each case re-encodes a rich sample's pixels with Pillow (changed, as a visible label would) and
checks the result with independent readers: exiftool lists the original's tags (bar the
expected ones), Pillow decodes the new pixels, and the essence is the re-encoded file's.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelkit import formats
from labelkit.errors import PolicyError
from labelkit.formats import essence_digest

from .samples import (
    LABEL,
    OLD,
    OLD_WRAPPED,
    _gif_insert_before_first_image,
    _jpeg_segment,
    _save,
    exif_blob,
    exiftool,
    frames_rgba,
    gif_xmp_extension,
    icc_profile,
    photo,
    xmp_packet,
)
from .samples import sample as build_sample

PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP", "tiff": "TIFF"}
IPTC = b"Photoshop 3.0\0" + b"8BIM\x04\x04\0\0\0\0\0\x0c\x1c\x02\x05\x00\x07Caption"


def _jpeg_iptc() -> bytes:
    """A JPEG with EXIF, ICC, XMP, a comment and an APP13 IPTC segment."""
    base = build_sample("jpeg-rich").data
    return base[:2] + _jpeg_segment(0xED, IPTC) + base[2:]


def _gif_comment_app() -> bytes:
    """An animated GIF with a loop count, a comment, an XMP packet and a private app extension."""
    im = photo("coffee.png", (120, 80))
    frames = [im.convert("P"), im.rotate(10).convert("P")]
    data = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=[70, 80],
                 loop=3, comment=b"a GIF comment")  # fmt: skip
    private = b"\x21\xff\x0bLABELKITTST\x03abc\x00"
    return _gif_insert_before_first_image(data, gif_xmp_extension(xmp_packet()) + private)


def _tiff_ifd0_tags() -> bytes:
    """A TIFF with Artist, Copyright, ImageDescription, Software, EXIF, ICC and XMP."""
    exif = Image.Exif()
    exif.load(exif_blob(endian="<"))
    exif[700] = xmp_packet()
    for tag, value in {315: "An Artist", 305: "SomeSoftware", 270: "A description",
                       33432: "Copyright X"}.items():  # fmt: skip
        exif[tag] = value
    return _save(photo("astronaut.png", (96, 64)), "TIFF", exif=exif.tobytes(),
                 icc_profile=icc_profile())  # fmt: skip


RICH = {
    "jpeg-iptc": ("jpeg", _jpeg_iptc),
    "jpeg-preloaded": ("jpeg", lambda: build_sample("jpeg-preloaded").data),
    "png-rich": ("png", lambda: build_sample("png-rich").data),
    "png-preloaded": ("png", lambda: build_sample("png-preloaded").data),
    "webp-rich": ("webp", lambda: build_sample("webp-rich").data),
    "webp-anim": ("webp", lambda: build_sample("webp-anim").data),
    "webp-preloaded": ("webp", lambda: build_sample("webp-preloaded").data),
    "gif-comment-app": ("gif", _gif_comment_app),
    "gif-preloaded": ("gif", lambda: build_sample("gif-preloaded").data),
    "tiff-ifd0-tags": ("tiff", _tiff_ifd0_tags),
    "tiff-preloaded": ("tiff", lambda: build_sample("tiff-preloaded").data),
    "tiff-bigendian": ("tiff", lambda: build_sample("tiff-bigendian").data),
}


def reencode(data: bytes, fmt: str, **kw) -> bytes:
    """Every frame changed (rotated a little) and saved by Pillow with its own defaults."""
    with Image.open(io.BytesIO(data)) as im:
        frames = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            frames.append(im.convert("RGBA" if fmt == "webp" else "RGB").rotate(3))
    more = {"save_all": True, "append_images": frames[1:]} if len(frames) > 1 else {}
    return _save(frames[0], PIL_FORMATS[fmt], **more, **kw)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, tuple[Path, Path, bytes, bytes]]:
    """name -> (original path, output path, re-encoded bytes, output bytes)."""
    root = tmp_path_factory.mktemp("metadata_from")
    out = {}
    for name, (fmt, build) in RICH.items():
        data = build()
        new = reencode(data, fmt)
        original = formats.parse(data, f"in-{name}")
        result = formats.parse(new, f"new-{name}").with_label(LABEL, metadata_from=original)
        src, dst = root / f"in-{name}.{fmt}", root / f"out-{name}.{fmt}"
        src.write_bytes(data)
        dst.write_bytes(result)
        out[name] = (src, dst, new, result)
    return out


# Tags that describe the encoding (or the file), so they follow the new pixels.
_ENCODING_GROUPS = ("[System]", "[File]", "[Composite]", "[ExifTool]")
_ENCODING_TAGS = {"StripOffsets", "StripByteCounts", "RowsPerStrip", "Compression", "BitsPerSample",
                  "PhotometricInterpretation", "SamplesPerPixel", "PlanarConfiguration",
                  "ImageWidth", "ImageHeight", "ColorType", "Interlace", "Filter", "BitDepth",
                  "Predictor", "ExtraSamples", "SubfileType", "FrameCount", "Duration",
                  "AnimationIterations", "BackgroundColor", "ImageCount", "ImageSize",
                  "Megapixels", "AlphaCompression", "AlphaFiltering",
                  "AlphaPreprocessing"}  # fmt: skip


def _tags(path: Path) -> set[str]:
    """exiftool's "[group] Tag" names, the encoding's own left out."""
    out = set()
    for line in exiftool("-a", "-G1", "-s", "-e", str(path)).splitlines():
        tag = line.split(":", 1)[0].strip()
        group, _, name = tag.partition(" ")
        if group.startswith(_ENCODING_GROUPS) or name.strip() in _ENCODING_TAGS:
            continue
        out.add(f"{group} {name.strip()}")
    return out


@pytest.mark.parametrize("name", sorted(RICH))
def test_exiftool_sees_the_original_metadata(outputs, exiftool_path, name):
    src, dst, _, _ = outputs[name]
    before, after = _tags(src), _tags(dst)
    expected_lost = {"[ExifIFD] UserComment", "[PNG] AIGC"}  # planted AIGC carriers
    if name == "tiff-bigendian":
        # Only IFD0's metadata is carried: the other pages are the re-encoded file's own.
        expected_lost |= {t for t in before if t.startswith(("[IFD1]", "[IFD2]"))}
    assert before - after <= expected_lost, sorted(before - after)
    assert after - before <= {"[XMP-TC260] Aigc"}, sorted(after - before)
    aigc = exiftool("-a", "-s3", "-XMP-TC260:AIGC", str(dst)).splitlines()
    assert aigc == [LABEL]


@pytest.mark.parametrize("name", sorted(RICH))
def test_the_new_pixels_and_essence(outputs, name):
    _, _, new, result = outputs[name]
    for a, b in zip(frames_rgba(new), frames_rgba(result), strict=True):
        np.testing.assert_array_equal(a, b)
    fmt = RICH[name][0]
    assert essence_digest(formats.parse(result, "out")) == essence_digest(
        formats.parse(new, "new")
    )
    parsed = formats.parse(result, "out")
    assert [c.text for c in parsed.carriers] == [LABEL]
    assert OLD.encode() not in result and OLD_WRAPPED.encode() not in result
    assert parsed.format == fmt


def test_jpeg_keeps_iptc_and_comment_and_drops_the_new_files_own():
    data = _jpeg_iptc()
    new = reencode(data, "jpeg", comment=b"the encoder's comment")
    out = formats.parse(new, "new").with_label(LABEL, metadata_from=formats.parse(data, "in"))
    assert IPTC in out and b"a JPEG comment" in out
    assert b"the encoder's comment" not in out
    with Image.open(io.BytesIO(out)) as im:
        assert im.info["comment"] == b"a JPEG comment"


def test_jpeg_icc_profile_for_another_colour_space_is_left_behind():
    data = build_sample("jpeg-rich").data  # an sRGB profile
    with Image.open(io.BytesIO(data)) as im:
        grey = _save(im.convert("L"), "JPEG")
    out = formats.parse(grey, "new").with_label(LABEL, metadata_from=formats.parse(data, "in"))
    with Image.open(io.BytesIO(out)) as im:
        assert "icc_profile" not in im.info
        assert im.getexif()[0x010F] == "labelkit-test-maker"  # the rest is carried


@pytest.mark.filterwarnings("ignore:Image appears to be a malformed MPO file")
def test_jpeg_mpf_is_left_behind():
    data = _jpeg_iptc()
    mpf = _jpeg_segment(0xE2, b"MPF\0" + b"MM\0*\0\0\0\x08\0\0\0\0\0\0")
    data = data[:2] + mpf + data[2:]
    out = formats.parse(reencode(data, "jpeg"), "new").with_label(
        LABEL, metadata_from=formats.parse(data, "in")
    )
    assert b"MPF\0" not in out and IPTC in out


def test_png_colour_type_bound_chunks_follow_only_the_same_colour_type():
    im = photo("coffee.png", (40, 30))
    data = _save(im, "PNG", icc_profile=icc_profile(), dpi=(300, 300))
    bkgd = struct.pack(">I4s6s", 6, b"bKGD", b"\0\1\0\2\0\3")
    import zlib

    data = data[:33] + bkgd + struct.pack(">I", zlib.crc32(bkgd[4:])) + data[33:]
    original = formats.parse(data, "in")
    rgb = formats.parse(_save(im.rotate(5), "PNG"), "rgb").with_label(LABEL, metadata_from=original)
    grey = formats.parse(_save(im.convert("L"), "PNG"), "grey").with_label(
        LABEL, metadata_from=original
    )
    assert b"bKGD" in rgb and b"iCCP" in rgb and b"pHYs" in rgb
    assert b"bKGD" not in grey and b"iCCP" not in grey and b"pHYs" in grey
    for out in (rgb, grey):
        Image.open(io.BytesIO(out)).load()


def test_png_palette_image_gets_bkgd_after_plte():
    im = photo("coffee.png", (40, 30)).convert("P")
    data = _save(im, "PNG", transparency=0)
    import zlib

    bkgd = b"bKGD\x05"
    chunk = struct.pack(">I", 1) + bkgd + struct.pack(">I", zlib.crc32(bkgd))
    at = data.index(b"IDAT") - 4
    data = data[:at] + chunk + data[at:]
    new = _save(im.rotate(5), "PNG", transparency=0)
    original = formats.parse(data, "in")
    if formats.parse(new, "n")._plte() != original._plte():
        pytest.skip("Pillow chose another palette")
    out = formats.parse(new, "new").with_label(LABEL, metadata_from=original)
    assert out.index(b"PLTE") < out.index(b"bKGD") < out.index(b"IDAT")


def test_webp_flags_follow_the_carried_chunks():
    data = build_sample("webp-rich").data  # ICC, EXIF and XMP
    out = formats.parse(reencode(data, "webp"), "new").with_label(
        LABEL, metadata_from=formats.parse(data, "in")
    )
    assert out[12:16] == b"VP8X"
    flags = out[20]
    assert flags & 0x20 and flags & 0x08 and flags & 0x04  # ICC, EXIF, XMP
    with Image.open(io.BytesIO(out)) as im:
        assert im.info.get("icc_profile") == icc_profile()


def test_gif_keeps_comment_and_app_extensions():
    data = _gif_comment_app()
    out = formats.parse(reencode(data, "gif"), "new").with_label(
        LABEL, metadata_from=formats.parse(data, "in")
    )
    assert b"LABELKITTST" in out
    with Image.open(io.BytesIO(out)) as im:
        assert im.info["comment"] == b"a GIF comment"


def test_tiff_big_endian_original_into_little_endian_encoding():
    data = build_sample("tiff-bigendian").data
    original = formats.parse(data, "in")
    new = _save(photo("coffee.png", (64, 48)), "TIFF")
    assert data[:2] == b"MM" and new[:2] == b"II"
    out = formats.parse(new, "new").with_label(LABEL, metadata_from=original)
    with Image.open(io.BytesIO(out)) as im:
        im.load()
        with Image.open(io.BytesIO(data)) as before:
            for tag in (270, 305, 282, 283, 296):  # description, software, resolution
                assert im.tag_v2.get(tag) == before.tag_v2.get(tag), tag


def test_metadata_from_another_format_is_refused():
    png = formats.parse(build_sample("png-rich").data, "in.png")
    jpeg = formats.parse(build_sample("jpeg-rich").data, "new.jpg")
    with pytest.raises(PolicyError, match="new.jpg: cannot carry png metadata into a jpeg"):
        jpeg.with_label(LABEL, metadata_from=png)
