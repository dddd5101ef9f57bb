"""Matroska and WebM: EBML walker, SimpleTag ``AIGC`` carriers, labeling in a rebuilt Tags.

Structure: an EBML header, then one Segment holding level-1 elements (SeekHead, Info, Tracks,
Chapters, Attachments, Tags, Cues and the Clusters that carry the coded frames). Parsing visits
the level-1 elements and skips each Cluster by its size, so it is O(elements + clusters), never
O(blocks). Live writers (browsers' MediaRecorder, OBS) give the Segment and the Clusters an
unknown size: an unknown-size Segment runs to the end of the file, and an unknown-size Cluster
ends at the next level-1 element, which can only be found by stepping over its blocks (the one
O(blocks) case: a Python loop over every block of such a Cluster).

A file cut short is refused (CorruptInput naming the element and offset), not parsed as far as
it goes: a cut Cluster holds a half frame, and labeling it would give a truncated copy a
signature. A live file cut between two Clusters (or, with unknown-size Clusters, between two
blocks) cannot be told from a shorter whole stream, and parses.

Carriers: every SimpleTag named AIGC, nested or not, in any Tag (global, per-track, per-chapter).
TagName is case-sensitive, but any case is taken, so a stray "aigc" counts (and is removed).

The essence is the payload of every Cluster (the bytes after its ID and size), in file order:
the coded samples with their block headers. Codec setup (Tracks) is not included, as for MP4
(mdat only). Tag, Info, SeekHead, Cues and Void edits leave it unchanged, and so does writing a
Cluster's size into a live file's unknown-size field.

Labeling writes exactly one SimpleTag ``AIGC`` in its own global Tag: Targets with
TargetTypeValue 50 and no TargetType string (ffmpeg would prefix the key with it), and no
TagLanguage (it defaults to ``und``; exiftool would append it to the name). That Tag comes first
in a single Tags element holding every other Tag of the file, less its AIGC SimpleTags, placed
before the first Cluster: "near the head", and ffmpeg reads the elements before the Clusters
without needing the SeekHead. The elements before the first Cluster are rebuilt (SeekHead
entries recomputed, old Voids dropped); when the result is not longer, one Void pads it back to
its old length and nothing after it moves. Otherwise the Clusters move as one block by a delta,
with 1 KiB of Void headroom so that a re-label (a platform adding its fields) fits in place, and
the Cues' cluster positions and every SeekHead are rewritten for it. Old Tags after the Clusters
are removed; one between two Clusters becomes a Void of its size (the Cluster before it, if of
unknown size, gets its size written in, or it would swallow the Void). Cluster bytes are never
changed: a Cluster's optional Position element (a resync hint that ffmpeg, mkvmerge and
GStreamer skip, and no common muxer writes) is left as it was. CRC-32 elements of rebuilt
elements are recomputed; a CRC-32 over the whole Segment is dropped.

Matroska has no XMP carrier in common use (XMP in an attachment is rare and not read), so the
``xmp`` argument of ``with_label`` is accepted for the common signature and ignored, and the
container's ``xmp`` is always None.
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from dataclasses import dataclass, field
from typing import Iterator, Union

from ..errors import CorruptInput, LimitExceeded, UnsupportedFormat
from ..limits import Limits
from . import Carrier, ParsedFile, check_count, check_pixels, check_same_format, register

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "MatroskaFile"]

NAME = "matroska"
MIME = "video/x-matroska"
EXTENSIONS = (".mkv", ".webm", ".mka", ".mk3d")  # for naming outputs only, never for sniffing
MODALITY = "video"

MAGIC = b"\x1a\x45\xdf\xa3"
AIGC = "AIGC"
HEADROOM = 1024  # Void left before the Clusters when they had to move (room for a re-label)
_MAX_NESTING = 32  # SimpleTags nest; a hostile file could nest deep enough to exhaust the stack

# Element IDs (Matroska / EBML specifications), with the marker bits kept, as files store them.
EBML, DOCTYPE = 0x1A45DFA3, 0x4282
SEGMENT, SEEKHEAD, SEEK, SEEKID, SEEKPOS = 0x18538067, 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC
INFO, TIMESTAMPSCALE, DURATION, TITLE = 0x1549A966, 0x2AD7B1, 0x4489, 0x7BA9
TRACKS, TRACKENTRY, TRACKTYPE, VIDEO, PIXELWIDTH, PIXELHEIGHT = (
    0x1654AE6B, 0xAE, 0x83, 0xE0, 0xB0, 0xBA)  # fmt: skip
CHAPTERS, ATTACHMENTS, CLUSTER = 0x1043A770, 0x1941A469, 0x1F43B675
CUES, CUEPOINT, CUETRACKPOSITIONS, CUECLUSTERPOSITION, CUECODECSTATE = (
    0x1C53BB6B, 0xBB, 0xB7, 0xF1, 0xEA)  # fmt: skip
TAGS, TAG, TARGETS, TARGETTYPEVALUE, TAGTRACKUID = 0x1254C367, 0x7373, 0x63C0, 0x68CA, 0x63C5
TAGATTACHMENTUID = 0x63C6
SIMPLETAG, TAGNAME, TAGSTRING, TAGBINARY = 0x67C8, 0x45A3, 0x4487, 0x4485
VOID, CRC32 = 0xEC, 0xBF

_LEVEL1 = frozenset({SEEKHEAD, INFO, TRACKS, CHAPTERS, CLUSTER, CUES, ATTACHMENTS, TAGS})
_ENDS_CLUSTER = _LEVEL1 | {EBML, SEGMENT}  # what ends an unknown-size Cluster
_NAMES = {
    EBML: "EBML header", SEGMENT: "Segment", SEEKHEAD: "SeekHead", SEEK: "Seek", INFO: "Info",
    TRACKS: "Tracks", TRACKENTRY: "TrackEntry", VIDEO: "Video", CHAPTERS: "Chapters",
    ATTACHMENTS: "Attachments", CLUSTER: "Cluster", CUES: "Cues", CUEPOINT: "CuePoint",
    CUETRACKPOSITIONS: "CueTrackPositions", TAGS: "Tags", TAG: "Tag", TARGETS: "Targets",
    SIMPLETAG: "SimpleTag", VOID: "Void", CRC32: "CRC-32",
}  # fmt: skip

Part = Union[bytes, memoryview]


def accept(prefix: bytes) -> bool:
    """Whether the bytes start with the EBML magic (Matroska, WebM; other EBML types refused)."""
    return prefix.startswith(MAGIC)


def _name(eid: int) -> str:
    return _NAMES.get(eid, f"element {eid:#x}")


# -- EBML writing -------------------------------------------------------------------------------


def _id_bytes(eid: int) -> bytes:
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big")


def _size_bytes(size: int, width: int = 0) -> bytes:
    """A size VINT of at least ``width`` bytes (wider than needed is legal EBML)."""
    need = 1
    while size >= (1 << (7 * need)) - 1:  # all ones would read as "unknown size"
        need += 1
    width = max(width, need)
    return ((1 << (7 * width)) | size).to_bytes(width, "big")


def _element(eid: int, *payload: Part, crc: bool = False) -> bytes:
    """Serialize a element; ``crc`` puts a CRC-32 (of the payload) first, as EBML defines it."""
    body = b"".join(payload)
    if crc:
        body = b"\xbf\x84" + zlib.crc32(body).to_bytes(4, "little") + body
    return _id_bytes(eid) + _size_bytes(len(body)) + body


def _uint(eid: int, value: int) -> bytes:
    return _element(eid, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def _void(length: int) -> bytes:
    """A Void element of exactly ``length`` (>= 2) bytes."""
    width = 1
    while length - 1 - width >= (1 << (7 * width)) - 1:
        width += 1
    return b"\xec" + _size_bytes(length - 1 - width, width) + bytes(length - 1 - width)


def _grown(elem: Part, length: int) -> Part:
    """``elem`` made exactly ``length`` bytes long: a trailing Void, or a one-byte wider size."""
    diff = length - len(elem)
    if diff == 0:
        return elem
    if diff >= 2:
        return bytes(elem) + _void(diff)
    head = bytes(elem[:12])
    iw = 1 + (head[0] < 0x80) + (head[0] < 0x40) + (head[0] < 0x20)
    sw = 9 - head[iw].bit_length()
    size = int.from_bytes(head[iw : iw + sw], "big") & ((1 << (7 * sw)) - 1)
    return head[:iw] + _size_bytes(size, sw + 1) + bytes(elem[iw + sw :])


# -- EBML reading -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Element:
    id: int
    start: int  # offset of the ID
    data: int  # offset of the payload
    end: int  # offset past the payload


class _Reader:
    """Bounds-checked EBML reading over a buffer; every failure is a named CorruptInput."""

    def __init__(self, view: memoryview, source: str, limits: Limits) -> None:
        self.view, self.source, self.limits = view, source, limits
        self.count = 0

    def fail(self, message: str) -> CorruptInput:
        """The error for a structural problem, naming the file."""
        return CorruptInput(message, source=self.source)

    def head(self, pos: int, limit: int, parent: str) -> tuple[int, int, int | None]:
        """Read an element header at ``pos``: (id, payload offset, size or None if unknown)."""
        view = self.view
        if pos >= limit:
            raise self.fail(f"{parent}: element header at {pos:#x} is cut off")
        b = view[pos]
        iw = 1 if b >= 0x80 else 2 if b >= 0x40 else 3 if b >= 0x20 else 4 if b >= 0x10 else 0
        if not iw:
            raise self.fail(f"{parent}: invalid element ID byte {b:#04x} at {pos:#x}")
        if pos + iw >= limit:
            raise self.fail(f"{parent}: element header at {pos:#x} is cut off (truncated?)")
        eid = int.from_bytes(view[pos : pos + iw], "big")
        s = view[pos + iw]
        if not s:
            raise self.fail(f"{parent}: {_name(eid)} at {pos:#x} has an invalid size field")
        sw = 9 - s.bit_length()
        data = pos + iw + sw
        if data > limit:
            raise self.fail(f"{parent}: {_name(eid)} header at {pos:#x} is cut off (truncated?)")
        size = int.from_bytes(view[pos + iw : data], "big") & ((1 << (7 * sw)) - 1)
        return eid, data, None if size == (1 << (7 * sw)) - 1 else size

    def element(self, pos: int, limit: int, parent: str) -> _Element:
        """Read a known-size element at ``pos`` that must end by ``limit``."""
        eid, data, size = self.head(pos, limit, parent)
        if size is None:
            raise self.fail(f"{parent}: {_name(eid)} at {pos:#x} has an unknown size")
        if data + size > limit:
            raise self.fail(
                f"{parent}: {_name(eid)} at {pos:#x} declares {size} bytes, past the end of "
                f"its parent at {limit:#x} (truncated or corrupt size)"
            )
        return _Element(eid, pos, data, data + size)

    def children(self, parent: _Element) -> Iterator[_Element]:
        """The child elements of a master element, counted against the element limit."""
        where = f"{_name(parent.id)} at {parent.start:#x}"
        pos = parent.data
        while pos < parent.end:
            child = self.element(pos, parent.end, where)
            self.count += 1
            check_count(self.count, self.source, self.limits, "EBML elements")
            yield child
            pos = child.end

    def uint(self, el: _Element) -> int:
        """An unsigned integer element's value."""
        if el.end - el.data > 8:
            raise self.fail(f"{_name(el.id)} at {el.start:#x} is not an integer (too long)")
        return int.from_bytes(self.view[el.data : el.end], "big")

    def text(self, el: _Element) -> str:
        """A string element's value (UTF-8; NUL padding removed)."""
        return bytes(self.view[el.data : el.end]).rstrip(b"\0").decode("utf-8", "replace")


