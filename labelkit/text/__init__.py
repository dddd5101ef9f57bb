"""Text: labeling plain text, Markdown, HTML and token streams, and documents' metadata.

``pipeline`` holds the flow; the notice is ``explicit.text``, the invisible carrier
``watermark.text`` (and ``watermark.text_stream`` for streams), the formats ``formats.text``,
``formats.markdown`` and ``formats.html``.
"""

from __future__ import annotations

from .pipeline import KINDS, TextStreamLabeler, label_document, label_text

__all__ = ["KINDS", "TextStreamLabeler", "label_document", "label_text"]
