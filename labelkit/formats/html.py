"""HTML: the label as ``<meta name="AIGC" content="...">`` in the head, carriers in the prose.

The meta element goes right after the ``<head>`` start tag (or after ``<html>``, where a
browser's parser opens the head itself, or at the start of a fragment), followed by the file's
line ending; any other AIGC meta element is removed, so exactly one remains. The essence is the
text without AIGC meta elements (each with the line ending after it), so labeling does not
change it and any other edit does.

The structure comes from the standard library's tokenizer (``html.parser``, character
references kept as they are, so offsets point into the file): the start and end of the body
(where notices go) and the text inside block elements (where carriers go: after the first word
of each, never inside a tag, an attribute, script, style, pre, code, textarea or the head).
"""

from __future__ import annotations

import html
import re
import sys
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import ClassVar

from ..errors import CorruptInput
from ..limits import Limits
from ..watermark.text import carrier
from . import Carrier, register
from ._prose import first_word_end
from ._text import TextFile, decode_text, newline_of

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "HtmlFile", "Layout",
           "layout", "insert_carriers", "set_aigc"]

NAME = "html"
MIME = "text/html"
EXTENSIONS = (".html", ".htm")
MODALITY = "text"

_START = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head)[\s>]",
                    re.I | re.S)
_BLOCKS = frozenset("p li h1 h2 h3 h4 h5 h6 td th dt dd blockquote figcaption caption div "
                    "section article aside header footer main summary label".split())
_VOID = frozenset("area base br col embed hr img input link meta source track wbr".split())
_VERBATIM = frozenset("script style pre code textarea title head svg math template "
                      "noscript iframe object kbd samp var".split())


def accept(prefix: bytes) -> bool:
    """A doctype, ``<html>`` or ``<head>`` start (after a BOM, whitespace and comments)."""
    return _START.match(prefix) is not None


@dataclass
class Layout:
    """Where things are in an HTML text (character offsets)."""

    head_open_end: int | None = None  # just after <head ...>
    html_open_end: int | None = None  # just after <html ...>
    decl_end: int | None = None  # just after <!DOCTYPE ...>
    body_open_end: int | None = None
    body_close: int | None = None  # the start of the last </body>
    html_close: int | None = None
    aigc_meta: list[tuple[int, int, str]] = field(default_factory=list)  # start, end, content
    carrier_points: list[int] = field(default_factory=list)


class _Scanner(HTMLParser):
    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=False)
        self.text, self.out = text, Layout()
        self._lines = [0] + [m.end() for m in re.finditer("\n", text)]
        self._verbatim = 0  # depth inside elements whose text is never touched
        self._open: list[str] = []
        self._pending = False  # a block opened whose first word has no carrier yet

    def _at(self) -> int:
        line, col = self.getpos()
        return self._lines[line - 1] + col

    def _end_of_tag(self) -> int:
        return self._at() + len(self.get_starttag_text() or "")

    def handle_decl(self, decl: str) -> None:
        if decl.lower().startswith("doctype"):
            self.out.decl_end = self._at() + len(decl) + 3

    def handle_starttag(self, tag: str, attrs: list) -> None:
        end = self._end_of_tag()
        if tag == "meta" and any(k == "name" and (v or "").strip().upper() == "AIGC"
                                 for k, v in attrs):
            content = next((v or "" for k, v in attrs if k == "content"), "")
            self.out.aigc_meta.append((self._at(), end, content))
        first = {"head": "head_open_end", "html": "html_open_end", "body": "body_open_end"}
        if tag in first and getattr(self.out, first[tag]) is None:
            setattr(self.out, first[tag], end)
        if tag in _VERBATIM:
            self._verbatim += 1
        elif tag in _BLOCKS:
            self._pending = True
        if tag not in _VOID:
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.out.body_close = self._at()
        elif tag == "html":
            self.out.html_close = self._at()
        if tag not in self._open:
            return  # a stray end tag closes nothing
        while self._open:  # an end tag closes what was left open inside it too
            top = self._open.pop()
            self._verbatim -= top in _VERBATIM
            if top == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self._pending or self._verbatim > 0:
            return
        at = first_word_end(data, 0, markdown=False)
        if at is not None:
            self.out.carrier_points.append(self._at() + at)
            self._pending = False


def layout(text: str, source: str = "<html>") -> Layout:
    """Tokenize ``text`` and return where its head, body, AIGC metas and paragraphs are."""
    scanner = _Scanner(text)
    try:
        scanner.feed(text)
        scanner.close()
    except (AssertionError, ValueError) as exc:  # html.parser's own complaints
        raise CorruptInput(f"HTML the tokenizer cannot read: {exc}", source=source) from None
    return scanner.out


def _without_aigc_meta(text: str, lay: Layout) -> str:
    out, pos = [], 0
    for a, b, _ in lay.aigc_meta:
        out.append(text[pos:a])
        pos = b
        for nl in ("\r\n", "\n", "\r"):
            if text.startswith(nl, pos):
                pos += len(nl)
                break
    out.append(text[pos:])
    return "".join(out)


def set_aigc(text: str, label_json: str, source: str = "<html>") -> str:
    """``text`` with exactly one ``<meta name="AIGC">``, holding ``label_json``."""
    bare = _without_aigc_meta(text, layout(text, source))
    lay = layout(bare, source)
    meta = f'<meta name="AIGC" content="{html.escape(label_json, quote=True)}">'
    at = next((p for p in (lay.head_open_end, lay.html_open_end, lay.decl_end) if p is not None),
              1 if bare.startswith("\ufeff") else 0)
    return bare[:at] + meta + newline_of(text) + bare[at:]


def insert_carriers(text: str, payload: int, source: str = "<html>") -> str:
    """The carrier after the first word of every block of body text (never in tags or code)."""
    mark = carrier(payload)
    points = layout(text, source).carrier_points
    out, pos = [], 0
    for p in points:
        out.append(text[pos:p])
        out.append(mark)
        pos = p
    out.append(text[pos:])
    return "".join(out)


@dataclass
class HtmlFile(TextFile):
    """A parsed HTML file: its text and its AIGC meta elements."""

    format: str = NAME
    kind: str = "html"
    layout: Layout = field(default_factory=Layout, repr=False)
    essence_hash: ClassVar[str] = "blake3"

    def content(self) -> str:
        """The text without its AIGC meta elements."""
        return _without_aigc_meta(self.text, self.layout)

    def with_label(self, label_json: str, *, xmp: bytes | None = None,
                   metadata_from: TextFile | None = None) -> bytes:
        """The file with one AIGC meta element; everything else byte-identical."""
        return self.with_text(set_aigc(self.text, label_json, self.source))


def parse(data: bytes, source: str, limits: Limits) -> HtmlFile:
    """Decode and tokenize; the AIGC meta elements are the carriers."""
    text = decode_text(data, source, limits)
    lay = layout(text, source)
    carriers = [Carrier("html-meta", f"<meta name=AIGC> (line {text.count(chr(10), 0, a) + 1})",
                        value) for a, _, value in lay.aigc_meta]
    return HtmlFile(source, 0, 0, 1, carriers, None, data, limits, text=text, layout=lay)


register(sys.modules[__name__])
