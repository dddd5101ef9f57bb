"""EXIF UserComment as an AIGC carrier: read it, recognise a label, remove it when relabeling.

Reading uses Pillow's ``Image.Exif``. Removal needs byte offsets Pillow does not expose, so a
small TIFF IFD walker (also used by the TIFF handler) edits the blob in place: every other
EXIF byte keeps its offset, so maker notes and thumbnails stay valid.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from PIL import Image

from .errors import CorruptInput, LimitExceeded
from .limits import DEFAULT_LIMITS, Limits

__all__ = [
    "USER_COMMENT",
    "EXIF_IFD",
    "TYPE_SIZES",
    "IfdEntry",
    "Ifd",
    "read_ifd",
    "tiff_byteorder",
    "decode_user_comment",
    "looks_like_aigc",
    "find_aigc",
    "strip_aigc",
]

USER_COMMENT = 0x9286
EXIF_IFD = 0x8769
EXIF_HEADER = b"Exif\x00\x00"

# Byte size of one value of each TIFF field type (TIFF 6.0 and its BigTIFF-free extensions).
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}

_AIGC_RE = re.compile(r'\s*\{.*"(?:Label|AIGC)"\s*:', re.DOTALL)


@dataclass(frozen=True)
class IfdEntry:
    """One 12-byte IFD entry, with the absolute position of its value bytes."""

    tag: int
    type: int
    count: int
    pos: int  # absolute offset of the entry itself
    value_pos: int  # absolute offset of the value (inline in the entry when it fits)
    size: int  # value size in bytes (count * type size; 4 for unknown types)

    @property
    def inline(self) -> bool:
        """Whether the value sits inside the entry (4 bytes or less)."""
        return self.size <= 4


@dataclass(frozen=True)
class Ifd:
    """An image file directory: where it is, its entries and the next IFD's offset."""

    pos: int  # absolute offset of the entry count
    entries: tuple[IfdEntry, ...]
    next_offset: int  # relative to the TIFF header, 0 at the end of the chain

    def get(self, tag: int) -> IfdEntry | None:
        """Return the entry with this tag, if any."""
        for entry in self.entries:
            if entry.tag == tag:
                return entry
        return None


def tiff_byteorder(data: bytes | memoryview, base: int, source: str) -> str:
    """Return the struct byte-order character of the TIFF header at ``base``."""
    mark = bytes(data[base : base + 2])
    if mark == b"II":
        return "<"
    if mark == b"MM":
        return ">"
    raise CorruptInput(f"no TIFF byte-order mark at offset {base:#x}", source=source)


def read_ifd(
    data: bytes | memoryview, base: int, offset: int, endian: str, source: str, what: str
) -> Ifd:
    """Read the IFD at ``offset`` (relative to the TIFF header at ``base``)."""
    pos = base + offset
    if offset < 8 or pos + 2 > len(data):
        raise CorruptInput(f"{what} offset {offset:#x} is outside the data", source=source)
    (count,) = struct.unpack_from(endian + "H", data, pos)
    if pos + 2 + 12 * count + 4 > len(data):
        raise CorruptInput(
            f"{what} at {pos:#x} with {count} entries runs past the end", source=source
        )
    entries = []
    unpack = struct.Struct(endian + "HHI").unpack_from
    for i in range(count):
        at = pos + 2 + 12 * i
        tag, typ, n = unpack(data, at)
        size = n * TYPE_SIZES[typ] if typ in TYPE_SIZES else 4  # unknown type: keep opaque
        if size <= 4:
            value_pos = at + 8
        else:
            (value_offset,) = struct.unpack_from(endian + "I", data, at + 8)
            value_pos = base + value_offset
        entries.append(IfdEntry(tag, typ, n, at, value_pos, size))
    (next_offset,) = struct.unpack_from(endian + "I", data, pos + 2 + 12 * count)
    return Ifd(pos, tuple(entries), next_offset)


def decode_user_comment(raw: bytes, endian: str) -> str:
    """Decode a UserComment value: its 8-byte charset prefix, then the text."""
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\x00":
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            codec = "utf-16"
        elif len(body) >= 2 and body[0] and not body[1]:
            codec = "utf-16-le"  # some writers ignore the EXIF byte order; ASCII text tells
        elif len(body) >= 2 and body[1] and not body[0]:
            codec = "utf-16-be"
        else:
            codec = "utf-16-le" if endian == "<" else "utf-16-be"
        text = body.decode(codec, errors="replace")
    elif prefix in (b"ASCII\x00\x00\x00", b"\x00" * 8, b"JIS\x00\x00\x00\x00\x00"):
        text = body.decode("utf-8", errors="replace")
    else:
        text = raw.decode("utf-8", errors="replace")  # no prefix at all: a sloppy writer
    return text.rstrip("\x00 ")


