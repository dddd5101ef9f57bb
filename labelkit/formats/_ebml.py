"""EBML elements for the Matroska handler: IDs, bounds-checked reading, writing, the Segment's
level-1 scan, and the layout of a rebuilt Segment (SeekHead, Cues, Voids, moved Clusters).

Private to ``matroska`` (no ``register``): nothing here knows about labels. The handler plans
which level-1 elements go before, between and after the Clusters (``Item`` lists); ``Layout``
places them, recomputing SeekHead entries and Cue positions until they stop changing.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator, Union

from ..errors import CorruptInput, UnsupportedFormat
from ..limits import Limits
from . import check_count

__all__ = [
    "EBML", "DOCTYPE", "SEGMENT", "SEEKHEAD", "INFO", "TIMESTAMPSCALE", "DURATION", "TITLE",
    "TRACKS", "TRACKENTRY", "TRACKTYPE", "CODECID", "CODECPRIVATE", "CONTENTENCODINGS", "VIDEO",
    "PIXELWIDTH", "PIXELHEIGHT", "CHAPTERS", "ATTACHMENTS", "CLUSTER", "CUES", "TAGS", "TAG",
    "TARGETS", "TARGETTYPEVALUE", "TAGTRACKUID", "TAGATTACHMENTUID", "SIMPLETAG", "TAGNAME",
    "TAGSTRING", "TAGBINARY", "VOID", "CRC32", "HEADROOM", "Part", "name", "id_bytes",
    "size_bytes", "element", "uint", "void", "Element", "Reader", "level1", "segment", "Seek",
    "seekhead", "Item", "unknown_size", "sized_cluster", "clusters", "Layout",
]  # fmt: skip

# Element IDs (Matroska / EBML specifications), with the marker bits kept, as files store them.
EBML, DOCTYPE = 0x1A45DFA3, 0x4282
SEGMENT, SEEKHEAD, SEEK, SEEKID, SEEKPOS = 0x18538067, 0x114D9B74, 0x4DBB, 0x53AB, 0x53AC
INFO, TIMESTAMPSCALE, DURATION, TITLE = 0x1549A966, 0x2AD7B1, 0x4489, 0x7BA9
TRACKS, TRACKENTRY, TRACKTYPE, CODECID, CODECPRIVATE, CONTENTENCODINGS = (
    0x1654AE6B, 0xAE, 0x83, 0x86, 0x63A2, 0x6D80)  # fmt: skip
VIDEO, PIXELWIDTH, PIXELHEIGHT = 0xE0, 0xB0, 0xBA
CHAPTERS, ATTACHMENTS, CLUSTER = 0x1043A770, 0x1941A469, 0x1F43B675
CUES, CUEPOINT, CUETRACKPOSITIONS, CUECLUSTERPOSITION, CUECODECSTATE = (
    0x1C53BB6B, 0xBB, 0xB7, 0xF1, 0xEA)  # fmt: skip
TAGS, TAG, TARGETS, TARGETTYPEVALUE, TAGTRACKUID = 0x1254C367, 0x7373, 0x63C0, 0x68CA, 0x63C5
TAGATTACHMENTUID = 0x63C6
SIMPLETAG, TAGNAME, TAGSTRING, TAGBINARY = 0x67C8, 0x45A3, 0x4487, 0x4485
VOID, CRC32 = 0xEC, 0xBF

HEADROOM = 1024  # Void left before the Clusters when they had to move (room for a re-label)
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


def name(eid: int) -> str:
    """An element's name for messages."""
    return _NAMES.get(eid, f"element {eid:#x}")


# -- writing ------------------------------------------------------------------------------------


def id_bytes(eid: int) -> bytes:
    """An element ID as stored (marker bits included)."""
    return eid.to_bytes((eid.bit_length() + 7) // 8, "big")


def size_bytes(size: int, width: int = 0) -> bytes:
    """A size VINT of at least ``width`` bytes (wider than needed is legal EBML)."""
    need = 1
    while size >= (1 << (7 * need)) - 1:  # all ones would read as "unknown size"
        need += 1
    width = max(width, need)
    return ((1 << (7 * width)) | size).to_bytes(width, "big")


def element(eid: int, *payload: Part, crc: bool = False) -> bytes:
    """Serialize a element; ``crc`` puts a CRC-32 (of the payload) first, as EBML defines it."""
    body = b"".join(payload)
    if crc:
        body = b"\xbf\x84" + zlib.crc32(body).to_bytes(4, "little") + body
    return id_bytes(eid) + size_bytes(len(body)) + body


def uint(eid: int, value: int) -> bytes:
    """An unsigned integer element in as few bytes as it takes."""
    return element(eid, value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))


