"""OOXML packages (DOCX, XLSX, PPTX and their macro-enabled kin): custom property ``AIGC``.

The label is the custom document property ``AIGC`` (``vt:lpwstr``, the JSON XML-escaped, the
user-defined fmtid) in the package's custom-properties part, ``docProps/custom.xml`` (or where
``_rels/.rels`` points). An existing part is edited in place: other properties stay byte for
byte, the first AIGC property is replaced and any further one (names compare case-insensitively,
as Office does) removed. A package without the part gets it, with its ``Override`` in
``[Content_Types].xml`` and its relationship in ``_rels/.rels``. Every other entry is copied raw
(local header, compressed bytes, data descriptor): nothing is recompressed.

The essence is every part except ``docProps/*`` (core, app and custom properties, thumbnail:
metadata that other tools edit), ``[Content_Types].xml`` and ``_rels/.rels`` (plumbing that
labeling may touch) and the custom-properties part wherever it is: for each, in name order,
its name with its compression method, then its stored (compressed) bytes. Hashed with BLAKE3:
packages embed pictures and video.

``metadata_from`` (the parsed original, after another tool rewrote the content): this package's
parts with the original's custom properties (merged as above) and ``docProps/core.xml`` (title,
author, dates). Left behind: ``docProps/app.xml`` (page and word counts of the old content) and
the thumbnail (a picture of it).

Sniffing: ``accept`` sees 64 bytes, enough for a ZIP local header but not for the package's
content types, so it claims every ZIP except those whose first entry is ``mimetype`` (ODF,
EPUB); ``parse`` refuses a ZIP that is not an OOXML package with UnsupportedFormat. A later
ZIP-based handler must come before ``office`` in ``_BUILTIN`` (and make its ``accept`` exact).
"""

from __future__ import annotations

import re
import struct
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import ClassVar, Iterator
from xml.sax.saxutils import escape, quoteattr

from ..errors import CorruptInput, UnsupportedFormat
from ..limits import Limits
from ..xmp import _DTD_RE, _Element, _tokenize  # its DTD test and offset-exact tokenizer
from . import Carrier, ParsedFile, check_same_format, register
from ._zip import LOCAL_SIG, Archive, Entry, Member, build, copied, fresh, read_archive

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "KINDS", "accept", "parse", "OfficeFile"]

NAME = "office"
MIME = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
MODALITY = "document"

_CT_NS = "http://schemas.openxmlformats.org/package/2006/content-types"
_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_CUSTOM_NS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
_VT_NS = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
_OFFICE_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
_CUSTOM_REL = _OFFICE_RELS + "custom-properties"
_CUSTOM_CT = "application/vnd.openxmlformats-officedocument.custom-properties+xml"
FMTID = "{D5CDD505-2E9C-101B-9397-08002B2CF9AE}"  # FMTID_UserDefinedProperties
CUSTOM_PART = "docProps/custom.xml"
CONTENT_TYPES, PACKAGE_RELS, CORE_PART = "[Content_Types].xml", "_rels/.rels", "docProps/core.xml"

_OOXML = "application/vnd.openxmlformats-officedocument."
# main part content type -> (kind, the file's MIME type)
KINDS = {
    _OOXML + "wordprocessingml.document.main+xml": ("docx", _OOXML + "wordprocessingml.document"),
    _OOXML + "spreadsheetml.sheet.main+xml": ("xlsx", _OOXML + "spreadsheetml.sheet"),
    _OOXML + "presentationml.presentation.main+xml":
        ("pptx", _OOXML + "presentationml.presentation"),
    "application/vnd.ms-word.document.macroEnabled.main+xml":
        ("docm", "application/vnd.ms-word.document.macroEnabled.12"),
    "application/vnd.ms-excel.sheet.macroEnabled.main+xml":
        ("xlsm", "application/vnd.ms-excel.sheet.macroEnabled.12"),
    "application/vnd.ms-powerpoint.presentation.macroEnabled.main+xml":
        ("pptm", "application/vnd.ms-powerpoint.presentation.macroEnabled.12"),
}
EXTENSIONS = tuple(f".{kind}" for kind, _ in KINDS.values())  # for naming outputs only
_ENCODING_RE = re.compile(r"""^<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""")


