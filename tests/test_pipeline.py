"""Labeler + verify end to end on real photos and synthetic images, every image format."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

import labelkit
from labelkit import formats
from labelkit.errors import CorruptInput, LimitExceeded, PolicyError, UnsupportedFormat
from labelkit.verify import STATUSES, VERDICTS

from .conftest import PRODUCER, encode, generated_scene

FORMATS = ["PNG", "JPEG", "WEBP", "GIF", "TIFF"]


def _input(pixels: np.ndarray, fmt: str) -> bytes:
    return encode(pixels, fmt, **({"quality": 90} if fmt in ("JPEG", "WEBP") else {}))


@pytest.mark.parametrize("fmt", FORMATS)
def test_label_bytes_every_format_verifies(labeler, key, astronaut, fmt):
    data = _input(astronaut, fmt)
    result = labeler.label_image(data, source=f"astronaut.{fmt.lower()}")
    assert result.layers == ("explicit", "watermark", "metadata", "signature")
    assert result.format == formats.sniff(data).NAME
    # Pillow decodes the output, same size, same format.
    with Image.open(io.BytesIO(result.data)) as im:
        im.load()
        assert im.size == (512, 512) and im.format == fmt
    report = labelkit.verify(result.data, public_key=key.public)
    assert report.verdict == "compliant", report.to_json()
    assert report.signature["status"] == "valid"
    assert report.record["ProduceID"] == result.record.produce_id
    assert report.record["ContentProducer"] == PRODUCER
    assert report.explicit["status"] == "present"
    assert report.explicit["ink_height_ratio"] >= 0.05
    assert report.explicit["position"] == "bottom-right"
    assert len(report.carriers) == 1 and report.carriers[0]["kind"] == "xmp-element"


@pytest.mark.parametrize("kind", ["array", "pil", "gray", "rgba"])
def test_label_pixels(labeler, key, coffee, kind):
    image = {
        "array": coffee,
        "pil": Image.fromarray(coffee),
        "gray": np.ascontiguousarray(coffee[:, :, 1]),
        "rgba": np.dstack([coffee, np.full(coffee.shape[:2], 255, np.uint8)]),
    }[kind]
    before = np.array(coffee)
    result = labeler.label_image(image, format="png")
    np.testing.assert_array_equal(coffee, before)  # the caller's pixels are not modified
    assert labelkit.verify(result.data, public_key=key.public).verdict == "compliant"


def test_label_changes_only_the_label_area(key, coffee):
    # without the watermark, which changes every pixel a little (tests/test_watermark_layer.py)
    labeler = labelkit.Labeler(PRODUCER, key, labelkit.Policy(watermark=False))
    result = labeler.label_image(coffee, format="png")
    assert result.layers == ("explicit", "metadata", "signature")
    out = np.asarray(Image.open(io.BytesIO(result.data)).convert("RGB"))
    changed = np.argwhere(np.any(out != coffee, axis=2))
    x0, y0, x1, y1 = result.visible.box
    assert changed[:, 0].min() >= y0 and changed[:, 0].max() < y1
    assert changed[:, 1].min() >= x0 and changed[:, 1].max() < x1
    assert x1 > coffee.shape[1] * 0.8 and y1 > coffee.shape[0] * 0.8  # bottom-right corner


def test_format_mismatch_and_unknown_output(labeler, coffee):
    with pytest.raises(PolicyError, match="input is png, not jpeg"):
        labeler.label_image(encode(coffee, "PNG"), format="jpeg")
    with pytest.raises(PolicyError, match="bmp"):
        labeler.label_image(coffee, format="bmp")
    with pytest.raises(labelkit.LabelkitError, match="uint8"):
        labeler.label_image(coffee.astype(np.float32))


def test_metadata_only_needs_recipient_log(key, coffee, tmp_path):
    data = encode(coffee, "JPEG", quality=85)
    plain = labelkit.Labeler(PRODUCER, key)
    with pytest.raises(PolicyError, match="Art. 9"):
        plain.label_image(data, explicit=False)
    with pytest.raises(PolicyError, match="recipient recorded"):
        plain.label_image(data, explicit=False, recipient="user-42")
    log = tmp_path / "log" / "recipients.jsonl"
    lab = labelkit.Labeler(PRODUCER, key, recipient_log=log)
    result = lab.label_image(data, explicit=False, recipient="user-42")
    assert result.layers == ("metadata", "signature")
    entry = json.loads(log.read_text().splitlines()[0])
    assert entry["recipient"] == "user-42" and entry["ProduceID"] == result.record.produce_id
    # Metadata-only never re-encodes: the compressed image data is byte-identical.
    src, out = formats.parse(data), formats.parse(result.data)
    assert b"".join(map(bytes, src.essence())) == b"".join(map(bytes, out.essence()))
    report = labelkit.verify(result.data, public_key=key.public)
    assert report.signature["status"] == "valid"
    assert report.explicit["status"] == "absent"
    assert report.check("explicit").status == "warn"
    assert report.verdict == "compliant"


def test_label_file_atomic_and_original_untouched(labeler, key, coffee, tmp_path):
    src = tmp_path / "in.png"
    src.write_bytes(encode(coffee, "PNG"))
    before = src.read_bytes()
    dst = tmp_path / "out" / "in.png"
    labeler.label_file(src, dst)
    assert src.read_bytes() == before
    assert labelkit.verify(dst, public_key=key.public).verdict == "compliant"
    assert [p.name for p in dst.parent.iterdir()] == ["in.png"]  # no temp file left
    labeler.label_file(src, src)  # in place, through a temp file and a rename
    assert src.read_bytes() != before
    assert labelkit.verify(src, public_key=key.public).verdict == "compliant"


def test_relabel_keeps_exactly_one_label(labeler, key, coffee):
    first = labeler.label_image(encode(coffee, "PNG"), explicit=True)
    second = labeler.label_image(first.data)
    report = labelkit.verify(second.data, public_key=key.public)
    assert len(report.carriers) == 1
    assert report.record["ProduceID"] == second.record.produce_id != first.record.produce_id


# -- signature outcomes ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labeled_png(labeler):
    return labeler.label_image(generated_scene(640, 480, seed=3)).data


def _relabel(data: bytes, text: str) -> bytes:
    return formats.parse(data).with_label(text)


def test_signature_valid_and_key_states(labeled_png, key, other_key):
    assert labelkit.verify(labeled_png, public_key=key.public).signature["status"] == "valid"
    assert labelkit.verify(labeled_png, key=key).signature["status"] == "valid"
    unknown = labelkit.verify(labeled_png, public_key=other_key.public)
    assert unknown.signature["status"] == "unknown_key"
    assert unknown.check("signature").status == "warn"
    unverified = labelkit.verify(labeled_png)
    assert unverified.signature["status"] == "unverified"
    assert unverified.signature["key_id"] == key.key_id.hex()


def test_signature_fields_edited(labeled_png, key):
    text = formats.parse(labeled_png).carriers[0].text
    for old, new in [('"Label":"1"', '"Label":"3"'), ('"ProduceID":"0', '"ProduceID":"1')]:
        r = labelkit.verify(_relabel(labeled_png, text.replace(old, new)), public_key=key.public)
        assert r.signature["status"] == "fields_edited", r.signature
        assert r.verdict == "noncompliant"


def test_signature_content_changed(labeled_png, key):
    text = formats.parse(labeled_png).carriers[0].text
    pixels = np.array(Image.open(io.BytesIO(labeled_png)).convert("RGB"))
    pixels[50:90, 50:200] = 255 - pixels[50:90, 50:200]
    r = labelkit.verify(_relabel(encode(pixels, "PNG"), text), public_key=key.public)
    assert r.signature["status"] == "content_changed", r.signature
    assert r.verdict == "noncompliant"


def test_signature_label_copied(labeled_png, key, astronaut):
    text = formats.parse(labeled_png).carriers[0].text
    r = labelkit.verify(_relabel(encode(astronaut, "PNG"), text), public_key=key.public)
    assert r.signature["status"] == "label_copied", r.signature
    assert r.verdict == "noncompliant"


def test_unsigned_label(coffee):
    data = labelkit.Labeler(PRODUCER).label_image(coffee).data
    r = labelkit.verify(data)
    assert r.signature["status"] == "absent" and r.check("signature").status == "warn"


# -- report ------------------------------------------------------------------------------------


def test_report_schema(labeled_png, key):
    d = json.loads(labelkit.verify(labeled_png, public_key=key.public).to_json())
    assert d["schema_version"] == 1
    assert d["verdict"] in VERDICTS
    assert {"path", "verdict", "record", "checks", "explicit", "signature", "watermark"} <= set(d)
    assert all(c["status"] in STATUSES and c["id"] and c["message"] for c in d["checks"])
    assert list(d["record"]) == list(labelkit.record.KEYS)


def test_not_found_on_unlabeled(coffee):
    r = labelkit.verify(encode(coffee, "JPEG"))
    assert r.verdict == "not_found" and r.record is None
    assert r.check("label_present").status == "fail"


def test_two_labels_and_bad_fields_reported(coffee, producer):
    from PIL import PngImagePlugin

    def png_with(*texts: str) -> bytes:
        info = PngImagePlugin.PngInfo()
        for t in texts:
            info.add_text("AIGC", t)
        return encode(coffee, "PNG", pnginfo=info)

    good = labelkit.AIGCRecord(content_producer=producer, produce_id="A1").to_json()
    two = labelkit.verify(png_with(good, good.replace("A1", "B2")), detect_visible=False)
    assert two.check("single_label").status == "fail" and two.verdict == "noncompliant"
    assert len(two.carriers) == 2
    typed = labelkit.verify(png_with('{"Label":1,"ContentProducer":"%s"}' % producer),
                            detect_visible=False)
    assert typed.check("types").status == "fail" and typed.verdict == "noncompliant"
    spelled = labelkit.verify(png_with('{"Label":"1","ReserveCode1":""}'), detect_visible=False)
    assert "ReservedCode1" in spelled.check("keys").message
    dup = labelkit.verify(png_with('{"Label":"1","Label":"2"}'), detect_visible=False)
    assert "duplicate key" in dup.check("json").message
    checksum = labelkit.verify(
        png_with(good.replace(producer, producer[:21] + "G" + producer[22:])),
        detect_visible=False)
    assert "checksum" in checksum.check("producer_code").message
    wrapped = labelkit.verify(png_with('{"AIGC":' + good + "}"), detect_visible=False)
    assert wrapped.check("json").status == "pass" and "wrapped" in wrapped.check("json").message


# -- bad input, on real files ---------------------------------------------------------------


def test_bad_inputs_raise_named_errors(labeler, coffee, tmp_path):
    jpeg = encode(coffee, "JPEG")
    cases = {
        "truncated.jpg": (jpeg[: len(jpeg) // 2], CorruptInput),
        "text.png": (b"this is a text file, not a picture\n" * 10, UnsupportedFormat),
        "empty.png": (b"", UnsupportedFormat),
    }
    for name, (data, error) in cases.items():
        src = tmp_path / name
        src.write_bytes(data)
        dst = tmp_path / "out" / name
        with pytest.raises(error, match=name):
            labeler.label_file(src, dst)
        assert not dst.exists()
        with pytest.raises(error, match=name):
            labelkit.verify(src)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def test_decompression_bomb(labeler, tmp_path):
    big = Image.new("L", (12000, 12000))  # 144 MP of zeros compresses to almost nothing
    buf = io.BytesIO()
    big.save(buf, "PNG")
    src = tmp_path / "bomb.png"
    src.write_bytes(buf.getvalue())
    assert src.stat().st_size < 1_000_000
    with pytest.raises(LimitExceeded, match="bomb.png"):
        labeler.label_file(src, tmp_path / "out.png")
    assert not (tmp_path / "out.png").exists()
    small = labelkit.Limits(max_pixels=1000)
    with pytest.raises(LimitExceeded):
        labelkit.Labeler(PRODUCER, limits=small).label_image(encode(np.zeros((64, 64), np.uint8), "PNG"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_metadata_only_when_label_present_keeps_essence(labeler, key, coffee, fmt):
    data = _input(coffee, fmt)
    result = labeler.label_image(data, explicit="present")
    assert result.layers == ("metadata", "signature")
    assert formats.essence_digest(formats.parse(data)) == formats.essence_digest(
        formats.parse(result.data))
    assert labelkit.verify(result.data, public_key=key.public,
                           detect_visible=False).verdict == "compliant"
    with pytest.raises(PolicyError, match="metadata-only"):
        labeler.label_image(coffee, explicit="present")


def test_read_record_strict(labeler, coffee, producer, tmp_path):
    from PIL import PngImagePlugin

    from labelkit.errors import DuplicateLabel, InvalidRecord

    assert labelkit.read_record(encode(coffee, "PNG")) is None
    labeled = labeler.label_image(coffee)
    assert labelkit.read_record(labeled.data) == labeled.record
    good = labelkit.AIGCRecord(content_producer=producer, produce_id="A1").to_json()
    cases = {
        "two.png": ([good, good], DuplicateLabel, "2 AIGC labels"),
        "typed.png": (['{"Label":1}'], InvalidRecord, "Label is a JSON number, not a string"),
        "spelled.png": (['{"Label":"1","Propagator":"x"}'], InvalidRecord, "ContentPropagator"),
    }
    for name, (texts, error, message) in cases.items():
        info = PngImagePlugin.PngInfo()
        for t in texts:
            info.add_text("AIGC", t)
        path = tmp_path / name
        path.write_bytes(encode(coffee, "PNG", pnginfo=info))
        with pytest.raises(error, match=f"{name}.*{message}"):
            labelkit.read_record(path)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
def test_visible_label_keeps_the_original_metadata(labeler, key, coffee, fmt):
    from PIL import ImageCms, PngImagePlugin

    exif = Image.Exif()
    exif[0x013B] = "A. Photographer"  # Artist
    exif[0x8298] = "(c) 2026 Example"  # Copyright
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    extra = {"exif": exif.tobytes(), "icc_profile": icc}
    if fmt == "JPEG":
        extra["comment"] = b"made by a generator"
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        info.add_text("Description", "a cup of coffee")
        extra["pnginfo"] = info
    result = labeler.label_image(encode(coffee, fmt, **extra))
    assert result.layers[0] == "explicit"
    with Image.open(io.BytesIO(result.data)) as im:
        assert im.getexif().get(0x013B) == "A. Photographer"
        assert im.getexif().get(0x8298) == "(c) 2026 Example"
        assert im.info.get("icc_profile") == icc
        if fmt == "JPEG":
            assert im.info.get("comment") == b"made by a generator"
        if fmt == "PNG":
            assert im.text.get("Description") == "a cup of coffee"
    assert labelkit.verify(result.data, public_key=key.public).verdict == "compliant"
