"""Matroska and WebM: SimpleTag ``AIGC`` carriers, the essence, labeling in a rebuilt Tags.

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

The essence (what ``formats.essence_digest`` hashes and the signature binds) is, in this order:
for each TrackEntry of the (first) Tracks element, in order, the payloads of its CodecID,
CodecPrivate and ContentEncodings elements (an empty part for one that is absent), then the
payload of every Cluster (the bytes after its ID and size) in file order: the coded samples with
their block headers. CodecID and CodecPrivate (SPS/PPS, the VP9/AV1 configuration, the
Vorbis/Opus headers) decide how every sample decodes, and so does ContentEncodings (header
stripping, compression, encryption); the rest of a TrackEntry (name, language, default/forced
flags, display size) is metadata that tools such as mkvpropedit edit, and is left out. Labeling
copies Tracks byte-identical (with ``metadata_from`` it is this file's own), so Tag, Info,
SeekHead, Cues and Void edits, track renames and writing a Cluster's size into a live file's
unknown-size field leave the essence unchanged.

Labeling writes exactly one SimpleTag ``AIGC`` in its own global Tag: Targets with
TargetTypeValue 50 and no TargetType string (ffmpeg would prefix the key with it), and no
TagLanguage (it defaults to ``und``; exiftool would append it to the name). That Tag comes first
in a single Tags element holding every other Tag of the file, less its AIGC SimpleTags, placed
before the first Cluster: "near the head", and ffmpeg reads the elements before the Clusters
without needing the SeekHead. The elements before the first Cluster are rebuilt (SeekHead
entries recomputed, old Voids dropped); when the result is not longer, one Void pads it back to
its old length and nothing after it moves. Otherwise the Clusters move as one block by a delta,
with 1 KiB of Void headroom (``_ebml.HEADROOM``) so that a re-label (a platform adding its
fields) fits in place, and the Cues' cluster positions and every SeekHead are rewritten for
it. Old Tags after the Clusters are removed; one between two Clusters becomes a Void of its
size (the Cluster before it, if of unknown size, gets its size written in, or it would swallow
the Void). Cluster bytes are never changed: a Cluster's optional Position element (a resync hint
that ffmpeg, mkvmerge and GStreamer skip, and no common muxer writes) is left as it was. CRC-32
elements of rebuilt elements are recomputed; a CRC-32 over the whole Segment is dropped. The
EBML layer (reading, writing, the level-1 scan, this layout) is in ``_ebml``.

Matroska has no XMP carrier in common use (XMP in an attachment is rare and not read), so the
``xmp`` argument of ``with_label`` is accepted for the common signature and ignored, and the
container's ``xmp`` is always None.
"""

from __future__ import annotations

import math
import struct
import sys
from dataclasses import dataclass, field
from typing import ClassVar, Iterator

from ..errors import CorruptInput, LimitExceeded, UnsupportedFormat
from ..limits import Limits
from . import Carrier, LabeledByParts, ParsedFile, check_pixels, check_same_format, register
from ._ebml import (  # fmt: skip
    ATTACHMENTS, CHAPTERS, CLUSTER, CODECID, CODECPRIVATE, CONTENTENCODINGS, CRC32, CUES, DOCTYPE,
    DURATION, INFO, PIXELHEIGHT, PIXELWIDTH, SEEKHEAD, SIMPLETAG, TAG, TAGATTACHMENTUID, TAGBINARY,
    TAGNAME, TAGS, TAGSTRING, TAGTRACKUID, TARGETS, TARGETTYPEVALUE, TIMESTAMPSCALE, TITLE,
    TRACKENTRY, TRACKS, TRACKTYPE, VIDEO, VOID, Element, Item, Layout, Part, Reader, Seek, clusters,
    element, level1, seekhead, segment, sized_cluster, uint, unknown_size, void,
)

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "MatroskaFile"]

NAME = "matroska"
MIME = "video/x-matroska"
EXTENSIONS = (".mkv", ".webm", ".mka", ".mk3d")  # for naming outputs only, never for sniffing
MODALITY = "video"

MAGIC = b"\x1a\x45\xdf\xa3"
AIGC = "AIGC"
_MAX_NESTING = 32  # SimpleTags nest; a hostile file could nest deep enough to exhaust the stack
_CODEC_SETUP = (CODECID, CODECPRIVATE, CONTENTENCODINGS)  # per TrackEntry, in the essence


def accept(prefix: bytes) -> bool:
    """Whether the bytes start with the EBML magic (Matroska, WebM; other EBML types refused)."""
    return prefix.startswith(MAGIC)


