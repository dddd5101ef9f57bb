"""Video end to end: label, re-encode faithfully, metadata only, streams, verify, bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from labelkit import Labeler, verify  # noqa: E402
from labelkit.errors import CorruptInput, LabelkitError, LimitExceeded, PolicyError  # noqa: E402
from labelkit.explicit.image import detect_image_label  # noqa: E402
from labelkit.explicit.video import detect_frame_label  # noqa: E402
from labelkit.limits import Limits  # noqa: E402
from labelkit.policy import Policy, VideoPolicy  # noqa: E402
from labelkit.signing import SigningKey, generate_key  # noqa: E402

FFMPEG = shutil.which("ffmpeg")
FFPROBE = shutil.which("ffprobe")
EXIFTOOL = shutil.which("exiftool")
needs_ffmpeg = pytest.mark.skipif(not (FFMPEG and FFPROBE), reason="ffmpeg not installed")
from .conftest import PRODUCER  # noqa: E402


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return generate_key("ed25519")


@pytest.fixture(scope="module")
def labeler(key) -> Labeler:
    return Labeler(PRODUCER, key, Policy(video=VideoPolicy(preset="ultrafast")))


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True)


def probe(path: Path) -> dict:
    out = subprocess.run([FFPROBE, "-v", "error", "-print_format", "json", "-show_format",
                          "-show_streams", str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def clip(tmp: Path, name: str, *, size="640x400", rate=15, seconds=3, vcodec="libx264",
         extra=(), audio=True, pix_fmt="yuv420p") -> Path:
    """A small test clip made by ffmpeg (testsrc2 has moving detail and sharp edges)."""
    path = tmp / name
    inputs = ["-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}"]
    if audio:
        inputs += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    ffmpeg(*inputs, "-t", str(seconds), "-c:v", vcodec, "-pix_fmt", pix_fmt, *extra,
           *(["-c:a", "libopus" if name.endswith(".webm") else "aac"] if audio else []),
           str(path))
    return path


def packets(path: Path, kind: str) -> list[bytes]:
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [bytes(p) for p in c.demux(*streams) if p.size]


def frames_with_times(path: Path):
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            yield float(f.time), f


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("video")


@pytest.fixture(scope="module")
def h264(workdir) -> Path:
    return clip(workdir, "src.mp4", extra=("-metadata", "title=keep me", "-color_primaries",
                                           "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
                                           "-color_range", "tv"))


@pytest.fixture(scope="module")
def labeled(h264, labeler, workdir):
    out = workdir / "out.mp4"
    result = labeler.label_video(h264, out)
    return result, out


# -- re-encode: every layer -----------------------------------------------------------------------


@needs_ffmpeg
def test_label_keeps_the_stream_and_copies_audio(h264, labeled):
    result, out = labeled
    assert result.layers == ("explicit", "watermark", "metadata", "signature")
    src, dst = probe(h264), probe(out)
    sv = next(s for s in src["streams"] if s["codec_type"] == "video")
    dv = next(s for s in dst["streams"] if s["codec_type"] == "video")
    for k in ("codec_name", "width", "height", "pix_fmt", "r_frame_rate", "nb_frames",
              "color_primaries", "color_transfer", "color_space", "color_range"):
        assert dv.get(k) == sv.get(k), k
    assert packets(out, "audio") == packets(h264, "audio")  # bit-exact copy
    src_times = [t for t, _ in frames_with_times(h264)]
    assert [t for t, _ in frames_with_times(out)] == src_times  # timestamps kept
    # one label, read by independent readers; the other metadata kept
    tags = dst["format"]["tags"]
    assert json.loads(tags["AIGC"])["ProduceID"] == result.record.produce_id
    assert tags.get("title") == "keep me"
    if EXIFTOOL:
        meta = json.loads(subprocess.run([EXIFTOOL, "-j", "-G1", "-a", str(out)],
                                         capture_output=True, text=True, check=True).stdout)[0]
        assert sum(1 for k in meta if k.split(":")[-1].lower() == "aigc") == 1


@needs_ffmpeg
def test_visible_label_for_the_first_seconds_by_time(labeled):
    result, out = labeled
    assert result.visible.ink_height_ratio >= 0.05
    for t, frame in frames_with_times(out):
        y = frame.to_ndarray(format="gray")
        shown = detect_frame_label(y, Policy().image, full_range=True).present
        assert shown == (t < 2.5), t


@needs_ffmpeg
def test_verify_reports_every_layer(labeled, key):
    result, out = labeled
    report = verify(out, key=key)
    assert report.verdict == "compliant", [c for c in report.checks if c.status != "pass"]
    assert report.signature["status"] == "valid"
    assert report.explicit["status"] == "present"
    assert 2.4 <= report.explicit["duration_s"] <= 2.6
    assert report.watermark["present"] and report.watermark["matches_record"] is True


@needs_ffmpeg
def test_variable_frame_rate_label_by_presentation_time(workdir, labeler):
    src = workdir / "vfr.mkv"
    times = np.cumsum(np.r_[0, np.random.default_rng(1).uniform(0.02, 0.12, 60)])
    with av.open(str(src), "w") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 640, 400, "yuv420p"
        s.codec_context.time_base = Fraction(1, 1000)
        s.time_base = Fraction(1, 1000)
        rng = np.random.default_rng(2)
        for t in times:
            f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (400, 640, 3), np.uint8), "rgb24")
            f = f.reformat(format="yuv420p")
            f.pts, f.time_base = int(round(t * 1000)), Fraction(1, 1000)
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    out = workdir / "vfr-out.mkv"
    labeler.label_video(src, out)
    first_unlabelled = None
    for t, frame in frames_with_times(out):
        shown = detect_frame_label(frame.to_ndarray(format="gray"), Policy().image,
                                   full_range=True).present
        assert shown == (t < 2.5), t
        if not shown and first_unlabelled is None:
            first_unlabelled = t
    assert first_unlabelled >= 2.5


@needs_ffmpeg
def test_rotation_kept_and_label_upright_where_the_viewer_sees_it(workdir, labeler):
    plain = clip(workdir, "plain.mp4", size="640x400", audio=False, seconds=1)
    rotated = workdir / "rotated.mp4"
    ffmpeg("-i", str(plain), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(rotated))
    out = workdir / "rotated-out.mp4"
    labeler.label_video(rotated, out)
    side = next(s for s in probe(out)["streams"] if s["codec_type"] == "video")
    rotation = [d.get("rotation") for d in side.get("side_data_list", [])]
    assert rotation == [next(d.get("rotation") for d in next(
        s for s in probe(rotated)["streams"] if s["codec_type"] == "video")["side_data_list"])]
    shown = workdir / "shown.png"
    ffmpeg("-i", str(out), "-frames:v", "1", str(shown))  # ffmpeg applies the rotation
    from PIL import Image

    found = detect_image_label(np.asarray(Image.open(shown).convert("RGB")))
    assert found.present and found.position == "bottom-right"


@needs_ffmpeg
@pytest.mark.parametrize("name,vcodec,pix_fmt", [
    ("vp9.webm", "libvpx-vp9", "yuv420p"),
    ("hevc10.mp4", "libx265", "yuv420p10le"),
    ("h264-444.mkv", "libx264", "yuv444p"),
    ("av1.mkv", "libsvtav1", "yuv420p"),
    ("h264.mov", "libx264", "yuv420p"),
])
def test_codec_families_and_pixel_formats(workdir, labeler, key, name, vcodec, pix_fmt):
    extra = {"libvpx-vp9": ("-deadline", "realtime", "-cpu-used", "8"),
             "libx265": ("-x265-params", "log-level=error"),
             "libsvtav1": ("-preset", "12")}.get(vcodec, ())
    src = clip(workdir, name, vcodec=vcodec, pix_fmt=pix_fmt, extra=extra, seconds=2.5)
    out = workdir / f"out-{name}"
    labeler.label_video(src, out)
    sv = next(s for s in probe(src)["streams"] if s["codec_type"] == "video")
    dv = next(s for s in probe(out)["streams"] if s["codec_type"] == "video")
    assert (dv["codec_name"], dv["pix_fmt"]) == (sv["codec_name"], sv["pix_fmt"])
    assert packets(out, "audio") == packets(src, "audio")
    report = verify(out, key=key)
    assert report.verdict == "compliant", [c for c in report.checks if c.status != "pass"]
    assert report.watermark["matches_record"] is True, report.watermark


# -- metadata only ------------------------------------------------------------------------------


@needs_ffmpeg
@pytest.mark.parametrize("name", ["meta.mp4", "meta.mov", "meta.mkv", "meta.webm"])
def test_metadata_only_keeps_every_coded_sample(workdir, labeler, key, name):
    vcodec = "libvpx-vp9" if name.endswith(".webm") else "libx264"
    extra = ("-deadline", "realtime", "-cpu-used", "8") if name.endswith(".webm") else ()
    src = clip(workdir, name, vcodec=vcodec, extra=extra, seconds=1)
    out = workdir / f"labeled-{name}"
    result = labeler.label_video(src, out, explicit="present")
    assert result.layers == ("metadata", "signature")
    for kind in ("video", "audio"):
        assert packets(out, kind) == packets(src, kind)
    report = verify(out, key=key)
    assert report.signature["status"] == "valid"
    assert report.explicit["status"] == "absent"  # the caller vouched for it; none drawn here
    assert json.loads(probe(out)["format"]["tags"]["AIGC"])["Label"] == "1"


# -- generated frames ---------------------------------------------------------------------------


def _rgb_frames(n, h=400, w=640, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h // 8, w // 8, 3), np.uint8).repeat(8, 0).repeat(8, 1)
    for i in range(n):
        yield np.ascontiguousarray(np.roll(base, 4 * i, axis=1))


@needs_ffmpeg
def test_writer_streams_fragments_and_writes_a_signed_file(workdir, labeler, key):
    from labelkit.video import VideoWriter

    chunks: list[bytes] = []
    out = workdir / "generated.mp4"
    with VideoWriter(labeler, out, width=640, height=400, fps=15, on_chunk=chunks.append) as w:
        for frame in _rgb_frames(45):
            w.write(frame)
    assert len(chunks) >= 2
    stream = workdir / "streamed.mp4"
    stream.write_bytes(b"".join(chunks))
    streamed = probe(stream)
    assert json.loads(streamed["format"]["tags"]["AIGC"])["ProduceID"] == \
        w.result.record.produce_id
    assert sum(1 for _ in frames_with_times(stream)) == 45
    report = verify(out, key=key)
    assert report.verdict == "compliant", [c for c in report.checks if c.status != "pass"]
    assert report.signature["status"] == "valid"
    assert verify(stream, key=key).signature["status"] == "absent"  # sent before it existed


@needs_ffmpeg
def test_writer_records_its_video_in_the_ledger(workdir, key, tmp_path):
    from labelkit.ledger import open_ledger
    from labelkit.signing import parse_rc1
    from labelkit.video import VideoWriter

    with open_ledger(tmp_path / "ledger.sqlite3") as ledger:
        labeler = Labeler(PRODUCER, key, ledger=ledger)
        with VideoWriter(labeler, tmp_path / "v.mp4", width=640, height=400, fps=15) as w:
            for frame in _rgb_frames(30):
                w.write(frame)
        row = ledger.get(w.result.record.produce_id)
        assert row.modality == "video" and row.explicit == "apply"
        assert row.essence_digest == parse_rc1(w.result.record.reserved_code1).digest.hex()
        assert row.watermark_payload == f"{w.result.watermark_payload:016x}"


@needs_ffmpeg
def test_frame_labeler_for_services_that_encode_themselves(labeler):
    from labelkit.watermark.video import SEGMENT

    frames = labeler.frame_labeler(640, 400)
    rgb = next(_rgb_frames(1))
    before = rgb.copy()
    frames.label_frame(rgb, SEGMENT / 2)  # mid-segment: the mark at full amplitude
    assert detect_image_label(rgb).present
    x0, y0, x1, y1 = frames.visible.box
    outside = np.ones(rgb.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert (rgb != before)[outside].any()  # the watermark, away from the label
    later = next(_rgb_frames(1))
    frames.label_frame(later, 3.0)
    assert not detect_image_label(later).present  # past the opening 2.5 s
    vf = av.VideoFrame.from_ndarray(next(_rgb_frames(1)), "rgb24").reformat(format="yuv420p")
    frames.label_frame(vf, 0.5)
    assert detect_frame_label(vf.to_ndarray(format="gray"), Policy().image,
                              full_range=True).present
    assert frames.watermark_payload == labeler.watermark_key.payload_for(frames.produce_id)


# -- bad input ----------------------------------------------------------------------------------


@needs_ffmpeg
def test_truncated_files_fail_cleanly_and_write_nothing(h264, workdir, labeler):
    data = h264.read_bytes()
    for cut in (100, len(data) // 3, len(data) - 200):
        bad = workdir / f"cut{cut}.mp4"
        bad.write_bytes(data[:cut])
        out = workdir / f"cut{cut}-out.mp4"
        with pytest.raises(CorruptInput) as err:
            labeler.label_video(bad, out)
        assert str(bad) in str(err.value)
        assert not out.exists()
        assert not list(workdir.glob(".*lk-tmp"))


@needs_ffmpeg
def test_corrupt_packets_mid_file_are_skipped_and_reported(workdir, labeler):
    src = clip(workdir, "damaged.mkv", audio=False, seconds=3)
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(3)
    mid = len(data) // 2
    data[mid : mid + 3000] = rng.integers(0, 255, 3000, np.uint8).tobytes()
    damaged = workdir / "damaged2.mkv"
    damaged.write_bytes(bytes(data))
    out = workdir / "damaged-out.mkv"
    try:
        result = labeler.label_video(damaged, out)
    except CorruptInput as exc:  # the damage hit the container structure: named and clean
        assert str(damaged) in str(exc) and not out.exists()
        return
    assert out.exists() and sum(1 for _ in frames_with_times(out)) > 20
    assert any("could not be decoded" in n or "damaged" in n for n in result.notes), result.notes


@needs_ffmpeg
def test_no_video_stream_and_absurd_sizes(workdir, labeler, key):
    audio = workdir / "audio.m4a"
    ffmpeg("-f", "lavfi", "-i", "sine", "-t", "1", "-c:a", "aac", str(audio))
    with pytest.raises(LabelkitError):
        labeler.label_video(audio, workdir / "audio-out.m4a")
    small = Labeler(PRODUCER, key, limits=Limits(max_pixels=640 * 399))
    src = clip(workdir, "big.mp4", audio=False, seconds=1)
    with pytest.raises(LimitExceeded):
        small.label_video(src, workdir / "big-out.mp4")
    short = Labeler(PRODUCER, key, limits=Limits(max_duration_s=0.5))
    with pytest.raises(LimitExceeded):
        short.label_video(src, workdir / "long-out.mp4")
    for name in ("audio-out.m4a", "big-out.mp4", "long-out.mp4"):
        assert not (workdir / name).exists()


def test_policy_refuses_a_label_shorter_than_two_seconds():
    with pytest.raises(PolicyError):
        VideoPolicy(duration_s=1.5)
    with pytest.raises(PolicyError):
        VideoPolicy(placement="middle")


@needs_ffmpeg
@pytest.mark.parametrize("placement", ["start+end", "throughout"])
def test_label_at_the_end_or_throughout(workdir, key, placement):
    src = clip(workdir, f"place-{placement}.mp4", audio=False, seconds=6)
    labeler = Labeler(PRODUCER, key, Policy(video=VideoPolicy(placement=placement,
                                                              preset="ultrafast")))
    out = workdir / f"placed-{placement}.mp4"
    labeler.label_video(src, out)
    for t, frame in frames_with_times(out):
        shown = detect_frame_label(frame.to_ndarray(format="gray"), Policy().image,
                                   full_range=True).present
        expected = placement == "throughout" or t < 2.5 or t >= 6 - 2.5
        assert shown == expected, t
    report = verify(out, key=key)
    assert report.explicit["duration_s"] >= (6 if placement == "throughout" else 2.5)


@needs_ffmpeg
def test_cli_labels_and_verifies_a_folder_with_videos(workdir, h264, tmp_path, capsys):
    from labelkit.cli import main
    from labelkit.signing import write_key_pair

    keyfile = tmp_path / "k.key"
    write_key_pair(keyfile, generate_key("ed25519"))
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(h264, folder / "clip.mp4")
    shutil.copy(clip(workdir, "cli.webm", vcodec="libvpx-vp9", seconds=2.5,
                     extra=("-deadline", "realtime", "-cpu-used", "8")), folder / "clip.webm")
    out = tmp_path / "out"
    assert main(["label", "--producer", PRODUCER, "--key", str(keyfile), "-o", str(out),
                 "--video-preset", "ultrafast", "-j", "2", str(folder)]) == 0
    assert "labeled 2" in capsys.readouterr().out
    capsys.readouterr()
    assert main(["verify", "--key", str(keyfile), "--json", str(out)]) == 0
    reports = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["format"] for r in reports) == ["matroska", "mp4"]
    for r in reports:
        assert r["verdict"] == "compliant"
        assert r["explicit"]["duration_s"] >= 2.0
        assert r["watermark"]["matches_record"] is True, (r["path"], r["watermark"])
    assert main(["verify", "--key", str(keyfile), str(out / "clip.mp4")]) == 0
    assert "2.5s" in capsys.readouterr().out  # the opening label's duration in the table


def test_progress_counts_video_frames_from_workers():
    import io

    from labelkit.cli import label as label_cmd
    from labelkit.cli._progress import Progress

    progress = Progress(3, stream=io.StringIO(), tty=False)
    label_cmd._worker.update(frames=progress.frames, tick=None)
    try:
        report = label_cmd._frame_progress()
        report(16, 90)
        report(48, 90)
        other = label_cmd._frame_progress()  # a second video in the same worker
        other(10, 30)
    finally:
        label_cmd._worker.clear()
    assert "video frames 58/120" in progress.status()
