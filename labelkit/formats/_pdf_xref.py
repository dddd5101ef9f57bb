"""PDF cross-reference sections and object lookup (ISO 32000-1 7.5.4-7.5.8).

``Document`` follows ``startxref`` and the /Prev chain (cycles refused, length bounded by
``limits.max_chunks``) over classic tables, cross-reference streams and hybrid files
(/XRefStm), and looks objects up lazily: an entry is decoded only when asked for, so a
table of a million objects costs nothing until then. Objects inside object streams are
found too. Streams decode through FlateDecode only, bounded by ``limits.max_metadata_bytes``,
with the PNG predictors. There is no recovery of broken files: a cross-reference that does
not lead to the object it names is a CorruptInput with the offset.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import CorruptInput, LimitExceeded, UnsupportedFormat
from ..limits import Limits
from . import check_count
from ._pdf_objects import Name, Ref, Stream, SyntaxProblem, parse_indirect, parse_value

__all__ = ["MAX_OBJECTS", "Document", "Section"]

MAX_OBJECTS = 8_388_607  # ISO 32000-1 Annex C: the most indirect objects a file may hold
_TAIL = 4096  # startxref is searched for this far from the end (1024 plus trailing junk)
_MAX_NESTING = 16  # lookups inside lookups (a /Length in an object stream...): deeper is a loop

_STARTXREF_RE = re.compile(rb"startxref[\x00\t\n\x0c\r ]+(\d{1,20})[\x00\t\n\x0c\r ]*%%EOF")
_SKIP_WS_RE = re.compile(rb"[\x00\t\n\x0c\r ]*")
_SUBSECTION_RE = re.compile(rb"(\d{1,10})[ \t]+(\d{1,10})[\x00\t\n\x0c\r ]*")
# Entries are 20 bytes (7.5.4); some writers end them with one byte instead of two.
_ENTRIES = {20: re.compile(rb"(?:\d{10} \d{5} [nf](?: [\r\n]|\r\n))*"),
            19: re.compile(rb"(?:\d{10} \d{5} [nf][\r\n])*")}  # fmt: skip
_TRAILER_RE = re.compile(rb"[\x00\t\n\x0c\r ]*trailer")

_TYPE, _SIZE, _PREV, _XREFSTM = Name(b"Type"), Name(b"Size"), Name(b"Prev"), Name(b"XRefStm")


def _int(value: Any) -> int | None:
    """The value if it is an integer (a PDF boolean is not), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class Section:
    """One cross-reference section: a classic table or a stream, with its trailer."""

    offset: int
    kind: str  # "table" or "stream"
    trailer: dict
    # (first object number, count, offset of the first entry/row, entry size)
    runs: list[tuple[int, int, int, int]] = field(default_factory=list)
    rows: bytes = b""  # a stream's decoded rows
    widths: tuple[int, int, int] = (0, 0, 0)
    hybrid: Section | None = None  # a table's /XRefStm stream, consulted after the table

    def lookup(self, data: bytes, num: int) -> tuple[int, int, int] | None:
        """(type, field 2, field 3) of object ``num``, or None if the section does not list it."""
        found = None
        for first, count, pos, size in self.runs:
            if first <= num < first + count:
                at = pos + (num - first) * size
                if self.kind == "stream":
                    return self._row(at)
                kind = 1 if data[at + 17] == 0x6E else 0  # 'n' or 'f'
                found = kind, int(data[at : at + 10]), int(data[at + 11 : at + 16])
                break
        # A hybrid file's table lists its compressed objects as free, for readers of PDF 1.4.
        if self.hybrid is not None and (found is None or found[0] == 0):
            return self.hybrid.lookup(data, num) or found
        return found

    def _row(self, at: int) -> tuple[int, int, int]:
        w1, w2, w3 = self.widths
        row = self.rows[at : at + w1 + w2 + w3]
        kind = int.from_bytes(row[:w1], "big") if w1 else 1  # type 1 is the default (7.5.8.2)
        return kind, int.from_bytes(row[w1 : w1 + w2], "big"), int.from_bytes(row[w1 + w2 :], "big")


