"""Shared fixtures: keys, the producer code, real photos from scikit-image's wheel."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import labelkit
from labelkit import signing

PRODUCER = "001191110102MAD55U9H0F10002"  # valid structure and USCC checksum (spec example)
PURE = os.environ.get("LABELKIT_PURE_PYTHON") == "1"


def skimage_photo(name: str) -> np.ndarray:
    """An RGB photo shipped inside scikit-image's wheel (no download)."""
    import skimage.data

    path = Path(skimage.data.__file__).parent / name
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def encode(pixels: np.ndarray, fmt: str, **kw) -> bytes:
    """Encode pixels with Pillow as ``fmt`` (PNG, JPEG, WEBP, GIF, TIFF)."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, fmt, **kw)
    return out.getvalue()


def generated_scene(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth synthetic 'generated-looking' picture: sky gradient, sun, hills."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    sky = np.stack([90 + 100 * y / height, 140 + 80 * y / height, 230 - 40 * y / height], -1)
    cx, cy, r = width * rng.uniform(0.2, 0.8), height * 0.3, min(width, height) * 0.1
    sun = np.clip(1.5 - np.hypot(x - cx, y - cy) / r, 0, 1)[..., None]
    img = sky * (1 - sun) + np.array([255, 220, 120]) * sun
    ridge = height * (0.6 + 0.1 * np.sin(x / width * 6 + rng.uniform(0, 6)))
    hill = (y > ridge)[..., None]
    img = np.where(hill, np.array([40, 110, 50]) + 30 * (y / height)[..., None], img)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def producer() -> str:
    return PRODUCER


@pytest.fixture(scope="session")
def key() -> signing.SigningKey:
    return signing.generate_key("ed25519")


@pytest.fixture(scope="session")
def other_key() -> signing.SigningKey:
    return signing.generate_key("ed25519")


@pytest.fixture(scope="session")
def labeler(key) -> labelkit.Labeler:
    return labelkit.Labeler(PRODUCER, key)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return skimage_photo("astronaut.png")


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    return skimage_photo("coffee.png")


@pytest.fixture(autouse=True, scope="session")
def _private_data_home(tmp_path_factory):
    """The CLI records into the default ledger: keep it out of the real home directory."""
    previous = os.environ.get("XDG_DATA_HOME")
    os.environ["XDG_DATA_HOME"] = str(tmp_path_factory.mktemp("data-home"))
    yield
    if previous is None:
        os.environ.pop("XDG_DATA_HOME", None)
    else:
        os.environ["XDG_DATA_HOME"] = previous


@pytest.fixture
def cli_run(capsys):
    """Run ``labelkit.cli.main(args)`` in-process: (exit code, stdout, stderr)."""
    from labelkit.cli import main

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
