"""Video speed (issue 4): label-and-transcode against a plain PyAV transcode, and metadata-only
labeling of a 100 MB file against a file copy.

* "video label+transcode WxH": labelkit's ``Labeler.label_video`` (decode, visible label on the
  opening 2.5 s in YUV, watermark on every frame, x264 encode, then signature and metadata
  label, file written) against a plain PyAV decode + encode of the same file with the same
  encoder settings (libx264 CRF 18, the policy's preset, same threads), written to a file, in
  the same run. The baseline is the plain transcode; target: labeling adds <= 10%, i.e. the
  ratio column reads >= 0.91x. The source is a 3 s, 30 fps pan across a real photo
  (scikit-image's astronaut), coded with x264 CRF 18: real texture, like generated video.
  Two presets: x264's default (medium, labelkit's default) and veryfast (the encoder takes less,
  so the labeling's share is larger). labelkit runs twice: every layer, and without the
  watermark (visible label, metadata and signature only); each entry's name gives the output
  size: the mark must be coded into every inter frame, which is what costs the encoder time.
* "video metadata-only, 100 MB": ``label_video(..., explicit="present")`` (parse, essence digest
  over every coded sample, signature, label, file written) of a ~100 MB MP4 and MKV with ~30 000
  packets (640x360, 1.9 Mb/s video + AAC, 400 s), against shutil.copyfile (the baseline: an
  in-kernel copy) and a PyAV stream-copy remux (what a PyAV-based tool would do). Target:
  labelkit at >= 50% of copy speed (ratio >= 0.5x).

Durable writes (fsync) are off on every side: copyfile does not fsync either.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from fractions import Fraction

import numpy as np
import pytest

av = pytest.importorskip("av")

from labelkit import Labeler  # noqa: E402
from labelkit.policy import Policy, VideoPolicy  # noqa: E402
from labelkit.signing import generate_key  # noqa: E402

from .conftest import PRODUCER, photo_1080p, record  # noqa: E402

FPS = 30
SECONDS = 3


def _pan_source(path, width: int, height: int) -> None:
    """A 3 s pan (and slow zoom) across a real photo, x264 CRF 18, yuv420p."""
    from PIL import Image

    photo = Image.fromarray(photo_1080p()).resize((int(width * 1.3), int(height * 1.3)),
                                                  Image.Resampling.LANCZOS)
    big = np.asarray(photo)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=FPS, options={"crf": "18", "preset": "veryfast"})
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(FPS * SECONDS):
            dx = int((big.shape[1] - width) * i / (FPS * SECONDS))
            dy = int((big.shape[0] - height) * i / (FPS * SECONDS) / 2)
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(big[dy : dy + height, dx : dx + width]), "rgb24")
            for p in s.encode(frame.reformat(format="yuv420p")):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)


def _plain_transcode(src, dst, preset: str | None) -> None:
    """The peer: PyAV decode + libx264 encode with labelkit's settings, nothing else."""
    options = {"crf": "18", **({"preset": preset} if preset else {})}
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vout = out.add_stream("libx264", rate=vin.average_rate, options=options)
        ctx = vout.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = vin.width, vin.height, vin.codec_context.pix_fmt
        ctx.time_base = vout.time_base = vin.time_base
        for frame in inp.decode(vin):
            frame.pict_type = av.video.frame.PictureType.NONE
            for p in vout.encode(frame):
                out.mux(p)
        for p in vout.encode(None):
            out.mux(p)


@pytest.fixture(scope="module")
def key():
    return generate_key("ed25519")


@pytest.fixture(scope="module", params=[(1280, 720), (1920, 1080)], ids=["720p", "1080p"])
def pan(request, tmp_path_factory):
    w, h = request.param
    path = tmp_path_factory.mktemp("video") / f"pan{h}.mp4"
    _pan_source(path, w, h)
    return path, w, h


