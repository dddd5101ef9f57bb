"""Every handler, on every sample: label, read back, relabel, and keep everything else."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from labelkit import formats
from labelkit.formats import essence_digest

from .samples import (
    LABEL,
    LABEL2,
    OLD,
    OLD_WRAPPED,
    PLANTED,
    SAMPLE_NAMES,
    TITLE,
    dc_title,
    frames_rgba,
    xmp_packet,
)
from .samples import sample as build_sample


def _labeled(sample, label: str = LABEL) -> bytes:
    return formats.parse(sample.data, sample.name).with_label(label)


def _offsets(carriers) -> list[int]:
    return [int(re.search(r"0x[0-9a-f]+", c.location).group(), 16) for c in carriers]


def test_sniffs_as_its_format(sample):
    assert formats.sniff(sample.data, sample.name).NAME == sample.format


def test_write_then_read_gives_exactly_one_label(sample):
    out = formats.parse(_labeled(sample), sample.name)
    assert [(c.kind, c.text) for c in out.carriers] == [("xmp-element", LABEL)]
    assert out.format == sample.format


def test_relabel_replaces_the_label(sample):
    once = _labeled(sample)
    twice = formats.parse(formats.parse(once, "once").with_label(LABEL2), "twice")
    assert [(c.kind, c.text) for c in twice.carriers] == [("xmp-element", LABEL2)]


# TIFF is left out: it appends a rewritten IFD0 on every write, by design.
@pytest.mark.parametrize("name", [n for n in SAMPLE_NAMES if not n.startswith("tiff")])
def test_same_label_twice_gives_the_same_file(name):
    sample = build_sample(name)
    once = _labeled(sample)
    assert formats.parse(once, "once").with_label(LABEL) == once


def test_essence_unchanged(sample):
    original = formats.parse(sample.data, sample.name)
    once = formats.parse(_labeled(sample), "once")
    twice = formats.parse(once.with_label(LABEL2), "twice")
    assert essence_digest(original) == essence_digest(once) == essence_digest(twice)
    assert [bytes(p) for p in original.essence()] == [bytes(p) for p in twice.essence()]


def test_geometry_and_frames_kept(sample):
    original = formats.parse(sample.data, sample.name)
    out = formats.parse(_labeled(sample), "out")
    assert (out.width, out.height, out.frames) == (original.width, original.height, sample.frames)
    if sample.pillow_decodes:
        with Image.open(io.BytesIO(sample.data)) as im:
            assert (im.width, im.height) == (original.width, original.height)
            assert getattr(im, "n_frames", 1) == sample.frames


def test_pillow_decodes_the_same_pixels(sample):
    before, after = frames_rgba(sample.data), frames_rgba(_labeled(sample))
    assert len(before) == len(after) == sample.frames
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


def _exif_tags(data: bytes) -> tuple[dict, dict]:
    with Image.open(io.BytesIO(data)) as im:
        exif = im.getexif()
        sub = dict(exif.get_ifd(0x8769))
        top = {k: v for k, v in exif.items() if k not in (0x8769, 700)}
    return top, sub


def test_other_metadata_kept(sample):
    out = _labeled(sample)
    with Image.open(io.BytesIO(sample.data)) as a, Image.open(io.BytesIO(out)) as b:
        assert a.info.get("icc_profile") == b.info.get("icc_profile")
        if sample.icc:
            assert b.info.get("icc_profile")
        if sample.exif and not sample.planted and sample.format != "tiff":
            assert b.info["exif"] == a.info["exif"]  # byte-identical EXIF
        if sample.format == "png":
            carriers = ("AIGC", "XML:com.adobe.xmp")  # compared through the XMP checks
            assert {k: v for k, v in b.text.items() if k not in carriers} == {
                k: v for k, v in a.text.items() if k not in carriers
            }
            for key, value in sample.texts.items():
                assert b.text[key] == value
        if sample.format == "gif":
            assert b.info.get("comment") == a.info.get("comment")
            assert b.info.get("loop") == a.info.get("loop")
    top_a, sub_a = _exif_tags(sample.data)
    top_b, sub_b = _exif_tags(out)
    sub_a.pop(0x9286, None)  # a planted AIGC UserComment goes; everything else stays
    assert top_b == top_a
    assert sub_b == sub_a
    if sample.exif:
        assert top_b[0x010F] == "labelkit-test-maker"
    title = dc_title(formats.parse(out, "out").xmp)
    assert title == sample.title or (sample.title is None and title is None)


def test_xmp_argument_replaces_the_merge_base(sample):
    base = xmp_packet(title="from the re-encoded original")
    out = formats.parse(formats.parse(sample.data, sample.name).with_label(LABEL, xmp=base), "o")
    assert [c.text for c in out.carriers] == [LABEL]
    assert dc_title(out.xmp) == "from the re-encoded original"


def test_planted_carriers_are_all_reported_in_file_order(sample):
    parsed = formats.parse(sample.data, sample.name)
    assert sorted(c.kind for c in parsed.carriers) == sorted(sample.planted)
    assert _offsets(parsed.carriers) == sorted(_offsets(parsed.carriers))
    for c in parsed.carriers:
        assert c.text in (OLD, OLD_WRAPPED), c
        assert c.location


@pytest.mark.parametrize("name", PLANTED)
def test_planted_carriers_are_all_replaced(name):
    sample = build_sample(name)
    out = _labeled(sample)
    # No stale copy of an old label anywhere in the file, not even in unreferenced bytes.
    assert OLD.encode() not in out and OLD_WRAPPED.encode() not in out
    parsed = formats.parse(out, "out")
    assert [c.text for c in parsed.carriers] == [LABEL]
    assert dc_title(parsed.xmp) == TITLE
