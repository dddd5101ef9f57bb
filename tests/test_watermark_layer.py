"""The watermark as a layer: Labeler marks by default, verify reads it, stripped files keep it."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

import labelkit
from labelkit.cli import main
from labelkit.watermark import WatermarkKey

from .conftest import PRODUCER, encode, skimage_photo


def _strip(data: bytes, quality: int = 85) -> bytes:
    """What a platform upload does: decode, re-encode as JPEG without any metadata."""
    with Image.open(io.BytesIO(data)) as im:
        out = io.BytesIO()
        im.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture(scope="module")
def photo():
    return skimage_photo("coffee.png")  # 600 x 400


@pytest.fixture(scope="module")
def labeled(key, photo):
    return labelkit.Labeler(PRODUCER, key).label_image(encode(photo, "JPEG", quality=92))


def test_labeler_marks_by_default(key, labeled):
    assert labeled.layers == ("explicit", "watermark", "metadata", "signature")
    expected = WatermarkKey.from_signing_key(key).payload_for(labeled.record.produce_id)
    assert labeled.watermark_payload == expected and labeled.notes == ()


def test_verify_with_the_secret_key_reads_the_watermark(key, labeled):
    report = labelkit.verify(labeled.data, key=key)
    assert report.verdict == "compliant", report.to_json()
    wm = report.watermark
    assert wm["present"] is True and wm["matches_record"] is True and wm["p_value"] < 1e-12
    assert wm["payload"] == f"{labeled.watermark_payload:016x}"
    assert report.check("watermark").status == "pass"
    assert json.loads(report.to_json())["watermark"]["payload"] == wm["payload"]


def test_without_the_secret_the_watermark_is_not_looked_for(key, labeled):
    report = labelkit.verify(labeled.data, public_key=key.public)
    assert report.watermark["status"] == "n/a" and report.check("watermark") is None
    report = labelkit.verify(labeled.data, key=key, detect_watermark=False)
    assert report.watermark["status"] == "n/a" and report.verdict == "compliant"


def test_stripped_file_gives_traces_only(key, labeled):
    stripped = _strip(labeled.data)
    assert labelkit.read_record(stripped) is None
    report = labelkit.verify(stripped, key=key)
    assert report.verdict == "traces_only", report.to_json()
    assert report.watermark["present"] and report.watermark["matches_record"] is None
    assert report.watermark["payload"] == f"{labeled.watermark_payload:016x}"
    # without the key, the stripped file is just unlabeled (the visible label may still be seen)
    assert labelkit.verify(stripped, detect_visible=False).verdict == "not_found"


def test_replaced_label_is_caught_by_the_watermark(key, labeled):
    # strip, then label again metadata-only (no new watermark): the new ProduceID does not
    # match the payload the pixels carry
    relabeled = labelkit.Labeler(PRODUCER, key).label_image(_strip(labeled.data),
                                                            explicit="present")
    assert "watermark" not in relabeled.layers and relabeled.watermark_payload is None
    report = labelkit.verify(relabeled.data, key=key)
    assert report.watermark["present"] and report.watermark["matches_record"] is False
    assert report.check("watermark").status == "fail" and report.verdict == "noncompliant"


def test_another_providers_key_sees_no_watermark(other_key, labeled):
    report = labelkit.verify(labeled.data, key=other_key)
    assert report.watermark["present"] is False and report.watermark["matches_record"] is None
    assert report.check("watermark").status == "warn"


def test_policy_can_turn_it_off_and_strength_is_checked(key, photo):
    off = labelkit.Labeler(PRODUCER, key, labelkit.Policy(watermark=False))
    result = off.label_image(photo, format="png")
    assert "watermark" not in result.layers and result.watermark_payload is None
    report = labelkit.verify(result.data, key=key)
    assert report.watermark["present"] is False and report.verdict == "compliant"
    with pytest.raises(labelkit.PolicyError, match="watermark_strength"):
        labelkit.ImagePolicy(watermark_strength=0)
    with pytest.raises(labelkit.PolicyError, match="watermark_profile"):
        labelkit.ImagePolicy(watermark_profile="loud")
    robust = labelkit.Labeler(PRODUCER, key, labelkit.Policy(
        image=labelkit.ImagePolicy(watermark_profile="robust"))).label_image(photo, format="png")
    assert labelkit.verify(robust.data, key=key).watermark["matches_record"] is True
    strong = labelkit.Labeler(PRODUCER, key, labelkit.Policy(
        image=labelkit.ImagePolicy(watermark_strength=2.0))).label_image(photo, format="png")
    assert labelkit.verify(strong.data, key=key).watermark["score"] > \
        labelkit.verify(labelkit.Labeler(PRODUCER, key).label_image(photo, format="png").data,
                        key=key).watermark["score"]


def test_small_pictures_say_so(key, photo):
    result = labelkit.Labeler(PRODUCER, key).label_image(photo[:300, :300], format="png")
    assert "watermark" not in result.layers
    assert result.notes and "too small" in result.notes[0]
    report = labelkit.verify(result.data, key=key)
    assert report.verdict == "compliant" and report.watermark["present"] is False
    assert report.check("watermark").status == "n/a" and "too small" in report.watermark["message"]


def test_metadata_only_and_unsigned_labels_carry_no_watermark(key, photo):
    data = encode(photo, "PNG")
    result = labelkit.Labeler(PRODUCER, key).label_image(data, explicit="present")
    assert result.layers == ("metadata", "signature")
    unsigned = labelkit.Labeler(PRODUCER).label_image(photo, format="png")
    assert "watermark" not in unsigned.layers and "no secret key" in unsigned.notes[0]
    own = labelkit.Labeler(PRODUCER, watermark_key=WatermarkKey(bytes(32)))
    marked = own.label_image(photo, format="png")
    assert "watermark" in marked.layers
    report = labelkit.verify(marked.data, watermark_key=WatermarkKey(bytes(32)))
    assert report.watermark["matches_record"] is True


def test_every_frame_of_an_animation_is_marked(key, photo):
    frames = [Image.fromarray(np.roll(photo, 40 * i, axis=1)) for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=100)
    result = labelkit.Labeler(PRODUCER, key).label_image(out.getvalue())
    assert "watermark" in result.layers
    wkey = WatermarkKey.from_signing_key(key)
    with Image.open(io.BytesIO(result.data)) as im:
        for i in range(im.n_frames):
            im.seek(i)
            found = labelkit.watermark.detect_image(np.asarray(im.convert("RGB")), wkey)
            assert found.payload == result.watermark_payload, i


def test_cli_label_strip_verify(tmp_path, capsys, photo):
    keyfile = tmp_path / "k.key"
    assert main(["keygen", "-o", str(keyfile)]) == 0
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.png").write_bytes(encode(photo, "PNG"))
    assert main(["label", "--producer", PRODUCER, "--key", str(keyfile), "-o",
                 str(tmp_path / "out"), "-q", str(src)]) == 0
    (tmp_path / "stripped.jpg").write_bytes(_strip((tmp_path / "out" / "a.png").read_bytes()))
    capsys.readouterr()
    code = main(["verify", "--key", str(keyfile), "--json", str(tmp_path / "stripped.jpg")])
    report = json.loads(capsys.readouterr().out.splitlines()[0])
    assert code == 1 and report["verdict"] == "traces_only" and report["watermark"]["present"]
    assert main(["verify", "--key", str(keyfile), "--json", "--no-watermark",
                 str(tmp_path / "stripped.jpg")]) == 1
    assert json.loads(capsys.readouterr().out.splitlines()[0])["watermark"]["status"] == "n/a"
    assert main(["label", "--producer", PRODUCER, "--key", str(keyfile), "-o",
                 str(tmp_path / "plain"), "-q", "--no-watermark", str(src)]) == 0
    capsys.readouterr()
    main(["verify", "--key", str(keyfile), "--json", str(tmp_path / "plain" / "a.png")])
    assert json.loads(capsys.readouterr().out.splitlines()[0])["watermark"]["present"] is False
    assert main(["label", "--producer", PRODUCER, "--key", str(keyfile), "-o",
                 str(tmp_path / "x"), "--watermark-strength", "9", str(src)]) == 2
    assert main(["label", "--producer", PRODUCER, "--key", str(keyfile), "-o",
                 str(tmp_path / "robust"), "-q", "--watermark-profile", "robust", str(src)]) == 0
    capsys.readouterr()
    main(["verify", "--key", str(keyfile), "--json", str(tmp_path / "robust" / "a.png")])
    assert json.loads(capsys.readouterr().out.splitlines()[0])["watermark"]["matches_record"]


def _corrupt_idat(png: bytes) -> bytes:
    """The PNG with its first IDAT's data scrambled (CRC recomputed): the container parses, the
    pixels do not decode."""
    import struct
    import zlib

    at = png.index(b"IDAT") - 4
    length = struct.unpack(">I", png[at : at + 4])[0]
    body = bytes(b ^ 0x5A for b in png[at + 8 : at + 8 + length])
    crc = struct.pack(">I", zlib.crc32(b"IDAT" + body))
    return png[: at + 8] + body + crc + png[at + 12 + length :]


def test_bad_pixels_with_the_key_are_errors_not_verdicts(key, photo):
    labeled = labelkit.Labeler(PRODUCER, key).label_image(photo, format="png").data
    report = labelkit.verify(_corrupt_idat(labeled), key=key, name="scrambled.png")
    assert report.watermark["status"] == "error" and report.check("watermark").status == "error"
    # the scrambled essence also breaks the signature: that failure decides the verdict
    assert report.signature["status"] == "content_changed" and report.verdict == "noncompliant"
    jpeg = labelkit.Labeler(PRODUCER, key).label_image(encode(photo, "JPEG")).data
    with pytest.raises(labelkit.LabelkitError, match="cut.jpg"):
        labelkit.verify(jpeg[: len(jpeg) // 2], key=key, name="cut.jpg")