# -- parsed structure -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tag:
    el: _Element
    aigc: bool  # holds an AIGC SimpleTag (at any depth)
    track: bool  # targets a track (TagTrackUID set): such tags describe one file's tracks
    attachment: bool  # targets an attachment (TagAttachmentUID set)


@dataclass(frozen=True)
class _Seek:
    id: int
    pos: int  # relative to the Segment's payload


@dataclass
class MatroskaFile(ParsedFile):
    """A parsed Matroska/WebM file: its level-1 elements, tags and what labeling rewrites."""

    doctype: str  # "matroska" or "webm": output naming, and which codecs/elements are allowed
    kind: str  # "video" if a video track exists, else "audio"
    duration: float  # seconds (Info Duration x TimestampScale), 0.0 if absent
    _segment: _Element = field(repr=False)  # end: where the Segment really ends
    _size_width: int = field(repr=False)  # 0 when the Segment has an unknown size
    _level1: list[_Element] = field(repr=False)
    _tags: list[_Tag] = field(repr=False)
    _tags_crc: bool = field(repr=False)  # the file's Tags carried CRC-32 elements
    _seeks: dict[int, tuple[list[_Seek], bool]] = field(repr=False)  # SeekHead start -> entries
    _title: _Element | None = field(repr=False)
    format: str = NAME

    @property
    def extension(self) -> str:
        """The file name extension for this content: .webm, .mka (audio only) or .mkv."""
        return ".webm" if self.doctype == "webm" else ".mkv" if self.kind == "video" else ".mka"

    @property
    def mime(self) -> str:
        """The MIME type for this content."""
        major = "video" if self.kind == "video" else "audio"
        return f"{major}/webm" if self.doctype == "webm" else f"{major}/x-matroska"

    def essence(self) -> Iterator[memoryview]:
        """Yield the payload of every Cluster (coded frames with block headers), in file order."""
        view = memoryview(self._data)
        for el in self._level1:
            if el.id == CLUSTER:
                yield view[el.data : el.end]

    def with_label(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: MatroskaFile | None = None,
    ) -> bytes:
        """Return the file with exactly one SimpleTag AIGC = label_json (see ``label_parts``)."""
        return b"".join(self.label_parts(label_json, xmp=xmp, metadata_from=metadata_from))

    def label_parts(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: MatroskaFile | None = None,
    ) -> list[Part]:
        """The labeled file as parts to write in order; the Clusters are slices, never copied.

        With ``metadata_from`` (the original, after this file's frames were re-encoded), the
        original's non-track Tags, Chapters, Attachments (not into WebM, which has none) and
        Info/Title replace this file's own. This file's track Tags stay: the original's target
        TrackUIDs that do not exist here. The rest of Info stays this file's, since its
        TimestampScale and Duration describe these Clusters. ``xmp`` is ignored (see module).
        """
        check_same_format(self, metadata_from)
        return _Writer(self, label_json, metadata_from).parts()

    # helpers for the writer

    def _view(self, el: _Element) -> memoryview:
        return memoryview(self._data)[el.start : el.end]

    def _reader(self) -> _Reader:
        return _Reader(memoryview(self._data), self.source, self._limits)


