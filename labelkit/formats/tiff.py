"""TIFF (classic, both byte orders): IFD walker, AIGC carriers, labeling with tag 700.

Labeling appends rewritten IFDs (and the new XMP) at the end of the file and points the header
(or the previous rewritten IFD) at them: TIFF offsets are absolute, so every other IFD, value
and strip stays where it is and remains valid.

The essence is, per IFD, the image-structure tag values and the strip/tile bytes. Colour
management (ICC profile, tag 34675; WhitePoint, PrimaryChromaticities) is left out, like in the
other formats: platforms convert or strip profiles routinely, and the fingerprint and the
watermark cover the appearance.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field, replace
from typing import Iterator

from .. import exif
from .. import xmp as xmp_packet
from ..errors import CorruptInput, UnsupportedFormat
from ..exif import (
    INT_FORMATS,
    TYPE_SIZES,
    Ifd,
    IfdEntry,
    read_ifd,
    read_ints,
    value_bytes,
)
from ..limits import Limits
from . import Carrier, ParsedFile, check_count, check_pixels, check_same_format, icc_fits, register

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "TiffFile"]

NAME = "tiff"
MIME = "image/tiff"
EXTENSIONS = (".tif", ".tiff")
MODALITY = "image"

TAG_WIDTH, TAG_HEIGHT, TAG_XMP = 256, 257, 700
STRIP_OFFSETS, STRIP_COUNTS, TILE_OFFSETS, TILE_COUNTS = 273, 279, 324, 325
# Tags that define how the strip/tile bytes become pixels: part of the essence. Beyond the
# basic eight (size, bits, compression, photometric, samples, planar, predictor), the layout
# (rows per strip, tile size), palette, extra/sample formats, JPEG tables and subsampling.
STRUCTURE_TAGS = (256, 257, 258, 259, 262, 277, 278, 284, 317, 320, 322, 323, 338, 339, 347, 530)
# IFD0 tags that describe an encoding: with ``metadata_from`` they come from the new encoding and
# every other IFD0 tag from the original. Beyond the structure and strip/tile tags: subfile
# type, fill order, sample ranges, free space, SubIFDs (reduced-resolution copies of the old
# pixels: never carried), old-style JPEG and the YCbCr conversion.
IMAGE_TAGS = frozenset(STRUCTURE_TAGS) | {
    254, 255, 266, 273, 279, 280, 281, 288, 289, 324, 325, 330,
    *range(512, 522), 529, 531, 532, 32997, 32998,
}  # fmt: skip
TAG_ICC, GPS_IFD, INTEROP_IFD, MAKER_NOTE = 34675, 34853, 40965, 37500
# The sub-IFDs carried with the original's metadata, by the IFD that points at them.
_SUB_IFDS = {0: (exif.EXIF_IFD, GPS_IFD), exif.EXIF_IFD: (INTEROP_IFD,)}
# Photometric interpretation -> the ICC colour space that fits it.
_PHOTOMETRIC_SPACE = {0: b"GRAY", 1: b"GRAY", 2: b"RGB ", 3: b"RGB ", 5: b"CMYK", 6: b"RGB "}
# struct code of one element of each type, for converting values between byte orders.
_SWAP_FORMATS = {**INT_FORMATS, 5: "I", 10: "i", 11: "f", 12: "d"}
_XMP_TYPES = (1, 7)  # XMLPacket is BYTE or UNDEFINED (XMP spec part 3); new ones get BYTE


def accept(prefix: bytes) -> bool:
    """Whether the bytes start with a TIFF (or BigTIFF) header in either byte order."""
    return prefix[:4] in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


@dataclass(frozen=True)
class _Page:
    """One IFD of the main chain, with what labeling and hashing need from it."""

    ifd: Ifd
    width: int
    height: int
    structure: bytes  # canonical (big-endian) image-structure tag values
    strips: tuple[tuple[int, int], ...]  # (offset, byte count) of each strip or tile
    xmp: bytes | None
    xmp_aigc: bool
    exif_ifd: Ifd | None
    comment_aigc: bool


@dataclass
class TiffFile(ParsedFile):
    """A parsed TIFF: its IFD chain, carriers and what labeling needs to rewrite it."""

    _endian: str = field(repr=False)
    _pages: list[_Page] = field(repr=False)
    format: str = NAME

    def essence(self) -> Iterator[bytes | memoryview]:
        """Yield, per IFD, its image-structure values and then its strip/tile bytes."""
        view = memoryview(self._data)
        for page in self._pages:
            yield page.structure
            for offset, count in page.strips:
                yield view[offset : offset + count]

    def with_label(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: TiffFile | None = None,
    ) -> bytes:
        """Return the file with tag 700 of IFD0 holding the label; other carriers gone.

        With ``metadata_from``, IFD0 keeps this file's image tags (``IMAGE_TAGS``) and takes
        every other tag from the original's IFD0, Exif/GPS/Interop IFDs relocated with it.
        """
        check_same_format(self, metadata_from)
        src = metadata_from if metadata_from is not None else self
        base = xmp if xmp is not None else src.xmp
        packet = xmp_packet.set_aigc(base, label_json, source=self.source, limits=self._limits)
        pages = self._pages
        last = max([0] + [i for i, p in enumerate(pages) if p.xmp_aigc or p.comment_aigc])
        writer = _Appender(len(self._data), self._endian)
        next_offset = pages[last].ifd.next_offset
        # Place IFDs from the last rewritten one back to IFD0, so each knows where its
        # successor went.
        for i in range(last, -1, -1):
            page = pages[i]
            entries = {e.tag: bytes(self._data[e.pos : e.pos + 12]) for e in page.ifd.entries}
            if i == 0 and metadata_from is not None:
                entries = {t: e for t, e in entries.items() if t in IMAGE_TAGS}
                entries.update(metadata_from._carried(writer, self))
                page = replace(page, comment_aigc=False)  # its Exif IFD was dropped
            new_xmp = packet if i == 0 else None
            if i and page.xmp_aigc:
                assert page.xmp is not None
                new_xmp = xmp_packet.strip_aigc(page.xmp, source=self.source, limits=self._limits)
            if new_xmp is not None:
                old = page.ifd.get(TAG_XMP)
                typ = old.type if old and old.type in _XMP_TYPES else _XMP_TYPES[0]
                entries[TAG_XMP] = writer.entry(TAG_XMP, typ, len(new_xmp), new_xmp)
            if page.comment_aigc:
                self._drop_user_comment(page, entries, writer)
            next_offset = writer.place(_ifd_bytes(entries, next_offset, self._endian))
        if writer.end > 0xFFFFFFFF:
            raise UnsupportedFormat(
                "labeling would grow the file past 4 GiB (BigTIFF is not supported)",
                source=self.source,
            )
        view = memoryview(self._data)
        header = bytes(view[:4]) + struct.pack(self._endian + "I", next_offset)
        return b"".join([header, *self._blanked(view), writer.tail])

    def _blanked(self, view: memoryview) -> list[bytes | memoryview]:
        """The original bytes after the header, with the replaced labels' values zeroed.

        The rewritten IFDs no longer point at them; zeroing leaves no stale label in the file.
        A value that overlaps strip data or an IFD (a crafted file) is left alone rather than
        risk the picture.
        """
        ranges = []
        kept = [(o, o + n) for page in self._pages for o, n in page.strips]
        for page in self._pages:
            old = [page.ifd.get(TAG_XMP)] if page.xmp_aigc else []
            if page.comment_aigc and page.exif_ifd is not None:
                old.append(page.exif_ifd.get(exif.USER_COMMENT))
            ranges += [(e.value_pos, e.value_pos + e.size) for e in old if e and not e.inline]
            for ifd in (page.ifd, page.exif_ifd):
                if ifd is not None:
                    kept.append((ifd.pos, ifd.pos + 6 + 12 * len(ifd.entries)))
        parts: list[bytes | memoryview] = []
        pos = 8
        for start, end in sorted(ranges):
            start = max(start, pos)
            if start >= end or any(s < end and start < e for s, e in kept):
                continue
            parts += [view[pos:start], bytes(end - start)]
            pos = end
        parts.append(view[pos:])
        return parts

    def _drop_user_comment(
        self, page: _Page, entries: dict[int, bytes], writer: _Appender
    ) -> None:
        """Point the IFD at a copy of its Exif IFD without UserComment (or drop it if empty)."""
        assert page.exif_ifd is not None
        kept = {
            e.tag: bytes(self._data[e.pos : e.pos + 12])
            for e in page.exif_ifd.entries
            if e.tag != exif.USER_COMMENT
        }
        pointer = page.ifd.get(exif.EXIF_IFD)
        assert pointer is not None
        if not kept:
            del entries[exif.EXIF_IFD]  # an IFD may not be empty
            return
        offset = writer.place(_ifd_bytes(kept, page.exif_ifd.next_offset, self._endian))
        entries[exif.EXIF_IFD] = struct.pack(
            self._endian + "HHII", exif.EXIF_IFD, pointer.type, 1, offset
        )


    def _carried(self, writer: _Appender, new: TiffFile) -> dict[int, bytes]:
        """The original's IFD0 metadata entries, values and sub-IFDs appended to ``writer``."""
        page = self._pages[0]
        entries: dict[int, bytes] = {}
        for e in page.ifd.entries:
            if e.tag in IMAGE_TAGS or e.tag == TAG_XMP:
                continue  # the new encoding's / merged into the label packet
            if e.tag == TAG_ICC and not self._icc_fits(e, new):
                continue  # a profile for another colour space would mis-colour the new pixels
            blob = self._copy(e, writer, 0, page.comment_aigc)
            if blob is not None:
                entries[e.tag] = blob
        return entries

    def _icc_fits(self, e: IfdEntry, new: TiffFile) -> bool:
        """Whether the original's ICC profile fits the new encoding's photometric."""
        photometric = new._pages[0].ifd.get(262)
        if photometric is None:
            return False
        code = read_ints(new._data, photometric, new._endian, new.source, "IFD0")[0]
        profile = value_bytes(self._data, e, self.source, "IFD0")
        return icc_fits(profile, _PHOTOMETRIC_SPACE.get(code))

    def _copy(self, e: IfdEntry, writer: _Appender, level: int, drop_comment: bool) -> bytes | None:
        """One entry for the output IFD (converted to its byte order); None to leave it out."""
        if e.tag == MAKER_NOTE:
            # Maker notes often hold offsets relative to the original file: moved, they would
            # point at garbage.
            return None
        if level == exif.EXIF_IFD and e.tag == exif.USER_COMMENT and drop_comment:
            return None  # the AIGC label that the new packet replaces
        what = f"IFD{'0' if not level else f' {level:#x}'} of the original"
        if e.tag in _SUB_IFDS.get(level, ()):
            offset = read_ints(self._data, e, self._endian, self.source, what)[0]
            sub = read_ifd(self._data, 0, offset, self._endian, self.source, f"tag {e.tag} IFD")
            copies = {s.tag: self._copy(s, writer, e.tag, drop_comment) for s in sub.entries}
            kept = {tag: blob for tag, blob in copies.items() if blob is not None}
            if not kept:
                return None  # an IFD may not be empty
            place = writer.place(_ifd_bytes(kept, 0, writer.endian))
            return struct.pack(writer.endian + "HHII", e.tag, 4, 1, place)
        raw = value_bytes(self._data, e, self.source, what)
        if e.inline:
            raw = raw[: e.size]
        if writer.endian != self._endian:
            raw = _swap(raw, e.type, self._endian, writer.endian)
        return writer.entry(e.tag, e.type, e.count, raw)


