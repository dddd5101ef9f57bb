"""GIF: block walker, AIGC carriers, labeling with an "XMP DataXMP" application extension.

The essence is the logical screen (size, background, global colour table), every frame with its
graphic control and the loop extension. Comments and other application extensions (an ICC
profile "ICCRGBG1012" included: colour management is not essence in any format, platforms
convert or strip it and the fingerprint/watermark cover the appearance) are metadata.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from typing import Iterator

from .. import xmp as xmp_packet
from ..errors import CorruptInput
from ..limits import Limits
from . import Carrier, ParsedFile, check_count, check_pixels, check_same_format, register

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
# Blocks that make the picture; the others ("xmp", "app", "comment", "ext") are metadata.
ESSENCE_KINDS = frozenset({"image", "gce", "text", "loop"})


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
class GifFile(ParsedFile):
    """A parsed GIF: its blocks, carriers and what labeling needs to rewrite it."""

    _head_end: int = field(repr=False)  # past the logical screen descriptor and colour table
    _blocks: list[_Block] = field(repr=False)
    _xmp_block: int | None = field(default=None, repr=False)
    _rewrite: set[int] = field(default_factory=set, repr=False)  # further XMP with AIGC
    format: str = NAME

    def essence(self) -> Iterator[memoryview]:
        """Yield screen descriptor, colour tables, frames and loop control, in file order."""
        view = memoryview(self._data)
        # The version ("87a"/"89a") is left out: labeling may have to raise it to 89a.
        yield view[6 : self._head_end]
        for b in self._blocks:
            if b.kind in ESSENCE_KINDS:
                yield view[b.start : b.end]

    def with_label(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: GifFile | None = None,
    ) -> bytes:
        """Return the file with one XMP application extension before the first image.

        With ``metadata_from``, this file's frames (and loop) follow the original's comments
        and application extensions; this file's own are dropped.
        """
        check_same_format(self, metadata_from)
        src = metadata_from if metadata_from is not None else self
        base = xmp if xmp is not None else src.xmp
        packet = xmp_packet.set_aigc(base, label_json, source=self.source, limits=self._limits)
        own = list(self._parts())
        carried: list[bytes | memoryview] = []
        if metadata_from is not None:
            carried = [p for b, p in metadata_from._parts() if b.kind not in ESSENCE_KINDS]
            own = [(b, p) for b, p in own if b.kind in ESSENCE_KINDS]
        lead = 0
        while lead < len(own) and own[lead][0].kind == "loop":
            lead += 1  # the label goes after a leading loop extension, if any
        view = memoryview(self._data)
        parts: list[bytes | memoryview] = [b"GIF89a", view[6 : self._head_end]]
        parts += [p for _, p in own[:lead]]
        parts += [XMP_APP + packet + MAGIC_TRAILER, *carried]
        parts += [p for _, p in own[lead:]]
        parts.append(view[self._blocks[-1].end :])  # the trailer and anything after it
        return b"".join(p for p in parts if p is not None)

    def _parts(self) -> Iterator[tuple[_Block, bytes | memoryview | None]]:
        """Each block as labeling writes it: None for the packet merged into the label."""
        view = memoryview(self._data)
        for i, b in enumerate(self._blocks):
            if i == self._xmp_block:
                yield b, None
            elif i in self._rewrite:
                old = bytes(view[b.start + len(XMP_APP) : b.end - len(MAGIC_TRAILER)])
                stripped = xmp_packet.strip_aigc(old, source=self.source, limits=self._limits)
                yield b, XMP_APP + stripped + MAGIC_TRAILER
            else:
                yield b, view[b.start : b.end]


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
    canvas_w, canvas_h = width, height
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
            x0, y0, w, h, packed = struct.unpack_from("<HHHHB", data, pos + 1)
            # Decoders grow the canvas to hold a frame placed past its edge, and keep it grown.
            canvas_w, canvas_h = max(canvas_w, x0 + w), max(canvas_h, y0 + h)
            what = f"frame at {pos:#x} ({w}x{h} at {x0},{y0}) with the canvas it grows to"
            check_pixels(canvas_w, canvas_h, source, limits, what)
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
    gif = GifFile(source, width, height, frames, carriers, None, data, limits,
                  _head_end=head_end, _blocks=blocks)
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