# -- parsed structure -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tag:
    el: Element
    aigc: bool  # holds an AIGC SimpleTag (at any depth)
    track: bool  # targets a track (TagTrackUID set): such tags describe one file's tracks
    attachment: bool  # targets an attachment (TagAttachmentUID set)


@dataclass
class MatroskaFile(LabeledByParts, ParsedFile):
    """A parsed Matroska/WebM file: its level-1 elements, tags and what labeling rewrites."""

    essence_hash: ClassVar[str] = "blake3"  # hundreds of MB: see formats.essence_digest
    doctype: str  # "matroska" or "webm": output naming, and which codecs/elements are allowed
    kind: str  # "video" if a video track exists, else "audio"
    duration: float  # seconds (Info Duration x TimestampScale), 0.0 if absent
    _segment: Element = field(repr=False)  # end: where the Segment really ends
    _size_width: int = field(repr=False)  # 0 when the Segment has an unknown size
    _level1: list[Element] = field(repr=False)
    _tags: list[_Tag] = field(repr=False)
    _tags_crc: bool = field(repr=False)  # the file's Tags carried CRC-32 elements
    _seeks: dict[int, tuple[list[Seek], bool]] = field(repr=False)  # SeekHead start -> entries
    _title: Element | None = field(repr=False)
    # per TrackEntry: its CodecID, CodecPrivate and ContentEncodings elements (None if absent)
    _codecs: list[tuple[Element | None, ...]] = field(repr=False)
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
        """Yield each track's codec setup (see the module), then every Cluster's payload."""
        view = memoryview(self._data)
        for setup in self._codecs:  # a part for each, present or not: parts keep their places
            for el in setup:
                yield view[el.data : el.end] if el is not None else view[:0]
        for el in self._level1:
            if el.id == CLUSTER:
                yield view[el.data : el.end]

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

    def _view(self, el: Element) -> memoryview:
        return memoryview(self._data)[el.start : el.end]

    def _reader(self) -> Reader:
        return Reader(memoryview(self._data), self.source, self._limits)


# -- writing ----------------------------------------------------------------------------------


