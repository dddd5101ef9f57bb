"""The visible label on pictures (GB 45438 5.x): render, place, blend, and detect it again.

Python decides (font size, place, colours) and caches the rendered masks per (text, font, ink
height); the per-picture cost is a look at the pixels under the label and two ``blend_mask``
kernel calls over the label's box: a translucent plate, then the glyphs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .. import _impl
from ..errors import PolicyError, UnsupportedFormat
from ..policy import POSITIONS, ImagePolicy

__all__ = [
    "BUNDLED_FONT_CHARS",
    "BUNDLED_FONT_FILE",
    "DETECTION_THRESHOLD",
    "MIN_INK_HEIGHT_PX",
    "RULE_HEIGHT_RATIO",
    "VisibleLabel",
    "VisibleLabelDetection",
    "apply_image_label",
    "detect_image_label",
    "label_ink_height",
]

# labelkit/data holds a subset of Noto Sans CJK SC Bold (OFL 1.1) whose capital I has serifs, so
# that OCR reads "AI" and not "Al"; tools/make_font_subset.py makes it from exactly these
# characters: printable ASCII and the Chinese a label text plausibly uses.
BUNDLED_FONT_FILE = "LabelkitSansSC-Bold.otf"
BUNDLED_FONT_CHARS = frozenset(
    "".join(chr(c) for c in range(0x20, 0x7F))
    + "人工智能生成合成内容由本技术提供标识"
    + "此该其图片像视频音声文字作品为是的使用深度部分经过处理辅助参与创作模型算法"
    + "服务平台商含有包括疑似可能虚拟场景制造编辑注意及和或已大语言数人基于"
    + "：，。、（）《》“”！？·—【】"
)
_DATA_DIR = Path(__file__).resolve().parent.parent / "data"

RULE_HEIGHT_RATIO = 0.05  # GB 45438: rendered glyph height >= 5% of the shortest side
MIN_INK_HEIGHT_PX = 10  # below this CJK glyphs stop being legible, whatever the 5% rule says

_blend_mask = _impl.kernel("blend_mask")

# Geometry in units of the ink height. No outline around the glyphs: tesseract misread outlined
# glyphs far more often (人 as 大) than plain ones on a plate.
_PAD_X, _PAD_Y, _RADIUS = 0.45, 0.35, 0.3
_HALO = 0.12  # how far around the glyphs the detector looks at the plate
# Colours: the fill (white or black) must stay _CONTRAST luminance levels away from the plated
# background at its 2nd/98th percentile, and the plate must damp the background's texture to a
# residual standard deviation of _RESIDUAL_STD; the plate takes the least opacity doing both.
_CONTRAST = 150.0
_RESIDUAL_STD = 8.0
_ALPHA_STEPS = 16  # plate opacity is quantised so that its mask can be cached
_MAX_ALPHA_STEP = 14  # never fully opaque: the picture stays visible through the plate
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, as PIL and tesseract


@dataclass(frozen=True, slots=True)
class VisibleLabel:
    """Where and how a visible label was drawn on one picture."""

    text: str
    position: str
    box: tuple[int, int, int, int]  # the plate, (x0, y0, x1, y1), x1/y1 exclusive
    ink_box: tuple[int, int, int, int]  # the glyphs' bounding box, same convention
    ink_height_px: int
    ink_height_ratio: float  # ink height / min(width, height)
    font_size: int
    fill: tuple[int, ...]  # glyph colour, one value per channel
    plate: tuple[int, ...]  # plate colour, one value per channel
    plate_alpha: float  # plate opacity, 0..1 (0: the background alone gives the contrast)


@dataclass(frozen=True, slots=True)
class VisibleLabelDetection:
    """Whether labelkit's own visible label is on a picture, and where."""

    present: bool
    position: str | None
    box: tuple[int, int, int, int] | None
    ink_height_ratio: float | None  # measured on the pixels, / min(width, height)
    score: float  # |normalised correlation| with the expected glyphs, 0..1


