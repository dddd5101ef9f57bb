"""The invisible carrier in a token stream, as the tokens come: nothing is held back.

A language model's output is usually Markdown, arriving a few characters at a time. The carrier
goes at the end of the first word of each paragraph (a paragraph starts the stream and follows
every blank line): the word is known to have ended when the character after it arrives, so the
carrier is put just before that character, in whichever token holds it. No carrier goes in a
fenced code block, a code span, a tag, a URL, a character reference, a list number or a link
label, the places where an invisible character would change what the text means or does.
"""

from __future__ import annotations

from .text import carrier

__all__ = ["CarrierStream"]

_URL_WORDS = frozenset({"http", "https", "ftp", "mailto", "www", "file", "data"})


def _is_word(ch: str) -> bool:
    return ch.isalnum() or (ch.isprintable() and not ch.isspace() and _is_mark(ch))


def _is_mark(ch: str) -> bool:
    import unicodedata

    return unicodedata.category(ch) in ("Mn", "Mc", "Me") or "\ufe00" <= ch <= "\ufe0f"


class CarrierStream:
    """Put the carrier into streamed text: ``feed(token)`` returns it marked, ``close()`` the end."""

    def __init__(self, payload: int) -> None:
        self.mark = carrier(payload)
        self._pending = True  # the current paragraph has no carrier yet
        self._line = ""  # the current line's first characters (block syntax lives there)
        self._line_blank = True
        self._fence: str | None = None  # the open code fence's marker
        self._fence_line = False  # this line opens or closes a fence
        self._ticks = 0  # length of the backtick run being read
        self._span = 0  # length of the open code span's backticks (0: none)
        self._tag = False
        self._url = False
        self._entity = False
        self._word = ""  # the word being read (its first characters)
        self._before_word = ""

    def feed(self, token: str) -> str:
        """The token with the carrier put in where a paragraph's first word ended."""
        out = []
        for ch in token:
            if self._at_word_end(ch):
                out.append(self.mark)
                self._pending = False
            self._advance(ch)
            out.append(ch)
        return "".join(out)

    def close(self) -> str:
        """What ends the stream: the carrier, when the last paragraph's first word ends it."""
        if self._word and self._pending and self._word_counts(""):
            self._pending = False
            return self.mark
        return ""

    def _word_counts(self, nxt: str) -> bool:
        if self._fence or self._fence_line or self._span or self._tag or self._url:
            return False
        if self._entity or self._before_word in ("&", "#"):
            return False
        if self._word.lower() in _URL_WORDS and nxt in (":", "."):
            return False
        if self._word.isdigit() and nxt in (".", ")") and not self._line.strip(" \t>-*+")[
                : -len(self._word)].strip():
            return False  # an ordered list's number
        return nxt != "]"  # a link label may be a reference: the next word gets it

    def _at_word_end(self, ch: str) -> bool:
        return bool(self._pending and self._word and not _is_word(ch) and self._word_counts(ch))

    def _advance(self, ch: str) -> None:
        if ch == "\n":
            self._end_line()
            return
        if _is_word(ch) and not (self._span or self._tag):
            if not self._word:
                self._before_word = self._line[-1:] if self._line else ""
            if len(self._word) < 16:
                self._word += ch
        else:
            self._word = ""
        if ch == "`":
            self._ticks += 1
        elif self._ticks:
            self._close_ticks()
        if self._line_blank and not ch.isspace():
            self._line_blank = False
        if len(self._line) < 64:
            self._line += ch
        head = self._line.lstrip(" ")
        if (head.startswith(("```", "~~~")) and len(self._line) - len(head) <= 3
                and (self._fence is None or head[0] == self._fence[0])):
            self._fence_line = True
        if ch == "<" and not self._span:
            self._tag = True
        elif ch == ">":
            self._tag = False
        if ch.isspace():
            self._url = False
            self._entity = False
        elif ch == "&":
            self._entity = True
        elif ch == ";":
            self._entity = False
        if ch in ":." and self._word_before_url():
            self._url = True

    def _word_before_url(self) -> bool:
        tail = self._line[:-1].rsplit(None, 1)[-1] if self._line[:-1].strip() else ""
        return tail.lower().lstrip("(<[*_") in _URL_WORDS

    def _close_ticks(self) -> None:
        if self._fence is None and not self._fence_line:
            if self._span == 0:
                self._span = self._ticks
            elif self._span == self._ticks:
                self._span = 0
        self._ticks = 0

    def _end_line(self) -> None:
        if self._ticks:
            self._close_ticks()
        if self._fence_line:
            head = self._line.strip()
            marker = head[: len(head) - len(head.lstrip(head[0]))] if head else ""
            if self._fence is None:
                self._fence = marker
            elif len(marker) >= len(self._fence) and not head[len(marker):].strip():
                self._fence = None
            self._pending = True
        elif self._line_blank and self._fence is None:
            self._pending = True  # a blank line: a new paragraph begins
            self._span = 0  # code spans do not cross paragraphs
        self._line, self._line_blank, self._fence_line = "", True, False
        self._word, self._tag, self._url, self._entity = "", False, False, False
