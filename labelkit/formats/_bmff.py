"""ISO BMFF boxes for the MP4/MOV handler: the walker, box builders, the fields of movie, track
and fragment boxes, and the absolute file offsets that move when a box before them grows.

Private to ``isobmff`` (no ``register``): nothing here knows about labels. The reader returns a
``Movie`` (tracks, length, offset fields, the metadata boxes that may hold labels); ``Table``,
``Patch`` and ``Remap`` render the boxes holding absolute offsets once the new layout is known.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Union

import numpy as np

from ..errors import CorruptInput, LimitExceeded, UnsupportedFormat
from ..limits import Limits
from . import check_count

__all__ = [
    "HEAD", "U16", "U32", "U64", "MAX_MOOV_BYTES", "OFFSET_TABLES", "Field", "Piece", "Layout",
    "box", "header", "Box", "Walker", "Track", "Movie", "read_movie", "offsets", "Table",
    "Patch", "Remap", "size_of", "container",
]  # fmt: skip

# moov holds the sample tables: a long movie's is several MB (about 10 MB for two hours at
# 60 fps), far over the per-block metadata limit, so it has its own bound.
MAX_MOOV_BYTES = 64 * 1024 * 1024
# Containers walked, by parent type (b"" = top level); a meta box is handled on its own.
_DESCEND = {
    b"": frozenset({b"moov", b"moof", b"mfra"}),
    b"moov": frozenset({b"trak", b"udta", b"mvex"}),
    b"trak": frozenset({b"mdia", b"udta"}),
    b"mdia": frozenset({b"minf"}),
    b"minf": frozenset({b"stbl"}),
    b"moof": frozenset({b"traf"}),
    b"meta": frozenset({b"ilst"}),
}
_META_PARENTS = frozenset({b"moov", b"trak", b"udta"})
OFFSET_TABLES = frozenset({b"stco", b"co64", b"saio"})

HEAD = struct.Struct(">I4s")
U16 = struct.Struct(">H")
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")

Field = tuple[int, int, int, int]  # a run of absolute offsets: (position, stride, count, width)
Piece = Union[bytes, memoryview, "Table", "Patch"]
Layout = list[tuple[Union["Box", None], list[Piece]]]  # top-level: (the old box or None, pieces)


def box(kind: bytes, payload: bytes) -> bytes:
    """A box with a 32-bit size."""
    return HEAD.pack(8 + len(payload), kind) + payload


def header(kind: bytes, payload: int, long: bool) -> bytes:
    """A box header for ``payload`` bytes after it, 64-bit (largesize) when asked or needed."""
    if long or payload + 8 > 0xFFFFFFFF:
        return HEAD.pack(1, kind) + U64.pack(payload + 16)
    return HEAD.pack(payload + 8, kind)


@dataclass(slots=True, eq=False)
class Box:
    """One box: where it, its payload and its children are in the file."""

    type: bytes
    start: int
    end: int
    hend: int  # past the header (size, type, largesize)
    body: int  # where the payload or the children start (past uuid usertype / meta version)
    children: list[Box] | None = None
    cend: int = 0  # past the last child; bytes up to ``end`` are kept as they are (QT padding)

    def kids(self, kind: bytes) -> list[Box]:
        """The children of one type."""
        return [c for c in self.children or () if c.type == kind]


def _need(b: Box, length: int, what: str, source: str | None) -> None:
    if b.end - b.hend < length:
        name = b.type.decode("latin-1")
        raise CorruptInput(f"{name!r} box at {b.start:#x} is truncated{what}", source=source)


class Walker:
    """Splits byte ranges into boxes, checking every size against its parent and the limits."""

    def __init__(self, data, view: memoryview, source: str, limits: Limits) -> None:
        self.data, self.view, self.source, self.limits = data, view, source, limits
        self.count = 0

    def fail(self, message: str) -> CorruptInput:
        """The error for a structural problem, naming the file."""
        return CorruptInput(message, source=self.source)

    def boxes(self, start: int, end: int, path: bytes = b"") -> tuple[list[Box], int]:
        """The boxes in [start, end) and where they end (trailing zero padding excluded)."""
        top = not path
        out: list[Box] = []
        pos = start
        while pos < end:
            left = end - pos
            if left < 8 or U32.unpack_from(self.data, pos)[0] == 0 and not top:
                # QuickTime ends some atom lists with a zero word (or zero fill): kept as is.
                if top or bytes(self.view[pos:end]).strip(b"\0"):
                    what = "truncated box header" if left < 8 else "box of size 0"
                    raise self.fail(f"{what} at {pos:#x} in {self._where(path)}")
                break
            size, kind = HEAD.unpack_from(self.data, pos)
            hend = pos + 8
            if size == 1:
                if left < 16:
                    raise self.fail(f"truncated 64-bit box header at {pos:#x}")
                (size,) = U64.unpack_from(self.data, pos + 8)
                hend += 8
            elif size == 0:  # (top level only, above): the box runs to the end of the file
                size = left
            name = kind.decode("latin-1")
            if size < hend - pos:
                raise self.fail(f"{name!r} box at {pos:#x} declares {size} bytes, less than its header")
            if size > left:
                raise self.fail(
                    f"{name!r} box at {pos:#x} ({size} bytes) runs past the end of "
                    + ("the file (truncated?)" if top else f"{self._where(path)} (size lie)")
                )
            b = Box(kind, pos, pos + size, hend, hend)
            self.count += 1
            check_count(self.count, self.source, self.limits, "boxes")
            if kind == b"uuid":
                if size < hend - pos + 16:
                    raise self.fail(f"'uuid' box at {pos:#x} is shorter than its user type")
                b.body = hend + 16
            limit = max(MAX_MOOV_BYTES, self.limits.max_metadata_bytes)
            if kind == b"moov" and size > limit:
                raise LimitExceeded(
                    f"moov box at {pos:#x} is {size} bytes, over the limit of {limit}",
                    source=self.source,
                )
            parent = path[-4:]
            if kind in _DESCEND.get(parent, ()):
                b.children, b.cend = self.boxes(b.body, b.end, path + kind)
            elif kind == b"meta" and parent in _META_PARENTS:
                # QuickTime's meta atom has no version/flags; ISO's meta box has them.
                plain = size - (hend - pos) >= 8 and bytes(self.view[hend + 4 : hend + 8]) in (
                    b"hdlr", b"keys", b"ilst")  # fmt: skip
                b.body = hend if plain else hend + 4
                if b.body > b.end:
                    raise self.fail(f"'meta' box at {pos:#x} is truncated")
                b.children, b.cend = self.boxes(b.body, b.end, path + kind)
            out.append(b)
            pos += size
        return out, pos

    def _where(self, path: bytes) -> str:
        return "/".join(path[i : i + 4].decode("latin-1") for i in range(0, len(path), 4)) or "file"

    def need(self, b: Box, length: int, what: str = "") -> None:
        """Raise unless the box's payload holds ``length`` bytes."""
        _need(b, length, what, self.source)

    def u32(self, pos: int) -> int:
        """The big-endian 32-bit integer at ``pos``."""
        return U32.unpack_from(self.data, pos)[0]

    def u64(self, pos: int) -> int:
        """The big-endian 64-bit integer at ``pos``."""
        return U64.unpack_from(self.data, pos)[0]

    def version_u(self, b: Box, v0: int, v1: int, what: str) -> int:
        """A full box's field: 32-bit at payload offset v0 (version 0), 64-bit at v1 (version 1)."""
        if self.view[b.hend] == 1:
            self.need(b, v1 + 8, f" (no {what})")
            value = self.u64(b.hend + v1)
            return 0 if value == (1 << 64) - 1 else value
        self.need(b, v0 + 4, f" (no {what})")
        value = self.u32(b.hend + v0)
        return 0 if value == 0xFFFFFFFF else value  # all ones: unknown


