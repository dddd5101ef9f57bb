"""Where an invisible carrier may go in a paragraph of Markdown or HTML text: after its first word.

Not after the first character, as in plain text: that would split Markdown's block markers
("#", "-", "1.", ">"), open code spans, tags, link destinations and URLs. The first word is
the first run of letters and digits (with the marks that attach to them) outside those; the
carrier goes right after it, where it joins nothing and breaks nothing.
"""

from __future__ import annotations

import re

from .._kernels_py import _MARK

__all__ = ["first_word_end"]

_BLOCK_MARKERS = re.compile(r"[ \t]*(?:(?:#{1,6}|>|[-*+]|\d{1,9}[.)])(?=[ \t])[ \t]*|\|[ \t]*)*")
_REFERENCE = re.compile(r"[ \t]*\[[^\]\n]+\]:")  # a link reference or footnote definition
_END = re.compile(r"\n[ \t\r]*\n")
_TOKEN = re.compile(rf"(`+)|<[^>\n]*>|\]\([^)\n]*\)|&#?\w+;|(?:https?|ftp)://[^\s<>)\]]*|"
                    rf"www\.[^\s<>)\]]*|((?:[^\W_][{_MARK}]*)+)")


def first_word_end(text: str, pos: int, *, markdown: bool) -> int | None:
    """The offset just after the first word of the paragraph at ``pos``; None if it has none."""
    end_m = _END.search(text, pos)
    end = end_m.start() if end_m else len(text)
    if markdown:
        if _REFERENCE.match(text, pos, end):
            return None  # a carrier would change the reference's label
        pos = _BLOCK_MARKERS.match(text, pos, end).end()
    while True:
        m = _TOKEN.search(text, pos, end)
        if m is None:
            return None
        if m.group(2):
            return m.end()
        if m.group(1) and markdown:  # a code span: skip to its closing run of backticks
            close = re.compile(rf"(?<!`){m.group(1)}(?!`)").search(text, m.end(), end)
            pos = close.end() if close else m.end()
        else:
            pos = m.end()
