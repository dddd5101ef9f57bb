"""MP4/MOV/M4A (ISO BMFF and QuickTime): box walker, AIGC carriers, labeling by moov surgery.

The label is the metadata key ``AIGC`` (data type 1, UTF-8) of a movie-level ``meta`` box whose
handler is ``mdta`` (keys + indexed ilst), which ffprobe, exiftool and PyAV all read. Labeling
rewrites only ``moov`` (and the few top-level boxes holding absolute offsets); the ``mdat``
payloads, which are the essence, are copied as slices of the input (bytes or an mmap).

Layout rules found by testing the three readers (ffmpeg 5.1 and 8, exiftool 12):

* A movie must have ONE ``keys`` table: libavformat keeps the first ``keys`` it reads and
  applies it to every later indexed ``ilst``, and exiftool then loses keys too. So the label
  goes into the first existing movie-level mdta ``meta`` (``moov/udta/meta`` as ffmpeg's
  ``use_metadata_tags`` writes it, or ``moov/meta`` as iPhones write it); only a file without
  one gets a new ``moov/udta/meta`` (hdlr ``mdta``), after any iTunes ``meta`` (hdlr ``mdir``),
  which stays byte-identical: both are read side by side. Track-level keys do not interfere.
* A new ``meta`` under ``udta`` is an ISO full box (version/flags, as ffmpeg writes it); a
  ``meta`` directly under ``moov`` or ``trak`` is QuickTime's plain atom (exiftool skips a full
  box there). Existing ``meta`` boxes keep their own form.

Absolute file offsets that labeling must shift when a box before them grows: ``stco``/``co64``
(an ``stco`` that would overflow becomes ``co64``) and ``saio`` in sample tables, ``tfhd``
explicit base data offsets, ``tfra`` moof offsets; ``sidx`` first offsets (relative to the
``sidx``) are recomputed from where both ends land. Not handled (not seen in video files):
``iloc`` items of a movie-level ``meta``; ``trun`` and ``saio`` in fragments are relative to
their ``moof`` and need nothing.

``xmp`` (``with_label``): video keeps its label in the mdta key, so a given packet becomes the
movie-level XMP packet without any TC260:AIGC property (exactly one label per file), replacing
the first movie-level packet or, if there is none, added where Adobe's XMP spec puts it (MP4:
a top-level ``uuid`` box after ``moov``; MOV: ``moov/udta/XMP_``).
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, field
from typing import ClassVar, Iterator, Union

import numpy as np

from .. import xmp as xmp_packet
from ..errors import CorruptInput, LimitExceeded, UnsupportedFormat, named
from ..limits import Limits
from . import Carrier, ParsedFile, check_count, check_pixels, check_same_format, register

__all__ = [
    "NAME", "MIME", "EXTENSIONS", "MODALITY", "MAX_MOOV_BYTES", "accept", "parse", "Mp4File",
]  # fmt: skip

NAME = "mp4"
MIME = "video/mp4"
EXTENSIONS = (".mp4", ".mov", ".m4v", ".m4a")  # for naming outputs only, never for sniffing
MODALITY = "video"

# moov holds the sample tables: a long movie's is several MB (about 10 MB for two hours at
# 60 fps), far over the per-block metadata limit, so it has its own bound.
MAX_MOOV_BYTES = 64 * 1024 * 1024
XMP_UUID = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")
AIGC_KEY = b"AIGC"
# Still-image HEIF/AVIF (and Canon raw) share ftyp but have no movie: not this handler's.
_IMAGE_BRANDS = frozenset({b"mif1", b"heic", b"heix", b"heim", b"heis", b"avif", b"avci", b"crx "})
_QT_FIRST = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip"})
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
_OFFSET_TABLES = frozenset({b"stco", b"co64", b"saio"})

_HEAD = struct.Struct(">I4s")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")

Piece = Union[bytes, memoryview, "_Table", "_Patch"]


def accept(prefix: bytes) -> bool:
    """Whether the bytes start like an ISO BMFF (ftyp) or a QuickTime movie (magic bytes only)."""
    if len(prefix) < 12:
        return False
    size, kind = _HEAD.unpack_from(prefix)
    if kind == b"ftyp":
        return prefix[8:12] not in _IMAGE_BRANDS
    if kind not in _QT_FIRST or not (size in (0, 1) or size >= 8):
        return False
    if kind == b"moov":  # its first child is a box too (mvhd, usually)
        return len(prefix) >= 16 and prefix[12:16].isalnum()
    return True


def _box(kind: bytes, payload: bytes) -> bytes:
    return _HEAD.pack(8 + len(payload), kind) + payload


def _header(kind: bytes, payload: int, long: bool) -> bytes:
    """A box header for ``payload`` bytes after it, 64-bit (largesize) when asked or needed."""
    if long or payload + 8 > 0xFFFFFFFF:
        return _HEAD.pack(1, kind) + _U64.pack(payload + 16)
    return _HEAD.pack(payload + 8, kind)


def _data_atom(text: str) -> bytes:
    """An ilst ``data`` box: type 1 (UTF-8), locale 0."""
    return _box(b"data", struct.pack(">II", 1, 0) + text.encode("utf-8"))


def _new_meta(label_json: str) -> bytes:
    """A full-box ``meta`` (hdlr mdta) holding only the AIGC key, as ffmpeg lays one out."""
    hdlr = _box(b"hdlr", bytes(8) + b"mdta" + bytes(13))
    keys = _box(b"keys", bytes(4) + _U32.pack(1) + _U32.pack(8 + len(AIGC_KEY)) + b"mdta" + AIGC_KEY)
    ilst = _box(b"ilst", _box(_U32.pack(1), _data_atom(label_json)))
    return _box(b"meta", bytes(4) + hdlr + keys + ilst)


@dataclass(slots=True, eq=False)
class _Box:
    type: bytes
    start: int
    end: int
    hend: int  # past the header (size, type, largesize)
    body: int  # where the payload or the children start (past uuid usertype / meta version)
    children: list[_Box] | None = None
    cend: int = 0  # past the last child; bytes up to ``end`` are kept as they are (QT padding)

    def kids(self, kind: bytes) -> list[_Box]:
        """The children of one type."""
        return [c for c in self.children or () if c.type == kind]


@dataclass(slots=True, eq=False)
class _Meta:
    """A ``meta`` box: its handler, keys table and ilst items."""

    box: _Box
    handler: bytes
    movie_level: bool
    keys: _Box | None = None
    ilst: _Box | None = None
    entries: list[tuple[int, int, bytes]] = field(default_factory=list)  # key (start, end, name)
    aigc: set[int] = field(default_factory=set)  # 1-based indices of AIGC keys
    freeform: set[int] = field(default_factory=set)  # starts of ---- items named AIGC

    @property
    def dirty(self) -> bool:
        """Whether labeling must rewrite it (it holds an AIGC carrier)."""
        return bool(self.aigc or self.freeform)


@dataclass(slots=True)
class _Track:
    id: int = 0
    handler: bytes = b""
    timescale: int = 0
    width: int = 0
    height: int = 0
    samples: int = 0


@dataclass(slots=True, eq=False)
class _Table:
    """A chunk offset table (stco/co64) or stbl saio, rendered once the new layout is known."""

    box: _Box
    offsets: np.ndarray  # int64 old absolute offsets
    prefix: bytes  # saio: the fields before the entry count
    wide: bool

    @property
    def size(self) -> int:
        return 16 + len(self.prefix) + len(self.offsets) * (8 if self.wide else 4)

    def render(self, view: memoryview, remap: _Remap) -> bytes | memoryview:
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
        return _HEAD.pack(self.size, kind) + bytes(head) + self.prefix + _U32.pack(len(new)) + body


@dataclass(slots=True, eq=False)
class _Patch:
    """A top-level box of fixed size with absolute offsets in it (moof, mfra, sidx)."""

    box: _Box
    fields: list[tuple[int, int, int, int]]  # runs of offsets: (position, stride, count, width)

    @property
    def size(self) -> int:
        return self.box.end - self.box.start

    def render(self, view: memoryview, remap: _Remap, new_start: int) -> bytes | memoryview:
        box = self.box
        buf: bytearray | None = None
        for pos, stride, count, width in self.fields:
            kind = ">u8" if width == 8 else ">u4"
            old = np.ndarray((count,), kind, view, pos, (stride,)).astype(np.int64)
            if box.type == b"sidx":  # relative to the end of the sidx itself
                new = remap(old + box.end) - (new_start + self.size)
            else:
                new = remap(old)
            if np.array_equal(new, old):
                continue
            if new.min() < 0 or width == 4 and new.max() > 0xFFFFFFFF:
                raise LimitExceeded(
                    f"{box.type.decode()} box at {box.start:#x}: a shifted offset does not fit "
                    f"in {width} bytes"
                )
            buf = buf if buf is not None else bytearray(view[box.start : box.end])
            np.ndarray((count,), kind, buf, pos - box.start, (stride,))[:] = new
        return view[box.start : box.end] if buf is None else bytes(buf)


class _Remap:
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


class _Walker:
    """Splits byte ranges into boxes, checking every size against its parent and the limits."""

    def __init__(self, data, view: memoryview, source: str, limits: Limits) -> None:
        self.data, self.view, self.source, self.limits = data, view, source, limits
        self.count = 0

    def fail(self, message: str) -> CorruptInput:
        return CorruptInput(message, source=self.source)

    def boxes(self, start: int, end: int, path: bytes = b"") -> tuple[list[_Box], int]:
        """The boxes in [start, end) and where they end (trailing zero padding excluded)."""
        top = not path
        out: list[_Box] = []
        pos = start
        while pos < end:
            left = end - pos
            if left < 8 or _U32.unpack_from(self.data, pos)[0] == 0 and not top:
                # QuickTime ends some atom lists with a zero word (or zero fill): kept as is.
                if top or bytes(self.view[pos:end]).strip(b"\0"):
                    what = "truncated box header" if left < 8 else "box of size 0"
                    raise self.fail(f"{what} at {pos:#x} in {self._where(path)}")
                break
            size, kind = _HEAD.unpack_from(self.data, pos)
            hend = pos + 8
            if size == 1:
                if left < 16:
                    raise self.fail(f"truncated 64-bit box header at {pos:#x}")
                (size,) = _U64.unpack_from(self.data, pos + 8)
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
            box = _Box(kind, pos, pos + size, hend, hend)
            self.count += 1
            check_count(self.count, self.source, self.limits, "boxes")
            if kind == b"uuid":
                if size < hend - pos + 16:
                    raise self.fail(f"'uuid' box at {pos:#x} is shorter than its user type")
                box.body = hend + 16
            limit = max(MAX_MOOV_BYTES, self.limits.max_metadata_bytes)
            if kind == b"moov" and size > limit:
                raise LimitExceeded(
                    f"moov box at {pos:#x} is {size} bytes, over the limit of {limit}",
                    source=self.source,
                )
            parent = path[-4:]
            if kind in _DESCEND.get(parent, ()):
                box.children, box.cend = self.boxes(box.body, box.end, path + kind)
            elif kind == b"meta" and parent in _META_PARENTS:
                # QuickTime's meta atom has no version/flags; ISO's meta box has them.
                plain = size - (hend - pos) >= 8 and bytes(self.view[hend + 4 : hend + 8]) in (
                    b"hdlr", b"keys", b"ilst")  # fmt: skip
                box.body = hend if plain else hend + 4
                if box.body > box.end:
                    raise self.fail(f"'meta' box at {pos:#x} is truncated")
                box.children, box.cend = self.boxes(box.body, box.end, path + kind)
            out.append(box)
            pos += size
        return out, pos

    def _where(self, path: bytes) -> str:
        return "/".join(path[i : i + 4].decode("latin-1") for i in range(0, len(path), 4)) or "file"

    def need(self, box: _Box, length: int, what: str = "") -> None:
        """Raise unless the box's payload holds ``length`` bytes."""
        if box.end - box.hend < length:
            name = box.type.decode("latin-1")
            raise self.fail(f"{name!r} box at {box.start:#x} is truncated{what}")

    def u32(self, pos: int) -> int:
        return _U32.unpack_from(self.data, pos)[0]

    def u64(self, pos: int) -> int:
        return _U64.unpack_from(self.data, pos)[0]


