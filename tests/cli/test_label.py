"""`labelkit label`: folder trees, workers, resuming, bad files, usage errors, exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image

from labelkit import formats
from labelkit.cli._inputs import STATE_NAME

from ..conftest import PRODUCER
from .conftest import IMAGES, NOT_IMAGES, files_under, gradient, image_bytes, label_args

BAD_CHECKSUM = "001191110102MAD55U9H0G10002"  # the example code with a wrong USCC check character


def _digests(folder: Path) -> dict[str, str]:
    return {rel: hashlib.sha256((folder / rel).read_bytes()).hexdigest()
            for rel in files_under(folder)}


def _summary(out: str) -> dict[str, int]:
    m = re.search(r"labeled (\d+), skipped (\d+) \(already done\), failed (\d+).*?"
                  r"(\d+) non-image file\(s\) ignored; [\d.]+ s .*files/s", out)
    assert m, out
    return dict(zip(("labeled", "skipped", "failed", "not_images"), map(int, m.groups())))


def _verify_json(cli, pubfile: Path, *paths) -> list[dict]:
    r = cli("verify", "--pubkey", pubfile, "--json", *paths)
    lines = r.json_lines()
    assert len(lines) == len(r.out.splitlines())  # nothing but JSON on stdout
    return lines


def _produce_ids(cli, pubfile: Path, outdir: Path) -> dict[str, str]:
    return {Path(d["path"]).relative_to(outdir).as_posix(): d["record"]["ProduceID"]
            for d in _verify_json(cli, pubfile, outdir)}


def _no_temp_files(folder: Path) -> None:
    assert not [p for p in folder.rglob("*") if p.name.endswith(".lk-tmp")]


# -- the normal run ---------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_label_tree_mirrors_and_verifies(cli, tree, keyfile, pubfile, tmp_path, jobs):
    before = _digests(tree)
    out = tmp_path / "out"
    r = cli(*label_args(keyfile, out, tree, extra=("-j", jobs)))
    assert r.code == 0, r.err
    assert _summary(r.out) == \
        {"labeled": 7, "skipped": 0, "failed": 0, "not_images": len(NOT_IMAGES)}
    assert files_under(out) == set(IMAGES) | {STATE_NAME}
    assert _digests(tree) == before  # originals untouched
    for rel in IMAGES:  # each output keeps its input's format (sniffed, whatever the name)
        src, dst = (tree / rel).read_bytes(), (out / rel).read_bytes()
        assert formats.sniff(dst).NAME == formats.sniff(src).NAME
    reports = _verify_json(cli, pubfile, out)
    assert sorted(Path(d["path"]).relative_to(out).as_posix() for d in reports) == sorted(IMAGES)
    for d in reports:
        assert d["verdict"] == "compliant", d
        assert d["record"]["ContentProducer"] == PRODUCER
        assert d["signature"]["status"] == "valid"
        assert d["explicit"]["status"] == "present"
    assert len({d["record"]["ProduceID"] for d in reports}) == 7


def test_explicit_files_go_to_outdir_by_name(cli, tree, keyfile, pubfile, tmp_path):
    out, text = tmp_path / "out", "AI生成 AI-generated"
    r = cli(*label_args(keyfile, out, tree / "a" / "b" / "coffee.png", tree / "flat.png",
                        extra=("--position", "top-left", "--text", text)))
    assert r.code == 0, r.err
    assert files_under(out) == {"coffee.png", "flat.png", STATE_NAME}
    reports = _verify_json(cli, pubfile, out, "--text", text)
    assert [d["explicit"].get("position") for d in reports] == ["top-left", "top-left"]
    assert all(d["verdict"] == "compliant" for d in reports)


def test_same_file_named_twice_is_labeled_once(cli, tree, keyfile, tmp_path):
    r = cli(*label_args(keyfile, tmp_path / "out", tree / "flat.png", tree / "flat.png"))
    assert r.code == 0 and _summary(r.out)["labeled"] == 1


def test_quiet_prints_only_errors(cli, tree, keyfile, tmp_path):
    r = cli(*label_args(keyfile, tmp_path / "out", tree, extra=("-q",)))
    assert r.code == 0 and r.out == "" and r.err == ""


# -- resuming ---------------------------------------------------------------------------------


def test_rerun_skips_and_force_relabels(cli, tree, keyfile, pubfile, tmp_path):
    out = tmp_path / "out"
    assert cli(*label_args(keyfile, out, tree)).code == 0
    first = _produce_ids(cli, pubfile, out)
    mtimes = {rel: (out / rel).stat().st_mtime_ns for rel in IMAGES}
    r = cli(*label_args(keyfile, out, tree, extra=("-j", "2")))
    assert r.code == 0, r.err
    assert _summary(r.out) == \
        {"labeled": 0, "skipped": 7, "failed": 0, "not_images": len(NOT_IMAGES)}
    assert {rel: (out / rel).stat().st_mtime_ns for rel in IMAGES} == mtimes
    r = cli(*label_args(keyfile, out, tree, extra=("--force",)))
    assert r.code == 0, r.err
    assert _summary(r.out)["labeled"] == 7 and _summary(r.out)["skipped"] == 0
    again = _produce_ids(cli, pubfile, out)
    assert set(again) == set(first)
    assert all(again[rel] != first[rel] for rel in first)


def test_resume_relabels_only_what_is_not_done(cli, tree, keyfile, pubfile, tmp_path):
    out = tmp_path / "out"
    assert cli(*label_args(keyfile, out, tree)).code == 0
    (out / "flat.png").unlink()  # output lost
    webp = out / "coffee.webp"  # output damaged after the run (say, a copy cut short)
    webp.write_bytes(webp.read_bytes()[: webp.stat().st_size // 2])
    (tree / "gradient.tif").write_bytes(image_bytes(gradient(200, 300), "TIFF"))  # input changed
    # A temp file a killed run left behind, and a journal line torn by a crash.
    stale = out / "a" / ".astro.jpg.k1ll3d00.lk-tmp"
    stale.write_bytes(b"\xff\xd8 half a picture")
    os.utime(stale, (time.time() - 3600,) * 2)
    with open(out / STATE_NAME, "a") as f:
        f.write('{"v":1,"out":"a/astro.jpg","in":')
    r = cli(*label_args(keyfile, out, tree))
    assert r.code == 0, r.err
    assert _summary(r.out)["labeled"] == 3 and _summary(r.out)["skipped"] == 4
    assert not stale.exists()
    reports = _verify_json(cli, pubfile, out)
    assert len(reports) == 7 and all(d["verdict"] == "compliant" for d in reports)
    with Image.open(out / "gradient.tif") as im:
        assert im.size == (200, 300)  # the new input, not the stale output


def test_changed_options_relabel(cli, tree, keyfile, tmp_path):
    out = tmp_path / "out"
    assert cli(*label_args(keyfile, out, tree)).code == 0
    r = cli(*label_args(keyfile, out, tree, extra=("--position", "top-left")))
    assert r.code == 0 and _summary(r.out)["labeled"] == 7


def test_outdir_inside_input_folder_is_not_an_input(cli, tree, keyfile, tmp_path):
    out = tree / "labeled"
    assert cli(*label_args(keyfile, out, tree)).code == 0
    r = cli(*label_args(keyfile, out, tree))
    assert r.code == 0 and _summary(r.out)["skipped"] == 7 and _summary(r.out)["labeled"] == 0
    assert not (out / "labeled").exists()


# -- bad files --------------------------------------------------------------------------------


def _broken_crc_png(data: bytes) -> bytes:
    pos = data.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", data[pos : pos + 4])
    crc_at = pos + 8 + length
    (crc,) = struct.unpack(">I", data[crc_at : crc_at + 4])
    assert crc == zlib.crc32(data[pos + 4 : crc_at])
    return data[:crc_at] + struct.pack(">I", crc ^ 0xFFFF) + data[crc_at + 4 :]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_bad_files_reported_others_labeled(cli, tree, keyfile, pubfile, tmp_path, jobs):
    jpeg = (tree / "a" / "astro.jpg").read_bytes()
    (tree / "a" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (tree / "bad_crc.png").write_bytes(_broken_crc_png((tree / "flat.png").read_bytes()))
    (tree / "b" / "fake.gif").write_text("text inside a folder, named like a picture\n")
    text_png = tmp_path / "text.png"
    text_png.write_text("a text file named like a picture\n")
    out = tmp_path / "out"
    r = cli(*label_args(keyfile, out, tree, text_png, extra=("-j", jobs)))
    assert r.code == 1
    assert _summary(r.out) == \
        {"labeled": 7, "skipped": 0, "failed": 4, "not_images": len(NOT_IMAGES)}
    errors = [line for line in r.err.splitlines() if "error:" in line]
    assert len(errors) == 4, r.err
    for name, problem in (("truncated.jpg", "truncated"), ("bad_crc.png", "CRC"),
                          ("text.png", "not a supported format"),
                          ("fake.gif", "not a supported format")):
        line = next(line for line in errors if name in line)
        assert problem in line
    assert files_under(out) == set(IMAGES) | {STATE_NAME}  # nothing for the bad ones
    _no_temp_files(out)
    assert all(d["verdict"] == "compliant" for d in _verify_json(cli, pubfile, out))
    # The failures are not "done": a rerun tries them again, and only them.
    r = cli(*label_args(keyfile, out, tree, text_png))
    assert r.code == 1 and _summary(r.out)["failed"] == 4 and _summary(r.out)["skipped"] == 7


def test_picture_too_small_for_the_label_names_the_file(cli, tmp_path, keyfile):
    tiny = tmp_path / "tiny.png"
    tiny.write_bytes(image_bytes(gradient(12, 8), "PNG"))
    r = cli(*label_args(keyfile, tmp_path / "out", tiny))
    assert r.code == 1
    assert f"{tiny}:" in r.err
    assert not (tmp_path / "out" / "tiny.png").exists()


# -- usage errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (("--key", "{key}", "-o", "{out}", "{tree}"), "the following arguments are required: --producer"),
    (("--producer", BAD_CHECKSUM, "--key", "{key}", "-o", "{out}", "{tree}"), "checksum"),
    (("--producer", PRODUCER, "--key", "{key}", "-o", "{out}", "--frobnicate", "{tree}"),
     "unrecognized arguments: --frobnicate"),
    (("--producer", PRODUCER, "--key", "{key}", "-o", "{out}", "{tree}/nope.png"),
     "no such file or folder"),
    (("--producer", PRODUCER, "--key", "{key}", "-o", "{out}", "-j", "-1", "{tree}"), "negative"),
    (("--producer", PRODUCER, "--key", "{tree}/flat.png", "-o", "{out}", "{tree}"), "--key"),
    (("--producer", PRODUCER, "--key", "{key}", "-o", "{out}", "--no-explicit", "{tree}"),
     "--recipient"),
    (("--producer", PRODUCER, "--key", "{key}", "-o", "{out}", "--text", "made by a model",
      "{tree}"), "AI element"),
    (("--producer", PRODUCER, "--key", "{key}", "-o", "{out}", "--position", "middle",
      "{tree}"), "invalid choice"),
    (("--producer", PRODUCER, "--key", "{key}", "-o", "{tree}/flat.png", "{tree}"),
     "not a folder"),
])
def test_usage_errors_exit_2(cli, tree, keyfile, tmp_path, args, message):
    out = tmp_path / "out"
    values = {"key": keyfile, "out": out, "tree": tree}
    r = cli("label", *(a.format(**values) for a in args))
    assert r.code == 2, (r.out, r.err)
    assert message in r.err
    assert "usage: labelkit label" in r.err
    assert not out.exists()


def test_refuses_to_overwrite_an_input(cli, tree, keyfile, tmp_path, monkeypatch):
    before = _digests(tree)
    monkeypatch.chdir(tmp_path)
    for args in ((tree, tree / "flat.png"), (tree, tree), (tree, "photos/flat.png"),
                 ("photos/a/../b", "photos/b")):
        r = cli(*label_args(keyfile, args[0], args[1]))
        assert r.code == 2, args
        assert "would overwrite the input" in r.err
    out = tmp_path / "out"
    out.mkdir()
    os.link(tree / "flat.png", out / "flat.png")  # another name for the same file
    r = cli(*label_args(keyfile, out, tree / "flat.png"))
    assert r.code == 2 and "would overwrite the input" in r.err
    assert _digests(tree) == before


def test_refuses_two_inputs_on_one_output(cli, tree, keyfile, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "flat.png").write_bytes((tree / "gradient.tif").read_bytes())
    r = cli(*label_args(keyfile, tmp_path / "out", tree, other))
    assert r.code == 2
    assert "would both be written to" in r.err and "flat.png" in r.err
    assert not (tmp_path / "out").exists()


# -- metadata only, for a recipient on record -------------------------------------------------


def test_no_explicit_needs_and_writes_recipient_log(cli, tree, keyfile, pubfile, tmp_path):
    out, log = tmp_path / "out", tmp_path / "recipients.jsonl"
    r = cli(*label_args(keyfile, out, tree, extra=(
        "-j", "2", "--no-explicit", "--recipient", "customer-42", "--recipient-log", log)))
    assert r.code == 0, r.err
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(entries) == 7 and {e["recipient"] for e in entries} == {"customer-42"}
    reports = _verify_json(cli, pubfile, out)
    assert {e["ProduceID"] for e in entries} == {d["record"]["ProduceID"] for d in reports}
    for d in reports:
        assert d["signature"]["status"] == "valid" and d["explicit"]["status"] == "absent"
    # Metadata only: the JPEG's compressed image data is byte-identical to the input's.
    src = formats.parse((tree / "a/astro.jpg").read_bytes())
    dst = formats.parse((out / "a/astro.jpg").read_bytes())
    assert b"".join(map(bytes, src.essence())) == b"".join(map(bytes, dst.essence()))
    r = cli(*label_args(keyfile, out, tree, extra=("--recipient", "x")))
    assert r.code == 2 and "only apply with --no-explicit" in r.err


def test_metadata_only_keeps_every_essence(cli, tree, keyfile, pubfile, tmp_path):
    out = tmp_path / "out"
    r = cli(*label_args(keyfile, out, tree, extra=("--metadata-only",)))
    assert r.code == 0, r.err
    for rel in IMAGES:
        assert formats.essence_digest(formats.parse((tree / rel).read_bytes())) == \
            formats.essence_digest(formats.parse((out / rel).read_bytes())), rel
    for d in _verify_json(cli, pubfile, out):
        assert d["signature"]["status"] == "valid", d["path"]
    r = cli(*label_args(keyfile, out, tree, extra=("--metadata-only", "--no-explicit")))
    assert r.code == 2 and "exclude each other" in r.err


# -- internal errors --------------------------------------------------------------------------


def test_internal_error_exit_3_short_message(cli, tree, keyfile, tmp_path, monkeypatch):
    from labelkit.labeler import Labeler

    def broken(self, *args, **kwargs):
        raise RuntimeError("boom in the labeler")

    monkeypatch.setattr(Labeler, "label_file", broken)
    out = tmp_path / "out"
    r = cli(*label_args(keyfile, out, tree / "flat.png"))
    assert r.code == 3
    assert "internal error" in r.err and "RuntimeError: boom in the labeler" in r.err
    assert "report" in r.err and "Traceback" not in r.err
    assert not (out / "flat.png").exists()
    r = cli(*label_args(keyfile, out, tree / "flat.png", extra=("--debug",)))
    assert r.code == 3 and "Traceback" in r.err


def test_internal_error_outside_files_exit_3(cli, tree, keyfile, tmp_path, monkeypatch):
    from labelkit.cli import label

    def broken(*args, **kwargs):
        raise RuntimeError("planner broke")

    monkeypatch.setattr(label, "_plan", broken)
    r = cli(*label_args(keyfile, tmp_path / "out", tree))
    assert r.code == 3
    assert "internal error: RuntimeError: planner broke" in r.err and "Traceback" not in r.err
    r = cli("--debug", *label_args(keyfile, tmp_path / "out", tree))
    assert r.code == 3 and "Traceback" in r.err


def test_keyboard_interrupt_maps_to_130(cli, tree, keyfile, tmp_path, monkeypatch):
    from labelkit.cli import label

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(label, "collect", interrupted)
    r = cli(*label_args(keyfile, tmp_path / "out", tree))
    assert r.code == 130 and "interrupted" in r.err
