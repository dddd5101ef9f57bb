"""The video watermark: Y-plane embed, keyed signs over time, folded detection, H.264 excerpts."""

from __future__ import annotations

import contextlib
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from labelkit import _impl, _kernels_py
from labelkit.watermark import MIN_SIDE, WatermarkKey, WatermarkTooSmall
from labelkit.watermark.video import (
    MAX_VIDEO_HYPOTHESES,
    SEGMENT,
    VideoMarker,
    detect_video,
)

from .conftest import PURE, skimage_photo

KEY = WatermarkKey(bytes(range(32)))
OTHER = WatermarkKey(bytes(range(1, 33)))
PAYLOAD = KEY.payload_for("01JDZQ4T7K3M8X2R5V6W1Y0VID")
FPS = 30


def _luma(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int32)
    return ((77 * rgb[..., 0] + 150 * rgb[..., 1] + 29 * rgb[..., 2] + 128) >> 8).astype(np.uint8)


def _scene(width: int, height: int, n: int, speed: float = 1.0, photo: str = "astronaut.png"):
    """n Y planes panning slowly over a real photo (bicubic window of the photo)."""
    src = Image.fromarray(skimage_photo(photo))
    sw, sh = src.size
    ww = min(sw, sh * width / height) * 0.8
    wh = ww * height / width
    out = []
    for i in range(n):
        x0 = (sw - ww) * (0.2 + 0.5 * speed * i / max(n, 1))
        y0 = (sh - wh) * 0.5
        im = src.resize((width, height), Image.Resampling.BICUBIC,
                        box=(x0, y0, x0 + ww, y0 + wh))
        out.append(_luma(np.asarray(im)))
    return out


def _marked(frames, key=KEY, payload=PAYLOAD, profile="invisible"):
    h, w = frames[0].shape
    marker = VideoMarker(key, payload, w, h, profile=profile)
    out = []
    for i, y in enumerate(frames):
        y = y.copy()
        marker.mark(y, i / FPS)
        out.append((i / FPS, y))
    return out


@contextlib.contextmanager
def _kernels(which: str):
    """Run with the native kernels or the numpy twins, whatever _impl chose."""
    from labelkit import _native_watermark

    names = [n for n, g in _impl.KERNELS.items() if g == "watermark"]
    saved = {n: _impl._chosen[n] for n in names}
    source = _native_watermark if which == "native" else _kernels_py
    _impl._chosen.update({n: getattr(source, n) for n in names})
    try:
        yield
    finally:
        _impl._chosen.update(saved)


@pytest.fixture(scope="module")
def frames480():
    return _scene(640, 480, 45)


@pytest.fixture(scope="module")
def marked480(frames480):
    return _marked(frames480)


# -- embed / detect ---------------------------------------------------------------------------


def test_round_trip(marked480, frames480):
    found = detect_video(marked480, KEY)
    assert found.present and found.payload == PAYLOAD, found.to_dict()
    assert found.hypotheses == MAX_VIDEO_HYPOTHESES
    assert found.geometry["frames"] == len(marked480)
    # invisible: every frame keeps PSNR >= 40 dB against the unmarked Y plane
    for (_, y), y0 in zip(marked480, frames480):
        mse = np.mean((y.astype(float) - y0) ** 2)
        assert mse <= 255**2 / 1e4  # PSNR >= 40 dB (a frame at a sign change may be unmarked)


@pytest.mark.skipif(PURE, reason="LABELKIT_PURE_PYTHON=1: the native kernels are not expected")
@pytest.mark.parametrize("embed_with,detect_with", [("native", "pure"), ("pure", "native")])
def test_embed_with_one_detect_with_the_other(frames480, embed_with, detect_with):
    frames = frames480[:20]
    with _kernels(embed_with):
        marked = _marked(frames)
    with _kernels(detect_with):
        found = detect_video(marked, KEY)
    assert found.payload == PAYLOAD, found.to_dict()
    with _kernels("native" if embed_with == "pure" else "pure"):
        same = _marked(frames)
    # the mask's float filters may round differently in the last bit: a level at most
    for (_, a), (_, b) in zip(marked, same):
        diff = np.abs(a.astype(int) - b)
        assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_signs_pair_up_and_ramp(marked480):
    marker = VideoMarker(KEY, PAYLOAD, 640, 480)
    signs = [marker.sign(k) for k in range(200)]
    assert set(signs) == {-1, 1}
    # keyed pairs (+-) or (-+): any whole second of marks sums to zero
    assert all(signs[2 * j] == -signs[2 * j + 1] for j in range(100))
    assert 30 < sum(s > 0 for s in signs[::2]) < 70  # the pairs' order is keyed, not fixed
    other = VideoMarker(OTHER, PAYLOAD, 640, 480)
    assert [other.sign(k) for k in range(200)] != signs
    # mid-segment the amplitude is the sign; at a change it crosses zero smoothly
    assert marker.amplitude(0.25) == signs[0]
    assert marker.amplitude(SEGMENT) == 0.0
    assert abs(marker.amplitude(SEGMENT - 0.02)) < 1


def test_the_first_frame_is_marked_at_full_amplitude():
    # A fade-in from sign(-1) left the opening key frame unmarked for half the keys, and VP9,
    # skipping the static parts of later frames, then carried no mark at all (seen in tests).
    for i in range(32):
        marker = VideoMarker(WatermarkKey(bytes([i]) * 32), PAYLOAD, 640, 480)
        assert marker.amplitude(0.0) == marker.sign(0)
        assert marker.amplitude(0.02) == marker.sign(0)


