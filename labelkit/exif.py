"""EXIF UserComment as an AIGC carrier: read it, recognise a label, remove it when relabeling.

A small TIFF IFD walker serves every reader: EXIF blobs (JPEG APP1, PNG eXIf, WebP EXIF) and
TIFF files go through the same ``locate_user_comment``, so they cannot disagree on what a
file holds. Removal edits the blob in place: every other EXIF byte keeps its offset, so maker
notes and thumbnails stay valid.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass

from .errors import CorruptInput, LimitExceeded
from .limits import DEFAULT_LIMITS, Limits
from .record import KEYS, misspelling_of

__all__ = [
    "USER_COMMENT",
    "EXIF_IFD",
    "TYPE_SIZES",
    "IfdEntry",
    "Ifd",
    "read_ifd",
    "read_ints",
    "value_bytes",
    "UserComment",
    "locate_user_comment",
    "tiff_byteorder",
    "decode_user_comment",
    "looks_like_aigc",
    "find_aigc",
    "strip_aigc",
]

USER_COMMENT = 0x9286
EXIF_IFD = 0x8769
EXIF_HEADER = b"Exif\x00\x00"

# Byte size of one value of each TIFF field type (TIFF 6.0 and its BigTIFF-free extensions).
TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
# struct codes of the integer types (13 is IFD, an offset).
INT_FORMATS = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 13: "I"}
# How many keys of a JSON object to test against the Annex E keys (difflib is not free).
_KEYS_TESTED = 64

_AIGC_RE = re.compile(r'\s*\{.*"(?:Label|AIGC)"\s*:', re.DOTALL)


@dataclass(frozen=True)
class IfdEntry:
    """One 12-byte IFD entry, with the absolute position of its value bytes."""

    tag: int
    type: int
    count: int
    pos: int  # absolute offset of the entry itself
    value_pos: int  # absolute offset of the value (inline in the entry when it fits)
    size: int  # value size in bytes (count * type size; 4 for unknown types)

    @property
    def inline(self) -> bool:
        """Whether the value sits inside the entry (4 bytes or less)."""
        return self.size <= 4


@dataclass(frozen=True)
class Ifd:
    """An image file directory: where it is, its entries and the next IFD's offset."""

    pos: int  # absolute offset of the entry count
    entries: tuple[IfdEntry, ...]
    next_offset: int  # relative to the TIFF header, 0 at the end of the chain

    def get(self, tag: int) -> IfdEntry | None:
        """Return the entry with this tag, if any."""
        for entry in self.entries:
            if entry.tag == tag:
                return entry
        return None


def tiff_byteorder(data: bytes | memoryview, base: int, source: str) -> str:
    """Return the struct byte-order character of the TIFF header at ``base``."""
    mark = bytes(data[base : base + 2])
    if mark == b"II":
        return "<"
    if mark == b"MM":
        return ">"
    raise CorruptInput(f"no TIFF byte-order mark at offset {base:#x}", source=source)


def read_ifd(
    data: bytes | memoryview, base: int, offset: int, endian: str, source: str, what: str
) -> Ifd:
    """Read the IFD at ``offset`` (relative to the TIFF header at ``base``)."""
    pos = base + offset
    if offset < 8 or pos + 2 > len(data):
        raise CorruptInput(f"{what} offset {offset:#x} is outside the data", source=source)
    (count,) = struct.unpack_from(endian + "H", data, pos)
    if pos + 2 + 12 * count + 4 > len(data):
        raise CorruptInput(
            f"{what} at {pos:#x} with {count} entries runs past the end", source=source
        )
    entries = []
    seen: set[int] = set()
    unpack = struct.Struct(endian + "HHI").unpack_from
    for i in range(count):
        at = pos + 2 + 12 * i
        tag, typ, n = unpack(data, at)
        if tag in seen:
            # Readers disagree on which duplicate wins (first or last), so a rewrite could not
            # keep the picture a reader sees; TIFF 6.0 requires unique, ascending tags anyway.
            raise CorruptInput(f"{what} at {pos:#x} has tag {tag} more than once", source=source)
        seen.add(tag)
        size = n * TYPE_SIZES[typ] if typ in TYPE_SIZES else 4  # unknown type: keep opaque
        if size <= 4:
            value_pos = at + 8
        else:
            (value_offset,) = struct.unpack_from(endian + "I", data, at + 8)
            value_pos = base + value_offset
        entries.append(IfdEntry(tag, typ, n, at, value_pos, size))
    (next_offset,) = struct.unpack_from(endian + "I", data, pos + 2 + 12 * count)
    return Ifd(pos, tuple(entries), next_offset)


