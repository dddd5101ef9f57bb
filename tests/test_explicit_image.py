"""Visible label on pictures: blend kernel (native and pure), sizing, placement, OCR, detection."""

from __future__ import annotations

import io
import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from labelkit import _impl, _kernels_py
from labelkit.errors import LabelkitError, PolicyError, UnsupportedFormat
from labelkit.explicit import image as explicit_image
from labelkit.explicit.image import (
    BUNDLED_FONT_CHARS,
    BUNDLED_FONT_FILE,
    MIN_INK_HEIGHT_PX,
    apply_image_label,
    detect_image_label,
    label_ink_height,
)
from labelkit.policy import POSITIONS, ImagePolicy

PURE = os.environ.get("LABELKIT_PURE_PYTHON") == "1"
DATA = Path(explicit_image.__file__).resolve().parent.parent / "data"
LUMA = np.array([0.299, 0.587, 0.114])


# -- fixtures and helpers -------------------------------------------------------------------


def _native_blend():
    try:
        from labelkit import _native_blend
    except ImportError as exc:
        if PURE:
            pytest.skip("LABELKIT_PURE_PYTHON=1: the native kernels are not expected")
        pytest.fail(
            f"labelkit._native_blend did not load ({exc}); "
            "build it (setup.py build_ext --inplace) or set LABELKIT_PURE_PYTHON=1"
        )
    return _native_blend.blend_mask


@pytest.fixture(params=["native", "pure"], scope="session")
def blend(request):
    """The blend_mask kernel under test: each test runs with the native one and the numpy twin."""
    return _native_blend() if request.param == "native" else _kernels_py.blend_mask


@pytest.fixture
def apply_with(blend, monkeypatch):
    """apply_image_label running on the kernel of the ``blend`` fixture."""
    monkeypatch.setattr(explicit_image, "_blend_mask", blend)
    return apply_image_label


def _reference_blend(image, mask, y0, x0, colour):
    """Float reference: round((x * (255 - a) + c * a) / 255) over the clipped overlap."""
    out = image.astype(np.float64).copy()
    h, w = image.shape[:2]
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            y, x = y0 + i, x0 + j
            if 0 <= y < h and 0 <= x < w:
                a = float(mask[i, j])
                out[y, x] = np.floor((out[y, x] * (255 - a) + colour * a) / 255 + 0.5)
    return out.astype(np.uint8)


def _flat(h: int, w: int, colour) -> np.ndarray:
    return np.ascontiguousarray(np.broadcast_to(np.array(colour, np.uint8), (h, w, len(colour))))


def _jpeg(pixels: np.ndarray, quality: int = 75) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.squeeze(pixels)).save(buffer, "JPEG", quality=quality)
    return np.array(Image.open(io.BytesIO(buffer.getvalue())))


def _luma(pixels: np.ndarray) -> np.ndarray:
    pixels = pixels.astype(np.float64)
    if pixels.ndim == 2:
        return pixels
    return pixels[..., :3] @ LUMA if pixels.shape[2] >= 3 else pixels[..., 0]


def _measured_ink_rows(pixels: np.ndarray, box) -> tuple[int, int]:
    """Rows of the label box where glyph coverage reaches one half, measured on output pixels.

    On a flat background the box holds two levels: the plate (most pixels: the median) and the
    glyphs (the farthest level); a pixel half-way between them is half covered.
    """
    x0, y0, x1, y1 = box
    luma = _luma(pixels[y0:y1, x0:x1])
    plate = np.median(luma)
    far = luma.flat[np.argmax(np.abs(luma - plate))]
    inked = np.abs(luma - plate) >= abs(far - plate) / 2
    rows = np.flatnonzero(inked.any(axis=1))
    return y0 + int(rows[0]), y0 + int(rows[-1]) + 1


def _skimage():
    return pytest.importorskip("skimage.data", reason="scikit-image provides the test photos")


# The pictures scikit-image ships inside its wheel (the others need a download): photos, scans,
# textures and its synthetic images, colour and grey.
SKIMAGE_LOCAL = (
    "astronaut brick camera cat cell chelsea clock coffee coins colorwheel grass gravel horse "
    "hubble_deep_field immunohistochemistry logo microaneurysms moon page retina rocket text "
    "binary_blobs checkerboard shepp_logan_phantom"
).split()


