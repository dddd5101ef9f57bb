"""PNG (and APNG): chunk walker, AIGC carriers, labeling with an XMP iTXt chunk after IHDR."""

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
from . import Carrier, check_count, check_pixels, register

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "PngFile"]

NAME = "png"
MIME = "image/png"
EXTENSIONS = (".png", ".apng")
MODALITY = "image"

SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_KEYWORD = b"XML:com.adobe.xmp"
AIGC_KEYWORD = b"AIGC"
# Chunks that carry the picture (and its animation), hashed as the essence.
ESSENCE_TYPES = frozenset({b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"acTL", b"fcTL", b"fdAT"})
_TEXT_KINDS = {b"tEXt": "png-text", b"iTXt": "png-itxt", b"zTXt": "png-ztxt"}

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


@dataclass
class PngFile:
    """A parsed PNG: its chunks, carriers and what labeling needs to rewrite it."""

    source: str
    width: int
    height: int
    frames: int
    carriers: list[Carrier]
    xmp: bytes | None
    _data: bytes = field(repr=False)
    _chunks: list[_Chunk] = field(repr=False)
    _limits: Limits = field(repr=False)
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

    def with_label(self, label_json: str, *, xmp: bytes | None = None) -> bytes:
        """Return the file with one XMP iTXt (after IHDR) holding the label; other carriers gone."""
        base = xmp if xmp is not None else self.xmp
        packet = xmp_packet.set_aigc(base, label_json, source=self.source, limits=self._limits)
        label_chunk = _chunk(b"iTXt", XMP_KEYWORD + b"\0\0\0\0\0" + packet)
        view = memoryview(self._data)
        parts: list[bytes | memoryview] = [view[:8]]
        for i, c in enumerate(self._chunks):
            action = self._rewrite.get(i)
            if i == self._xmp_chunk or action == "drop":
                pass  # merged into the new packet / an AIGC text chunk
            elif action == "xmp":
                parts.append(self._strip_xmp_chunk(c))
            elif action == "exif":
                payload = exif.strip_aigc(bytes(view[c.data]), self.source, self._limits)
                parts.append(_chunk(b"eXIf", payload))
            else:
                parts.append(view[c.start : c.end])
            if c.type == b"IHDR":
                parts.append(label_chunk)
        parts.append(view[self._chunks[-1].end :])  # anything after IEND stays
        return b"".join(parts)

    def _strip_xmp_chunk(self, c: _Chunk) -> bytes:
        """Return a further XMP iTXt chunk without its AIGC properties (compressed if it was)."""
        body = self._data[c.data]
        what = f"iTXt chunk at {c.start:#x}"
        _, packet, compressed = _split_text(b"iTXt", body, what, self.source, self._limits)
        stripped = xmp_packet.strip_aigc(packet, source=self.source, limits=self._limits)
        head = XMP_KEYWORD + (b"\0\1\0" if compressed else b"\0\0\0") + b"\0\0"
        return _chunk(b"iTXt", head + (zlib.compress(stripped) if compressed else stripped))


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
    png = PngFile(source, width, height, 1, carriers, None, data, chunks, limits)
    for i, c in enumerate(chunks):
        where = f"{c.type.decode()} chunk at {c.start:#x}"
        if c.type == b"acTL" and c.end - c.start >= 20:
            (png.frames,) = struct.unpack_from(">I", data, c.start + 8)
        elif c.type in _TEXT_KINDS:
            keyword = data[c.data.start : data.find(b"\0", c.data.start, c.data.stop)]
            if keyword not in (XMP_KEYWORD, AIGC_KEYWORD):
                continue  # other text chunks are not even copied, let alone inflated
            keyword, text, _ = _split_text(c.type, data[c.data], where, source, limits)
            if keyword == AIGC_KEYWORD:
                if len(text) > limits.max_metadata_bytes:
                    raise LimitExceeded(f"{where} is over the metadata limit", source=source)
                value = text.decode("latin-1" if c.type == b"tEXt" else "utf-8", "replace")
                carriers.append(Carrier(_TEXT_KINDS[c.type], f"{where} keyword AIGC", value))
                png._rewrite[i] = "drop"
            elif c.type == b"iTXt":
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