@pytest.mark.parametrize("preset", [None, "veryfast"], ids=["medium", "veryfast"])
def test_plain_transcode(benchmark, pan, preset, tmp_path):
    path, w, h = pan
    out = tmp_path / "plain.mp4"
    benchmark.pedantic(_plain_transcode, (path, out, preset), rounds=3, warmup_rounds=0)
    record(f"video label+transcode {w}x{h} x264 CRF 18 {preset or 'medium'}, "
           f"{FPS * SECONDS} frames",
           f"PyAV transcode, no labeling (peer), {os.path.getsize(out) // 1000} kB", benchmark,
           baseline=True, pixels=w * h * FPS * SECONDS)


@pytest.mark.parametrize("preset", [None, "veryfast"], ids=["medium", "veryfast"])
@pytest.mark.parametrize("watermark", [True, False], ids=["all", "nowm"])
def test_label_transcode(benchmark, pan, preset, watermark, tmp_path, key):
    path, w, h = pan
    labeler = Labeler(PRODUCER, key, Policy(watermark=watermark,
                                            video=VideoPolicy(preset=preset)))
    out = tmp_path / "labeled.mp4"
    result = benchmark.pedantic(labeler.label_video, (path, out), {"durable": False},
                                rounds=3, warmup_rounds=0)
    layers = ("explicit", "watermark") if watermark else ("explicit",)
    assert result.layers == (*layers, "metadata", "signature")
    name = ("labelkit label_video (every layer)" if watermark
            else "labelkit label_video, no watermark")
    record(f"video label+transcode {w}x{h} x264 CRF 18 {preset or 'medium'}, "
           f"{FPS * SECONDS} frames", f"{name}, {os.path.getsize(out) // 1000} kB", benchmark,
           target=">= 0.91x (adds <= 10%)", pixels=w * h * FPS * SECONDS, subject=watermark)


# -- metadata only ------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["mp4", "mkv"])
def big(request, tmp_path_factory):
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg not installed")
    folder = tmp_path_factory.mktemp("big")
    mp4 = folder / "big.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=640x360:rate=30", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=48000", "-t", "400", "-c:v", "libx264",
                    "-preset", "ultrafast", "-b:v", "1.9M", "-c:a", "aac", "-b:a", "96k",
                    str(mp4)], check=True)
    if request.param == "mp4":
        return mp4
    mkv = folder / "big.mkv"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(mp4), "-c", "copy", str(mkv)],
                   check=True)
    return mkv


def _fresh(path):
    def setup():
        if os.path.exists(path):
            os.unlink(path)
    return setup


def _group(path) -> str:
    mb = os.path.getsize(path) / 1e6
    return f"video metadata-only, {mb:.0f} MB {path.suffix[1:]}"


def test_copy_big(benchmark, big, tmp_path):
    out = tmp_path / f"copy{big.suffix}"
    benchmark.pedantic(shutil.copyfile, (big, out), setup=_fresh(out), rounds=5,
                       warmup_rounds=1)
    record(_group(big), "shutil.copyfile (peer)", benchmark, nbytes=os.path.getsize(big),
           baseline=True)


def _pyav_remux(src, dst) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), "w", format=inp.format.name.split(",")[0]
                                           ) as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams
                   if s.type in ("video", "audio")}
        out.metadata["AIGC"] = "{}"
        for packet in inp.demux(*[inp.streams[i] for i in streams]):
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)


def test_pyav_remux_big(benchmark, big, tmp_path):
    out = tmp_path / f"remux{big.suffix}"
    benchmark.pedantic(_pyav_remux, (big, out), setup=_fresh(out), rounds=3, warmup_rounds=1)
    record(_group(big), "PyAV stream-copy remux (peer)", benchmark, nbytes=os.path.getsize(big))


def test_label_metadata_only_big(benchmark, big, tmp_path, key):
    labeler = Labeler(PRODUCER, key)
    out = tmp_path / f"labeled{big.suffix}"
    benchmark.pedantic(labeler.label_video, (big, out), {"explicit": "present", "durable": False},
                       setup=_fresh(out), rounds=5, warmup_rounds=1)
    record(_group(big), "labelkit label_video metadata-only", benchmark,
           nbytes=os.path.getsize(big), target=">= 0.5x copy speed", subject=True)