@dataclass
class Mp4File(ParsedFile):
    """A parsed MP4/MOV/M4A: its boxes, tracks, carriers and what labeling rewrites."""

    brand: str = "mp4"  # "mov" for QuickTime (major brand "qt  " or no ftyp)
    kind: str = "video"  # "audio" when no track is video (M4A)
    duration: float = 0.0  # seconds
    format: str = NAME
    essence_tree: ClassVar[bool] = True  # hundreds of MB: formats.essence_digest hashes pieces
    _view: memoryview = field(default=None, repr=False)  # type: ignore[assignment]
    _top: list[_Box] = field(default_factory=list, repr=False)
    _moov: _Box = field(default=None, repr=False)  # type: ignore[assignment]
    _metas: dict[int, _Meta] = field(default_factory=dict, repr=False)  # by box start
    # XMP boxes (uuid, XMP_): start -> (packet start, holds TC260:AIGC)
    _xmps: dict[int, tuple[int, bool]] = field(default_factory=dict, repr=False)
    _movie_xmp: list[int] = field(default_factory=list, repr=False)  # movie-level, file order
    # top-level box start -> runs of absolute offsets in it: (position, stride, count, width)
    _patches: dict[int, list[tuple[int, int, int, int]]] = field(default_factory=dict, repr=False)

    def essence(self) -> Iterator[memoryview]:
        """Yield the payload of every ``mdat`` box (the coded samples), in file order."""
        for box in self._top:
            if box.type == b"mdat":
                yield self._view[box.hend : box.end]

    def with_label(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: Mp4File | None = None,
    ) -> bytes:
        """Return the file with exactly one label, the mdta key AIGC (see ``label_parts``)."""
        return b"".join(self.label_parts(label_json, xmp=xmp, metadata_from=metadata_from))

    def label_parts(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: Mp4File | None = None,
    ) -> list[bytes | memoryview]:
        """The labeled file as parts to join or ``os.writev``: media bytes are input slices.

        Every other AIGC carrier (mdta keys, iTunes ``----`` items, TC260:AIGC in XMP) is
        removed; all other boxes are copied byte-identical except for shifted offsets. With
        ``metadata_from`` (the parsed original, after the video was re-encoded into this file)
        the original's movie-level metadata (moov/udta, moov/meta, XMP packets) replaces this
        file's own; track-level metadata stays this file's, as the tracks were made anew.
        """
        check_same_format(self, metadata_from)
        with named(self.source):
            return _Writer(self, metadata_from, label_json, xmp).parts()


