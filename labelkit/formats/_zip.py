"""Raw ZIP reading and writing for OOXML packages: entries are copied, never recompressed.

``read_archive`` checks the whole structure a labeler relies on: one end record at the very end,
a central directory that ends where the end record starts, every local header agreeing with its
central record (name, method, CRC and sizes, or the data descriptor's), and entries that tile
the file from offset 0 to the central directory with no overlap and no gap. Overlaps and gaps
are how crafted archives show one content to streaming readers and another to central-directory
readers (and how "overlapping" zip bombs work), so they are refused, not repaired.

Not supported (``UnsupportedFormat``): ZIP64, multi-disk archives, encrypted entries, and
reading entries compressed with anything but store or deflate (such entries are still copied).

``build`` writes members in the given order: a ``copied`` entry is its local header, data and
data descriptor as they were; only its central record's offset field changes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, replace

from ..errors import CorruptInput, LimitExceeded, UnsupportedFormat
from ..limits import Limits
from . import check_count

__all__ = ["Entry", "Archive", "Member", "LOCAL_SIG", "read_archive", "copied", "fresh", "build"]

LOCAL_SIG = b"PK\x03\x04"
_CENTRAL_SIG = b"PK\x01\x02"
_END_SIG = b"PK\x05\x06"
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"
_DESCRIPTOR_SIG = b"PK\x07\x08"
_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # sig, version, flags, method, time, date, crc, sizes, n, m
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # ... comment, disk, int/ext attrs, offset
_END = struct.Struct("<4sHHHHIIH")
_DESCRIPTOR = struct.Struct("<III")
_OFFSET_FIELD = 42  # of the local header offset in a central record
_ENCRYPTED = 0x0001 | 0x0040 | 0x2000  # traditional, strong, encrypted central directory
_DESCRIPTOR_FLAG = 0x0008
_UTF8_FLAG = 0x0800
_FULL32 = 0xFFFFFFFF
_DOS_EPOCH = (0, 0x21)  # 00:00:00, 1980-01-01: the date of an entry made from nothing


@dataclass(frozen=True)
class Entry:
    """One archive member: its central record and where its local bytes lie."""

    name: str
    flags: int
    method: int
    crc: int
    csize: int  # compressed size
    usize: int  # uncompressed size
    central: slice  # the central directory record
    start: int  # offset of the local header
    data: int  # offset of the compressed data
    end: int  # offset past the data and its data descriptor

    @property
    def raw(self) -> slice:
        """The stored (compressed) bytes."""
        return slice(self.data, self.data + self.csize)


@dataclass(frozen=True)
class Archive:
    """A checked ZIP archive: its entries in central directory order."""

    data: bytes
    entries: list[Entry]
    comment: slice  # the end record's comment
    source: str

    def find(self, name: str) -> Entry | None:
        """The entry with this name (OPC part names are case-insensitive), or None."""
        key = name.casefold()
        return next((e for e in self.entries if e.name.casefold() == key), None)

    def read(self, entry: Entry, limit: int) -> bytes:
        """The entry's uncompressed bytes; at most ``limit`` of them are ever produced."""
        what = f"ZIP entry {entry.name!r}"
        if entry.usize > limit:
            raise LimitExceeded(f"{what} declares {entry.usize} bytes, over the limit of {limit}",
                                source=self.source)
        raw = self.data[entry.raw]
        if entry.method == 0:
            out = raw
        elif entry.method == 8:
            out = _inflate(raw, entry.usize, what, self.source)
        else:
            raise UnsupportedFormat(f"{what} uses compression method {entry.method}",
                                    source=self.source)
        if len(out) != entry.usize or zlib.crc32(out) != entry.crc:
            raise CorruptInput(f"{what} does not match its size or CRC", source=self.source)
        return out


def _inflate(raw: bytes, size: int, what: str, source: str) -> bytes:
    """Raw deflate producing at most one byte more than the declared size (a bomb may lie)."""
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(raw, size + 1)
    except zlib.error as exc:
        raise CorruptInput(f"{what} has bad deflate data: {exc}", source=source) from None
    if len(out) > size:
        raise LimitExceeded(f"{what} inflates past its declared {size} bytes (zip bomb?)",
                            source=source)
    if not inflater.eof:
        raise CorruptInput(f"{what}: the deflate stream is truncated", source=source)
    return out


