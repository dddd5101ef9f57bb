"""Markdown: the label as a YAML front matter mapping ``AIGC:``, carriers outside code.

The label is the front matter key ``AIGC`` holding a block mapping of the seven keys, each
value double-quoted (GB 45438 practice guide), merged into the file's own front matter: the
other keys stay byte-identical, a previous ``AIGC`` entry is replaced. Read back are that block
form, a flow mapping (``AIGC: {...}``, which is JSON) and a quoted JSON string.

Markdown is sniffed by its front matter; a file without one is Markdown when its name says so
(``text.parse`` asks this module). The block structure that matters for labeling: front
matter, fenced code (``` and ~~~, closed or running to the end), indented code, and the HTML
blocks that run to an end marker (script, pre, style, textarea, comments, processing
instructions, declarations, CDATA). Nothing is ever inserted inside them.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from typing import ClassVar

from ..limits import Limits
from ..watermark.text import carrier
from . import Carrier, register
from ._text import BOM, TextFile, decode_text, newline_of
from ._prose import first_word_end

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse", "MarkdownFile",
           "front_matter", "verbatim_spans", "insert_carriers", "body_start", "open_fence"]

NAME = "markdown"
MIME = "text/markdown"
EXTENSIONS = (".md", ".markdown")
MODALITY = "text"

_FM_OPEN = re.compile(r"\A(?:\ufeff)?---[ \t]*\r?\n")
_FM_CLOSE = re.compile(r"^(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.M)
_AIGC_KEY = re.compile(r"^AIGC[ \t]*:(.*)$", re.M)
_ENTRY = re.compile(r'^[ \t]+([A-Za-z0-9_]+)[ \t]*:[ \t]*(?:"((?:[^"\\\n]|\\.)*)"|'
                    r"'((?:[^'\n]|'')*)'|([^\s#'\"][^\n#]*?))[ \t]*(?:#.*)?$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})([^\n]*)$")
_HTML_VERBATIM = (
    (re.compile(r"^ {0,3}<(?:script|pre|style|textarea)(?:\s|>|$)", re.I),
     re.compile(r"</(?:script|pre|style|textarea)>", re.I)),
    (re.compile(r"^ {0,3}<!--"), re.compile(r"-->")),
    (re.compile(r"^ {0,3}<\?"), re.compile(r"\?>")),
    (re.compile(r"^ {0,3}<![A-Za-z]"), re.compile(r">")),
    (re.compile(r"^ {0,3}<!\[CDATA\["), re.compile(r"\]\]>")),
)


def accept(prefix: bytes) -> bool:
    """A YAML front matter opening line ("---") at the very start."""
    return _FM_OPEN.match(prefix.decode("utf-8", "ignore")) is not None


def front_matter(text: str) -> tuple[int, int] | None:
    """(start of its content, end of its closing line) of the front matter, or None."""
    m = _FM_OPEN.match(text)
    if m is None:
        return None
    close = _FM_CLOSE.search(text, m.end())
    return (m.end(), close.end()) if close else None


def body_start(text: str) -> int:
    """Where the document proper begins: after the front matter (and a BOM)."""
    fm = front_matter(text)
    return fm[1] if fm else (1 if text.startswith(BOM) else 0)


def _aigc_entries(fm: str, start: int) -> list[tuple[int, int, str]]:
    """(start, end, JSON text) of every ``AIGC:`` key of front matter ``fm`` (offsets in fm)."""
    out = []
    for m in _AIGC_KEY.finditer(fm):
        end, inline = m.end(), m.group(1).strip()
        lines = []
        # the block's indented lines (and blank lines inside it)
        for line in re.finditer(r"\n((?:[ \t]+[^\n]*)|[ \t]*(?=\n))", fm[end:]):
            if line.start() != end - m.end():
                break
            lines.append(line.group(1).rstrip("\r"))
            end = m.end() + line.end()
        if end < len(fm) and fm[end] == "\n":
            end += 1
        out.append((m.start(), end, _as_json(inline, lines)))
    return out


def _as_json(inline: str, lines: list[str]) -> str:
    """The JSON text of an AIGC entry, whatever YAML form it took (or its raw text if none)."""
    if inline[:1] == "{":
        return inline  # a flow mapping: the JSON itself
    if inline[:1] in "'\"" and len(inline) > 1 and inline[-1] == inline[0]:
        body = inline[1:-1]
        return body.replace("''", "'") if inline[0] == "'" else body.replace('\\"', '"')
    pairs = []
    for line in lines:
        if not line.strip():
            continue
        e = _ENTRY.match(line)
        if e is None:
            return "AIGC:\n" + "\n".join(lines)  # not a form labelkit reads: the check says so
        key, dq, sq, plain = e.groups()
        value = (dq.replace('\\"', '"') if dq is not None else
                 sq.replace("''", "'") if sq is not None else plain)
        pairs.append(f"{json.dumps(key)}:{json.dumps(value)}")
    return "{" + ",".join(pairs) + "}"


def _yaml_block(label_json: str, newline: str) -> str:
    fields = json.loads(label_json)
    lines = ["AIGC:"] + [f'  {k}: "{v}"' for k, v in fields.items()]  # values carry no '"'
    return newline.join(lines) + newline


def set_aigc(text: str, label_json: str) -> str:
    """``text`` with exactly one front matter ``AIGC`` entry, holding ``label_json``."""
    nl = newline_of(text)
    block = _yaml_block(label_json, nl)
    fm = front_matter(text)
    if fm is None:
        start = 1 if text.startswith(BOM) else 0
        return text[:start] + "---" + nl + block + "---" + nl + text[start:]
    s, e = fm
    inner = text[s:e]
    close = _FM_CLOSE.search(inner)
    head = inner[: close.start()] if close else inner
    for a, b, _ in reversed(_aigc_entries(head, 0)):
        head = head[:a] + head[b:]
    if head and not head.endswith(("\n", "\r")):
        head += nl
    return text[:s] + head + block + inner[close.start():] + text[e:]


def verbatim_spans(text: str, start: int = 0) -> list[tuple[int, int]]:
    """(start, end) of code blocks and verbatim HTML blocks in ``text`` from ``start``."""
    spans: list[tuple[int, int]] = []
    pos, blank_before = start, True
    lines = list(re.finditer(r"[^\n]*(?:\n|\Z)", text[start:]))
    i = 0
    while i < len(lines):
        line = lines[i].group(0)
        a = start + lines[i].start()
        fence = _FENCE.match(line.rstrip("\r\n"))
        if fence:
            mark = fence.group(1)
            j = i + 1
            while j < len(lines) and not re.match(
                    rf"^ {{0,3}}{re.escape(mark[0])}{{{len(mark)},}}[ \t]*\r?$",
                    lines[j].group(0).rstrip("\n")):
                j += 1
            end = start + (lines[j].end() if j < len(lines) else len(text) - start)
            spans.append((a, end))
            i, blank_before = j + 1, False
            continue
        if blank_before and re.match(r"^(?: {4}|\t)[^\n]*\S", line):
            j = i
            while j < len(lines) and (re.match(r"^(?: {4}|\t)", lines[j].group(0))
                                      or not lines[j].group(0).strip()):
                j += 1
            spans.append((a, start + lines[j - 1].end()))
            i, blank_before = j, not lines[j - 1].group(0).strip()
            continue
        for opener, closer in _HTML_VERBATIM:
            if opener.match(line):
                c = closer.search(text, a)
                end = len(text) if c is None else text.find("\n", c.end()) + 1 or len(text)
                spans.append((a, end))
                while i < len(lines) and start + lines[i].end() <= end:
                    i += 1
                blank_before = False
                break
        else:
            blank_before = not line.strip()
            i += 1
        pos = a
    return spans


def open_fence(text: str) -> str | None:
    """The fence that runs to the end of ``text`` unclosed, if any (a notice must close it)."""
    spans = verbatim_spans(text, body_start(text))
    if not spans or spans[-1][1] < len(text):
        return None
    first = text[spans[-1][0]:].split("\n", 1)[0]
    fence = _FENCE.match(first.rstrip("\r"))
    if fence is None:
        return None
    rest = text[spans[-1][0] + len(first):]
    closed = re.search(rf"(?m)^ {{0,3}}{re.escape(fence.group(1)[0])}"
                       rf"{{{len(fence.group(1))},}}[ \t]*\r?$", rest)
    return None if closed else fence.group(1)


def insert_carriers(text: str, payload: int) -> str:
    """The carrier after the first word of every paragraph outside front matter and code."""
    mark = carrier(payload)
    start = body_start(text)
    out, pos = [text[:start]], start
    for a, b in [*verbatim_spans(text, start), (len(text), len(text))]:
        out.append(_mark_paragraphs(text[pos:a], mark))
        out.append(text[a:b])
        pos = b
    return "".join(out)


_PARAGRAPHS = re.compile(r"(?:\A|\n[ \t\r]*\n)[ \t\r\n]*")


def _mark_paragraphs(prose: str, mark: str) -> str:
    out, pos = [], 0
    for m in _PARAGRAPHS.finditer(prose):
        if m.end() < pos:
            continue
        at = first_word_end(prose, m.end(), markdown=True)
        if at is not None and at >= pos:
            out.append(prose[pos:at])
            out.append(mark)
            pos = at
    out.append(prose[pos:])
    return "".join(out)


@dataclass
class MarkdownFile(TextFile):
    """A parsed Markdown file: the text and its front matter's AIGC entries."""

    format: str = NAME
    kind: str = "markdown"
    essence_hash: ClassVar[str] = "blake3"

    def content(self) -> str:
        """The document without its front matter (metadata other tools edit)."""
        return self.text[body_start(self.text):]

    def with_label(self, label_json: str, *, xmp: bytes | None = None,
                   metadata_from: TextFile | None = None) -> bytes:
        """The file with one front matter ``AIGC`` entry; everything else byte-identical."""
        return self.with_text(set_aigc(self.text, label_json))


def parse(data: bytes, source: str, limits: Limits) -> MarkdownFile:
    """Decode and find the front matter's AIGC entries."""
    text = decode_text(data, source, limits)
    carriers = []
    fm = front_matter(text)
    if fm is not None:
        for a, _, value in _aigc_entries(text[fm[0]: fm[1]], 0):
            line = text.count("\n", 0, fm[0] + a) + 1
            carriers.append(Carrier("front-matter", f"front matter AIGC (line {line})", value))
    return MarkdownFile(source, 0, 0, 1, carriers, None, data, limits, text=text)


register(sys.modules[__name__])
