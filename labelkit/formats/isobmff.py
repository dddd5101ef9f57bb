"""MP4/MOV/M4A (ISO BMFF and QuickTime): AIGC carriers, the essence, labeling by moov surgery.

The label is the metadata key ``AIGC`` (data type 1, UTF-8) of a movie-level ``meta`` box whose
handler is ``mdta`` (keys + indexed ilst), which ffprobe, exiftool and PyAV all read. Labeling
rewrites only ``moov`` (and the few top-level boxes holding absolute offsets); the ``mdat``
payloads are copied as slices of the input (bytes or an mmap). The box layer (walking, track
and fragment fields, offsets) is in ``_bmff``.

The essence (what ``formats.essence_digest`` hashes and the signature binds) is, in this order:
the payload of each ``trak``'s ``stsd`` box in track order (an empty part for a track without
one), then the payload of every ``mdat`` box in file order. The sample descriptions hold the
codec configuration (avcC/hvcC/vpcC/av1C with SPS/PPS, esds for AAC), which decides how every
sample decodes; in a fragmented file they are in the moov too. Labeling copies every ``stsd``
byte-identical (with ``metadata_from`` they are this file's own), and so do metadata tools such
as exiftool, so the digest survives metadata edits and breaks on any change to the media.

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
from typing import ClassVar, Iterator

from .. import xmp as xmp_packet
from ..errors import CorruptInput, LimitExceeded, named
from ..limits import Limits
from . import Carrier, LabeledByParts, ParsedFile, check_pixels, check_same_format, register
from ._bmff import (  # fmt: skip
    HEAD, MAX_MOOV_BYTES, OFFSET_TABLES, U32, Box, Field, Layout, Patch, Piece, Remap, Table,
    Walker, container, read_movie, size_of,
)
from ._bmff import box as _box
from ._bmff import header as _header

__all__ = [
    "NAME", "MIME", "EXTENSIONS", "MODALITY", "MAX_MOOV_BYTES", "accept", "parse", "Mp4File",
]  # fmt: skip

NAME = "mp4"
MIME = "video/mp4"
EXTENSIONS = (".mp4", ".mov", ".m4v", ".m4a")  # for naming outputs only, never for sniffing
MODALITY = "video"

XMP_UUID = bytes.fromhex("BE7ACFCB97A942E89C71999491E3AFAC")
AIGC_KEY = b"AIGC"
# Still-image HEIF/AVIF (and Canon raw) share ftyp but have no movie: not this handler's.
_IMAGE_BRANDS = frozenset({b"mif1", b"heic", b"heix", b"heim", b"heis", b"avif", b"avci", b"crx "})
_QT_FIRST = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip"})


def accept(prefix: bytes) -> bool:
    """Whether the bytes start like an ISO BMFF (ftyp) or a QuickTime movie (magic bytes only)."""
    if len(prefix) < 12:
        return False
    size, kind = HEAD.unpack_from(prefix)
    if kind == b"ftyp":
        return prefix[8:12] not in _IMAGE_BRANDS
    if kind not in _QT_FIRST or not (size in (0, 1) or size >= 8):
        return False
    if kind == b"moov":  # its first child is a box too (mvhd, usually)
        return len(prefix) >= 16 and prefix[12:16].isalnum()
    return True


def _data_atom(text: str) -> bytes:
    """An ilst ``data`` box: type 1 (UTF-8), locale 0."""
    return _box(b"data", struct.pack(">II", 1, 0) + text.encode("utf-8"))


def _new_meta(label_json: str) -> bytes:
    """A full-box ``meta`` (hdlr mdta) holding only the AIGC key, as ffmpeg lays one out."""
    hdlr = _box(b"hdlr", bytes(8) + b"mdta" + bytes(13))
    keys = _box(b"keys", bytes(4) + U32.pack(1) + U32.pack(8 + len(AIGC_KEY)) + b"mdta" + AIGC_KEY)
    ilst = _box(b"ilst", _box(U32.pack(1), _data_atom(label_json)))
    return _box(b"meta", bytes(4) + hdlr + keys + ilst)


@dataclass(slots=True, eq=False)
class _Meta:
    """A ``meta`` box: its handler, keys table and ilst items."""

    box: Box
    handler: bytes
    movie_level: bool
    keys: Box | None = None
    ilst: Box | None = None
    entries: list[tuple[int, int, bytes]] = field(default_factory=list)  # key (start, end, name)
    aigc: set[int] = field(default_factory=set)  # 1-based indices of AIGC keys
    freeform: set[int] = field(default_factory=set)  # starts of ---- items named AIGC

    @property
    def dirty(self) -> bool:
        """Whether labeling must rewrite it (it holds an AIGC carrier)."""
        return bool(self.aigc or self.freeform)


@dataclass
class Mp4File(LabeledByParts, ParsedFile):
    """A parsed MP4/MOV/M4A: its boxes, tracks, carriers and what labeling rewrites."""

    brand: str = "mp4"  # "mov" for QuickTime (major brand "qt  " or no ftyp)
    kind: str = "video"  # "audio" when no track is video (M4A)
    duration: float = 0.0  # seconds
    format: str = NAME
    essence_hash: ClassVar[str] = "blake3"  # hundreds of MB: see formats.essence_digest
    _view: memoryview = field(default=None, repr=False)  # type: ignore[assignment]
    _top: list[Box] = field(default_factory=list, repr=False)
    _moov: Box = field(default=None, repr=False)  # type: ignore[assignment]
    _metas: dict[int, _Meta] = field(default_factory=dict, repr=False)  # by box start
    # XMP boxes (uuid, XMP_): start -> (packet start, holds TC260:AIGC)
    _xmps: dict[int, tuple[int, bool]] = field(default_factory=dict, repr=False)
    _movie_xmp: list[int] = field(default_factory=list, repr=False)  # movie-level, file order
    # top-level box start -> runs of absolute offsets in it: (position, stride, count, width)
    _patches: dict[int, list[Field]] = field(default_factory=dict, repr=False)
    _stsd: list[Box | None] = field(default_factory=list, repr=False)  # per trak, in moov order

    def essence(self) -> Iterator[memoryview]:
        """Yield each trak's ``stsd`` payload (codec setup), then every ``mdat`` payload."""
        view = self._view
        for stsd in self._stsd:  # one part per track, so the parts stay in their places
            yield view[stsd.hend : stsd.end] if stsd is not None else view[:0]
        for box in self._top:
            if box.type == b"mdat":
                yield view[box.hend : box.end]

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
        self.wide: set[int] = set()  # starts of stco tables that become co64 (Table.of)

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
        return container(own._view, own._moov, inner)

    def udta_extra(self) -> list[bytes]:
        """What labeling adds to the movie's udta: a new mdta meta, a new MOV XMP_ packet."""
        extra = [] if self.target is not None else [_new_meta(self.label)]
        if self.xmp_new is not None and self.xmp_at is None and self.own.brand == "mov":
            extra.append(_box(b"XMP_", self.xmp_new))
        return extra

    def emit(self, f: Mp4File, box: Box, parent: bytes) -> list[Piece]:
        """The box as labeling writes it (recursively for the containers on a label's path)."""
        view = f._view
        if box.type in OFFSET_TABLES and parent == b"stbl":
            return [Table.of(view, box, self.wide)]
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
            return container(view, box, inner)
        return [view[box.start : box.end]]

    def meta(self, f: Mp4File, m: _Meta) -> bytes | memoryview:
        """A meta box without AIGC carriers, plus the label if it is the target."""
        is_target = m is self.target
        view = f._view
        if not is_target and not m.dirty:
            return view[m.box.start : m.box.end]
        new_index: dict[int, int] = {}
        keys: list[bytes | memoryview] = []
        label_at = 0
        aigc_entry = U32.pack(8 + len(AIGC_KEY)) + b"mdta" + AIGC_KEY
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
        label_item = _box(U32.pack(label_at), _data_atom(self.label)) if is_target else b""
        inner: list[bytes | memoryview] = []
        for child in m.box.children or ():
            if child is m.keys:
                body = b"".join([view[child.hend : child.hend + 4], U32.pack(len(keys)), *keys])
                inner.append(_box(b"keys", body))
            elif child is m.ilst:
                items = self.items(f, m, new_index, label_at, label_item)
                inner.append(_box(b"ilst", b"".join(items)))
                label_item = b""
            else:
                inner.append(view[child.start : child.end])
        if label_item:  # a keys table without an ilst
            inner.append(_box(b"ilst", label_item))
        pieces = container(view, m.box, inner)
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
            index = U32.unpack(item.type)[0]
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
                out += [_header(U32.pack(new), len(payload), long), payload]
        if label_item:
            out.append(label_item)
        return out

    def xmp(self, f: Mp4File, box: Box) -> list[Piece]:
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
    def top_level(self) -> Layout:
        """The output's top-level boxes: (the own box it comes from or None, its pieces)."""
        own, src = self.own, self.src
        out: Layout = []
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
                out.append((box, [Patch(box, own._patches[box.start])]))
            else:
                out.append((box, [own._view[box.start : box.end]]))
        return out

    def parts(self) -> list[bytes | memoryview]:
        """The labeled file's parts: offsets remapped, runs of unchanged boxes as input slices."""
        view = self.own._view
        while True:  # at most twice per stco table: once to learn that it overflows
            layout = self.top_level()
            starts, deltas, news = [], [], []
            pos = 0
            for old, pieces in layout:
                if old is not None:
                    starts.append(old.start)
                    deltas.append(pos - old.start)
                news.append(pos)
                pos += sum(map(size_of, pieces))
            remap = Remap(starts, deltas)
            overflow = {
                p.box.start
                for _, pieces in layout for p in pieces
                if isinstance(p, Table) and not p.wide
                and len(p.offsets) and int(remap(p.offsets).max()) > 0xFFFFFFFF
            }  # fmt: skip
            if not overflow - self.wide:
                break
            self.wide |= overflow
        parts: list[bytes | memoryview] = []
        run: list[int] = []  # a range of the input copied as it is: one part for many boxes
        for (old, pieces), new_start in zip(layout, news):
            if old is not None and old.type == b"moov":  # small: one bytes object
                rendered = [p.render(view, remap) if isinstance(p, Table) else p for p in pieces]
                pieces = [b"".join(rendered)]
            else:
                pieces = [p.render(view, remap, new_start) if isinstance(p, Patch) else p
                          for p in pieces]  # fmt: skip
            if old is not None and len(pieces) == 1 and isinstance(pieces[0], memoryview):
                if run and run[1] == old.start:
                    run[1] = old.end
                    continue
                if run:
                    parts.append(view[run[0] : run[1]])
                run = [old.start, old.end]
                continue
            if run:
                parts.append(view[run[0] : run[1]])
                run = []
            parts += [p for p in pieces if len(p)]
        if run:
            parts.append(view[run[0] : run[1]])
        return parts


