"""MP3: ID3v2 tag walker, ``TXXX:AIGC`` carriers, labeling by rebuilding the ID3v2 tag.

The label is an ID3v2 ``TXXX`` frame with description ``AIGC`` and the JSON as its value, first
in the tag at the start of the file. An existing v2.3/v2.4 tag is rebuilt in its own version
with every other frame byte-identical (in place when it fits in the old tag's size); a file
without a tag gets a new v2.3 tag (read by mutagen, exiftool, ffmpeg and older players alike).
ID3v2.2 tags are read but not rewritten; a tag with the unsynchronisation flag or an extended
header is read (carriers found) but labeling refuses it rather than re-encode it.

The essence is the MPEG audio after the ID3v2 tag(s), without a trailing APEv2 tag or ID3v1
``TAG``. A file with an ID3v2 tag and then ``fLaC`` is parsed by the FLAC handler.

``metadata_from`` (after re-encoding): this file's audio with the original's ID3v2 frames and
trailing APEv2/ID3v1 tags. Left behind: this file's own tags (they describe the encoder run),
and the original's AIGC frames (one label remains).
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import CorruptInput, UnsupportedFormat
from ..limits import Limits
from . import Carrier, ParsedFile, check_count, check_same_format, register

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "Mp3File"]

NAME = "mp3"
MIME = "audio/mpeg"
EXTENSIONS = (".mp3",)
MODALITY = "audio"

_BITRATES = {  # (version is v1, layer) -> kbit/s by index 1..14
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_BITRATES[(False, 3)] = _BITRATES[(False, 2)]
_RATES = (44100, 48000, 32000)


def frame_header(data: bytes | memoryview, pos: int) -> tuple[int, int, int, str] | None:
    """(frame length, sample rate, channels, codec) of a valid MPEG audio header, else None."""
    if pos + 4 > len(data):
        return None
    (h,) = struct.unpack_from(">I", data, pos)
    if h >> 21 != 0x7FF:
        return None
    version, layer_bits = (h >> 19) & 3, (h >> 17) & 3
    br_index, sr_index, pad = (h >> 12) & 15, (h >> 10) & 3, (h >> 9) & 1
    if version == 1 or layer_bits == 0 or br_index in (0, 15) or sr_index == 3 or h & 3 == 2:
        return None
    layer, v1 = 4 - layer_bits, version == 3
    rate = _RATES[sr_index] >> {3: 0, 2: 1, 0: 2}[version]
    bitrate = _BITRATES[(v1, layer)][br_index - 1] * 1000
    if layer == 1:
        length = (12 * bitrate // rate + pad) * 4
    else:
        length = (144 if v1 or layer == 2 else 72) * bitrate // rate + pad
    channels = 1 if (h >> 6) & 3 == 3 else 2
    return length, rate, channels, f"mp{layer}"


def _synced(data: bytes | memoryview, pos: int) -> tuple[int, int, int, str] | None:
    """The frame header at pos if a second valid frame follows at its computed length."""
    first = frame_header(data, pos)
    if first is None:
        return None
    nxt = pos + first[0]
    if nxt == len(data) or frame_header(data, nxt) is not None:
        return first
    return None


def accept(prefix: bytes) -> bool:
    """ID3v2 header, or a valid MPEG audio frame header (checked field by field)."""
    if prefix[:3] == b"ID3":
        return len(prefix) >= 10 and prefix[3] in (2, 3, 4) and not any(
            b & 0x80 for b in prefix[6:10])
    head = frame_header(prefix, 0)
    if head is None:
        return False
    return head[0] + 4 > len(prefix) or frame_header(prefix, head[0]) is not None


def _syncsafe(n: int) -> bytes:
    return bytes(((n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F))


def _unsync(raw: bytes | memoryview) -> int:
    return (raw[0] << 21) | (raw[1] << 14) | (raw[2] << 7) | raw[3]


def _txxx(payload: bytes | memoryview) -> tuple[str, str] | None:
    """(description, value) of a TXXX frame body; None if undecodable."""
    if not payload:
        return None
    enc, body = payload[0], bytes(payload[1:])
    if enc in (1, 2):
        i = 0
        while i + 1 < len(body) and body[i : i + 2] != b"\0\0":
            i += 2
        codec = "utf-16" if enc == 1 else "utf-16-be"
        desc, value = body[:i], body[i + 2 :]
        if enc == 1 and value[:2] not in (b"\xff\xfe", b"\xfe\xff") and desc[:2] in (
                b"\xff\xfe", b"\xfe\xff"):
            value = desc[:2] + value  # a BOM only on the description
    elif enc in (0, 3):
        desc, _, value = body.partition(b"\0")
        codec = "latin-1" if enc == 0 else "utf-8"
    else:
        return None
    return desc.decode(codec, "replace"), value.decode(codec, "replace").rstrip("\0")


@dataclass(frozen=True)
class _Tag:
    start: int
    end: int
    major: int
    flags: int
    frames: list[tuple[int, int, bytes]]  # (start, end, id) of each frame, file offsets
    aigc: frozenset[int]  # indices of TXXX:AIGC frames
    rewritable: str  # "" or why the tag cannot be rewritten


def _frames(data: bytes, start: int, end: int, major: int, source: str, limits: Limits,
            body: bytes | None = None) -> list[tuple[int, int, bytes]]:
    """Walk the frames of a tag body (``body`` when de-unsynchronised, else the file bytes)."""
    buf, base = (body, 0) if body is not None else (data, start)
    stop = len(body) if body is not None else end
    hsize = 6 if major == 2 else 10
    frames: list[tuple[int, int, bytes]] = []
    pos = base
    while pos + hsize <= stop and buf[pos] != 0:  # zero bytes: padding
        if major == 2:
            fid = bytes(buf[pos : pos + 3])
            size = int.from_bytes(buf[pos + 3 : pos + 6], "big")
        else:
            fid = bytes(buf[pos : pos + 4])
            raw = buf[pos + 4 : pos + 8]
            size = _unsync(raw) if major == 4 else int.from_bytes(raw, "big")
        fend = pos + hsize + size
        if fend > stop or not fid.isalnum():
            raise CorruptInput(
                f"ID3v2 frame {fid!r} at {pos if body is None else start:#x} runs past its tag",
                source=source,
            )
        frames.append((pos, fend, fid))
        check_count(len(frames), source, limits, "ID3v2 frames")
        pos = fend
    return frames


def _read_tag(data: bytes, pos: int, source: str, limits: Limits,
              carriers: list[Carrier]) -> _Tag:
    if pos + 10 > len(data):
        raise CorruptInput(f"truncated ID3v2 header at {pos:#x}", source=source)
    major, flags, raw = data[pos + 3], data[pos + 5], data[pos + 6 : pos + 10]
    if major not in (2, 3, 4) or any(b & 0x80 for b in raw):
        raise CorruptInput(f"bad ID3v2 header at {pos:#x}", source=source)
    size = _unsync(raw)
    if size > limits.max_metadata_bytes:
        from ..errors import LimitExceeded

        raise LimitExceeded(f"ID3v2 tag at {pos:#x} declares {size} bytes", source=source)
    end = pos + 10 + size + (10 if major == 4 and flags & 0x10 else 0)
    if end > len(data):
        raise CorruptInput(f"ID3v2 tag at {pos:#x} runs past the end of the file", source=source)
    body_start, body_end = pos + 10, pos + 10 + size
    why, body = "", None
    if major == 2:
        why = "ID3v2.2 tags are read only"
    if flags & 0x80:
        why = "the ID3v2 tag uses unsynchronisation"
        body = data[body_start:body_end].replace(b"\xff\x00", b"\xff")
    if flags & 0x40 and major > 2:
        why = why or "the ID3v2 tag has an extended header"
        buf = body if body is not None else data[body_start:body_end]
        if len(buf) < 4:
            raise CorruptInput(f"truncated ID3v2 extended header at {pos:#x}", source=source)
        ext = _unsync(buf[:4]) if major == 4 else int.from_bytes(buf[:4], "big") + 4
        body = buf[ext:]
    frames = _frames(data, body_start, body_end, major, source, limits, body)
    aigc = set()
    for i, (fs, fe, fid) in enumerate(frames):
        if fid not in (b"TXXX", b"TXX"):
            continue
        buf = body if body is not None else data
        hsize = 6 if major == 2 else 10
        fflags = 0 if major == 2 else int.from_bytes(buf[fs + 8 : fs + 10], "big")
        if fflags & (0x0C if major == 4 else 0xC0):
            continue  # compressed or encrypted: not a value we can read
        got = _txxx(memoryview(buf)[fs + hsize : fe])
        if got is not None and got[0] == "AIGC":
            aigc.add(i)
            where = f"ID3v2.{major} TXXX:AIGC at {fs if body is None else pos:#x}"
            carriers.append(Carrier("id3-txxx", where, got[1]))
    return _Tag(pos, end, major, flags, frames, frozenset(aigc), why)


def _label_frame(label_json: str, major: int) -> bytes:
    """A TXXX:AIGC frame in the tag's version (v2.3: Latin-1 or UTF-16; v2.4: UTF-8)."""
    if major == 4:
        payload = b"\x03AIGC\0" + label_json.encode("utf-8")
        return b"TXXX" + _syncsafe(len(payload)) + b"\0\0" + payload
    try:
        payload = b"\x00AIGC\0" + label_json.encode("latin-1")
    except UnicodeEncodeError:
        payload = b"\x01" + "AIGC".encode("utf-16") + b"\0\0" + label_json.encode("utf-16")
    return b"TXXX" + struct.pack(">I", len(payload)) + b"\0\0" + payload