def test_averaging_frames_does_not_expose_the_mark():
    """The mean of many marked frames of a static scene (the averaging attack) keeps far less
    of the mark than one frame."""
    still = _scene(640, 480, 1)[0]
    marked = _marked([still] * 60)  # 2 s of a still: four segments, two of each sign
    single = detect_video(marked[7:8], KEY)
    mean = np.mean([y.astype(np.float64) for _, y in marked], axis=0).round().astype(np.uint8)
    averaged = detect_video([(0.0, mean)], KEY)
    assert single.present and single.payload == PAYLOAD
    assert not averaged.present
    assert averaged.score < single.score / 3, (averaged.score, single.score)


def test_unmarked_and_other_key_not_detected(frames480, marked480):
    clean = detect_video([(i / FPS, y) for i, y in enumerate(frames480)], KEY)
    assert not clean.present and clean.payload is None
    assert clean.score < 7.0  # z* ~ 7.8 for MAX_VIDEO_HYPOTHESES at 1e-6
    other = detect_video(marked480, OTHER)
    assert not other.present and other.payload is None


def test_strided_plane_views(frames480):
    """A Y plane sliced out of rows of line_size > width is marked in place, padding untouched."""
    h, w = frames480[0].shape
    marker = VideoMarker(KEY, PAYLOAD, w, h)
    buffer = np.full((h, w + 64), 7, dtype=np.uint8)
    buffer[:, :w] = frames480[3]
    view = buffer[:, :w]
    assert not view.flags.c_contiguous
    marker.mark(view, 0.3)
    expected = frames480[3].copy()
    marker.mark(expected, 0.3)
    np.testing.assert_array_equal(view, expected)
    assert (buffer[:, w:] == 7).all()
    found = detect_video([(i / FPS, buffer[:, :w]) for i in range(3)], KEY)
    assert found.payload == PAYLOAD


def test_too_small_and_bad_input(frames480):
    with pytest.raises(WatermarkTooSmall):
        VideoMarker(KEY, PAYLOAD, 640, MIN_SIDE - 1)
    marker = VideoMarker(KEY, PAYLOAD, 640, 480)
    with pytest.raises(ValueError):
        marker.mark(np.zeros((480, 641), np.uint8), 0.0)  # another size
    with pytest.raises(TypeError):
        marker.mark(np.zeros((480, 640), np.float32), 0.0)
    with pytest.raises(ValueError):
        marker.mark(frames480[0].copy(), float("nan"))
    frozen = frames480[0].copy()
    frozen.setflags(write=False)
    with pytest.raises(ValueError):
        marker.mark(frozen, 0.0)
    assert detect_video([], KEY).reason == "no_frames"
    small = [(i / FPS, np.zeros((100, 150), np.uint8)) for i in range(3)]
    assert detect_video(small, KEY).reason == "too_small"
    # frames of another size mid-stream are skipped, not an error
    mixed = [(0.0, frames480[0]), (0.04, np.zeros((100, 150), np.uint8))]
    assert detect_video(mixed, KEY).geometry["frames_skipped"] == 1


# -- through H.264 ----------------------------------------------------------------------------


def _encode(path, frames, fps=FPS):
    """Y planes (grey chroma) as H.264 CRF 18 yuv420p with PyAV, as the labeling pipeline does."""
    import av

    h, w = frames[0][1].shape
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        for _, y in frames:
            i420 = np.concatenate([y, np.full((h // 2, w), 128, np.uint8)])
            for packet in stream.encode(av.VideoFrame.from_ndarray(i420, format="yuv420p")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


def _decode(path):
    """(t, Y plane) of every frame, decoded with PyAV (an independent reader of the file)."""
    import av

    frames = []
    with av.open(str(path)) as inp:
        for frame in inp.decode(video=0):
            plane = frame.planes[0]
            y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
            frames.append((float(frame.time), y[:, : plane.width].copy()))
    return frames


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="ffmpeg CLI not installed")
@pytest.mark.parametrize("profile", [
    "robust",
    pytest.param("invisible", marks=pytest.mark.xfail(
        strict=True, reason="measured: at CRF 30 x264 drops the invisible profile's mark from "
        "P/B frames of moving content (only intra frames keep it); issue 4's target not met")),
])
def test_excerpt_of_an_h264_reencode(tmp_path, profile):
    """A 2 s excerpt from the middle of an ffmpeg libx264 CRF 30 re-encode keeps the payload."""
    frames = _scene(1280, 720, 3 * FPS, speed=0.15, photo="coffee.png")
    marked = _marked(frames, profile=profile)
    src = tmp_path / "marked.mp4"
    _encode(src, marked)
    out = tmp_path / "excerpt.mp4"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-ss", "0.5", "-i", str(src),
                    "-t", "2", "-c:v", "libx264", "-crf", "30", "-preset", "veryfast",
                    str(out)], check=True)
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                            "-of", "csv=p=0", str(out)], capture_output=True, text=True, check=True)
    assert abs(float(probe.stdout) - 2.0) < 0.2
    found = detect_video(_decode(out), KEY)
    assert found.present and found.payload == PAYLOAD, (found.to_dict(), found.geometry)
    clean = tmp_path / "clean.mp4"
    _encode(clean, [(i / FPS, y) for i, y in enumerate(frames)])
    assert not detect_video(_decode(clean), KEY).present
