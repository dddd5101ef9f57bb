"""CLI fixtures: a key pair on disk, a folder tree of real and synthetic pictures, a runner."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelkit import signing
from labelkit.cli import main

from ..conftest import PRODUCER, skimage_photo

ROOT = Path(__file__).resolve().parents[2]

# Relative paths of the pictures make_tree writes (mirrored under OUTDIR by `label -o`).
IMAGES = (
    "a/astro.jpg",
    "a/b/coffee.png",
    "a/really_png.jpg",  # PNG bytes under a .jpg name: folders are sniffed, not judged by name
    "coffee.webp",
    "b/astro.gif",
    "gradient.tif",
    "flat.png",
)
# Files a folder run skips: UTF-8 not named as text (any UTF-8 looks like text), and a ZIP
# that is not an Office package.
NOT_IMAGES = ("notes.csv", "b/data.json", "b/bundle.zip")


@dataclass
class Result:
    """What one CLI run returned and printed."""

    code: int
    out: str
    err: str

    def json_lines(self) -> list[dict]:
        """stdout parsed as JSON lines (every non-empty line must be one object)."""
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


@pytest.fixture
def cli(capsys):
    """Run ``main(args)`` in-process and capture what it printed."""

    def run(*args: str) -> Result:
        capsys.readouterr()  # drop what earlier steps printed
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def run_subprocess(*args: str, **kw) -> subprocess.CompletedProcess:
    """The real console entry: ``python -m labelkit ARGS``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "labelkit", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300, **kw)


@pytest.fixture(scope="session")
def keyfile(tmp_path_factory) -> Path:
    """A provider key pair on disk: KEYFILE and KEYFILE.pub."""
    path = tmp_path_factory.mktemp("keys") / "provider.key"
    signing.write_key_pair(path, signing.generate_key("ed25519"))
    return path


@pytest.fixture(scope="session")
def pubfile(keyfile) -> Path:
    return Path(str(keyfile) + ".pub")


def _photo(name: str, size: tuple[int, int]) -> Image.Image:
    return Image.fromarray(skimage_photo(name)).resize(size, Image.Resampling.LANCZOS)


def gradient(width: int, height: int) -> np.ndarray:
    """A synthetic horizontal/vertical RGB gradient."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([255 * x / width, 255 * y / height, 128 + 0 * x], -1).astype(np.uint8)


def image_bytes(image: Image.Image | np.ndarray, fmt: str, **kw) -> bytes:
    """Encode with Pillow."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    out = io.BytesIO()
    image.save(out, fmt, **kw)
    return out.getvalue()


def make_tree(root: Path) -> Path:
    """Write IMAGES (photos from scikit-image, synthetic flat and gradient) and NOT_IMAGES."""
    astro, coffee = _photo("astronaut.png", (320, 320)), _photo("coffee.png", (360, 240))
    files = {
        "a/astro.jpg": image_bytes(astro, "JPEG", quality=90),
        "a/b/coffee.png": image_bytes(coffee, "PNG"),
        "a/really_png.jpg": image_bytes(astro, "PNG"),
        "coffee.webp": image_bytes(coffee, "WEBP", quality=90),
        "b/astro.gif": image_bytes(astro.convert("P"), "GIF"),
        "gradient.tif": image_bytes(gradient(300, 200), "TIFF"),
        "flat.png": image_bytes(np.full((180, 240, 3), 128, np.uint8), "PNG"),
        "notes.csv": b"region,revenue\nnorth,12\n",
        "b/data.json": b'{"not": "content to label"}\n',
        "b/bundle.zip": b"PK\x03\x04" + bytes(60),
    }
    assert set(files) == set(IMAGES) | set(NOT_IMAGES)
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture
def tree(tmp_path) -> Path:
    """A fresh folder tree of pictures (and two non-pictures) in tmp_path/photos."""
    return make_tree(tmp_path / "photos")


def label_args(keyfile: Path, outdir: Path, *paths, extra: tuple = ()) -> list[str]:
    """The usual `labelkit label` command line."""
    return ["label", "--producer", PRODUCER, "--key", str(keyfile), "-o", str(outdir),
            *extra, *map(str, paths)]


def files_under(folder: Path) -> set[str]:
    """Every file below ``folder`` as a relative POSIX path (hidden ones included)."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
