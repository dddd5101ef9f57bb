"""JPEG: marker-segment walker, AIGC carriers, labeling with an APP1 XMP segment at the head.

The essence is every segment but APPn and COM, plus APP14 "Adobe": its transform flag decides
whether the decoder converts YCbCr (or YCCK) to RGB (CMYK), so it changes the picture. Colour
management (the APP2 ICC profile) is left out on purpose: platforms convert or strip profiles
routinely, and the fingerprint and the watermark cover the appearance.
"""

from __future__ import annotations

import struct
import sys
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from .. import exif
from .. import xmp as xmp_packet
from ..errors import CorruptInput, LimitExceeded
from ..limits import Limits
from . import Carrier, ParsedFile, check_count, check_pixels, check_same_format, icc_fits, register

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "JpegFile"]

NAME = "jpeg"
MIME = "image/jpeg"
EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif")
MODALITY = "image"

XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"
EXIF_ID = b"Exif\x00\x00"
ICC_ID = b"ICC_PROFILE\x00"
MPF_ID = b"MPF\x00"
ADOBE_ID = b"Adobe"
# The largest packet one APP1 segment holds: 16-bit length minus itself and the identifier.
MAX_XMP = 0xFFFF - 2 - len(XMP_ID)

SOI, EOI, SOS, APP0, APP1, APP2, APP14, COM = 0xD8, 0xD9, 0xDA, 0xE0, 0xE1, 0xE2, 0xEE, 0xFE
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn have no length
# After 0xFF inside entropy-coded data, which bytes end it: all but a stuffed zero, a restart
# marker or another 0xFF (a fill byte before the marker).
_ENDS_SCAN = np.ones(256, dtype=bool)
_ENDS_SCAN[[0x00, *range(0xD0, 0xD8), 0xFF]] = False


def accept(prefix: bytes) -> bool:
    """Whether the bytes start with SOI followed by a marker."""
    return prefix[:3] == b"\xff\xd8\xff"


@dataclass(frozen=True)
class _Segment:
    marker: int
    start: int  # offset of the first 0xFF (fill bytes included, so copies are exact)
    mark: int  # offset of the 0xFF right before the marker byte
    end: int  # offset past the segment (for SOS: past its entropy-coded data)
    adobe: bool = False  # an APP14 "Adobe" segment (colour transform: part of the picture)

    @property
    def payload(self) -> slice:
        """The slice after the marker and length field."""
        return slice(self.mark + 4, self.end)

    @property
    def is_essence(self) -> bool:
        """Whether the segment carries the picture (all but APPn and COM; APP14 Adobe is)."""
        return self.adobe or not (0xE0 <= self.marker <= 0xEF or self.marker == COM)


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