class _Writer:
    """One labeling: decisions (where the label and XMP go) and the new layout."""

    def __init__(self, own: Mp4File, original: Mp4File | None, label: str, xmp: bytes | None):
        self.own, self.src, self.label = own, original or own, label
        self.carry = original is not None
        src = self.src
        self.target: _Meta | None = next(
            (m for m in src._metas.values()
             if m.movie_level and m.handler == b"mdta" and m.keys is not None),
            None,
        )  # fmt: skip
        self.xmp_new: bytes | None = None
        self.xmp_at: int | None = None  # start of the movie-level packet the xmp replaces
        if xmp is not None:
            self.xmp_new = xmp_packet.strip_aigc(xmp, source=own.source, limits=own._limits)
            if src._movie_xmp:
                self.xmp_at = src._movie_xmp[0]
        self.wide: set[int] = set()  # starts of stco tables that become co64

    # -- moov ------------------------------------------------------------------------------
    def moov(self) -> list[Piece]:
        own, src = self.own, self.src
        inner: list[Piece] = []
        movie_meta = (b"udta", b"meta")
        for child in own._moov.children or ():
            if self.carry and (child.type in movie_meta or child.start in own._xmps):
                continue  # replaced by the original's movie-level metadata below
            inner += self.emit(own, child, b"moov")
        carried = [c for c in src._moov.children or ()
                   if c.type in movie_meta or c.start in src._xmps] if self.carry else []  # fmt: skip
        for child in carried:
            inner += self.emit(src, child, b"moov")
        if not src._moov.kids(b"udta"):
            extra = self.udta_extra()
            if extra:
                inner.append(_box(b"udta", b"".join(extra)))
        return self.container(own._view, own._moov, inner)

    def udta_extra(self) -> list[bytes]:
        """What labeling adds to the movie's udta: a new mdta meta, a new MOV XMP_ packet."""
        extra = [] if self.target is not None else [_new_meta(self.label)]
        if self.xmp_new is not None and self.xmp_at is None and self.own.brand == "mov":
            extra.append(_box(b"XMP_", self.xmp_new))
        return extra

    def emit(self, f: Mp4File, box: _Box, parent: bytes) -> list[Piece]:
        """The box as labeling writes it (recursively for the containers on a label's path)."""
        view = f._view
        if box.type in _OFFSET_TABLES and parent == b"stbl":
            return [self.table(f, box)]
        if box.start in f._metas:
            return [self.meta(f, f._metas[box.start])]
        if box.start in f._xmps:
            return self.xmp(f, box)
        if box.children is not None and box.type in (b"trak", b"mdia", b"minf", b"stbl", b"udta"):
            inner: list[Piece] = []
            for child in box.children:
                inner += self.emit(f, child, box.type)
            if box.type == b"udta" and parent == b"moov" and box is f._moov.kids(b"udta")[0]:
                inner += self.udta_extra()
            return self.container(view, box, inner)
        return [view[box.start : box.end]]

    @staticmethod
    def container(view: memoryview, box: _Box, inner: list[Piece]) -> list[Piece]:
        """Header + the bytes before the children + ``inner`` + the trailing padding."""
        pieces: list[Piece] = [view[box.hend : box.body], *inner, view[box.cend : box.end]]
        size = sum(len(p) if isinstance(p, (bytes, memoryview)) else p.size for p in pieces)
        return [_header(box.type, size, box.hend - box.start == 16), *pieces]

    def table(self, f: Mp4File, box: _Box) -> _Table:
        offsets, prefix = _offsets(f, box)
        wide = box.type == b"co64" or box.start in self.wide or (
            box.type == b"saio" and f._view[box.hend] == 1)  # fmt: skip
        return _Table(box, offsets, prefix, wide)

    def meta(self, f: Mp4File, m: _Meta) -> bytes | memoryview:
        """A meta box without AIGC carriers, plus the label if it is the target."""
        is_target = m is self.target
        view = f._view
        if not is_target and not m.dirty:
            return view[m.box.start : m.box.end]
        new_index: dict[int, int] = {}
        keys: list[bytes | memoryview] = []
        label_at = 0
        aigc_entry = _U32.pack(8 + len(AIGC_KEY)) + b"mdta" + AIGC_KEY
        for i, (start, end, _) in enumerate(m.entries, 1):
            if i in m.aigc:
                if is_target and not label_at:  # the label keeps the first AIGC key's slot
                    keys.append(aigc_entry)
                    label_at = new_index[i] = len(keys)
                continue
            keys.append(view[start:end])
            new_index[i] = len(keys)
        if is_target and not label_at:
            keys.append(aigc_entry)
            label_at = len(keys)
        label_item = _box(_U32.pack(label_at), _data_atom(self.label)) if is_target else b""
        inner: list[bytes | memoryview] = []
        for child in m.box.children or ():
            if child is m.keys:
                body = b"".join([view[child.hend : child.hend + 4], _U32.pack(len(keys)), *keys])
                inner.append(_box(b"keys", body))
            elif child is m.ilst:
                items = self.items(f, m, new_index, label_at, label_item)
                inner.append(_box(b"ilst", b"".join(items)))
                label_item = b""
            else:
                inner.append(view[child.start : child.end])
        if label_item:  # a keys table without an ilst
            inner.append(_box(b"ilst", label_item))
        pieces = self.container(view, m.box, inner)
        return b"".join(p for p in pieces if isinstance(p, (bytes, memoryview)))

    @staticmethod
    def items(f: Mp4File, m: _Meta, new_index: dict[int, int], label_at: int, label_item: bytes
              ) -> list[bytes | memoryview]:  # fmt: skip
        """The ilst items re-indexed, AIGC items dropped, the label item in its slot."""
        view = f._view
        out: list[bytes | memoryview] = []
        keyed = m.keys is not None
        for item in m.ilst.children or ():
            if item.start in m.freeform:
                continue
            if not keyed:
                out.append(view[item.start : item.end])
                continue
            index = _U32.unpack(item.type)[0]
            if index in m.aigc:
                if label_item and new_index.get(index) == label_at:
                    out.append(label_item)
                    label_item = b""
                continue
            new = new_index.get(index, index)  # a dangling index stays dangling
            if new == index:
                out.append(view[item.start : item.end])
            else:
                long = item.hend - item.start == 16
                payload = view[item.hend : item.end]
                out += [_header(_U32.pack(new), len(payload), long), payload]
        if label_item:
            out.append(label_item)
        return out

    def xmp(self, f: Mp4File, box: _Box) -> list[Piece]:
        """An XMP box (uuid or XMP_) without TC260:AIGC, or holding the caller's packet."""
        payload, has_aigc = f._xmps[box.start]
        view = f._view
        if f is self.src and box.start == self.xmp_at:
            packet = self.xmp_new
        elif has_aigc:
            packet = xmp_packet.strip_aigc(
                bytes(view[payload : box.end]), source=self.own.source, limits=self.own._limits
            )
        else:
            return [view[box.start : box.end]]
        body = bytes(view[box.hend : payload]) + packet
        return [_header(box.type, len(body), False), body]

    # -- top level ---------------------------------------------------------------------------
    def top_level(self) -> list[tuple[_Box | None, list[Piece]]]:
        """The output's top-level boxes: (the own box it comes from or None, its pieces)."""
        own, src = self.own, self.src
        out: list[tuple[_Box | None, list[Piece]]] = []
        for box in own._top:
            if box is own._moov:
                out.append((box, self.moov()))
                if self.carry:  # the original's top-level XMP, right after the moov
                    for b in src._top:
                        if b.start in src._xmps:
                            out.append((None, self.xmp(src, b)))
                if self.xmp_new is not None and self.xmp_at is None and own.brand != "mov":
                    out.append((None, [_box(b"uuid", XMP_UUID + self.xmp_new)]))
            elif box.start in own._xmps:
                out.append((box, [] if self.carry else self.xmp(own, box)))
            elif box.start in own._patches:
                out.append((box, [_Patch(box, own._patches[box.start])]))
            else:
                out.append((box, [own._view[box.start : box.end]]))
        return out

    def parts(self) -> list[bytes | memoryview]:
        own = self.own
        while True:  # at most twice per stco table: once to learn that it overflows
            layout = self.top_level()
            starts, deltas, news = [], [], []
            pos = 0
            for old, pieces in layout:
                if old is not None:
                    starts.append(old.start)
                    deltas.append(pos - old.start)
                news.append(pos)
                pos += sum(p.size if isinstance(p, (_Table, _Patch)) else len(p) for p in pieces)
            remap = _Remap(starts, deltas)
            overflow = {
                p.box.start
                for _, pieces in layout for p in pieces
                if isinstance(p, _Table) and not p.wide
                and len(p.offsets) and int(remap(p.offsets).max()) > 0xFFFFFFFF
            }  # fmt: skip
            if not overflow - self.wide:
                break
            self.wide |= overflow
        parts: list[bytes | memoryview] = []
        run: list[int] = []  # a range of the input copied as it is: one part for many boxes
        for (old, pieces), new_start in zip(layout, news):
            if old is not None and old.type == b"moov":  # small: one bytes object
                rendered = [p.render(own._view, remap) if isinstance(p, _Table) else p for p in pieces]
                pieces = [b"".join(rendered)]
            else:
                pieces = [p.render(own._view, remap, new_start) if isinstance(p, _Patch) else p
                          for p in pieces]  # fmt: skip
            if old is not None and len(pieces) == 1 and isinstance(pieces[0], memoryview):
                if run and run[1] == old.start:
                    run[1] = old.end
                    continue
                if run:
                    parts.append(own._view[run[0] : run[1]])
                run = [old.start, old.end]
                continue
            if run:
                parts.append(own._view[run[0] : run[1]])
                run = []
            parts += [p for p in pieces if len(p)]
        if run:
            parts.append(own._view[run[0] : run[1]])
        return parts