# -- writing ----------------------------------------------------------------------------------


@dataclass
class _Item:
    key: object  # ("old", start) for this file's elements; "tags", ("carried", i)
    eid: int
    static: Part | None = None  # None: a SeekHead or Cues, rebuilt for the layout from ``el``
    el: _Element | None = None
    fixed: int = 0  # for elements between Clusters: the exact length to keep


class _Writer:
    """Plans the labeled file: rebuilt head, Clusters moved as one block, rebuilt tail."""

    def __init__(self, f: MatroskaFile, label_json: str, original: MatroskaFile | None) -> None:
        self.f, self.original = f, original
        self.rd = f._reader()
        self.seg_data = f._segment.data
        clusters = [i for i, el in enumerate(f._level1) if el.id == CLUSTER]
        self.first = clusters[0] if clusters else len(f._level1)
        self.last = clusters[-1] if clusters else len(f._level1) - 1
        replaced = {CHAPTERS, ATTACHMENTS} if original is not None else set()
        self.webm = f.doctype == "webm"
        self.carried: list[_Item] = []
        if original is not None:
            for el in original._level1:
                if el.id == CHAPTERS or (el.id == ATTACHMENTS and not self.webm):
                    key = ("carried", len(self.carried))
                    self.carried.append(_Item(key, el.id, static=self._carry(original, el)))
        self.tags = _Item("tags", TAGS, static=self._tags_element(label_json))
        self.front = self._front(replaced)
        self.middle = self._middle(replaced)
        self.back = self._back(replaced)
        # old element start -> output key, for SeekHead entries (old Tags all map to the new one)
        self.keys: dict[int, object] = {}
        for el in f._level1:
            if el.id == TAGS or el.id in replaced:
                self.keys[el.start] = "tags" if el.id == TAGS else None
        for it in self.front + self.back:
            if isinstance(it.key, tuple) and it.key[0] == "old":
                self.keys[it.key[1]] = it.key
        self.old_ids = {el.start: el.id for el in f._level1}

    # planning

    def _front(self, replaced: set[int]) -> list[_Item]:
        items: list[_Item] = []
        placed = False
        for el in self.f._level1[: self.first]:
            if el.id in (VOID, CRC32) or el.id in replaced:
                continue  # Voids are re-made as one pad; a Segment CRC cannot survive an edit
            if el.id == TAGS:
                if not placed:  # the new Tags takes the place of the first old one
                    items += [*self.carried, self.tags]
                    placed = True
                continue
            items.append(self._item(el))
        if not placed:
            items += [*self.carried, self.tags]
        return items

    def _middle(self, replaced: set[int]) -> list[_Item]:
        items = []
        prev = None
        for el in self.f._level1[self.first : self.last + 1]:
            if el.id in (TAGS, SEEKHEAD, CUES) or el.id in replaced:
                length = el.end - el.start
                if el.id == TAGS or el.id in replaced:
                    if prev is not None and prev.id == CLUSTER and self._unknown(prev):
                        items.append(self._sized(prev))  # or it would swallow the Void
                    items.append(_Item(("old", el.start), VOID, static=_void(length)))
                else:
                    items.append(self._item(el))
                items[-1].fixed = length
            prev = el
        return items

    def _back(self, replaced: set[int]) -> list[_Item]:
        # Voids go too: after an unknown-size Cluster, a Void would become part of it.
        return [
            self._item(el)
            for el in self.f._level1[self.last + 1 :]
            if el.id not in (TAGS, CRC32, VOID) and el.id not in replaced
        ]

    def _unknown(self, el: _Element) -> bool:
        return self.rd.head(el.start, el.data, "Segment")[2] is None

    def _sized(self, el: _Element) -> _Item:
        """The header of an unknown-size Cluster with its size written in, in the same width."""
        width, size = el.data - el.start - 4, el.end - el.data
        if size >= (1 << (7 * width)) - 1:
            raise UnsupportedFormat(
                f"the unknown-size Cluster at {el.start:#x} is followed by metadata that has to "
                f"go, and its {width}-byte size field cannot hold its size; remux the file first",
                source=self.f.source,
            )
        header = _id_bytes(CLUSTER) + _size_bytes(size, width)
        return _Item(("old", el.start), CLUSTER, static=header, fixed=len(header))

    def _item(self, el: _Element) -> _Item:
        key = ("old", el.start)
        if el.id in (SEEKHEAD, CUES):
            return _Item(key, el.id, el=el)
        if el.id == INFO and self.original is not None:
            return _Item(key, el.id, static=self._info(el))
        return _Item(key, el.id, static=self.f._view(el))

    # layout

    def parts(self) -> list[Part]:
        """Lay the file out (a fixed point: SeekHead and Cues sizes depend on positions)."""
        f = self.f
        old_front = (f._level1[self.first].start if self.first < len(f._level1)
                     else f._segment.end) - self.seg_data  # fmt: skip
        middle_end = (f._level1[self.last].end if self.first < len(f._level1)
                      else f._segment.end) - self.seg_data  # fmt: skip
        pos: dict[object, int] = {}
        delta, shifted, longest = 0, False, {}
        for _ in range(64):
            front = [self._built(it, pos, delta, longest) for it in self.front]
            back = [self._built(it, pos, delta, longest) for it in self.back]
            natural = sum(len(p) for p in front)
            fits = natural == old_front or natural + 2 <= old_front
            if shifted or not fits:
                shifted, pad = True, HEADROOM
            else:
                pad = old_front - natural
            new_delta = natural + pad - old_front
            new_pos: dict[object, int] = {}
            at = 0
            for it, p in zip(self.front, front):
                new_pos[it.key] = at
                at += len(p)
            at = middle_end + new_delta
            for it, p in zip(self.back, back):
                new_pos[it.key] = at
                at += len(p)
            if new_pos == pos and new_delta == delta:
                break
            pos, delta = new_pos, new_delta
        else:  # positions only grow, so this cannot loop forever; guard anyway
            raise UnsupportedFormat("could not lay out the labeled file", source=f.source)
        return self._assemble(front, _void(pad) if pad else b"", back, pos, delta)

    def _build(self, it: _Item, pos: dict, delta: int) -> Part:
        if it.static is not None:
            return it.static
        assert it.el is not None
        return self._seekhead(it.el, pos, delta) if it.eid == SEEKHEAD else self._cues(it.el, delta)

    def _built(self, it: _Item, pos: dict, delta: int, longest: dict) -> Part:
        out = self._build(it, pos, delta)
        if it.static is not None:
            return out
        # Never let an element shrink between iterations: sizes that only grow converge.
        if len(out) < longest.get(it.key, 0):
            out = _grown(out, longest[it.key])
        longest[it.key] = len(out)
        return out

    def _assemble(
        self, front: list[Part], pad: bytes, back: list[Part], pos: dict, delta: int
    ) -> list[Part]:
        f, view = self.f, memoryview(self.f._data)
        body: list[Part] = [*front]
        if pad:
            body.append(pad)
        if self.first < len(f._level1):
            at = f._level1[self.first].start
            for it in self.middle:  # elements between Clusters keep their exact size
                old = it.key[1]  # type: ignore[index]
                body.append(view[at:old])
                body.append(self._fit(self._build(it, pos, delta), it))
                at = old + it.fixed
            body.append(view[at : f._level1[self.last].end])
        body += back
        seg = f._segment
        if f._size_width:  # nothing refers to file offsets, so the field may widen if it must
            size: Part = _size_bytes(sum(len(p) for p in body), f._size_width)
        else:
            size = view[seg.start + 4 : seg.data]  # an unknown size stays unknown
        return [view[: seg.start + 4], size, *body, view[seg.end :]]

    def _fit(self, out: Part, it: _Item) -> Part:
        if len(out) > it.fixed:
            raise UnsupportedFormat(
                f"no room to rewrite the {_name(it.eid)} between the Clusters at "
                f"{it.key[1]:#x}; remux the file first",  # type: ignore[index]
                source=self.f.source,
            )
        return _grown(out, it.fixed)

    # element builders

    def _new_pos(self, old_rel: int, pos: dict, delta: int) -> int | None:
        """Where the element that started at ``old_rel`` (Segment-relative) is now."""
        start = self.seg_data + old_rel
        if start not in self.old_ids:
            return None  # a stale entry: nothing starts there
        key = self.keys.get(start, ("old", start))
        if key is None:
            return None
        if key in pos:
            return pos[key]
        level1 = self.f._level1
        if self.first < len(level1) and level1[self.first].start <= start < level1[self.last].end:
            return old_rel + delta  # between the first and last Cluster: moved with them
        return None

    def _seekhead(self, el: _Element, pos: dict, delta: int) -> bytes:
        entries, crc = self.f._seeks[el.start]
        out: list[tuple[int, int]] = []
        for e in entries:
            start = self.seg_data + e.pos
            if self.old_ids.get(start) != e.id:
                continue  # the entry points at nothing of that kind: drop it
            new = self._new_pos(e.pos, pos, delta)
            target_id = TAGS if self.keys.get(start) == "tags" else e.id
            if new is not None and (target_id, new) not in out:
                out.append((target_id, new))
        if el.start == min(self.f._seeks):  # the main SeekHead lists every metadata element
            listed = {i for i, _ in out}
            for it in self.front + self.back:
                if it.eid in (INFO, TRACKS, CHAPTERS, ATTACHMENTS, TAGS, CUES) and it.key in pos:
                    if it.eid not in listed:
                        out.append((it.eid, pos[it.key]))
                        listed.add(it.eid)
        seeks = [
            _element(SEEK, _element(SEEKID, _id_bytes(i)), _uint(SEEKPOS, p)) for i, p in out
        ]
        return _element(SEEKHEAD, *seeks, crc=crc)

    def _cues(self, el: _Element, delta: int) -> Part:
        """The Cues with every cluster position moved by ``delta`` (CRC-32 recomputed)."""
        if delta == 0:
            return self.f._view(el)
        rd, view = self.rd, self.rd.view
        points: list[Part] = []
        crc = False
        for cp in rd.children(el):
            if cp.id == CRC32:
                crc = True
                continue
            if cp.id != CUEPOINT:
                points.append(view[cp.start : cp.end])
                continue
            kids: list[Part] = []
            for c in rd.children(cp):
                if c.id != CUETRACKPOSITIONS:
                    kids.append(view[c.start : c.end])
                    continue
                fields: list[Part] = []
                for g in rd.children(c):
                    value = rd.uint(g) if g.id in (CUECLUSTERPOSITION, CUECODECSTATE) else 0
                    if g.id == CUECLUSTERPOSITION or (g.id == CUECODECSTATE and value):
                        fields.append(_uint(g.id, value + delta))
                    else:
                        fields.append(view[g.start : g.end])
                kids.append(_element(CUETRACKPOSITIONS, *fields))
            points.append(_element(CUEPOINT, *kids))
        return _element(CUES, *points, crc=crc)

    def _carry(self, original: MatroskaFile, el: _Element) -> Part:
        """An element of the original as it is, or without its CRC-32 into WebM (which has none)."""
        view = original._view(el)
        if not self.webm:
            return view
        rd = original._reader()
        kids = [rd.view[c.start : c.end] for c in rd.children(el) if c.id != CRC32]
        return _element(el.id, *kids)

    def _info(self, el: _Element) -> bytes:
        """This file's Info with the original's Title (or none, if the original had none)."""
        rd, view = self.rd, self.rd.view
        kids: list[Part] = []
        crc = False
        for c in rd.children(el):
            if c.id == CRC32:
                crc = True
            elif c.id not in (TITLE, VOID):
                kids.append(view[c.start : c.end])
        assert self.original is not None
        title = self.original._title
        if title is not None:
            kids.append(self.original._view(title))
        return _element(INFO, *kids, crc=crc)

    def _tags_element(self, label_json: str) -> bytes:
        """One Tags element: the label's Tag first, then every other Tag without AIGC."""
        label = _element(
            TAG,
            _element(TARGETS, _uint(TARGETTYPEVALUE, 50)),
            _element(
                SIMPLETAG,
                _element(TAGNAME, AIGC.encode()),
                _element(TAGSTRING, label_json.encode("utf-8")),
            ),
        )
        parts: list[Part] = [label]
        if self.original is None:
            sources = [(self.f, t) for t in self.f._tags]
        else:  # the original's movie, chapter and attachment tags; this file's track tags
            sources = [
                (self.original, t)
                for t in self.original._tags
                if not t.track and not (t.attachment and self.webm)  # no attachments in WebM
            ]
            sources += [(self.f, t) for t in self.f._tags if t.track]
        for owner, tag in sources:
            kept = _stripped(owner._reader(), tag.el, 0) if tag.aigc else owner._view(tag.el)
            if kept is not None:
                parts.append(kept)
        return _element(TAGS, *parts, crc=self.f._tags_crc)