def _swap(raw: bytes, typ: int, src: str, dst: str) -> bytes:
    """Convert a value between byte orders (bytes, text and unknown types stay as they are)."""
    fmt = _SWAP_FORMATS.get(typ)
    if fmt is None or TYPE_SIZES[typ] == 1:
        return raw
    n = len(raw) // struct.calcsize(fmt)
    return struct.pack(f"{dst}{n}{fmt}", *struct.unpack(f"{src}{n}{fmt}", raw))


class _Appender:
    """Collects blobs appended to the file, each on a word (even) boundary."""

    def __init__(self, file_size: int, endian: str) -> None:
        self.start = file_size
        self.endian = endian
        self.tail = bytearray()

    @property
    def end(self) -> int:
        """The file size once the tail is appended."""
        return self.start + len(self.tail)

    def place(self, blob: bytes) -> int:
        """Append blob and return its absolute offset."""
        if self.end & 1:
            self.tail.append(0)
        offset = self.end
        self.tail += blob
        return offset

    def entry(self, tag: int, typ: int, count: int, value: bytes) -> bytes:
        """Return an IFD entry for value, placing the value out of line when over 4 bytes."""
        if len(value) <= 4:
            field_ = value.ljust(4, b"\0")
        else:
            field_ = struct.pack(self.endian + "I", self.place(value))
        return struct.pack(self.endian + "HHI", tag, typ, count) + field_


