"""Container formats: one module per format family, each registering itself.

A handler module defines::

    NAME: str                      # "png"
    MIME: str                      # "image/png"
    EXTENSIONS: tuple[str, ...]    # (".png",) - used for output naming only, never to sniff
    MODALITY: str                  # "image", later "video", "audio", "text"
    def accept(prefix: bytes) -> bool          # magic-byte test on the first 64 bytes
    def parse(data: bytes, source: str, limits: Limits) -> Container  # a ParsedFile subclass

and ends with ``register(sys.modules[__name__])``. ``_template.py`` is the starting point for a
new format. A module whose optional dependency is missing is listed by ``unavailable()`` with
the reason instead of failing at import.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import threading

from blake3 import blake3
from dataclasses import dataclass, field
from types import ModuleType
from typing import Iterable, Protocol

from ..errors import LimitExceeded, PolicyError, UnsupportedFormat
from ..limits import DEFAULT_LIMITS, Limits

__all__ = [
    "Carrier",
    "Container",
    "LabeledByParts",
    "ParsedFile",
    "register",
    "sniff",
    "parse",
    "handlers",
    "unavailable",
    "essence_digest",
    "modality_of",
    "load",
    "check_pixels",
    "check_count",
    "check_same_format",
    "icc_fits",
]

# Order matters only for speed: the most common formats are tried first.
_BUILTIN = ("jpeg", "png", "webp", "gif", "tiff", "isobmff", "matroska", "wav", "flac", "mp3",
            "ogg", "pdf", "office", "html", "markdown", "text")  # text last: any UTF-8 left


@dataclass(frozen=True)
class Carrier:
    """One place in a file that holds (or claims to hold) an AIGC label."""

    kind: str  # "xmp-element", "xmp-attribute", "exif-usercomment", "png-text", "png-itxt", ...
    location: str  # human-readable place in the file, e.g. "APP1 XMP segment at 0x14"
    text: str  # the value as found (JSON text, already unescaped from XML/EXIF framing)


class Container(Protocol):
    """A parsed file: what a handler's ``parse`` returns."""

    format: str  # handler NAME
    source: str  # file name for messages
    width: int
    height: int
    frames: int  # 1 for still images
    carriers: list[Carrier]  # every AIGC carrier found, in file order
    xmp: bytes | None  # the file's XMP packet (first one), if any

    def essence(self) -> Iterable[bytes | memoryview]:
        """Yield the byte ranges that carry the media (not its metadata), in file order."""

    def with_label(
        self,
        label_json: str,
        *,
        xmp: bytes | None = None,
        metadata_from: Container | None = None,
    ) -> bytes:
        """Return the whole file with exactly one AIGC label (XMP TC260:AIGC) = label_json.

        Every other AIGC carrier is removed; all other metadata and the media bytes are kept
        byte-identical. ``xmp``, when given, is the packet to merge into instead of the file's
        own (or the original's, with ``metadata_from``).

        ``metadata_from`` is for re-encoded pixels (the visible label): the parsed original, of
        the same format (else PolicyError). The result is this file's essence (so
        ``essence_digest`` of this container stays valid) with the original's metadata blocks
        instead of this file's own: JPEG APPn/COM segments (EXIF, ICC, IPTC...), PNG ancillary
        chunks, GIF comments and application extensions, WebP ICCP/EXIF/XMP/unknown chunks with
        VP8X flags to match, TIFF IFD0 tags other than image-structure and strip/tile tags.
        The original's AIGC carriers are handled as without it (exactly one label remains).
        A block that cannot describe new pixels is left behind, and each handler says which
        (e.g. an ICC profile for another colour space, JPEG MPF, PNG unsafe-to-copy chunks);
        a block that decides how pixels decode (JPEG APP14 Adobe) is essence, so it is the new
        encoding's.
        """


@dataclass
class ParsedFile:
    """The fields every handler's container has; each handler subclasses it with its structure."""

    source: str
    width: int
    height: int
    frames: int
    carriers: list[Carrier]
    xmp: bytes | None
    _data: bytes = field(repr=False)
    _limits: Limits = field(repr=False)


class LabeledByParts:
    """Mixin for handlers whose ``label_parts`` lists the labeled file as slices (big media)."""

    def with_label(self, label_json: str, *, xmp: bytes | None = None,
                   metadata_from: Container | None = None) -> bytes:
        """The labeled file in one piece: ``label_parts`` joined (see the handler's docs)."""
        return b"".join(self.label_parts(  # type: ignore[attr-defined]
            label_json, xmp=xmp, metadata_from=metadata_from))


@dataclass
class _Registry:
    modules: dict[str, ModuleType] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    loaded: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


_registry = _Registry()


def register(module: ModuleType) -> None:
    """Add a handler module to the registry (called at the end of each handler module)."""
    for attr in ("NAME", "MIME", "EXTENSIONS", "MODALITY", "accept", "parse"):
        if not hasattr(module, attr):
            raise TypeError(f"format handler {module.__name__} lacks {attr}")
    _registry.modules[module.NAME] = module


