"""C2PA Content Credentials: signed last into every format C2PA carries, validated by labelkit's
verify and by c2pa-python's own Reader, tampering and metadata edits caught, and formats C2PA
cannot carry reported as not applicable.

Fixtures are made at run time: a photo from scikit-image's wheel, audio by the demo's PyAV
writer, video by ffmpeg, documents by python-docx and Pillow."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelkit import Labeler, formats, verify
from labelkit.errors import LabelkitError
from labelkit.policy import Policy
from labelkit.record import AIGCRecord

from .conftest import PRODUCER, skimage_photo

c2pa = pytest.importorskip("c2pa", reason="c2pa-python is not installed (the c2pa extra)")

from labelkit.credentials.certs import make_dev_credentials  # noqa: E402
from labelkit.credentials.manifest import (AIGC_ASSERTION, SOFT_BINDING_ALG,  # noqa: E402
                                           TRAINED_ALGORITHMIC_MEDIA, build_manifest)
from labelkit.credentials.signer import C2paSigner, settings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from demo import write_audio  # noqa: E402

FFMPEG = shutil.which("ffmpeg")
GENERATOR = "Example Diffusion 3"

IMAGES = {"photo.jpg": "JPEG", "photo.png": "PNG", "photo.webp": "WEBP", "photo.gif": "GIF",
          "photo.tiff": "TIFF"}
AUDIO = ["voice.wav", "voice.mp3", "voice.flac", "voice.m4a"]
VIDEO = ["clip.mp4", "clip.mov"]
MIME = {".jpg": "image/jpeg", ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif",
        ".tiff": "image/tiff", ".wav": "audio/wav", ".mp3": "audio/mpeg", ".flac": "audio/flac",
        ".m4a": "audio/mp4", ".mp4": "video/mp4", ".mov": "video/quicktime"}


@pytest.fixture(scope="module")
def dev():
    """Development credentials (ES256) and their CA, the trust anchor."""
    return make_dev_credentials("es256")


@pytest.fixture(scope="module")
def labeler(key, dev):
    return Labeler(PRODUCER, key, Policy(generator=GENERATOR), c2pa=C2paSigner(dev[0]))


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("c2pa-src")
    photo = Image.fromarray(skimage_photo("coffee.png")).resize((320, 240))
    out = {}
    for name, fmt in IMAGES.items():
        photo.save(folder / name, fmt)
        out[name] = folder / name
    for name in AUDIO:
        write_audio(folder / name)
        out[name] = folder / name
    if FFMPEG:
        for name in VIDEO:
            subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i",
                            "testsrc2=size=320x240:rate=10", "-t", "3", "-c:v", "libx264",
                            "-pix_fmt", "yuv420p", str(folder / name)], check=True)
            out[name] = folder / name
    return out


@pytest.fixture(scope="module")
def labeled(sources, labeler, tmp_path_factory) -> dict[str, tuple[Path, object]]:
    folder = tmp_path_factory.mktemp("c2pa-out")
    return {name: (folder / name, labeler.label_file(src, folder / name))
            for name, src in sources.items()}


def _reader(data: bytes, mime: str, anchor: bytes | None):
    ctx = c2pa.Context.from_dict(settings(trust_anchors=anchor.decode() if anchor else None))
    return c2pa.Reader(mime, io.BytesIO(data), context=ctx)


@pytest.mark.parametrize("name", [*IMAGES, *AUDIO, *VIDEO])
def test_every_c2pa_format_is_signed_and_trusted(labeled, dev, key, name):
    if name not in labeled:
        pytest.skip("ffmpeg is not installed: no video fixture")
    path, result = labeled[name]
    assert result.layers[-1] == "c2pa"
    data = path.read_bytes()
    # c2pa-python's own Reader, with the development CA as the only anchor
    reader = _reader(data, MIME[path.suffix], dev[1])
    assert reader.get_validation_state() == "Trusted"
    assertions = {a["label"]: a["data"] for a in reader.get_active_manifest()["assertions"]}
    assert assertions[AIGC_ASSERTION] == result.record.as_dict()
    created = assertions["c2pa.actions.v2"]["actions"][0]
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"] == TRAINED_ALGORITHMIC_MEDIA
    assert created["softwareAgent"]["name"] == "labelkit"
    assert created["softwareAgent"]["labelkit.generator"] == GENERATOR
    # labelkit's verify: every other layer still holds, and the manifest agrees with the label
    report = verify(path, key=key, c2pa_trust=dev[1].decode())
    assert report.verdict == "compliant", [(c.id, c.message) for c in report.checks]
    assert report.c2pa["status"] == "trusted" and report.c2pa["aigc_matches_label"] is True
    assert report.check("c2pa").status == "pass" and report.check("c2pa_aigc").status == "pass"
    if result.watermark_payload is not None:
        binding = assertions["c2pa.soft-binding"]
        assert binding["alg"] == SOFT_BINDING_ALG
        assert report.c2pa["soft_binding"]["payload"] == f"{result.watermark_payload:016x}"
        if report.watermark.get("present"):
            assert report.c2pa["soft_binding"]["matches_watermark"] is True


def test_without_the_anchor_it_is_valid_but_untrusted(labeled, key):
    path, _ = labeled["photo.jpg"]
    report = verify(path, key=key)
    assert report.c2pa["status"] == "valid"
    assert "signingCredential.untrusted" in report.c2pa["failures"]
    assert report.check("c2pa").status == "warn" and report.verdict == "compliant"
    other_ca = make_dev_credentials("es256")[1]  # a CA that did not issue the signer
    assert verify(path, key=key, c2pa_trust=other_ca.decode()).c2pa["status"] == "valid"
    assert verify(path, key=key, check_c2pa=False).c2pa["status"] == "n/a"


@pytest.mark.parametrize("name", ["photo.jpg", "photo.png", "voice.mp3", "clip.mp4"])
def test_one_changed_byte_is_invalid(labeled, dev, key, name, tmp_path):
    if name not in labeled:
        pytest.skip("ffmpeg is not installed: no video fixture")
    data = bytearray(labeled[name][0].read_bytes())
    if name.endswith(".png"):  # a pixel byte inside IDAT, with the chunk's CRC made right again
        start = data.index(b"IDAT") + 4
        length = int.from_bytes(data[start - 8:start - 4], "big")
        data[start + length // 2] ^= 0x01
        data[start + length:start + length + 4] = zlib.crc32(
            data[start - 4:start + length]).to_bytes(4, "big")
    else:
        data[-len(data) // 3] ^= 0x01  # in the essence, well past every header
    report = verify(bytes(data), key=key, c2pa_trust=dev[1].decode(), name=name)
    assert report.c2pa["status"] == "invalid"
    assert any(f.endswith("Hash.mismatch") for f in report.c2pa["failures"])
    assert report.check("c2pa").status == "fail" and report.verdict == "noncompliant"
    assert _reader(bytes(data), MIME[Path(name).suffix], dev[1]).get_validation_state() == "Invalid"


def test_a_metadata_edit_after_signing_is_reported(labeled, dev, key):
    data = labeled["photo.jpg"][0].read_bytes()
    container = formats.parse(data)
    label = container.carriers[0].text
    edited = container.with_label(label.replace('"Label":"1"', '"Label":"3"'))
    report = verify(edited, key=key, c2pa_trust=dev[1].decode(), name="edited.jpg")
    assert report.c2pa["status"] == "invalid"
    assert report.c2pa["aigc_matches_label"] is False  # and the assertion still says "1"
    assert report.check("c2pa_aigc").status == "fail"
    assert report.verdict == "noncompliant"


def test_an_aigc_assertion_that_differs_from_the_label_fails(labeler, dev, key):
    labeled = Labeler(PRODUCER, key).label_image(skimage_photo("astronaut.png")[:256, :256],
                                                 "jpeg")
    other = AIGCRecord(content_producer=PRODUCER, produce_id="01SOMEOTHERITEM0000000000")
    signed = C2paSigner(dev[0]).sign(labeled.data, "image/jpeg",
                                     build_manifest(other, title="x.jpg"), "x.jpg")
    report = verify(signed, key=key, c2pa_trust=dev[1].decode(), name="x.jpg")
    assert report.c2pa["status"] == "trusted"  # intact, but about another item
    assert report.c2pa["aigc_matches_label"] is False and report.verdict == "noncompliant"


@pytest.mark.parametrize("fmt", ["ogg", "text", "docx", "pdf"])
def test_formats_c2pa_cannot_carry_are_not_applicable(labeler, key, dev, tmp_path, fmt):
    if fmt == "ogg":
        write_audio(tmp_path / "voice.ogg")
        src = tmp_path / "voice.ogg"
    elif fmt == "text":
        src = tmp_path / "answer.txt"
        src.write_text("A generated answer.\n\nIn two paragraphs.\n", encoding="utf-8")
    elif fmt == "docx":
        docx = pytest.importorskip("docx")
        document = docx.Document()
        document.add_paragraph("A generated report.")
        src = tmp_path / "report.docx"
        document.save(src)
    else:
        src = tmp_path / "scan.pdf"
        Image.fromarray(skimage_photo("coffee.png")).save(src, "PDF", resolution=72)
    out = tmp_path / ("out-" + src.name)
    result = labeler.label_file(src, out)
    assert "c2pa" not in result.layers
    assert any(n.startswith("C2PA not applicable") for n in result.notes)
    report = verify(out, key=key, c2pa_trust=dev[1].decode())
    assert report.c2pa["status"] == "n/a" and "not applicable" in report.c2pa["message"]
    assert report.check("c2pa") is None and report.verdict == "compliant"


def test_unlabeled_file_has_no_manifest(key):
    plain = io.BytesIO()
    Image.fromarray(skimage_photo("coffee.png")).save(plain, "JPEG")
    assert verify(plain.getvalue(), key=key, name="p.jpg").c2pa["status"] == "absent"


def test_ed25519_and_a_callback_signer(key, tmp_path):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    photo = skimage_photo("astronaut.png")[:256, :256]
    ed, ed_root = make_dev_credentials("ed25519")
    report = verify(Labeler(PRODUCER, key, c2pa=C2paSigner(ed)).label_image(photo, "png").data,
                    key=key, c2pa_trust=ed_root.decode(), name="x.png")
    assert report.c2pa["status"] == "trusted"
    # An HSM/KMS keeps the key: labelkit hands it the bytes to sign and gets the signature.
    es, es_root = make_dev_credentials("es256")
    private = serialization.load_pem_private_key(es.key_pem, None)
    calls = []

    def hsm(data: bytes) -> bytes:
        calls.append(len(data))
        return private.sign(data, ec.ECDSA(hashes.SHA256()))

    signer = C2paSigner(callback=hsm, chain_pem=es.chain_pem, alg="es256")
    report = verify(Labeler(PRODUCER, key, c2pa=signer).label_image(photo, "png").data,
                    key=key, c2pa_trust=es_root.decode(), name="x.png")
    assert calls and report.c2pa["status"] == "trusted"


def test_an_unreachable_timestamp_authority_fails_and_writes_nothing(key, dev, sources, tmp_path):
    signer = C2paSigner(dev[0], tsa_url="http://127.0.0.1:9/tsa")  # nothing listens on port 9
    out = tmp_path / "never.jpg"
    with pytest.raises(LabelkitError, match="timestamp authority"):
        Labeler(PRODUCER, key, c2pa=signer).label_file(sources["photo.jpg"], out)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    with pytest.raises(LabelkitError, match="http"):
        C2paSigner(dev[0], tsa_url="ftp://example.org/")


def test_video_signing_leaves_no_staging_file(labeler, sources, tmp_path):
    if "clip.mp4" not in sources:
        pytest.skip("ffmpeg is not installed")
    result = labeler.label_video(sources["clip.mp4"], tmp_path / "clip.mp4")
    assert result.layers[-1] == "c2pa" and result.path == str(tmp_path / "clip.mp4")
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_cli_keygen_label_verify(tmp_path, sources):
    from labelkit.cli import main

    keyfile = tmp_path / "provider.key"
    assert main(["keygen", "-o", str(keyfile), "--c2pa", "-q"]) == 0
    root = Path(f"{keyfile}.c2pa-root.pem")
    assert root.exists()
    outdir = tmp_path / "out"
    code = main(["label", "--producer", PRODUCER, "--key", str(keyfile), "-o", str(outdir),
                 "--c2pa", "--generator", GENERATOR, "-q", str(sources["photo.jpg"]),
                 str(sources["voice.wav"])])
    assert code == 0
    lines = _verify_json(main, "--key", str(keyfile), "--c2pa-trust", str(root), str(outdir))
    assert {r["c2pa"]["status"] for r in lines} == {"trusted"}
    assert all(r["verdict"] == "compliant" for r in lines)
    # Bad options fail before anything is read.
    assert main(["verify", "--c2pa-trust", str(tmp_path / "missing.pem"), str(outdir)]) == 2
    assert main(["label", "--producer", PRODUCER, "--key", str(keyfile), "-o", str(outdir),
                 "--c2pa-chain", str(root), "-q", str(sources["photo.jpg"])]) == 2
    assert main(["label", "--producer", PRODUCER, "--key", str(keyfile), "-o", str(outdir),
                 "--generator", "x", "-q", str(sources["photo.jpg"])]) == 2


def _verify_json(main, *args: str) -> list[dict]:
    import contextlib

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        main(["verify", "--json", "-q", *args])
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_signing_keeps_the_pixels_and_the_label(key, dev):
    # The manifest is added beside the content: the picture decodes exactly as before signing
    # and the label's carriers are byte-identical.
    before = Labeler(PRODUCER, key).label_image(skimage_photo("coffee.png")[:200, :300], "png")
    after = C2paSigner(dev[0]).sign(before.data, "image/png",
                                    build_manifest(before.record, title="x.png"), "x.png")
    assert len(after) > len(before.data)
    with Image.open(io.BytesIO(before.data)) as a, Image.open(io.BytesIO(after)) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert ([c.text for c in formats.parse(after).carriers]
            == [c.text for c in formats.parse(before.data).carriers])


@pytest.mark.parametrize("where", [0.1, 0.3, 0.5])  # past ~0.8: signature padding
def test_a_damaged_manifest_is_invalid_not_a_crash(labeled, dev, key, where):
    data = bytearray(labeled["photo.jpg"][0].read_bytes())
    start = data.index(b"\xff\xeb")  # the APP11 segment holding the JUMBF manifest store
    length = int.from_bytes(data[start + 2:start + 4], "big")
    data[start + 4 + int(length * where)] ^= 0x40
    report = verify(bytes(data), key=key, c2pa_trust=dev[1].decode(), name="damaged.jpg")
    assert report.c2pa["status"] in ("invalid", "absent")
    if report.c2pa["status"] == "invalid":
        assert report.check("c2pa").status == "fail"
    # the GB 45438 label is untouched by damage to the manifest
    assert report.check("signature") is None or report.signature["status"] == "valid"
