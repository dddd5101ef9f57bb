"""PNG (and APNG): chunk walker, AIGC carriers, labeling with an XMP iTXt chunk after IHDR.

The essence is the chunks that make the picture (IHDR, PLTE, tRNS, IDAT and the APNG frames).
Colour management (iCCP, sRGB, gAMA, cHRM, cICP) is left out on purpose: platforms convert or
strip it routinely, and the fingerprint and the watermark cover the appearance.

XMP is read wherever writers put it: iTXt (the standard place), tEXt/zTXt with the same
keyword, and ImageMagick's hex-encoded "Raw profile type xmp"; the first packet found is the one
labeling merges into, the others lose their AIGC property.
"""

from __future__ import annotations

import struct
import sys
import zlib
from dataclasses import dataclass, field
from typing import Iterator

from .. import exif
from .. import xmp as xmp_packet
from ..errors import CorruptInput, LimitExceeded
from ..limits import Limits
from . import Carrier, ParsedFile, check_count, check_pixels, check_same_format, icc_fits, register

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "PngFile"]

NAME = "png"
MIME = "image/png"
EXTENSIONS = (".png", ".apng")
MODALITY = "image"

SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = b"XML:com.adobe.xmp"
AIGC_KEYWORD = b"AIGC"
RAW_XMP_KEYWORD = b"Raw profile type xmp"  # ImageMagick: hex digits with a small header
_KEYWORDS = (XMP_KEYWORD, AIGC_KEYWORD, RAW_XMP_KEYWORD)
# Chunks that carry the picture (and its animation), hashed as the essence.
ESSENCE_TYPES = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"acTL", b"fcTL", b"fdAT"})
_TEXT_KINDS = {b"tEXt": "png-text", b"iTXt": "png-itxt", b"zTXt": "png-ztxt"}
# Ancillary chunks carried by ``metadata_from`` although unsafe-to-copy (upper-case 4th letter)
# by the PNG rules: their meaning does not depend on the image data. Other unsafe-to-copy
# chunks (a dSIG or C2PA caBX signing the old bytes) must go when the pixels change.
_KNOWN_META = frozenset({
    b"iCCP", b"sRGB", b"gAMA", b"cHRM", b"cICP", b"mDCV", b"mDCv", b"cLLI", b"cLLi", b"sBIT",
    b"bKGD", b"hIST", b"pHYs", b"sPLT", b"tIME", b"tEXt", b"zTXt", b"iTXt", b"eXIf", b"oFFs",
    b"pCAL", b"sCAL", b"sTER",
})  # fmt: skip
# Chunks whose values are in the colour type's terms: carried only to the same colour type.
_PIXEL_FORMAT_BOUND = frozenset({b"sBIT", b"bKGD", b"hIST"})

_HEAD = struct.Struct(">I4s")


def accept(prefix: bytes) -> bool:
    """Whether the bytes start with the PNG signature."""
    return prefix.startswith(SIGNATURE)


@dataclass(frozen=True)
class _Chunk:
    type: bytes
    start: int  # offset of the length field
    end: int  # offset just past the CRC

    @property
    def data(self) -> slice:
        """The slice of the file holding the chunk data."""
        return slice(self.start + 8, self.end - 4)


def _chunk(ctype: bytes, payload: bytes) -> bytes:
    """Serialize one chunk with its length and CRC."""
    crc = zlib.crc32(payload, zlib.crc32(ctype))
    return _HEAD.pack(len(payload), ctype) + payload + struct.pack(">I", crc)


