"""The image watermark: payload coding, keys, embed/detect on real photos, attacks, null items."""

from __future__ import annotations

import contextlib
import io
import math

import numpy as np
import pytest
from PIL import Image

from labelkit import _impl, _kernels_py
from labelkit.errors import KeyFileError, LabelkitError
from labelkit.watermark import (
    MIN_SIDE,
    P_THRESHOLD,
    WatermarkKey,
    WatermarkTooSmall,
    detect_image,
    embed_image,
    ecc,
    union_p_value,
)

from benchmarks.watermark_attacks import attack
from labelkit.watermark.image import MAX_LATTICES

from .conftest import PURE, generated_scene, skimage_photo

KEY = WatermarkKey(bytes(range(32)))
OTHER = WatermarkKey(bytes(range(1, 33)))
PID = "01JDZQ4T7K3M8X2R5V6W1Y0HCD"


def _fit(pixels: np.ndarray, w: int, h: int) -> np.ndarray:
    from PIL import ImageOps

    return np.asarray(ImageOps.fit(Image.fromarray(pixels), (w, h), Image.Resampling.LANCZOS))


def _jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(out.getvalue())).convert("RGB"))


@pytest.fixture(scope="module")
def photo512():
    return skimage_photo("astronaut.png")


@pytest.fixture(scope="module")
def photo1080():
    return _fit(skimage_photo("coffee.png"), 1920, 1080)


@pytest.fixture(scope="module")
def payload():
    return KEY.payload_for(PID)


@pytest.fixture(scope="module")
def marked512(photo512, payload):
    return embed_image(photo512, KEY, payload)


@pytest.fixture(scope="module")
def marked1080(photo1080, payload):
    return embed_image(photo1080, KEY, payload)


# -- coding and keys ---------------------------------------------------------------------------


def test_ecc_round_trip_and_error_correction():
    rng = np.random.default_rng(1)
    for _ in range(20):
        value = int(rng.integers(0, 2**63)) * 2 + int(rng.integers(0, 2))
        coded = ecc.encode(value)
        assert coded.shape == (ecc.N_CODED,) and set(np.unique(coded)) <= {0, 1}
        soft = coded * 2.0 - 1
        got, confidence = ecc.decode(soft)
        assert got == value and confidence.shape == (ecc.N_PAYLOAD,) and (confidence > 0).all()
        # 12% of the coded bits flipped: the code corrects them
        flip = rng.choice(ecc.N_CODED, int(0.12 * ecc.N_CODED), replace=False)
        soft[flip] *= -1
        assert ecc.decode(soft)[0] == value


def test_ecc_crc_rejects_noise():
    rng = np.random.default_rng(2)
    accepted = sum(ecc.decode(rng.standard_normal(ecc.N_CODED))[0] is not None
                   for _ in range(300))
    assert accepted <= 1  # CRC-16: 1 in 65536 per try
    with pytest.raises(ValueError):
        ecc.encode(1 << 64)
    with pytest.raises(ValueError):
        ecc.decode(np.zeros(10))


def test_keys_payload_and_secrecy():
    assert KEY.payload_for(PID) == KEY.payload_for(PID)
    assert KEY.payload_for(PID) != OTHER.payload_for(PID)
    assert KEY.payload_for(PID) != KEY.payload_for(PID[:-1] + "E")
    assert 0 <= KEY.payload_for(PID) < 2**64
    assert bytes(range(32)).hex() not in repr(KEY)
    with pytest.raises(KeyFileError):
        WatermarkKey(b"short")


def test_key_derived_from_signing_key(key, other_key):
    a, b = WatermarkKey.from_signing_key(key), WatermarkKey.from_signing_key(key)
    assert a == b and a != WatermarkKey.from_signing_key(other_key)


def test_p_value_union_bound():
    assert union_p_value(0.0, 100) == 1.0
    assert union_p_value(10.0, 1) == pytest.approx(math.exp(-50))
    assert union_p_value(7.0, 10**6) == pytest.approx(1e6 * math.exp(-24.5))
    z_star = math.sqrt(2 * math.log(10**6 / P_THRESHOLD))
    assert union_p_value(z_star, 10**6) == pytest.approx(P_THRESHOLD)


# -- embed and detect ----------------------------------------------------------------------------


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return 10 * math.log10(255**2 / mse)