def _skimage_picture(name: str) -> np.ndarray:
    picture = getattr(_skimage(), name)()
    if picture.dtype == bool:
        picture = picture.astype(np.uint8) * 255
    elif picture.dtype != np.uint8:
        picture = np.round(np.clip(picture, 0, 1) * 255).astype(np.uint8)
    return np.ascontiguousarray(picture)


# -- the kernel -----------------------------------------------------------------------------


def test_active_kernel_is_the_expected_one():
    native = _native_blend() if not PURE else None
    expected = _kernels_py.blend_mask if PURE else native
    assert _impl.kernel("blend_mask") is expected
    assert explicit_image._blend_mask is expected


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_blend_matches_float_reference(blend, channels):
    rng = np.random.default_rng(channels)
    for _ in range(40):
        h, w = (int(v) for v in rng.integers(1, 12, 2))
        image = rng.integers(0, 256, (h, w, channels), np.uint8)
        mask = rng.integers(0, 256, (int(rng.integers(1, 9)), int(rng.integers(1, 9))), np.uint8)
        mask[rng.random(mask.shape) < 0.2] = 0
        mask[rng.random(mask.shape) < 0.2] = 255
        colour = rng.integers(0, 256, channels, np.uint8)
        y0, x0 = (int(v) for v in rng.integers(-10, 14, 2))
        expected = _reference_blend(image, mask, y0, x0, colour.astype(np.float64))
        blend(image, mask, y0, x0, colour)
        np.testing.assert_array_equal(image, expected)


def test_native_and_pure_are_bit_identical():
    native, pure = _native_blend(), _kernels_py.blend_mask
    rng = np.random.default_rng(2025)
    for trial in range(1500):
        h, w = (int(v) for v in rng.integers(1, 70, 2))
        channels = int(rng.choice([1, 3, 4]))
        image = rng.integers(0, 256, (h, w, channels), np.uint8)
        mask = rng.integers(0, 256, (int(rng.integers(1, 60)), int(rng.integers(1, 60))), np.uint8)
        mask[rng.random(mask.shape) < rng.random()] = 0
        mask[rng.random(mask.shape) < rng.random() / 2] = 255
        colour = rng.integers(0, 256, channels, np.uint8)
        y0, x0 = (int(v) for v in rng.integers(-65, 75, 2))
        a, b = image.copy(), image.copy()
        native(a, mask, y0, x0, colour)
        pure(b, mask, y0, x0, colour)
        assert np.array_equal(a, b), f"trial {trial}: {image.shape} mask {mask.shape} at {y0},{x0}"


@pytest.mark.parametrize(
    "y0, x0", [(-3, -4), (-3, 7), (6, -4), (6, 7), (-20, 0), (0, 30), (-9, -9)]
)
def test_blend_clips_at_the_edges(blend, y0, x0):
    image = np.full((10, 12, 3), 40, np.uint8)
    mask = np.full((9, 9), 255, np.uint8)
    blend(image, mask, y0, x0, np.array([200, 100, 0], np.uint8))
    inside = np.zeros((10, 12), bool)
    inside[max(0, y0) : max(0, y0 + 9), max(0, x0) : max(0, x0 + 9)] = True
    assert (image[inside] == [200, 100, 0]).all()
    assert (image[~inside] == 40).all()


def test_blend_extremes_are_exact(blend):
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (5, 6, 3), np.uint8)
    before = image.copy()
    blend(image, np.zeros((5, 6), np.uint8), 0, 0, np.array([1, 2, 3], np.uint8))
    np.testing.assert_array_equal(image, before)  # coverage 0 changes nothing
    blend(image, np.full((5, 6), 255, np.uint8), 0, 0, np.array([1, 2, 3], np.uint8))
    assert (image == [1, 2, 3]).all()  # coverage 255 is the colour itself


def test_blend_refuses_what_it_cannot_take(blend):
    image, mask = np.zeros((4, 4, 3), np.uint8), np.full((2, 2), 255, np.uint8)
    colour = np.array([1, 2, 3], np.uint8)
    read_only = image.copy()
    read_only.setflags(write=False)
    for bad in [
        (read_only, mask, 0, 0, colour),
        (np.zeros((4, 8, 3), np.uint8)[:, ::2], mask, 0, 0, colour),
        (image.astype(np.float32), mask, 0, 0, colour),
        (np.zeros((4, 4), np.uint8), mask, 0, 0, colour),
        (image, mask.astype(np.int16), 0, 0, colour),
        (image, mask, 0, 0, colour[:2]),
    ]:
        with pytest.raises(ValueError):
            blend(*bad)
    assert not image.any()