def void(length: int) -> bytes:
    """A Void element of exactly ``length`` (>= 2) bytes."""
    width = 1
    while length - 1 - width >= (1 << (7 * width)) - 1:
        width += 1
    return b"\xec" + size_bytes(length - 1 - width, width) + bytes(length - 1 - width)


def _grown(elem: Part, length: int) -> Part:
    """``elem`` made exactly ``length`` bytes long: a trailing Void, or a one-byte wider size."""
    diff = length - len(elem)
    if diff == 0:
        return elem
    if diff >= 2:
        return bytes(elem) + void(diff)
    head = bytes(elem[:12])
    iw = 1 + (head[0] < 0x80) + (head[0] < 0x40) + (head[0] < 0x20)
    sw = 9 - head[iw].bit_length()
    size = int.from_bytes(head[iw : iw + sw], "big") & ((1 << (7 * sw)) - 1)
    return head[:iw] + size_bytes(size, sw + 1) + bytes(elem[iw + sw :])


# -- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Element:
    """Where one element, and its payload, are in the file."""

    id: int
    start: int  # offset of the ID
    data: int  # offset of the payload
    end: int  # offset past the payload


class Reader:
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
            raise self.fail(f"{parent}: {name(eid)} at {pos:#x} has an invalid size field")
        sw = 9 - s.bit_length()
        data = pos + iw + sw
        if data > limit:
            raise self.fail(f"{parent}: {name(eid)} header at {pos:#x} is cut off (truncated?)")
        size = int.from_bytes(view[pos + iw : data], "big") & ((1 << (7 * sw)) - 1)
        return eid, data, None if size == (1 << (7 * sw)) - 1 else size

    def element(self, pos: int, limit: int, parent: str) -> Element:
        """Read a known-size element at ``pos`` that must end by ``limit``."""
        eid, data, size = self.head(pos, limit, parent)
        if size is None:
            raise self.fail(f"{parent}: {name(eid)} at {pos:#x} has an unknown size")
        if data + size > limit:
            raise self.fail(
                f"{parent}: {name(eid)} at {pos:#x} declares {size} bytes, past the end of "
                f"its parent at {limit:#x} (truncated or corrupt size)"
            )
        return Element(eid, pos, data, data + size)

    def children(self, parent: Element) -> Iterator[Element]:
        """The child elements of a master element, counted against the element limit."""
        where = f"{name(parent.id)} at {parent.start:#x}"
        pos = parent.data
        while pos < parent.end:
            child = self.element(pos, parent.end, where)
            self.count += 1
            check_count(self.count, self.source, self.limits, "EBML elements")
            yield child
            pos = child.end

    def uint(self, el: Element) -> int:
        """An unsigned integer element's value."""
        if el.end - el.data > 8:
            raise self.fail(f"{name(el.id)} at {el.start:#x} is not an integer (too long)")
        return int.from_bytes(self.view[el.data : el.end], "big")

    def text(self, el: Element) -> str:
        """A string element's value (UTF-8; NUL padding removed)."""
        return bytes(self.view[el.data : el.end]).rstrip(b"\0").decode("utf-8", "replace")

    def raw(self, el: Element) -> memoryview:
        """The whole element (header and payload) as a slice of the input."""
        return self.view[el.start : el.end]


def _chained(pos: int, source: str) -> UnsupportedFormat:
    return UnsupportedFormat(f"a second EBML document or Segment at {pos:#x} (chained/linked "
                             "files are not supported)", source=source)  # fmt: skip


def segment(rd: Reader, pos: int) -> tuple[Element, int]:
    """Find the Segment after the header (Voids may precede it); return it and its size width."""
    size_len = len(rd.view)
    while True:
        eid, data, size = rd.head(pos, size_len, "file")
        if eid == SEGMENT:
            break
        if eid != VOID or size is None or data + size > size_len:
            raise rd.fail(f"no Segment after the EBML header (found {name(eid)} at {pos:#x})")
        pos = data + size
    width = data - pos - 4
    if size is None:
        return Element(SEGMENT, pos, data, size_len), 0
    if data + size > size_len:
        raise rd.fail(
            f"truncated: the Segment declares {size} bytes but the file ends "
            f"{data + size - size_len} bytes short (cut at {size_len:#x})"
        )
    tail = data + size
    while tail < size_len:  # only Voids may follow the Segment
        el = rd.element(tail, size_len, "after the Segment")
        if el.id in (EBML, SEGMENT):
            raise _chained(tail, rd.source)
        if el.id != VOID:
            raise rd.fail(f"unexpected {name(el.id)} at {tail:#x} after the Segment")
        tail = el.end
    return Element(SEGMENT, pos, data, data + size), width


