"""FLAC: metadata block walker, ``AIGC=<json>`` Vorbis comment carriers, labeling.

The label is the comment ``AIGC=<json>`` in the VORBIS_COMMENT block (added right after
STREAMINFO when absent); every other AIGC comment is removed, other comments are kept byte for
byte, other blocks (PICTURE, PADDING, APPLICATION...) are copied as they are and the last-block
flag is set on the new last block. A leading ID3v2 tag (some taggers write one) is kept.

The essence is the STREAMINFO payload and the audio frames after the metadata blocks.

``metadata_from`` (after re-encoding): this file's STREAMINFO, SEEKTABLE (offsets into these
frames) and audio with the original's comments (under this file's vendor string, which names
the encoder that made these frames), PICTURE, APPLICATION and CUESHEET blocks and leading ID3v2
tag. Left behind: the original's SEEKTABLE and PADDING (they describe the old layout).
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import CorruptInput, LimitExceeded
from ..limits import Limits
from . import Carrier, ParsedFile, check_count, check_same_format, register

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "FlacFile",
           "read_comments", "build_comments", "id3_size"]

NAME = "flac"
MIME = "audio/flac"
EXTENSIONS = (".flac",)
MODALITY = "audio"

MAGIC = b"fLaC"
STREAMINFO, PADDING, APPLICATION, SEEKTABLE, VORBIS_COMMENT, CUESHEET, PICTURE = range(7)
_CARRIED = frozenset({APPLICATION, CUESHEET, PICTURE})  # what metadata_from takes over
_U32 = struct.Struct("<I")


def accept(prefix: bytes) -> bool:
    """Whether the bytes start with the FLAC marker (an ID3v2-prefixed FLAC goes via mp3)."""
    return prefix.startswith(MAGIC)


def id3_size(data: bytes, pos: int, source: str) -> int:
    """The total size of the ID3v2 tag at ``pos`` (header, body, footer); 0 if there is none."""
    if data[pos : pos + 3] != b"ID3":
        return 0
    if pos + 10 > len(data):
        raise CorruptInput(f"truncated ID3v2 header at {pos:#x}", source=source)
    flags = data[pos + 5]
    raw = data[pos + 6 : pos + 10]
    if any(b & 0x80 for b in raw):
        raise CorruptInput(f"ID3v2 tag at {pos:#x} has a bad (not syncsafe) size", source=source)
    size = (raw[0] << 21) | (raw[1] << 14) | (raw[2] << 7) | raw[3]
    total = 10 + size + (10 if flags & 0x10 else 0)
    if pos + total > len(data):
        raise CorruptInput(f"ID3v2 tag at {pos:#x} runs past the end of the file", source=source)
    return total


def is_aigc(comment: bytes | memoryview) -> bool:
    """Whether a ``NAME=value`` comment is named AIGC (field names are case-insensitive)."""
    return bytes(comment[:5]).upper() == b"AIGC="


def read_comments(
    buf: bytes | memoryview, base: int, what: str, source: str, limits: Limits
) -> tuple[slice, list[slice], int]:
    """Split a Vorbis comment body: (vendor slice, comment slices, end offset), offsets in buf.

    ``base`` is buf's offset in the file, for messages."""
    pos = 0

    def u32() -> int:
        nonlocal pos
        if pos + 4 > len(buf):
            raise CorruptInput(f"{what}: truncated at {base + pos:#x}", source=source)
        (n,) = _U32.unpack_from(buf, pos)
        pos += 4
        return n

    def string() -> slice:
        nonlocal pos
        start = pos
        n = u32()
        if pos + n > len(buf):
            raise CorruptInput(
                f"{what}: a {n}-byte string at {base + start:#x} runs past its end", source=source
            )
        pos += n
        return slice(start + 4, pos)

    vendor = string()
    count = u32()
    check_count(count, source, limits, f"comments in {what}")
    return vendor, [string() for _ in range(count)], pos


def build_comments(vendor: bytes | memoryview, comments: list[bytes | memoryview]) -> bytes:
    """Serialize a Vorbis comment body (without framing bits)."""
    parts = [_U32.pack(len(vendor)), vendor, _U32.pack(len(comments))]
    for c in comments:
        parts += [_U32.pack(len(c)), c]
    return b"".join(parts)


@dataclass(frozen=True)
class _Block:
    type: int
    start: int  # offset of the 4-byte block header
    end: int  # offset past the payload

    @property
    def payload(self) -> slice:
        """The slice of the file holding the payload."""
        return slice(self.start + 4, self.end)


def _block(btype: int, payload: bytes | memoryview, last: bool) -> list[bytes | memoryview]:
    return [struct.pack(">I", (0x80 if last else 0) << 24 | btype << 24 | len(payload)), payload]