def _stripped(rd: _Reader, el: _Element, depth: int) -> Part | None:
    """A Tag or SimpleTag without its AIGC SimpleTags; None if nothing of it is left."""
    view = rd.view
    kids: list[Part] = []
    simple = 0
    for c in rd.children(el):
        if c.id == SIMPLETAG:
            if _simple_name(rd, c).lower() == "aigc":
                continue
            kept = _stripped(rd, c, depth + 1)
            if kept is not None:
                kids.append(kept)
                simple += 1
        elif c.id != VOID:
            kids.append(view[c.start : c.end])
    if el.id == TAG and not simple:
        return None  # a Tag needs at least one SimpleTag
    return _element(el.id, *kids)


def _simple_name(rd: _Reader, el: _Element) -> str:
    for c in rd.children(el):
        if c.id == TAGNAME:
            return rd.text(c)
    return ""


# -- parsing ----------------------------------------------------------------------------------


def _cluster_end(rd: _Reader, data: int, limit: int) -> int:
    """Where an unknown-size Cluster starting its payload at ``data`` ends (scans its blocks)."""
    pos = data
    while pos < limit:
        eid, child, size = rd.head(pos, limit, f"Cluster (unknown size) at {data:#x}")
        if eid in _ENDS_CLUSTER:
            return pos
        if size is None:
            raise rd.fail(f"{_name(eid)} at {pos:#x} in a Cluster has an unknown size")
        if child + size > limit:
            raise rd.fail(
                f"truncated: the block at {pos:#x} in the Cluster (unknown size) declares "
                f"{size} bytes, past the end of the file at {limit:#x}"
            )
        pos = child + size
    return limit


