"""Ogg Vorbis and Opus: page walker, ``AIGC=<json>`` comment carriers, labeling.

The label is the comment ``AIGC=<json>`` in the comment header packet (Vorbis packet type 3,
Opus ``OpusTags``); other AIGC comments are removed, other comments kept byte for byte. The
rewritten comment packet changes the page layout, so the header pages after the first are
re-paginated and every later page gets a new sequence number and CRC (its packets unchanged).

The essence is the identification and setup packets and every audio packet (packets, not
pages: renumbering does not change the digest). One logical stream only: chained or
multiplexed files are refused.

``metadata_from`` (after re-encoding): this file's headers and audio with the original's
comments under this file's vendor string (it names the encoder of these packets). Left
behind: the original's vendor string and Opus binary extra data after the comments.
"""

from __future__ import annotations

import struct
import sys
import zlib
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import CorruptInput, LimitExceeded, UnsupportedFormat
from ..limits import Limits
from . import Carrier, ParsedFile, check_count, check_same_format, register
from .flac import build_comments, is_aigc, read_comments

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "OggFile", "ogg_crc"]

NAME = "ogg"
MIME = "audio/ogg"
EXTENSIONS = (".ogg", ".opus", ".oga")
MODALITY = "audio"

_PAGE = struct.Struct("<4sBBqIIIB")  # capture, version, flags, granule, serial, seq, crc, nsegs
_REV = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def ogg_crc(data: bytes | memoryview) -> int:
    """Ogg's CRC-32 (poly 0x04C11DB7, not reflected, init 0) via zlib on bit-reversed bytes."""
    raw = zlib.crc32(bytes(data).translate(_REV), 0xFFFFFFFF) ^ 0xFFFFFFFF
    return int(f"{raw:032b}"[::-1], 2)


def accept(prefix: bytes) -> bool:
    """An Ogg page whose first packet is a Vorbis or Opus identification header."""
    if not prefix.startswith(b"OggS") or len(prefix) < 28:
        return False
    body = prefix[27 + prefix[26] :]
    return body.startswith(b"\x01vorbis") or body.startswith(b"OpusHead")


@dataclass(frozen=True)
class _Page:
    start: int
    end: int
    flags: int
    lacing: bytes

    @property
    def body(self) -> int:
        """Offset of the page's data."""
        return self.start + 27 + len(self.lacing)


