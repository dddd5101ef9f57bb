"""Shared benchmark fixtures and the summary table of ratios printed at the end of the run.

Each benchmark calls ``record(group, name, benchmark, nbytes=..., baseline=...)`` after running;
the table compares every entry of a group with the group's baseline (the peer named in the
issue, measured in the same run) and prints files/s, MB/s and the ratio. Two optional extras:
``pixels=`` adds a ns-per-pixel column (linearity in image size shows as a flat column), and
``subject=True`` marks the entry a group is about (labelkit among its peers): the table then
adds one line per other entry of the group with the time ratio subject / that entry.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import labelkit
from labelkit import signing

PRODUCER = "001191110102MAD55U9H0F10002"


@dataclass
class Entry:
    group: str
    name: str
    median: float
    nbytes: int
    baseline: bool
    target: str
    pixels: int = 0
    subject: bool = False


_entries: list[Entry] = []


def record(group: str, name: str, benchmark, *, nbytes: int = 0, baseline: bool = False,
           target: str = "", pixels: int = 0, subject: bool = False) -> None:
    """Remember a finished benchmark's median for the end-of-run table."""
    if benchmark.stats is None:  # --benchmark-disable
        return
    _entries.append(Entry(group, name, benchmark.stats.stats.median, nbytes, baseline, target,
                          pixels, subject))


def pytest_terminal_summary(terminalreporter):
    if not _entries:
        return
    tr = terminalreporter
    tr.section("labelkit benchmark summary (medians; ratio = this / baseline time)")
    groups: dict[str, list[Entry]] = {}
    for e in _entries:
        groups.setdefault(e.group, []).append(e)
    for group, entries in groups.items():
        base = next((e for e in entries if e.baseline), None)
        tr.write_line(f"\n{group}")
        for e in entries:
            per_s = 1 / e.median
            mbs = f"{e.nbytes / e.median / 1e6:9.1f} MB/s" if e.nbytes else " " * 14
            ratio = f"  {base.median / e.median:6.2f}x baseline speed" if base and e is not base else ""
            mark = " (baseline)" if e.baseline else ""
            tgt = f"  target: {e.target}" if e.target else ""
            nspx = f" {e.median * 1e9 / e.pixels:8.2f} ns/px" if e.pixels else ""
            tr.write_line(f"  {e.name:<44} {e.median * 1e3:9.3f} ms {per_s:9.1f}/s {mbs}"
                          f"{nspx}{ratio}{mark}{tgt}")
        subject = next((e for e in entries if e.subject), None)
        others = [e for e in entries if e is not subject] if subject else []
        for e in others:
            ratio = subject.median / e.median
            speed = f"{1 / ratio:.2f}x faster" if ratio < 1 else f"{ratio:.2f}x slower"
            tr.write_line(f"    {subject.name} / {e.name}: time ratio {ratio:.4g} ({speed})")


def photo_1080p(name: str = "astronaut.png") -> np.ndarray:
    """A real photo from scikit-image's wheel, resized to 1920x1080."""
    import skimage.data

    path = Path(skimage.data.__file__).parent / name
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((1920, 1080), Image.Resampling.LANCZOS))


def encoded(pixels: np.ndarray, fmt: str, **kw) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **kw)
    return out.getvalue()


@pytest.fixture(scope="session")
def key() -> signing.SigningKey:
    return signing.generate_key()


@pytest.fixture(scope="session")
def labeler(key) -> labelkit.Labeler:
    return labelkit.Labeler(PRODUCER, key)


@pytest.fixture(scope="session")
def frame_1080p() -> np.ndarray:
    return photo_1080p()


@pytest.fixture(scope="session")
def jpeg_1080p(frame_1080p) -> bytes:
    return encoded(frame_1080p, "JPEG", quality=90)


@pytest.fixture(scope="session")
def png_1080p(frame_1080p) -> bytes:
    return encoded(frame_1080p, "PNG")
