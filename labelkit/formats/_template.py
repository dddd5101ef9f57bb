"""Template for a new format handler: copy to ``<name>.py``, fill in, add it to ``_BUILTIN``.

This module is a skeleton and never registers itself (it is not in ``_BUILTIN`` and has no
``register`` call). A real handler follows the contract in ``formats/__init__.py``:

* module constants ``NAME``, ``MIME``, ``EXTENSIONS``, ``MODALITY``;
* ``accept(prefix)``: a magic-byte test on the first 64 bytes, never the file name;
* ``parse(data, source, limits)``: walk the structure with ``struct`` over the bytes (no pixel
  decoding), enforce ``limits`` (``check_pixels`` on the header size, ``check_count`` on the
  number of chunks, ``limits.max_metadata_bytes`` on each metadata block, bounded
  decompression), raise ``CorruptInput`` naming the file and the offset for anything
  truncated or inconsistent, and return a small dataclass implementing ``Container``;
* ``Container.carriers``: every AIGC carrier in file order (``xmp.find_aigc`` for XMP packets,
  ``exif.find_aigc`` for EXIF blobs, the format's own text fields), with a location string;
* ``Container.essence()``: memoryview slices of the media-carrying bytes, partitioned by the
  structure alone (so labeling, which never touches them, cannot change the digest);
* ``Container.with_label(label_json, *, xmp=None, metadata_from=None)``: the file with exactly
  one label (``xmp.set_aigc`` into the file's own packet, or the ``xmp`` argument), every other
  carrier removed (``xmp.strip_aigc``, ``exif.strip_aigc``), everything else copied as slices,
  joined once. With ``metadata_from`` (the parsed original, after the pixels were re-encoded;
  ``check_same_format`` first), write this file's essence with the *original's* metadata
  blocks instead of this file's own, the original's packet as the base, and leave behind (with
  a comment saying why) any block that cannot describe the new pixels;
* and, for a real handler, a last line ``register(sys.modules[__name__])``.

The example format below is "EXAMPLE": an 8-byte magic, then chunks of a 4-byte type, a
4-byte big-endian length and the payload; a ``META`` chunk holds an XMP packet, ``DATA``
chunks hold the media, ``END `` ends the file.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Iterator

from .. import xmp as xmp_packet
from ..errors import CorruptInput
from ..limits import Limits
from . import Carrier, ParsedFile, check_count, check_pixels, check_same_format

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "ExampleFile"]

NAME = "example"
MIME = "application/x-example"
EXTENSIONS = (".example",)  # for naming outputs only, never for sniffing
MODALITY = "image"

MAGIC = b"EXAMPLE\0"
_HEAD = struct.Struct(">4sI")


def accept(prefix: bytes) -> bool:
    """Whether the bytes start with the format's magic."""
    return prefix.startswith(MAGIC)


@dataclass(frozen=True)
class _Chunk:
    type: bytes
    start: int  # offset of the chunk header
    end: int  # offset past the payload

    @property
    def payload(self) -> slice:
        """The slice of the file holding the payload."""
        return slice(self.start + _HEAD.size, self.end)


def _meta(packet: bytes) -> bytes:
    return _HEAD.pack(b"META", len(packet)) + packet


@dataclass
class ExampleFile(ParsedFile):
    """A parsed EXAMPLE file (the ``Container`` a handler returns)."""

    _chunks: list[_Chunk] = field(repr=False)
    _xmp_chunk: int | None = field(default=None, repr=False)
    format: str = NAME

    def essence(self) -> Iterator[memoryview]:
        """Yield the media chunks as slices of the original bytes (no copies)."""
        view = memoryview(self._data)
        for c in self._chunks:
            if c.type == b"DATA":
                yield view[c.start : c.end]

    def with_label(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: ExampleFile | None = None,
    ) -> bytes:
        """Return the file with one XMP ``META`` chunk holding the label, right after the magic.

        With ``metadata_from``, the original's further META chunks replace this file's own.
        """
        check_same_format(self, metadata_from)
        src = metadata_from if metadata_from is not None else self
        base = xmp if xmp is not None else src.xmp
        packet = xmp_packet.set_aigc(base, label_json, source=self.source, limits=self._limits)
        view = memoryview(self._data)
        parts: list[bytes | memoryview] = [view[: len(MAGIC)], _meta(packet)]
        parts += src._metadata()
        parts += [view[c.start : c.end] for c in self._chunks if c.type != b"META"]
        parts.append(view[self._chunks[-1].end :])
        return b"".join(parts)  # the only copy of the essence

    def _metadata(self) -> list[bytes | memoryview]:
        """The META chunks as labeling writes them: the first merged, AIGC stripped from others."""
        view = memoryview(self._data)
        out: list[bytes | memoryview] = []
        for i, c in enumerate(self._chunks):
            if c.type != b"META" or i == self._xmp_chunk:
                continue  # the file's own packet was merged into the new one
            old = bytes(view[c.payload])
            new = xmp_packet.strip_aigc(old, source=self.source, limits=self._limits)
            out.append(view[c.start : c.end] if new is old else _meta(new))
        return out


def parse(data: bytes, source: str, limits: Limits) -> ExampleFile:
    """Parse the structure and carriers without decoding the media."""
    chunks: list[_Chunk] = []
    pos = len(MAGIC)
    while True:
        if pos + _HEAD.size > len(data):
            raise CorruptInput(
                f"truncated: no END chunk (file ends at {len(data):#x})", source=source
            )
        ctype, length = _HEAD.unpack_from(data, pos)
        end = pos + _HEAD.size + length
        if end > len(data):
            raise CorruptInput(f"{ctype!r} chunk at {pos:#x} runs past the end", source=source)
        chunks.append(_Chunk(ctype, pos, end))
        check_count(len(chunks), source, limits, "chunks")
        if ctype == b"END ":
            break
        pos = end
    width, height = 1, 1  # a real format reads these from its header
    check_pixels(width, height, source, limits)
    carriers: list[Carrier] = []
    container = ExampleFile(source, width, height, 1, carriers, None, data, limits, _chunks=chunks)
    for i, c in enumerate(chunks):
        if c.type == b"META":
            packet = data[c.payload]
            where = f"META chunk at {c.start:#x}"
            found = xmp_packet.find_aigc(packet, source, limits)
            carriers.extend(Carrier(k, where, v) for k, v in found)
            if container.xmp is None:
                container.xmp, container._xmp_chunk = packet, i
    return container


# A real handler ends with:
#     register(sys.modules[__name__])