# -- rendering, sizing, placement ---------------------------------------------------------

SIZES = [(640, 480), (1920, 1080), (301, 200), (480, 640), (1080, 1920), (200, 301), (256, 256),
         (512, 512), (1000, 1000), (160, 120), (4000, 3000)]  # fmt: skip


@pytest.mark.parametrize("width, height", SIZES)
@pytest.mark.parametrize("ratio", [0.05, 0.06])
def test_ink_height_is_at_least_five_percent_on_the_pixels(apply_with, width, height, ratio):
    policy = ImagePolicy(height_ratio=ratio, position=POSITIONS[(width + height) % len(POSITIONS)])
    floor = max(math.ceil(0.05 * min(width, height)), MIN_INK_HEIGHT_PX)
    for colour in [(255, 255, 255), (0, 0, 0), (128, 128, 128), (255, 0, 0)]:
        pixels = _flat(height, width, colour)
        label = apply_with(pixels, policy)
        top, bottom = _measured_ink_rows(pixels, label.box)
        assert bottom - top >= floor, (colour, label)
        assert bottom - top == label.ink_height_px  # the report matches the pixels
        assert (top, bottom) == (label.ink_box[1], label.ink_box[3])
        assert label.ink_height_ratio >= 0.05 and label.ink_height_ratio >= ratio - 1e-9