class _Writer:
    """Plans the labeled file: which elements go before, between and after the Clusters."""

    def __init__(self, f: MatroskaFile, label_json: str, original: MatroskaFile | None) -> None:
        self.f, self.original = f, original
        self.rd = f._reader()
        self.first, self.last = clusters(f._level1)
        replaced = {CHAPTERS, ATTACHMENTS} if original is not None else set()
        self.webm = f.doctype == "webm"
        self.carried: list[Item] = []
        if original is not None:
            for el in original._level1:
                if el.id == CHAPTERS or (el.id == ATTACHMENTS and not self.webm):
                    key = ("carried", len(self.carried))
                    self.carried.append(Item(key, el.id, static=self._carry(original, el)))
        self.tags = Item("tags", TAGS, static=self._tags_element(label_json))
        front, middle, back = self._front(replaced), self._middle(replaced), self._back(replaced)
        # old element start -> output key, for SeekHead entries (old Tags all map to the new one)
        keys: dict[int, object] = {}
        for el in f._level1:
            if el.id == TAGS or el.id in replaced:
                keys[el.start] = "tags" if el.id == TAGS else None
        for it in front + back:
            if isinstance(it.key, tuple) and it.key[0] == "old":
                keys[it.key[1]] = it.key
        self.layout = Layout(self.rd, f._segment, f._size_width, f._level1, f._seeks,
                             front, middle, back, keys)  # fmt: skip

    def parts(self) -> list[Part]:
        """The labeled file's parts (see ``_ebml.Layout``)."""
        return self.layout.parts()

    # planning

    def _front(self, replaced: set[int]) -> list[Item]:
        items: list[Item] = []
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

    def _middle(self, replaced: set[int]) -> list[Item]:
        items = []
        prev = None
        for el in self.f._level1[self.first : self.last + 1]:
            if el.id in (TAGS, SEEKHEAD, CUES) or el.id in replaced:
                length = el.end - el.start
                if el.id == TAGS or el.id in replaced:
                    if prev is not None and prev.id == CLUSTER and unknown_size(self.rd, prev):
                        items.append(sized_cluster(self.rd, prev))  # or it would swallow the Void
                    items.append(Item(("old", el.start), VOID, static=void(length)))
                else:
                    items.append(self._item(el))
                items[-1].fixed = length
            prev = el
        return items

    def _back(self, replaced: set[int]) -> list[Item]:
        # Voids go too: after an unknown-size Cluster, a Void would become part of it.
        return [
            self._item(el)
            for el in self.f._level1[self.last + 1 :]
            if el.id not in (TAGS, CRC32, VOID) and el.id not in replaced
        ]

    def _item(self, el: Element) -> Item:
        key = ("old", el.start)
        if el.id in (SEEKHEAD, CUES):
            return Item(key, el.id, el=el)
        if el.id == INFO and self.original is not None:
            return Item(key, el.id, static=self._info(el))
        return Item(key, el.id, static=self.f._view(el))

    def _carry(self, original: MatroskaFile, el: Element) -> Part:
        """An element of the original as it is, or without its CRC-32 into WebM (which has none)."""
        view = original._view(el)
        if not self.webm:
            return view
        rd = original._reader()
        kids = [rd.view[c.start : c.end] for c in rd.children(el) if c.id != CRC32]
        return element(el.id, *kids)

    def _info(self, el: Element) -> bytes:
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
        return element(INFO, *kids, crc=crc)

    def _tags_element(self, label_json: str) -> bytes:
        """One Tags element: the label's Tag first, then every other Tag without AIGC."""
        label = element(
            TAG,
            element(TARGETS, uint(TARGETTYPEVALUE, 50)),
            element(
                SIMPLETAG,
                element(TAGNAME, AIGC.encode()),
                element(TAGSTRING, label_json.encode("utf-8")),
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
        return element(TAGS, *parts, crc=self.f._tags_crc)


def _stripped(rd: Reader, el: Element, depth: int) -> Part | None:
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
    return element(el.id, *kids)


def _simple_name(rd: Reader, el: Element) -> str:
    for c in rd.children(el):
        if c.id == TAGNAME:
            return rd.text(c)
    return ""



# -- parsing ----------------------------------------------------------------------------------


def _doctype(rd: Reader) -> tuple[str, int]:
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


def _info(rd: Reader, el: Element) -> tuple[float, Element | None]:
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


def _tracks(rd: Reader, el: Element) -> tuple[str, int, int, list[tuple[Element | None, ...]]]:
    """(kind, width, height, codec setup elements per TrackEntry): the kind is "video", with
    the first video track's size, if there is a video track, else "audio"."""
    kind, width, height = "", 0, 0
    codecs: list[tuple[Element | None, ...]] = []
    for entry in rd.children(el):
        if entry.id != TRACKENTRY:
            continue
        ttype, w, h = 0, 0, 0
        setup: dict[int, Element] = {}
        for c in rd.children(entry):
            if c.id == TRACKTYPE:
                ttype = rd.uint(c)
            elif c.id in _CODEC_SETUP:
                setup.setdefault(c.id, c)  # the first, as players read it
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
        codecs.append(tuple(setup.get(i) for i in _CODEC_SETUP))
    return kind or "video", width, height, codecs


def _simple_tags(
    rd: Reader, el: Element, path: str, target: str, depth: int, carriers: list[Carrier]
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
    rd: Reader, el: Element, index: int, carriers: list[Carrier]
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
    rd = Reader(view, source, limits)
    doctype, after_header = _doctype(rd)
    seg, width = segment(rd, after_header)
    elements = level1(rd, seg)

    carriers: list[Carrier] = []
    duration, title, kind, w, h = 0.0, None, "video", 0, 0
    seen_info = seen_tracks = False
    tags: list[_Tag] = []
    tags_crc = False
    seeks: dict[int, tuple[list[Seek], bool]] = {}
    n_tags = 0
    codecs: list[tuple[Element | None, ...]] = []
    for el in elements:
        if el.id == INFO and not seen_info:
            duration, title = _info(rd, el)
            seen_info = True
        elif el.id == TRACKS and not seen_tracks:
            kind, w, h, codecs = _tracks(rd, el)
            seen_tracks = True
        elif el.id == TAGS:
            found, crc = _tags(rd, el, n_tags, carriers)
            tags += found
            tags_crc = tags_crc or crc
            n_tags += 1
        elif el.id == SEEKHEAD:
            seeks[el.start] = seekhead(rd, el)
    if not seen_tracks:
        raise CorruptInput("no Tracks element in the Segment", source=source)
    check_pixels(w, h, source, limits, "video track")
    return MatroskaFile(
        source, w, h, 0, carriers, None, data, limits,
        doctype=doctype, kind=kind, duration=duration, _segment=seg, _size_width=width,
        _level1=elements, _tags=tags, _tags_crc=tags_crc, _seeks=seeks, _title=title,
        _codecs=codecs,
    )  # fmt: skip


register(sys.modules[__name__])
