"""XMP packets: find, set and strip the TC260:AIGC property (GB 45438 Annex E carrier).

Reading parses the packet with xml.etree (after refusing DTDs and oversized packets), so
namespace prefixes are resolved by URI, whatever prefix a file binds. Writing is text surgery
on the packet, so everything that is not the AIGC property stays byte-identical; the result is
re-parsed to prove it well-formed and to hold exactly the intended property.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from .errors import CorruptInput, LimitExceeded
from .limits import DEFAULT_LIMITS, Limits

__all__ = [
    "NS",
    "PREFIX",
    "RDF_NS",
    "find_aigc",
    "set_aigc",
    "strip_aigc",
    "new_packet",
]

NS = "http://www.tc260.org.cn/ns/AIGC/1.0/"
PREFIX = "TC260"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_XML_NS = "http://www.w3.org/XML/1998/namespace"

_AIGC_TAG = f"{{{NS}}}AIGC"
_PACKET_ID = "W5M0MpCehiHzreSzNTczkc9d"  # the fixed id every XMP packet wrapper uses

# A DTD is never legal in XMP, and it is what entity-expansion attacks need.
_DTD_RE = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)

# A tokenizer for the surgery: it only has to tell markup apart and give exact offsets. It is
# not a validator: every packet it helps rewrite is parsed by expat afterwards.
_NAME = r"[^\s<>/=\"'!?]+"
_ATTR_RE = re.compile(rf"\s+({_NAME})\s*=\s*(\"[^\"]*\"|'[^']*')")
_TOKEN_RE = re.compile(
    rf"""
      <!--.*?-->
    | <!\[CDATA\[.*?\]\]>
    | <\?.*?\?>
    | <!.*?>
    | </(?P<end>{_NAME})\s*>
    | <(?P<start>{_NAME})(?P<attrs>(?:\s+{_NAME}\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(?P<empty>/?)>
    """,
    re.DOTALL | re.VERBOSE,
)


def _decode(packet: bytes, source: str, where: str) -> str:
    """Decode a packet in any encoding XMP allows (UTF-8, UTF-16, UTF-32)."""
    head = bytes(packet[:4])
    if head.startswith((b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00")):
        codec = "utf-32"
    elif head.startswith((b"\xfe\xff", b"\xff\xfe")):
        codec = "utf-16"
    elif head.startswith(b"\x00\x00\x00<"):
        codec = "utf-32-be"
    elif head.startswith(b"<\x00\x00\x00"):
        codec = "utf-32-le"
    elif head.startswith(b"\x00<"):
        codec = "utf-16-be"
    elif head.startswith(b"<\x00"):
        codec = "utf-16-le"
    else:
        codec = "utf-8"
    try:
        return bytes(packet).decode(codec)
    except UnicodeDecodeError as exc:
        message = f"XMP packet{where} is not valid {codec}: {exc}"
        raise CorruptInput(message, source=source) from None


def _text(packet: bytes, source: str, limits: Limits, where: str = "") -> str:
    """Check the size limit, decode, and refuse DTDs; return the packet text."""
    where = f" in {where}" if where else ""
    if len(packet) > limits.max_metadata_bytes:
        raise LimitExceeded(
            f"XMP packet{where} is {len(packet)} bytes, over the limit of "
            f"{limits.max_metadata_bytes}",
            source=source,
        )
    text = _decode(packet, source, where)
    if _DTD_RE.search(text):
        raise CorruptInput(
            f"XMP packet{where} has a DOCTYPE/ENTITY declaration (XMP forbids DTDs; refused to "
            "stop entity-expansion attacks)",
            source=source,
        )
    return text


def _parse(packet: bytes, source: str, limits: Limits, where: str = "") -> ET.Element:
    """Check the packet (``_text``) and parse it; return its root element."""
    text = _text(packet, source, limits, where)
    where = f" in {where}" if where else ""
    parser = ET.XMLParser()
    try:
        # Writers pad packets in files with NULs; they are not XML.
        parser.feed(text.rstrip("\x00"))
        root = parser.close()
    except ET.ParseError as exc:
        raise CorruptInput(f"malformed XMP packet{where}: {exc}", source=source) from None
    return root


def find_aigc(
    packet: bytes, source: str, limits: Limits = DEFAULT_LIMITS, *, where: str = ""
) -> list[tuple[str, str]]:
    """Return every TC260:AIGC value in the packet, in document order, as (kind, text).

    ``where`` names the packet's place in the file for error messages ("APP1 segment at 0x14").
    """
    root = _parse(packet, source, limits, where)
    found: list[tuple[str, str]] = []
    for el in root.iter():
        value = el.attrib.get(_AIGC_TAG)
        if value is not None:
            found.append(("xmp-attribute", value))
        if el.tag == _AIGC_TAG:
            # A plain literal is the element's text; a structured value (e.g. an rdf:Alt) is
            # reported with its text content so a verifier can still see and judge it.
            text = (el.text or "") if len(el) == 0 else "".join(el.itertext()).strip()
            found.append(("xmp-element", text))
    return found


@dataclass(slots=True)
class _Element:
    """A start tag seen by the tokenizer, with the namespaces in scope inside it."""

    qname: str
    start: int  # offset of "<"
    tag_end: int  # offset just past the start tag's ">"
    empty: bool
    attrs_text: str  # the attributes as written, parsed only when needed (see attrs)
    attrs_offset: int
    scope: dict[str, str]
    parent: _Element | None
    end: int = -1  # offset just past the end tag (or the empty tag)
    end_tag_start: int = -1
    _attrs: list[tuple[str, int, int, str]] | None = None

    @property
    def attrs(self) -> list[tuple[str, int, int, str]]:
        """(qname, start incl. leading space, end, raw value) of each attribute."""
        if self._attrs is None:
            base = self.attrs_offset
            self._attrs = [
                (a.group(1), base + a.start(), base + a.end(), a.group(2)[1:-1])
                for a in _ATTR_RE.finditer(self.attrs_text)
            ]
        return self._attrs

    def resolve(self, qname: str, *, attribute: bool = False) -> tuple[str | None, str]:
        """Return (namespace URI, local name) of a qualified name used in this element."""
        prefix, _, local = qname.rpartition(":")
        if not prefix:
            # Unprefixed attributes are in no namespace; unprefixed elements in the default one.
            return (None if attribute else self.scope.get("")), local
        return self.scope.get(prefix), local


@dataclass
class _Doc:
    """The tokenized packet: the elements in document order and the AIGC carriers among them."""

    text: str
    elements: list[_Element] = field(default_factory=list)
    # (kind, element, attribute index or -1), in document order
    carriers: list[tuple[str, _Element, int]] = field(default_factory=list)


def _tokenize(text: str) -> _Doc:
    doc = _Doc(text)
    stack: list[_Element] = []
    base_scope = {"xml": _XML_NS}
    for m in _TOKEN_RE.finditer(text):
        qname, end_name = m.group("start", "end")
        if end_name is not None:
            if not stack:
                raise ValueError(f"end tag {end_name} without a start tag")
            el = stack.pop()
            el.end_tag_start, el.end = m.start(), m.end()
            continue
        if qname is None:
            continue  # comment, CDATA, processing instruction
        parent = stack[-1] if stack else None
        attrs_text = m.group("attrs")
        el = _Element(
            qname, m.start(), m.end(), bool(m.group("empty")), attrs_text, m.start("attrs"),
            parent.scope if parent else base_scope, parent,
        )
        doc.elements.append(el)
        # Substring tests first: most elements declare nothing and carry no AIGC attribute.
        if "xmlns" in attrs_text:
            el.scope = dict(el.scope)  # copied only where declarations change it
            for name, _, _, value in el.attrs:
                if name.startswith("xmlns"):
                    el.scope[name[6:]] = value  # "xmlns" -> "" (the default namespace)
        if "AIGC" in attrs_text:
            for i, (name, *_rest) in enumerate(el.attrs):
                if name.endswith("AIGC") and el.resolve(name, attribute=True) == (NS, "AIGC"):
                    doc.carriers.append(("attr", el, i))
        if qname.endswith("AIGC") and el.resolve(qname) == (NS, "AIGC"):
            doc.carriers.append(("elem", el, -1))
        if el.empty:
            el.end = m.end()
        else:
            stack.append(el)
    return doc


def _prefix_for_ns(scope: dict[str, str]) -> str | None:
    for prefix, uri in scope.items():
        if uri == NS and prefix:
            return prefix
    return None


def _property(prefix: str, json_text: str) -> str:
    return f"<{prefix}:AIGC>{escape(json_text)}</{prefix}:AIGC>"


def _open_tag(el: _Element, text: str, drop: int = -1, *, keep_only_xmlns: bool = False) -> str:
    """Rebuild a start tag (never empty), dropping one attribute or all but xmlns ones."""
    parts = [f"<{el.qname}"]
    for i, (name, a_start, a_end, _) in enumerate(el.attrs):
        if i == drop or (keep_only_xmlns and not name.startswith("xmlns")):
            continue
        parts.append(text[a_start:a_end])
    parts.append(">")
    return "".join(parts)


def _indent(text: str, pos: int) -> str:
    """The whitespace that indents the line holding pos, to format inserted lines alike."""
    line_start = text.rfind("\n", 0, pos) + 1
    lead = text[line_start:pos]
    return lead if not lead.strip() else ""


def _removal_start(text: str, pos: int) -> int:
    """Extend a removal back over the whitespace before it, so no blank line is left."""
    while pos > 0 and text[pos - 1] in " \t\r\n":
        pos -= 1
    return pos


def _apply(text: str, edits: list[tuple[int, int, str]]) -> str:
    edits.sort(key=lambda e: (e[0], e[1]))
    out, pos = [], 0
    for start, end, repl in edits:
        if start < pos:
            raise ValueError("overlapping XMP edits")
        out.append(text[pos:start])
        out.append(repl)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _carrier_edits(
    doc: _Doc, keep_first: str | None
) -> tuple[list[tuple[int, int, str]], bool]:
    """Edits removing every carrier; with keep_first, the first one becomes the element form.

    Returns the edits and whether the value was placed.
    """
    text = doc.text
    edits: list[tuple[int, int, str]] = []
    placed = False
    covered_until = -1  # carriers nested in a removed/replaced element go with it
    for kind, el, index in doc.carriers:
        if el.start < covered_until:
            continue
        if el.end < 0:
            raise ValueError(f"unclosed element {el.qname}")
        if kind == "elem":
            if keep_first is not None and not placed:
                new = _open_tag(el, text, keep_only_xmlns=True)
                new += f"{escape(keep_first)}</{el.qname}>"
                edits.append((el.start, el.end, new))
                placed = True
            else:
                edits.append((_removal_start(text, el.start), el.end, ""))
            covered_until = el.end
            continue
        name, a_start, a_end, _ = el.attrs[index]
        if keep_first is not None and not placed:
            # Turn the attribute into a property element inside the same node element, so
            # the prefix stays in scope and the namespace is not declared again.
            prefix = name.rpartition(":")[0]
            indent = _indent(text, el.start)
            new = _open_tag(el, text, drop=index) + f"\n{indent} " + _property(prefix, keep_first)
            if el.empty:
                new += f"\n{indent}</{el.qname}>"
            edits.append((el.start, el.tag_end, new))
            placed = True
        else:
            edits.append((a_start, a_end, ""))
    return edits, placed


def _insertion(doc: _Doc, json_text: str) -> tuple[int, int, str]:
    """Where and what to insert when the packet has no AIGC property yet."""
    # 1. A node element that already declares the namespace: add the property to it.
    for el in doc.elements:
        declares = NS in el.attrs_text and any(
            name.startswith("xmlns:") and value == NS for name, _, _, value in el.attrs
        )
        top_level = el.parent is not None and el.parent.resolve(el.parent.qname) == (RDF_NS, "RDF")
        if declares and top_level and el.resolve(el.qname) == (RDF_NS, "Description"):
            prefix = _prefix_for_ns(el.scope)
            assert prefix is not None
            indent = _indent(doc.text, el.start)
            new = f"\n{indent} " + _property(prefix, json_text)
            if el.empty:
                closing = f"\n{indent}</{el.qname}>"
                return el.start, el.tag_end, _open_tag(el, doc.text) + new + closing
            return el.tag_end, el.tag_end, new
    # 2. A new rdf:Description at the end of rdf:RDF.
    rdf = next((el for el in doc.elements if el.resolve(el.qname) == (RDF_NS, "RDF")), None)
    if rdf is None or rdf.end < 0:
        raise ValueError("no complete rdf:RDF element")
    rdf_prefix = rdf.qname.rpartition(":")[0]
    r = f"{rdf_prefix}:" if rdf_prefix else ""
    # Every Description of a packet describes the same resource: copy its rdf:about.
    about = ""
    for el in doc.elements:
        if el.parent is rdf:
            for name, _, _, value in el.attrs:
                if el.resolve(name, attribute=True) == (RDF_NS, "about"):
                    about = value.replace('"', "&quot;")  # raw source text: already escaped
                    break
            break
    prefix = _prefix_for_ns(rdf.scope)
    declare = ""
    if prefix is None:
        prefix, declare = PREFIX, f' xmlns:{PREFIX}="{NS}"'
    desc = (
        f' <{r}Description {r}about="{about}"{declare}>\n'
        f"  {_property(prefix, json_text)}\n"
        f" </{r}Description>\n"
    )
    if rdf.empty:
        return rdf.start, rdf.tag_end, _open_tag(rdf, doc.text) + "\n" + desc + f"</{rdf.qname}>"
    return rdf.end_tag_start, rdf.end_tag_start, desc


def _use_padding(old: str, new: str) -> str:
    """Take the growth out of the packet's trailing padding, as XMP writers do in place."""
    growth = len(new.encode("utf-8")) - len(old.encode("utf-8"))
    trailer = new.rfind("<?xpacket end=")
    if growth <= 0 or trailer < 0:
        return new
    start = len(new[:trailer].rstrip(" \t\r\n"))
    pad = trailer - start
    keep = max(pad - growth, 1)  # keep one newline/space before the trailer
    return new[:start] + new[trailer - keep :]


def new_packet(json_text: str) -> bytes:
    """Return a fresh XMP packet holding only TC260:AIGC = json_text."""
    return (
        f'<?xpacket begin="\ufeff" id="{_PACKET_ID}"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{RDF_NS}">\n'
        f'  <rdf:Description rdf:about="" xmlns:{PREFIX}="{NS}">\n'
        f"   {_property(PREFIX, json_text)}\n"
        "  </rdf:Description>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        '<?xpacket end="w"?>'
    ).encode("utf-8")


def _checked(result: str, expected: list[tuple[str, str]], source: str, limits: Limits) -> bytes:
    data = result.encode("utf-8")
    if find_aigc(data, source, limits) != expected:
        raise CorruptInput("could not rewrite the XMP packet's AIGC property", source=source)
    return data


def set_aigc(
    packet: bytes | None,
    json_text: str,
    *,
    source: str = "<xmp>",
    limits: Limits = DEFAULT_LIMITS,
) -> bytes:
    """Return the packet with exactly one TC260:AIGC property (element form) = json_text.

    Only the property changes (and trailing padding pays for growth, as XMP writers do); a
    UTF-16/32 packet comes back as UTF-8. ``None`` gives a new packet (``new_packet``).
    """
    expected = [("xmp-element", json_text)]
    if packet is None:
        return _checked(new_packet(json_text).decode("utf-8"), expected, source, limits)
    # The surgery needs only the tokenizer; the one full parse is of the result, which proves
    # it well-formed (a packet from a parsed file was already proven so).
    text = _text(packet, source, limits)
    try:
        doc = _tokenize(text)
        edits, placed = _carrier_edits(doc, json_text)
        if not placed:
            edits.append(_insertion(doc, json_text))
        result = _apply(text, edits)
    except ValueError as exc:
        raise CorruptInput(
            f"cannot add the AIGC property to the XMP packet: {exc}", source=source
        ) from None
    return _checked(_use_padding(text, result), expected, source, limits)


def strip_aigc(
    packet: bytes, *, source: str = "<xmp>", limits: Limits = DEFAULT_LIMITS
) -> bytes:
    """Return the packet without any TC260:AIGC property; unchanged bytes if it had none."""
    text = _text(packet, source, limits)
    try:
        doc = _tokenize(text)
        if not doc.carriers:
            return packet
        edits, _ = _carrier_edits(doc, None)
        result = _apply(text, edits)
    except ValueError as exc:
        raise CorruptInput(f"cannot strip the XMP packet: {exc}", source=source) from None
    return _checked(result, [], source, limits)