def _inflate(blob: bytes | memoryview, what: str, source: str, limits: Limits) -> bytes:
    """Decompress a zlib stream, refusing output over the metadata limit (zip bomb)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(blob, limits.max_metadata_bytes + 1)
    except zlib.error as exc:
        raise CorruptInput(f"{what}: bad compressed data ({exc})", source=source) from None
    if len(out) > limits.max_metadata_bytes:
        raise LimitExceeded(
            f"{what} inflates to more than {limits.max_metadata_bytes} bytes", source=source
        )
    if not inflater.eof:
        raise CorruptInput(f"{what}: compressed data is truncated", source=source)
    return out


def _split_text(
    ctype: bytes, body: bytes, what: str, source: str, limits: Limits
) -> tuple[bytes, bytes, bool]:
    """Return (keyword, text bytes, compressed) of a tEXt/zTXt/iTXt chunk."""
    keyword, sep, rest = body.partition(b"\0")
    if not sep:
        raise CorruptInput(f"{what} has no keyword terminator", source=source)
    if ctype == b"tEXt":
        return keyword, rest, False
    if ctype == b"zTXt":
        if rest[:1] != b"\0":
            raise CorruptInput(f"{what} uses an unknown compression method", source=source)
        return keyword, _inflate(rest[1:], what, source, limits), True
    if len(rest) < 2:
        raise CorruptInput(f"{what} is truncated", source=source)
    compressed = rest[0] == 1
    parts = rest[2:].split(b"\0", 2)  # language tag, translated keyword, text
    if len(parts) != 3:
        raise CorruptInput(f"{what} lacks its language/translation fields", source=source)
    text = parts[2]
    if compressed:
        text = _inflate(text, what, source, limits)
    return keyword, text, compressed


def _raw_profile(text: bytes, what: str, source: str, limits: Limits) -> bytes:
    """Decode ImageMagick's "Raw profile" text: name, decimal length, then hex digits."""
    parts = text.split(None, 2)
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 10:
        raise CorruptInput(f"{what}: not a raw profile (name, length, hex)", source=source)
    length = int(parts[1])
    if length > limits.max_metadata_bytes:
        raise LimitExceeded(f"{what} declares {length} bytes, over the limit", source=source)
    try:
        blob = bytes.fromhex(parts[2].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        raise CorruptInput(f"{what}: bad hex digits in the raw profile", source=source) from None
    if len(blob) < length:
        raise CorruptInput(f"{what}: the raw profile is shorter than declared", source=source)
    return blob[:length]


def _raw_profile_text(blob: bytes) -> bytes:
    """Encode a raw XMP profile the way ImageMagick does (72 hex digits a line)."""
    digits = blob.hex()
    lines = "\n".join(digits[i : i + 72] for i in range(0, len(digits), 72))
    return b"\nxmp\n%8d\n" % len(blob) + lines.encode("ascii") + b"\n"


def _text_chunk(ctype: bytes, keyword: bytes, text: bytes, compressed: bool) -> bytes:
    """Serialize a tEXt, zTXt or iTXt chunk (iTXt without language or translated keyword)."""
    if ctype == b"tEXt":
        return _chunk(ctype, keyword + b"\0" + text)
    if ctype == b"zTXt":
        return _chunk(ctype, keyword + b"\0\0" + zlib.compress(text))
    flag = b"\1\0" if compressed else b"\0\0"
    body = zlib.compress(text) if compressed else text
    return _chunk(ctype, keyword + b"\0" + flag + b"\0\0" + body)


def _keyword(data: bytes, c: _Chunk) -> bytes | None:
    """The chunk's keyword if it is one labelkit reads; found without scanning or copying."""
    start, stop = c.data.start, c.data.stop
    for keyword in _KEYWORDS:
        if start + len(keyword) < stop and data.startswith(keyword + b"\0", start):
            return keyword
    # Any other keyword, or none (no NUL in the chunk): not ours. Like libpng and exiftool,
    # a text chunk without a keyword is not an error for the rest of the file; it is copied.
    return None


@dataclass
class PngFile(ParsedFile):
    """A parsed PNG: its chunks, carriers and what labeling needs to rewrite it."""

    _chunks: list[_Chunk] = field(repr=False)
    _xmp_chunk: int | None = field(default=None, repr=False)  # index of the first XMP iTXt
    # chunk index -> "xmp" (strip AIGC), "drop" (AIGC text chunk) or "exif" (strip comment)
    _rewrite: dict[int, str] = field(default_factory=dict, repr=False)
    format: str = NAME

    def essence(self) -> Iterator[memoryview]:
        """Yield type+data of every chunk that carries the picture, in file order."""
        view = memoryview(self._data)
        for c in self._chunks:
            if c.type in ESSENCE_TYPES:
                yield view[c.start + 4 : c.end - 4]

    def with_label(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: PngFile | None = None,
    ) -> bytes:
        """Return the file with one XMP iTXt (after IHDR) holding the label; other carriers gone.

        With ``metadata_from``, this file's picture chunks get the original's ancillary chunks
        (this file's own are dropped); see ``_carried`` for what cannot follow new pixels.
        """
        check_same_format(self, metadata_from)
        src = metadata_from if metadata_from is not None else self
        base = xmp if xmp is not None else src.xmp
        packet = xmp_packet.set_aigc(base, label_json, source=self.source, limits=self._limits)
        label_chunk = _chunk(b"iTXt", XMP_KEYWORD + b"\0\0\0\0\0" + packet)
        view = memoryview(self._data)
        if metadata_from is not None:
            return self._merged(label_chunk, metadata_from)
        parts: list[bytes | memoryview] = [view[:8]]
        for i, c in enumerate(self._chunks):
            part = self._part(i, c)
            if part is not None:
                parts.append(part)
            if c.type == b"IHDR":
                parts.append(label_chunk)
        parts.append(view[self._chunks[-1].end :])  # anything after IEND stays
        return b"".join(parts)

    def _part(self, i: int, c: _Chunk) -> bytes | memoryview | None:
        """Chunk i as labeling writes it: None when merged into the label or dropped."""
        action = self._rewrite.get(i)
        if i == self._xmp_chunk or action == "drop":
            return None  # merged into the new packet / an AIGC text chunk
        if action == "xmp":
            return self._strip_xmp_chunk(c)
        if action == "exif":
            payload = exif.strip_aigc(self._data[c.data], self.source, self._limits)
            return _chunk(b"eXIf", payload)
        return memoryview(self._data)[c.start : c.end]

    def _merged(self, label_chunk: bytes, original: PngFile) -> bytes:
        """This file's picture chunks with the original's metadata chunks around them."""
        head, after_plte, tail = original._carried(self)
        view = memoryview(self._data)
        parts: list[bytes | memoryview] = [view[:8]]
        for c in self._chunks:
            if c.type == b"IEND":
                parts += tail  # what followed the original's image data
            if c.type in ESSENCE_TYPES or c.type == b"IEND":
                parts.append(view[c.start : c.end])
            if c.type == b"IHDR":
                parts += [label_chunk, *head]
            elif c.type == b"PLTE":
                parts += after_plte
                after_plte = []
        at = 3 + len(head)  # signature, IHDR, label, head
        parts[at:at] = after_plte  # no PLTE: they only have to precede the image data
        parts.append(view[self._chunks[-1].end :])
        return b"".join(parts)

    def _carried(
        self, new: PngFile
    ) -> tuple[list[bytes | memoryview], list[bytes | memoryview], list[bytes | memoryview]]:
        """This (original) file's metadata chunks for ``new``'s pixels, in three groups.

        Before the image data (right after IHDR), after PLTE (bKGD, hIST must follow it), and
        after the image data. Left behind: unknown unsafe-to-copy chunks, an ICC profile for
        another colour space, and bKGD/sBIT/hIST when the colour type or palette changed.
        """
        same_format = self._ihdr()[8:10] == new._ihdr()[8:10] and self._plte() == new._plte()
        space = b"GRAY" if new._ihdr()[9] in (0, 4) else b"RGB "
        head: list[bytes | memoryview] = []
        after_plte: list[bytes | memoryview] = []
        tail: list[bytes | memoryview] = []
        seen_image = False
        for i, c in enumerate(self._chunks):
            seen_image = seen_image or c.type in (b"IDAT", b"fdAT")
            if c.type in ESSENCE_TYPES or c.type == b"IEND":
                continue
            if c.type not in _KNOWN_META and not c.type[3:4].islower():
                continue
            if c.type in _PIXEL_FORMAT_BOUND and not same_format:
                continue
            if c.type == b"iCCP" and not icc_fits(self._icc_head(c), space):
                continue
            part = self._part(i, c)
            if part is None:
                continue
            group = tail if seen_image else after_plte if c.type in (b"bKGD", b"hIST") else head
            group.append(part)
        return head, after_plte, tail

    def _ihdr(self) -> bytes:
        return self._data[self._chunks[0].data]

    def _plte(self) -> bytes | None:
        c = next((c for c in self._chunks if c.type == b"PLTE"), None)
        return None if c is None else self._data[c.data]

    def _icc_head(self, c: _Chunk) -> bytes:
        """The first bytes of an iCCP profile (enough for its colour space), b"" if unreadable."""
        _, _, rest = self._data[c.data].partition(b"\0")
        try:
            return zlib.decompressobj().decompress(rest[1:], 20)
        except zlib.error:
            return b""  # a broken profile is not carried

    def _strip_xmp_chunk(self, c: _Chunk) -> bytes:
        """Return a further XMP chunk without its AIGC properties, in its own form."""
        what = f"{c.type.decode()} chunk at {c.start:#x}"
        keyword, text, compressed = _split_text(
            c.type, self._data[c.data], what, self.source, self._limits
        )
        raw = keyword == RAW_XMP_KEYWORD
        packet = _raw_profile(text, what, self.source, self._limits) if raw else text
        stripped = xmp_packet.strip_aigc(packet, source=self.source, limits=self._limits)
        text = _raw_profile_text(stripped) if raw else stripped
        return _text_chunk(c.type, keyword, text, compressed)


def _walk(data: bytes, source: str, limits: Limits) -> list[_Chunk]:
    """Split the file into chunks, checking lengths, every CRC and the IEND terminator."""
    chunks: list[_Chunk] = []
    view = memoryview(data)
    pos, size = len(SIGNATURE), len(data)
    while True:
        if pos + 8 > size:
            raise CorruptInput(f"truncated: no IEND chunk (file ends at {size:#x})", source=source)
        length, ctype = _HEAD.unpack_from(data, pos)
        name = ctype.decode("latin-1")
        if length > 0x7FFFFFFF or not ctype.isalpha():
            raise CorruptInput(f"invalid chunk header {name!r} at {pos:#x}", source=source)
        end = pos + 12 + length
        if end > size:
            raise CorruptInput(
                f"{name} chunk at {pos:#x} ({length} bytes) runs past the end of the file "
                "(truncated)",
                source=source,
            )
        (crc,) = struct.unpack_from(">I", data, end - 4)
        if zlib.crc32(view[pos + 4 : end - 4]) != crc:
            raise CorruptInput(f"{name} chunk at {pos:#x} has a bad CRC", source=source)
        chunks.append(_Chunk(ctype, pos, end))
        check_count(len(chunks), source, limits, "PNG chunks")
        if ctype == b"IEND":
            return chunks
        pos = end


def parse(data: bytes, source: str, limits: Limits) -> PngFile:
    """Parse a PNG's structure and AIGC carriers without decoding pixels."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if not accept(data[:8]):
        raise CorruptInput("not a PNG signature", source=source)
    chunks = _walk(data, source, limits)
    first = chunks[0]
    if first.type != b"IHDR" or first.end - first.start != 25:
        raise CorruptInput("the first chunk is not a 13-byte IHDR", source=source)
    width, height = struct.unpack_from(">II", data, first.start + 8)
    if not width or not height:
        raise CorruptInput(f"IHDR declares a {width}x{height} image", source=source)
    check_pixels(width, height, source, limits)
    if not any(c.type == b"IDAT" for c in chunks):
        raise CorruptInput("no IDAT chunk", source=source)

    carriers: list[Carrier] = []
    packet: bytes | None = None
    png = PngFile(source, width, height, 1, carriers, None, data, limits, _chunks=chunks)
    for i, c in enumerate(chunks):
        where = f"{c.type.decode()} chunk at {c.start:#x}"
        if c.type == b"acTL" and c.end - c.start >= 20:
            (png.frames,) = struct.unpack_from(">I", data, c.start + 8)
        elif c.type in _TEXT_KINDS:
            if _keyword(data, c) is None:
                continue  # other text chunks are not even copied, let alone inflated
            keyword, text, _ = _split_text(c.type, data[c.data], where, source, limits)
            if keyword == AIGC_KEYWORD:
                if len(text) > limits.max_metadata_bytes:
                    raise LimitExceeded(f"{where} is over the metadata limit", source=source)
                value = text.decode("latin-1" if c.type == b"tEXt" else "utf-8", "replace")
                carriers.append(Carrier(_TEXT_KINDS[c.type], f"{where} keyword AIGC", value))
                png._rewrite[i] = "drop"
            else:  # XMP, plain or as a raw profile
                if keyword == RAW_XMP_KEYWORD:
                    text = _raw_profile(text, where, source, limits)
                found = xmp_packet.find_aigc(text, source, limits, where=where)
                carriers.extend(Carrier(k, f"{where} (XMP)", v) for k, v in found)
                if packet is None:
                    packet, png._xmp_chunk = text, i
                elif found:
                    png._rewrite[i] = "xmp"
        elif c.type == b"eXIf":
            comment = exif.find_aigc(data[c.data], source, limits, where=where)
            if comment is not None:
                carriers.append(Carrier("exif-usercomment", f"{where} UserComment", comment))
                png._rewrite[i] = "exif"
    png.xmp = packet
    return png


register(sys.modules[__name__])
