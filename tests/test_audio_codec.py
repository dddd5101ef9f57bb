"""labelkit.audio.codec on its own: probe, decode, encode and spoken notices, against ffprobe/PyAV.

Fixtures are made at run time: espeak-ng speech (plucked notes when espeak-ng is missing)
on the left, the speech and a 330 Hz tone on the right, coded by the ffmpeg CLI; WAV files whose
samples must come back exactly are written here with numpy."""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest
from scipy.signal import resample_poly

from labelkit.audio.codec import decode_audio, encode_audio, load_notice, probe_audio
from labelkit.errors import CorruptInput, LabelkitError, LimitExceeded, PolicyError
from labelkit.limits import Limits

from .test_explicit_audio import R as RATE, speak
from .test_watermark_audio import _music

pytestmark = pytest.mark.skipif(not (shutil.which("ffmpeg") and shutil.which("ffprobe")),
                                reason="the ffmpeg CLI is not installed (make setup)")
HAVE_ESPEAK = shutil.which("espeak-ng") is not None
SPEECH = "Artificial intelligence generated this speech; the weather today is sunny and mild."

# name -> ffmpeg output arguments (input: the clip as a float WAV at 44.1 kHz, stereo)
RECIPES = {
    "s16.wav": ["-c:a", "pcm_s16le"],
    "s24.wav": ["-c:a", "pcm_s24le"],
    "f32.wav": ["-c:a", "pcm_f32le"],
    "s16.flac": ["-sample_fmt", "s16"],
    "s24.flac": ["-sample_fmt", "s32"],  # FFmpeg codes s32 input as 24-bit FLAC
    "alac24.m4a": ["-c:a", "alac", "-sample_fmt", "s32p"],
    "cbr.mp3": ["-b:a", "96k"],
    "vorbis.ogg": ["-c:a", "libvorbis", "-b:a", "96k"],
    "opus.ogg": ["-c:a", "libopus", "-b:a", "64k", "-vbr", "constrained"],
    "aac.m4a": ["-c:a", "aac", "-b:a", "128k"],
}
LOSSLESS = [n for n in RECIPES if n.endswith((".wav", ".flac")) or n.startswith("alac")]
LOSSY = [n for n in RECIPES if n not in LOSSLESS]
MIN_SNR_DB = {"cbr.mp3": 15, "vorbis.ogg": 8, "opus.ogg": 15, "aac.m4a": 15}  # one re-encode
DECODER_ALIASES = {"mp3float": "mp3"}  # PyAV names the decoder, ffprobe the codec


def write_wav(path: Path, samples: np.ndarray, rate: int, bits: int, channels: int = 0,
              tag: int = 0) -> Path:
    """A plain WAVE_FORMAT_PCM (or IEEE float) file of integer (or float32) ``samples``."""
    channels = channels or samples.shape[1]
    if bits == 24:
        data = samples.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        data = samples.astype({8: "u1", 16: "<i2", 32: "<f4" if samples.dtype.kind == "f"
                               else "<i4"}[bits]).tobytes()
    tag = tag or (3 if samples.dtype.kind == "f" else 1)
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * bits // 8,
                      channels * bits // 8, bits)
    body = b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) + len(data)) + body + data)
    return path


def ffmpeg_decode(path: Path, rate: int) -> np.ndarray:
    """The ffmpeg CLI's decoding of a file, as float32 stereo."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "f32le", "-ac", "2",
                          "-ar", str(rate), "-"], check=True, capture_output=True).stdout
    return np.frombuffer(out, np.float32).reshape(-1, 2)


def ffprobe(path: Path) -> dict:
    """ffprobe's view of the first audio stream, its container and its packets' bit rate."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_streams",
                          "-show_format", "-show_entries", "packet=size", "-of", "json",
                          str(path)], check=True, capture_output=True, text=True).stdout
    info = json.loads(out)
    s, fmt = info["streams"][0], info["format"]
    s["duration"] = duration = float(s.get("duration") or fmt.get("duration") or 0)
    s["packet_rate"] = sum(int(p["size"]) * 8 for p in info["packets"]) / (duration or 1)
    s["format_name"] = fmt["format_name"].split(",")[0]
    s.setdefault("channel_layout", f"{s['channels']} channels")  # none written: PyAV's name
    s["bits"] = int(s.get("bits_per_raw_sample") or s.get("bits_per_sample") or 0)
    return s