def _ifd_bytes(entries: dict[int, bytes], next_offset: int, endian: str) -> bytes:
    """Serialize an IFD from raw 12-byte entries, sorted by tag as TIFF requires."""
    table = b"".join(entries[tag] for tag in sorted(entries))
    return struct.pack(endian + "H", len(entries)) + table + struct.pack(endian + "I", next_offset)


def _raw(data: bytes, entry: IfdEntry, source: str, what: str) -> bytes:
    return value_bytes(data, entry, source, what)


def _ints(data: bytes, entry: IfdEntry, endian: str, source: str, what: str) -> tuple[int, ...]:
    return read_ints(data, entry, endian, source, what)


def _structure(data: bytes, ifd: Ifd, endian: str, source: str, what: str) -> bytes:
    """The image-structure tags in a byte-order independent form, for the essence digest."""
    parts = []
    for tag in STRUCTURE_TAGS:
        entry = ifd.get(tag)
        if entry is None:
            continue
        parts.append(struct.pack(">HHI", tag, entry.type, entry.count))
        fmt = INT_FORMATS.get(entry.type)
        if fmt is None:
            parts.append(_raw(data, entry, source, what))
        else:
            values = _ints(data, entry, endian, source, what)
            parts.append(struct.pack(f">{entry.count}{fmt}", *values))
    return b"".join(parts)