def _load() -> None:
    if _registry.loaded:
        return
    with _registry.lock:  # a second thread must not see a half-filled registry
        if _registry.loaded:
            return
        for name in _BUILTIN:
            try:
                importlib.import_module(f"{__name__}.{name}")
            except ImportError as exc:  # an optional dependency is missing
                _registry.missing[name] = str(exc)
        # Sniffing tries handlers in this order, whatever order they were imported in (a module
        # may import a handler early): the built-ins as listed, others after, text last.
        def rank(item: tuple[str, ModuleType]) -> int:
            stem = item[1].__name__.rpartition(".")[2]  # isobmff.py registers NAME "mp4"
            return (_BUILTIN.index(stem) if stem in _BUILTIN and stem != "text"
                    else len(_BUILTIN) if stem != "text" else len(_BUILTIN) + 1)

        _registry.modules = dict(sorted(_registry.modules.items(), key=rank))
        _registry.loaded = True


def handlers() -> dict[str, ModuleType]:
    """Return the available handler modules by name."""
    _load()
    return dict(_registry.modules)


def unavailable() -> dict[str, str]:
    """Return the formats that could not load, with the reason."""
    _load()
    return dict(_registry.missing)


def sniff(data: bytes | memoryview, source: str = "<bytes>") -> ModuleType:
    """Return the handler whose magic bytes match ``data``.

    The name matters only for text, which has no magic bytes: UTF-8 named as a picture or a
    video is not text, and a file named .txt, .md or .html goes to the text handlers whatever
    its bytes (so that a bad encoding is reported as such)."""
    _load()
    prefix = bytes(data[:64])
    ext = os.path.splitext(source)[1].lower()
    for module in _registry.modules.values():
        if module.accept(prefix):
            if module.NAME == "text" and _claimed_by_media(ext):
                break  # "text" is the catch-all: a .png holding words is a broken picture
            return module
    # Text has no magic bytes: a file named as text whose bytes are not clean UTF-8 goes to the
    # text handlers, which say what is wrong (an encoding, a NUL) instead of "not supported".
    for module in _registry.modules.values():
        if module.MODALITY == "text" and ext in module.EXTENSIONS:
            return module
    if not prefix:
        raise UnsupportedFormat("empty file", source=source)
    raise UnsupportedFormat(
        f"not a supported format (starts with {prefix[:8].hex(' ')})", source=source
    )


def _claimed_by_media(ext: str) -> bool:
    """Whether a file extension names a format other than text."""
    return any(ext in m.EXTENSIONS for m in _registry.modules.values() if m.MODALITY != "text")


def modality_of(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> str | None:
    """The modality ("image", "video", ...) of a file, from its first bytes; None if unknown."""
    try:
        with open(path, "rb") as f:
            prefix = f.read(64)
    except OSError:
        return None  # the caller's own read reports it, with the reason
    try:
        return sniff(prefix, os.fspath(path)).MODALITY
    except UnsupportedFormat:
        return None


def load(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS):
    """Read (images) or map (video: nothing copied) a file for ``parse``."""
    from ..fileio import map_input, read_input

    if modality_of(path, limits) == "video":
        return map_input(path, limits)
    return read_input(path, limits)


def parse(data: bytes, source: str = "<bytes>", limits: Limits = DEFAULT_LIMITS) -> Container:
    """Sniff and parse ``data``; raises UnsupportedFormat or CorruptInput."""
    if len(data) > limits.max_file_bytes:
        raise LimitExceeded(
            f"file is {len(data)} bytes, over the limit of {limits.max_file_bytes}", source=source
        )
    return sniff(data, source).parse(data, source, limits)


# Video and audio containers hold hundreds of megabytes of essence: their digest is BLAKE3
# (the BLAKE3 team's own bindings), which hashes 4-5x faster than SHA-256 on one core here and
# keeps metadata-only labeling of a 100 MB video near copy speed. Pictures keep SHA-256: they
# are small, and their signatures predate this.
def essence_digest(container: Container) -> bytes:
    """A 32-byte digest over the format name and the media-carrying byte ranges, length-framed.

    SHA-256 for pictures; BLAKE3 for containers whose ``essence_hash`` says so (video, audio)."""
    prefix = container.format.encode() + b"\0"
    if getattr(container, "essence_hash", "sha256") == "blake3":
        h = blake3(b"labelkit-essence-blake3-v1\0" + prefix)
    else:
        h = hashlib.sha256(b"labelkit-essence-v1\0" + prefix)
    for part in container.essence():
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.digest()


def check_pixels(width: int, height: int, source: str, limits: Limits, what: str = "image") -> None:
    """Raise LimitExceeded when a header declares more pixels than allowed (decompression bomb)."""
    if width * height > limits.max_pixels:
        raise LimitExceeded(
            f"{what} declares {width}x{height} pixels, over the limit of {limits.max_pixels} "
            "(decompression bomb?)",
            source=source,
        )


def check_count(count: int, source: str, limits: Limits, what: str) -> None:
    """Raise LimitExceeded when a file holds more chunks/segments/blocks than allowed."""
    if count > limits.max_chunks:
        raise LimitExceeded(f"more than {limits.max_chunks} {what}", source=source)


def check_same_format(container: Container, metadata_from: Container | None) -> None:
    """Raise PolicyError when ``with_label(metadata_from=...)`` mixes two formats."""
    if metadata_from is not None and metadata_from.format != container.format:
        raise PolicyError(
            f"cannot carry {metadata_from.format} metadata into a {container.format} file",
            source=container.source,
        )


def icc_fits(profile: bytes | memoryview, space: bytes | None) -> bool:
    """Whether an ICC profile's data colour space (b"RGB ", b"GRAY", b"CMYK") is ``space``."""
    return space is not None and len(profile) >= 20 and bytes(profile[16:20]) == space