@dataclass
class Mp3File(ParsedFile):
    """A parsed MP3: its ID3v2 tags, the audio range and the AIGC carriers."""

    sample_rate: int = 0
    channels: int = 0
    codec: str = "mp3"
    _tags: list[_Tag] = field(default_factory=list, repr=False)
    _audio: tuple[int, int] = (0, 0)  # the essence range
    format: str = NAME
    essence_hash = "blake3"

    def essence(self) -> Iterator[memoryview]:
        """Yield the MPEG audio between the ID3v2 tag(s) and any trailing APE/ID3v1 tag."""
        yield memoryview(self._data)[self._audio[0] : self._audio[1]]

    def _rebuilt(self, label_json: str | None) -> list[bytes | memoryview]:
        """This file's ID3v2 tags without AIGC frames, the label first in the first tag."""
        view = memoryview(self._data)
        out: list[bytes | memoryview] = []
        if not self._tags:
            frame = _label_frame(label_json, 3)
            return [b"ID3\x03\0\0" + _syncsafe(len(frame)), frame]
        for n, tag in enumerate(self._tags):
            if tag.rewritable:
                raise UnsupportedFormat(f"cannot relabel: {tag.rewritable} (at {tag.start:#x})",
                                        source=self.source)
            frames = [view[fs:fe] for i, (fs, fe, _) in enumerate(tag.frames)
                      if i not in tag.aigc]
            if n == 0 and label_json is not None:
                frames.insert(0, _label_frame(label_json, tag.major))
            size = sum(len(f) for f in frames)
            footer = tag.major == 4 and tag.flags & 0x10
            old = tag.end - tag.start - 10 - (10 if footer else 0)
            pad = old - size if size <= old else 0  # in place when it fits
            head = bytes(view[tag.start : tag.start + 6]) + _syncsafe(size + pad)
            out += [head, *frames, b"\0" * pad]
            if footer:
                out.append(b"3DI" + head[3:])
        return out

    def with_label(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: Mp3File | None = None,
    ) -> bytes:
        """Return the file with one TXXX:AIGC frame first in its ID3v2 tag; all else kept.

        ``xmp`` is ignored (ID3 PRIV XMP frames are kept as they are)."""
        check_same_format(self, metadata_from)
        view = memoryview(self._data)
        src = metadata_from if metadata_from is not None else self
        start, stop = self._audio
        parts = src._rebuilt(label_json)
        parts.append(view[start:stop])
        parts.append(memoryview(src._data)[src._audio[1] :])  # APEv2 / ID3v1 trailers
        return b"".join(parts)