def _page(
    data: bytes,
    ifd: Ifd,
    index: int,
    endian: str,
    source: str,
    limits: Limits,
    carriers: list[Carrier],
) -> _Page:
    """Read one IFD's size, strips, structure and AIGC carriers."""
    what = f"IFD{index} at {ifd.pos:#x}"
    width_e, height_e = ifd.get(TAG_WIDTH), ifd.get(TAG_HEIGHT)
    if width_e is None or height_e is None:
        raise CorruptInput(f"{what} lacks ImageWidth/ImageLength", source=source)
    width = _ints(data, width_e, endian, source, what)[0]
    height = _ints(data, height_e, endian, source, what)[0]
    check_pixels(width, height, source, limits, what)

    offsets_e = ifd.get(STRIP_OFFSETS) or ifd.get(TILE_OFFSETS)
    counts_e = ifd.get(STRIP_COUNTS) or ifd.get(TILE_COUNTS)
    if offsets_e is None or counts_e is None:
        raise CorruptInput(f"{what} has no strip or tile offsets/byte counts", source=source)
    check_count(offsets_e.count, source, limits, f"strips/tiles in {what}")
    offsets = _ints(data, offsets_e, endian, source, what)
    counts = _ints(data, counts_e, endian, source, what)
    if len(offsets) != len(counts):
        raise CorruptInput(
            f"{what} has {len(offsets)} strip offsets but {len(counts)} byte counts",
            source=source,
        )
    for n, (offset, count) in enumerate(zip(offsets, counts)):
        if offset < 8 and count:
            # Labeling rewrites the header (the IFD0 offset): pixels there would change.
            raise CorruptInput(
                f"strip/tile {n} of {what} ({count} bytes at {offset:#x}) overlaps the TIFF header",
                source=source,
            )
        if offset + count > len(data):
            raise CorruptInput(
                f"strip/tile {n} of {what} ({count} bytes at {offset:#x}) runs past the end of "
                "the file (truncated)",
                source=source,
            )

    packet, xmp_aigc = None, False
    xmp_e = ifd.get(TAG_XMP)
    if xmp_e is not None:
        packet = _raw(data, xmp_e, source, what)
        where = f"{what} tag 700 (XMP)"
        found = xmp_packet.find_aigc(packet, source, limits, where=where)
        carriers.extend(Carrier(k, where, v) for k, v in found)
        xmp_aigc = bool(found)

    # The same reader as for EXIF blobs in other formats, so the two cannot disagree.
    comment = exif.locate_user_comment(data, 0, ifd, endian, source, limits, what)
    exif_ifd, comment_aigc = comment.exif_ifd if comment else None, False
    pointer = ifd.get(exif.EXIF_IFD)
    if exif_ifd is None and pointer is not None:  # an Exif IFD without a UserComment
        offset = _ints(data, pointer, endian, source, what)[0]
        exif_ifd = read_ifd(data, 0, offset, endian, source, f"Exif IFD of {what}")
    if comment is not None and exif.looks_like_aigc(comment.text):
        where = f"Exif IFD of {what} UserComment"
        carriers.append(Carrier("exif-usercomment", where, comment.text))
        comment_aigc = True
    structure = _structure(data, ifd, endian, source, what)
    strips = tuple(zip(offsets, counts))
    return _Page(ifd, width, height, structure, strips, packet, xmp_aigc, exif_ifd, comment_aigc)