@dataclass(frozen=True, slots=True, eq=False)
class _Sprite:
    """The rendered masks of one (text, font, ink height), on the plate's canvas."""

    font_size: int
    fill: np.ndarray  # glyph coverage, uint8 (h, w)
    halo: np.ndarray  # glyphs thickened by _HALO: where the detector looks
    plate: np.ndarray  # rounded rectangle coverage, uint8 (h, w)
    ink: tuple[int, int, int, int]  # glyph bounding box on the canvas, (x0, y0, x1, y1)
    # The detector reads only the halo's pixels (the "support", about a third of the box):
    rows: np.ndarray  # their canvas rows
    cols: np.ndarray  # their canvas columns
    template: np.ndarray  # glyph coverage there, zero mean, unit norm
    core: np.ndarray  # bool: fully inside a glyph
    around: np.ndarray  # bool: fully outside the glyphs but near them
    # Where _style samples the background: one random pixel per cell of a ~32 x 32 grid over the
    # box. Jittered, so that a periodic texture cannot alias into a flat-looking sample.
    sample_rows: np.ndarray
    sample_cols: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.fill.shape  # type: ignore[return-value]


def label_ink_height(width: int, height: int, policy: ImagePolicy) -> int:
    """Return the ink height in pixels labelkit draws on a ``width`` x ``height`` picture."""
    short = min(width, height)
    # The epsilon keeps 0.06 * 1000 from becoming 61 through binary rounding. One pixel above
    # the rule's floor at least, so that JPEG ringing shaving a pixel off the measured ink never
    # takes a label drawn "at 5%" under 5% (verify checks the floor strictly).
    wanted = math.ceil(policy.height_ratio * short - 1e-9)
    floor = math.ceil(RULE_HEIGHT_RATIO * short - 1e-9) + 1
    return max(wanted, floor, MIN_INK_HEIGHT_PX)


def _font_file(font_path: str | None) -> str:
    return str(_DATA_DIR / BUNDLED_FONT_FILE) if font_path is None else font_path


@lru_cache(maxsize=64)
def _font(font_path: str | None, size: int) -> ImageFont.FreeTypeFont:
    try:
        # BASIC layout places glyphs identically with or without raqm, so the masks (and the
        # detector's template) are the same on every installation.
        return ImageFont.truetype(_font_file(font_path), size, layout_engine=ImageFont.Layout.BASIC)
    except OSError as exc:
        raise PolicyError(f"cannot load the label font {_font_file(font_path)!r}: {exc}") from exc


def _check_text(text: str, font_path: str | None) -> None:
    if font_path is not None:
        return  # a font the user chose: its coverage is the user's business
    missing = sorted({c for c in text if c not in BUNDLED_FONT_CHARS})
    if missing:
        raise PolicyError(
            f"label text {text!r} uses characters the bundled font lacks: {''.join(missing)!r}; "
            "set ImagePolicy.font_path to a font that has them"
        )


def _render(text: str, font_path: str | None, size: int, stroke: int = 0) -> np.ndarray:
    """Render ``text`` (thickened by ``stroke`` px) on a roomy canvas, baseline-anchored."""
    font = _font(font_path, size)
    canvas = Image.new("L", (int(font.getlength(text)) + 2 * size + 2 * stroke, 3 * size), 0)
    ImageDraw.Draw(canvas).text(
        (size, 2 * size), text, fill=255, font=font, anchor="ls",
        stroke_width=stroke, stroke_fill=255,
    )  # fmt: skip
    return np.asarray(canvas)


def _ink_bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    # Ink is where coverage reaches one half: the edge a reader (or an OCR engine) sees.
    inked = mask >= 128
    rows, cols = np.flatnonzero(inked.any(axis=1)), np.flatnonzero(inked.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


@lru_cache(maxsize=256)
def _ink_height_at(text: str, font_path: str | None, size: int) -> int:
    bbox = _ink_bbox(_render(text, font_path, size))
    return 0 if bbox is None else bbox[3] - bbox[1]


def _font_size_for(text: str, font_path: str | None, ink_px: int) -> int:
    """The smallest font size whose rendered ink is at least ``ink_px`` tall."""
    reference = _ink_height_at(text, font_path, 100)
    if reference == 0:
        raise PolicyError(f"label text {text!r} renders no visible glyphs")
    size = max(1, math.ceil(ink_px * 100 / reference))
    # Hinting makes ink height a staircase, not a line: walk to the exact smallest size.
    while _ink_height_at(text, font_path, size) < ink_px:
        size += 1
    while size > 1 and _ink_height_at(text, font_path, size - 1) >= ink_px:
        size -= 1
    return size


def _rounded_rect(height: int, width: int, radius: float) -> np.ndarray:
    """Anti-aliased coverage of a rounded rectangle filling a ``height`` x ``width`` canvas."""
    radius = min(radius, height / 2, width / 2)
    # Signed distance to the rounded box, turned into a one-pixel coverage ramp.
    qy = np.abs(np.arange(height) + 0.5 - height / 2)[:, None] - (height / 2 - radius)
    qx = np.abs(np.arange(width) + 0.5 - width / 2)[None, :] - (width / 2 - radius)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0)) + np.minimum(np.maximum(qx, qy), 0)
    coverage = np.clip(radius - outside + 0.5, 0.0, 1.0)
    return np.ascontiguousarray(np.round(coverage * 255), dtype=np.uint8)


