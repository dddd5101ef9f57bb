"""An independent reader: exiftool must see the label, the other metadata, and no new warnings.

exiftool is started once per question for all samples together (it costs ~0.3 s to start).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labelkit import formats

from .samples import (
    LABEL,
    OLD,
    OLD_WRAPPED,
    PLANTED,
    SAMPLE_NAMES,
    exiftool,
)
from .samples import sample as build_sample

OTHER_TAGS = ("-XMP-dc:Title", "-ICC_Profile:ProfileDescription", "-EXIF:Make",
              "-EXIF:DateTimeOriginal")  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Every sample written as in-<name> and its labeled copy as out-<name>."""
    root = tmp_path_factory.mktemp("exiftool")
    pairs = {}
    for name in SAMPLE_NAMES:
        s = build_sample(name)
        src, dst = root / f"in-{name}.{s.format}", root / f"out-{name}.{s.format}"
        src.write_bytes(s.data)
        dst.write_bytes(formats.parse(s.data, str(src)).with_label(LABEL))
        pairs[name] = (src, dst)
    return pairs


def _by_file(output: str) -> dict[str, dict]:
    return {Path(entry.pop("SourceFile")).name: entry for entry in json.loads(output)}


@pytest.fixture(scope="module")
def tags(files, exiftool_path) -> dict[str, dict]:
    """exiftool's TC260 and other tags of every input and output, by file name."""
    paths = [str(p) for pair in files.values() for p in pair]
    return _by_file(exiftool("-j", "-XMP-TC260:all", *OTHER_TAGS, *paths))


@pytest.fixture(scope="module")
def warnings(files, exiftool_path) -> dict[str, set[str]]:
    """exiftool -validate warnings of every input and output, by file name."""
    paths = [str(p) for pair in files.values() for p in pair]
    out: dict[str, set[str]] = {}
    current = None
    for line in exiftool("-validate", "-warning", "-a", "-s3", *paths).splitlines():
        if line.startswith("======== "):
            current = Path(line[9:]).name
            out[current] = set()
        elif current is not None and not line.startswith(("Validate", " ")) and line:
            out[current].add(line)
    for pair in files.values():  # a single file gets no "========" header: never the case here
        assert all(p.name in out for p in pair)
    return {name: {w for w in ws if not w[0].isdigit() and w != "OK"} for name, ws in out.items()}


@pytest.fixture(params=SAMPLE_NAMES)
def name(request) -> str:
    return request.param


def test_exiftool_reads_the_label(files, tags, name):
    _, dst = files[name]
    label = {k: v for k, v in tags[dst.name].items() if k not in ("Title", "ProfileDescription",
                                                                  "Make", "DateTimeOriginal")}
    assert list(label.values()) == [LABEL], tags[dst.name]


def test_exiftool_sees_the_other_metadata(files, tags, name):
    src, dst = files[name]
    before = {k: v for k, v in tags[src.name].items() if k != "AIGC" and not k.startswith("Aigc")}
    after = {k: v for k, v in tags[dst.name].items() if k != "AIGC" and not k.startswith("Aigc")}
    assert after == before
    if build_sample(name).title:
        assert after["Title"] == build_sample(name).title


def test_no_new_exiftool_warnings(files, warnings, name):
    src, dst = files[name]
    new = warnings[dst.name] - warnings[src.name]
    assert not new, f"labelkit introduced exiftool warnings: {sorted(new)}"


def test_exiftool_sees_no_old_label(files, exiftool_path):
    paths = [str(files[n][1]) for n in PLANTED]
    everything = exiftool("-j", "-a", "-G1", "-b", *paths).replace('\\"', '"')
    assert OLD not in everything and OLD_WRAPPED not in everything
    assert everything.count(LABEL) == len(PLANTED)


def test_the_warning_reader_sees_warnings(files, warnings):
    # A guard for the test above: the planted second XMP segment is a known exiftool warning.
    src, _ = files["jpeg-preloaded"]
    assert "Duplicate XMP at JPEG-APP1-XMP" in warnings[src.name]
