"""Sniffing by magic bytes, the registry, and the template for new formats."""

from __future__ import annotations

import struct

import pytest

from labelkit import formats
from labelkit.errors import UnsupportedFormat
from labelkit.formats import _template
from labelkit.limits import DEFAULT_LIMITS

from .samples import LABEL, OLD, sample, xmp_packet


def test_the_five_image_handlers_are_registered():
    names = set(formats.handlers())
    assert {"jpeg", "png", "webp", "gif", "tiff"} <= names
    assert "example" not in names  # the template never registers itself
    for name in ("jpeg", "png", "webp", "gif", "tiff"):
        assert name not in formats.unavailable()


@pytest.mark.parametrize("name", ["png-plain", "jpeg-plain", "gif-anim", "webp-lossy", "tiff-rich"])
def test_the_name_does_not_matter(name):
    s = sample(name)
    for wrong in ("photo.jpg", "photo.png", "photo.txt", "photo"):
        assert formats.parse(s.data, wrong).format == s.format


def test_text_is_sniffed_as_text_unless_named_as_media():
    data = b"hello, I am a text file\n" * 10
    assert formats.parse(data, "notes.txt").format == "text"
    assert formats.parse(data, "notes").format == "text"
    assert formats.parse(data, "notes.md").format == "markdown"
    with pytest.raises(UnsupportedFormat, match="not a supported format"):
        formats.parse(data, "notes.mp4")


def test_a_png_named_jpg_is_a_png():
    assert formats.parse(sample("png-plain").data, "really.jpg").format == "png"


@pytest.mark.parametrize(
    "data, why",
    [
        (b"hello, I am a text file\n" * 10, "not a supported format"),
        (b"", "empty file"),
        (b"RIFF\x10\0\0\0WAVEfmt ", "not a supported format"),
    ],
)
def test_unsupported_bytes(data, why):
    with pytest.raises(UnsupportedFormat, match=f"notes.png: {why}"):
        formats.parse(data, "notes.png")


def test_accept_needs_only_a_prefix():
    for name in ("png-plain", "jpeg-plain", "gif-anim", "webp-lossy", "tiff-rich"):
        s = sample(name)
        module = formats.handlers()[s.format]
        assert module.accept(s.data[:64])
        others = [m for m in formats.handlers().values() if m is not module]
        assert not any(m.accept(s.data[:64]) for m in others)


def _example_file(*packets: bytes) -> bytes:
    chunks = b"".join(struct.pack(">4sI", b"META", len(p)) + p for p in packets)
    data = struct.pack(">4sI", b"DATA", 4) + b"\1\2\3\4"
    return _template.MAGIC + chunks + data + struct.pack(">4sI", b"END ", 0)


def test_the_template_is_a_working_example():
    data = _example_file(xmp_packet(aigc_attr=OLD), xmp_packet(title=None, aigc_elem=OLD))
    parsed = _template.parse(data, "x.example", DEFAULT_LIMITS)
    assert [c.kind for c in parsed.carriers] == ["xmp-attribute", "xmp-element"]
    out = _template.parse(parsed.with_label(LABEL), "out", DEFAULT_LIMITS)
    assert [c.text for c in out.carriers] == [LABEL]
    assert formats.essence_digest(out) == formats.essence_digest(parsed)