# -- reading the movie -----------------------------------------------------------------------------


@dataclass(slots=True)
class Track:
    """One trak: identity, timing, frame size, sample count and codec setup."""

    id: int = 0
    handler: bytes = b""
    timescale: int = 0
    width: int = 0
    height: int = 0
    samples: int = 0
    stsd: Box | None = None  # the sample descriptions: how every sample decodes


@dataclass(eq=False)
class Movie:
    """What the box tree holds besides labels: tracks, length, offset fields, metadata boxes."""

    tracks: list[Track] = field(default_factory=list)
    seconds: float = 0.0  # the longest of mvhd, mehd and the last fragments' ends
    # top-level box start -> the runs of absolute offsets in it (moof, mfra, sidx)
    patches: dict[int, list[Field]] = field(default_factory=dict)
    # meta, XMP_ and uuid boxes (which may hold labels), in file order: (box, movie level, path)
    metadata: list[tuple[Box, bool, str]] = field(default_factory=list)


def read_movie(w: Walker, top: list[Box]) -> Movie:
    """Read tracks, timing and offset fields from the top-level boxes (walked by ``w``)."""
    return _TreeReader(w).read(top)


class _TreeReader:
    """One pass over the tree: tracks, timing, offset fields; metadata boxes listed, not read."""

    def __init__(self, w: Walker) -> None:
        self.w, self.view = w, w.view
        self.movie = Movie()
        self.by_id: dict[int, Track] = {}
        self.trex: dict[int, int] = {}  # track id -> default sample duration
        self.last_traf: dict[int, tuple[int, Box, int]] = {}  # id -> (tfdt, traf, default dur)
        self.timescale = 0
        self.seconds = 0.0

    def read(self, top: list[Box]) -> Movie:
        for b in top:
            if b.type == b"moov":
                self.moov(b)
            elif b.type == b"uuid":
                self.movie.metadata.append((b, True, "uuid"))
            elif b.type == b"moof":
                self.moof(b)
            elif b.type == b"mfra":
                self.mfra(b)
            elif b.type == b"sidx":
                self.sidx(b)
        seconds = self.seconds
        for track, (base, traf, default) in self.last_traf.items():
            t = self.by_id.get(track)
            if t is not None and t.timescale:
                seconds = max(seconds, (base + self.traf_ticks(traf, default)) / t.timescale)
        self.movie.seconds = seconds
        return self.movie

    def moov(self, moov: Box) -> None:
        w = self.w
        if moov.kids(b"cmov"):
            raise UnsupportedFormat("compressed moov (QuickTime cmov) is not supported",
                                    source=w.source)  # fmt: skip
        mvhd = moov.kids(b"mvhd")
        if not mvhd:
            raise w.fail(f"the moov box at {moov.start:#x} has no mvhd")
        version = self.view[mvhd[0].hend] == 1
        w.need(mvhd[0], 24 if version else 16, " (no timescale)")
        self.timescale = w.u32(mvhd[0].hend + (20 if version else 12))
        duration = w.version_u(mvhd[0], 16, 24, "duration")
        if self.timescale:
            self.seconds = duration / self.timescale
        for child in moov.children or ():
            if child.type == b"trak":
                self.trak(child)
            elif child.type == b"udta":
                self.udta(child, True, "moov/udta")
            elif child.type in (b"meta", b"uuid"):
                self.movie.metadata.append((child, True, f"moov/{child.type.decode()}"))
            elif child.type == b"mvex":
                self.mvex(child)

    def udta(self, udta: Box, movie: bool, where: str) -> None:
        for child in udta.children or ():
            if child.type in (b"meta", b"XMP_", b"uuid"):
                self.movie.metadata.append((child, movie, f"{where}/{child.type.decode()}"))

    def mvex(self, mvex: Box) -> None:
        w = self.w
        for child in mvex.children or ():
            if child.type == b"trex":
                w.need(child, 16, " (no default duration)")
                self.trex[w.u32(child.hend + 4)] = w.u32(child.hend + 12)
            elif child.type == b"mehd" and self.timescale:
                ticks = w.version_u(child, 4, 4, "fragment duration")
                self.seconds = max(self.seconds, ticks / self.timescale)

    def trak(self, trak: Box) -> None:
        w, t = self.w, Track()
        for tkhd in trak.kids(b"tkhd")[:1]:
            v1 = self.view[tkhd.hend] == 1
            w.need(tkhd, 96 if v1 else 84, " (no dimensions)")
            t.id = w.u32(tkhd.hend + (20 if v1 else 12))
            t.width = w.u32(tkhd.hend + (88 if v1 else 76)) >> 16
            t.height = w.u32(tkhd.hend + (92 if v1 else 80)) >> 16
        for mdia in trak.kids(b"mdia")[:1]:
            for hdlr in mdia.kids(b"hdlr")[:1]:
                w.need(hdlr, 12, " (no handler type)")
                t.handler = bytes(self.view[hdlr.hend + 8 : hdlr.hend + 12])
            for mdhd in mdia.kids(b"mdhd")[:1]:
                v1 = self.view[mdhd.hend] == 1
                w.need(mdhd, 24 if v1 else 16, " (no timescale)")
                t.timescale = w.u32(mdhd.hend + (20 if v1 else 12))
            for minf in mdia.kids(b"minf")[:1]:
                for stbl in minf.kids(b"stbl")[:1]:
                    self.stbl(stbl, t)
        for child in trak.children or ():
            if child.type == b"udta":
                self.udta(child, False, "moov/trak/udta")
            elif child.type in (b"meta", b"uuid"):
                self.movie.metadata.append((child, False, f"moov/trak/{child.type.decode()}"))
        self.movie.tracks.append(t)
        self.by_id.setdefault(t.id, t)

    def stbl(self, stbl: Box, t: Track) -> None:
        w = self.w
        for child in stbl.children or ():
            kind = child.type
            if kind == b"stsd":
                t.stsd = t.stsd or child
                if t.handler == b"vide":
                    self.stsd(child, t)
            elif kind in (b"stsz", b"stz2"):
                w.need(child, 12, " (no sample count)")
                t.samples = w.u32(child.hend + 8)
                if kind == b"stsz" and w.u32(child.hend + 4) == 0:
                    w.need(child, 12 + 4 * t.samples, f" ({t.samples} sample sizes declared)")
            elif kind in OFFSET_TABLES:
                entries = offsets(self.view, child, w.source)[0]
                if len(entries) and kind != b"saio" and int(entries.max()) >= len(self.view):
                    raise w.fail(f"{kind.decode()} at {child.start:#x} points past the end of "
                                 "the file (truncated?)")  # fmt: skip

    def stsd(self, stsd: Box, t: Track) -> None:
        """Coded width and height from the first visual sample entry (as ffprobe reports)."""
        w = self.w
        if stsd.end - stsd.hend < 8 + 36 or w.u32(stsd.hend + 4) == 0:
            return  # no entry with dimensions: the tkhd's stand
        entry = stsd.hend + 8
        if w.u32(entry) < 36 or entry + w.u32(entry) > stsd.end:
            raise w.fail(f"'stsd' box at {stsd.start:#x}: the first sample entry's size is wrong")
        t.width = U16.unpack_from(w.data, entry + 32)[0]
        t.height = U16.unpack_from(w.data, entry + 34)[0]

    # -- fragments ---------------------------------------------------------------------------
    def moof(self, moof: Box) -> None:
        w = self.w
        fields: list[Field] = []
        for traf in moof.kids(b"traf"):
            tfhd = traf.kids(b"tfhd")
            if not tfhd:
                raise w.fail(f"'traf' box at {traf.start:#x} has no tfhd")
            head = tfhd[0]
            w.need(head, 8, " (no track id)")
            flags, track = w.u32(head.hend) & 0xFFFFFF, w.u32(head.hend + 4)
            pos = head.hend + 8
            widths = ((0x1, 8), (0x2, 4), (0x8, 4), (0x10, 4), (0x20, 4))
            w.need(head, 8 + sum(n for bit, n in widths if flags & bit), " (optional fields)")
            if flags & 0x1:  # explicit base data offset: absolute
                fields.append((pos, 8, 1, 8))
            pos += 8 * (flags & 1) + 4 * bool(flags & 2)
            default = w.u32(pos) if flags & 0x8 else self.trex.get(track, 0)
            samples = sum(self.trun(trun)[0] for trun in traf.kids(b"trun"))
            t = self.by_id.get(track)
            if t is not None:
                t.samples += samples
            for tfdt in traf.kids(b"tfdt")[:1]:
                base = w.version_u(tfdt, 4, 4, "decode time")
                if base >= self.last_traf.get(track, (-1,))[0]:
                    self.last_traf[track] = (base, traf, default)
        if fields:
            self.movie.patches[moof.start] = fields

    def trun(self, trun: Box) -> tuple[int, int, int, int]:
        """(sample count, first sample record, record stride, flags), the size checked."""
        w = self.w
        w.need(trun, 8, " (no sample count)")
        flags, count = w.u32(trun.hend) & 0xFFFFFF, w.u32(trun.hend + 4)
        pos = trun.hend + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 4)
        stride = 4 * bin(flags & 0xF00).count("1")
        if pos + count * stride > trun.end:
            raise w.fail(f"'trun' box at {trun.start:#x} declares {count} samples, more than fit")
        return count, pos, stride, flags

    def traf_ticks(self, traf: Box, default: int) -> int:
        """The total sample duration of a track fragment."""
        total = 0
        for trun in traf.kids(b"trun"):
            count, pos, stride, flags = self.trun(trun)
            if flags & 0x100 and count:
                records = np.ndarray((count,), ">u4", self.view, pos, (stride,))
                total += int(records.sum(dtype=np.uint64))
            else:
                total += count * default
        return total

    def mfra(self, mfra: Box) -> None:
        w = self.w
        fields = []
        for tfra in mfra.kids(b"tfra"):
            w.need(tfra, 16, " (no entry count)")
            v1 = self.view[tfra.hend] == 1
            sizes = w.u32(tfra.hend + 8)
            count = w.u32(tfra.hend + 12)
            stride = (16 if v1 else 8) + sum(((sizes >> s) & 3) + 1 for s in (0, 2, 4))
            w.need(tfra, 16 + count * stride, f" ({count} entries declared)")
            if count:
                fields.append((tfra.hend + 16 + (8 if v1 else 4), stride, count, 8 if v1 else 4))
        if fields:
            self.movie.patches[mfra.start] = fields

    def sidx(self, sidx: Box) -> None:
        v1 = self.view[sidx.hend] == 1
        self.w.need(sidx, 28 if v1 else 20, " (no first offset)")
        self.movie.patches[sidx.start] = [(sidx.hend + (20 if v1 else 16), 8, 1, 8 if v1 else 4)]