def test_round_trip_512(photo512, marked512, payload):
    assert marked512.shape == photo512.shape and marked512.dtype == np.uint8
    assert _psnr(photo512, marked512) >= 40.0
    found = detect_image(marked512, KEY)
    assert found.present and found.payload == payload and found.p_value < 1e-20
    assert found.payload_hex == f"{payload:016x}" and found.bit_confidence.shape == (64,)
    assert found.to_dict()["payload"] == found.payload_hex


def test_round_trip_1080p_and_portrait(photo1080, marked1080, payload):
    assert _psnr(photo1080, marked1080) >= 40.0
    assert detect_image(marked1080, KEY).payload == payload
    portrait = _fit(skimage_photo("rocket.jpg"), 1080, 1920)
    assert detect_image(embed_image(portrait, KEY, payload), KEY).payload == payload


def test_generated_looking_picture(payload):
    scene = generated_scene(1024, 768, seed=3)
    marked = embed_image(scene, KEY, payload)
    assert _psnr(scene, marked) >= 40.0
    assert detect_image(_jpeg(marked, 75), KEY).payload == payload


def test_input_untouched_and_shapes(photo512, payload):
    before = photo512.copy()
    embed_image(photo512, KEY, payload)
    np.testing.assert_array_equal(photo512, before)
    gray = photo512.mean(axis=2).astype(np.uint8)
    marked = embed_image(gray, KEY, payload)
    assert marked.shape == gray.shape and detect_image(marked, KEY).payload == payload
    rgba = np.dstack([photo512, np.arange(512 * 512, dtype=np.uint32).reshape(512, 512) % 251])
    rgba = rgba.astype(np.uint8)
    marked = embed_image(rgba, KEY, payload)
    np.testing.assert_array_equal(marked[:, :, 3], rgba[:, :, 3])  # alpha is never touched
    assert detect_image(marked, KEY).payload == payload


def test_too_small_and_bad_input(photo512, payload):
    small = photo512[: MIN_SIDE - 1]
    with pytest.raises(WatermarkTooSmall, match="too small") as err:
        embed_image(small, KEY, payload)
    assert isinstance(err.value, LabelkitError)
    assert detect_image(photo512[:100, :100], KEY).reason == "too_small"
    assert not detect_image(photo512[:100, :100], KEY).present
    with pytest.raises(TypeError):
        embed_image(photo512.astype(np.float32), KEY, payload)
    with pytest.raises(ValueError):
        embed_image(photo512[:, :, :2].copy()[:, :, :, None], KEY, payload)
    with pytest.raises(ValueError, match="strength"):
        embed_image(photo512, KEY, payload, strength=0)


def test_strength_trades_invisibility_for_margin(photo512, payload):
    weak = embed_image(photo512, KEY, payload, strength=0.5)
    strong = embed_image(photo512, KEY, payload, strength=2.0)
    assert _psnr(photo512, weak) > _psnr(photo512, strong)
    assert detect_image(strong, KEY).score > detect_image(weak, KEY).score
    robust = embed_image(photo512, KEY, payload, profile="robust")
    default = embed_image(photo512, KEY, payload)
    assert _psnr(photo512, robust) >= 40.0 and _psnr(photo512, default) > _psnr(photo512, robust)
    assert detect_image(robust, KEY).score > detect_image(default, KEY).score
    with pytest.raises(ValueError, match="profile"):
        embed_image(photo512, KEY, payload, profile="loud")


def test_invisible_default_keeps_ssim(payload):
    from skimage.metrics import structural_similarity

    for name, size in (("astronaut.png", (512, 512)), ("rocket.jpg", (1920, 1080))):
        photo = _fit(skimage_photo(name), *size)
        marked = embed_image(photo, KEY, payload)
        assert _psnr(photo, marked) >= 40.0
        assert structural_similarity(photo, marked, channel_axis=2, data_range=255) >= 0.989


def test_degenerate_pictures_are_not_marked():
    for pixels in (np.zeros((600, 800, 3), np.uint8), np.full((600, 800), 255, np.uint8),
                   np.tile(np.arange(800, dtype=np.uint8), (600, 1))):
        found = detect_image(pixels, KEY)
        assert not found.present and found.payload is None and math.isfinite(found.p_value)
    long = np.random.default_rng(0).integers(0, 256, (200, 8000, 3), dtype=np.uint8)
    assert not detect_image(long, KEY).present