def _trailers(data: bytes, end: int, source: str) -> int:
    """The offset where trailing ID3v1 and APEv2 tags begin (``end`` when there are none)."""
    if end - 128 >= 0 and data[end - 128 : end - 125] == b"TAG":
        end -= 128
    if end - 32 >= 0 and data[end - 32 : end - 24] == b"APETAGEX":
        size, flags = struct.unpack_from("<I4xI", data, end - 20)
        start = end - size - (32 if flags & 0x80000000 else 0)
        if start < 0:
            raise CorruptInput(f"APEv2 tag before {end:#x} is larger than the file", source=source)
        end = start
    return end


def parse(data: bytes, source: str, limits: Limits):
    """Parse an MP3's ID3v2 tags and find its audio (or hand an ID3-prefixed FLAC on)."""
    if not isinstance(data, bytes):
        data = bytes(data)
    carriers: list[Carrier] = []
    tags: list[_Tag] = []
    pos = 0
    while data[pos : pos + 3] == b"ID3":
        tags.append(_read_tag(data, pos, source, limits, carriers))
        check_count(len(tags), source, limits, "ID3v2 tags")
        pos = tags[-1].end
    if tags and data[pos : pos + 4] == b"fLaC":
        from . import flac

        return flac.parse(data, source, limits)
    # The first frame: right after the tag, or after a little junk/padding some writers leave.
    head = None
    for at in range(pos, min(pos + 4096, len(data) - 3)):
        if data[at] == 0xFF:
            head = _synced(data, at)
            if head is not None:
                break
    if head is None:
        raise CorruptInput(f"no MPEG audio frames after {pos:#x}", source=source)
    _, rate, channels, codec = head
    end = _trailers(data, len(data), source)
    if end < pos:
        raise CorruptInput(f"trailing tags overlap the ID3v2 tag at {pos:#x}", source=source)
    return Mp3File(source, 0, 0, 0, carriers, None, data, limits, sample_rate=rate,
                   channels=channels, codec=codec, _tags=tags, _audio=(pos, end))


register(sys.modules[__name__])
