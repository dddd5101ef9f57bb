"""Audio files end to end: label (every layer, and metadata only), verify, and bad input.

Fixtures are made at run time with PyAV (a voice-like glide; no media is committed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import labelkit
from labelkit import formats
from labelkit.policy import AudioPolicy, Policy

from .conftest import PRODUCER

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
from demo import tts_like, write_audio  # noqa: E402

FORMATS = ["narration.wav", "narration.mp3", "narration.flac", "narration.ogg", "narration.m4a"]


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("audio")
    out = {}
    for name in FORMATS:
        write_audio(folder / name)
        out[name] = folder / name
    return out


def _ffprobe_tags(path: Path) -> dict:
    import json

    text = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of",
                           "json", str(path)], check=True, capture_output=True, text=True).stdout
    info = json.loads(text)
    tags = dict(info["format"].get("tags", {}))
    for s in info["streams"]:
        tags.update(s.get("tags", {}))
    return {k.upper(): v for k, v in tags.items()}, info


@pytest.mark.parametrize("name", FORMATS)
def test_label_every_layer_and_verify(samples, tmp_path, key, name):
    labeler = labelkit.Labeler(PRODUCER, key)
    dst = tmp_path / name
    result = labeler.label_file(samples[name], dst)
    assert result.layers[:1] == ("explicit",) and "metadata" in result.layers
    assert "signature" in result.layers and "watermark" in result.layers
    original, labeled = formats.parse(samples[name].read_bytes()), formats.parse(dst.read_bytes())
    assert labeled.format == original.format and len(labeled.carriers) == 1
    report = labelkit.verify(dst, key=key)
    assert report.verdict == "compliant", report.to_json()
    assert report.signature["status"] == "valid"
    assert report.explicit["status"] == "present"
    assert report.explicit["spans"][0]["where"] == "start"
    # an independent reader sees the same stream kind and the label where it can
    tags, info = _ffprobe_tags(dst)
    assert info["streams"][0]["codec_type"] == "audio"
    if name.endswith((".mp3", ".flac", ".ogg", ".m4a")):
        assert "AIGC" in tags and tags["AIGC"] == labeled.carriers[0].text


@pytest.mark.parametrize("name", FORMATS)
def test_metadata_only_keeps_the_audio(samples, tmp_path, key, name):
    labeler = labelkit.Labeler(PRODUCER, key)
    dst = tmp_path / name
    result = labeler.label_file(samples[name], dst, explicit="present")
    assert result.layers == ("metadata", "signature")
    assert any("no cue and no watermark" in n for n in result.notes)
    before, after = formats.parse(samples[name].read_bytes()), formats.parse(dst.read_bytes())
    assert formats.essence_digest(before) == formats.essence_digest(after)
    report = labelkit.verify(dst, key=key)
    assert report.signature["status"] == "valid"
    assert report.explicit["status"] == "absent"  # a warning, not a failure
    assert report.verdict == "compliant"


def test_a_changed_sample_breaks_the_signature(samples, tmp_path, key):
    labeler = labelkit.Labeler(PRODUCER, key)
    dst = tmp_path / "x.wav"
    labeler.label_file(samples["narration.wav"], dst, explicit="present")
    data = bytearray(dst.read_bytes())
    data[-100] ^= 0x40  # inside the data chunk
    report = labelkit.verify(bytes(data), key=key)
    assert report.signature["status"] == "content_mismatch" and report.verdict == "noncompliant"


def test_relabeling_keeps_one_label(samples, tmp_path, key):
    labeler = labelkit.Labeler(PRODUCER, key)
    once, twice = tmp_path / "1.flac", tmp_path / "2.flac"
    labeler.label_file(samples["narration.flac"], once, explicit="present")
    labeler.label_file(once, twice, explicit="present")
    assert len(formats.parse(twice.read_bytes()).carriers) == 1


def _wav(path: Path, pcm: np.ndarray, rate: int) -> Path:
    """A 16-bit WAV written by hand (any channel count, zero samples too)."""
    import struct

    ints = np.round(np.clip(pcm, -1, 1) * 32767).astype("<i2").tobytes()
    ch = pcm.shape[1]
    fmt = struct.pack("<HHIIHH", 1, ch, rate, rate * ch * 2, ch * 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + \
        struct.pack("<I", len(ints)) + ints
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


@pytest.mark.parametrize("case", ["8 channels", "384 kHz", "silence", "zero length",
                                  "shorter than a block"])
def test_edge_cases_have_a_documented_behaviour(tmp_path, key, case):
    labeler = labelkit.Labeler(PRODUCER, key)
    voice = tts_like(3.0, 48000)
    pcm, rate = {
        "8 channels": (np.repeat(voice[:, :1], 8, axis=1), 48000),
        "384 kHz": (tts_like(2.0, 384000), 384000),
        "silence": (np.zeros_like(voice), 48000),
        "zero length": (np.zeros((0, 2), np.float32), 48000),
        "shorter than a block": (voice[: 48000 // 5], 48000),
    }[case]
    src = _wav(tmp_path / "in.wav", pcm, rate)
    dst = tmp_path / "out.wav"
    result = labeler.label_file(src, dst)
    labeled = formats.parse(dst.read_bytes())
    assert len(labeled.carriers) == 1
    report = labelkit.verify(dst, key=key)
    assert report.signature["status"] == "valid"
    assert report.explicit["status"] == "present"  # the cue is there even with no content
    if case == "shorter than a block":
        assert any("shorter than one watermark block" in n for n in result.notes)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_corrupt_files_fail_cleanly(samples, tmp_path, key, damage):
    labeler = labelkit.Labeler(PRODUCER, key)
    data = samples["narration.mp3"].read_bytes()
    bad = data[: len(data) // 3] if damage == "truncated" else data[:64] + bytes(range(256)) * 40
    src = tmp_path / "bad.mp3"
    src.write_bytes(bad)
    dst = tmp_path / "out.mp3"
    try:
        labeler.label_file(src, dst)
    except labelkit.LabelkitError as exc:
        assert "bad.mp3" in str(exc)
        assert not dst.exists()
    else:  # a decodable prefix: labeled, and the output parses with one label
        assert len(formats.parse(dst.read_bytes()).carriers) == 1
    assert src.read_bytes() == bad  # the original is never modified


def test_cli_labels_and_verifies_a_folder_of_audio(samples, tmp_path, key):
    from labelkit.cli import main

    keyfile = tmp_path / "k.key"
    assert main(["keygen", "-o", str(keyfile)]) == 0
    folder = samples["narration.wav"].parent
    out = tmp_path / "out"
    assert main(["label", "--producer", PRODUCER, "--key", str(keyfile), "-o", str(out), "-q",
                 "--audio-cue-placement", "both", str(folder)]) == 0
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(FORMATS)
    assert main(["verify", "-q", "--key", str(keyfile), str(out)]) == 0