def value_bytes(data: bytes | memoryview, entry: IfdEntry, source: str, what: str) -> bytes:
    """The value bytes of an entry, checked to lie inside the data."""
    if entry.value_pos + entry.size > len(data):
        raise CorruptInput(
            f"{what} tag {entry.tag} value at {entry.value_pos:#x} runs past the end of the data",
            source=source,
        )
    return bytes(data[entry.value_pos : entry.value_pos + entry.size])


def read_ints(
    data: bytes | memoryview, entry: IfdEntry, endian: str, source: str, what: str
) -> tuple[int, ...]:
    """The integer values of an entry; at least one, or CorruptInput."""
    fmt = INT_FORMATS.get(entry.type)
    if fmt is None:
        message = f"{what} tag {entry.tag} has non-integer type {entry.type}"
        raise CorruptInput(message, source=source)
    if entry.count == 0:
        raise CorruptInput(f"{what} tag {entry.tag} has no value (count 0)", source=source)
    value_bytes(data, entry, source, what)  # bounds check
    return struct.unpack_from(f"{endian}{entry.count}{fmt}", data, entry.value_pos)


@dataclass(frozen=True)
class UserComment:
    """Where a UserComment sits (its IFDs and entry) and its decoded text."""

    ifd0: Ifd
    pointer: IfdEntry  # the Exif IFD pointer in IFD0
    exif_ifd: Ifd
    entry: IfdEntry
    text: str


def locate_user_comment(
    data: bytes | memoryview,
    base: int,
    ifd0: Ifd,
    endian: str,
    source: str,
    limits: Limits,
    what: str,
) -> UserComment | None:
    """Find and decode the UserComment of the Exif IFD that ``ifd0`` points at, if any."""
    pointer = ifd0.get(EXIF_IFD)
    if pointer is None:
        return None
    offset = read_ints(data, pointer, endian, source, what)[0]
    exif_ifd = read_ifd(data, base, offset, endian, source, f"Exif IFD of {what}")
    entry = exif_ifd.get(USER_COMMENT)
    if entry is None:
        return None
    if entry.size > limits.max_metadata_bytes:
        raise LimitExceeded(
            f"UserComment in {what} is {entry.size} bytes, over the limit of "
            f"{limits.max_metadata_bytes}",
            source=source,
        )
    raw = value_bytes(data, entry, source, f"Exif IFD of {what}")
    return UserComment(ifd0, pointer, exif_ifd, entry, decode_user_comment(raw, endian))


def decode_user_comment(raw: bytes, endian: str) -> str:
    """Decode a UserComment value: its 8-byte charset prefix, then the text."""
    prefix, body = raw[:8], raw[8:]
    if prefix == b"UNICODE\x00":
        if body[:2] in (b"\xff\xfe", b"\xfe\xff"):
            codec = "utf-16"
        elif len(body) >= 2 and body[0] and not body[1]:
            codec = "utf-16-le"  # some writers ignore the EXIF byte order; ASCII text tells
        elif len(body) >= 2 and body[1] and not body[0]:
            codec = "utf-16-be"
        else:
            codec = "utf-16-le" if endian == "<" else "utf-16-be"
        text = body.decode(codec, errors="replace")
    elif prefix in (b"ASCII\x00\x00\x00", b"\x00" * 8, b"JIS\x00\x00\x00\x00\x00"):
        text = body.decode("utf-8", errors="replace")
    else:
        text = raw.decode("utf-8", errors="replace")  # no prefix at all: a sloppy writer
    return text.rstrip("\x00 ")


