"""Loading the generating model's tokenizer for the token watermark's detector, from a spec.

The detector works on token ids, so it needs the very tokenizer the model sampled with. A spec
names one without code: ``tiktoken:ENCODING`` (tiktoken's named encodings; tiktoken fetches an
encoding's file once into its cache unless ``TIKTOKEN_CACHE_DIR`` already holds it), a
``tokenizer.json`` file (Hugging Face tokenizers) or a model directory (transformers'
AutoTokenizer, local files only). Each library is optional and imported only when named; a
caller with a tokenizer object passes it to ``verify`` directly.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import LabelkitError

__all__ = ["load_tokenizer"]


def load_tokenizer(spec: str) -> Any:
    """A tokenizer with ``encode(text)`` from ``tiktoken:NAME``, a tokenizer.json or a folder."""
    try:
        if spec.startswith("tiktoken:"):
            import tiktoken

            return tiktoken.get_encoding(spec.partition(":")[2])
        if os.path.isdir(spec):
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(spec, local_files_only=True)
        if os.path.isfile(spec):
            from tokenizers import Tokenizer

            return Tokenizer.from_file(spec)
    except ImportError as exc:
        raise LabelkitError(f"tokenizer {spec!r} needs the {exc.name or 'missing'} package "
                            "(pip install it)") from None
    except Exception as exc:  # each library has its own errors for a bad file or name
        raise LabelkitError(f"tokenizer {spec!r} could not be loaded: {exc}") from None
    raise LabelkitError(f"tokenizer {spec!r}: not tiktoken:NAME, a tokenizer.json file or a "
                        "model folder")
