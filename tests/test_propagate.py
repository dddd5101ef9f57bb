"""A platform's relabeling (Measures Art. 6): Label 1 kept, 2 when declared, 3 on traces; the
platform's fields and ReservedCode2 written, the producer's signature still valid, one label."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
from PIL import Image

from labelkit import Labeler, formats, verify
from labelkit.errors import InvalidRecord, LabelkitError, UnsupportedFormat
from labelkit.propagate import Propagator
from labelkit.signing import generate_key, write_key_pair

from .conftest import PRODUCER, skimage_photo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from demo import write_audio  # noqa: E402

PLATFORM = PRODUCER[:22] + "2" + PRODUCER[23:]  # the same organisation, service type 2


@pytest.fixture(scope="module")
def platform_key():
    return generate_key("ed25519")


@pytest.fixture(scope="module")
def platform(platform_key):
    return Propagator(PLATFORM, platform_key)


@pytest.fixture(scope="module")
def photo_jpeg() -> bytes:
    out = io.BytesIO()
    Image.fromarray(skimage_photo("coffee.png")).save(out, "JPEG", quality=90)
    return out.getvalue()


def _formats_and_labeled(key, tmp_path):
    lab = Labeler(PRODUCER, key)
    photo = skimage_photo("coffee.png")
    write_audio(tmp_path / "voice.wav")
    return {
        "jpeg": lab.label_image(photo, "jpeg").data,
        "png": lab.label_image(photo, "png").data,
        "wav": lab.label_audio((tmp_path / "voice.wav").read_bytes()).data,
        "markdown": lab.label_text("# Answer\n\nA generated answer.\n", "markdown").data,
    }


def test_a_valid_label_keeps_label_1_and_the_producers_signature(key, platform, platform_key,
                                                                  tmp_path):
    for fmt, data in _formats_and_labeled(key, tmp_path).items():
        name = f"item.{'md' if fmt == 'markdown' else fmt}"
        before = formats.parse(data, name)
        result = platform.propagate(data, source=name)
        assert result.label_class == "1" and "valid label" in result.reason
        after = formats.parse(result.data, name)
        assert formats.essence_digest(after) == formats.essence_digest(before), fmt
        producer = verify(data, key=key, name=name).record
        record = result.record
        assert record.produce_id == producer["ProduceID"]
        assert record.reserved_code1 == producer["ReservedCode1"]
        assert record.content_propagator == PLATFORM and record.propagate_id
        both = verify(result.data, public_key=[key.public, platform_key.public], name=name)
        assert both.check("single_label").status == "pass", fmt
        assert both.signature["status"] == "valid", fmt  # ReservedCode1 still valid
        assert both.check("propagator_signature").status == "pass", fmt
        assert both.verdict == "compliant", (fmt, [(c.id, c.message) for c in both.checks])
        alone = verify(result.data, public_key=key.public, name=name)
        assert alone.signature["propagator"]["status"] == "unverified"
        assert alone.check("propagator_signature").status == "n/a"
        assert alone.verdict == "compliant"


def test_declared_ai_gives_2_and_traces_give_3(platform, platform_key, key, photo_jpeg):
    assert platform.propagate(photo_jpeg, source="a.jpg").label_class is None
    declared = platform.propagate(photo_jpeg, declared_ai=True, source="a.jpg")
    assert declared.label_class == "2" and declared.record.content_producer == ""
    report = verify(declared.data, public_key=platform_key.public, name="a.jpg")
    assert report.record["Label"] == "2" and report.verdict == "compliant"
    assert report.check("propagator_signature").status == "pass"
    # labelkit's visible label survives a platform's re-encode that dropped the metadata
    labeled = Labeler(PRODUCER, key).label_image(skimage_photo("coffee.png"), "jpeg").data
    stripped = io.BytesIO()
    Image.open(io.BytesIO(labeled)).save(stripped, "JPEG", quality=85)
    traced = platform.propagate(stripped.getvalue(), source="s.jpg")
    assert traced.label_class == "3" and "visible" in traced.reason
    assert verify(traced.data, name="s.jpg").record["Label"] == "3"


def test_an_invalid_label_is_replaced_by_one_label_3(platform, key):
    data = Labeler(PRODUCER, key).label_image(skimage_photo("coffee.png"), "png").data
    container = formats.parse(data)
    broken = container.with_label('{"Label":"1","ContentProducer":"not a code!"}')
    result = platform.propagate(broken, source="b.png")
    assert result.label_class == "3" and "invalid label" in result.reason
    report = verify(result.data, name="b.png")
    assert report.check("single_label").status == "pass" and report.record["Label"] == "3"


def test_an_edit_after_the_platform_signed_fails(platform, platform_key, key):
    data = Labeler(PRODUCER, key).label_image(skimage_photo("coffee.png"), "png").data
    out = platform.propagate(data, source="c.png").data
    container = formats.parse(out)
    label = container.carriers[0].text
    edited = container.with_label(label.replace(PLATFORM, PRODUCER[:22] + "2" + "A" * 4))
    report = verify(edited, public_key=[key.public, platform_key.public], name="c.png")
    assert report.check("propagator_signature").status == "fail"
    assert report.verdict == "noncompliant"


def test_refusals(platform, key, platform_key):
    with pytest.raises(InvalidRecord):
        Propagator(PRODUCER, platform_key)  # a generation code, not a propagation one
    plain = Labeler(PRODUCER, key).label_text("A generated answer.\n").data
    with pytest.raises(UnsupportedFormat, match="no metadata field"):
        platform.propagate(plain, source="a.txt")
    with pytest.raises(LabelkitError, match="t.jpg"):
        platform.propagate(b"\xff\xd8\xff\xe0" + b"\x00" * 20, source="t.jpg")


def test_cli_propagate(tmp_path, key, platform_key, photo_jpeg, capsys):
    from labelkit.cli import main

    keyfile = tmp_path / "platform.key"
    write_key_pair(keyfile, platform_key)
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    (uploads / "labeled.png").write_bytes(
        Labeler(PRODUCER, key).label_image(skimage_photo("coffee.png"), "png").data)
    (uploads / "plain.jpg").write_bytes(photo_jpeg)
    out = tmp_path / "out"
    assert main(["propagate", "--propagator", PLATFORM, "--key", str(keyfile), "-o", str(out),
                 str(uploads)]) == 0
    printed = capsys.readouterr().out
    assert "Label 1" in printed and "not relabeled" in printed
    assert sorted(p.name for p in out.iterdir()) == ["labeled.png"]  # nothing for plain.jpg
    assert main(["propagate", "--propagator", PLATFORM, "--key", str(keyfile), "-o", str(out),
                 "--declared-ai", str(uploads / "plain.jpg")]) == 0
    report = verify(out / "plain.jpg", public_key=platform_key.public)
    assert report.record["Label"] == "2"
    assert main(["propagate", "--propagator", PRODUCER, "--key", str(keyfile), "-o", str(out),
                 str(uploads)]) == 2
    assert main(["verify", "--json", "--pubkey", f"{keyfile}.pub", str(out / "plain.jpg")]) == 0
    line = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert line["signature"]["propagator"]["status"] == "valid"


def test_an_empty_producer_is_allowed_only_in_a_platforms_label_2_or_3():
    from labelkit.record import field_problems

    def fails(**fields):
        base = {"Label": "1", "ContentProducer": "", "ProduceID": "", "ReservedCode1": "",
                "ContentPropagator": "", "PropagateID": "", "ReservedCode2": ""}
        return [p.message for p in field_problems({**base, **fields}) if p.status == "fail"]

    assert fails() == ["ContentProducer is empty"]
    assert fails(Label="2") == ["ContentProducer is empty"]  # no platform in the label
    assert fails(Label="1", ContentPropagator=PLATFORM) == ["ContentProducer is empty"]
    assert fails(Label="2", ContentPropagator=PLATFORM) == []
    assert fails(Label="3", ContentPropagator=PLATFORM) == []


def test_relabelings_go_into_the_platforms_ledger(tmp_path, key, platform_key, capsys):
    from labelkit.cli import main
    from labelkit.ledger import open_ledger

    data = Labeler(PRODUCER, key).label_image(skimage_photo("coffee.png"), "png").data
    with open_ledger(tmp_path / "platform.sqlite3") as ledger:
        result = Propagator(PLATFORM, platform_key, ledger=ledger).propagate(data, source="a.png")
        (row,) = ledger.propagations(propagate_id=result.record.propagate_id)
        assert row.produce_id == result.record.produce_id and row.label == "1"
        assert row.essence_digest == formats.essence_digest(formats.parse(data)).hex()
    capsys.readouterr()
    assert main(["ledger", "show", result.record.produce_id,
                 "--ledger", str(tmp_path / "platform.sqlite3")]) == 0
    (shown,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert shown["kind"] == "propagation" and shown["propagator"] == PLATFORM
