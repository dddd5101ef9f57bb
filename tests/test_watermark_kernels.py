"""Watermark kernels: the native ones and their numpy twins agree, and refuse the same inputs."""

from __future__ import annotations

import numpy as np
import pytest

from labelkit import _kernels_py
from labelkit.watermark import ecc
from labelkit.watermark.image import _dither

from .conftest import PURE

NAMES = ("luma_down", "luma_stats", "box_blur", "extreme_filter", "embed_tile", "fold_tile", "lattice_scores",
         "viterbi_decode")


@pytest.fixture(scope="module")
def native():
    if PURE:
        pytest.skip("LABELKIT_PURE_PYTHON=1: the native kernels are not expected")
    from labelkit import _native_watermark

    return _native_watermark


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(20261123)


def test_every_kernel_has_both_versions(native):
    for name in NAMES:
        assert callable(getattr(native, name)) and getattr(_kernels_py, name).__doc__


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_luma_down_identical(native, rng, channels, d):
    img = rng.integers(0, 256, (37, 53, channels), dtype=np.uint8)
    a, b = native.luma_down(img, d), _kernels_py.luma_down(img, d)
    assert a.shape == (37 // d, 53 // d) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("d", [1, 2, 4])
def test_luma_stats_identical_and_right(native, rng, channels, d):
    img = rng.integers(0, 256, (33, 47, channels), dtype=np.uint8)
    mean, var = native.luma_stats(img, d)
    twin = _kernels_py.luma_stats(img, d)
    np.testing.assert_array_equal(mean, twin[0])
    np.testing.assert_array_equal(var, twin[1])
    px = img[: 33 // d * d, : 47 // d * d].astype(np.int64)
    y = (77 * px[..., 0] + 150 * px[..., 1] + 29 * px[..., 2] + 128) >> 8 if channels >= 3 \
        else px[..., 0]
    block = y[:d, :d]
    assert mean[0, 0] == pytest.approx(block.mean(), abs=1e-4)
    assert var[0, 0] == pytest.approx(block.var(), abs=1e-2)


def test_luma_down_is_bt601(rng):
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 100, 50, 200
    expected = 0.299 * 100 + 0.587 * 50 + 0.114 * 200
    assert np.allclose(_kernels_py.luma_down(img, 2), expected, atol=1e-4)


@pytest.mark.parametrize("radius", [0, 1, 2, 7, 40])
def test_box_blur_agrees(native, rng, radius):
    img = (rng.random((31, 45)) * 255).astype(np.float32)
    a, b = native.box_blur(img, radius), _kernels_py.box_blur(img, radius)
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-3)
    # a box mean preserves constants and stays within the input's range
    flat = np.full((9, 11), 7.5, np.float32)
    np.testing.assert_allclose(native.box_blur(flat, radius), 7.5, atol=1e-5)
    assert b.min() >= img.min() - 1e-3 and b.max() <= img.max() + 1e-3


@pytest.mark.parametrize("size", [1, 2, 3, 5, 13])
@pytest.mark.parametrize("take_max", [False, True])
def test_extreme_filter_identical(native, rng, size, take_max):
    img = (rng.random((23, 29)) * 100).astype(np.float32)
    a = native.extreme_filter(img, size, take_max)
    np.testing.assert_array_equal(a, _kernels_py.extreme_filter(img, size, take_max))
    lo, hi = (size - 1) // 2, size // 2
    i, j = 11, 14
    window = img[i - lo : i + hi + 1, j - lo : j + hi + 1]
    assert a[i, j] == (window.max() if take_max else window.min())


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("m", [1, 2, 4])
def test_embed_tile_bit_identical(native, rng, channels, m):
    h, w = 67, 83
    for trial in range(5):
        img = rng.integers(0, 256, (h, w, channels), dtype=np.uint8)
        img[:3] = 0
        img[-3:] = 255  # the clamps
        tile = (rng.standard_normal((13 + trial, 17)) * 2).astype(np.float32)
        mask = (rng.random((-(-h // m), -(-w // m))) * 4).astype(np.float32)
        dither, offsets = _dither(h, w, channels, trial)
        a, b = img.copy(), img.copy()
        native.embed_tile(a, tile, mask, m, 1.3, dither, offsets)
        _kernels_py.embed_tile(b, tile, mask, m, 1.3, dither, offsets)
        np.testing.assert_array_equal(a, b)
        assert (a != img).any()


def test_embed_tile_rounds_to_the_mark(rng):
    # the dither keeps a sub-level mark in the mean: +0.3 levels on a flat grey comes out as
    # about 30% of the pixels one level up
    img = np.full((200, 200, 1), 100, np.uint8)
    tile = np.full((8, 8), 0.3, np.float32)
    mask = np.ones((200, 200), np.float32)
    dither, offsets = _dither(200, 200, 1, 5)
    _kernels_py.embed_tile(img, tile, mask, 1, 1.0, dither, offsets)
    assert abs(img.mean() - 100.3) < 0.02 and set(np.unique(img)) <= {100, 101}


@pytest.mark.parametrize("kernel", ["native", "pure"])
def test_embed_tile_refusals(native, kernel):
    k = native.embed_tile if kernel == "native" else _kernels_py.embed_tile
    img = np.zeros((10, 10, 3), np.uint8)
    tile = np.ones((4, 4), np.float32)
    dither, offsets = _dither(10, 10, 3, 1)
    with pytest.raises(ValueError, match="cover"):
        k(img, tile, np.ones((4, 4), np.float32), 2, 1.0, dither, offsets)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        k(np.zeros((10, 10, 4), np.uint8), tile, np.ones((10, 10), np.float32), 1, 1.0,
          dither, offsets)
    with pytest.raises(ValueError, match="dither"):
        k(img, tile, np.ones((10, 10), np.float32), 1, 1.0, dither, offsets + len(dither))
    with pytest.raises((ValueError, TypeError)):
        k(img.astype(np.float32), tile, np.ones((10, 10), np.float32), 1, 1.0, dither, offsets)


def test_fold_tile_identical(native, rng):
    r = rng.standard_normal((97, 131)).astype(np.float32)
    for basis in (np.diag([40.0, 40.0]), np.array([[41.3, -1.2], [0.9, 37.7]])):
        binv = np.linalg.inv(basis) * 16
        s1, c1 = native.fold_tile(r, binv, 16)
        s2, c2 = _kernels_py.fold_tile(r, binv, 16)
        np.testing.assert_array_equal(c1, c2)
        np.testing.assert_allclose(s1, s2, atol=1e-9)
        assert c1.sum() == r.size and abs(s1.sum() - r.astype(np.float64).sum()) < 1e-6
    with pytest.raises(ValueError, match="power of two"):
        native.fold_tile(r, np.eye(2), 12)


def test_lattice_scores_agree(native, rng):
    spec = (rng.random((64, 33)) * 5).astype(np.float32)
    params = np.array([[40.0, 40.0, 0.0], [37.5, 44.0, 0.03], [90.0, 80.0, -0.05],
                       [5.0, 5.0, 0.0]])
    kr = rng.integers(-20, 20, 50).astype(np.float64)
    kc = rng.integers(1, 20, 50).astype(np.float64)
    for bilinear in (False, True):
        a = native.lattice_scores(spec, params, kr, kc, bilinear)
        b = _kernels_py.lattice_scores(spec, params, kr, kc, bilinear)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
        assert a[3] == 0.0  # a lattice whose lines fall outside the band scores nothing


def test_viterbi_identical_and_corrects_errors(native, rng):
    for trial in range(20):
        payload = int(rng.integers(0, 2**63))
        coded = ecc.encode(payload).astype(np.float64) * 2 - 1
        noisy = coded + rng.normal(0, 0.9, coded.size)
        a = native.viterbi_decode(noisy, ecc.OUTPUTS)
        b = _kernels_py.viterbi_decode(noisy, ecc.OUTPUTS)
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("m,step", [(8, 2), (4, 1), (6, 3)])
def test_plane_stats_identical_on_strided_planes(native, rng, m, step):
    # a Y plane viewed through rows of line_size > width, as PyAV's planes are
    buffer = rng.integers(0, 256, (67, 101 + 29), dtype=np.uint8)
    plane = buffer[:, 3:104]
    got = native.plane_stats(plane, m, step)
    want = _kernels_py.plane_stats(plane, m, step)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    sample = plane[: 67 // m * m : step, : 101 // m * m : step].astype(np.float64)
    blocks = sample.reshape(67 // m, m // step, 101 // m, m // step)
    np.testing.assert_allclose(want[0], blocks.mean(axis=(1, 3)), rtol=1e-6)
    np.testing.assert_allclose(want[1], blocks.var(axis=(1, 3)), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError):
        native.plane_stats(plane, 8, 3)
    with pytest.raises(ValueError):
        _kernels_py.plane_stats(plane, 8, 3)


@pytest.mark.parametrize("m", [1, 4, 8])
def test_embed_plane_is_embed_tile_on_strided_planes(native, rng, m):
    h, w, period = 45, 70, 16
    buffer = rng.integers(0, 256, (h, w + 10), dtype=np.uint8)
    tile = rng.standard_normal((period, period)).astype(np.float32) * 3
    wide = np.ascontiguousarray(np.tile(tile, (1, -(-w // period)))[:, :w])
    mask = (rng.random((-(-h // m), -(-w // m))) * 4).astype(np.float32)
    dither, offsets = _dither(h, w, 1, 11)
    expected = np.ascontiguousarray(buffer[:, :w])[:, :, None].copy()
    native.embed_tile(expected, tile, mask, m, -1.3, dither, offsets)
    for impl in (native, _kernels_py):
        out = buffer.copy()
        impl.embed_plane(out[:, :w], wide, mask, m, -1.3, dither, offsets)
        np.testing.assert_array_equal(out[:, :w], expected[:, :, 0])
        np.testing.assert_array_equal(out[:, w:], buffer[:, w:])  # the row padding untouched
        with pytest.raises(ValueError):
            impl.embed_plane(out[:, :w], wide[:, : w - 1], mask, m, 1.0, dither, offsets)