def _end_record(data: bytes, source: str) -> int:
    """The offset of the end record whose comment reaches exactly to the end of the file."""
    pos = len(data)
    floor = max(0, len(data) - _END.size - 0xFFFF)
    while True:
        pos = data.rfind(_END_SIG, floor, pos)
        if pos < 0:
            raise CorruptInput("truncated ZIP: no end of central directory record", source=source)
        if pos + _END.size <= len(data):
            (comment,) = struct.unpack_from("<H", data, pos + 20)
            if pos + _END.size + comment == len(data):
                return pos


def _has_zip64_extra(extra: bytes) -> bool:
    """Whether a local header's extra field holds a ZIP64 (id 0x0001) block."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            return True
        pos += 4 + size
    return False


def _descriptor_end(data: bytes, e: Entry, limit: int, local_extra: bytes, source: str) -> int:
    """The offset past an entry's data descriptor, checked against its central record."""
    pos = e.data + e.csize
    if data[pos : pos + 4] == _DESCRIPTOR_SIG:
        pos += 4
    if pos + _DESCRIPTOR.size > limit:
        raise CorruptInput(f"ZIP entry {e.name!r}: truncated data descriptor", source=source)
    if _DESCRIPTOR.unpack_from(data, pos) != (e.crc, e.csize, e.usize):
        if _has_zip64_extra(local_extra):  # then the descriptor holds 8-byte sizes
            raise UnsupportedFormat("ZIP64 data descriptors are not supported", source=source)
        raise CorruptInput(f"ZIP entry {e.name!r}: data descriptor does not match the central "
                           "directory", source=source)
    return pos + _DESCRIPTOR.size


def _entry(data: bytes, at: int, cd_start: int, source: str) -> tuple[Entry, int]:
    """Parse the central record at ``at`` and its local header; return it and the next offset."""
    if at + _CENTRAL.size > len(data) or data[at : at + 4] != _CENTRAL_SIG:
        raise CorruptInput(f"bad central directory record at {at:#x}", source=source)
    (_, _, _, flags, method, time, date, crc, csize, usize, n, m, k, _, _, _,
     offset) = _CENTRAL.unpack_from(data, at)
    nxt = at + _CENTRAL.size + n + m + k
    raw_name = data[at + _CENTRAL.size : at + _CENTRAL.size + n]
    name = raw_name.decode("utf-8" if flags & _UTF8_FLAG else "cp437", "replace")
    if flags & _ENCRYPTED:
        raise UnsupportedFormat(f"ZIP entry {name!r} is encrypted", source=source)
    if _FULL32 in (csize, usize, offset):
        raise UnsupportedFormat(f"ZIP entry {name!r} needs ZIP64 (not supported)", source=source)
    if offset + _LOCAL.size > cd_start or data[offset : offset + 4] != LOCAL_SIG:
        raise CorruptInput(f"ZIP entry {name!r}: no local header at {offset:#x}", source=source)
    (_, _, lflags, lmethod, _, _, lcrc, lcsize, lusize, ln,
     lm) = _LOCAL.unpack_from(data, offset)
    start = offset + _LOCAL.size
    if _FULL32 in (lcsize, lusize):
        raise UnsupportedFormat(f"ZIP entry {name!r} has ZIP64 sizes (not supported)",
                                source=source)
    if data[start : start + ln] != raw_name or lmethod != method or lflags & _ENCRYPTED:
        raise CorruptInput(f"ZIP entry {name!r}: local header at {offset:#x} disagrees with the "
                           "central directory", source=source)
    e = Entry(name, flags, method, crc, csize, usize, slice(at, nxt), offset, start + ln + lm,
              start + ln + lm + csize)
    if e.end > cd_start:
        raise CorruptInput(f"ZIP entry {name!r} runs past the central directory (truncated?)",
                           source=source)
    if lflags & _DESCRIPTOR_FLAG:
        e = replace(e, end=_descriptor_end(data, e, cd_start, data[start + ln : e.data], source))
    elif (lcrc, lcsize, lusize) != (crc, csize, usize):
        raise CorruptInput(f"ZIP entry {name!r}: local sizes/CRC disagree with the central "
                           "directory", source=source)
    return e, nxt


