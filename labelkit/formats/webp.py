"""WebP: RIFF chunk walker, AIGC carriers, labeling with an `XMP ` chunk (VP8X extended format)."""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from typing import Iterator

from .. import exif
from .. import xmp as xmp_packet
from ..errors import CorruptInput
from ..limits import Limits
from . import Carrier, check_count, check_pixels, register

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "WebpFile"]

NAME = "webp"
MIME = "image/webp"
EXTENSIONS = (".webp",)
MODALITY = "image"

# VP8X flag bits (WebP container specification).
FLAG_ANIMATION, FLAG_XMP, FLAG_EXIF, FLAG_ALPHA, FLAG_ICC = 0x02, 0x04, 0x08, 0x10, 0x20
# Chunks that carry the picture; VP8X is left out because its flags change with metadata.
ESSENCE_FOURCCS = frozenset({b"VP8 ", b"VP8L", b"ALPH", b"ANIM", b"ANMF"})
# Chunks the container spec orders before XMP: a new XMP chunk goes after the last of them.
_BEFORE_XMP = ESSENCE_FOURCCS | {b"VP8X", b"ICCP", b"EXIF"}

_CHUNK_HEAD = struct.Struct("<4sI")


def accept(prefix: bytes) -> bool:
    """Whether the bytes start with a RIFF header of form WEBP."""
    return prefix[:4] == b"RIFF" and prefix[8:12] == b"WEBP"


@dataclass(frozen=True)
class _Chunk:
    fourcc: bytes
    start: int  # offset of the FourCC
    end: int  # offset past the payload (padding excluded)
    next: int  # offset past the padding byte, if any

    @property
    def payload(self) -> slice:
        """The slice of the file holding the chunk payload."""
        return slice(self.start + 8, self.end)


def _chunk(fourcc: bytes, payload: bytes) -> bytes:
    """Serialize one chunk, padded to an even size."""
    return _CHUNK_HEAD.pack(fourcc, len(payload)) + payload + b"\0" * (len(payload) & 1)


def _bitstream_info(
    fourcc: bytes, payload: bytes, where: str, source: str
) -> tuple[int, int, bool]:
    """Return (width, height, has alpha) from a VP8 or VP8L bitstream header."""
    if fourcc == b"VP8 ":
        if len(payload) < 10 or payload[3:6] != b"\x9d\x01\x2a":
            raise CorruptInput(f"{where}: no VP8 key-frame start code", source=source)
        w, h = struct.unpack_from("<HH", payload, 6)
        return w & 0x3FFF, h & 0x3FFF, False
    if len(payload) < 5 or payload[0] != 0x2F:
        raise CorruptInput(f"{where}: no VP8L signature", source=source)
    (bits,) = struct.unpack_from("<I", payload, 1)
    return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1, bool(bits >> 28 & 1)


@dataclass
class WebpFile:
    """A parsed WebP: its chunks, carriers and what labeling needs to rewrite it."""

    source: str
    width: int
    height: int
    frames: int
    carriers: list[Carrier]
    xmp: bytes | None
    _data: bytes = field(repr=False)
    _chunks: list[_Chunk] = field(repr=False)
    _riff_end: int = field(repr=False)
    _limits: Limits = field(repr=False)
    _alpha: bool = field(default=False, repr=False)  # VP8L alpha hint, for a simple file
    _xmp_chunk: int | None = field(default=None, repr=False)
    _rewrite: dict[int, str] = field(default_factory=dict, repr=False)  # index -> "xmp"/"exif"
    format: str = NAME

    def essence(self) -> Iterator[memoryview]:
        """Yield header and payload of every image/animation chunk, in file order."""
        view = memoryview(self._data)
        for c in self._chunks:
            if c.fourcc in ESSENCE_FOURCCS:
                yield view[c.start : c.end]

    def with_label(self, label_json: str, *, xmp: bytes | None = None) -> bytes:
        """Return the file as extended WebP with one `XMP ` chunk holding the label."""
        base = xmp if xmp is not None else self.xmp
        packet = xmp_packet.set_aigc(base, label_json, source=self.source, limits=self._limits)
        label_chunk = _chunk(b"XMP ", packet)
        view = memoryview(self._data)
        chunks = self._chunks
        if chunks[0].fourcc == b"VP8X":
            vp8x = bytearray(view[chunks[0].start : chunks[0].next])
            vp8x[8] |= FLAG_XMP  # every other flag and the canvas stay as they were
        else:
            vp8x = bytearray(self._new_vp8x())
        parts: list[bytes | memoryview] = [bytes(vp8x)]
        place = self._xmp_chunk
        if place is None:
            place = max(i for i, c in enumerate(chunks) if c.fourcc in _BEFORE_XMP) + 1
        for i, c in enumerate(chunks):
            if i == place:
                parts.append(label_chunk)
            action = self._rewrite.get(i)
            if c.fourcc == b"VP8X" or i == self._xmp_chunk:
                continue  # rebuilt above / merged into the new packet
            if action == "xmp":
                old = bytes(view[c.payload])
                stripped = xmp_packet.strip_aigc(old, source=self.source, limits=self._limits)
                parts.append(_chunk(b"XMP ", stripped))
            elif action == "exif":
                blob = exif.strip_aigc(bytes(view[c.payload]), self.source, self._limits)
                parts.append(_chunk(b"EXIF", blob))
            else:
                parts.append(view[c.start : c.next])
                if c.next == c.end and (c.end - c.start) & 1:
                    parts.append(b"\0")  # the last chunk lacked its padding byte
        if place == len(chunks):
            parts.append(label_chunk)
        riff_size = 4 + sum(len(p) for p in parts)
        return b"".join(
            [b"RIFF", struct.pack("<I", riff_size), b"WEBP", *parts, view[self._riff_end :]]
        )

    def _new_vp8x(self) -> bytes:
        """A VP8X chunk for a simple file: canvas from the bitstream, flags from the chunks."""
        present = {c.fourcc for c in self._chunks}
        flags = FLAG_XMP
        if self._alpha or b"ALPH" in present:
            flags |= FLAG_ALPHA
        if b"EXIF" in present:
            flags |= FLAG_EXIF
        if b"ICCP" in present:
            flags |= FLAG_ICC
        size = (self.width - 1).to_bytes(3, "little") + (self.height - 1).to_bytes(3, "little")
        return _chunk(b"VP8X", bytes([flags, 0, 0, 0]) + size)


