"""The exceptions labelkit raises for anything a user can cause."""

from __future__ import annotations

__all__ = [
    "named",
    "LabelkitError",
    "UnsupportedFormat",
    "CorruptInput",
    "LimitExceeded",
    "InvalidRecord",
    "DuplicateLabel",
    "KeyFileError",
    "PolicyError",
]


class LabelkitError(Exception):
    """Base class: a failure the user can cause, with the file it concerns."""

    def __init__(self, message: str, *, source: str | None = None) -> None:
        self.source = source
        self.reason = message
        super().__init__(f"{source}: {message}" if source else message)


class UnsupportedFormat(LabelkitError):
    """The bytes are not a format labelkit handles (sniffed by magic bytes)."""


class CorruptInput(LabelkitError):
    """The file claims a supported format but its structure is broken or truncated."""


class LimitExceeded(CorruptInput):
    """The file exceeds a safety limit (pixels, metadata size) set to stop crafted input."""


class InvalidRecord(LabelkitError):
    """An AIGC record breaks GB 45438 Annex E (keys, types, characters, codes)."""


class DuplicateLabel(LabelkitError):
    """A file holds more than one AIGC label where exactly one is required."""


class KeyFileError(LabelkitError):
    """A key file is missing, unreadable or of the wrong kind."""


class PolicyError(LabelkitError):
    """A labeling policy is invalid (e.g. a visible text without an AI element)."""


class named:
    """Context manager: give a LabelkitError raised inside without a file name the name ``source``."""

    def __init__(self, source: str) -> None:
        self.source = source

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if isinstance(exc, LabelkitError) and exc.source is None:
            renamed = type(exc)(exc.reason, source=self.source)
            raise renamed from exc
        return False