def test_ink_height_rule():
    assert label_ink_height(1920, 1080, ImagePolicy()) == math.ceil(0.06 * 1080)
    # One pixel above the 5% floor, so a pixel lost to JPEG ringing never takes it under 5%.
    assert label_ink_height(1080, 1920, ImagePolicy(height_ratio=0.05)) == 54 + 1
    assert label_ink_height(1000, 1000, ImagePolicy()) == 60  # no 60.000000000000004 -> 61
    assert label_ink_height(120, 90, ImagePolicy()) == MIN_INK_HEIGHT_PX  # legibility floor


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("width, height", [(640, 480), (480, 640)])
def test_every_position_and_nothing_drawn_outside_the_box(apply_with, position, width, height):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (height, width, 3), np.uint8)
    before = pixels.copy()
    policy = ImagePolicy(position=position, margin_ratio=0.03)
    label = apply_with(pixels, policy)
    x0, y0, x1, y1 = label.box
    margin = round(0.03 * min(width, height))
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
    horizontal = position.rpartition("-")[2]
    vertical = position.partition("-")[0]
    expected_x = {"left": x0 == margin, "right": x1 == width - margin}
    expected_y = {"top": y0 == margin, "bottom": y1 == height - margin}
    assert expected_x.get(horizontal, abs((x0 + x1) / 2 - width / 2) <= 1)
    assert expected_y.get(vertical, abs((y0 + y1) / 2 - height / 2) <= 1)
    outside = np.ones((height, width), bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(pixels[outside], before[outside])
    assert not np.array_equal(pixels[y0:y1, x0:x1], before[y0:y1, x0:x1])


def test_native_and_pure_label_identically():
    native, pure = _native_blend(), _kernels_py.blend_mask
    rng = np.random.default_rng(11)
    for shape in [(480, 640, 3), (300, 451, 4), (512, 512), (1080, 1920, 3)]:
        pixels = rng.integers(0, 256, shape, np.uint8)
        outputs = []
        for kernel in (native, pure):
            copy = pixels.copy()
            original, explicit_image._blend_mask = explicit_image._blend_mask, kernel
            try:
                apply_image_label(copy, ImagePolicy(text="内容由AI生成", position="top-left"))
            finally:
                explicit_image._blend_mask = original
            outputs.append(copy)
        np.testing.assert_array_equal(*outputs)


def test_grey_and_rgba_pictures(apply_with):
    grey = np.full((300, 400), 200, np.uint8)
    label = apply_with(grey, ImagePolicy())
    assert grey.shape == (300, 400) and len(label.fill) == 1 and label.fill == (0,)
    rgba = np.zeros((300, 400, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 30, 255
    label = apply_with(rgba, ImagePolicy())
    assert (rgba[..., 3] == 255).all()  # an opaque picture stays opaque
    assert label.fill == (255, 255, 255, 255)
    clear = np.zeros((300, 400, 4), np.uint8)  # fully transparent: the label must still show
    label = apply_with(clear, ImagePolicy(position="top-left"))
    x0, y0, x1, y1 = label.ink_box
    assert clear[y0:y1, x0:x1, 3].max() == 255
    outside = np.ones((300, 400), bool)
    bx0, by0, bx1, by1 = label.box
    outside[by0:by1, bx0:bx1] = False
    assert not clear[outside].any()


@pytest.mark.parametrize("value", range(0, 256, 15))
def test_glyphs_contrast_with_any_flat_background(apply_with, value):
    colours = [(value,) * 3, (value, 0, 0), (0, value, 0), (0, 0, value), (255, value, 0),
               (value, 0, 255)]  # fmt: skip
    for colour in colours:
        pixels = _flat(240, 320, colour)
        label = apply_with(pixels, ImagePolicy())
        luma = _luma(pixels)
        glyph = _luma(np.array([[label.fill[:3]]], np.uint8))[0, 0]
        x0, y0, x1, y1 = label.box
        plate = np.median(luma[y0:y1, x0:x1])  # the plate is most of the box
        assert abs(glyph - plate) >= 140, (colour, label)


def test_colour_follows_the_background(apply_with):
    white, black = _flat(200, 300, (255, 255, 255)), _flat(200, 300, (0, 0, 0))
    assert apply_with(white, ImagePolicy()).fill == (0, 0, 0)
    assert apply_with(black, ImagePolicy()).fill == (255, 255, 255)
    noise = np.random.default_rng(5).integers(0, 256, (200, 300, 3), np.uint8)
    busy = apply_with(noise, ImagePolicy())
    assert busy.plate_alpha >= 0.75  # texture under the glyphs is damped by a dense plate


def test_masks_are_cached(apply_with):
    pixels = _flat(720, 1280, (90, 120, 150))
    apply_with(pixels, ImagePolicy(text="AI合成"))
    before = explicit_image._sprite.cache_info()
    apply_with(pixels, ImagePolicy(text="AI合成", position="top"))
    after = explicit_image._sprite.cache_info()
    assert after.misses == before.misses and after.hits > before.hits


def test_pictures_too_small_for_the_label(apply_with):
    for shape in [(30, 40, 3), (120, 40, 3), (12, 500)]:
        with pytest.raises(PolicyError, match="too small"):
            apply_with(np.zeros(shape, np.uint8), ImagePolicy(text="内容由AI生成"))


def test_bad_arrays_are_refused(apply_with):
    bad = [
        np.zeros((100, 100, 3), np.float32),
        np.zeros((100, 100, 2), np.uint8),
        np.zeros((100, 100, 3, 1), np.uint8),
        np.zeros((100, 200, 3), np.uint8)[:, ::2],
        [[0] * 10] * 10,
    ]
    read_only = np.zeros((300, 300, 3), np.uint8)
    read_only.setflags(write=False)
    for pixels in bad + [read_only]:
        with pytest.raises(UnsupportedFormat):
            apply_with(pixels, ImagePolicy())
    assert issubclass(UnsupportedFormat, LabelkitError)


# -- policy text and font -----------------------------------------------------------------


def test_policy_text_validation():
    for text in ["", "   ", "生成", "AI", "AI generated", "人工智能"]:
        with pytest.raises(PolicyError):
            ImagePolicy(text=text)
    for text in ["AI生成", "AI合成", "人工智能生成", "内容由AI生成", "AI生成 AI-generated"]:
        assert ImagePolicy(text=text).text == text


def test_text_outside_the_bundled_font_names_the_characters(apply_with):
    with pytest.raises(PolicyError, match="测试") as info:
        apply_with(np.zeros((400, 600, 3), np.uint8), ImagePolicy(text="AI生成（测试）"))
    assert "font_path" in str(info.value)
    with pytest.raises(PolicyError, match="测"):
        detect_image_label(np.zeros((400, 600, 3), np.uint8), ImagePolicy(text="AI生成测"))


def test_own_font_skips_the_subset_check(apply_with):
    system_font = "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc"
    if not os.path.exists(system_font):
        pytest.skip(f"{system_font} is not installed")
    pixels = np.zeros((400, 600, 3), np.uint8)
    label = apply_with(pixels, ImagePolicy(text="AI生成（测试）", font_path=system_font))
    assert label.ink_height_px >= 0.05 * 400


def test_unloadable_font_is_a_policy_error(apply_with, tmp_path):
    broken = tmp_path / "broken.otf"
    broken.write_bytes(b"not a font")
    with pytest.raises(PolicyError, match="cannot load"):
        apply_with(np.zeros((400, 600, 3), np.uint8), ImagePolicy(font_path=str(broken)))


def test_bundled_font_and_licence():
    font = DATA / BUNDLED_FONT_FILE
    assert font.stat().st_size < 100_000  # a subset: tens of KB, not the 18 MB collection
    licence = (DATA / "OFL.txt").read_text(encoding="utf-8")
    assert "SIL OPEN FONT LICENSE Version 1.1" in licence and "Adobe" in licence
    ttLib = pytest.importorskip("fontTools.ttLib", reason="fontTools reads the font's cmap")
    cmap = ttLib.TTFont(font).getBestCmap()
    assert {chr(c) for c in cmap} >= BUNDLED_FONT_CHARS
    assert set("人工智能生成合成内容由本技术提供标识") <= BUNDLED_FONT_CHARS


# -- OCR: a standard engine with a Simplified Chinese model reads the label -----------------
#
# Protocol: crop the reported box plus a margin of 4% of its height (at least 2 px); scale up
# (Lanczos) to 120 px crop height when smaller, since tesseract's LSTM reads best with glyphs of
# 30+ px; no other change (no binarisation, no inversion, colour kept). Then `tesseract -l chi_sim
# --psm 13`: "raw line", because the crop is exactly one line and the page-layout heuristics of
# the other modes take texture at the crop's edge for text. Pass: the whitespace-free output
# contains the label text (tesseract inserts spaces between CJK glyphs; a stray mark read from
# the plate's edge or the margin is not a misreading of the label).

TESSERACT = shutil.which("tesseract")


def _tesseract_languages() -> set[str]:
    if TESSERACT is None:
        return set()
    run = subprocess.run([TESSERACT, "--list-langs"], capture_output=True, text=True, check=False)
    return set(run.stdout.split()[1:]) if run.returncode == 0 else set()


def _ocr(pixels: np.ndarray, box, tmp_path: Path) -> str:
    x0, y0, x1, y1 = box
    margin = max(2, round(0.04 * (y1 - y0)))
    height, width = pixels.shape[:2]
    rows = slice(max(0, y0 - margin), min(height, y1 + margin))
    cols = slice(max(0, x0 - margin), min(width, x1 + margin))
    crop = Image.fromarray(np.squeeze(pixels[rows, cols]))
    if crop.height < 120:
        scale = 120 / crop.height
        crop = crop.resize((round(crop.width * scale), 120), Image.Resampling.LANCZOS)
    path = tmp_path / "crop.png"
    crop.save(path)
    run = subprocess.run(
        [TESSERACT, str(path), "stdout", "-l", "chi_sim", "--psm", "13"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return "".join(run.stdout.split())


def _ocr_pictures() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2025)
    photos = ("astronaut", "coffee", "chelsea", "rocket")
    pictures = {name: _skimage_picture(name) for name in photos}
    pictures.update({
        "white": _flat(480, 640, (255, 255, 255)),
        "black": _flat(480, 640, (0, 0, 0)),
        "grey": _flat(480, 640, (128, 128, 128)),
        "red": _flat(480, 640, (255, 0, 0)),
        "noise": rng.integers(0, 256, (480, 640, 3), np.uint8),
    })  # fmt: skip
    pictures.update({name: _skimage_picture(name) for name in ("grass", "gravel", "brick")})
    return pictures


@pytest.mark.slow
@pytest.mark.skipif(TESSERACT is None, reason="tesseract is not installed (Debian: tesseract-ocr)")
@pytest.mark.parametrize("text", ["AI生成", "内容由AI生成"])
def test_tesseract_reads_the_label(text, tmp_path):
    if "chi_sim" not in _tesseract_languages():
        pytest.skip("tesseract has no chi_sim model (Debian: tesseract-ocr-chi-sim)")
    misread = {}
    for index, (name, picture) in enumerate(_ocr_pictures().items()):
        pixels = picture.copy()
        position = POSITIONS[(index + len(text)) % len(POSITIONS)]
        label = apply_image_label(pixels, ImagePolicy(text=text, position=position))
        read = _ocr(pixels, label.box, tmp_path)
        if text not in read:
            misread[f"{name} ({position})"] = read
    assert not misread, f"tesseract misread {text!r}: {misread}"


# -- detection --------------------------------------------------------------------------------


def _labelled_cases():
    rng = np.random.default_rng(99)
    names = ("astronaut", "chelsea", "camera", "grass", "brick")
    pictures = {name: _skimage_picture(name) for name in names}
    pictures["white"] = _flat(360, 480, (255, 255, 255))
    pictures["black"] = np.zeros((480, 360), np.uint8)
    pictures["red"] = _flat(400, 400, (255, 0, 0))
    pictures["noise"] = rng.integers(0, 256, (360, 640, 3), np.uint8)
    return pictures


@pytest.mark.parametrize("text", ["AI生成", "内容由AI生成"])
def test_detects_the_label_after_jpeg(apply_with, text):
    for name, picture in _labelled_cases().items():
        for position in POSITIONS:
            pixels = picture.copy()
            policy = ImagePolicy(text=text, position=position)
            label = apply_with(pixels, policy)
            for seen in (pixels, _jpeg(pixels, 75)):
                found = detect_image_label(seen, ImagePolicy(text=text))
                where = f"{name} {position}"
                assert found.present and found.position == position, (where, found)
                assert found.box == label.box, where
                side = min(pixels.shape[:2])
                assert abs(found.ink_height_ratio - label.ink_height_ratio) <= 1.5 / side, where
                assert found.score > 0.9, where


def test_detection_reports_the_grey_and_rgba_label(apply_with):
    grey = _skimage_picture("camera")
    label = apply_with(grey, ImagePolicy(position="top"))
    found = detect_image_label(grey)
    assert found.present and found.position == "top" and found.box == label.box
    rgba = np.dstack([_skimage_picture("coffee"), np.full((400, 600), 255, np.uint8)])
    label = apply_with(rgba, ImagePolicy(position="left"))
    found = detect_image_label(rgba)
    assert found.present and found.box == label.box
    strided = detect_image_label(rgba[..., :3])  # a view that is not C-contiguous
    assert strided.present and strided.box == label.box
    only_top = detect_image_label(rgba, positions=("top", "top-left"))
    assert not only_top.present
    with pytest.raises(PolicyError, match="unknown"):
        detect_image_label(rgba, positions=("middle",))


def _unlabelled_pictures():
    for name in SKIMAGE_LOCAL:
        picture = _skimage_picture(name)
        yield name, picture
        yield f"{name} (jpeg)", _jpeg(picture[..., :3] if picture.ndim == 3 else picture)
    rng = np.random.default_rng(4)
    ys, xs = np.mgrid[0:480, 0:640]
    synthetic = {
        "white": _flat(480, 640, (255, 255, 255)),
        "black": _flat(480, 640, (0, 0, 0)),
        "grey": np.full((480, 640), 128, np.uint8),
        "red": _flat(480, 640, (255, 0, 0)),
        "uniform noise": rng.integers(0, 256, (480, 640, 3), np.uint8),
        "gaussian noise": np.clip(rng.normal(128, 40, (480, 640)), 0, 255).astype(np.uint8),
        "horizontal ramp": (xs * 255 // 639).astype(np.uint8),
        "vertical ramp": (ys * 255 // 479).astype(np.uint8),
        "checkerboard": (((ys // 8 + xs // 8) % 2) * 255).astype(np.uint8),
        "stripes": ((np.sin(xs / 3.0) > 0) * 255).astype(np.uint8),
    }
    for name, picture in synthetic.items():
        yield name, picture
        yield f"{name} (jpeg)", _jpeg(picture)


def test_no_detection_on_unlabelled_pictures():
    fired, scores = {}, []
    for name, picture in _unlabelled_pictures():
        for text in ("AI生成", "内容由AI生成"):
            found = detect_image_label(picture, ImagePolicy(text=text))
            scores.append(found.score)
            if found.present:
                fired[f"{name} / {text}"] = found
    assert not fired
    assert max(scores) < 0.4  # labelled pictures score > 0.9: a wide gap to the 0.6 threshold


def test_detection_on_pictures_too_small_for_a_label():
    found = detect_image_label(np.zeros((20, 30, 3), np.uint8))
    assert not found.present and found.score == 0.0
