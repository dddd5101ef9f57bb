"""Fixture files for the format tests, built at run time from scikit-image's bundled photos.

Each sample records what it carries (EXIF, ICC, an XMP dc:title, PNG text chunks, frames, and
the AIGC carriers planted in it), so the tests can check that labeling keeps all of it.
The few raw structures Pillow cannot write (a second JPEG XMP segment, GIF XMP extensions)
are built here with struct, independently of labelkit.
"""

from __future__ import annotations

import functools
import io
import json
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, PngImagePlugin

NS = "http://www.tc260.org.cn/ns/AIGC/1.0/"
DC = "http://purl.org/dc/elements/1.1/"
RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
TITLE = "A title & <its> escapes"


def record(label: str, produce_id: str) -> str:
    """A compact seven-field AIGC JSON, as record.py writes it."""
    fields = {
        "Label": label,
        "ContentProducer": "001191110102MAD55U9H0F10002",
        "ProduceID": produce_id,
        "ReservedCode1": "",
        "ContentPropagator": "",
        "PropagateID": "",
        "ReservedCode2": "",
    }
    return json.dumps(fields, separators=(",", ":"))


LABEL = record("1", "new-1")
LABEL2 = record("2", "new-2")
OLD = record("3", "old-3")  # what a previous tool left in the file
OLD_WRAPPED = json.dumps({"AIGC": json.loads(record("1", "old-exif"))}, separators=(",", ":"))


def skimage_path(name: str) -> Path:
    """Path of a photo bundled in scikit-image's wheel (no download)."""
    import skimage.data

    return Path(skimage.data.__file__).parent / name


@functools.cache
def photo(name: str, size: tuple[int, int] | None = None) -> Image.Image:
    """An RGB photo from scikit-image, optionally resized."""
    with Image.open(skimage_path(name)) as im:
        rgb = im.convert("RGB")
    return rgb.resize(size) if size else rgb