def _offsets(f: Mp4File, box: _Box) -> tuple[np.ndarray, bytes]:
    """The absolute offsets of an stco/co64/saio box (validated at parse) and saio's prefix."""
    view = f._view
    pos = box.hend + 4
    prefix = b""
    if box.type == b"saio":
        if _U32.unpack_from(view, box.hend)[0] & 1:
            prefix = bytes(view[pos : pos + 8])
            pos += 8
        wide = view[box.hend] == 1
    else:
        wide = box.type == b"co64"
    (count,) = _U32.unpack_from(view, pos)
    width = 8 if wide else 4
    raw = np.frombuffer(view[pos + 4 : pos + 4 + count * width], ">u8" if wide else ">u4")
    return raw.astype(np.int64), prefix


class _Reader:
    """One parse: walks the tree once, collecting tracks, carriers and offset fields."""

    def __init__(self, w: _Walker, f: Mp4File) -> None:
        self.w, self.f = w, f
        self.view = w.view
        self.tracks: list[_Track] = []
        self.by_id: dict[int, _Track] = {}
        self.trex: dict[int, int] = {}  # track id -> default sample duration
        self.last_traf: dict[int, tuple[int, _Box, int]] = {}  # id -> (tfdt, traf, default dur)
        self.timescale = 0
        self.seconds = 0.0

    def _version_u(self, box: _Box, v0: int, v1: int, what: str) -> int:
        """A field that is 32-bit at payload offset v0 in version 0, 64-bit at v1 in version 1."""
        w = self.w
        if self.view[box.hend] == 1:
            w.need(box, v1 + 8, f" (no {what})")
            value = w.u64(box.hend + v1)
            return 0 if value == (1 << 64) - 1 else value
        w.need(box, v0 + 4, f" (no {what})")
        value = w.u32(box.hend + v0)
        return 0 if value == 0xFFFFFFFF else value  # all ones: unknown

    # -- moov ------------------------------------------------------------------------------
    def moov(self, moov: _Box) -> None:
        if moov.kids(b"cmov"):
            raise UnsupportedFormat(
                "compressed moov (QuickTime cmov) is not supported", source=self.w.source
            )
        mvhd = moov.kids(b"mvhd")
        if not mvhd:
            raise self.w.fail(f"the moov box at {moov.start:#x} has no mvhd")
        version = self.view[mvhd[0].hend] == 1
        self.w.need(mvhd[0], 24 if version else 16, " (no timescale)")
        self.timescale = self.w.u32(mvhd[0].hend + (20 if version else 12))
        duration = self._version_u(mvhd[0], 16, 24, "duration")
        if self.timescale:
            self.seconds = duration / self.timescale
        for child in moov.children or ():
            if child.type == b"trak":
                self.trak(child)
            elif child.type == b"udta":
                self.udta(child, True, "moov/udta")
            elif child.type == b"meta":
                self.meta(child, True, "moov/meta")
            elif child.type == b"uuid":
                self.xmp(child, True, "moov/uuid")
            elif child.type == b"mvex":
                self.mvex(child)

    def mvex(self, mvex: _Box) -> None:
        for child in mvex.children or ():
            if child.type == b"trex":
                self.w.need(child, 16, " (no default duration)")
                self.trex[self.w.u32(child.hend + 4)] = self.w.u32(child.hend + 12)
            elif child.type == b"mehd" and self.timescale:
                ticks = self._version_u(child, 4, 4, "fragment duration")
                self.seconds = max(self.seconds, ticks / self.timescale)

    def trak(self, trak: _Box) -> None:
        w, t = self.w, _Track()
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
            elif child.type == b"meta":
                self.meta(child, False, "moov/trak/meta")
            elif child.type == b"uuid":
                self.xmp(child, False, "moov/trak/uuid")
        self.tracks.append(t)
        self.by_id.setdefault(t.id, t)

    def stbl(self, stbl: _Box, t: _Track) -> None:
        w = self.w
        for child in stbl.children or ():
            kind = child.type
            if kind == b"stsd" and t.handler == b"vide":
                self.stsd(child, t)
            elif kind in (b"stsz", b"stz2"):
                w.need(child, 12, " (no sample count)")
                t.samples = w.u32(child.hend + 8)
                if kind == b"stsz" and w.u32(child.hend + 4) == 0:
                    w.need(child, 12 + 4 * t.samples, f" ({t.samples} sample sizes declared)")
            elif kind in _OFFSET_TABLES:
                self.offset_table(child)

    def stsd(self, stsd: _Box, t: _Track) -> None:
        """Coded width and height from the first visual sample entry (as ffprobe reports)."""
        w = self.w
        if stsd.end - stsd.hend < 8 + 36 or w.u32(stsd.hend + 4) == 0:
            return  # no entry with dimensions: the tkhd's stand
        entry = stsd.hend + 8
        if w.u32(entry) < 36 or entry + w.u32(entry) > stsd.end:
            raise w.fail(f"'stsd' box at {stsd.start:#x}: the first sample entry's size is wrong")
        t.width = _U16.unpack_from(w.data, entry + 32)[0]
        t.height = _U16.unpack_from(w.data, entry + 34)[0]

    def offset_table(self, box: _Box) -> None:
        """Check that the entry count fits (and that chunk offsets point into the file)."""
        w = self.w
        pos = box.hend + 4
        w.need(box, 8, " (no entry count)")
        wide = box.type == b"co64"
        if box.type == b"saio":
            wide = self.view[box.hend] == 1
            if w.u32(box.hend) & 1:
                pos += 8
                w.need(box, 16, " (no entry count)")
        count = w.u32(pos)
        width = 8 if wide else 4
        w.need(box, pos + 4 - box.hend + count * width, f" ({count} entries declared)")
        if count and box.type != b"saio":
            raw = np.frombuffer(self.view[pos + 4 : pos + 4 + count * width], ">u8" if wide else ">u4")
            if int(raw.max()) >= len(self.view):
                raise w.fail(
                    f"{box.type.decode()} at {box.start:#x} points past the end of the file "
                    "(truncated?)"
                )

    # -- metadata ----------------------------------------------------------------------------
    def udta(self, udta: _Box, movie: bool, where: str) -> None:
        for child in udta.children or ():
            if child.type == b"meta":
                self.meta(child, movie, f"{where}/meta")
            elif child.type in (b"XMP_", b"uuid"):
                self.xmp(child, movie, f"{where}/{child.type.decode('latin-1')}")

    def meta(self, box: _Box, movie: bool, where: str) -> None:
        w, f = self.w, self.f
        m = _Meta(box, b"", movie)
        for child in box.children or ():
            if child.type == b"hdlr" and not m.handler:
                w.need(child, 12, " (no handler type)")
                m.handler = bytes(self.view[child.hend + 8 : child.hend + 12])
            elif child.type == b"keys" and m.keys is None:
                m.keys = child
            elif child.type == b"ilst" and m.ilst is None:
                m.ilst = child
        if m.keys is not None:
            self.keys(m, where)
        for item in (m.ilst.children or ()) if m.ilst is not None else ():
            if m.keys is not None:
                index = _U32.unpack(item.type)[0]
                if index in m.aigc:
                    name = f"{where} key {index} 'AIGC' at {item.start:#x}"
                    self.values(item, "mp4-mdta", name)
            elif item.type == b"----":
                kids, _ = w.boxes(item.body, item.end, b"item")
                names = [bytes(self.view[k.hend + 4 : k.end]) for k in kids if k.type == b"name"]
                if any(n.lower() == AIGC_KEY.lower() for n in names):
                    m.freeform.add(item.start)
                    self.values(item, "mp4-freeform", f"{where} '----' AIGC at {item.start:#x}", kids)
        f._metas[box.start] = m

    def keys(self, m: _Meta, where: str) -> None:
        w, box = self.w, m.keys
        assert box is not None
        if box.end - box.start > w.limits.max_metadata_bytes:
            raise LimitExceeded(f"{where}/keys at {box.start:#x} is over the metadata limit",
                                source=w.source)  # fmt: skip
        w.need(box, 8, " (no entry count)")
        count, pos = w.u32(box.hend + 4), box.hend + 8
        if count > (box.end - pos) // 8:
            raise w.fail(f"{where}/keys at {box.start:#x} declares {count} keys, more than fit")
        for i in range(1, count + 1):
            size = w.u32(pos) if pos + 8 <= box.end else 0
            if size < 8 or pos + size > box.end:
                raise w.fail(f"{where}/keys at {box.start:#x}: key {i} has a bad size")
            name = bytes(self.view[pos + 8 : pos + size])
            m.entries.append((pos, pos + size, name))
            if name.lower() == AIGC_KEY.lower():
                m.aigc.add(i)
            pos += size

    def values(self, item: _Box, kind: str, where: str, kids: list[_Box] | None = None) -> None:
        """Report each ``data`` value of an ilst item as a carrier."""
        w = self.w
        if kids is None:
            kids, _ = w.boxes(item.body, item.end, b"item")
        for data in kids:
            if data.type != b"data":
                continue
            w.need(data, 8, " (no type and locale)")
            if data.end - data.hend - 8 > w.limits.max_metadata_bytes:
                raise LimitExceeded(f"{where}: the value is over the metadata limit", source=w.source)
            value = bytes(self.view[data.hend + 8 : data.end])
            utf16 = w.u32(data.hend) & 0xFFFFFF in (2, 5)
            self.f.carriers.append(Carrier(kind, where, value.decode(
                "utf-16-be" if utf16 else "utf-8", "replace")))  # fmt: skip

    def xmp(self, box: _Box, movie: bool, where: str) -> None:
        if box.type == b"uuid" and bytes(self.view[box.hend : box.body]) != XMP_UUID:
            return  # another vendor's uuid box
        w, f = self.w, self.f
        packet = bytes(self.view[box.body : box.end])
        where = f"{where} at {box.start:#x}"
        found = xmp_packet.find_aigc(packet, w.source, w.limits, where=where)
        f.carriers.extend(Carrier(k, f"{where} (XMP)", v) for k, v in found)
        f._xmps[box.start] = (box.body, bool(found))
        if movie:
            f._movie_xmp.append(box.start)
            if f.xmp is None:
                f.xmp = packet

    # -- fragments ---------------------------------------------------------------------------
    def moof(self, moof: _Box) -> None:
        w = self.w
        fields: list[tuple[int, int, int, int]] = []
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
                base = self._version_u(tfdt, 4, 4, "decode time")
                if base >= self.last_traf.get(track, (-1,))[0]:
                    self.last_traf[track] = (base, traf, default)
        if fields:
            self.f._patches[moof.start] = fields

    def trun(self, trun: _Box) -> tuple[int, int, int, int]:
        """(sample count, first sample record, record stride, flags), the size checked."""
        w = self.w
        w.need(trun, 8, " (no sample count)")
        flags, count = w.u32(trun.hend) & 0xFFFFFF, w.u32(trun.hend + 4)
        pos = trun.hend + 8 + 4 * bool(flags & 1) + 4 * bool(flags & 4)
        stride = 4 * bin(flags & 0xF00).count("1")
        if pos + count * stride > trun.end:
            raise w.fail(f"'trun' box at {trun.start:#x} declares {count} samples, more than fit")
        return count, pos, stride, flags

    def traf_ticks(self, traf: _Box, default: int) -> int:
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

    def mfra(self, mfra: _Box) -> None:
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
            self.f._patches[mfra.start] = fields

    def sidx(self, sidx: _Box) -> None:
        v1 = self.view[sidx.hend] == 1
        self.w.need(sidx, 28 if v1 else 20, " (no first offset)")
        self.f._patches[sidx.start] = [(sidx.hend + (20 if v1 else 16), 8, 1, 8 if v1 else 4)]

    def finish(self) -> None:
        f, w = self.f, self.w
        video = [t for t in self.tracks if t.handler == b"vide"]
        for t in video:
            check_pixels(t.width, t.height, w.source, w.limits, "video frame")
        if video:
            f.width, f.height, f.frames = video[0].width, video[0].height, video[0].samples
        else:
            f.kind = "audio"
        seconds = self.seconds
        for track, (base, traf, default) in self.last_traf.items():
            t = self.by_id.get(track)
            if t is not None and t.timescale:
                seconds = max(seconds, (base + self.traf_ticks(traf, default)) / t.timescale)
        f.duration = seconds
        # Declared, not decoded: a crafted header can claim years or billions of frames.
        if seconds > w.limits.max_duration_s:
            raise LimitExceeded(f"the movie declares {seconds:.0f} s, over the limit of "
                                f"{w.limits.max_duration_s:.0f} s", source=w.source)  # fmt: skip
        if f.frames > w.limits.max_frames:
            raise LimitExceeded(f"the video track declares {f.frames} frames, over the limit "
                                f"of {w.limits.max_frames}", source=w.source)  # fmt: skip


