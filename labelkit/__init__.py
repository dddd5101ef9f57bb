"""labelkit: label AI-generated content as GB 45438-2025 requires, and verify such labels."""

from __future__ import annotations

from .errors import (
    CorruptInput,
    DuplicateLabel,
    InvalidRecord,
    KeyFileError,
    LabelkitError,
    LimitExceeded,
    PolicyError,
    UnsupportedFormat,
)
from .labeler import Labeler, LabelResult
from .limits import DEFAULT_LIMITS, Limits
from .policy import ImagePolicy, Policy
from .record import AIGCRecord, new_produce_id
from .signing import PublicKey, SigningKey, generate_key, load_key, load_public_key
from .verify import Check, Report, read_record, verify
from .watermark import WatermarkKey

__version__ = "0.1.0"

__all__ = [
    "AIGCRecord",
    "Check",
    "CorruptInput",
    "DEFAULT_LIMITS",
    "DuplicateLabel",
    "ImagePolicy",
    "InvalidRecord",
    "KeyFileError",
    "LabelResult",
    "Labeler",
    "LabelkitError",
    "LimitExceeded",
    "Limits",
    "Policy",
    "PolicyError",
    "PublicKey",
    "Report",
    "SigningKey",
    "UnsupportedFormat",
    "WatermarkKey",
    "__version__",
    "generate_key",
    "load_key",
    "load_public_key",
    "new_produce_id",
    "read_record",
    "verify",
]