def accept(prefix: bytes) -> bool:
    """A ZIP local header whose first entry is not ODF's/EPUB's ``mimetype``."""
    return prefix[:4] == LOCAL_SIG and prefix[30:38] != b"mimetype"


def _xml(raw: bytes, part: str, source: str) -> tuple[str, ET.Element]:
    """Decode (UTF-8 only) and parse a package part, refusing DTDs; return (text, root)."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):  # OPC allows UTF-16; no writer seen uses it
        raise UnsupportedFormat(f"{part} is UTF-16 (not supported)", source=source)
    try:
        text = raw.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise CorruptInput(f"{part} is not UTF-8: {exc}", source=source) from None
    declared = _ENCODING_RE.match(text)
    if declared and declared.group(1).lower().replace("-", "") != "utf8":
        raise UnsupportedFormat(f"{part} declares encoding {declared.group(1)!r}", source=source)
    if _DTD_RE.search(text):
        raise CorruptInput(f"{part} has a DOCTYPE/ENTITY declaration (refused: entity "
                           "expansion)", source=source)
    parser = ET.XMLParser()
    try:
        parser.feed(text)
        root = parser.close()
    except ET.ParseError as exc:
        raise CorruptInput(f"malformed XML in {part}: {exc}", source=source) from None
    return text, root


def _children(root: ET.Element, ns: str, local: str) -> list[ET.Element]:
    return [c for c in root if c.tag == f"{{{ns}}}{local}"]


def _main_kind(types: ET.Element, rels: ET.Element, archive: Archive) -> tuple[str, str, str]:
    """(kind, MIME, main part name) from the officeDocument relationship and content types."""
    source = archive.source
    targets = [_part_name(r.get("Target", "")) for r in _children(rels, _REL_NS, "Relationship")
               if r.get("Type", "").endswith("/officeDocument")]
    overrides = {o.get("PartName", "").casefold(): o.get("ContentType", "")
                 for o in _children(types, _CT_NS, "Override")}
    for target in targets:
        kind = KINDS.get(overrides.get("/" + target.casefold(), ""))
        if kind is not None:
            if archive.find(target) is None:
                raise CorruptInput(f"the main part {target} is missing", source=source)
            return kind[0], kind[1], target
    raise UnsupportedFormat("an OPC package, but not a Word, Excel or PowerPoint document",
                            source=source)


def _part_name(target: str) -> str:
    """A package-relative relationship target as a ZIP entry name."""
    return target.removeprefix("/").removeprefix("./")


def _custom_target(rels: ET.Element, source: str) -> str | None:
    targets = [r.get("Target", "") for r in _children(rels, _REL_NS, "Relationship")
               if r.get("Type") == _CUSTOM_REL and r.get("TargetMode") != "External"]
    if len(targets) > 1:
        raise CorruptInput("_rels/.rels has two custom-properties relationships", source=source)
    return _part_name(targets[0]) if targets else None


def _is_aigc(prop: ET.Element) -> bool:
    return prop.get("name", "").strip().casefold() == "aigc"


def _value(prop: ET.Element) -> str:
    """A property's value as text (the first child: vt:lpwstr, or whatever type was used)."""
    first = next(iter(prop), None)
    return "" if first is None else "".join(first.itertext())


