"""Visible label on a 1920x1080 RGB picture: labelkit (native, numpy twin) vs Pillow, and detection.

Run: PYTHONPATH=. python -m pytest benchmarks/bench_explicit_image.py --benchmark-only

Every contender draws the same label (text, font, size, plate) on the same picture, in place and
warm (font and masks loaded once, as a service labelling many pictures would). The Pillow peers
start from a PIL image, which spares them the numpy round trip labelkit's callers usually have:
"full frame" is the textbook ImageDraw.text + Image.alpha_composite over a full-size overlay,
"box only" composites just the label's box, the best Pillow can do. Ratios print at the end.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from labelkit import _kernels_py
from labelkit.explicit import image as explicit_image
from labelkit.explicit.image import apply_image_label, detect_image_label
from labelkit.policy import ImagePolicy

from .conftest import record

POLICY = ImagePolicy()  # "AI生成", bottom-right, ink height 6% of the short side
GROUP = "visible label on a 1920x1080 RGB array"


def _picture() -> np.ndarray:
    from skimage import data

    photo = Image.fromarray(data.astronaut()).resize((1920, 1080), Image.Resampling.BICUBIC)
    return np.array(photo)


def _label_with(kernel, benchmark, monkeypatch, name: str, target: str = "") -> None:
    monkeypatch.setattr(explicit_image, "_blend_mask", kernel)
    pixels = _picture()
    label = apply_image_label(pixels, POLICY)  # warms the font, size search and mask caches
    benchmark(apply_image_label, pixels, POLICY)
    assert label.ink_height_px >= 0.05 * 1080
    record(GROUP, name, benchmark, target=target)


def test_labelkit_native(benchmark, monkeypatch):
    try:
        from labelkit._native_blend import blend_mask
    except ImportError as exc:
        pytest.skip(f"native kernels not built: {exc}")
    _label_with(blend_mask, benchmark, monkeypatch, "labelkit native", target="<= 1 ms")


def test_labelkit_numpy_twin(benchmark, monkeypatch):
    _label_with(_kernels_py.blend_mask, benchmark, monkeypatch, "labelkit numpy twin")


def _pillow_setup():
    """The label labelkit draws, as Pillow primitives: font, box, plate radius and colours."""
    probe = _picture()
    label = apply_image_label(probe, POLICY)
    font = ImageFont.truetype(
        str(explicit_image._DATA_DIR / explicit_image.BUNDLED_FONT_FILE), label.font_size
    )
    x0, y0, x1, y1 = label.box
    plate = (*label.plate, round(label.plate_alpha * 255))
    fill = (*label.fill, 255)
    anchor = (label.ink_box[0], label.ink_box[3])  # left end of the ink's bottom, close enough
    radius = round(explicit_image._RADIUS * label.ink_height_px)
    return Image.fromarray(_picture()), font, (x0, y0, x1, y1), radius, plate, fill, anchor


def test_pillow_full_frame(benchmark):
    picture, font, box, radius, plate, fill, anchor = _pillow_setup()

    def label(image: Image.Image) -> Image.Image:
        overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        draw.rounded_rectangle((box[0], box[1], box[2] - 1, box[3] - 1), radius, fill=plate)
        draw.text(anchor, POLICY.text, font=font, fill=fill, anchor="ls")
        return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")

    result = benchmark(label, picture)
    assert result.size == (1920, 1080)
    record(GROUP, "Pillow ImageDraw + alpha_composite (peer)", benchmark, baseline=True)


def test_pillow_box_only(benchmark):
    picture, font, box, radius, plate, fill, anchor = _pillow_setup()
    x0, y0, x1, y1 = box

    def label(image: Image.Image) -> Image.Image:
        region = image.crop(box).convert("RGBA")
        overlay = Image.new("RGBA", region.size, (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        draw.rounded_rectangle((0, 0, x1 - x0 - 1, y1 - y0 - 1), radius, fill=plate)
        draw.text((anchor[0] - x0, anchor[1] - y0), POLICY.text, font=font, fill=fill, anchor="ls")
        image.paste(Image.alpha_composite(region, overlay).convert("RGB"), box[:2])
        return image

    benchmark(label, picture)
    record(GROUP, "Pillow, label box only", benchmark)


def test_detect_labelled_1080p(benchmark):
    pixels = _picture()
    label = apply_image_label(pixels, POLICY)
    found = benchmark(detect_image_label, pixels, POLICY)
    assert found.present and found.box == label.box
    record("detect the visible label, 1920x1080 RGB", "labeled picture", benchmark)


def test_detect_unlabelled_1080p(benchmark):
    pixels = _picture()
    detect_image_label(pixels, POLICY)  # warm the sprite cache
    found = benchmark(detect_image_label, pixels, POLICY)
    assert not found.present
    record("detect the visible label, 1920x1080 RGB", "unlabeled picture", benchmark)
