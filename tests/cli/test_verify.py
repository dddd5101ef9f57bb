"""`labelkit verify`: verdicts, the JSON-lines contract, the table, tampering, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from labelkit.verify import STATUSES, VERDICTS

from .conftest import IMAGES, NOT_IMAGES, label_args, make_tree


@pytest.fixture(scope="module")
def labeled(tmp_path_factory, keyfile) -> Path:
    """A labeled copy of the picture tree (labeled once for the module, never modified)."""
    from labelkit.cli import main

    root = tmp_path_factory.mktemp("labeled")
    photos = make_tree(root / "photos")
    assert main(label_args(keyfile, root / "out", photos, extra=("-q",))) == 0
    return root / "out"


def _check_schema(d: dict) -> None:
    assert {"path", "verdict", "record", "checks", "explicit", "signature"} <= set(d)
    assert d["verdict"] in VERDICTS
    assert d["record"] is None or len(d["record"]) == 7
    assert isinstance(d["checks"], list) and d["checks"]
    for check in d["checks"]:
        assert {"id", "status", "message"} <= set(check) and check["status"] in STATUSES
    assert isinstance(d["explicit"], dict) and isinstance(d["signature"], dict)


def test_compliant_tree_exit_0_json_and_table(cli, labeled, pubfile, keyfile):
    r = cli("verify", "--pubkey", pubfile, "--json", labeled)
    assert r.code == 0, r.err
    lines = r.json_lines()
    assert len(lines) == len(r.out.splitlines()) == len(IMAGES)
    for d in lines:
        _check_schema(d)
        assert d["verdict"] == "compliant" and d["signature"]["status"] == "valid"
    assert "7 compliant" in r.err  # the summary stays off stdout with --json
    r = cli("verify", "--key", keyfile, labeled / "flat.png")  # the secret key works too
    assert r.code == 0
    header, row = r.out.splitlines()[:2]
    assert header.split() == ["PATH", "VERDICT", "LABEL", "SIGNATURE", "EXPLICIT", "WATERMARK",
                              "NOTE"]
    # flat.png is too small to carry the watermark; the secret key looks for it anyway
    assert row.split()[:6] == [str(labeled / "flat.png"), "compliant", "valid", "valid",
                               "present", "n/a"]
    assert "1 compliant" in r.out


def test_without_a_key_the_signature_is_unverified(cli, labeled):
    r = cli("verify", "--json", labeled / "a" / "astro.jpg")
    (d,) = r.json_lines()
    assert d["signature"]["status"] == "unverified"


def test_unlabeled_is_not_found_exit_1(cli, tree, pubfile):
    r = cli("verify", "--pubkey", pubfile, "--json", tree / "a" / "astro.jpg")
    assert r.code == 1
    (d,) = r.json_lines()
    _check_schema(d)
    assert d["verdict"] == "not_found" and d["record"] is None
    r = cli("verify", "--pubkey", pubfile, tree)
    assert r.code == 1
    rows = r.out.splitlines()[1 : 1 + len(IMAGES)]
    assert all(row.split()[1:3] == ["not_found", "absent"] for row in rows)
    assert "no AIGC label" in rows[0]
    assert f"{len(NOT_IMAGES)} non-image file(s) ignored" in r.out


def _flip_scan_byte(data: bytes) -> bytes:
    """Flip one bit in the middle of a JPEG's entropy-coded data, creating no marker."""
    sos = data.index(b"\xff\xda")
    start = sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")
    end = data.rindex(b"\xff\xd9")
    i = (start + end) // 2
    while data[i] in (0xFF, 0xFE) or data[i - 1] == 0xFF:
        i += 1
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def test_tampered_outputs_are_noncompliant(cli, labeled, pubfile, tmp_path):
    good = (labeled / "a" / "astro.jpg").read_bytes()
    flipped = tmp_path / "flipped.jpg"
    flipped.write_bytes(_flip_scan_byte(good))
    (d,) = cli("verify", "--pubkey", pubfile, "--json", labeled / "a" / "astro.jpg").json_lines()
    produce_id = d["record"]["ProduceID"].encode()
    assert good.count(produce_id) == 1
    edited = tmp_path / "edited.jpg"  # same length, so the XMP segment stays well-formed
    forged = produce_id[:-1] + (b"A" if produce_id[-1:] != b"A" else b"B")
    edited.write_bytes(good.replace(produce_id, forged))
    r = cli("verify", "--pubkey", pubfile, "--json", flipped, edited)
    assert r.code == 1
    by_name = {Path(d["path"]).name: d for d in r.json_lines()}
    assert by_name["flipped.jpg"]["verdict"] == "noncompliant"
    assert by_name["flipped.jpg"]["signature"]["status"] == "content_changed"
    assert by_name["edited.jpg"]["verdict"] == "noncompliant"
    assert by_name["edited.jpg"]["signature"]["status"] == "fields_edited"
    r = cli("verify", "--pubkey", pubfile, edited)
    row = r.out.splitlines()[1]
    assert "noncompliant" in row and "fields_edited" in row and "edited after signing" in row