def _pages_of(packets: list[bytes], serial: int, seq: int) -> list[bytes]:
    """Paginate whole header packets (granule 0) starting at sequence number ``seq``."""
    segs: list[tuple[int, bytes | memoryview, bool]] = []  # (length, data, starts a packet)
    for p in packets:
        view, n = memoryview(p), len(p)
        for i in range(0, n // 255 * 255, 255):
            segs.append((255, view[i : i + 255], i == 0))
        segs.append((n % 255, view[n // 255 * 255 :], n < 255))
    pages = []
    for i in range(0, len(segs), 255):
        chunk = segs[i : i + 255]
        flags = 0 if chunk[0][2] else 1  # continued packet
        lacing = bytes(s[0] for s in chunk)
        pages.append(_page(flags, 0, serial, seq + len(pages), lacing, [s[1] for s in chunk]))
    return pages


def _page(flags: int, granule: int, serial: int, seq: int, lacing: bytes,
          body: list[bytes | memoryview]) -> bytes:
    head = _PAGE.pack(b"OggS", 0, flags, granule, serial, seq, 0, len(lacing)) + lacing
    page = b"".join([head, *body])
    return page[:22] + struct.pack("<I", ogg_crc(page)) + page[26:]


@dataclass
class OggFile(ParsedFile):
    """A parsed Ogg Vorbis/Opus stream: pages, packets and AIGC comment carriers."""

    sample_rate: int = 0
    channels: int = 0
    codec: str = ""
    _pages: list[_Page] = field(default_factory=list, repr=False)
    _packets: list[list[slice]] = field(default_factory=list, repr=False)
    _header_pages: int = 0  # pages holding the header packets
    _serial: int = 0
    format: str = NAME
    essence_hash = "blake3"

    def _packet(self, i: int) -> bytes | memoryview:
        view = memoryview(self._data)
        pieces = self._packets[i]
        return view[pieces[0]] if len(pieces) == 1 else b"".join(view[s] for s in pieces)

    def _headers(self) -> int:
        return 3 if self.codec == "vorbis" else 2

    def essence(self) -> Iterator[bytes | memoryview]:
        """Yield the identification, setup and audio packets (not the comment packet)."""
        for i in range(len(self._packets)):
            if i != 1:
                yield self._packet(i)

    def _comments(self) -> tuple[bytes, list[memoryview], bytes]:
        """(vendor, comments, what follows them) of the comment packet."""
        packet = memoryview(bytes(self._packet(1)))
        skip = 7 if self.codec == "vorbis" else 8
        vendor, comments, end = read_comments(packet[skip:], 0, "comment packet", self.source,
                                              self._limits)
        body = packet[skip:]
        return bytes(body[vendor]), [body[s] for s in comments], bytes(body[end:])

    def with_label(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: OggFile | None = None,
    ) -> bytes:
        """Return the stream with one ``AIGC=`` comment; audio pages renumbered, CRCs redone.

        ``xmp`` is ignored (Ogg has no standard XMP place)."""
        check_same_format(self, metadata_from)
        vendor, comments, tail = self._comments()
        if metadata_from is not None:
            _, comments, _ = metadata_from._comments()
        kept = [c for c in comments if not is_aigc(c)]
        kept.append(b"AIGC=" + label_json.encode("utf-8"))
        head = b"\x03vorbis" if self.codec == "vorbis" else b"OpusTags"
        comment = head + build_comments(vendor, kept) + tail
        packets = [comment] + [bytes(self._packet(i)) for i in range(2, self._headers())]
        view = memoryview(self._data)
        first = self._pages[0]
        out: list[bytes | memoryview] = [view[first.start : first.end]]
        out += _pages_of(packets, self._serial, 1)
        seq = len(out)
        for p in self._pages[self._header_pages :]:
            head_bytes = bytearray(view[p.start : p.body])
            struct.pack_into("<II", head_bytes, 18, seq, 0)
            crc = zlib.crc32(bytes(head_bytes).translate(_REV), 0xFFFFFFFF)
            crc = zlib.crc32(bytes(view[p.body : p.end]).translate(_REV), crc) ^ 0xFFFFFFFF
            struct.pack_into("<I", head_bytes, 22, int(f"{crc:032b}"[::-1], 2))
            out += [bytes(head_bytes), view[p.body : p.end]]
            seq += 1
        out.append(view[self._pages[-1].end :])
        return b"".join(out)


def parse(data: bytes, source: str, limits: Limits) -> OggFile:
    """Parse an Ogg Vorbis/Opus stream's pages, packets and comments without decoding."""
    if not isinstance(data, bytes):
        data = bytes(data)
    pages: list[_Page] = []
    packets: list[list[slice]] = []
    open_packet: list[slice] | None = None
    serial = None
    pos = 0
    while pos < len(data):
        if pos + 27 > len(data):
            raise CorruptInput(f"truncated Ogg page header at {pos:#x}", source=source)
        magic, version, flags, _, ser, _, _, nsegs = _PAGE.unpack_from(data, pos)
        if magic != b"OggS" or version != 0:
            raise CorruptInput(f"no Ogg page at {pos:#x}", source=source)
        if serial is None:
            serial = ser
        elif ser != serial or flags & 2:
            raise UnsupportedFormat(
                f"chained or multiplexed Ogg (a second stream at {pos:#x}) is not supported",
                source=source)
        lacing = data[pos + 27 : pos + 27 + nsegs]
        end = pos + 27 + nsegs + sum(lacing)
        if len(lacing) < nsegs or end > len(data):
            raise CorruptInput(f"Ogg page at {pos:#x} runs past the end of the file",
                               source=source)
        page = _Page(pos, end, flags, lacing)
        pages.append(page)
        check_count(len(pages), source, limits, "Ogg pages")
        at = page.body
        if flags & 1 and open_packet is None:
            raise CorruptInput(f"Ogg page at {pos:#x} continues a missing packet", source=source)
        for n in lacing:
            if open_packet is None:
                open_packet = []
            open_packet.append(slice(at, at + n))
            at += n
            if n < 255:
                packets.append(open_packet)
                check_count(len(packets), source, limits, "Ogg packets")
                open_packet = None
        pos = end
    if not pages:
        raise CorruptInput("empty Ogg stream", source=source)
    first = bytes(memoryview(data)[packets[0][0]]) if packets else b""
    if first.startswith(b"\x01vorbis") and len(first) >= 16:
        codec, headers = "vorbis", 3
        channels, rate = struct.unpack_from("<BI", first, 11)
    elif first.startswith(b"OpusHead") and len(first) >= 16:
        codec, headers = "opus", 2
        channels, rate = first[9], 48000  # Opus always decodes at 48 kHz
    else:
        raise CorruptInput("the first Ogg packet is not a Vorbis/Opus header", source=source)
    if len(packets) < headers:
        raise CorruptInput("truncated: the header packets are incomplete", source=source)
    if channels > limits.max_channels or rate > limits.max_sample_rate:
        raise LimitExceeded(f"header declares {channels} channels at {rate} Hz", source=source)
    # The page where the last header packet ends; audio must start on a fresh page.
    last = packets[headers - 1][-1].stop
    header_pages = next((i + 1 for i, p in enumerate(pages) if p.end >= last), len(pages))
    if pages[header_pages - 1].end != last:
        raise CorruptInput("audio shares a page with the header packets", source=source)
    ogg = OggFile(source, 0, 0, 0, [], None, data, limits, sample_rate=rate, channels=channels,
                  codec=codec, _pages=pages, _packets=packets, _header_pages=header_pages,
                  _serial=serial or 0)
    head = b"\x03vorbis" if codec == "vorbis" else b"OpusTags"
    if not data.startswith(head, packets[1][0].start):
        raise CorruptInput("the second Ogg packet is not a comment header", source=source)
    comment_size = sum(s.stop - s.start for s in packets[1])
    if comment_size > limits.max_metadata_bytes:
        raise LimitExceeded(f"comment packet is {comment_size} bytes", source=source)
    _, comments, _ = ogg._comments()
    where = f"comment packet at {packets[1][0].start:#x}"
    ogg.carriers += [Carrier("vorbis-comment", f"{where} AIGC",
                             bytes(c[5:]).decode("utf-8", "replace"))
                     for c in comments if is_aigc(c)]
    return ogg


register(sys.modules[__name__])