@dataclass
class JpegFile(ParsedFile):
    """A parsed JPEG: its segments, carriers and what labeling needs to rewrite it."""

    _segments: list[_Segment] = field(repr=False)
    _exact: bool = field(default=True, repr=False)  # False: scans not split yet (see _walk)
    _xmp_segment: int | None = field(default=None, repr=False)
    _rewrite: dict[int, str] = field(default_factory=dict, repr=False)  # index -> "xmp"/"exif"
    format: str = NAME

    def essence(self) -> Iterator[memoryview]:
        """Yield every segment but APPn/COM (SOS with its scan data), from its marker on."""
        view = memoryview(self._data)
        for s in self._exact_segments():
            if s.is_essence:
                yield view[s.mark : s.end]

    def scans(self) -> list[memoryview]:
        """The SOS segments with their entropy-coded data (the compressed pixels)."""
        view = memoryview(self._data)
        return [view[s.mark : s.end] for s in self._exact_segments() if s.marker == SOS]

    def _exact_segments(self) -> list[_Segment]:
        """Every segment, scans split at their markers (walked on first use, then kept)."""
        if not self._exact:
            self._segments, _ = _walk(self._data, self.source, self._limits, lazy=False)
            self._exact = True
        return self._segments

    def with_label(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: JpegFile | None = None,
    ) -> bytes:
        """Return the file with one APP1 XMP segment after SOI/APP0/Exif holding the label.

        With ``metadata_from``, the original's APPn/COM segments (see ``_carried``) precede
        this file's picture segments; this file's own APPn/COM are dropped.
        """
        check_same_format(self, metadata_from)
        src = metadata_from if metadata_from is not None else self
        base = xmp if xmp is not None else src.xmp
        packet = xmp_packet.set_aigc(base, label_json, source=self.source, limits=self._limits)
        if len(packet) > MAX_XMP:
            raise LimitExceeded(
                f"the XMP packet ({len(packet)} bytes) does not fit one APP1 segment "
                f"({MAX_XMP} bytes); ExtendedXMP is not supported",
                source=self.source,
            )
        label_segment = _segment(APP1, XMP_ID + packet)
        if metadata_from is None:
            sequence = [(self, i, s) for i, s in enumerate(self._segments)]
        else:
            own = self._exact_segments()  # any APPn/COM between scans goes too
            sequence = [(self, 0, own[0]), *metadata_from._carried(self)]
            sequence += [(self, i, s) for i, s in enumerate(own) if i and s.is_essence]
        parts: list[bytes | memoryview] = []
        placed = False
        for owner, i, s in sequence:
            if not placed and not owner._is_head(s):
                parts.append(label_segment)
                placed = True
            part = owner._part(i, s)
            if part is not None:
                parts.append(part)
        parts.append(memoryview(self._data)[self._segments[-1].end :])  # data after EOI stays
        return b"".join(parts)

    def _part(self, i: int, s: _Segment) -> bytes | memoryview | None:
        """Segment i as labeling writes it: None for the packet merged into the label."""
        if i == self._xmp_segment:
            return None
        view = memoryview(self._data)
        action = self._rewrite.get(i)
        if action == "xmp":
            old = bytes(view[s.payload][len(XMP_ID) :])
            stripped = xmp_packet.strip_aigc(old, source=self.source, limits=self._limits)
            return _segment(APP1, XMP_ID + stripped)
        if action == "exif":
            blob = exif.strip_aigc(bytes(view[s.payload]), self.source, self._limits)
            return _segment(APP1, blob)
        return view[s.start : s.end]

    def _carried(self, new: JpegFile) -> list[tuple[JpegFile, int, _Segment]]:
        """This (original) file's APPn/COM segments before its first scan, for new pixels.

        Left behind: APP14 Adobe (it belongs to the old encoding, the new one has its own),
        MPF (its offsets point at preview images after EOI, which are not carried: they show
        the old pixels) and an ICC profile for another colour space than the new encoding's.
        """
        icc_ok = icc_fits(self._icc_head(), new._colour_space())
        out = []
        for i, s in enumerate(self._segments):
            if s.marker == SOS:
                break  # metadata is read up to the first scan only, like exiftool
            if s.is_essence:
                continue
            if s.marker == APP2 and self._data.startswith(MPF_ID, s.mark + 4):
                continue
            if s.marker == APP2 and self._data.startswith(ICC_ID, s.mark + 4) and not icc_ok:
                continue
            out.append((self, i, s))
        return out

    def _icc_head(self) -> bytes:
        """The start of the ICC profile (from its first APP2 chunk), b"" if there is none."""
        for s in self._segments:
            if s.marker == APP2 and self._data[s.mark + 4 : s.mark + 17] == ICC_ID + b"\x01":
                return self._data[s.mark + 18 : s.end]
        return b""

    def _colour_space(self) -> bytes | None:
        """The ICC colour space matching the frame's component count."""
        sof = next(s for s in self._segments if s.marker in _SOF)
        components = self._data[sof.mark + 9] if sof.end - sof.mark > 9 else 0
        return {1: b"GRAY", 3: b"RGB ", 4: b"CMYK"}.get(components)

    def _is_head(self, s: _Segment) -> bool:
        """SOI, APP0 (JFIF) and APP1 Exif stay in front of the label segment."""
        if s.marker in (SOI, APP0):
            return True
        return s.marker == APP1 and self._data.startswith(EXIF_ID, s.mark + 4)


def _scan_ends(data: bytes, start: int) -> list[int]:
    """Offsets from ``start`` on of every 0xFF that starts a marker able to end a scan.

    One vectorised pass over the rest of the file (the scans are most of it); a Python loop or
    a regex over the entropy-coded bytes costs about twice as much.
    """
    a = np.frombuffer(data, np.uint8)
    ff = np.flatnonzero(a[start:-1] == 0xFF) + start
    return ff[_ENDS_SCAN[a[ff + 1]]].tolist()