@dataclass
class OfficeFile(ParsedFile):
    """A parsed OOXML package: its entries, plumbing parts and AIGC custom properties."""

    kind: str = ""  # "docx", "xlsx", "pptx", "docm", "xlsm", "pptm"
    mime: str = ""
    main_part: str = ""
    custom_part: str = CUSTOM_PART
    _archive: Archive | None = field(default=None, repr=False)
    _texts: dict[str, str | None] = field(default_factory=dict, repr=False)  # plumbing, decoded
    format: str = NAME
    essence_hash: ClassVar[str] = "blake3"

    def essence(self) -> Iterator[bytes | memoryview]:
        """Per content part, in name order: its name and method, then its stored bytes."""
        view = memoryview(self._data)
        skip = {CONTENT_TYPES.casefold(), PACKAGE_RELS, self.custom_part.casefold()}
        for e in sorted(self._archive.entries, key=lambda e: e.name):
            key = e.name.casefold()
            if key not in skip and not key.startswith("docprops/"):
                yield e.name.encode("utf-8") + b"\0" + struct.pack("<H", e.method)
                yield view[e.raw]

    def with_label(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: OfficeFile | None = None,
    ) -> bytes:
        """Return the package with exactly one AIGC custom property; other entries raw-copied.

        ``xmp`` is ignored: OOXML has no XMP place (its metadata is the properties parts)."""
        check_same_format(self, metadata_from)
        src = metadata_from if metadata_from is not None else self
        new = {self.custom_part.casefold(): _custom_xml(src._texts["custom"], label_json,
                                                        self.source).encode("utf-8")}
        for key, text in ((CONTENT_TYPES, self._content_types()), (PACKAGE_RELS, self._rels())):
            if text is not None:
                new[key.casefold()] = text.encode("utf-8")
        members: list[Member] = []
        core = metadata_from._archive.find(CORE_PART) if metadata_from is not None else None
        for e in self._archive.entries:
            key = e.name.casefold()
            if key in new:
                members.append(fresh(e.name, new.pop(key), (self._archive, e)))
            elif core is not None and key == CORE_PART.casefold():
                members.append(copied(metadata_from._archive, core))
            else:
                members.append(copied(self._archive, e))
        members += [fresh(self.custom_part, payload) for payload in new.values()]
        return build(members, self._data[self._archive.comment], self.source)

    def _content_types(self) -> str | None:
        """[Content_Types].xml with the custom part's Override, or None if it has it already."""
        text = self._texts["types"]
        root, kids = _tokens(text, _CT_NS, "Types", self.source)
        part = "/" + self.custom_part
        override = (f"<{_child_name(root, 'Override')} PartName={quoteattr(part)} "
                    f"ContentType={quoteattr(_CUSTOM_CT)}/>")
        for el, node in kids:
            if node.tag == f"{{{_CT_NS}}}Override" and \
                    node.get("PartName", "").casefold() == part.casefold():
                if node.get("ContentType") == _CUSTOM_CT:
                    return None
                return text[: el.start] + override + text[el.end :]
        return _append_child(text, root, override)

    def _rels(self) -> str | None:
        """_rels/.rels with the custom-properties relationship, or None if it has it already."""
        text = self._texts["rels"]
        root, kids = _tokens(text, _REL_NS, "Relationships", self.source)
        if any(n.get("Type") == _CUSTOM_REL for _, n in kids):
            return None
        ids = {n.get("Id") for _, n in kids}
        n = next(i for i in range(1, len(ids) + 2) if f"rId{i}" not in ids)
        rel = (f"<{_child_name(root, 'Relationship')} Id=\"rId{n}\" "
               f"Type={quoteattr(_CUSTOM_REL)} Target={quoteattr(self.custom_part)}/>")
        return _append_child(text, root, rel)


def _tokens(text: str, ns: str, local: str,
            source: str) -> tuple[_Element, list[tuple[_Element, ET.Element]]]:
    """The root's token and its children as (token, parsed element) pairs, checked to agree."""
    root = ET.fromstring(text)  # the text passed ``_xml`` already: well-formed, no DTD
    try:
        doc = _tokenize(text)
    except ValueError as exc:
        raise CorruptInput(f"unexpected markup in the {local} part: {exc}", source=source) from None
    top = doc.elements[0]
    kids = [el for el in doc.elements if el.parent is top]
    if root.tag != f"{{{ns}}}{local}" or len(kids) != len(root):
        raise CorruptInput(f"unexpected structure in the {local} part", source=source)
    return top, list(zip(kids, root))


def _child_name(root: _Element, local: str) -> str:
    """A child's qualified name with the root's prefix (the parts use one namespace)."""
    prefix = root.qname.rpartition(":")[0]
    return f"{prefix}:{local}" if prefix else local


def _append_child(text: str, root: _Element, child: str) -> str:
    """Insert ``child`` as the root's last child (opening an empty root)."""
    if root.empty:
        opening = text[root.start : root.tag_end - 2].rstrip() + ">"
        return text[: root.start] + opening + child + f"</{root.qname}>" + text[root.end :]
    return text[: root.end_tag_start] + child + text[root.end_tag_start :]