def _check_tiling(entries: list[Entry], cd_start: int, source: str) -> None:
    """Entries must cover [0, cd_start) exactly once, and no two may share a name."""
    pos = 0
    for e in sorted(entries, key=lambda e: e.start):
        if e.start != pos:
            what = "overlaps the entry before it" if e.start < pos else (
                f"follows {e.start - pos} unaccounted bytes at {pos:#x}")
            raise CorruptInput(f"ZIP entry {e.name!r} at {e.start:#x} {what}", source=source)
        pos = e.end
    if pos != cd_start:
        raise CorruptInput(f"{cd_start - pos} unaccounted bytes before the central directory",
                           source=source)
    names: set[str] = set()
    for e in entries:
        if e.name.casefold() in names:
            raise CorruptInput(f"two ZIP entries are named {e.name!r}", source=source)
        names.add(e.name.casefold())


def read_archive(data: bytes, source: str, limits: Limits) -> Archive:
    """Parse and check a ZIP archive's structure (no entry is decompressed)."""
    end = _end_record(data, source)
    _, disk, cd_disk, n_disk, n_total, cd_size, cd_start, _ = _END.unpack_from(data, end)
    zip64 = end >= 20 and data[end - 20 : end - 16] == _ZIP64_LOCATOR_SIG
    if zip64 or 0xFFFF in (n_disk, n_total) or _FULL32 in (cd_size, cd_start):
        raise UnsupportedFormat("ZIP64 archives are not supported", source=source)
    if disk or cd_disk or n_disk != n_total:
        raise UnsupportedFormat("multi-disk ZIP archives are not supported", source=source)
    check_count(n_total, source, limits, "ZIP entries")
    if cd_start + cd_size != end:
        raise CorruptInput(f"the central directory ({cd_size} bytes at {cd_start:#x}) does not "
                           f"end at the end record ({end:#x})", source=source)
    entries: list[Entry] = []
    at = cd_start
    for _ in range(n_total):
        e, at = _entry(data, at, cd_start, source)
        if at > end:
            raise CorruptInput("a central directory record runs past its end", source=source)
        entries.append(e)
    if at != end:
        raise CorruptInput("the central directory holds more than its entry count says",
                           source=source)
    _check_tiling(entries, cd_start, source)
    return Archive(data, entries, slice(end + _END.size, len(data)), source)


@dataclass(frozen=True)
class Member:
    """One entry of an archive being written: its local bytes and its central record."""

    local: tuple[bytes | memoryview, ...]
    central: bytes  # with any value in the offset field: ``build`` sets it


def copied(archive: Archive, e: Entry) -> Member:
    """An entry exactly as stored (local header, data, data descriptor, central record)."""
    view = memoryview(archive.data)
    return Member((view[e.start : e.end],), bytes(view[e.central]))


def fresh(name: str, payload: bytes, like: tuple[Archive, Entry] | None = None) -> Member:
    """A new deflated entry; ``like`` (an entry it replaces) gives its date and attributes."""
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    body = packer.compress(payload) + packer.flush()
    raw_name = name.encode("utf-8")
    flags = 0 if raw_name.isascii() else _UTF8_FLAG
    made_by, time, date, internal, external = 20, *_DOS_EPOCH, 0, 0
    if like is not None:
        archive, e = like
        fields = _CENTRAL.unpack_from(archive.data, e.central.start)
        made_by, time, date, internal, external = fields[1], fields[5], fields[6], *fields[14:16]
    crc = zlib.crc32(payload)
    head = _LOCAL.pack(LOCAL_SIG, 20, flags, 8, time, date, crc, len(body), len(payload),
                       len(raw_name), 0)
    central = _CENTRAL.pack(_CENTRAL_SIG, made_by, 20, flags, 8, time, date, crc, len(body),
                            len(payload), len(raw_name), 0, 0, 0, internal, external, 0)
    return Member((head, raw_name, body), central + raw_name)


def build(members: list[Member], comment: bytes | memoryview, source: str) -> bytes:
    """The archive of these members, in this order, with a new central directory."""
    parts: list[bytes | memoryview] = []
    records: list[bytes] = []
    offset = 0
    for m in members:
        record = bytearray(m.central)
        struct.pack_into("<I", record, _OFFSET_FIELD, offset)
        records.append(bytes(record))
        parts += m.local
        offset += sum(len(p) for p in m.local)
    cd_size = sum(len(r) for r in records)
    if offset + cd_size >= _FULL32 or len(members) >= 0xFFFF:
        raise LimitExceeded("the labeled package would need ZIP64", source=source)
    end = _END.pack(_END_SIG, 0, 0, len(members), len(members), cd_size, offset, len(comment))
    return b"".join([*parts, *records, end, comment])