class Document:
    """The cross-reference chain of a PDF file and lookup of its objects."""

    def __init__(self, data: bytes, source: str, limits: Limits) -> None:
        self.data, self.source, self.limits = data, source, limits
        self.sections: list[Section] = []  # lookups while the chain is read find nothing
        self._cache: dict[int, Any] = {}
        self._streams: dict[int, tuple[bytes, list[int], int]] = {}
        self._nesting = 0
        if not data.startswith(b"%PDF-"):
            raise CorruptInput("no %PDF- header at offset 0", source=source)
        self.startxref = self._startxref()
        self.sections = self._chain()
        self.trailer: dict = {}  # newest entry of each key, as readers resolve it
        for section in self.sections:
            for key, value in section.trailer.items():
                self.trailer.setdefault(key, value)
        self.size = self._size()

    def corrupt(self, reason: str) -> CorruptInput:
        """A CorruptInput naming this file."""
        return CorruptInput(reason, source=self.source)

    def _syntax(self, problem: SyntaxProblem, base: int = 0, where: str = "") -> CorruptInput:
        return self.corrupt(f"{problem.reason} at offset {base + problem.offset:#x}{where}")

    # -- the chain ---------------------------------------------------------------------------

    def _startxref(self) -> int:
        tail = max(0, len(self.data) - _TAIL)
        at = self.data.rfind(b"startxref", tail)
        m = _STARTXREF_RE.match(self.data, at) if at >= 0 else None
        if m is None:
            raise self.corrupt(
                f"no 'startxref ... %%EOF' in the last {_TAIL} bytes (truncated at "
                f"{len(self.data):#x}?)")
        return int(m.group(1))

    def _chain(self) -> list[Section]:
        sections: list[Section] = []
        seen: set[int] = set()
        offset: int | None = self.startxref
        while offset is not None:
            section = self._section(offset, seen, "/Prev" if sections else "startxref")
            sections.append(section)
            check_count(len(sections), self.source, self.limits, "cross-reference sections")
            offset = section.trailer.get(_PREV)
            if offset is not None and _int(offset) is None:
                raise self.corrupt(f"trailer /Prev of the section at {section.offset:#x} "
                                   "is not an offset")
        return sections

    def _section(self, offset: int, seen: set[int], via: str) -> Section:
        if offset in seen:
            raise self.corrupt(f"{via} offset {offset:#x} loops back to a section already read")
        seen.add(offset)
        if not 0 < offset < len(self.data):
            raise self.corrupt(f"{via} offset {offset:#x} is outside the file")
        pos = _SKIP_WS_RE.match(self.data, offset).end()  # type: ignore[union-attr]
        if self.data.startswith(b"xref", pos):
            section = self._table(offset, pos + 4)
            hybrid = section.trailer.get(_XREFSTM)
            if _int(hybrid) is not None:
                section.hybrid = self._section(hybrid, seen, "/XRefStm")
            return section
        if self.data[pos : pos + 1].isdigit():
            return self._stream_section(offset)
        raise self.corrupt(f"no cross-reference section at {via} offset {offset:#x}")

    def _table(self, offset: int, pos: int) -> Section:
        data, runs = self.data, []
        pos = _SKIP_WS_RE.match(data, pos).end()  # type: ignore[union-attr]
        while True:
            m = _SUBSECTION_RE.match(data, pos)
            if m is None:
                break
            first, count = int(m.group(1)), int(m.group(2))
            pos = m.end()
            term = data[pos + 18 : pos + 20]
            size = 20 if term[:1] == b" " or term == b"\r\n" else 19
            end = pos + count * size
            if end > len(data) or _ENTRIES[size].fullmatch(data, pos, end) is None:
                raise self.corrupt(f"malformed cross-reference entries at {pos:#x}")
            runs.append((first, count, pos, size))
            check_count(len(runs), self.source, self.limits, "cross-reference subsections")
            pos = _SKIP_WS_RE.match(data, end).end()  # type: ignore[union-attr]
        m = _TRAILER_RE.match(data, pos)
        if m is None:
            raise self.corrupt(f"no 'trailer' after the cross-reference table at {pos:#x}")
        try:
            trailer, _ = parse_value(data, m.end())
        except SyntaxProblem as problem:
            raise self._syntax(problem, where=" in the trailer") from None
        if not isinstance(trailer, dict):
            raise self.corrupt(f"the trailer at {m.start():#x} is not a dictionary")
        return Section(offset, "table", trailer, runs)

    def _stream_section(self, offset: int) -> Section:
        try:
            _, _, stream, _ = parse_indirect(self.data, offset, self._length)
        except SyntaxProblem as problem:
            raise self._syntax(problem, where=" in a cross-reference stream") from None
        what = f"cross-reference stream at {offset:#x}"
        if not isinstance(stream, Stream) or stream.dict.get(_TYPE) != b"XRef":
            raise self.corrupt(f"no cross-reference stream at offset {offset:#x}")
        widths = stream.dict.get(Name(b"W"))
        if (not isinstance(widths, list) or len(widths) != 3
                or not all(_int(w) is not None and 0 <= w <= 8 for w in widths)
                or sum(widths) == 0):  # fmt: skip
            raise self.corrupt(f"{what} has a bad /W")
        rows = self.stream_bytes(stream, what)
        size = _int(stream.dict.get(_SIZE))
        index = stream.dict.get(Name(b"Index"), [0, size])
        if (not isinstance(index, list) or len(index) % 2
                or not all(_int(v) is not None and v >= 0 for v in index)):  # fmt: skip
            raise self.corrupt(f"{what} has a bad /Index or /Size")
        width, runs, at = sum(widths), [], 0
        for first, count in zip(index[::2], index[1::2]):
            runs.append((first, count, at, width))
            at += count * width
        if at > len(rows):
            raise self.corrupt(f"{what} holds {len(rows)} bytes, its /Index needs {at}")
        return Section(offset, "stream", stream.dict, runs, rows, tuple(widths))

    def _size(self) -> int:
        """One more than the highest object number in use: the newest /Size, unless a section
        lists higher numbers (new objects must not take the number of an existing one)."""
        size = _int(self.trailer.get(_SIZE))
        if size is None or size < 1:
            raise self.corrupt("the trailer has no valid /Size")
        sections = self.sections + [s.hybrid for s in self.sections if s.hybrid is not None]
        listed = max((first + count for s in sections for first, count, _, _ in s.runs
                      if count), default=0)  # fmt: skip
        if max(size, listed) > MAX_OBJECTS:
            raise LimitExceeded(f"trailer /Size {size} or the cross-reference ({listed} "
                                f"objects) is over the PDF limit of {MAX_OBJECTS} objects",
                                source=self.source)
        return max(size, listed)

    # -- objects -----------------------------------------------------------------------------

    def entry(self, num: int) -> tuple[int, int, int] | None:
        """The newest cross-reference entry of object ``num`` (None: listed nowhere)."""
        for section in self.sections:
            found = section.lookup(self.data, num)
            if found is not None:
                return found
        return None

    def get(self, ref: Ref) -> Any:
        """The object ``ref`` names; None (PDF null) when it is free or listed nowhere."""
        if ref.num in self._cache:
            return self._cache[ref.num]
        entry = self.entry(ref.num)
        if entry is None or entry[0] not in (1, 2):
            return None  # free or unknown entries are null references (7.3.10)
        self._nesting += 1
        try:
            if self._nesting > _MAX_NESTING:
                raise self.corrupt(f"object {ref.num} is reached through a reference loop")
            kind, a, b = entry
            value = self._at_offset(ref, a, b) if kind == 1 else self._in_stream(ref, a, b)
        finally:
            self._nesting -= 1
        self._cache[ref.num] = value
        return value

    def resolve(self, value: Any) -> Any:
        """The value, or the object it refers to."""
        return self.get(value) if isinstance(value, Ref) else value

    def _at_offset(self, ref: Ref, offset: int, gen: int) -> Any:
        if gen != ref.gen:
            return None  # another generation of the number: the reference is null
        if not 0 < offset < len(self.data):
            raise self.corrupt(f"object {ref.num}'s offset {offset:#x} is outside the file")
        try:
            num, _, value, _ = parse_indirect(self.data, offset, self._length)
        except SyntaxProblem as problem:
            raise self._syntax(problem, where=f" (object {ref.num})") from None
        if num != ref.num:
            raise self.corrupt(f"cross-reference entry of object {ref.num} points to "
                               f"{offset:#x}, which holds object {num}")
        return value

    def _in_stream(self, ref: Ref, stream_num: int, index: int) -> Any:
        if ref.gen != 0:
            return None  # objects in object streams have generation 0
        body, offsets, first = self._object_stream(stream_num)
        if index >= len(offsets) // 2 or offsets[2 * index] != ref.num:
            raise self.corrupt(f"object {ref.num} is not at index {index} of object stream "
                               f"{stream_num}")
        try:
            value, _ = parse_value(body, first + offsets[2 * index + 1])
        except SyntaxProblem as problem:
            raise self._syntax(problem, where=f" in object stream {stream_num}") from None
        return value

    def _object_stream(self, num: int) -> tuple[bytes, list[int], int]:
        if num in self._streams:
            return self._streams[num]
        entry = self.entry(num)
        stream = self.get(Ref(num, entry[2])) if entry is not None and entry[0] == 1 else None
        if not isinstance(stream, Stream) or stream.dict.get(_TYPE) != b"ObjStm":
            raise self.corrupt(f"object {num} is not an object stream")
        body = self.stream_bytes(stream, f"object stream {num}")
        count, first = _int(stream.dict.get(Name(b"N"))), _int(stream.dict.get(Name(b"First")))
        if count is None or first is None or not 0 <= first <= len(body) or count < 0:
            raise self.corrupt(f"object stream {num} has a bad /N or /First")
        offsets, pos, header = [], 0, body[:first]
        try:
            for _ in range(min(2 * count, first)):  # each number takes at least one byte
                value, pos = parse_value(header, pos)
                offsets.append(_int(value) if _int(value) is not None and value >= 0 else -1)
        except SyntaxProblem as problem:
            raise self._syntax(problem, where=f" in object stream {num}'s header") from None
        if len(offsets) < 2 * count or -1 in offsets:
            raise self.corrupt(f"object stream {num}'s header is not {count} number pairs")
        self._streams[num] = body, offsets, first
        return self._streams[num]

    def _length(self, value: Any) -> int:
        length = _int(self.resolve(value))
        if length is None:
            raise self.corrupt("a stream has no valid /Length")
        return length

    # -- stream data -------------------------------------------------------------------------

    def stream_bytes(self, stream: Stream, what: str) -> bytes:
        """The decoded data of a stream (FlateDecode and PNG predictors), size-bounded."""
        filters = self.resolve(stream.dict.get(Name(b"Filter")))
        params = self.resolve(stream.dict.get(Name(b"DecodeParms")))
        filters = filters if isinstance(filters, list) else [] if filters is None else [filters]
        params = params if isinstance(params, list) else [params] * len(filters)
        limit = self.limits.max_metadata_bytes
        if not filters and stream.end - stream.start > limit:
            raise LimitExceeded(f"{what} is {stream.end - stream.start} bytes, over the limit "
                                f"of {limit}", source=self.source)
        data: bytes | memoryview = memoryview(self.data)[stream.start : stream.end]  # no copy
        for name, parms in zip(filters, params + [None] * len(filters)):
            if name not in (b"FlateDecode", b"Fl"):
                raise UnsupportedFormat(f"{what} uses the {_shown(name)} filter (labelkit "
                                        "decodes FlateDecode only)", source=self.source)
            data = self._inflate(data, what, limit)
            data = self._unpredict(data, self.resolve(parms), what)
        return bytes(data)

    def _inflate(self, data: bytes | memoryview, what: str, limit: int) -> bytes:
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(data, limit + 1)  # never more than the limit is made
        except zlib.error as exc:
            raise self.corrupt(f"{what} does not inflate: {exc}") from None
        if len(out) > limit:
            raise LimitExceeded(f"{what} inflates to over the limit of {limit} bytes (deflate "
                                "bomb?)", source=self.source)
        return out

    def _unpredict(self, data: bytes, parms: Any, what: str) -> bytes:
        parms = parms if isinstance(parms, dict) else {}
        predictor = _int(self.resolve(parms.get(Name(b"Predictor")))) or 1
        if predictor == 1:
            return data
        if not 10 <= predictor <= 15:
            raise UnsupportedFormat(f"{what} uses predictor {predictor} (labelkit decodes the "
                                    "PNG predictors only)", source=self.source)
        values = [_int(self.resolve(parms.get(Name(key)))) for key in
                  (b"Columns", b"Colors", b"BitsPerComponent")]  # fmt: skip
        columns, colors, bits = (v if v is not None else d for v, d in zip(values, (1, 1, 8)))
        if not (0 < columns <= 1 << 20 and 0 < colors <= 32 and bits in (1, 2, 4, 8, 16)):
            raise self.corrupt(f"{what} has bad predictor parameters")
        return _png_unfilter(data, (columns * colors * bits + 7) // 8,
                             max(1, colors * bits // 8))


def _shown(name: Any) -> str:
    return "/" + name.decode("latin-1") if isinstance(name, bytes) else repr(name)[:40]


def _png_unfilter(data: bytes, width: int, bpp: int) -> bytes:
    """Undo PNG row filters (each row: a filter byte and ``width`` bytes)."""
    rows = len(data) // (width + 1)
    table = np.frombuffer(data, np.uint8, rows * (width + 1)).reshape(rows, width + 1)
    kinds, body = table[:, 0], table[:, 1:]
    if rows and (kinds == 2).all():  # every row Up (what most writers use): a running sum
        return np.cumsum(body, axis=0, dtype=np.uint8).tobytes()
    out = np.zeros((rows, width), np.uint8)
    prev = np.zeros(width, np.uint8)
    for i in range(rows):
        row = _unfilter_row(int(kinds[i]), body[i], prev, bpp)
        out[i] = row
        prev = out[i]
    return out.tobytes()


def _unfilter_row(kind: int, raw: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    if kind == 0:
        return raw
    if kind == 2:
        return raw + prev  # uint8 arithmetic wraps, as the filter wants
    cur = bytearray(raw.tobytes())
    up = prev.tobytes()
    for j in range(len(cur)):
        left = cur[j - bpp] if j >= bpp else 0
        upper_left = up[j - bpp] if j >= bpp else 0
        if kind == 1:
            pred = left
        elif kind == 3:
            pred = (left + up[j]) >> 1
        elif kind == 4:
            pred = _paeth(left, up[j], upper_left)
        else:
            pred = 0  # an unknown filter type: the bytes as they are
        cur[j] = (cur[j] + pred) & 0xFF
    return np.frombuffer(bytes(cur), np.uint8)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c
