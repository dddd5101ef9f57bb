"""The visible label on video frames, blended straight into the Y, U and V planes.

The label is the picture label (same text, font, 5% ink rule, plate) drawn in the frame's
*display* orientation: a phone video stored sideways with a rotation matrix gets its label
upright where the viewer sees the policy's corner. Masks are rendered once per video; each frame
costs a blend over the label's box only (a few tens of thousands of pixels at 1080p). Frames
never pass through RGB: white and black are grey, so the label is the same in any YUV matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import PolicyError
from ..policy import ImagePolicy
from .image import (
    VisibleLabel,
    VisibleLabelDetection,
    _ALPHA_STEPS,
    _geometry,
    _plate_mask,
    _style,
    detect_image_label,
)

__all__ = ["VideoOverlay", "display_view", "detect_frame_label"]


def display_view(plane: np.ndarray, rotation: int) -> np.ndarray:
    """A view of a stored plane as the viewer sees it (``rotation``: degrees, as PyAV reports).

    FFmpeg shows a frame whose display matrix says ``rotation`` as np.rot90(stored, rotation/90):
    checked against ffmpeg's autorotate in the tests."""
    return np.rot90(plane, (rotation // 90) % 4)


def _blend(region: np.ndarray, alpha: np.ndarray, value: int) -> None:
    """region = round((region * (255 - a) + value * a) / 255), in place, exactly as blend_mask."""
    a = alpha.astype(np.uint32)
    t = region.astype(np.uint32) * (255 - a) + (value * a + 128)
    region[...] = ((t + (t >> 8)) >> 8).astype(np.uint8)


def _block_mean(mask: np.ndarray, sy: int, sx: int) -> np.ndarray:
    """Coverage of each chroma sample: the mean of the sy x sx luma samples it stands for."""
    h, w = mask.shape
    padded = np.zeros((-(-h // sy) * sy, -(-w // sx) * sx), np.uint32)
    padded[:h, :w] = mask
    blocks = padded.reshape(padded.shape[0] // sy, sy, padded.shape[1] // sx, sx)
    return ((blocks.sum(axis=(1, 3)) + sy * sx // 2) // (sy * sx)).astype(np.uint8)


@dataclass(frozen=True)
class _Layer:
    alpha: np.ndarray  # luma-resolution coverage in display space, uint8
    chroma: np.ndarray  # chroma-resolution coverage in display space, uint8
    luma_value: int


class VideoOverlay:
    """One video's visible label: geometry and masks fixed, style chosen on the first frame."""

    def __init__(self, width: int, height: int, policy: ImagePolicy, *, rotation: int = 0,
                 chroma: tuple[int, int] = (2, 2), full_range: bool = False) -> None:
        self.rotation = (rotation // 90 % 4) * 90
        turned = self.rotation in (90, 270)
        dw, dh = (height, width) if turned else (width, height)
        ink_px, sprite, origin = _geometry(dw, dh, policy, policy.position)
        if origin is None:
            raise PolicyError(f"a {dw}x{dh} video is too small for the visible label "
                              f"{policy.text!r}")
        self.policy, self.sprite, self.origin = policy, sprite, origin
        self.display_size = (dw, dh)
        self.ink_px = ink_px
        # Chroma subsampling (rows, columns) as seen in display orientation.
        sy, sx = chroma
        self.chroma = (sx, sy) if turned else (sy, sx)
        self.black, self.white = (0, 255) if full_range else (16, 235)
        self._layers: list[_Layer] | None = None
        self.label: VisibleLabel | None = None

    def _prepare(self, luma: np.ndarray) -> None:
        """Choose light-on-dark or dark-on-light from the first labelled frame, then keep it
        (a label that flips style from frame to frame would flicker)."""
        x0, y0 = self.origin
        sprite = self.sprite
        light, alpha_step = _style(luma[:, :, None], y0, x0, sprite)
        fill, plate = (self.white, self.black) if light else (self.black, self.white)
        layers = []
        if alpha_step:
            layers.append((_plate_mask(self.policy.text, self.policy.font_path, self.ink_px,
                                       alpha_step), plate))
        layers.append((sprite.fill, fill))
        sy, sx = self.chroma
        # Chroma masks must line up with the chroma grid: start the box on a grid line.
        oy, ox = y0 % sy, x0 % sx
        self._layers = []
        for mask, value in layers:
            shifted = np.zeros((mask.shape[0] + oy, mask.shape[1] + ox), np.uint8)
            shifted[oy:, ox:] = mask
            self._layers.append(_Layer(mask, _block_mean(shifted, sy, sx), value))
        ix0, iy0, ix1, iy1 = sprite.ink
        dw, dh = self.display_size
        self.label = VisibleLabel(
            text=self.policy.text, position=self.policy.position,
            box=(x0, y0, x0 + sprite.shape[1], y0 + sprite.shape[0]),
            ink_box=(x0 + ix0, y0 + iy0, x0 + ix1, y0 + iy1),
            ink_height_px=iy1 - iy0, ink_height_ratio=(iy1 - iy0) / min(dw, dh),
            font_size=sprite.font_size, fill=(fill,), plate=(plate,),
            plate_alpha=alpha_step / _ALPHA_STEPS)

    def apply(self, y: np.ndarray, u: np.ndarray | None = None,
              v: np.ndarray | None = None) -> VisibleLabel:
        """Blend the label into one frame's planes (stored orientation, views allowed) in place."""
        yd = display_view(y, self.rotation)
        if yd.shape != (self.display_size[1], self.display_size[0]):
            raise PolicyError(f"frame is {y.shape[1]}x{y.shape[0]}, the overlay was made for "
                              "another size")
        if self._layers is None:
            self._prepare(yd)
        x0, y0 = self.origin
        sy, sx = self.chroma
        for layer in self._layers:  # type: ignore[union-attr]
            h, w = layer.alpha.shape
            _blend(yd[y0 : y0 + h, x0 : x0 + w], layer.alpha, layer.luma_value)
            ch, cw = layer.chroma.shape
            for plane in (u, v):
                if plane is None:
                    continue
                pd = display_view(plane, self.rotation)
                region = pd[y0 // sy : y0 // sy + ch, x0 // sx : x0 // sx + cw]
                _blend(region, layer.chroma[: region.shape[0], : region.shape[1]], 128)
        assert self.label is not None
        return self.label


def detect_frame_label(y: np.ndarray, policy: ImagePolicy, rotation: int = 0,
                       full_range: bool = False) -> VisibleLabelDetection:
    """Find labelkit's visible label on one frame's Y plane (stored orientation)."""
    yd = np.ascontiguousarray(display_view(y, rotation))
    if not full_range:  # stretch video range to full, as the picture detector's levels expect
        yd = np.clip((yd.astype(np.int32) - 16) * 255 // 219, 0, 255).astype(np.uint8)
    return detect_image_label(yd, policy)
