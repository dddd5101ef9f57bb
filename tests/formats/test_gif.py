"""GIF specifics: the XMP application extension, its magic trailer and its place."""

from __future__ import annotations

import io

from PIL import Image

from labelkit import formats

from .samples import GIF_MAGIC, LABEL, sample

XMP_APP = b"\x21\xff\x0bXMP DataXMP"


def _blocks(data: bytes) -> list[tuple[str, int, int]]:
    """(kind, start, end) of each block after the header: a plain sub-block walker.

    It treats the XMP extension like any other application extension, as an XMP-unaware
    decoder does: the magic trailer must make that walk land on the right terminator.
    """
    packed = data[10]
    pos = 13 + (3 << ((packed & 7) + 1) if packed & 0x80 else 0)
    out = []
    while data[pos] != 0x3B:
        start = pos
        if data[pos] == 0x21:
            kind = "xmp" if data.startswith(XMP_APP, pos) else f"ext{data[pos + 1]:02x}"
            if data[pos + 1] == 0xFF and not kind == "xmp":
                kind = data[pos + 3 : pos + 14].decode("latin-1")
            pos += 2
        else:
            kind = "image"
            lct = data[pos + 9]
            pos += 10 + (3 << ((lct & 7) + 1) if lct & 0x80 else 0) + 1
        while data[pos]:
            pos += 1 + data[pos]
        out.append((kind, start, pos + 1))
        pos += 1
    return out


def test_xmp_extension_after_loop_extension_before_first_frame():
    s = sample("gif-anim")
    out = formats.parse(s.data, s.name).with_label(LABEL)
    kinds = [k for k, _, _ in _blocks(out)]
    assert kinds[0] == "NETSCAPE2.0"
    assert kinds[1] == "xmp"
    assert kinds[2:] == [k for k, _, _ in _blocks(s.data)][1:]


def test_magic_trailer_lets_a_naive_walker_through():
    s = sample("gif-rich")
    out = formats.parse(s.data, s.name).with_label(LABEL)
    ((_, start, end),) = [b for b in _blocks(out) if b[0] == "xmp"]
    assert out[end - len(GIF_MAGIC) : end] == GIF_MAGIC
    assert LABEL.encode() in out[start:end]


def test_every_frame_and_the_comment_are_kept():
    s = sample("gif-preloaded")
    out = formats.parse(s.data, s.name).with_label(LABEL)
    before = [s.data[a:b] for k, a, b in _blocks(s.data) if k != "xmp"]
    after = [out[a:b] for k, a, b in _blocks(out) if k != "xmp"]
    assert before == after
    assert [k for k, _, _ in _blocks(out)].count("xmp") == 2  # the second packet, stripped
    with Image.open(io.BytesIO(out)) as im:
        assert im.n_frames == 24 and im.info["comment"] == b"a GIF comment"


def test_gif87a_is_raised_to_89a():
    s = sample("gif-87a")
    out = formats.parse(s.data, s.name).with_label(LABEL)
    assert out[:6] == b"GIF89a" and out[6:13] == s.data[6:13]