def _property(root: _Element, pid: int, label_json: str) -> str:
    """The AIGC property element, with the vt prefix the root declares (or its own)."""
    vt = next((p for p, uri in root.scope.items() if uri == _VT_NS and p), None)
    value = (f"<{vt}:lpwstr>" if vt else f'<vt:lpwstr xmlns:vt="{_VT_NS}">') + escape(label_json)
    name = _child_name(root, "property")
    return (f'<{name} fmtid="{FMTID}" pid="{pid}" name="AIGC">{value}'
            f"</{vt or 'vt'}:lpwstr></{name}>")


def _pid(node: ET.Element) -> int:
    pid = node.get("pid", "")
    return int(pid) if pid.isdigit() else 0


def _custom_xml(text: str | None, label_json: str, source: str) -> str:
    """The custom-properties part with one AIGC property; other properties kept as written."""
    if text is None:
        text = (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Properties '
                f'xmlns="{_CUSTOM_NS}" xmlns:vt="{_VT_NS}"></Properties>')
    root, kids = _tokens(text, _CUSTOM_NS, "Properties", source)
    aigc = [(el, n) for el, n in kids if n.tag == f"{{{_CUSTOM_NS}}}property" and _is_aigc(n)]
    labels = {id(n) for _, n in aigc}
    others = {_pid(n) for _, n in kids if id(n) not in labels}
    kept = _pid(aigc[0][1]) if aigc else 0
    pid = kept if kept >= 2 and kept not in others else max(others | {1}) + 1
    prop = _property(root, pid, label_json)
    if not aigc:
        result = _append_child(text, root, prop)
    else:
        edits = [(el.start, el.end, prop if i == 0 else "") for i, (el, _) in enumerate(aigc)]
        result = text
        for start, end, repl in reversed(edits):
            result = result[:start] + repl + result[end:]
    _, parsed = _xml(result.encode("utf-8"), CUSTOM_PART, source)
    found = [_value(p) for p in parsed if _is_aigc(p)]
    if found != [label_json] or len(parsed) != len(kids) - len(aigc) + 1:
        raise CorruptInput("could not edit the custom properties part safely", source=source)
    return result


def _read_xml(archive: Archive, name: str, limits: Limits) -> tuple[str, ET.Element] | None:
    entry: Entry | None = archive.find(name)
    if entry is None:
        return None
    return _xml(archive.read(entry, limits.max_metadata_bytes), entry.name, archive.source)


def parse(data: bytes, source: str, limits: Limits) -> OfficeFile:
    """Check the ZIP structure and the package plumbing; read the AIGC custom properties."""
    if not isinstance(data, bytes):
        data = bytes(data)
    archive = read_archive(data, source, limits)
    types = _read_xml(archive, CONTENT_TYPES, limits)
    if types is None:
        raise UnsupportedFormat("a ZIP archive, not an OOXML package (no [Content_Types].xml)",
                                source=source)
    rels = _read_xml(archive, PACKAGE_RELS, limits)
    if rels is None:
        raise CorruptInput("an OOXML package without _rels/.rels", source=source)
    kind, mime, main = _main_kind(types[1], rels[1], archive)
    custom_part = _custom_target(rels[1], source) or CUSTOM_PART
    if custom_part.casefold() in (main.casefold(), CONTENT_TYPES.casefold(), PACKAGE_RELS):
        raise CorruptInput(f"the custom-properties relationship points at {custom_part}",
                           source=source)
    custom = _read_xml(archive, custom_part, limits)
    doc = OfficeFile(source, 0, 0, 0, [], None, data, limits, kind=kind, mime=mime,
                     main_part=main, custom_part=custom_part, _archive=archive,
                     _texts={"types": types[0], "rels": rels[0],
                             "custom": None if custom is None else custom[0]})
    if custom is not None:
        if custom[1].tag != f"{{{_CUSTOM_NS}}}Properties":
            raise CorruptInput(f"{custom_part} is not a custom-properties part", source=source)
        for prop in _children(custom[1], _CUSTOM_NS, "property"):
            if _is_aigc(prop):
                where = f"{custom_part} property {prop.get('name')} pid={prop.get('pid')}"
                doc.carriers.append(Carrier("office-custom-property", where, _value(prop)))
    return doc


register(sys.modules[__name__])
