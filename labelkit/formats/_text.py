"""What the text handlers (plain text, Markdown, HTML) share: decoding, sniffing, the essence.

Text is UTF-8 (a byte-order mark is kept); anything else is refused with the offset of the
first bad byte, since guessing an encoding would rewrite the user's bytes. The essence the
signature binds is the normalised text: the label's own metadata block removed (each handler
says which), every invisible carrier removed, line endings made LF and the rest NFC. Line-ending
conversion, Unicode normalisation, relabeling and other tools' metadata edits (front matter,
other meta tags stay content in HTML) leave it unchanged; a changed character does not.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Iterator

from ..errors import CorruptInput, LimitExceeded
from ..limits import Limits
from ..watermark.text import strip_carriers
from . import ParsedFile

__all__ = ["BOM", "TextFile", "decode_text", "looks_like_text", "newline_of", "normalise"]

BOM = "\ufeff"


def looks_like_text(prefix: bytes) -> bool:
    """Whether a file's first bytes can start UTF-8 text (no NUL, no control junk)."""
    if not prefix or b"\0" in prefix:
        return False
    try:
        prefix.decode("utf-8")
    except UnicodeDecodeError as exc:
        # the prefix may cut a character in two: only an error in its last 3 bytes is allowed
        if exc.start < len(prefix) - 3 or exc.reason != "unexpected end of data":
            return False
    controls = sum(1 for b in prefix if b < 0x20 and b not in (0x09, 0x0A, 0x0C, 0x0D, 0x1B))
    return controls == 0


def decode_text(data: bytes, source: str, limits: Limits) -> str:
    """The text of UTF-8 ``data`` (BOM kept as U+FEFF), or CorruptInput naming the bad byte."""
    if len(data) > limits.max_file_bytes:
        raise LimitExceeded(f"text of {len(data)} bytes exceeds the limit", source=source)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CorruptInput(f"not UTF-8: byte {data[exc.start]:#04x} at offset {exc.start} "
                           f"(line {line}) {exc.reason}; labelkit reads UTF-8 text only",
                           source=source) from None
    if "\0" in text:
        raise CorruptInput(f"a NUL character at offset {text.index(chr(0))}: not text",
                           source=source)
    return text


def newline_of(text):
    """The dominant line ending of a str (or UTF-8 bytes), for lines labelkit adds (LF if none)."""
    crlf_, lf_, cr_ = ("\r\n", "\n", "\r") if isinstance(text, str) else (b"\r\n", b"\n", b"\r")
    crlf = text.count(crlf_)
    lf = text.count(lf_) - crlf
    cr = text.count(cr_) - crlf
    best = max((lf, lf_), (crlf, crlf_), (cr, cr_))
    return best[1] if best[0] else lf_


def normalise(text: str) -> str:
    """The signed form of ``text``: carriers and BOM removed, line endings LF, NFC."""
    text = strip_carriers(text).replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text.removeprefix(BOM))


@dataclass
class TextFile(ParsedFile):
    """A parsed text file: its text, and the part of it the label's metadata occupies."""

    text: str = field(default="", repr=False)
    kind: str = "text"

    def content(self) -> str:
        """The text without the label's metadata block (handlers override)."""
        return self.text

    def essence(self) -> Iterator[bytes]:
        """The normalised text without its carriers and label metadata, UTF-8."""
        yield normalise(self.content()).encode("utf-8")

    def with_text(self, text: str) -> bytes:
        """Encode ``text`` as this file was (UTF-8)."""
        return text.encode("utf-8")