def aligned(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``a`` and ``b`` cut to their overlap once ``b`` is shifted by the codec delay."""
    n = 1 << int(np.ceil(np.log2(len(a) + len(b))))
    xc = np.fft.irfft(np.fft.rfft(b[:, 0], n) * np.conj(np.fft.rfft(a[:, 0], n)), n)
    lag = int(np.argmax(xc))
    lag = lag - n if lag > n // 2 else lag
    a, b = (a, b[lag:]) if lag >= 0 else (a[-lag:], b)
    m = min(len(a), len(b))
    return a[:m], b[:m]


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> np.ndarray:
    """About 5 s of stereo float32 at 44.1 kHz: speech left, speech and a tone right."""
    if HAVE_ESPEAK:
        voice = speak(tmp_path_factory, "en", SPEECH)[:, 0]
    else:
        voice = _music(5.0)[:, 0]  # plucked notes and a little noise, at RATE too
    t = np.arange(voice.size) / RATE
    return np.stack([0.8 * voice, 0.5 * voice + 0.2 * np.sin(2 * np.pi * 330 * t)], 1).astype(
        np.float32)


@pytest.fixture(scope="module")
def made(clip, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("codec")
    src = write_wav(folder / "clip.wav", clip, RATE, 32)
    for name, args in RECIPES.items():
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), *args,
                        str(folder / name)], check=True)
    return {name: folder / name for name in RECIPES}


@pytest.mark.parametrize("name", RECIPES)
def test_probe_matches_ffprobe(made, name):
    path = made[name]
    info, ff = probe_audio(path), ffprobe(path)
    assert info.container == {"mov": "mp4"}.get(ff["format_name"], ff["format_name"])
    assert DECODER_ALIASES.get(info.codec, info.codec) == ff["codec_name"]
    assert (info.sample_rate, info.channels) == (int(ff["sample_rate"]), ff["channels"])
    assert info.sample_fmt == ff["sample_fmt"]
    assert info.layout == ff["channel_layout"]
    assert info.bits == (ff["bits"] or av.AudioFormat(ff["sample_fmt"]).bits)
    assert info.lossless == av.Codec(info.codec, "r").lossless
    assert info.bit_rate == pytest.approx(int(ff.get("bit_rate") or ff["packet_rate"]), rel=0.03)
    assert info.duration_s == pytest.approx(ff["duration"], abs=2048 / info.sample_rate)
    data = path.read_bytes()  # in memory, copied or not, the same answer
    assert probe_audio(data, "x") == probe_audio(memoryview(data), "x") == info


@pytest.mark.parametrize("name", RECIPES)
def test_decode_matches_ffmpeg(made, name):
    pcm, info = decode_audio(made[name])
    assert pcm.dtype == np.float32 and pcm.flags.c_contiguous
    assert pcm.ndim == 2 and pcm.shape[1] == info.channels == 2
    assert np.isfinite(pcm).all() and np.abs(pcm).max() <= 1.0
    assert len(pcm) == pytest.approx(info.duration_s * info.sample_rate, abs=1024)
    ref = ffmpeg_decode(made[name], info.sample_rate)
    if name in LOSSLESS:  # exact: every integer format converts exactly to float32
        assert np.array_equal(pcm, ref)
    else:  # another FFmpeg version: the same samples, give or take a frame of padding
        assert abs(len(pcm) - len(ref)) <= 1152
        m = min(len(pcm), len(ref))
        assert np.abs(pcm[:m] - ref[:m]).max() < 1e-3


@pytest.mark.parametrize("bits,channels", [(8, 1), (16, 2), (24, 2), (32, 6), (-32, 2)])
def test_wav_decodes_bit_exact_and_round_trips(tmp_path, bits, channels):
    rng = np.random.default_rng(abs(bits) + channels)
    ref = written = rng.uniform(-1, 1, (4000, channels)).astype(np.float32)  # bits < 0: float
    if bits > 0:
        lo, hi = (0, 255) if bits == 8 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        written = rng.integers(lo, hi, (4000, channels), endpoint=True)
        written[:2] = [[lo], [hi]]  # both extremes
        ref = (((written - 128) if bits == 8 else written) / 2.0 ** (bits - 1)).astype(np.float32)
    path = write_wav(tmp_path / "in.wav", written, 22050, abs(bits))
    pcm, info = decode_audio(path)
    assert np.array_equal(pcm, ref) and (info.sample_rate, info.channels) == (22050, channels)
    again, info2 = decode_audio(encode_audio(pcm, info.sample_rate, info))
    assert np.array_equal(again, ref) and info2.codec == info.codec and info2.bits == info.bits


@pytest.mark.parametrize("name", LOSSY)
def test_lossy_round_trip_stays_close(made, name):
    pcm, info = decode_audio(made[name])
    again, _ = decode_audio(encode_audio(pcm, info.sample_rate, info))
    assert abs(len(again) - len(pcm)) <= 1152  # the same duration, within a frame
    a, b = aligned(pcm, again)
    assert len(a) > len(pcm) - 2048  # the codec delay is small, and removed on decoding
    for ch in range(2):  # both channels, not swapped: the right one holds a tone
        assert np.corrcoef(a[:, ch], b[:, ch])[0, 1] > 0.95
    a, err = a.astype(np.float64), (a - b).astype(np.float64)
    assert 10 * np.log10(np.sum(a**2) / np.sum(err**2)) > MIN_SNR_DB[name]


@pytest.mark.parametrize("name", RECIPES)
def test_encode_keeps_the_format(made, tmp_path, name):
    pcm, info = decode_audio(made[name])
    out = tmp_path / name
    out.write_bytes(encode_audio(pcm, info.sample_rate, info))
    src, got = ffprobe(made[name]), ffprobe(out)
    for key in ("format_name", "codec_name", "sample_rate", "channels", "channel_layout",
                "sample_fmt"):
        assert got[key] == src[key], key
    if name in LOSSLESS:  # the same depth, and the very samples
        assert got["bits"] == src["bits"] and np.array_equal(decode_audio(out)[0], pcm)
    else:  # the bit rate the source declares, else the one its packets carry
        target = int(src.get("bit_rate") or src["packet_rate"])
        assert got["packet_rate"] == pytest.approx(target, rel=0.12)
    with av.open(str(out)) as c:  # PyAV and the ffmpeg CLI decode it without a complaint
        assert sum(f.samples for f in c.decode(audio=0)) > 0.9 * len(pcm)
    run = subprocess.run(["ffmpeg", "-v", "error", "-i", str(out), "-f", "null", "-"],
                         capture_output=True, text=True)
    assert run.returncode == 0 and run.stderr == ""


@pytest.mark.parametrize("name", LOSSY)
def test_encode_honours_a_bit_rate(made, tmp_path, name):
    pcm, info = decode_audio(made[name])
    out = tmp_path / name
    out.write_bytes(encode_audio(pcm, info.sample_rate, info, bitrate=64000))
    assert ffprobe(out)["packet_rate"] == pytest.approx(64000, rel=0.12)


@pytest.mark.parametrize("name", RECIPES)
def test_zero_length_encodes_to_a_valid_file(made, tmp_path, name):
    info = probe_audio(made[name])
    out = tmp_path / name
    out.write_bytes(encode_audio(np.zeros((0, 2), np.float32), info.sample_rate, info))
    assert ffprobe(out)["codec_name"] == DECODER_ALIASES.get(info.codec, info.codec)
    pcm, _ = decode_audio(out)
    assert pcm.shape[1] == 2 and not np.any(pcm)
    if name.endswith((".wav", ".flac")):
        assert pcm.shape == (0, 2)
    else:  # the one silent sample a stream needs, and its codec's padding
        assert len(pcm) <= 1152


def test_zero_length_wav_decodes_to_no_samples(tmp_path):
    path = write_wav(tmp_path / "empty.wav", np.zeros((0, 3), np.int16), 8000, 16)
    pcm, info = decode_audio(path)
    assert pcm.shape == (0, 3) and pcm.dtype == np.float32 and info.duration_s == 0


@pytest.mark.parametrize("limit", ["max_channels", "max_sample_rate", "max_audio_samples"])
@pytest.mark.parametrize("call", [probe_audio, decode_audio])
def test_limits_name_the_file(made, limit, call):
    path = made["s16.flac"]
    info = probe_audio(path)
    declared = {"max_channels": info.channels, "max_sample_rate": info.sample_rate,
                "max_audio_samples": math.ceil(info.duration_s * info.sample_rate * info.channels)}
    limits = Limits(**{limit: declared[limit] - 1})
    with pytest.raises(LimitExceeded) as exc:
        call(path, limits=limits)
    assert exc.value.source == str(path) and str(path) in str(exc.value)
    with pytest.raises(LimitExceeded, match="^named.flac: "):
        call(path.read_bytes(), "named.flac", limits)
    call(path, limits=Limits(**{limit: declared[limit]}))  # at the limit: fine


def test_the_decoded_samples_are_limited_too(made):
    """AAC in MP4 decodes its last frame's padding: more samples than the stream declares."""
    path = made["aac.m4a"]
    info = probe_audio(path)
    declared = round(info.duration_s * info.sample_rate) * info.channels
    with av.open(str(path)) as c:
        held = sum(f.samples for f in c.decode(audio=0)) * info.channels
    if held <= declared:
        pytest.skip("this FFmpeg trims AAC padding: the declared count is the decoded one")
    with pytest.raises(LimitExceeded, match="holds more than"):
        decode_audio(path, limits=Limits(max_audio_samples=declared + 1))


@pytest.mark.parametrize("rate,channels", [(1_000_000, 2), (48000, 64)])
def test_crafted_headers_hit_the_default_limits(tmp_path, rate, channels):
    path = write_wav(tmp_path / "crafted.wav", np.zeros((8, 1), np.int16), rate, 16, channels)
    for call in (probe_audio, decode_audio):
        with pytest.raises(LabelkitError, match="crafted.wav"):
            call(path)


def _damaged(data: bytes, how: str) -> bytes:
    rng = np.random.default_rng(len(data))
    if how == "cut":
        return data[: len(data) // 3]
    if how == "header only":
        return data[:64]
    if how == "garbage":
        return rng.integers(0, 256, len(data), dtype=np.uint8).tobytes()
    b = np.frombuffer(data, np.uint8).copy()  # "flipped": 1% of the bytes past the header
    at = rng.integers(min(len(b) // 10, 1024), len(b), len(b) // 100)
    b[at] ^= rng.integers(1, 256, at.size, dtype=np.uint8)
    return b.tobytes()


@pytest.mark.parametrize("how", ["cut", "header only", "flipped", "garbage"])
@pytest.mark.parametrize("name", RECIPES)
def test_damaged_files_give_a_labelkit_error(made, tmp_path, name, how):
    path = tmp_path / f"bad-{name}"
    path.write_bytes(_damaged(made[name].read_bytes(), how))
    full = len(decode_audio(made[name])[0])
    for call in (probe_audio, decode_audio):
        try:
            result = call(path)
        except LabelkitError as exc:
            assert exc.source == str(path)
            assert "video" not in str(exc), "an audio file's error speaks of audio"
            continue
        assert how != "garbage", "random bytes are not audio"
        if call is decode_audio:  # what decodes is a prefix, or the whole with damaged samples
            pcm = result[0]
            assert pcm.shape[1] == 2 and np.isfinite(pcm).all()
            assert len(pcm) < full if how != "flipped" else len(pcm) <= full + 4096


def test_a_codec_without_decoder_is_corrupt_input(tmp_path):
    path = write_wav(tmp_path / "tag.wav", np.zeros((100, 2), np.int16), 8000, 16, tag=0x9999)
    for call in (probe_audio, decode_audio):
        with pytest.raises(CorruptInput, match="tag.wav: .*codec"):
            call(path)


@pytest.mark.parametrize("name,shape,rate", [
    ("cbr.mp3", (100, 3), RATE),  # MP3 codes one or two channels
    ("cbr.mp3", (100, 2), 96000),  # ... and only its own sample rates
    ("aac.m4a", (100, 2), 44000),
    ("vorbis.ogg", (100, 1), RATE),  # FFmpeg's Vorbis encoder is stereo only
    ("s16.wav", (10, 2, 2), RATE),  # not (n, channels)
    ("s16.wav", (10, 0), RATE),
])
def test_encode_refuses_what_the_format_cannot_hold(made, name, shape, rate):
    info = probe_audio(made[name])
    with pytest.raises(PolicyError, match="^out.x: "):
        encode_audio(np.zeros(shape, np.float32), rate, info, source="out.x")


def test_encode_takes_mono_vectors_and_clears_nan(made):
    info = probe_audio(made["s16.wav"])
    x = np.array([0.5, np.nan, np.inf, -np.inf, -0.25], np.float32)
    pcm, info2 = decode_audio(encode_audio(x, 8000, info))
    assert info2.channels == 1 and pcm[:, 0].tolist() == [0.5, 0.0, 32767 / 32768, -1.0, -0.25]


@pytest.fixture(scope="module")
def spoken(tmp_path_factory) -> Path:
    """espeak-ng's own output: 22.05 kHz mono speech."""
    if not HAVE_ESPEAK:
        pytest.skip("espeak-ng is not installed")
    path = tmp_path_factory.mktemp("notice") / "notice.wav"
    subprocess.run(["espeak-ng", "-w", str(path), "This content was generated by AI."],
                   check=True, capture_output=True)
    return path


@pytest.mark.parametrize("rate,channels", [(48000, 2), (16000, 1), (22050, 3)])
def test_load_notice_resamples_speech(spoken, rate, channels):
    src, info = decode_audio(spoken)
    notice = load_notice(spoken, rate, channels)
    assert notice.dtype == np.float32 and notice.shape[1] == channels
    assert abs(len(notice) - len(src) * rate / info.sample_rate) <= 64
    assert all(np.array_equal(notice[:, 0], notice[:, c]) for c in range(channels))
    if rate == info.sample_rate:  # nothing to resample: the samples as decoded
        assert np.array_equal(notice[:, :1], src)
    ref = resample_poly(src[:, 0].astype(np.float64), rate, info.sample_rate)
    a, b = aligned(ref[:, None], notice[:, :1].astype(np.float64))
    assert np.corrcoef(a[:, 0], b[:, 0])[0, 1] > 0.99


def test_load_notice_mixes_stereo_down(tmp_path):
    t = np.arange(16000) / 16000
    pcm = np.stack([0.3 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 500 * t)], 1)
    path = write_wav(tmp_path / "st.wav", pcm.astype(np.float32), 16000, 32)
    notice = load_notice(path, 16000, 2)
    assert np.allclose(notice[:, 0], pcm.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize("case", ["missing", "text", "empty", "silent", "no rate", "no channels",
                                  "over the limits"])
def test_bad_notices_are_refused_clearly(tmp_path, case):
    path = tmp_path / "notice.wav"
    if case == "text":
        path.write_text("not audio " * 50)
    elif case != "missing":
        sound = {"empty": 0 * np.arange(0), "silent": 0 * np.arange(8000)}
        write_wav(path, sound.get(case, np.arange(8000) % 50 * 100)[:, None], 8000, 16)
    rate, channels = {"no rate": (0, 2), "no channels": (48000, 0)}.get(case, (48000, 2))
    limits = Limits(max_channels=1) if case == "over the limits" else Limits()
    with pytest.raises(PolicyError) as exc:
        load_notice(path, rate, channels, limits)
    assert exc.value.source == str(path) and "notice" in str(exc.value)