def _cluster_end(rd: Reader, data: int, limit: int) -> int:
    """Where an unknown-size Cluster starting its payload at ``data`` ends (scans its blocks)."""
    pos = data
    while pos < limit:
        eid, child, size = rd.head(pos, limit, f"Cluster (unknown size) at {data:#x}")
        if eid in _ENDS_CLUSTER:
            return pos
        if size is None:
            raise rd.fail(f"{name(eid)} at {pos:#x} in a Cluster has an unknown size")
        if child + size > limit:
            raise rd.fail(
                f"truncated: the block at {pos:#x} in the Cluster (unknown size) declares "
                f"{size} bytes, past the end of the file at {limit:#x}"
            )
        pos = child + size
    return limit


def level1(rd: Reader, seg: Element) -> list[Element]:
    """The Segment's level-1 elements, Clusters skipped by size (scanned if unknown-size)."""
    out: list[Element] = []
    pos, end = seg.data, seg.end
    while pos < end:
        eid, data, size = rd.head(pos, end, f"Segment at {seg.start:#x}")
        if eid in (EBML, SEGMENT):
            raise _chained(pos, rd.source)
        if size is None:
            if eid != CLUSTER:
                raise rd.fail(f"{name(eid)} at {pos:#x} has an unknown size (only Segment "
                              "and Cluster may)")  # fmt: skip
            stop = _cluster_end(rd, data, end)
        else:
            stop = data + size
            if stop > end:
                raise rd.fail(
                    f"truncated: {name(eid)} at {pos:#x} declares {size} bytes, past the end "
                    f"of the {'file' if end == len(rd.view) else 'Segment'} at {end:#x}"
                )
        out.append(Element(eid, pos, data, stop))
        check_count(len(out), rd.source, rd.limits, "Matroska level-1 elements")
        pos = stop
    return out


@dataclass(frozen=True)
class Seek:
    """A SeekHead entry."""

    id: int
    pos: int  # relative to the Segment's payload


def seekhead(rd: Reader, el: Element) -> tuple[list[Seek], bool]:
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
            entries.append(Seek(sid, spos))
    return entries, crc


# -- laying out a rebuilt Segment -----------------------------------------------------------------


@dataclass
class Item:
    """One level-1 element of the output, as the handler plans it."""

    key: object  # ("old", start) for the input's elements; any other hashable for new ones
    eid: int
    static: Part | None = None  # None: a SeekHead or Cues, rebuilt for the layout from ``el``
    el: Element | None = None
    fixed: int = 0  # for elements between Clusters: the exact length to keep


def unknown_size(rd: Reader, el: Element) -> bool:
    """Whether the element's header says "unknown size"."""
    return rd.head(el.start, el.data, "Segment")[2] is None


def sized_cluster(rd: Reader, el: Element) -> Item:
    """The header of an unknown-size Cluster with its size written in, in the same width."""
    width, size = el.data - el.start - 4, el.end - el.data
    if size >= (1 << (7 * width)) - 1:
        raise UnsupportedFormat(
            f"the unknown-size Cluster at {el.start:#x} is followed by metadata that has to "
            f"go, and its {width}-byte size field cannot hold its size; remux the file first",
            source=rd.source,
        )
    head = id_bytes(CLUSTER) + size_bytes(size, width)
    return Item(("old", el.start), CLUSTER, static=head, fixed=len(head))


def clusters(elements: list[Element]) -> tuple[int, int]:
    """Indices of the first and last Cluster (past the end / the last element if none)."""
    found = [i for i, el in enumerate(elements) if el.id == CLUSTER]
    return (found[0], found[-1]) if found else (len(elements), len(elements) - 1)