# -- absolute offsets --------------------------------------------------------------------------


def offsets(view: memoryview, b: Box, source: str | None = None) -> tuple[np.ndarray, bytes, bool]:
    """An stco/co64/saio box's absolute offsets (int64), saio's fields before the entry count,
    and whether they are 64-bit; CorruptInput if the entries do not fit in the box."""
    _need(b, 8, " (no entry count)", source)
    pos, prefix = b.hend + 4, b""
    wide = b.type == b"co64"
    if b.type == b"saio":
        wide = view[b.hend] == 1
        if U32.unpack_from(view, b.hend)[0] & 1:
            _need(b, 16, " (no entry count)", source)
            prefix = bytes(view[pos : pos + 8])
            pos += 8
    (count,) = U32.unpack_from(view, pos)
    width = 8 if wide else 4
    _need(b, pos + 4 - b.hend + count * width, f" ({count} entries declared)", source)
    raw = np.frombuffer(view[pos + 4 : pos + 4 + count * width], ">u8" if wide else ">u4")
    return raw.astype(np.int64), prefix, wide


@dataclass(slots=True, eq=False)
class Table:
    """A chunk offset table (stco/co64) or stbl saio, rendered once the new layout is known."""

    box: Box
    offsets: np.ndarray  # int64 old absolute offsets
    prefix: bytes  # saio: the fields before the entry count
    wide: bool

    @classmethod
    def of(cls, view: memoryview, b: Box, widened: set[int]) -> Table:
        """The table of an stco/co64/saio box: 64-bit if it is, or if it starts in ``widened``."""
        entries, prefix, wide = offsets(view, b)
        return cls(b, entries, prefix, wide or b.start in widened)

    @property
    def size(self) -> int:
        return 16 + len(self.prefix) + len(self.offsets) * (8 if self.wide else 4)

    def render(self, view: memoryview, remap: Remap) -> bytes | memoryview:
        new = remap(self.offsets)
        retyped = self.wide and self.box.type != b"co64" and (
            self.box.type == b"stco" or view[self.box.hend] == 0)  # fmt: skip
        exact = self.box.end - self.box.start == self.size  # no stray bytes after the entries
        if exact and not retyped and np.array_equal(new, self.offsets):
            return view[self.box.start : self.box.end]
        kind = self.box.type
        if self.wide and kind == b"stco":
            kind = b"co64"
        head = bytearray(view[self.box.hend : self.box.hend + 4])
        if kind == b"saio" and self.wide:
            head[0] = 1  # version 1: 64-bit offsets
        body = new.astype(">u8" if self.wide else ">u4").tobytes()
        return HEAD.pack(self.size, kind) + bytes(head) + self.prefix + U32.pack(len(new)) + body