class _Labels:
    """Reads the carriers in the metadata boxes that ``_bmff.read_movie`` lists."""

    def __init__(self, w: Walker, f: Mp4File) -> None:
        self.w, self.f, self.view = w, f, w.view

    def meta(self, box: Box, movie: bool, where: str) -> None:
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
                index = U32.unpack(item.type)[0]
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

    def values(self, item: Box, kind: str, where: str, kids: list[Box] | None = None) -> None:
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

    def xmp(self, box: Box, movie: bool, where: str) -> None:
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


def parse(data: bytes, source: str, limits: Limits) -> Mp4File:
    """Parse the box tree, tracks and AIGC carriers; the samples are never read or copied."""
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    if not accept(bytes(view[:64])):
        raise CorruptInput("not an MP4/MOV file (no ftyp or QuickTime atom at the start)",
                           source=source)  # fmt: skip
    walker = Walker(data, view, source, limits)
    top, _ = walker.boxes(0, len(view))
    moovs = [b for b in top if b.type == b"moov"]
    if not moovs:
        raise CorruptInput("no moov box: not a complete MP4 (a fragment?)", source=source)
    if len(moovs) > 1:
        raise CorruptInput(f"a second moov box at {moovs[1].start:#x}", source=source)
    ftyp = next((b for b in top if b.type == b"ftyp"), None)
    qt = ftyp is None or bytes(view[ftyp.hend : ftyp.hend + 4]) == b"qt  "
    movie = read_movie(walker, top)
    f = Mp4File(source, 0, 0, 0, [], None, data, limits, brand="mov" if qt else "mp4",
                duration=movie.seconds, _view=view, _top=top, _moov=moovs[0],
                _patches=movie.patches, _stsd=[t.stsd for t in movie.tracks])  # fmt: skip
    labels = _Labels(walker, f)
    for box, movie_level, where in movie.metadata:
        if box.type == b"meta":
            labels.meta(box, movie_level, where)
        else:
            labels.xmp(box, movie_level, where)
    video = [t for t in movie.tracks if t.handler == b"vide"]
    for t in video:
        check_pixels(t.width, t.height, source, limits, "video frame")
    if video:
        f.width, f.height, f.frames = video[0].width, video[0].height, video[0].samples
    else:
        f.kind = "audio"
    # Declared, not decoded: a crafted header can claim years or billions of frames.
    if f.duration > limits.max_duration_s:
        raise LimitExceeded(f"the movie declares {f.duration:.0f} s, over the limit of "
                            f"{limits.max_duration_s:.0f} s", source=source)  # fmt: skip
    if f.frames > limits.max_frames:
        raise LimitExceeded(f"the video track declares {f.frames} frames, over the limit "
                            f"of {limits.max_frames}", source=source)  # fmt: skip
    return f


register(sys.modules[__name__])
