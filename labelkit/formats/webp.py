"""WebP: RIFF chunk walker, AIGC carriers, labeling with an `XMP ` chunk (VP8X extended format).

The essence is the canvas size (from VP8X, or the bitstream of a simple file, so adding a VP8X
chunk when labeling changes nothing) and the image and animation chunks (ANIM, ANMF, ALPH, VP8,
VP8L). The VP8X flags are not: they change with the metadata. Colour management (ICCP) is left
out on purpose: platforms convert or strip profiles routinely, and the fingerprint and the
watermark cover the appearance.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from typing import Iterator

from .. import exif
from .. import xmp as xmp_packet
from ..errors import CorruptInput
from ..limits import Limits
from . import Carrier, ParsedFile, check_count, check_pixels, check_same_format, icc_fits, register

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "WebpFile"]

NAME = "webp"
MIME = "image/webp"
EXTENSIONS = (".webp",)
MODALITY = "image"

# VP8X flag bits (WebP container specification).
FLAG_ANIMATION, FLAG_XMP, FLAG_EXIF, FLAG_ALPHA, FLAG_ICC = 0x02, 0x04, 0x08, 0x10, 0x20
# Chunks that carry the picture; of VP8X only the canvas is (see ``WebpFile.essence``).
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
class WebpFile(ParsedFile):
    """A parsed WebP: its chunks, carriers and what labeling needs to rewrite it."""

    _chunks: list[_Chunk] = field(repr=False)
    _riff_end: int = field(repr=False)
    _alpha: bool = field(default=False, repr=False)  # VP8L alpha hint, for a simple file
    _xmp_chunk: int | None = field(default=None, repr=False)
    _rewrite: dict[int, str] = field(default_factory=dict, repr=False)  # index -> "xmp"/"exif"
    format: str = NAME

    def essence(self) -> Iterator[bytes | memoryview]:
        """Yield the canvas size, then header and payload of every image/animation chunk."""
        yield self._canvas()
        view = memoryview(self._data)
        for c in self._chunks:
            if c.fourcc in ESSENCE_FOURCCS:
                yield view[c.start : c.end]

    def with_label(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: WebpFile | None = None,
    ) -> bytes:
        """Return the file as extended WebP with one `XMP ` chunk holding the label.

        With ``metadata_from``, this file's image chunks get the original's ICCP, EXIF, XMP
        and unknown chunks (this file's own are dropped) and VP8X flags to match.
        """
        check_same_format(self, metadata_from)
        src = metadata_from if metadata_from is not None else self
        base = xmp if xmp is not None else src.xmp
        packet = xmp_packet.set_aigc(base, label_json, source=self.source, limits=self._limits)
        label_chunk = _chunk(b"XMP ", packet)
        view = memoryview(self._data)
        chunks = self._chunks
        if metadata_from is not None:
            sequence = metadata_from._carried(self)
        else:
            sequence = [(self, i, c) for i, c in enumerate(chunks) if c.fourcc != b"VP8X"]
        if metadata_from is None and chunks[0].fourcc == b"VP8X":
            vp8x = bytearray(view[chunks[0].start : chunks[0].next])
            vp8x[8] |= FLAG_XMP  # every other flag and the canvas stay as they were
        else:
            vp8x = bytearray(self._new_vp8x({c.fourcc for _, _, c in sequence}))
        place = next((n for n, (o, i, _) in enumerate(sequence) if i == o._xmp_chunk), None)
        if place is None:
            before = [n for n, (_, _, c) in enumerate(sequence) if c.fourcc in _BEFORE_XMP]
            place = max(before) + 1
        parts: list[bytes | memoryview] = [bytes(vp8x)]
        for n, (owner, i, c) in enumerate(sequence):
            if n == place:
                parts.append(label_chunk)
            parts += owner._part(i, c)
        if place == len(sequence):
            parts.append(label_chunk)
        riff_size = 4 + sum(len(p) for p in parts)
        return b"".join(
            [b"RIFF", struct.pack("<I", riff_size), b"WEBP", *parts, view[self._riff_end :]]
        )

    def _part(self, i: int, c: _Chunk) -> list[bytes | memoryview]:
        """Chunk i as labeling writes it (nothing for the packet merged into the label)."""
        if i == self._xmp_chunk:
            return []
        view = memoryview(self._data)
        action = self._rewrite.get(i)
        if action == "xmp":
            old = bytes(view[c.payload])
            stripped = xmp_packet.strip_aigc(old, source=self.source, limits=self._limits)
            return [_chunk(b"XMP ", stripped)]
        if action == "exif":
            blob = exif.strip_aigc(bytes(view[c.payload]), self.source, self._limits)
            return [_chunk(b"EXIF", blob)]
        if c.next == c.end and (c.end - c.start) & 1:
            return [view[c.start : c.next], b"\0"]  # the last chunk lacked its padding byte
        return [view[c.start : c.next]]

    def _carried(self, new: WebpFile) -> list[tuple[WebpFile, int, _Chunk]]:
        """``new``'s image chunks with this (original) file's metadata chunks, in spec order.

        An ICC profile that is not for RGB (WebP pixels always are) is left behind.
        """
        mine = list(enumerate(self._chunks))
        icc = [(self, i, c) for i, c in mine if c.fourcc == b"ICCP"]
        if icc and not icc_fits(self._data[icc[0][2].payload][:20], b"RGB "):
            icc = []
        image = [(new, i, c) for i, c in enumerate(new._chunks) if c.fourcc in ESSENCE_FOURCCS]
        meta = [(self, i, c) for i, c in mine if c.fourcc == b"EXIF"]
        meta += [(self, i, c) for i, c in mine if c.fourcc == b"XMP "]
        known = ESSENCE_FOURCCS | {b"VP8X", b"ICCP", b"EXIF", b"XMP "}
        meta += [(self, i, c) for i, c in mine if c.fourcc not in known]
        return icc + image + meta

    def _canvas(self) -> bytes:
        """The canvas size as VP8X stores it (width - 1, height - 1; 24 bits each)."""
        return (self.width - 1).to_bytes(3, "little") + (self.height - 1).to_bytes(3, "little")

    def _new_vp8x(self, present: set[bytes]) -> bytes:
        """A VP8X chunk with this file's canvas and flags for the chunks that will be present."""
        flags = FLAG_XMP
        if self._chunks[0].fourcc == b"VP8X":  # animation and alpha are this file's own
            flags |= self._data[self._chunks[0].start + 8] & (FLAG_ANIMATION | FLAG_ALPHA)
        if self._alpha or b"ALPH" in present:
            flags |= FLAG_ALPHA
        if b"EXIF" in present:
            flags |= FLAG_EXIF
        if b"ICCP" in present:
            flags |= FLAG_ICC
        return _chunk(b"VP8X", bytes([flags, 0, 0, 0]) + self._canvas())


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
        source, width, height, frames, carriers, None, data, limits,
        _chunks=chunks, _riff_end=riff_end, _alpha=alpha,
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
