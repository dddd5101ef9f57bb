"""GIF: block walker, AIGC carriers, labeling with an "XMP DataXMP" application extension."""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from typing import Iterator

from .. import xmp as xmp_packet
from ..errors import CorruptInput
from ..limits import Limits
from . import Carrier, check_count, check_pixels, register

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "GifFile"]

NAME = "gif"
MIME = "image/gif"
EXTENSIONS = (".gif",)
MODALITY = "image"

XMP_APP = b"\x21\xff\x0bXMP DataXMP"
# XMP spec part 3: after the raw packet, bytes 0x01, 0xFF..0x00 and a block terminator, so a
# reader walking the packet as sub-blocks always lands on the terminator.
MAGIC_TRAILER = bytes([1, *range(255, -1, -1), 0])
_LOOP_APPS = (b"NETSCAPE2.0", b"ANIMEXTS1.0")
EXTENSION, IMAGE, TRAILER = 0x21, 0x2C, 0x3B
_GRAPHIC_CONTROL, _PLAIN_TEXT, _APPLICATION = 0xF9, 0x01, 0xFF


def accept(prefix: bytes) -> bool:
    """Whether the bytes start with a GIF87a or GIF89a signature."""
    return prefix[:6] in (b"GIF87a", b"GIF89a")


@dataclass(frozen=True)
class _Block:
    kind: str  # "image", "gce", "text", "loop", "xmp", "app", "comment", "ext"
    start: int
    end: int


def _color_table_size(packed: int) -> int:
    return 3 << ((packed & 7) + 1) if packed & 0x80 else 0


def _skip_sub_blocks(data: bytes, pos: int, what: str, source: str) -> int:
    """Return the offset past the sub-block chain starting at pos (its terminator included)."""
    size = len(data)
    while True:
        if pos >= size:
            raise CorruptInput(f"truncated: {what} runs past the end of the file", source=source)
        length = data[pos]
        pos += 1 + length
        if length == 0:
            return pos


@dataclass
class GifFile:
    """A parsed GIF: its blocks, carriers and what labeling needs to rewrite it."""

    source: str
    width: int
    height: int
    frames: int
    carriers: list[Carrier]
    xmp: bytes | None
    _data: bytes = field(repr=False)
    _head_end: int = field(repr=False)  # past the logical screen descriptor and colour table
    _blocks: list[_Block] = field(repr=False)
    _limits: Limits = field(repr=False)
    _xmp_block: int | None = field(default=None, repr=False)
    _rewrite: set[int] = field(default_factory=set, repr=False)  # further XMP with AIGC
    format: str = NAME

    def essence(self) -> Iterator[memoryview]:
        """Yield screen descriptor, colour tables, frames and loop control, in file order."""
        view = memoryview(self._data)
        # The version ("87a"/"89a") is left out: labeling may have to raise it to 89a.
        yield view[6 : self._head_end]
        for b in self._blocks:
            if b.kind in ("image", "gce", "text", "loop"):
                yield view[b.start : b.end]

    def with_label(self, label_json: str, *, xmp: bytes | None = None) -> bytes:
        """Return the file with one XMP application extension before the first image."""
        base = xmp if xmp is not None else self.xmp
        packet = xmp_packet.set_aigc(base, label_json, source=self.source, limits=self._limits)
        view = memoryview(self._data)
        parts: list[bytes | memoryview] = [b"GIF89a", view[6 : self._head_end]]
        placed = False
        for i, b in enumerate(self._blocks):
            if not placed and b.kind != "loop":  # after a leading loop extension, if any
                parts.append(XMP_APP + packet + MAGIC_TRAILER)
                placed = True
            if i == self._xmp_block:
                continue  # merged into the new packet
            if i in self._rewrite:
                old = bytes(view[b.start + len(XMP_APP) : b.end - len(MAGIC_TRAILER)])
                stripped = xmp_packet.strip_aigc(old, source=self.source, limits=self._limits)
                parts.append(XMP_APP + stripped + MAGIC_TRAILER)
            else:
                parts.append(view[b.start : b.end])
        parts.append(view[self._blocks[-1].end :])  # the trailer and anything after it
        return b"".join(parts)


def _extension(data: bytes, pos: int, source: str) -> _Block:
    """Read one extension block (0x21) at pos."""
    if pos + 2 > len(data):
        raise CorruptInput(f"truncated: extension at {pos:#x} cut off", source=source)
    label = data[pos + 1]
    what = f"extension 0x{label:02x} at {pos:#x}"
    if data.startswith(XMP_APP, pos):
        trailer = data.find(MAGIC_TRAILER, pos + len(XMP_APP))
        if trailer < 0:
            raise CorruptInput(
                f"XMP application extension at {pos:#x} has no magic trailer (truncated?)",
                source=source,
            )
        return _Block("xmp", pos, trailer + len(MAGIC_TRAILER))
    end = _skip_sub_blocks(data, pos + 2, what, source)
    if label == _GRAPHIC_CONTROL:
        kind = "gce"
    elif label == _PLAIN_TEXT:
        kind = "text"  # rendered text: part of the picture
    elif label == _APPLICATION:
        kind = "loop" if data[pos + 3 : pos + 14] in _LOOP_APPS else "app"
    elif label == 0xFE:
        kind = "comment"
    else:
        kind = "ext"
    return _Block(kind, pos, end)


def parse(data: bytes, source: str, limits: Limits) -> GifFile:
    """Parse a GIF's blocks and AIGC carriers without decoding pixels."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if len(data) < 13 or not accept(data[:6]):
        raise CorruptInput("truncated GIF header", source=source)
    width, height, packed = struct.unpack_from("<HHB", data, 6)
    check_pixels(width, height, source, limits, "logical screen")
    head_end = 13 + _color_table_size(packed)
    blocks: list[_Block] = []
    frames = 0
    pos, size = head_end, len(data)
    while True:
        if pos >= size:
            raise CorruptInput(f"truncated: no trailer (file ends at {size:#x})", source=source)
        introducer = data[pos]
        if introducer == TRAILER:
            break
        if introducer == EXTENSION:
            block = _extension(data, pos, source)
        elif introducer == IMAGE:
            if pos + 10 > size:
                raise CorruptInput(f"truncated: image descriptor at {pos:#x}", source=source)
            w, h, packed = struct.unpack_from("<HHB", data, pos + 5)
            check_pixels(w, h, source, limits, f"frame at {pos:#x}")
            data_start = pos + 10 + _color_table_size(packed) + 1  # + LZW minimum code size
            end = _skip_sub_blocks(data, data_start, f"image data at {pos:#x}", source)
            block = _Block("image", pos, end)
            frames += 1
        else:
            raise CorruptInput(f"unknown block 0x{introducer:02x} at {pos:#x}", source=source)
        blocks.append(block)
        check_count(len(blocks), source, limits, "GIF blocks")
        pos = block.end
    if not frames:
        raise CorruptInput("no image in the file", source=source)

    carriers: list[Carrier] = []
    gif = GifFile(source, width, height, frames, carriers, None, data, head_end, blocks, limits)
    for i, b in enumerate(blocks):
        if b.kind != "xmp":
            continue
        packet = data[b.start + len(XMP_APP) : b.end - len(MAGIC_TRAILER)]
        where = f"XMP application extension at {b.start:#x}"
        found = xmp_packet.find_aigc(packet, source, limits, where=where)
        carriers.extend(Carrier(k, where, v) for k, v in found)
        if gif.xmp is None:
            gif.xmp, gif._xmp_block = packet, i
        elif found:
            gif._rewrite.add(i)
    return gif


register(sys.modules[__name__])