def _walk(
    data: bytes, source: str, limits: Limits, *, lazy: bool
) -> tuple[list[_Segment], bool]:
    """Split the file into marker segments up to EOI, scan data included with its SOS.

    Finding where scans end means reading all the entropy-coded data, which labeling does not
    need: with ``lazy``, a file that ends with EOI gets one segment from the first SOS to it
    (copied as is), and the second result says the scans are not split yet. A file that does
    not end with EOI (truncated, or data after EOI) is always walked to the end.
    """
    segments = [_Segment(SOI, 0, 0, 2)]
    scan_ends: list[int] | None = None
    pos, size = 2, len(data)
    while True:
        if pos >= size:
            raise CorruptInput(f"truncated: no EOI marker (file ends at {size:#x})", source=source)
        if data[pos] != 0xFF:
            raise CorruptInput(
                f"expected a marker at {pos:#x}, found byte {data[pos]:#04x}", source=source
            )
        mark = pos
        while mark + 1 < size and data[mark + 1] == 0xFF:
            mark += 1  # fill bytes
        if mark + 1 >= size:
            raise CorruptInput(f"truncated: marker at {pos:#x} cut off", source=source)
        marker = data[mark + 1]
        check_count(len(segments), source, limits, "JPEG segments")
        if marker == EOI or marker in _STANDALONE:
            segments.append(_Segment(marker, pos, mark, mark + 2))
            if marker == EOI:
                return segments, True
            pos = mark + 2
            continue
        if marker in (0x00, SOI):
            raise CorruptInput(f"invalid marker 0xff{marker:02x} at {mark:#x}", source=source)
        if mark + 4 > size:
            raise CorruptInput(f"truncated: segment header at {mark:#x} cut off", source=source)
        (length,) = struct.unpack_from(">H", data, mark + 2)
        end = mark + 2 + length
        if length < 2 or end > size:
            raise CorruptInput(
                f"segment 0xff{marker:02x} at {mark:#x} (length {length}) runs past the end "
                "of the file",
                source=source,
            )
        if marker == SOS and lazy and data.endswith(b"\xff\xd9") and end <= size - 2:
            segments.append(_Segment(SOS, pos, mark, size - 2))
            segments.append(_Segment(EOI, size - 2, size - 2, size))
            return segments, False
        if marker == SOS:
            if scan_ends is None:
                scan_ends = _scan_ends(data, end)
            i = bisect_left(scan_ends, end)
            if i == len(scan_ends):
                raise CorruptInput(
                    f"truncated: scan data from {end:#x} has no end (no EOI)", source=source
                )
            scan_end = scan_ends[i]
            while data[scan_end - 1] == 0xFF and scan_end > end:
                scan_end -= 1  # fill bytes belong to the marker that follows
            end = scan_end
        adobe = marker == APP14 and data.startswith(ADOBE_ID, mark + 4)
        segments.append(_Segment(marker, pos, mark, end, adobe))
        pos = end


def parse(data: bytes, source: str, limits: Limits) -> JpegFile:
    """Parse a JPEG's segments and AIGC carriers without decoding pixels."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if not accept(data[:3]):
        raise CorruptInput("not a JPEG (no SOI marker)", source=source)
    segments, exact = _walk(data, source, limits, lazy=True)
    sof = next((s for s in segments if s.marker in _SOF), None)
    if sof is None or not any(s.marker == SOS for s in segments):
        raise CorruptInput("no frame header (SOF) or no scan (SOS)", source=source)
    if sof.end - sof.mark < 10:
        raise CorruptInput(f"SOF segment at {sof.mark:#x} is too short", source=source)
    height, width = struct.unpack_from(">HH", data, sof.mark + 5)
    check_pixels(width, height, source, limits)

    carriers: list[Carrier] = []
    jpeg = JpegFile(source, width, height, 1, carriers, None, data, limits, _segments=segments,
                    _exact=exact)
    for i, s in enumerate(segments):
        if s.marker == SOS:
            break  # like exiftool, metadata is read up to the first scan only
        if s.marker != APP1:
            continue
        payload = data[s.payload]
        where = f"APP1 segment at {s.mark:#x}"
        if payload.startswith(XMP_ID):
            packet = payload[len(XMP_ID) :]
            found = xmp_packet.find_aigc(packet, source, limits, where=where)
            carriers.extend(Carrier(k, f"{where} (XMP)", v) for k, v in found)
            if jpeg.xmp is None:
                jpeg.xmp, jpeg._xmp_segment = packet, i
            elif found:
                jpeg._rewrite[i] = "xmp"
        elif payload.startswith(EXIF_ID):
            comment = exif.find_aigc(payload, source, limits, where=where)
            if comment is not None:
                carriers.append(Carrier("exif-usercomment", f"{where} (Exif) UserComment", comment))
                jpeg._rewrite[i] = "exif"
        # ExtendedXMP (http://ns.adobe.com/xmp/extension/) is out of scope and kept as is.
    return jpeg


register(sys.modules[__name__])