@functools.cache
def icc_profile() -> bytes:
    """An sRGB ICC profile."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def xmp_packet(
    *, title: str | None = TITLE, aigc_attr: str | None = None, aigc_elem: str | None = None
) -> bytes:
    """An XMP packet with a dc:title and optionally AIGC in attribute and/or element form."""
    from xml.sax.saxutils import escape, quoteattr

    attr = f" TC260:AIGC={quoteattr(aigc_attr)}" if aigc_attr else ""
    body = f"<TC260:AIGC>{escape(aigc_elem)}</TC260:AIGC>" if aigc_elem else ""
    title_xml = (
        f'<rdf:Description rdf:about="" xmlns:dc="{DC}"><dc:title><rdf:Alt>'
        f'<rdf:li xml:lang="x-default">{escape(title)}</rdf:li></rdf:Alt></dc:title>'
        "</rdf:Description>\n"
        if title
        else ""
    )
    aigc_xml = (
        f'<rdf:Description rdf:about="" xmlns:TC260="{NS}"{attr}>{body}</rdf:Description>\n'
        if attr or body
        else ""
    )
    text = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f'<rdf:RDF xmlns:rdf="{RDF}">\n{title_xml}{aigc_xml}</rdf:RDF>\n'
        "</x:xmpmeta>\n" + (" " * 99 + "\n") * 10 + '<?xpacket end="w"?>'
    )
    return text.encode("utf-8")


def exif_blob(*, user_comment: bytes | None = None, endian: str = ">") -> bytes:
    """An EXIF block (with the JPEG "Exif\\0\\0" header) with camera tags and a UserComment."""
    exif = Image.Exif()
    exif.endian = endian
    exif[0x010F] = "labelkit-test-maker"
    exif[0x0110] = "model T"
    exif[0x0131] = "tests"
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = "2024:01:02 03:04:05"
    sub[0xA002] = 640
    if user_comment is not None:
        sub[0x9286] = user_comment
    return exif.tobytes()


def dc_title(packet: bytes | None) -> str | None:
    """The dc:title of an XMP packet, read with ElementTree (independently of labelkit)."""
    if not packet:
        return None
    root = ET.fromstring(packet.rstrip(b"\0"))
    li = root.find(f".//{{{DC}}}title//{{{RDF}}}li")
    return None if li is None else li.text


@dataclass
class Sample:
    """A fixture file and what it is known to carry."""

    name: str
    format: str
    data: bytes
    frames: int = 1
    exif: bool = False  # carries EXIF (other than an AIGC UserComment) to keep
    icc: bool = False
    title: str | None = None  # XMP dc:title to keep
    texts: dict[str, str] = field(default_factory=dict)  # PNG text chunks / GIF comment to keep
    planted: list[str] = field(default_factory=list)  # kinds of AIGC carriers planted, any order
    pillow_decodes: bool = True


def _save(im: Image.Image, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **kw)
    return out.getvalue()


def _jpeg_segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _insert_after_first_xmp(jpeg: bytes, segment: bytes) -> bytes:
    """Insert a JPEG segment right after the first APP1 XMP segment (walks the header)."""
    pos = 2
    while True:
        marker, length = jpeg[pos + 1], struct.unpack_from(">H", jpeg, pos + 2)[0]
        end = pos + 2 + length
        if marker == 0xE1 and jpeg[pos + 4 : pos + 33] == b"http://ns.adobe.com/xap/1.0/\0":
            return jpeg[:end] + segment + jpeg[end:]
        pos = end


GIF_MAGIC = bytes([1, *range(255, -1, -1), 0])


def gif_xmp_extension(packet: bytes) -> bytes:
    """An "XMP DataXMP" application extension with the magic trailer."""
    return b"\x21\xff\x0bXMP DataXMP" + packet + GIF_MAGIC


def _gif_insert_before_first_image(gif: bytes, blocks: bytes) -> bytes:
    """Insert raw blocks after the header, screen descriptor and global colour table."""
    packed = gif[10]
    head_end = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    return gif[:head_end] + blocks + gif[head_end:]


def _gif_frames() -> list[Image.Image]:
    with Image.open(skimage_path("no_time_for_that_tiny.gif")) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(im.convert("RGB"))
    return frames


def _tiff_be(packets: list[bytes | None]) -> bytes:
    """A big-endian multi-page TIFF written by tifffile, with an XMP tag per page."""
    import tifffile

    rgb = np.asarray(photo("coffee.png", (64, 48)))
    out = io.BytesIO()
    with tifffile.TiffWriter(out, byteorder=">") as tif:
        for i, packet in enumerate(packets):
            extra = [(700, 1, len(packet), packet, True)] if packet else []
            tif.write(np.roll(rgb, i * 7, axis=1), photometric="rgb", extratags=extra)
    return out.getvalue()


def _build(name: str) -> Sample:
    astro = photo("astronaut.png", (320, 320))
    coffee = photo("coffee.png", (300, 200))
    planted_exif = exif_blob(user_comment=b"ASCII\0\0\0" + OLD_WRAPPED.encode())
    if name == "jpeg-plain":
        return Sample(name, "jpeg", skimage_path("rocket.jpg").read_bytes())
    if name == "jpeg-rich":
        data = _save(astro, "JPEG", quality=85, exif=exif_blob(), icc_profile=icc_profile(),
                     xmp=xmp_packet(), comment=b"a JPEG comment")
        return Sample(name, "jpeg", data, exif=True, icc=True, title=TITLE)
    if name == "jpeg-progressive":
        data = _save(coffee, "JPEG", quality=80, progressive=True, restart_marker_rows=2,
                     exif=exif_blob(endian="<"))
        return Sample(name, "jpeg", data, exif=True)
    if name == "jpeg-preloaded":
        data = _save(astro, "JPEG", quality=85, exif=planted_exif, icc_profile=icc_profile(),
                     xmp=xmp_packet(aigc_attr=OLD))
        second = xmp_packet(title=None, aigc_elem=OLD)
        data = _insert_after_first_xmp(
            data, _jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + second)
        )
        return Sample(name, "jpeg", data, exif=True, icc=True, title=TITLE,
                      planted=["exif-usercomment", "xmp-attribute", "xmp-element"])
    if name == "png-plain":
        return Sample(name, "png", skimage_path("astronaut.png").read_bytes())
    if name in ("png-rich", "png-preloaded"):
        info = PngImagePlugin.PngInfo()
        info.add_text("Comment", "plain tEXt")
        info.add_text("Description", "compressed zTXt " * 20, zip=True)
        info.add_itxt("Author", "作者 iTXt", lang="zh", tkey="作者")
        planted: list[str] = []
        if name == "png-preloaded":
            info.add_text("AIGC", OLD)
            info.add_text("AIGC", OLD, zip=True)
            info.add_itxt("AIGC", OLD)
            planted = ["png-text", "png-ztxt", "png-itxt", "xmp-attribute", "exif-usercomment"]
        info.add_itxt("XML:com.adobe.xmp", xmp_packet(aigc_attr=OLD if planted else None).decode())
        exif = planted_exif if planted else exif_blob()
        data = _save(coffee, "PNG", pnginfo=info, exif=exif, icc_profile=icc_profile())
        texts = {"Comment": "plain tEXt", "Description": "compressed zTXt " * 20,
                 "Author": "作者 iTXt"}
        return Sample(name, "png", data, exif=True, icc=True, title=TITLE, texts=texts,
                      planted=planted)
    if name == "png-apng":
        frames = _gif_frames()
        data = _save(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=70)
        return Sample(name, "png", data, frames=len(frames))
    if name == "webp-lossy":
        return Sample(name, "webp", _save(astro, "WEBP", quality=80))
    if name == "webp-lossless-alpha":
        rgba = astro.convert("RGBA")
        rgba.putalpha(Image.linear_gradient("L").resize(rgba.size))
        return Sample(name, "webp", _save(rgba, "WEBP", lossless=True))
    if name == "webp-rich":
        data = _save(coffee, "WEBP", quality=80, exif=exif_blob(), icc_profile=icc_profile(),
                     xmp=xmp_packet())
        return Sample(name, "webp", data, exif=True, icc=True, title=TITLE)
    if name == "webp-anim":
        frames = _gif_frames()
        data = _save(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=70,
                     lossless=True, exif=exif_blob(), xmp=xmp_packet())
        return Sample(name, "webp", data, frames=len(frames), exif=True, title=TITLE)
    if name == "webp-preloaded":
        data = _save(coffee, "WEBP", quality=80, exif=planted_exif, icc_profile=icc_profile(),
                     xmp=xmp_packet(aigc_attr=OLD))
        return Sample(name, "webp", data, exif=True, icc=True, title=TITLE,
                      planted=["exif-usercomment", "xmp-attribute"])
    if name == "gif-anim":
        return Sample(name, "gif", skimage_path("no_time_for_that_tiny.gif").read_bytes(),
                      frames=24)
    if name in ("gif-rich", "gif-preloaded"):
        frames = _gif_frames()  # re-encoded by Pillow, to add a comment and a loop count
        data = _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=70,
                     loop=0, comment=b"a GIF comment")
        planted = []
        if name == "gif-rich":
            blocks = gif_xmp_extension(xmp_packet())
        else:
            blocks = gif_xmp_extension(xmp_packet(aigc_attr=OLD)) + gif_xmp_extension(
                xmp_packet(title=None, aigc_elem=OLD)
            )
            planted = ["xmp-attribute", "xmp-element"]
        data = _gif_insert_before_first_image(data, blocks)
        return Sample(name, "gif", data, frames=len(frames), title=TITLE,
                      texts={"comment": "a GIF comment"}, planted=planted)
    if name == "gif-87a":
        data = _save(coffee.convert("P"), "GIF")
        assert data[:6] == b"GIF87a"
        return Sample(name, "gif", data)
    if name == "tiff-multipage":
        return Sample(name, "tiff", skimage_path("multipage.tif").read_bytes(), frames=2)
    if name == "tiff-rich":
        exif = Image.Exif()
        exif.load(exif_blob(endian="<"))
        exif[700] = xmp_packet()
        data = _save(astro, "TIFF", exif=exif.tobytes(), icc_profile=icc_profile())
        return Sample(name, "tiff", data, exif=True, icc=True, title=TITLE)
    if name == "tiff-preloaded":
        exif = Image.Exif()
        exif.load(planted_exif)
        exif[700] = xmp_packet(aigc_attr=OLD)
        data = _save(coffee, "TIFF", exif=exif.tobytes())
        return Sample(name, "tiff", data, exif=True, title=TITLE,
                      planted=["xmp-attribute", "exif-usercomment"])
    if name == "tiff-bigendian":
        packets = [xmp_packet(), xmp_packet(title=None, aigc_elem=OLD), None]
        return Sample(name, "tiff", _tiff_be(packets), frames=3, title=TITLE,
                      planted=["xmp-element"])
    raise KeyError(name)


SAMPLE_NAMES = (
    "jpeg-plain", "jpeg-rich", "jpeg-progressive", "jpeg-preloaded",
    "png-plain", "png-rich", "png-preloaded", "png-apng",
    "webp-lossy", "webp-lossless-alpha", "webp-rich", "webp-anim", "webp-preloaded",
    "gif-anim", "gif-rich", "gif-preloaded", "gif-87a",
    "tiff-multipage", "tiff-rich", "tiff-preloaded", "tiff-bigendian",
)  # fmt: skip

# The samples with AIGC carriers planted by other tools (Sample.planted is not empty).
PLANTED = tuple(n for n in SAMPLE_NAMES if n.endswith("-preloaded")) + ("tiff-bigendian",)


@functools.cache
def sample(name: str) -> Sample:
    """Build (once) the named sample."""
    return _build(name)


# -- independent readers ----------------------------------------------------------------------


def frames_rgba(data: bytes) -> list[np.ndarray]:
    """Every frame decoded by Pillow, as RGBA arrays."""
    out = []
    with Image.open(io.BytesIO(data)) as im:
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            out.append(np.asarray(im.convert("RGBA")))
    return out


EXIFTOOL = shutil.which("exiftool")


def exiftool(*args: str) -> str:
    """Run exiftool and return its stdout."""
    assert EXIFTOOL is not None
    done = subprocess.run([EXIFTOOL, *args], capture_output=True, text=True, timeout=60)
    return done.stdout


def exiftool_warnings(path: Path) -> set[str]:
    """The warnings of ``exiftool -validate``, one string each."""
    lines = exiftool("-validate", "-warning", "-a", "-s3", str(path)).splitlines()
    return set(lines[1:])  # the first line is the summary ("OK", "3 Warnings")


# -- raw injection, for files Pillow will not write (bad XMP) ----------------------------------


def with_raw_xmp(fmt: str, packet: bytes) -> bytes:
    """A small file of the format whose XMP carrier holds exactly ``packet`` (even if bad)."""
    im = photo("coffee.png", (40, 30))
    if fmt == "jpeg":
        data = _save(im, "JPEG")
        segment = _jpeg_segment(0xE1, b"http://ns.adobe.com/xap/1.0/\0" + packet)
        return data[:2] + segment + data[2:]
    if fmt == "png":
        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", packet.decode("utf-8", "replace"))
        return _save(im, "PNG", pnginfo=info)
    if fmt == "webp":
        return _save(im, "WEBP", xmp=packet)
    if fmt == "gif":
        return _gif_insert_before_first_image(_save(im, "GIF"), gif_xmp_extension(packet))
    if fmt == "tiff":
        exif = Image.Exif()
        exif[700] = packet
        return _save(im, "TIFF", exif=exif.tobytes())
    raise KeyError(fmt)


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, first 32 payload bytes) of each segment before SOS: an independent walker."""
    out, pos = [], 2
    while data[pos + 1] != 0xDA:
        marker, length = data[pos + 1], struct.unpack_from(">H", data, pos + 2)[0]
        out.append((marker, data[pos + 4 : pos + 4 + min(32, length - 2)]))
        pos += 2 + length
    return out


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of each PNG chunk: an independent walker."""
    out, pos = [], 8
    while pos < len(data):
        length, ctype = struct.unpack_from(">I4s", data, pos)
        out.append((ctype, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def riff_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(FourCC, payload) of each top-level WebP chunk: an independent walker."""
    out, pos = [], 12
    while pos < len(data):
        fourcc, size = struct.unpack_from("<4sI", data, pos)
        out.append((fourcc, data[pos + 8 : pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return out
