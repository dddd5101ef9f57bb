"""Speed of the video watermark: VideoMarker.mark per Y frame, detect_video on 2 s of 1080p.

  pytest benchmarks/bench_video_watermark.py --benchmark-only

Issue 4's budget: label-and-transcode may add at most 10% to a plain PyAV decode + libx264
encode (CRF 18, veryfast, 2 threads: ~16-20 ms per 1080p frame here), so the per-frame mark
must cost a few ms at most. The plain decode + encode of the same frames is measured in the
same run as the baseline.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
import pytest
from PIL import Image

from labelkit.watermark import WatermarkKey
from labelkit.watermark.video import VideoMarker, detect_video

from .conftest import record

KEY = WatermarkKey(hashlib.sha256(b"labelkit video watermark benchmark").digest())
PAYLOAD = KEY.payload_for("01J9ZQ4T7K3M8X2R5V6W1Y0VID")
MARK = "video watermark: mark one Y frame"
DETECT = "video watermark: detect_video, 2 s of 1080p (60 frames)"
SIZES = [(1280, 720), (1920, 1080)]


@lru_cache(maxsize=None)
def _luma(width: int, height: int) -> np.ndarray:
    """The astronaut photo's BT.601 luma at width x height (read-only)."""
    from skimage import data

    rgb = np.asarray(Image.fromarray(data.astronaut()).resize((width, height),
                                                              Image.Resampling.LANCZOS))
    rgb = rgb.astype(np.int32)
    y = ((77 * rgb[..., 0] + 150 * rgb[..., 1] + 29 * rgb[..., 2] + 128) >> 8).astype(np.uint8)
    y.setflags(write=False)
    return y


def _frames(width: int, height: int, n: int) -> list[np.ndarray]:
    """n Y planes panning across the photo (4 px a frame)."""
    base = _luma(width + 4 * n, height)
    return [np.ascontiguousarray(base[:, 4 * i : 4 * i + width]) for i in range(n)]


BATCH = 30  # frames per timed call: 1 s of video, so the encoder's lookahead is paid in full


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_mark_frames(benchmark, size):
    width, height = size
    marker = VideoMarker(KEY, PAYLOAD, width, height)
    work = [f.copy() for f in _frames(width, height, BATCH)]

    def mark():
        for i, y in enumerate(work):
            marker.mark(y, 0.05 + i / 30)

    benchmark.group = MARK
    benchmark.pedantic(mark, rounds=8, warmup_rounds=1)
    record(MARK, f"VideoMarker.mark x{BATCH} {width}x{height}", benchmark,
           pixels=width * height * BATCH, subject=True,
           target="<= 10% of the encode (a few ms a 1080p frame)")


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_plain_encode_frames(benchmark, size):
    """The baseline: PyAV libx264 CRF 18 veryfast (2 threads), 30 frames encoded and flushed."""
    av = pytest.importorskip("av")
    import io

    width, height = size
    chroma = np.full((height // 2, width), 128, np.uint8)
    frames = [np.concatenate([y, chroma]) for y in _frames(width, height, BATCH)]

    def encode():
        with av.open(io.BytesIO(), "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=30,
                                    options={"crf": "18", "preset": "veryfast"})
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            stream.codec_context.thread_count = 2
            for i420 in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(i420, format="yuv420p")):
                    out.mux(packet)
            for packet in stream.encode(None):
                out.mux(packet)

    benchmark.group = MARK
    benchmark.pedantic(encode, rounds=3, warmup_rounds=1)
    record(MARK, f"libx264 CRF 18 veryfast encode x{BATCH} {width}x{height}", benchmark,
           pixels=width * height * BATCH)


def _marked_clip(width: int, height: int, seconds: float = 2.0) -> list[tuple[float, np.ndarray]]:
    marker = VideoMarker(KEY, PAYLOAD, width, height)
    out = []
    for i, y in enumerate(_frames(width, height, int(seconds * 30))):
        y = y.copy()
        marker.mark(y, i / 30)
        out.append((i / 30, y))
    return out


def test_detect_2s_1080p(benchmark):
    clip = _marked_clip(1920, 1080)
    benchmark.group = DETECT
    found = benchmark.pedantic(detect_video, (clip, KEY), rounds=3, warmup_rounds=1)
    assert found.present and found.payload == PAYLOAD, found.to_dict()
    record(DETECT, "detect_video (marked, found at the known period)", benchmark,
           pixels=1920 * 1080 * len(clip), subject=True)


def test_detect_2s_1080p_unmarked(benchmark):
    clip = [(i / 30, y) for i, y in enumerate(_frames(1920, 1080, 60))]
    benchmark.group = DETECT
    found = benchmark.pedantic(detect_video, (clip, KEY), rounds=2, warmup_rounds=0)
    assert not found.present, found.to_dict()
    record(DETECT, "detect_video (unmarked: every lattice searched)", benchmark,
           pixels=1920 * 1080 * len(clip))
