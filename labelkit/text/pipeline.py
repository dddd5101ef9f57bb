"""Labeling text: plain text, Markdown and HTML files or strings, token streams, and documents.

Text gets every layer in the order of DESIGN.md: the notice (``explicit.text``, where the
format renders it as a paragraph of its own), the invisible carrier in every paragraph of prose
(``watermark.text``; never in code, tags or front matter), then, where the format has a
metadata field (Markdown's front matter, HTML's head), the seven-field label signed over the
normalised text without its carriers. Plain text has no such field: its carrier is its
implicit label, and the result says so. "present" and "omit" skip the notice only: the carrier
changes no character a reader sees, so it is always written when there is a key.

Documents (PDF, DOCX, XLSX, PPTX) are labeled in their metadata only: the notice inside a page
or a paragraph of a document is left to the application that made it (the result's notes say
so), and the file's content stays byte-identical.

``TextStreamLabeler`` labels a token stream as it is generated: the notice before the first
token and/or after the last, the carrier in each paragraph, nothing held back.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, AsyncIterable, AsyncIterator, Iterable, Iterator

from .. import formats
from ..errors import PolicyError
from ..explicit.text import add_notice, add_notice_utf8
from ..formats import html as html_format
from ..formats import markdown
from ..formats._text import TextFile
from ..record import AIGCRecord, new_produce_id
from ..watermark.text import insert_carriers_utf8, strip_carriers, strip_carriers_utf8
from ..watermark.text_stream import CarrierStream

if TYPE_CHECKING:
    from ..labeler import Labeler, LabelResult

__all__ = ["KINDS", "TextStreamLabeler", "label_text", "label_document"]

KINDS = ("text", "markdown", "html")
_NO_FIELD = "plain text has no metadata field: its implicit label is the invisible carrier"


def _parse(labeler: Labeler, data: bytes, kind: str | None, source: str) -> TextFile:
    if kind is None:
        container = formats.parse(data, source, labeler.limits)
        if not isinstance(container, TextFile):
            raise PolicyError(f"{container.format} is not text", source=source)
        return container
    if kind not in KINDS:
        raise PolicyError(f"text kind {kind!r} is not one of {', '.join(KINDS)}", source=source)
    return formats.handlers()[kind].parse(data, source, labeler.limits)


def _carry(labeler: Labeler, text: str, kind: str, payload: int, source: str) -> str:
    if kind == "markdown":
        return markdown.insert_carriers(text, payload)
    if kind == "html":
        return html_format.insert_carriers(text, payload, source)
    return insert_carriers_utf8(text.encode("utf-8"), payload).decode("utf-8")


def label_text(labeler: Labeler, data: bytes, kind: str | None, mode: str,
               produce_id: str | None, source: str) -> LabelResult:
    """Label UTF-8 text bytes (see the module doc); ``kind`` None sniffs (and asks the name)."""
    from ..labeler import LabelResult

    original = _parse(labeler, data, kind, source)
    produce_id = produce_id or new_produce_id()
    policy = labeler.policy.text
    layers: list[str] = []
    notes: list[str] = []
    payload = None
    if policy.carrier and labeler.policy.watermark:
        if labeler.watermark_key is None:
            notes.append("carrier skipped: no secret key to derive its payload from")
        else:
            payload = labeler.watermark_key.payload_for(produce_id)
    if original.format == "text":
        # Plain text stays UTF-8 bytes throughout (decoding text full of carriers costs more
        # than labeling it), and has no field for the seven-field label.
        out = strip_carriers_utf8(original._data)  # labeled before: they are put back
        if mode == "apply":
            out = add_notice_utf8(out, policy.notice_text, policy.placement)
            layers.append("explicit")
        if payload is not None:
            out = insert_carriers_utf8(out, payload)
            layers.append("watermark")
        record = AIGCRecord(label="1", content_producer=labeler.producer, produce_id=produce_id)
        return LabelResult(out, record, original.format, tuple(layers),
                           notes=(*notes, _NO_FIELD), watermark_payload=payload)
    # Carriers come off first (they are put back): a notice already there is then seen.
    kind, text = original.kind, strip_carriers(original.text)
    if mode == "apply":
        text = add_notice(text, policy.notice_text, policy.placement, kind)
        layers.append("explicit")
    if payload is not None:
        text = _carry(labeler, text, kind, payload, source)
        layers.append("watermark")
    labeled = formats.handlers()[original.format].parse(text.encode("utf-8"), source,
                                                       labeler.limits)
    result = labeler._finish(labeled, b"", None, None, produce_id, (*layers, "metadata"))
    return replace(result, notes=tuple(notes), watermark_payload=payload)


def label_document(labeler: Labeler, data: bytes, mode: str, produce_id: str | None,
                   source: str) -> LabelResult:
    """Label a PDF or Office document in its metadata; its content stays byte-identical."""
    container = formats.parse(data, source, labeler.limits)
    result = labeler._finish(container, b"", None, None, produce_id, ("metadata",))
    notes = ("no notice or carrier is written into a document's pages or paragraphs: the "
             "application that made it should show the notice",) if mode == "apply" else ()
    return replace(result, notes=notes)


class TextStreamLabeler:
    """Labels a token stream: ``feed(token)`` returns it labeled, ``close()`` what ends it.

    The notice comes before the first token and/or after the last (``Policy.text.placement``),
    the carrier after the first word of each paragraph; nothing is held back."""

    def __init__(self, labeler: Labeler, produce_id: str | None = None,
                 separator: str = "\n\n") -> None:
        self.produce_id = produce_id or new_produce_id()
        policy = labeler.policy.text
        self._notice, self._placement, self._sep = policy.notice_text, policy.placement, separator
        self.watermark_payload = None
        self._carrier = None
        if policy.carrier and labeler.policy.watermark and labeler.watermark_key is not None:
            self.watermark_payload = labeler.watermark_key.payload_for(self.produce_id)
            self._carrier = CarrierStream(self.watermark_payload)
        self._started = False
        self._labeler = labeler
        # Only with a ledger: what was sent, for the essence digest of its record at close().
        self._sent: list[str] | None = [] if labeler.ledger is not None else None

    def _open(self) -> str:
        self._started = True
        if self._placement not in ("start", "both"):
            return ""
        # The notice is a paragraph of its own, and carries the carrier like any other.
        return self._mark(self._notice + self._sep)

    def _mark(self, text: str) -> str:
        return self._carrier.feed(text) if self._carrier else text

    def feed(self, token: str) -> str:
        """The token, labeled (the first one is preceded by the notice)."""
        head = "" if self._started else self._open()
        out = head + self._mark(token)
        if self._sent is not None:
            self._sent.append(out)
        return out

    def close(self) -> str:
        """The end of the stream: the carrier's last word, and the notice at the end.

        With a ledger, the streamed item is recorded then, like any labeled text."""
        head = "" if self._started else self._open()
        tail = self._mark(self._sep + self._notice) if self._placement in ("end", "both") else ""
        out = head + tail + (self._carrier.close() if self._carrier else "")
        if self._sent is not None:
            self._sent.append(out)
            self._record("".join(self._sent))
            self._sent = None
        return out

    def _record(self, text: str) -> None:
        from ..labeler import LabelResult

        labeler = self._labeler
        record = AIGCRecord(content_producer=labeler.producer, produce_id=self.produce_id)
        layers = ("explicit",) + (("watermark",) if self._carrier else ())
        result = LabelResult(text.encode("utf-8"), record, "text", layers,
                             watermark_payload=self.watermark_payload)
        labeler._done(result, "apply", None, "<text stream>", "text")

    def wrap(self, tokens: Iterable[str]) -> Iterator[str]:
        """Label an iterator of tokens lazily."""
        for token in tokens:
            yield self.feed(token)
        end = self.close()
        if end:
            yield end

    async def awrap(self, tokens: AsyncIterable[str]) -> AsyncIterator[str]:
        """Label an async iterator of tokens lazily (language-model servers)."""
        async for token in tokens:
            yield self.feed(token)
        end = self.close()
        if end:
            yield end

