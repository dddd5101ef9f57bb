"""PDF objects (ISO 32000-1 7.3): a bounded parser and a canonical serializer.

Only what the PDF handler reads and writes: dictionaries, arrays, names, strings, numbers,
booleans, null, indirect references, and the ``N G obj ... endobj`` frame with an optional
stream. Parsing never recurses deeper than ``MAX_DEPTH``; every failure is a ``SyntaxProblem``
carrying the offset, which the caller turns into a CorruptInput naming the file. The
serializer is canonical: serializing a parsed value, parsing it again and serializing once
more gives the same bytes (the PDF handler relies on this to recognise its own updates).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

__all__ = [
    "MAX_DEPTH",
    "Name",
    "HexString",
    "Real",
    "Ref",
    "Stream",
    "SyntaxProblem",
    "parse_value",
    "parse_indirect",
    "serialize",
    "decode_text",
    "encode_text",
]

MAX_DEPTH = 64  # arrays/dictionaries nested deeper are refused (real files nest a few levels)

_WS = b"\x00\t\n\x0c\r "
_REGULAR = rb"[^\x00\t\n\x0c\r ()<>\[\]{}/%]"
_SKIP_RE = re.compile(rb"(?:[\x00\t\n\x0c\r ]+|%[^\r\n]*)*")
_NAME_RE = re.compile(rb"/(" + _REGULAR + rb"*)")
_NUMBER_RE = re.compile(rb"[+-]?(?:\d+(\.\d*)?|\.\d+)")
_SPACE = rb"[\x00\t\n\x0c\r ]+"
_PAIR = rb"(\d{1,10})" + _SPACE + rb"(\d{1,5})" + _SPACE  # "num gen " of "R" and "obj"
_REF_RE = re.compile(_PAIR + rb"R(?!" + _REGULAR + b")")
_KEYWORD_RE = re.compile(_REGULAR + b"+")
_HEX_RE = re.compile(rb"<([0-9A-Fa-f\x00\t\n\x0c\r ]*)>")
_LITERAL_STOP_RE = re.compile(rb"[\\()\r]")
_OBJ_RE = re.compile(_PAIR + rb"obj(?!" + _REGULAR + b")")
_STREAM_RE = re.compile(rb"stream(?:\r\n|\n|\r)")
_ENDSTREAM_RE = re.compile(rb"[\x00\t\n\x0c\r ]*endstream")
_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b",
            ord("f"): b"\x0c", ord("("): b"(", ord(")"): b")", ord("\\"): b"\\"}  # fmt: skip


class SyntaxProblem(Exception):
    """Malformed PDF syntax at ``offset`` (relative to the bytes that were parsed)."""

    def __init__(self, reason: str, offset: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.offset = offset


class Name(bytes):
    """A PDF name, decoded (``#xx`` escapes resolved), without the slash."""


class HexString(bytes):
    """A string written as ``<hex>``: kept apart so rewriting keeps its form."""


class Real(bytes):
    """A real number, kept as its token so rewriting keeps its exact digits."""


class Ref(NamedTuple):
    """An indirect reference ``num gen R``."""

    num: int
    gen: int


@dataclass(frozen=True)
class Stream:
    """A stream object: its dictionary and where its raw (still encoded) bytes lie."""

    dict: dict
    start: int
    end: int


def _skip(data: bytes, pos: int) -> int:
    return _SKIP_RE.match(data, pos).end()  # type: ignore[union-attr]  # matches the empty string


def _name(raw: bytes, pos: int) -> Name:
    if b"#" not in raw:
        return Name(raw)
    out, i = bytearray(), 0
    while i < len(raw):
        if raw[i] == 0x23:  # '#'
            digits = raw[i + 1 : i + 3]
            if len(digits) != 2 or not all(c in b"0123456789abcdefABCDEF" for c in digits):
                raise SyntaxProblem("bad #xx escape in a name", pos)
            out.append(int(digits, 16))
            i += 3
        else:
            out.append(raw[i])
            i += 1
    return Name(bytes(out))


def _literal(data: bytes, pos: int) -> tuple[bytes, int]:
    """Parse a literal string whose '(' is at ``pos``; return (bytes, offset past ')')."""
    out, depth, i = bytearray(), 1, pos + 1
    while True:
        m = _LITERAL_STOP_RE.search(data, i)
        if m is None:
            raise SyntaxProblem("unterminated string", pos)
        at = m.start()
        out += data[i:at]
        c = data[at]
        i = at + 1
        if c == 0x28:  # '('
            depth += 1
            out.append(c)
        elif c == 0x29:  # ')'
            depth -= 1
            if depth == 0:
                return bytes(out), i
            out.append(c)
        elif c == 0x0D:  # a raw CR or CRLF in a string reads as LF
            out.append(0x0A)
            if data[i : i + 1] == b"\n":
                i += 1
        else:
            i = _escape(data, i, out, pos)


def _escape(data: bytes, i: int, out: bytearray, pos: int) -> int:
    """Decode the escape after a backslash at ``i - 1`` into ``out``; return the next offset."""
    if i >= len(data):
        raise SyntaxProblem("unterminated string", pos)
    c = data[i]
    if c in _ESCAPES:
        out += _ESCAPES[c]
        return i + 1
    if 0x30 <= c <= 0x37:  # up to three octal digits
        j = i
        while j < i + 3 and j < len(data) and 0x30 <= data[j] <= 0x37:
            j += 1
        out.append(int(data[i:j], 8) & 0xFF)
        return j
    if c == 0x0D:  # a backslash before an end of line continues the string
        return i + 2 if data[i + 1 : i + 2] == b"\n" else i + 1
    if c == 0x0A:
        return i + 1
    out.append(c)  # an unknown escape is the character itself
    return i + 1


def _hex(data: bytes, pos: int) -> tuple[HexString, int]:
    m = _HEX_RE.match(data, pos)
    if m is None:
        raise SyntaxProblem("malformed hex string", pos)
    digits = bytes(c for c in m.group(1) if c not in _WS)
    if len(digits) % 2:
        digits += b"0"  # an odd digit count means a trailing 0 (7.3.4.3)
    return HexString(bytes.fromhex(digits.decode("ascii"))), m.end()


def _number(data: bytes, pos: int) -> tuple[Any, int]:
    ref = _REF_RE.match(data, pos)
    if ref is not None:
        return Ref(int(ref.group(1)), int(ref.group(2))), ref.end()
    m = _NUMBER_RE.match(data, pos)
    if m is None:
        raise SyntaxProblem("malformed number", pos)
    token = m.group(0)
    if len(token) > 40:  # no real number is this long; int() would refuse thousands of digits
        raise SyntaxProblem("number too long", pos)
    if m.group(1) is None and b"." not in token:
        return int(token), m.end()
    return Real(token), m.end()


def _keyword(data: bytes, pos: int) -> tuple[Any, int]:
    m = _KEYWORD_RE.match(data, pos)
    if m is None:
        raise SyntaxProblem(f"unexpected byte {data[pos:pos + 1]!r}", pos)
    word = m.group(0)
    if word in (b"true", b"false"):
        return word == b"true", m.end()
    if word == b"null":
        return None, m.end()
    raise SyntaxProblem(f"unexpected keyword {word[:20]!r}", pos)


def _container(data: bytes, pos: int, depth: int, close: bytes) -> tuple[list, int]:
    """The values of an array or dictionary body up to ``close``; return them and the end."""
    if depth >= MAX_DEPTH:
        raise SyntaxProblem(f"objects nested more than {MAX_DEPTH} deep", pos)
    items: list = []
    while True:
        pos = _skip(data, pos)
        if data.startswith(close, pos):
            return items, pos + len(close)
        if pos >= len(data):
            raise SyntaxProblem("unterminated array or dictionary", pos)
        value, pos = parse_value(data, pos, depth + 1)
        items.append(value)


def _dictionary(data: bytes, pos: int, depth: int) -> tuple[dict, int]:
    items, end = _container(data, pos + 2, depth, b">>")
    if len(items) % 2:
        raise SyntaxProblem("dictionary with a key and no value", pos)
    out: dict = {}
    for key, value in zip(items[::2], items[1::2]):
        if not isinstance(key, Name):
            raise SyntaxProblem("dictionary key is not a name", pos)
        out[key] = value  # a repeated key: the last one counts, as in most readers
    return out, end


def parse_value(data: bytes, pos: int, depth: int = 0) -> tuple[Any, int]:
    """Parse one direct object at ``pos`` (whitespace and comments first); return it and its end."""
    pos = _skip(data, pos)
    if pos >= len(data):
        raise SyntaxProblem("unexpected end of data", pos)
    c = data[pos]
    if c == 0x2F:  # '/'
        m = _NAME_RE.match(data, pos)
        assert m is not None  # '/' alone is the empty name
        return _name(m.group(1), pos), m.end()
    if data.startswith(b"<<", pos):
        return _dictionary(data, pos, depth)
    if c == 0x3C:  # '<'
        return _hex(data, pos)
    if c == 0x28:  # '('
        return _literal(data, pos)
    if c == 0x5B:  # '['
        return _container(data, pos + 1, depth, b"]")
    if c in b"+-.0123456789":
        return _number(data, pos)
    return _keyword(data, pos)


def parse_indirect(
    data: bytes, pos: int, length_of: Callable[[Any], int]
) -> tuple[int, int, Any, int]:
    """Parse ``num gen obj <value> [stream ... endstream]`` at ``pos``: (num, gen, value, end).

    ``length_of`` turns a stream's /Length value (an integer or a reference) into an integer.
    """
    head = _OBJ_RE.match(data, _skip(data, pos))
    if head is None:
        raise SyntaxProblem("no 'N G obj' header", pos)
    num, gen = int(head.group(1)), int(head.group(2))
    value, end = parse_value(data, head.end())
    if isinstance(value, dict):
        m = _STREAM_RE.match(data, _skip(data, end))
        if m is not None:
            length = length_of(value.get(Name(b"Length")))
            start = m.end()
            if length < 0 or start + length > len(data):
                raise SyntaxProblem(f"stream /Length {length} runs past the end", start)
            tail = _ENDSTREAM_RE.match(data, start + length)
            if tail is None:
                raise SyntaxProblem(f"no 'endstream' after /Length {length} bytes", start)
            return num, gen, Stream(value, start, start + length), tail.end()
    return num, gen, value, end


# -- serialization ---------------------------------------------------------------------------

_NAME_PLAIN = frozenset(range(0x21, 0x7F)) - frozenset(b"#()<>[]{}/%")
_LITERAL_ESCAPE = {0x5C: b"\\\\", 0x28: b"\\(", 0x29: b"\\)", 0x0D: b"\\r", 0x0A: b"\\n"}


def _serialize_name(name: bytes) -> bytes:
    return b"/" + b"".join(
        bytes([c]) if c in _NAME_PLAIN else b"#%02X" % c for c in name
    )


def _serialize_literal(value: bytes) -> bytes:
    # Escaping every parenthesis keeps the string balanced whatever it holds; CR and LF are
    # escaped because a raw CR would be read back as LF.
    return b"(" + b"".join(_LITERAL_ESCAPE.get(c, bytes([c])) for c in value) + b")"


def serialize(value: Any) -> bytes:
    """The canonical PDF syntax of a value made of the types ``parse_value`` returns."""
    if value is None:
        return b"null"
    if value is True or value is False:
        return b"true" if value else b"false"
    if isinstance(value, Ref):
        return b"%d %d R" % (value.num, value.gen)
    if isinstance(value, int):
        return b"%d" % value
    if isinstance(value, Real):
        return bytes(value)
    if isinstance(value, Name):
        return _serialize_name(value)
    if isinstance(value, HexString):
        return b"<" + value.hex().upper().encode("ascii") + b">"
    if isinstance(value, bytes):
        return _serialize_literal(value)
    if isinstance(value, list):
        return b"[" + b" ".join(serialize(v) for v in value) + b"]"
    if isinstance(value, dict):
        body = b"".join(_serialize_name(k) + b" " + serialize(v) + b"\n" for k, v in value.items())
        return b"<<\n" + body + b">>"
    raise TypeError(f"cannot serialize {type(value).__name__} as a PDF object")


# -- text strings (7.9.2.2) ------------------------------------------------------------------

# PDFDocEncoding differs from Latin-1 in 0x18-0x1F and 0x80-0xA0 (Annex D).
_PDFDOC = {
    **dict(zip(range(0x18, 0x20), "\u02d8\u02c7\u02c6\u02d9\u02dd\u02db\u02da\u02dc")),
    **dict(zip(range(0x80, 0x9F), "\u2022\u2020\u2021\u2026\u2014\u2013\u0192\u2044\u2039\u203a"
                                  "\u2212\u2030\u201e\u201c\u201d\u2018\u2019\u201a\u2122\ufb01"
                                  "\ufb02\u0141\u0152\u0160\u0178\u017d\u0131\u0142\u0153\u0161"
                                  "\u017e")),
    0xA0: "\u20ac",
}  # fmt: skip


def decode_text(value: bytes) -> str:
    """A PDF text string as str: UTF-16BE or UTF-8 with a byte-order mark, else PDFDocEncoding."""
    if value.startswith(b"\xfe\xff"):
        return value[2:].decode("utf-16-be", "replace")
    if value.startswith(b"\xef\xbb\xbf"):
        return value[3:].decode("utf-8", "replace")
    return "".join(_PDFDOC.get(c, chr(c)) for c in value)


def encode_text(text: str) -> bytes:
    """str as a PDF text string: ASCII as itself (PDFDocEncoding), anything else UTF-16BE."""
    if text.isascii() and not any(0x18 <= ord(c) < 0x20 for c in text):
        return text.encode("ascii")
    return b"\xfe\xff" + text.encode("utf-16-be")