@dataclass
class FlacFile(ParsedFile):
    """A parsed FLAC file: its metadata blocks and AIGC comment carriers."""

    sample_rate: int = 0
    channels: int = 0
    codec: str = "flac"
    _id3: int = field(default=0, repr=False)  # size of a leading ID3v2 tag
    _blocks: list[_Block] = field(default_factory=list, repr=False)
    format: str = NAME
    essence_hash = "blake3"

    def essence(self) -> Iterator[memoryview]:
        """Yield the STREAMINFO payload and the audio frames (slices, no copies)."""
        view = memoryview(self._data)
        yield view[self._blocks[0].payload]
        yield view[self._blocks[-1].end :]

    def _comment_body(self, vendor_from: FlacFile, label_json: str) -> bytes:
        """The new VORBIS_COMMENT payload: vendor_from's vendor, self's comments, one label."""
        vendor = b""
        vc = vendor_from._vc()
        if vc is not None:
            vendor = vendor_from._data[vc[0]]
        comments: list[bytes | memoryview] = []
        mine = self._vc()
        if mine is not None:
            view = memoryview(self._data)
            comments = [view[s] for s in mine[1] if not is_aigc(view[s])]
        comments.append(b"AIGC=" + label_json.encode("utf-8"))
        return build_comments(vendor, comments)

    def _vc(self) -> tuple[slice, list[slice]] | None:
        """The first VORBIS_COMMENT's vendor and comment slices, as file offsets."""
        for b in self._blocks:
            if b.type == VORBIS_COMMENT:
                vendor, comments, _ = read_comments(
                    memoryview(self._data)[b.payload], b.start + 4, "VORBIS_COMMENT",
                    self.source, self._limits)
                o = b.start + 4
                return (slice(vendor.start + o, vendor.stop + o),
                        [slice(s.start + o, s.stop + o) for s in comments])
        return None

    def with_label(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: FlacFile | None = None,
    ) -> bytes:
        """Return the file with one ``AIGC=`` comment; other blocks and comments kept.

        ``xmp`` is ignored (FLAC has no standard XMP place)."""
        check_same_format(self, metadata_from)
        view = memoryview(self._data)
        src = metadata_from if metadata_from is not None else self
        body = src._comment_body(self, label_json)
        if len(body) >= 1 << 24:
            raise LimitExceeded("the VORBIS_COMMENT block would exceed 16 MB", source=self.source)
        blocks: list[tuple[int, bytes | memoryview]] = []
        placed = False
        for b in self._blocks:
            if b.type == VORBIS_COMMENT or (metadata_from is not None and b.type in _CARRIED):
                if not placed and b.type == VORBIS_COMMENT:
                    blocks.append((VORBIS_COMMENT, body))
                    placed = True
                continue  # further comment blocks are merged away; carried blocks come from src
            blocks.append((b.type, view[b.payload]))
            if b.type == STREAMINFO and metadata_from is not None:
                blocks.append((VORBIS_COMMENT, body))
                placed = True
        if not placed:
            blocks.insert(1, (VORBIS_COMMENT, body))
        if metadata_from is not None:
            oview = memoryview(metadata_from._data)
            at = next(i for i, (t, _) in enumerate(blocks) if t == VORBIS_COMMENT) + 1
            blocks[at:at] = [(b.type, oview[b.payload]) for b in metadata_from._blocks
                             if b.type in _CARRIED]
        head = src._data[: src._id3] if metadata_from is not None else view[: self._id3]
        parts: list[bytes | memoryview] = [head, MAGIC]
        for i, (t, payload) in enumerate(blocks):
            parts += _block(t, payload, i == len(blocks) - 1)
        parts.append(view[self._blocks[-1].end :])
        return b"".join(parts)


def parse(data: bytes, source: str, limits: Limits) -> FlacFile:
    """Parse a FLAC file's metadata blocks and AIGC comments without decoding audio."""
    if not isinstance(data, bytes):
        data = bytes(data)
    skip = id3_size(data, 0, source)
    if data[skip : skip + 4] != MAGIC:
        raise CorruptInput(f"no fLaC marker at {skip:#x}", source=source)
    blocks: list[_Block] = []
    pos = skip + 4
    while True:
        if pos + 4 > len(data):
            raise CorruptInput(f"truncated metadata block header at {pos:#x}", source=source)
        (head,) = struct.unpack_from(">I", data, pos)
        btype, size = (head >> 24) & 0x7F, head & 0xFFFFFF
        if btype == 127:
            raise CorruptInput(f"invalid metadata block type at {pos:#x}", source=source)
        if size > limits.max_metadata_bytes:
            raise LimitExceeded(
                f"metadata block at {pos:#x} declares {size} bytes, over the limit", source=source
            )
        end = pos + 4 + size
        if end > len(data):
            raise CorruptInput(
                f"metadata block at {pos:#x} ({size} bytes) runs past the end of the file",
                source=source,
            )
        blocks.append(_Block(btype, pos, end))
        check_count(len(blocks), source, limits, "FLAC metadata blocks")
        pos = end
        if head & 0x80000000:
            break
    first = blocks[0]
    if first.type != STREAMINFO or first.end - first.start != 38:
        raise CorruptInput("the first metadata block is not a 34-byte STREAMINFO", source=source)
    (bits,) = struct.unpack_from(">Q", data, first.start + 14)
    rate, channels = bits >> 44, ((bits >> 41) & 7) + 1
    if rate == 0 or rate > limits.max_sample_rate:
        raise LimitExceeded(f"STREAMINFO declares {rate} Hz", source=source)
    flac = FlacFile(source, 0, 0, 0, [], None, data, limits, sample_rate=rate, channels=channels,
                    _id3=skip, _blocks=blocks)
    view = memoryview(data)
    for b in blocks:
        if b.type != VORBIS_COMMENT:
            continue
        _, comments, _ = read_comments(view[b.payload], b.start + 4, "VORBIS_COMMENT", source,
                                       limits)
        for s in comments:
            c = view[b.start + 4 + s.start : b.start + 4 + s.stop]
            if is_aigc(c):
                flac.carriers.append(Carrier(
                    "vorbis-comment", f"VORBIS_COMMENT at {b.start:#x} AIGC",
                    bytes(c[5:]).decode("utf-8", "replace")))
    return flac


register(sys.modules[__name__])