def _jittered_grid(height: int, width: int, cells: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """One random pixel in each cell of a ``cells`` x ``cells`` grid over a box (fixed seed)."""
    rng = np.random.default_rng(45438)  # fixed: the same picture always gets the same label
    ny, nx = min(cells, height), min(cells, width)
    ys = (np.arange(ny)[:, None] + rng.random((ny, nx))) * (height / ny)
    xs = (np.arange(nx)[None, :] + rng.random((ny, nx))) * (width / nx)
    return ys.astype(np.intp).ravel(), xs.astype(np.intp).ravel()


@lru_cache(maxsize=128)
def _sprite(text: str, font_path: str | None, ink_px: int) -> _Sprite:
    """Render the label whose ink is ``ink_px`` tall; cached, so pictures only pay the blend."""
    _check_text(text, font_path)
    size = _font_size_for(text, font_path, ink_px)
    fill = _render(text, font_path, size)
    halo = _render(text, font_path, size, stroke=max(1, round(_HALO * ink_px)))
    x0, y0, x1, y1 = _ink_bbox(fill)  # type: ignore[misc]
    ink_h = y1 - y0
    pad_x, pad_y = round(_PAD_X * ink_h), round(_PAD_Y * ink_h)
    top, left = max(0, y0 - pad_y), max(0, x0 - pad_x)  # only an odd font would need the clamp
    crop = (slice(top, y1 + pad_y), slice(left, x1 + pad_x))
    fill, halo = np.ascontiguousarray(fill[crop]), np.ascontiguousarray(halo[crop])
    plate = _rounded_rect(*fill.shape, radius=_RADIUS * ink_h)
    rows, cols = np.nonzero(halo)
    coverage, halo_coverage = fill[rows, cols], halo[rows, cols]
    template = coverage.astype(np.float32)
    template -= template.mean()
    template /= np.linalg.norm(template)
    core, around = coverage >= 192, (halo_coverage >= 192) & (coverage == 0)
    sample_rows, sample_cols = _jittered_grid(*fill.shape)
    arrays = (fill, halo, plate, rows, cols, template, core, around, sample_rows, sample_cols)
    for array in arrays:
        array.setflags(write=False)  # shared by every caller through the cache
    ink = (x0 - left, y0 - top, x1 - left, y1 - top)
    return _Sprite(size, *arrays[:3], ink, *arrays[3:])


@lru_cache(maxsize=512)
def _plate_mask(text: str, font_path: str | None, ink_px: int, alpha_step: int) -> np.ndarray:
    plate = _sprite(text, font_path, ink_px).plate.astype(np.uint16)
    mask = np.ascontiguousarray((plate * alpha_step + _ALPHA_STEPS // 2) // _ALPHA_STEPS, np.uint8)
    mask.setflags(write=False)
    return mask


def _place(
    width: int, height: int, box_w: int, box_h: int, position: str, margin: int
) -> tuple[int, int]:
    """Top-left corner of a ``box_w`` x ``box_h`` label at ``position``, ``margin`` from edges."""
    x_end, y_end = width - margin - box_w, height - margin - box_h
    x_mid, y_mid = (width - box_w) // 2, (height - box_h) // 2
    vertical, _, horizontal = position.rpartition("-")  # "top" and "left" land in horizontal
    x = {"left": margin, "right": x_end}.get(horizontal, x_mid)
    y = {"top": margin, "bottom": y_end}.get(vertical or horizontal, y_mid)
    return x, y


def _hwc(pixels: np.ndarray, *, writeable: bool) -> np.ndarray:
    """View ``pixels`` as (H, W, C) uint8, refusing what the kernels cannot take."""
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8:
        raise UnsupportedFormat("pixels must be a uint8 numpy array")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 3, 4):
        raise UnsupportedFormat(f"pixels of shape {pixels.shape} are not (H, W) or (H, W, 3|4)")
    if writeable and not (pixels.flags.c_contiguous and pixels.flags.writeable):
        raise UnsupportedFormat("pixels must be writeable and C-contiguous (np.ascontiguousarray)")
    return pixels


def _luma(pixels: np.ndarray) -> np.ndarray:
    if pixels.shape[-1] == 1:
        return pixels[..., 0].astype(np.float32)
    return pixels[..., :3] @ _LUMA  # an alpha channel does not change what is drawn below


def _style(image: np.ndarray, y0: int, x0: int, sprite: _Sprite) -> tuple[bool, int]:
    """Light glyphs on a dark plate, or dark on light, and the plate opacity step."""
    sample = image[sprite.sample_rows + y0, sprite.sample_cols + x0]  # (n, C): ~1000 pixels
    if sample.shape[1] == 1:
        luma = sample[:, 0]
    else:  # integer BT.601 weights (sum 256): a histogram needs whole levels anyway
        rgb = sample[:, :3].astype(np.uint16)
        luma = (77 * rgb[:, 0] + 150 * rgb[:, 1] + 29 * rgb[:, 2] + 128) >> 8
    histogram = np.bincount(luma, minlength=256)
    count, levels = luma.size, np.arange(256)
    cumulative = np.cumsum(histogram)
    low = float(np.searchsorted(cumulative, 0.02 * count))
    high = float(np.searchsorted(cumulative, 0.98 * count))
    mean = float(histogram @ levels) / count
    std = math.sqrt(max(float(histogram @ levels**2) / count - mean * mean, 0.0))
    # With opacity a a dark plate maps background b to b(1 - a), a light one to b + (255 - b)a.
    need_light = 1 - (255 - _CONTRAST) / high if high > 255 - _CONTRAST else 0.0
    need_dark = (_CONTRAST - low) / (255 - low) if low < _CONTRAST else 0.0
    busy = 1 - _RESIDUAL_STD / std if std > _RESIDUAL_STD else 0.0
    light = need_light <= need_dark  # ties (busy or mid-grey areas): light on a dark plate
    alpha = max(need_light if light else need_dark, busy)
    return light, min(math.ceil(alpha * _ALPHA_STEPS - 1e-6), _MAX_ALPHA_STEP)


def _colour(value: int, channels: int) -> np.ndarray:
    colour = np.full(channels, value, dtype=np.uint8)
    if channels == 4:
        colour[3] = 255  # where the label draws it becomes opaque, so it shows on any backdrop
    return colour


def _geometry(
    width: int, height: int, policy: ImagePolicy, position: str
) -> tuple[int, _Sprite, tuple[int, int] | None]:
    """Ink height, sprite and top-left corner of the label (None: it does not fit)."""
    ink_px = label_ink_height(width, height, policy)
    sprite = _sprite(policy.text, policy.font_path, ink_px)
    box_h, box_w = sprite.shape
    margin = round(policy.margin_ratio * min(width, height))
    if box_w + 2 * margin > width or box_h + 2 * margin > height:
        return ink_px, sprite, None
    return ink_px, sprite, _place(width, height, box_w, box_h, position, margin)


def apply_image_label(pixels: np.ndarray, policy: ImagePolicy) -> VisibleLabel:
    """Draw the visible label on ``pixels`` (H, W[, 3|4]) uint8 in place; return where and how."""
    image = _hwc(pixels, writeable=True)
    height, width, channels = image.shape
    ink_px, sprite, origin = _geometry(width, height, policy, policy.position)
    box_h, box_w = sprite.shape
    if origin is None:
        margin = round(policy.margin_ratio * min(width, height))
        raise PolicyError(
            f"a {width}x{height} picture is too small for the visible label {policy.text!r}: "
            f"with {ink_px} px tall glyphs it needs at least "
            f"{box_w + 2 * margin}x{box_h + 2 * margin} pixels"
        )
    x0, y0 = origin
    light, alpha_step = _style(image, y0, x0, sprite)
    fill, plate = (255, 0) if light else (0, 255)
    if alpha_step:
        plate_mask = _plate_mask(policy.text, policy.font_path, ink_px, alpha_step)
        _blend_mask(image, plate_mask, y0, x0, _colour(plate, channels))
    _blend_mask(image, sprite.fill, y0, x0, _colour(fill, channels))
    ix0, iy0, ix1, iy1 = sprite.ink
    return VisibleLabel(
        text=policy.text,
        position=policy.position,
        box=(x0, y0, x0 + box_w, y0 + box_h),
        ink_box=(x0 + ix0, y0 + iy0, x0 + ix1, y0 + iy1),
        ink_height_px=iy1 - iy0,
        ink_height_ratio=(iy1 - iy0) / min(width, height),
        font_size=sprite.font_size,
        fill=tuple(int(v) for v in _colour(fill, channels)),
        plate=tuple(int(v) for v in _colour(plate, channels)),
        plate_alpha=alpha_step / _ALPHA_STEPS,
    )


# Detection: the |normalised correlation| between the luminance and the expected glyph coverage
# over the glyphs and a halo around them, at each place labelkit would have drawn the label.
# Light-on-dark and dark-on-light both correlate (with opposite signs); plate opacity, JPEG's
# smoothing and the background under a translucent plate only lower the score a little.
DETECTION_THRESHOLD = 0.6
_MIN_GLYPH_CONTRAST = 60.0  # glyphs vs their surroundings; labelkit draws them >= 150 apart


def _measure_ink(values: np.ndarray, sprite: _Sprite) -> int | None:
    """Ink height measured on a candidate's luminance over the support, None if no glyphs."""
    glyph_level = float(values[sprite.core].mean())
    around_level = float(values[sprite.around].mean())
    if abs(glyph_level - around_level) < _MIN_GLYPH_CONTRAST:
        return None
    middle = (glyph_level + around_level) / 2
    inked = (values > middle) if glyph_level > around_level else (values < middle)
    rows = sprite.rows[inked]
    return int(rows.max() - rows.min() + 1) if rows.size else None


def detect_image_label(
    pixels: np.ndarray,
    policy: ImagePolicy = ImagePolicy(),
    *,
    positions: tuple[str, ...] = POSITIONS,
    threshold: float = DETECTION_THRESHOLD,
) -> VisibleLabelDetection:
    """Find labelkit's visible label (the ``policy`` text and sizing) at any of ``positions``."""
    image = _hwc(np.asarray(pixels), writeable=False)
    height, width = image.shape[:2]
    unknown = set(positions) - set(POSITIONS)
    if unknown:
        raise PolicyError(f"unknown label positions {sorted(unknown)}; use {', '.join(POSITIONS)}")
    flat = image.reshape(-1, image.shape[2]) if image.flags.c_contiguous else None
    best_score, found, offsets = 0.0, None, None
    for position in positions:
        _, sprite, origin = _geometry(width, height, policy, position)
        if origin is None:
            break  # too small to carry the label anywhere
        x0, y0 = origin
        # Gather only the support's pixels (some thousands, not the whole box), by flat offsets
        # computed once: np.take on them is several times faster than 2-D fancy indexing.
        if flat is None:
            values = _luma(image[sprite.rows + y0, sprite.cols + x0])
        else:
            if offsets is None:
                offsets = sprite.rows * width + sprite.cols
            values = _luma(np.take(flat, offsets + (y0 * width + x0), axis=0))
        centred = values - values.mean()
        norm = float(np.linalg.norm(centred))
        score = abs(float(centred @ sprite.template)) / norm if norm > 1e-3 else 0.0
        best_score = max(best_score, score)
        if score < threshold or (found is not None and score <= found.score):
            continue
        ink_px = _measure_ink(values, sprite)
        if ink_px is not None:
            box = (x0, y0, x0 + sprite.shape[1], y0 + sprite.shape[0])
            found = VisibleLabelDetection(True, position, box, ink_px / min(width, height), score)
    return found or VisibleLabelDetection(False, None, None, None, best_score)