def _level1(rd: _Reader, seg: _Element) -> list[_Element]:
    """The Segment's level-1 elements, Clusters skipped by size (scanned if unknown-size)."""
    out: list[_Element] = []
    pos, end = seg.data, seg.end
    while pos < end:
        eid, data, size = rd.head(pos, end, f"Segment at {seg.start:#x}")
        if eid in (EBML, SEGMENT):
            raise UnsupportedFormat(
                f"a second EBML document or Segment at {pos:#x} (chained/linked files are not "
                "supported)",
                source=rd.source,
            )
        if size is None:
            if eid != CLUSTER:
                raise rd.fail(f"{_name(eid)} at {pos:#x} has an unknown size (only Segment "
                              "and Cluster may)")  # fmt: skip
            stop = _cluster_end(rd, data, end)
        else:
            stop = data + size
            if stop > end:
                raise rd.fail(
                    f"truncated: {_name(eid)} at {pos:#x} declares {size} bytes, past the end "
                    f"of the {'file' if end == len(rd.view) else 'Segment'} at {end:#x}"
                )
        out.append(_Element(eid, pos, data, stop))
        check_count(len(out), rd.source, rd.limits, "Matroska level-1 elements")
        pos = stop
    return out


def _doctype(rd: _Reader) -> tuple[str, int]:
    """Check the EBML header; return the DocType and where the header ends."""
    header = rd.element(0, len(rd.view), "file")
    doctype = "matroska"  # the EBML default
    for c in rd.children(header):
        if c.id == DOCTYPE:
            doctype = rd.text(c)
    if doctype not in ("matroska", "webm"):
        raise UnsupportedFormat(f"EBML DocType {doctype!r} is not Matroska or WebM",
                                source=rd.source)  # fmt: skip
    return doctype, header.end


