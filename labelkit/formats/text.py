"""Plain text: no metadata field, so the invisible carrier is its implicit label.

The practice guides fix no metadata carrier for plain text (spec section 2, "uncertain");
labelkit writes the invisible carrier (``watermark.text``) and the notice, and the verifier
reports the carrier in place of a metadata label. This handler is tried last: any UTF-8 text
that no other handler claimed. A name ending in .md or .html makes it Markdown or HTML, since
their content alone does not always say so.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import ClassVar

from ..errors import PolicyError
from ..limits import Limits
from . import register
from ._text import TextFile, decode_text, looks_like_text

__all__ = ["NAME", "MIME", "EXTENSIONS", "MODALITY", "HAS_METADATA", "accept", "parse",
           "PlainTextFile"]

NAME = "text"
MIME = "text/plain"
EXTENSIONS = (".txt",)
MODALITY = "text"
HAS_METADATA = False


def accept(prefix: bytes) -> bool:
    """UTF-8 text without NUL or control characters (the last handler tried)."""
    return looks_like_text(prefix)


@dataclass
class PlainTextFile(TextFile):
    """A parsed plain text file."""

    format: str = NAME
    essence_hash: ClassVar[str] = "blake3"

    def with_label(self, label_json: str, *, xmp: bytes | None = None,
                   metadata_from: TextFile | None = None) -> bytes:
        """Plain text has no metadata field: refused (its implicit label is the carrier)."""
        raise PolicyError("plain text has no metadata field for the seven-field label; its "
                          "implicit label is the invisible carrier", source=self.source)


def parse(data: bytes, source: str, limits: Limits):
    """Decode UTF-8 text; by its name, hand Markdown and HTML to their handlers."""
    ext = os.path.splitext(source)[1].lower()
    if ext in (".md", ".markdown"):
        from . import markdown

        return markdown.parse(data, source, limits)
    if ext in (".html", ".htm", ".xhtml"):
        from . import html

        return html.parse(data, source, limits)
    text = decode_text(data, source, limits)
    return PlainTextFile(source, 0, 0, 1, [], None, data, limits, text=text)


register(sys.modules[__name__])