# the spec's attacks, as the evaluation suite defines them (benchmarks/watermark_attacks.py)
ATTACKS_1080 = ["jpeg50", "jpeg75", "down0.5", "crop70", "rot1", "aspect_w0.8", "hflip",
                "grayscale", "chain_crop80_r0.7_j75"]


@pytest.mark.parametrize("name", ATTACKS_1080)
def test_survives_attacks_1080p(marked1080, payload, name):
    attacked = np.ascontiguousarray(attack(name)(marked1080))
    found = detect_image(attacked, KEY)
    assert found.present and found.payload == payload, found.to_dict()


@pytest.mark.parametrize("name", ["jpeg75", "crop70", "hflip", "rot2_crop", "up1.5"])
def test_survives_attacks_512(marked512, payload, name):
    found = detect_image(np.ascontiguousarray(attack(name)(marked512)), KEY)
    assert found.present and found.payload == payload, found.to_dict()


def test_stripped_of_metadata_by_a_platform(marked1080, payload):
    # what an upload does: re-encode at JPEG 85 without any metadata, downscale to 1280
    shrunk = Image.fromarray(marked1080).resize((1280, 720), Image.Resampling.LANCZOS)
    assert detect_image(_jpeg(np.asarray(shrunk), 85), KEY).payload == payload


def test_null_items_are_not_detected(photo512, photo1080, marked1080):
    """Unmarked photos, crops, rescales, synthetic pictures, and another key's mark: nothing."""
    items = [photo512, photo1080, generated_scene(800, 600, 1)]
    for name in ("chelsea.png", "rocket.jpg", "motorcycle_left.png", "coffee.png"):
        p = skimage_photo(name)
        items += [p, p[40:-20, 30:], _fit(p, 900, 700)]
    items.append(_jpeg(photo1080[100:900, 200:1500], 70))
    items.append(marked1080)  # marked, but with KEY: OTHER must not see it
    scores = []
    for pixels in items:
        found = detect_image(np.ascontiguousarray(pixels), OTHER)
        assert not found.present and found.payload is None and found.p_value > P_THRESHOLD
        # the whole search stayed inside the hypothesis count the p-value was computed with
        assert found.geometry["lattices_tried"] <= MAX_LATTICES
        scores.append(found.score)
    # the best null score stays far from the threshold (z* ~ 7.4 for ~1e6 hypotheses)
    assert max(scores) < 6.5


@contextlib.contextmanager
def _kernels(which: str):
    """Run the watermark with the native kernels or the numpy twins, whatever _impl chose."""
    from labelkit import _native_watermark

    names = [n for n, g in _impl.KERNELS.items() if g == "watermark"]
    saved = {n: _impl._chosen[n] for n in names}
    source = _native_watermark if which == "native" else _kernels_py
    _impl._chosen.update({n: getattr(source, n) for n in names})
    try:
        yield
    finally:
        _impl._chosen.update(saved)


@pytest.mark.skipif(PURE, reason="LABELKIT_PURE_PYTHON=1: the native kernels are not expected")
@pytest.mark.parametrize("embed_with,detect_with", [("native", "pure"), ("pure", "native")])
def test_embed_with_one_detect_with_the_other(photo512, payload, embed_with, detect_with):
    with _kernels(embed_with):
        marked = embed_image(photo512, KEY, payload)
    with _kernels(detect_with):
        found = detect_image(_jpeg(marked, 80), KEY)
    assert found.payload == payload
    with _kernels("native" if embed_with == "pure" else "pure"):
        same = embed_image(photo512, KEY, payload)
    # the float filters of the mask may round differently in the last bit: a level at most
    diff = np.abs(same.astype(int) - marked)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_threads_share_the_keyed_material(photo512):
    """Services embed from many threads: results equal the single-threaded ones."""
    from concurrent.futures import ThreadPoolExecutor

    keys = [WatermarkKey(bytes([i]) * 32) for i in range(20)]  # more keys than the cache holds
    expected = {i: embed_image(photo512, k, 7 + i) for i, k in enumerate(keys[:3])}
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda i: embed_image(photo512, keys[i % 20], 7 + i % 20), range(24)))
    for i, out in enumerate(got):
        if i % 20 in expected:
            np.testing.assert_array_equal(out, expected[i % 20])