def _segment(rd: _Reader, pos: int) -> tuple[_Element, int]:
    """Find the Segment after the header (Voids may precede it); return it and its size width."""
    size_len = len(rd.view)
    while True:
        eid, data, size = rd.head(pos, size_len, "file")
        if eid == SEGMENT:
            break
        if eid != VOID or size is None or data + size > size_len:
            raise rd.fail(f"no Segment after the EBML header (found {_name(eid)} at {pos:#x})")
        pos = data + size
    width = data - pos - 4
    if size is None:
        return _Element(SEGMENT, pos, data, size_len), 0
    if data + size > size_len:
        raise rd.fail(
            f"truncated: the Segment declares {size} bytes but the file ends "
            f"{data + size - size_len} bytes short (cut at {size_len:#x})"
        )
    tail = data + size
    while tail < size_len:  # only Voids may follow the Segment
        el = rd.element(tail, size_len, "after the Segment")
        if el.id in (EBML, SEGMENT):
            raise UnsupportedFormat(f"a second EBML document or Segment at {tail:#x} "
                                    "(chained/linked files are not supported)", source=rd.source)
        if el.id != VOID:
            raise rd.fail(f"unexpected {_name(el.id)} at {tail:#x} after the Segment")
        tail = el.end
    return _Element(SEGMENT, pos, data, data + size), width


