"""WAV (RIFF/WAVE): chunk walker, AIGC chunk carriers, labeling with a top-level `AIGC` chunk.

The label is a top-level chunk ``AIGC`` holding the JSON text (UTF-8), even-padded, placed just
before the ``data`` chunk. The essence is the ``fmt `` payload and the ``data`` payload.

``metadata_from`` (after the audio was re-encoded): this file's ``fmt ``, ``fact`` and
``data`` chunks with the original's other chunks (LIST/INFO, ``id3 ``, ``bext``...). Left
behind: ``fact`` (sample count of the old encoding), ``cue ``/``smpl``/``plst`` (sample
offsets into the old audio; they may not fit the new one), and the original's AIGC chunks.
RF64/BW64 (64-bit sizes) is refused: its ``ds64`` sizes would need rewriting too.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import CorruptInput, LimitExceeded, UnsupportedFormat
from ..limits import Limits
from . import Carrier, ParsedFile, check_count, check_same_format, register

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "WavFile"]

NAME = "wav"
MIME = "audio/wav"
EXTENSIONS = (".wav",)
MODALITY = "audio"

AIGC_ID = b"AIGC"
_HEAD = struct.Struct("<4sI")
_FMT = struct.Struct("<HHI")
# Chunks that describe the encoding or point into the samples: never carried to new audio.
_ENCODING = frozenset({b"fmt ", b"data", b"fact", b"cue ", b"smpl", b"plst", AIGC_ID})


def accept(prefix: bytes) -> bool:
    """A RIFF (or RF64/BW64) header of form WAVE and a whole first chunk header after it."""
    # Twelve bytes alone are not enough to call a file audio: a first chunk header must follow.
    return (prefix[:4] in (b"RIFF", b"RF64", b"BW64") and prefix[8:12] == b"WAVE"
            and len(prefix) >= 20 and all(0x20 <= b < 0x7F for b in prefix[12:16]))


@dataclass(frozen=True)
class _Chunk:
    id: bytes
    start: int  # offset of the chunk header
    size: int  # declared payload size
    end: int  # offset past the payload and its pad byte

    @property
    def payload(self) -> slice:
        """The slice of the file holding the payload."""
        return slice(self.start + 8, self.start + 8 + self.size)


def _chunk(cid: bytes, payload: bytes) -> bytes:
    """Serialize one RIFF chunk with its pad byte."""
    return _HEAD.pack(cid, len(payload)) + payload + (b"\0" if len(payload) & 1 else b"")


@dataclass
class WavFile(ParsedFile):
    """A parsed WAV file: its top-level chunks and AIGC carriers."""

    sample_rate: int = 0
    channels: int = 0
    codec: str = ""
    _chunks: list[_Chunk] = field(default_factory=list, repr=False)
    format: str = NAME
    essence_hash = "blake3"

    def _find(self, cid: bytes) -> _Chunk:
        return next(c for c in self._chunks if c.id == cid)

    def essence(self) -> Iterator[memoryview]:
        """Yield the ``fmt `` and ``data`` payloads (slices, no copies)."""
        view = memoryview(self._data)
        yield view[self._find(b"fmt ").payload]
        yield view[self._find(b"data").payload]

    def with_label(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: WavFile | None = None,
    ) -> bytes:
        """Return the file with one ``AIGC`` chunk (before ``data``); other AIGC chunks gone.

        ``xmp`` is ignored: WAV's carrier is the AIGC chunk (an XMP ``_PMX`` chunk is kept).
        """
        check_same_format(self, metadata_from)
        view = memoryview(self._data)
        label = _chunk(AIGC_ID, label_json.encode("utf-8"))
        parts: list[bytes | memoryview] = []
        for c in self._chunks:
            if c.id == AIGC_ID:
                continue
            if metadata_from is not None and c.id not in _ENCODING:
                continue  # this file's own metadata gives way to the original's
            if c.id == b"data":
                if metadata_from is not None:
                    parts += metadata_from._metadata()
                parts.append(label)
            parts.append(view[c.start : c.end])
            if (c.end - c.start) & 1:
                parts.append(b"\0")  # a last chunk written without its pad byte; it may move
        body = sum(len(p) for p in parts)
        return b"".join([b"RIFF", struct.pack("<I", body + 4), b"WAVE", *parts])

    def _metadata(self) -> list[bytes | memoryview]:
        """The chunks ``metadata_from`` carries to new audio."""
        view = memoryview(self._data)
        out: list[bytes | memoryview] = []
        for c in self._chunks:
            if c.id not in _ENCODING:
                out += [view[c.start : c.end], b"\0"] if (c.end - c.start) & 1 else [
                    view[c.start : c.end]]
        return out


def parse(data: bytes, source: str, limits: Limits) -> WavFile:
    """Parse a WAV file's chunks and AIGC carriers without decoding audio."""
    if not isinstance(data, bytes):
        data = bytes(data)
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64", b"BW64") or data[8:12] != b"WAVE":
        raise CorruptInput("not a RIFF/WAVE header", source=source)
    if data[:4] != b"RIFF":
        raise UnsupportedFormat(f"{data[:4].decode()} (64-bit WAV) is not supported", source=source)
    (riff_size,) = struct.unpack_from("<I", data, 4)
    # Writers that stream leave the RIFF size wrong (0 or 0xFFFFFFFF); the chunks decide.
    limit = len(data) if riff_size + 8 > len(data) or riff_size < 4 else riff_size + 8
    chunks: list[_Chunk] = []
    pos = 12
    while pos + 8 <= limit:
        cid, size = _HEAD.unpack_from(data, pos)
        end = pos + 8 + size
        if end > len(data):
            raise CorruptInput(
                f"{cid!r} chunk at {pos:#x} ({size} bytes) runs past the end of the file",
                source=source,
            )
        chunks.append(_Chunk(cid, pos, size, min(end + (size & 1), len(data))))
        check_count(len(chunks), source, limits, "RIFF chunks")
        pos = chunks[-1].end
    if pos < limit and any(data[pos:limit]):
        raise CorruptInput(f"truncated chunk header at {pos:#x}", source=source)
    ids = [c.id for c in chunks]
    if b"fmt " not in ids or b"data" not in ids:
        raise CorruptInput("no 'fmt ' or 'data' chunk (truncated?)", source=source)
    fmt = next(c for c in chunks if c.id == b"fmt ")
    if fmt.size < 16:
        raise CorruptInput(f"'fmt ' chunk at {fmt.start:#x} is too short", source=source)
    tag, channels, rate = _FMT.unpack_from(data, fmt.start + 8)
    if channels > limits.max_channels or rate > limits.max_sample_rate:
        raise LimitExceeded(f"'fmt ' declares {channels} channels at {rate} Hz", source=source)
    codec = {1: "pcm", 3: "pcm_float", 0xFFFE: "extensible"}.get(tag, f"0x{tag:04x}")
    carriers: list[Carrier] = []
    for c in chunks:
        if c.id == AIGC_ID:
            if c.size > limits.max_metadata_bytes:
                raise LimitExceeded(f"AIGC chunk at {c.start:#x} is over the limit", source=source)
            text = data[c.payload].rstrip(b"\0").decode("utf-8", "replace")
            carriers.append(Carrier("riff-aigc", f"AIGC chunk at {c.start:#x}", text))
    return WavFile(source, 0, 0, 0, carriers, None, data, limits, sample_rate=rate,
                   channels=channels, codec=codec, _chunks=chunks)


register(sys.modules[__name__])
