#!/usr/bin/env python3
"""Measure the video watermark's operating points (profile, strength): cost, time, invisibility.

  python tools/video_operating_points.py cost      # (b)+(c): label_video size and time, mark on/off
  python tools/video_operating_points.py quality   # (d): PSNR/SSIM per frame, flicker at sign changes
  python tools/video_operating_points.py variants  # SEGMENT/WINDOW/boost monkeypatched, CRF 30/35

Robustness per point is tools/video_watermark_eval.py (--quick/--full --profile P --strength S).

cost: each clip (pans across scikit-image photos as benchmarks/bench_video.py's _pan_source, and
two clips of the eval tool) is labeled with ``Labeler.label_video`` (libx264 CRF 18, the preset
given) with the watermark at each point and with ``Policy(watermark=False)``, and transcoded
plainly with PyAV; output size and wall time of each, one process at a time.

quality: the mark alone (marked Y minus unmarked Y, before any encode) per frame of each clip:
PSNR every frame, SSIM every few frames; and on a static flat/gradient clip the frame-to-frame
change of the mark at the keyed sign changes, before and after a CRF 18 encode, with PNGs of the
frames around a change (--png DIR).

variants: the eval tool's suite on the attacks that kill the weak mark, with module constants of
labelkit.watermark.video monkeypatched in this process (the module is not edited).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import video_watermark_eval as ev  # noqa: E402

from labelkit import Labeler  # noqa: E402
from labelkit.policy import ImagePolicy, Policy, VideoPolicy  # noqa: E402
from labelkit.signing import generate_key  # noqa: E402
from labelkit.watermark import WatermarkKey  # noqa: E402
import labelkit.watermark.video as wv  # noqa: E402
from benchmarks.bench_video import _plain_transcode as plain_transcode  # noqa: E402

__all__ = ["POINTS", "pan_source", "plain_transcode", "run_cost", "run_quality", "run_variants"]

PRODUCER = "001191110102MAD55U9H0F10002"
POINTS = [("invisible", 0.5), ("invisible", 0.75), ("invisible", 1.0), ("invisible", 1.5),
          ("robust", 0.5), ("robust", 0.75), ("robust", 1.0)]
FPS = 30


def _parse_points(text: str | None) -> list[tuple[str, float]]:
    if not text:
        return POINTS
    out = []
    for item in text.split(","):
        profile, strength = item.split(":")
        out.append((profile, float(strength)))
    return out


def pan_source(path: Path, width: int, height: int, photo: str = "astronaut.png",
               seconds: int = 3) -> Path:
    """A pan (and no zoom) across a real photo, x264 CRF 18 veryfast, as bench_video's."""
    import av
    from PIL import Image

    big = np.asarray(Image.fromarray(ev._photo(photo)).resize(
        (int(width * 1.3), int(height * 1.3)), Image.Resampling.LANCZOS))
    n = FPS * seconds
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=FPS, options={"crf": "18", "preset": "veryfast"})
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(n):
            dx = int((big.shape[1] - width) * i / n)
            dy = int((big.shape[0] - height) * i / n / 2)
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(big[dy : dy + height, dx : dx + width]), "rgb24")
            for p in s.encode(frame.reformat(format="yuv420p")):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return path