class Layout:
    """Places the planned elements: ``front`` rebuilt before the Clusters, which move as one
    block (by a delta, with HEADROOM of Void, only if the front outgrows its old room), the
    ``middle`` elements between Clusters in their exact old sizes, then ``back``."""

    def __init__(self, rd: Reader, seg: Element, size_width: int, elements: list[Element],
                 seeks: dict[int, tuple[list[Seek], bool]], front: list[Item],
                 middle: list[Item], back: list[Item],
                 keys: dict[int, object]) -> None:  # fmt: skip
        self.rd, self.seg, self.size_width, self.elements = rd, seg, size_width, elements
        self.seeks, self.front, self.middle, self.back = seeks, front, middle, back
        self.keys = keys  # old element start -> output key (None: the element is gone)
        self.seg_data = seg.data
        self.first, self.last = clusters(elements)
        self.old_ids = {el.start: el.id for el in elements}

    def parts(self) -> list[Part]:
        """Lay the file out (a fixed point: SeekHead and Cues sizes depend on positions)."""
        level1 = self.elements
        old_front = (level1[self.first].start if self.first < len(level1)
                     else self.seg.end) - self.seg_data  # fmt: skip
        middle_end = (level1[self.last].end if self.first < len(level1)
                      else self.seg.end) - self.seg_data  # fmt: skip
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
            raise UnsupportedFormat("could not lay out the labeled file", source=self.rd.source)
        return self._assemble(front, void(pad) if pad else b"", back, pos, delta)

    def _build(self, it: Item, pos: dict, delta: int) -> Part:
        if it.static is not None:
            return it.static
        assert it.el is not None
        return self._seekhead(it.el, pos, delta) if it.eid == SEEKHEAD else self._cues(it.el, delta)

    def _built(self, it: Item, pos: dict, delta: int, longest: dict) -> Part:
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
        view, level1 = self.rd.view, self.elements
        body: list[Part] = [*front]
        if pad:
            body.append(pad)
        if self.first < len(level1):
            at = level1[self.first].start
            for it in self.middle:  # elements between Clusters keep their exact size
                old = it.key[1]  # type: ignore[index]
                body.append(view[at:old])
                body.append(self._fit(self._build(it, pos, delta), it))
                at = old + it.fixed
            body.append(view[at : level1[self.last].end])
        body += back
        seg = self.seg
        if self.size_width:  # nothing refers to file offsets, so the field may widen if it must
            size: Part = size_bytes(sum(len(p) for p in body), self.size_width)
        else:
            size = view[seg.start + 4 : seg.data]  # an unknown size stays unknown
        return [view[: seg.start + 4], size, *body, view[seg.end :]]

    def _fit(self, out: Part, it: Item) -> Part:
        if len(out) > it.fixed:
            raise UnsupportedFormat(
                f"no room to rewrite the {name(it.eid)} between the Clusters at "
                f"{it.key[1]:#x}; remux the file first",  # type: ignore[index]
                source=self.rd.source,
            )
        return _grown(out, it.fixed)

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
        level1 = self.elements
        if self.first < len(level1) and level1[self.first].start <= start < level1[self.last].end:
            return old_rel + delta  # between the first and last Cluster: moved with them
        return None

    def _seekhead(self, el: Element, pos: dict, delta: int) -> bytes:
        entries, crc = self.seeks[el.start]
        out: list[tuple[int, int]] = []
        for e in entries:
            if self.old_ids.get(self.seg_data + e.pos) != e.id:
                continue  # the entry points at nothing of that kind: drop it
            new = self._new_pos(e.pos, pos, delta)
            if new is not None and (e.id, new) not in out:
                out.append((e.id, new))
        if el.start == min(self.seeks):  # the main SeekHead lists every metadata element
            listed = {i for i, _ in out}
            for it in self.front + self.back:
                if it.eid in (INFO, TRACKS, CHAPTERS, ATTACHMENTS, TAGS, CUES) and it.key in pos:
                    if it.eid not in listed:
                        out.append((it.eid, pos[it.key]))
                        listed.add(it.eid)
        seeks = [element(SEEK, element(SEEKID, id_bytes(i)), uint(SEEKPOS, p)) for i, p in out]
        return element(SEEKHEAD, *seeks, crc=crc)

    def _cues(self, el: Element, delta: int) -> Part:
        """The Cues with every cluster position moved by ``delta`` (CRC-32 recomputed)."""
        rd, view = self.rd, self.rd.view
        if delta == 0:
            return rd.raw(el)
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
                        fields.append(uint(g.id, value + delta))
                    else:
                        fields.append(view[g.start : g.end])
                kids.append(element(CUETRACKPOSITIONS, *fields))
            points.append(element(CUEPOINT, *kids))
        return element(CUES, *points, crc=crc)