def _info(rd: _Reader, el: _Element) -> tuple[float, _Element | None]:
    """(duration in seconds, Title element) from Info."""
    scale, raw, title = 1_000_000, 0.0, None
    for c in rd.children(el):
        if c.id == TIMESTAMPSCALE:
            scale = rd.uint(c)
            if not scale:
                raise rd.fail(f"Info TimestampScale at {c.start:#x} is 0")
        elif c.id == DURATION:
            n = c.end - c.data
            if n not in (0, 4, 8):
                raise rd.fail(f"Info Duration at {c.start:#x} is not a 4- or 8-byte float")
            if n:
                (raw,) = struct.unpack(">f" if n == 4 else ">d", rd.view[c.data : c.end])
        elif c.id == TITLE:
            title = c
    seconds = raw * scale / 1e9
    return (seconds if math.isfinite(seconds) and seconds > 0 else 0.0), title


def _tracks(rd: _Reader, el: _Element) -> tuple[str, int, int]:
    """(kind, width, height): "video" with the first video track's size, else "audio"."""
    kind, width, height = "", 0, 0
    for entry in rd.children(el):
        if entry.id != TRACKENTRY:
            continue
        ttype, w, h = 0, 0, 0
        for c in rd.children(entry):
            if c.id == TRACKTYPE:
                ttype = rd.uint(c)
            elif c.id == VIDEO:
                for v in rd.children(c):
                    if v.id == PIXELWIDTH:
                        w = rd.uint(v)
                    elif v.id == PIXELHEIGHT:
                        h = rd.uint(v)
        if ttype == 1 and kind != "video":
            kind, width, height = "video", w, h
        elif ttype == 2 and not kind:
            kind = "audio"
    return kind or "video", width, height