def looks_like_aigc(text: str) -> bool:
    """Whether a text is (or tries to be) an AIGC JSON label, bare or wrapped in "AIGC"."""
    if _AIGC_RE.match(text) is not None:
        return True
    if not text.lstrip().startswith("{"):
        return False
    # A JSON object whose keys are Annex E keys or misspellings of them is a label claim too:
    # a verifier must report it as an invalid label, not miss it.
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return False
    if not isinstance(obj, dict):
        return False
    inner = [v for v in list(obj.values())[:_KEYS_TESTED] if isinstance(v, dict)]
    keys = [k for o in (obj, *inner) for k in list(o)[:_KEYS_TESTED]]
    return any(k in KEYS or misspelling_of(k) for k in keys)


def _locate(
    blob: bytes | memoryview, source: str, limits: Limits, where: str
) -> tuple[UserComment | None, int, str]:
    """The UserComment of an EXIF blob (with its TIFF header's offset and byte order)."""
    what = f"EXIF block in {where}" if where else "EXIF block"
    if len(blob) > limits.max_metadata_bytes:
        raise LimitExceeded(
            f"{what} is {len(blob)} bytes, over the limit of {limits.max_metadata_bytes}",
            source=source,
        )
    if b"\x92\x86" not in blob and b"\x86\x92" not in blob:
        return None, 0, "<"  # the tag number (either byte order) is absent: nothing to read
    try:
        return _walk_blob(blob, source, limits, what)
    except CorruptInput as exc:  # say which block, whatever part of it was broken
        raise type(exc)(f"unreadable {what}: {exc.reason}", source=source) from None


def _walk_blob(
    blob: bytes | memoryview, source: str, limits: Limits, what: str
) -> tuple[UserComment | None, int, str]:
    """Walk the blob's TIFF header and IFD0 to its UserComment (errors named by the caller)."""
    base = 0
    while bytes(blob[base : base + 6]) == EXIF_HEADER:  # some writers repeat it
        base += len(EXIF_HEADER)
    endian = tiff_byteorder(blob, base, source)
    if len(blob) < base + 8:
        raise CorruptInput("shorter than its TIFF header", source=source)
    magic, ifd0_offset = struct.unpack_from(endian + "HI", blob, base + 2)
    if magic != 42:
        raise CorruptInput(f"bad TIFF magic number {magic}", source=source)
    ifd0 = read_ifd(blob, base, ifd0_offset, endian, source, "IFD0")
    return locate_user_comment(blob, base, ifd0, endian, source, limits, "IFD0"), base, endian


def find_aigc(
    blob: bytes | memoryview, source: str, limits: Limits = DEFAULT_LIMITS, *, where: str = ""
) -> str | None:
    """Return the EXIF UserComment text if it carries an AIGC label, else None."""
    found, _, _ = _locate(blob, source, limits, where)
    return found.text if found is not None and looks_like_aigc(found.text) else None


def _remove_entry(buf: bytearray, ifd: Ifd, entry: IfdEntry, endian: str) -> None:
    """Delete one entry from an IFD in place; the IFD keeps its size (12 zero bytes at its end)."""
    count = len(ifd.entries)
    start = ifd.pos + 2
    table = bytes(buf[start : start + 12 * count + 4])
    i = (entry.pos - start) // 12
    table = table[: 12 * i] + table[12 * (i + 1) :] + bytes(12)
    buf[start : start + len(table)] = table
    struct.pack_into(endian + "H", buf, ifd.pos, count - 1)


def strip_aigc(blob: bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Return the EXIF blob without an AIGC UserComment; the same object if it has none."""
    found, _, endian = _locate(blob, source, limits, "")
    if found is None or not looks_like_aigc(found.text):
        return blob
    entry = found.entry
    buf = bytearray(blob)
    if not entry.inline:
        # Blank the old label too, so no stale copy lingers in unreferenced bytes.
        buf[entry.value_pos : entry.value_pos + entry.size] = bytes(entry.size)
    _remove_entry(buf, found.exif_ifd, entry, endian)
    if len(found.exif_ifd.entries) == 1:
        # An IFD must not be empty: drop the pointer to the now empty Exif IFD.
        _remove_entry(buf, found.ifd0, found.pointer, endian)
    result = bytes(buf)
    if find_aigc(result, source, limits) is not None:
        raise CorruptInput("could not remove the AIGC EXIF UserComment", source=source)
    return result