def gradient_source(path: Path, width: int = 1280, height: int = 720, seconds: int = 3) -> Path:
    """A static clip: left half flat grey 128, right half a smooth diagonal gradient 40..220."""
    import av

    y = np.full((height, width), 128.0)
    xx, yy = np.meshgrid(np.linspace(0, 1, width // 2), np.linspace(0, 1, height))
    y[:, width // 2 :] = 40 + 180 * (0.7 * xx + 0.3 * yy)
    rgb = np.repeat(np.clip(np.round(y), 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=FPS, options={"crf": "18", "preset": "veryfast"})
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for _ in range(FPS * seconds):
            frame = av.VideoFrame.from_ndarray(rgb, "rgb24")
            for p in s.encode(frame.reformat(format="yuv420p")):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return path


def _clips(work: Path, names: list[str]) -> dict[str, Path]:
    out = {}
    for name in names:
        if name.startswith("pan-"):
            _, photo, res = name.split("-")
            w, h = {"720p": (1280, 720), "1080p": (1920, 1080)}[res]
            out[name] = pan_source(work / f"{name}.mp4", w, h, f"{photo}.png")
        else:
            out[name] = ev.make_clip(ev.CLIPS[name], work / f"{name}.mp4")
    return out


DEFAULT_CLIPS = ["pan-astronaut-720p", "pan-astronaut-1080p", "coffee-720p-cut",
                 "rocket-1080p-text"]


# -- (b), (c): size and time ------------------------------------------------------------------

def run_cost(work: Path, clips: list[str], presets: list[str | None],
             points: list[tuple[str, float]], repeat: int) -> None:
    """label_video with each point vs without the mark vs a plain transcode: size and time."""
    key = generate_key("ed25519")
    sources = _clips(work, clips)
    print("clip | preset | config | size KB | vs no-mark | time s | vs no-mark | vs plain")
    for name, src in sources.items():
        for preset in presets:
            configs: list[tuple[str, Policy | None]] = [("plain PyAV", None),
                                                        ("no mark", Policy(
                                                            watermark=False,
                                                            video=VideoPolicy(preset=preset)))]
            for profile, strength in points:
                configs.append((f"{profile} {strength:g}", Policy(
                    image=ImagePolicy(watermark_profile=profile, watermark_strength=strength),
                    video=VideoPolicy(preset=preset))))
            rows = []
            for label, policy in configs:
                dst = work / "out.mp4"
                best = math.inf
                for _ in range(repeat):
                    t = time.perf_counter()
                    if policy is None:
                        plain_transcode(src, dst, preset)
                    else:
                        Labeler(PRODUCER, key, policy).label_video(src, dst, durable=False)
                    best = min(best, time.perf_counter() - t)
                rows.append((label, dst.stat().st_size, best))
                dst.unlink()
            plain, nomark = rows[0], rows[1]
            for label, size, secs in rows:
                print(f"{name} | {preset or 'medium'} | {label} | {size / 1024:.0f} | "
                      f"{size / nomark[1]:.2f}x | {secs:.2f} | {secs / nomark[2]:.2f}x | "
                      f"{secs / plain[2]:.2f}x", flush=True)


# -- (d): invisibility ------------------------------------------------------------------------

def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return 10 * math.log10(255**2 / mse) if mse else 99.0


def _encode_y(frames: list[tuple[float, np.ndarray]], dst: Path, preset: str) -> list:
    """Encode grey Y planes (chroma 128) with libx264 CRF 18 and decode the Y planes back."""
    import av

    h, w = frames[0][1].shape
    with av.open(str(dst), "w") as out:
        s = out.add_stream("libx264", rate=FPS, options={"crf": "18", "preset": preset})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i, (_, y) in enumerate(frames):
            frame = av.VideoFrame(w, h, "yuv420p")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            ev._y_view(frame)[:] = y
            for p in (1, 2):
                plane = frame.planes[p]
                np.frombuffer(plane, np.uint8)[:] = 128
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode(None):
            out.mux(p)
    return ev.decode_luma(dst)


def _flicker(mark: list[np.ndarray], region: tuple[slice, slice], times: list[float]
             ) -> dict[str, float]:
    """RMS of the mark in a region, and of its frame-to-frame change: the largest at a sign
    change (within RAMP of a segment boundary) and the largest elsewhere."""
    rms = [float(np.sqrt(np.mean(m[region] ** 2))) for m in mark]
    at, steady, peak = [], [], []
    for i in range(1, len(mark)):
        d = mark[i][region] - mark[i - 1][region]
        r = float(np.sqrt(np.mean(d**2)))
        near = abs(times[i] / wv.SEGMENT - round(times[i] / wv.SEGMENT)) * wv.SEGMENT \
            <= wv.RAMP / 2 + 1.0 / FPS
        (at if near else steady).append(r)
        if near:
            peak.append(float(np.abs(d).max()))
    return {"mark_rms": float(np.max(rms)), "diff_rms_change": max(at, default=0.0),
            "diff_rms_steady": max(steady, default=0.0), "diff_peak_change": max(peak, default=0.0)}


def run_quality(work: Path, clips: list[str], points: list[tuple[str, float]],
                ssim_every: int, png: Path | None) -> None:
    """PSNR/SSIM of marked vs unmarked Y per frame; flicker on a flat/gradient clip."""
    key = WatermarkKey(hashlib.sha256(b"labelkit video operating points").digest())
    payload = key.payload_for("01JA0VIDE0EVA1UAT10N0000AB")
    sources = _clips(work, clips)
    print("clip | point | PSNR min/mean dB | SSIM min/mean (every %dth frame)" % ssim_every)
    for name, src in sources.items():
        frames = ev.decode_luma(src)
        h, w = frames[0][1].shape
        for profile, strength in points:
            marker = wv.VideoMarker(key, payload, w, h, strength=strength, profile=profile)
            psnr, ssim = [], []
            for i, (t, y) in enumerate(frames):
                marked = y.copy()
                marker.mark(marked, t)
                psnr.append(_psnr(y, marked))
                if i % ssim_every == 0 and abs(marker.amplitude(t)) == 1.0:
                    ssim.append(ev._ssim(y, marked))
            print(f"{name} | {profile} {strength:g} | {min(psnr):.1f}/{np.mean(psnr):.1f} | "
                  f"{min(ssim):.4f}/{np.mean(ssim):.4f}", flush=True)
        del frames
    # flicker on a static clip: flat grey (left) and a smooth gradient (right)
    src = gradient_source(work / "gradient.mp4")
    frames = ev.decode_luma(src)
    h, w = frames[0][1].shape
    flat = (slice(h // 4, 3 * h // 4), slice(w // 16, 7 * w // 16))
    grad = (slice(h // 4, 3 * h // 4), slice(9 * w // 16, 15 * w // 16))
    times = [t for t, _ in frames]
    plain = _encode_y(frames, work / "grad-plain.mp4", "medium")
    print("\nflicker on a static clip (levels of 8-bit luma; region flat grey | gradient):")
    print("point | stage | mark RMS | frame diff RMS at sign change | elsewhere | "
          "peak |diff| at change")
    for profile, strength in points:
        marker = wv.VideoMarker(key, payload, w, h, strength=strength, profile=profile)
        marked = []
        for t, y in frames:
            m = y.copy()
            marker.mark(m, t)
            marked.append((t, m))
        pre = [m.astype(np.float32) - y for (_, m), (_, y) in zip(marked, frames)]
        post_frames = _encode_y(marked, work / "grad-marked.mp4", "medium")
        post = [m.astype(np.float32) - y for (_, m), (_, y) in zip(post_frames, plain)]
        for stage, mark in (("embedded", pre), ("after CRF 18 medium", post)):
            f, g = _flicker(mark, flat, times), _flicker(mark, grad, times)
            print(f"{profile} {strength:g} | {stage} | {f['mark_rms']:.2f} | {g['mark_rms']:.2f}"
                  f" | {f['diff_rms_change']:.2f} | {g['diff_rms_change']:.2f} | "
                  f"{f['diff_rms_steady']:.2f} | {g['diff_rms_steady']:.2f} | "
                  f"{f['diff_peak_change']:.0f} | {g['diff_peak_change']:.0f}", flush=True)
        if png is not None:
            _pngs(png, f"{profile}{strength:g}", marked, post_frames, frames, marker)
        del marked, post_frames, pre, post


def _pngs(png: Path, tag: str, marked, post_frames, frames, marker) -> None:
    """Crops (flat | gradient border) of the frames around the first sign change: the decoded
    marked frame at 1:1, and the mark alone (decoded marked - source) x16 around grey."""
    from PIL import Image

    png.mkdir(parents=True, exist_ok=True)
    times = [t for t, _ in frames]
    change = next(i for i, t in enumerate(times) if i and
                  marker.sign(math.floor(t / wv.SEGMENT)) !=
                  marker.sign(math.floor(times[i - 1] / wv.SEGMENT)))
    h, w = frames[0][1].shape
    box = (slice(h // 2 - 128, h // 2 + 128), slice(w // 2 - 256, w // 2 + 256))
    tiles, amps = [], []
    for i in range(change - 3, change + 4):
        y = post_frames[i][1][box]
        d = post_frames[i][1][box].astype(np.float32) - frames[i][1][box]
        tiles.append(y)
        amps.append(np.clip(128 + 16 * d, 0, 255).astype(np.uint8))
    Image.fromarray(np.vstack(tiles)).save(png / f"{tag}-frames.png")
    Image.fromarray(np.vstack(amps)).save(png / f"{tag}-mark-x16.png")


# -- variants ---------------------------------------------------------------------------------

def _boosted(factor: float, after: float):
    """VideoMarker.amplitude times ``factor`` for ``after`` seconds following a sign change."""
    original = wv.VideoMarker.amplitude

    def amplitude(self, t: float) -> float:
        a = original(self, t)
        k = math.floor(t / wv.SEGMENT)
        into = t - k * wv.SEGMENT
        if into < wv.RAMP / 2 + after and self.sign(k) != self.sign(k - 1):
            return a * factor
        return a

    return amplitude


def run_variants(work: Path, clips: list[str], attacks: list[str], offsets: int,
                 profile: str, strength: float, variants: list[str]) -> None:
    """The eval suite on ``attacks`` for each variant of the module's constants."""
    original = (wv.SEGMENT, wv.WINDOW, wv.RAMP, wv.VideoMarker.amplitude)
    sources = {name: ev.make_clip(ev.CLIPS[name], work / f"{name}.mp4") for name in clips}
    for variant in variants:
        wv.SEGMENT, wv.WINDOW, wv.RAMP, wv.VideoMarker.amplitude = original
        for item in variant.split("+"):
            if item == "base":
                continue
            what, value = item.split("=")
            if what == "segment":
                wv.SEGMENT = float(value)
            elif what == "window":
                wv.WINDOW = float(value)
            elif what == "boost":  # boost=FACTOR/SECONDS
                factor, after = value.split("/")
                wv.VideoMarker.amplitude = _boosted(float(factor), float(after))
            else:
                raise SystemExit(f"unknown variant {item}")
        results: dict[str, list[bool]] = {}
        quality = []
        for name, src in sources.items():
            marked = work / f"{name}.marked.mp4"
            q = ev.mark_clip(src, marked, ev.KEY, ev.PAYLOAD, strength=strength, profile=profile,
                             quality_every=5)
            quality.append((q["psnr_min"], q["ssim_min"]))
            for attack in attacks:
                out = ev.run_attack(marked, work / f"{name}.{attack}.mp4", attack,
                                    ev.CLIPS[name].seconds)
                frames = ev.decode_luma(out)
                duration = frames[-1][0] + 1.0 / ev.CLIPS[name].fps
                for start in ev._offsets(duration, offsets):
                    found = wv.detect_video(ev.excerpt(frames, start), ev.KEY)
                    results.setdefault(attack, []).append(
                        bool(found.present and found.payload == ev.PAYLOAD))
                out.unlink()
        cells = " ".join(f"{a}={sum(r)}/{len(r)}" for a, r in results.items())
        print(f"{profile} {strength:g} {variant:<24} PSNR min {min(p for p, _ in quality):.1f}"
              f" SSIM min {min(s for _, s in quality):.4f} | {cells}", flush=True)
    wv.SEGMENT, wv.WINDOW, wv.RAMP, wv.VideoMarker.amplitude = original


def main(argv: list[str] | None = None) -> int:
    """Command line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("what", choices=["cost", "quality", "variants"])
    ap.add_argument("--clips", help="comma-separated: pan-PHOTO-720p|1080p or eval clip names")
    ap.add_argument("--points", help="profile:strength,... (default: the seven points)")
    ap.add_argument("--presets", default="medium,veryfast")
    ap.add_argument("--repeat", type=int, default=1, help="cost: best of N runs")
    ap.add_argument("--ssim-every", type=int, default=5)
    ap.add_argument("--png", help="quality: write PNGs around a sign change here")
    ap.add_argument("--attacks", default="none,crf23,crf30,crf35")
    ap.add_argument("--offsets", type=int, default=3)
    ap.add_argument("--variants", default="base,segment=1.0,window=0.25,boost=2/0.2,"
                                          "segment=1e9")
    ap.add_argument("--point", default="invisible:1.0", help="variants: profile:strength")
    ap.add_argument("--segment", type=float,
                    help="cost/quality: monkeypatch SEGMENT (1e9: one sign, never flipped)")
    args = ap.parse_args(argv)
    if args.segment:
        wv.SEGMENT = args.segment
    points = _parse_points(args.points)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.what == "cost":
            presets = [None if p == "medium" else p for p in args.presets.split(",")]
            run_cost(work, args.clips.split(",") if args.clips else DEFAULT_CLIPS, presets,
                     points, args.repeat)
        elif args.what == "quality":
            run_quality(work, args.clips.split(",") if args.clips else DEFAULT_CLIPS, points,
                        args.ssim_every, Path(args.png) if args.png else None)
        else:
            profile, strength = _parse_points(args.point)[0]
            run_variants(work, (args.clips.split(",") if args.clips else
                                ["astronaut-1080p", "coffee-720p-cut"]),
                         args.attacks.split(","), args.offsets, profile, strength,
                         args.variants.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
