"""Hostile and malformed input to the pipeline: every failure is a LabelkitError naming the file."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

import labelkit
from labelkit import formats, imaging
from labelkit.errors import CorruptInput, InvalidRecord, LimitExceeded

from .conftest import encode


def _png_with_label(pixels: np.ndarray, *texts: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for t in texts:
        info.add_text("AIGC", t)
    return encode(pixels, "PNG", pnginfo=info)


@pytest.mark.parametrize("label", ['["1"]', '{"x":"1"}', "1", "true", "null", "1.5"])
def test_wrong_typed_label_value_is_a_finding(coffee, producer, label):
    text = '{"Label":%s,"ContentProducer":"%s"}' % (label, producer)
    report = labelkit.verify(_png_with_label(coffee, text), detect_visible=False)
    assert report.verdict == "noncompliant"
    assert report.check("types").status == "fail"
    assert report.check("label_value").status == "fail"
    with pytest.raises(InvalidRecord, match="Label is a JSON"):
        labelkit.read_record(_png_with_label(coffee, text))


def test_giant_number_in_label_json(coffee):
    text = '{"Label":' + "1" * 5000 + "}"
    report = labelkit.verify(_png_with_label(coffee, text), detect_visible=False)
    assert report.check("json").status == "fail" and report.verdict == "noncompliant"
    with pytest.raises(InvalidRecord, match="not acceptable JSON"):
        labelkit.AIGCRecord.from_json(text)


def test_many_carriers_give_a_bounded_report(coffee, producer):
    good = labelkit.AIGCRecord(content_producer=producer, produce_id="A").to_json()
    report = labelkit.verify(_png_with_label(coffee, *[good] * 300), detect_visible=False)
    assert report.check("single_label").status == "fail"
    assert report.check("carriers").status == "warn"
    assert len(report.checks) < 150
    assert len(report.to_json()) < 100_000


def test_malformed_labelkit_signature_fails(labeler, key, coffee):
    data = labeler.label_image(coffee).data
    text = formats.parse(data).carriers[0].text
    rc1 = json.loads(text)["ReservedCode1"]
    parts = rc1.split(".")
    for broken in (rc1[:-10], rc1[:-11], ".".join(parts[:-1] + ["A"]),
                   ".".join(parts[:2] + ["!!"] + parts[3:]), ".".join(parts[:-1])):
        forged = formats.parse(data).with_label(text.replace(rc1, broken))
        report = labelkit.verify(forged, public_key=key.public, detect_visible=False)
        assert report.signature["status"] == "malformed", broken
        assert report.verdict == "noncompliant"
    foreign = formats.parse(data).with_label(text.replace(rc1, "SM3withSM2-abcdef"))
    report = labelkit.verify(foreign, public_key=key.public, detect_visible=False)
    assert report.signature["status"] == "unknown_scheme" and report.verdict == "compliant"


def test_metadata_only_copy_is_a_mismatch_not_a_guess(key, coffee, astronaut, tmp_path):
    lab = labelkit.Labeler("001191110102MAD55U9H0F10002", key)
    data = lab.label_image(encode(coffee, "JPEG"), explicit="present").data
    text = formats.parse(data).carriers[0].text
    copied = formats.parse(encode(astronaut, "JPEG")).with_label(text)
    report = labelkit.verify(copied, public_key=key.public, detect_visible=False)
    assert report.signature["status"] == "content_mismatch"
    assert "carries no fingerprint" in report.signature["message"]


def test_required_visible_label(key, coffee, labeler):
    plain = labeler.label_image(encode(coffee, "PNG"), explicit="present").data
    assert labelkit.verify(plain, public_key=key.public).verdict == "compliant"
    strict = labelkit.verify(plain, public_key=key.public, require_visible=True)
    assert strict.check("explicit").status == "fail" and strict.verdict == "noncompliant"
    drawn = labeler.label_image(coffee).data
    assert labelkit.verify(drawn, public_key=key.public, require_visible=True).verdict == \
        "compliant"


def test_label_at_exactly_five_percent_verifies_after_jpeg(key, astronaut):
    policy = labelkit.Policy(image=labelkit.ImagePolicy(height_ratio=0.05))
    lab = labelkit.Labeler("001191110102MAD55U9H0F10002", key, policy)
    for size in (200, 333, 1000):
        pixels = np.array(Image.fromarray(astronaut).resize((size, size)))
        data = lab.label_image(pixels, format="jpeg").data
        report = labelkit.verify(data, public_key=key.public, policy=policy)
        assert report.check("explicit").status == "pass", (size, report.explicit)
        assert report.explicit["ink_height_ratio"] >= 0.05


def test_animation_over_the_decoded_budget(labeler, tmp_path):
    frames = [Image.new("RGB", (1, 1), (8 * i, 255 - 8 * i, 0)) for i in range(30)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    gif = bytearray(buf.getvalue())
    gif[6:10] = (3000).to_bytes(2, "little") * 2  # a 3000x3000 screen for 1x1 frames
    src = tmp_path / "screen.gif"
    src.write_bytes(bytes(gif))
    small = labelkit.Limits(max_decoded_bytes=200 * 1024**2)
    lab = labelkit.Labeler("001191110102MAD55U9H0F10002", limits=small)
    with pytest.raises(LimitExceeded, match="screen.gif.*bytes of pixels"):
        lab.label_file(src, tmp_path / "out.gif")
    assert not (tmp_path / "out.gif").exists()


@pytest.mark.parametrize("error", [KeyError("x"), TypeError("Missing dimensions"),
                                   RuntimeError("WebPEncodingError: 5"), IndexError("i")])
def test_any_pillow_failure_becomes_corrupt_input(error):
    with pytest.raises(CorruptInput, match=f"f.png: cannot decode image: {type(error).__name__}"):
        with imaging._pillow("f.png"):
            raise error
    with pytest.raises(LimitExceeded, match="f.png"):
        with imaging._pillow("f.png"):
            raise Image.DecompressionBombError("too big")