def parse(data: bytes, source: str, limits: Limits) -> TiffFile:
    """Parse a classic TIFF's IFD chain and AIGC carriers without decoding pixels."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if len(data) < 8:
        raise CorruptInput("truncated TIFF header", source=source)
    endian = exif.tiff_byteorder(data, 0, source)
    magic, ifd_offset = struct.unpack_from(endian + "HI", data, 2)
    if magic == 43:
        raise UnsupportedFormat("BigTIFF is not supported (classic TIFF only)", source=source)
    if magic != 42:
        raise CorruptInput(f"bad TIFF magic number {magic}", source=source)
    carriers: list[Carrier] = []
    pages: list[_Page] = []
    seen: set[int] = set()
    entries = 0
    while ifd_offset:
        if ifd_offset in seen:
            raise CorruptInput(f"the IFD chain loops back to {ifd_offset:#x}", source=source)
        seen.add(ifd_offset)
        ifd = read_ifd(data, 0, ifd_offset, endian, source, f"IFD{len(pages)}")
        entries += len(ifd.entries)
        check_count(entries, source, limits, "TIFF IFD entries")
        pages.append(_page(data, ifd, len(pages), endian, source, limits, carriers))
        ifd_offset = ifd.next_offset
    if not pages:
        raise CorruptInput("the file has no IFD", source=source)
    first = pages[0]
    return TiffFile(
        source, first.width, first.height, len(pages), carriers, first.xmp, data, limits,
        _endian=endian, _pages=pages,
    )


register(sys.modules[__name__])