def looks_like_aigc(text: str) -> bool:
    """Whether a text is (or tries to be) an AIGC JSON label, bare or wrapped in "AIGC"."""
    return _AIGC_RE.match(text) is not None


def _user_comment(
    blob: bytes | memoryview, source: str, limits: Limits, where: str
) -> str | None:
    where = f" in {where}" if where else ""
    blob = bytes(blob)
    if len(blob) > limits.max_metadata_bytes:
        raise LimitExceeded(
            f"EXIF block{where} is {len(blob)} bytes, over the limit of "
            f"{limits.max_metadata_bytes}",
            source=source,
        )
    if b"\x92\x86" not in blob and b"\x86\x92" not in blob:
        return None  # the tag number (either byte order) is absent: no UserComment to read
    exif = Image.Exif()
    try:
        exif.load(blob)
        raw = exif.get_ifd(EXIF_IFD).get(USER_COMMENT)
    except Exception as exc:  # Pillow raises many types on broken EXIF; all mean corrupt
        raise CorruptInput(f"unreadable EXIF block{where}: {exc}", source=source) from None
    if raw is None:
        return None
    if isinstance(raw, str):  # a writer used type ASCII instead of UNDEFINED
        raw = raw.encode("utf-8")
    return decode_user_comment(bytes(raw), exif.endian or "<")


def find_aigc(
    blob: bytes | memoryview, source: str, limits: Limits = DEFAULT_LIMITS, *, where: str = ""
) -> str | None:
    """Return the EXIF UserComment text if it carries an AIGC label, else None."""
    text = _user_comment(blob, source, limits, where)
    return text if text is not None and looks_like_aigc(text) else None


def _remove_entry(buf: bytearray, ifd: Ifd, entry: IfdEntry, endian: str) -> None:
    """Delete one entry from an IFD in place; the IFD keeps its size (12 zero bytes at its end)."""
    count = len(ifd.entries)
    start = ifd.pos + 2
    table = bytes(buf[start : start + 12 * count + 4])
    i = (entry.pos - start) // 12
    table = table[: 12 * i] + table[12 * (i + 1) :] + bytes(12)
    buf[start : start + len(table)] = table
    struct.pack_into(endian + "H", buf, ifd.pos, count - 1)


def strip_aigc(blob: bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Return the EXIF blob without an AIGC UserComment; the same object if it has none."""
    if find_aigc(blob, source, limits) is None:
        return blob
    base = 0
    while blob.startswith(EXIF_HEADER, base):  # some writers repeat it; Pillow skips both
        base += len(EXIF_HEADER)
    endian = tiff_byteorder(blob, base, source)
    if len(blob) < base + 8:
        raise CorruptInput("EXIF block is shorter than its TIFF header", source=source)
    (ifd0_offset,) = struct.unpack_from(endian + "I", blob, base + 4)
    ifd0 = read_ifd(blob, base, ifd0_offset, endian, source, "EXIF IFD0")
    pointer = ifd0.get(EXIF_IFD)
    if pointer is None:
        raise CorruptInput("EXIF UserComment without an Exif IFD pointer", source=source)
    (exif_offset,) = struct.unpack_from(endian + "I", blob, pointer.value_pos)
    exif_ifd = read_ifd(blob, base, exif_offset, endian, source, "Exif IFD")
    entry = exif_ifd.get(USER_COMMENT)
    if entry is None:
        raise CorruptInput("cannot locate the EXIF UserComment to remove it", source=source)
    buf = bytearray(blob)
    if not entry.inline and entry.value_pos + entry.size <= len(buf):
        # Blank the old label too, so no stale copy lingers in unreferenced bytes.
        buf[entry.value_pos : entry.value_pos + entry.size] = bytes(entry.size)
    _remove_entry(buf, exif_ifd, entry, endian)
    if len(exif_ifd.entries) == 1:
        # An IFD must not be empty: drop the pointer to the now empty Exif IFD.
        _remove_entry(buf, ifd0, pointer, endian)
    result = bytes(buf)
    if find_aigc(result, source, limits) is not None:
        raise CorruptInput("could not remove the AIGC EXIF UserComment", source=source)
    return result