def _walk(data: bytes, source: str, limits: Limits) -> tuple[list[_Chunk], int]:
    """Split the RIFF payload into chunks; return them and the offset where RIFF ends."""
    (riff_size,) = struct.unpack_from("<I", data, 4)
    riff_end = 8 + riff_size
    if riff_end > len(data):
        raise CorruptInput(
            f"truncated: RIFF header declares {riff_end} bytes, the file has {len(data)}",
            source=source,
        )
    chunks: list[_Chunk] = []
    pos = 12
    while pos < riff_end:
        if pos + 8 > riff_end:
            raise CorruptInput(f"chunk header at {pos:#x} runs past the RIFF end", source=source)
        fourcc, size = _CHUNK_HEAD.unpack_from(data, pos)
        end = pos + 8 + size
        if end > riff_end:
            raise CorruptInput(
                f"{fourcc.decode('latin-1')!r} chunk at {pos:#x} ({size} bytes) runs past the "
                "end of the file (truncated)",
                source=source,
            )
        chunks.append(_Chunk(fourcc, pos, end, min(end + (size & 1), riff_end)))
        check_count(len(chunks), source, limits, "WebP chunks")
        pos = chunks[-1].next
    if not chunks:
        raise CorruptInput("RIFF WEBP without chunks", source=source)
    return chunks, riff_end


def parse(data: bytes, source: str, limits: Limits) -> WebpFile:
    """Parse a WebP's chunks and AIGC carriers without decoding pixels."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if len(data) < 12 or not accept(data[:12]):
        raise CorruptInput("not a RIFF WEBP header (truncated?)", source=source)
    chunks, riff_end = _walk(data, source, limits)
    first = chunks[0]
    where = f"{first.fourcc.decode('latin-1')!r} chunk at {first.start:#x}"
    alpha = False
    frames = 1
    if first.fourcc == b"VP8X":
        if first.end - first.start < 18:
            raise CorruptInput(f"{where} is shorter than 10 bytes", source=source)
        flags = data[first.start + 8]
        width = 1 + int.from_bytes(data[first.start + 12 : first.start + 15], "little")
        height = 1 + int.from_bytes(data[first.start + 15 : first.start + 18], "little")
        if flags & FLAG_ANIMATION:
            frames = sum(1 for c in chunks if c.fourcc == b"ANMF")
    elif first.fourcc in (b"VP8 ", b"VP8L"):
        width, height, alpha = _bitstream_info(first.fourcc, data[first.payload], where, source)
    else:
        raise CorruptInput(f"{where}: expected VP8, VP8L or VP8X first", source=source)
    if not width or not height:
        raise CorruptInput(f"{where} declares a {width}x{height} image", source=source)
    check_pixels(width, height, source, limits)

    carriers: list[Carrier] = []
    webp = WebpFile(
        source, width, height, frames, carriers, None, data, chunks, riff_end, limits, alpha
    )
    for i, c in enumerate(chunks):
        where = f"{c.fourcc.decode('latin-1')!r} chunk at {c.start:#x}"
        if c.fourcc == b"XMP ":
            packet = data[c.payload]
            found = xmp_packet.find_aigc(packet, source, limits, where=where)
            carriers.extend(Carrier(k, where, v) for k, v in found)
            if webp.xmp is None:
                webp.xmp, webp._xmp_chunk = packet, i
            elif found:
                webp._rewrite[i] = "xmp"
        elif c.fourcc == b"EXIF":
            comment = exif.find_aigc(data[c.payload], source, limits, where=where)
            if comment is not None:
                carriers.append(Carrier("exif-usercomment", f"{where} UserComment", comment))
                webp._rewrite[i] = "exif"
    return webp


register(sys.modules[__name__])