@dataclass(slots=True, eq=False)
class Patch:
    """A top-level box of fixed size with absolute offsets in it (moof, mfra, sidx)."""

    box: Box
    fields: list[Field]

    @property
    def size(self) -> int:
        return self.box.end - self.box.start

    def render(self, view: memoryview, remap: Remap, new_start: int) -> bytes | memoryview:
        b = self.box
        buf: bytearray | None = None
        for pos, stride, count, width in self.fields:
            kind = ">u8" if width == 8 else ">u4"
            old = np.ndarray((count,), kind, view, pos, (stride,)).astype(np.int64)
            if b.type == b"sidx":  # relative to the end of the sidx itself
                new = remap(old + b.end) - (new_start + self.size)
            else:
                new = remap(old)
            if np.array_equal(new, old):
                continue
            if new.min() < 0 or width == 4 and new.max() > 0xFFFFFFFF:
                raise LimitExceeded(
                    f"{b.type.decode()} box at {b.start:#x}: a shifted offset does not fit "
                    f"in {width} bytes"
                )
            buf = buf if buf is not None else bytearray(view[b.start : b.end])
            np.ndarray((count,), kind, buf, pos - b.start, (stride,))[:] = new
        return view[b.start : b.end] if buf is None else bytes(buf)


class Remap:
    """Old absolute file offset -> new one, from where each old top-level box lands."""

    def __init__(self, starts: list[int], deltas: list[int]) -> None:
        self.starts = np.asarray(starts, dtype=np.int64)
        self.deltas = np.asarray(deltas, dtype=np.int64)
        self.identity = not self.deltas.any()

    def __call__(self, offsets: np.ndarray) -> np.ndarray:
        if self.identity or not len(offsets):
            return offsets
        at = np.searchsorted(self.starts, offsets, side="right") - 1
        return offsets + self.deltas[np.clip(at, 0, None)]


def size_of(p: Piece) -> int:
    """The length a piece will have once rendered."""
    return p.size if isinstance(p, (Table, Patch)) else len(p)


def container(view: memoryview, b: Box, inner: list[Piece]) -> list[Piece]:
    """A container box rebuilt: header, the bytes before the children, ``inner``, the padding."""
    pieces: list[Piece] = [view[b.hend : b.body], *inner, view[b.cend : b.end]]
    return [header(b.type, sum(map(size_of, pieces)), b.hend - b.start == 16), *pieces]