def _seekhead(rd: _Reader, el: _Element) -> tuple[list[_Seek], bool]:
    """A SeekHead's entries (incomplete ones skipped) and whether it has a CRC-32."""
    entries, crc = [], False
    for seek in rd.children(el):
        if seek.id == CRC32:
            crc = True
        if seek.id != SEEK:
            continue
        sid = spos = None
        for c in rd.children(seek):
            if c.id == SEEKID and 1 <= c.end - c.data <= 4:
                sid = int.from_bytes(rd.view[c.data : c.end], "big")
            elif c.id == SEEKPOS:
                spos = rd.uint(c)
        if sid is not None and spos is not None:
            entries.append(_Seek(sid, spos))
    return entries, crc


def _simple_tags(
    rd: _Reader, el: _Element, path: str, target: str, depth: int, carriers: list[Carrier]
) -> bool:
    """Collect AIGC carriers among a Tag's/SimpleTag's SimpleTags; whether any was found."""
    if depth > _MAX_NESTING:
        raise rd.fail(f"SimpleTags nested deeper than {_MAX_NESTING} at {el.start:#x}")
    found = False
    index = 0
    for c in rd.children(el):
        if c.id != SIMPLETAG:
            continue
        name, value = "", ""
        for g in rd.children(c):
            if g.id == TAGNAME:
                name = rd.text(g)
            elif g.id in (TAGSTRING, TAGBINARY):
                value = rd.text(g)
        where = f"{path}/SimpleTag[{index}]"
        if name.lower() == "aigc":  # TagName is case-sensitive; a stray "aigc" is still a label
            carriers.append(Carrier("matroska-simpletag",
                                    f"{path}/SimpleTag {name} at {c.start:#x}{target}", value))
            found = True
        elif _simple_tags(rd, c, where, target, depth + 1, carriers):
            found = True
        index += 1
    return found


def _tags(
    rd: _Reader, el: _Element, index: int, carriers: list[Carrier]
) -> tuple[list[_Tag], bool]:
    """A Tags element's Tags (with AIGC and track flags) and whether it has a CRC-32."""
    if el.end - el.data > rd.limits.max_metadata_bytes:
        raise LimitExceeded(
            f"Tags at {el.start:#x} holds {el.end - el.data} bytes, over the metadata limit of "
            f"{rd.limits.max_metadata_bytes}",
            source=rd.source,
        )
    tags, crc = [], False
    for tag in rd.children(el):
        if tag.id == CRC32:
            crc = True
        if tag.id != TAG:
            continue
        n = len(tags)
        track = attachment = 0
        for c in rd.children(tag):
            if c.id == TARGETS:
                for t in rd.children(c):
                    if t.id == TAGTRACKUID:
                        track = track or rd.uint(t)
                    elif t.id == TAGATTACHMENTUID:
                        attachment = attachment or rd.uint(t)
        target = f" (track UID {track})" if track else ""
        found = _simple_tags(rd, tag, f"Tags[{index}]/Tag[{n}]", target, 0, carriers)
        tags.append(_Tag(tag, found, bool(track), bool(attachment)))
    return tags, crc


def parse(data: bytes, source: str, limits: Limits) -> MatroskaFile:
    """Parse a Matroska/WebM file's structure and AIGC carriers without reading the frames.

    ``data`` is the whole file: bytes, or any buffer (mmap) that memoryview accepts.
    """
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        data = view = view.cast("B")  # e.g. a memoryview of another shape: read it as bytes
    if not accept(bytes(view[:4])):
        raise CorruptInput("not an EBML file (no 1A 45 DF A3 magic)", source=source)
    rd = _Reader(view, source, limits)
    doctype, after_header = _doctype(rd)
    seg, width = _segment(rd, after_header)
    level1 = _level1(rd, seg)

    carriers: list[Carrier] = []
    duration, title, kind, w, h = 0.0, None, "video", 0, 0
    seen_info = seen_tracks = False
    tags: list[_Tag] = []
    tags_crc = False
    seeks: dict[int, tuple[list[_Seek], bool]] = {}
    n_tags = 0
    for el in level1:
        if el.id == INFO and not seen_info:
            duration, title = _info(rd, el)
            seen_info = True
        elif el.id == TRACKS and not seen_tracks:
            kind, w, h = _tracks(rd, el)
            seen_tracks = True
        elif el.id == TAGS:
            found, crc = _tags(rd, el, n_tags, carriers)
            tags += found
            tags_crc = tags_crc or crc
            n_tags += 1
        elif el.id == SEEKHEAD:
            seeks[el.start] = _seekhead(rd, el)
    if not seen_tracks:
        raise CorruptInput("no Tracks element in the Segment", source=source)
    check_pixels(w, h, source, limits, "video track")
    return MatroskaFile(
        source, w, h, 0, carriers, None, data, limits,
        doctype=doctype, kind=kind, duration=duration, _segment=seg, _size_width=width,
        _level1=level1, _tags=tags, _tags_crc=tags_crc, _seeks=seeks, _title=title,
    )  # fmt: skip


register(sys.modules[__name__])