def parse(data: bytes, source: str, limits: Limits) -> Mp4File:
    """Parse the box tree, tracks and AIGC carriers; the samples are never read or copied."""
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    if not accept(bytes(view[:64])):
        raise CorruptInput("not an MP4/MOV file (no ftyp or QuickTime atom at the start)",
                           source=source)  # fmt: skip
    walker = _Walker(data, view, source, limits)
    top, _ = walker.boxes(0, len(view))
    moovs = [b for b in top if b.type == b"moov"]
    if not moovs:
        raise CorruptInput("no moov box: not a complete MP4 (a fragment?)", source=source)
    if len(moovs) > 1:
        raise CorruptInput(f"a second moov box at {moovs[1].start:#x}", source=source)
    ftyp = next((b for b in top if b.type == b"ftyp"), None)
    qt = ftyp is None or bytes(view[ftyp.hend : ftyp.hend + 4]) == b"qt  "
    f = Mp4File(source, 0, 0, 0, [], None, data, limits, brand="mov" if qt else "mp4",
                _view=view, _top=top, _moov=moovs[0])  # fmt: skip
    reader = _Reader(walker, f)
    for box in top:
        if box.type == b"moov":
            reader.moov(box)
        elif box.type == b"uuid":
            reader.xmp(box, True, "uuid")
        elif box.type == b"moof":
            reader.moof(box)
        elif box.type == b"mfra":
            reader.mfra(box)
        elif box.type == b"sidx":
            reader.sidx(box)
    reader.finish()
    return f


register(sys.modules[__name__])
