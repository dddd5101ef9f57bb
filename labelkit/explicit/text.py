"""The text notice: placed at the start and/or end of plain text, Markdown and HTML, and streams.

GB 45438 asks text to carry a notice with an AI element and a generation element ("AI生成"
by default) at the start, the end or a suitable place in between. labelkit puts it where it
renders as a paragraph of its own: after Markdown's front matter (and, at the end, after
closing a code fence left open, so that it never renders as code), inside HTML's body as a
``<p class="aigc-notice">`` (never inside a tag, an attribute or the head). Labeling twice does
not add a second notice. Token streams get the notice before their first token and/or after
their last, with nothing held back.
"""

from __future__ import annotations

import html as html_escape
import re
from dataclasses import dataclass
from typing import AsyncIterable, AsyncIterator, Iterable, Iterator

from ..formats import html as html_format
from ..formats import markdown
from ..formats._text import BOM, newline_of
from ..watermark.text import strip_carriers

__all__ = ["NoticeSpan", "add_notice", "add_notice_utf8", "find_notices", "notice_stream", "anotice_stream",
           "HTML_CLASS"]

HTML_CLASS = "aigc-notice"
# An explicit label's two elements, close together (GB 45438 5.1).
_NOTICE_RE = re.compile(r"(?:AI|人工智能)[\ufe00-\ufe0f]*(?:[^\n\ufe00-\ufe0f][\ufe00-\ufe0f]*)"
                        r"{0,8}?(?:生成|合成)", re.I)  # carriers may sit inside
_EDGE_CHARS = 500  # a notice this close to the content's start or end is "at" it
_SAME_NOTICE_GAP = 40


@dataclass(frozen=True)
class NoticeSpan:
    """A notice found in a text: its offsets, where it sits, and its words."""

    start: int
    end: int
    where: str  # "start", "end" or "middle"
    text: str

    def to_dict(self) -> dict:
        """A JSON-ready summary."""
        return {"start": self.start, "end": self.end, "where": self.where, "text": self.text}


def _html_notice(notice: str) -> str:
    return f'<p class="{HTML_CLASS}">{html_escape.escape(notice)}</p>'


def _content_range(text: str, kind: str) -> tuple[int, int]:
    """Where the content a reader sees begins and ends."""
    if kind == "markdown":
        return markdown.body_start(text), len(text)
    if kind == "html":
        lay = html_format.layout(text)
        start = lay.body_open_end if lay.body_open_end is not None else 0
        end = next((p for p in (lay.body_close, lay.html_close) if p is not None), len(text))
        return start, end
    return (1 if text.startswith(BOM) else 0), len(text)


_LEADING_META = re.compile(r'(?:\s*<meta\s+name="?AIGC"?[^>]*>)*\s*', re.I)


def _has_notice(text: str, pos: int, notice: str, kind: str, at_end: bool) -> bool:
    piece = _html_notice(notice) if kind == "html" else notice
    if at_end:
        region = text[:pos].rstrip()
    elif kind == "html":  # a fragment's notice follows the label's meta element
        region = text[_LEADING_META.match(text, pos).end():]
    else:
        region = text[pos:].lstrip()
    return region.endswith(piece) if at_end else region.startswith(piece)


def add_notice_utf8(data: bytes, notice: str, placement: str) -> bytes:
    """Plain UTF-8 text with ``notice`` at its start, end or both, without decoding it."""
    nl, block = newline_of(data), notice.encode("utf-8")
    if placement in ("end", "both") and not data.rstrip().endswith(block):
        sep = b"" if not data or data.endswith((b"\n", b"\r")) else nl
        data = data + sep + (nl if data.strip() else b"") + block + nl
    start = 3 if data.startswith(BOM.encode("utf-8")) else 0
    if placement in ("start", "both") and not data[start:].lstrip().startswith(block):
        data = data[:start] + block + nl + nl + data[start:]
    return data


def add_notice(text: str, notice: str, placement: str, kind: str = "text") -> str:
    """``text`` with ``notice`` at its start, end or both ("text", "markdown" or "html")."""
    if kind == "text":
        return add_notice_utf8(text.encode("utf-8"), notice, placement).decode("utf-8")
    nl = newline_of(text)
    start, end = _content_range(text, kind)
    block = _html_notice(notice) if kind == "html" else notice
    if placement in ("end", "both") and not _has_notice(text, end, notice, kind, at_end=True):
        tail = ""
        if kind == "markdown":
            fence = markdown.open_fence(text)
            if fence is not None:  # an open fence runs to the end: close it, or this is code
                tail = ("" if text.endswith(("\n", "\r")) else nl) + fence
        head = text[:end] + tail
        sep = "" if not head or head.endswith(("\n", "\r")) else nl
        if kind != "html":
            sep += nl if head.strip() else ""
        text = head + sep + block + nl + text[end:]
    if placement in ("start", "both") and not _has_notice(text, start, notice, kind,
                                                          at_end=False):
        after = nl if kind == "html" else nl + nl
        lead = nl if kind == "html" and start and text[start - 1] not in "\r\n" else ""
        text = text[:start] + lead + block + after + text[start:]
    return text


def find_notices(text: str, kind: str = "text") -> list[NoticeSpan]:
    """Every notice in ``text`` and where it sits relative to the content a reader sees."""
    start, end = _content_range(text, kind)
    matches = list(_NOTICE_RE.finditer(text, start, end))
    groups: list[list[re.Match]] = []
    for m in matches:  # "【AI生成】本内容由人工智能生成" is one notice, not two
        if groups and m.start() - groups[-1][-1].end() <= _SAME_NOTICE_GAP:
            groups[-1].append(m)
        else:
            groups.append([m])
    visible = (lambda t: re.sub(r"<[^>]*>", "", t)) if kind == "html" else (lambda t: t)
    spans = []
    for g in groups:
        a, b = g[0].start(), g[-1].end()
        before = len(visible(text[start:a]).strip())
        after = len(visible(text[b:end]).strip())
        where = ("start" if before <= min(after, _EDGE_CHARS) else
                 "end" if after <= _EDGE_CHARS else "start" if before <= _EDGE_CHARS else
                 "middle")
        spans.append(NoticeSpan(a, b, where, strip_carriers(text[a:b])))
    return spans


def notice_stream(tokens: Iterable[str], notice: str, placement: str = "start",
                  separator: str = "\n\n") -> Iterator[str]:
    """Yield the notice (and ``separator``) first and/or last around ``tokens``, as they come."""
    if placement in ("start", "both"):
        yield notice + separator
    for token in tokens:
        yield token
    if placement in ("end", "both"):
        yield separator + notice


async def anotice_stream(tokens: AsyncIterable[str], notice: str, placement: str = "start",
                         separator: str = "\n\n") -> AsyncIterator[str]:
    """``notice_stream`` for an async iterator of tokens (language-model servers)."""
    if placement in ("start", "both"):
        yield notice + separator
    async for token in tokens:
        yield token
    if placement in ("end", "both"):
        yield separator + notice