def test_unparseable_files_get_an_inconclusive_line(cli, labeled, pubfile, tmp_path):
    text_png = tmp_path / "text.png"
    text_png.write_text("not a picture\n")
    jpeg = (labeled / "a" / "astro.jpg").read_bytes()
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(jpeg[: len(jpeg) // 2])
    good = labeled / "flat.png"
    r = cli("verify", "--pubkey", pubfile, "--json", text_png, good, truncated)
    assert r.code == 1
    lines = r.json_lines()
    assert [d["path"] for d in lines] == [str(text_png), str(good), str(truncated)]
    for d in (lines[0], lines[2]):
        _check_schema(d)
        assert d["verdict"] == "inconclusive" and d["record"] is None
        assert d["checks"] == [{"id": "parse", "status": "error", "message": d["checks"][0]
                                ["message"], "evidence": None}]
        assert Path(d["path"]).name in d["checks"][0]["message"]
    assert lines[1]["verdict"] == "compliant"


def test_jobs_2_gives_the_same_lines_in_the_same_order(cli, labeled, pubfile, tree):
    args = ("verify", "--pubkey", pubfile, "--json", labeled, tree)
    one, two, every_cpu = cli(*args), cli(*args, "-j", "2"), cli(*args, "-j", "0")
    assert one.code == two.code == every_cpu.code == 1  # the unlabeled tree
    assert one.out == two.out == every_cpu.out and len(one.json_lines()) == 2 * len(IMAGES)


def test_no_visible_skips_the_pixels(cli, labeled, pubfile):
    (d,) = cli("verify", "--pubkey", pubfile, "--json", "--no-visible",
               labeled / "flat.png").json_lines()
    assert d["explicit"]["status"] == "n/a" and d["verdict"] == "compliant"
    assert not [c for c in d["checks"] if c["id"] == "explicit"]


@pytest.mark.parametrize("args, message", [
    (("--key", "{key}", "--pubkey", "{pub}", "{tree}"), "not allowed with argument"),
    (("--pubkey", "{tree}/flat.png", "{tree}"), "--pubkey"),
    (("--pubkey", "{pub}", "{tree}/missing.png"), "no such file or folder"),
    (("--pubkey", "{pub}"), "the following arguments are required: PATH"),
    (("--pubkey", "{pub}", "--jsn", "{tree}"), "unrecognized arguments: --jsn"),
    (("--text", "generated", "{tree}"), "--text"),
])
def test_usage_errors_exit_2(cli, tree, keyfile, pubfile, args, message):
    values = {"key": keyfile, "pub": pubfile, "tree": tree}
    r = cli("verify", *(a.format(**values) for a in args))
    assert r.code == 2 and message in r.err and "usage: labelkit verify" in r.err
    assert r.out == ""


def test_internal_error_exit_3_still_one_line_per_file(cli, tree, pubfile, monkeypatch):
    from labelkit.cli import verify as verify_command

    def broken(*args, **kwargs):
        raise RuntimeError("verifier broke")

    monkeypatch.setattr(verify_command, "verify", broken)
    r = cli("verify", "--pubkey", pubfile, "--json", tree / "flat.png", tree / "b")
    assert r.code == 3
    lines = r.json_lines()
    assert len(lines) == 2
    for d in lines:
        assert d["verdict"] == "inconclusive"
        assert d["checks"][0]["id"] == "internal" and d["checks"][0]["status"] == "error"
        assert "RuntimeError: verifier broke" in d["checks"][0]["message"]
    assert "Traceback" not in r.err and "verifier broke" in r.err
