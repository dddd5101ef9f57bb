"""Audio files <-> float32 PCM (n_samples, channels) in [-1, 1], through PyAV (FFmpeg).

Decoding takes the first audio stream and converts every sample format exactly (s16 / 2**15,
s32 / 2**31, u8 (x - 128) / 2**7, float as is, but NaN as 0 and infinities as +-1: only damage
makes them). Encoder delay and padding are dropped the way FFmpeg does (the result equals
``ffmpeg -i x out.wav``). Limits are checked on the declared stream before anything is
allocated and again on the samples actually decoded.

Encoding writes the source's container and codec family (see ``encode_audio``): WAV is written
here with numpy, bit-exact; FLAC at the source's depth (16 or 24 bit, bit-exact); MP3 (CBR,
libmp3lame), Ogg Opus (libopus, always 48 kHz), Ogg Vorbis (FFmpeg's native, experimental,
encoder: noticeably worse than libvorbis at a given rate), M4A AAC (native 'aac')
or ALAC, Matroska audio with the same codec. Muxers run with ``fflags +bitexact`` so no
encoder tag or creation time is invented.

Edge cases:

* zero-length audio decodes to a (0, channels) array; WAV and FLAC encode it to a valid empty
  file, the other containers to a valid file of one silent sample (and what padding a lossy
  decoder keeps), since an MP3, Ogg, MP4 or Matroska stream of no packets does not open;
* 8 channels keep their layout (7.1 stays 7.1); MP3 refuses more than 2 channels, Vorbis
  anything but 2 (FFmpeg's own encoder is stereo only) (PolicyError);
* 384 kHz decodes, and encodes as WAV and FLAC; MP3, AAC and Opus cannot code such rates and
  raise PolicyError (Opus always resamples to 48 kHz, which it requires);
* pure silence round-trips (lossless: exactly zero);
* clips shorter than 50 ms decode and encode (lossy codecs add their usual delay, which the
  container's gapless info removes again on decoding).
"""

from __future__ import annotations

import io
import math
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import CorruptInput, LabelkitError, LimitExceeded, PolicyError
from ..limits import DEFAULT_LIMITS, Limits
from ..video._av import av, ffmpeg_errors, open_input

__all__ = ["AudioInfo", "probe_audio", "decode_audio", "encode_audio", "load_notice",
           "MAX_BAD_PACKETS"]

# A file whose packets mostly fail to decode is not worth labeling: give up past this many.
MAX_BAD_PACKETS = 100

_LOSSLESS = {"flac", "alac", "wavpack", "tta", "ape", "mlp", "truehd", "tak"}
_FORMAT_BITS = {"u8": 8, "u8p": 8, "s16": 16, "s16p": 16, "s32": 32, "s32p": 32, "flt": 32,
                "fltp": 32, "dbl": 64, "dblp": 64, "s64": 64, "s64p": 64}
_MP3_RATES = {  # sample rate -> legal bit rates (kbit/s)
    **{r: (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
       for r in (32000, 44100, 48000)},
    **{r: (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160)
       for r in (16000, 22050, 24000)},
    **{r: (8, 16, 24, 32, 40, 48, 56, 64) for r in (8000, 11025, 12000)},
}
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000,
              7350)
_FF_QP2LAMBDA = 118  # FFmpeg's scale of global_quality
_SPEAKERS = ("FL", "FR", "FC", "LFE", "BL", "BR", "FLC", "FRC", "BC", "SL", "SR", "TC", "TFL",
             "TFC", "TFR", "TBL", "TBC", "TBR")


@dataclass(frozen=True)
class AudioInfo:
    """What re-encoding needs to know about a file's first audio stream."""

    container: str  # wav, mp3, flac, ogg, mp4 (M4A), matroska (MKA)
    codec: str  # FFmpeg's codec name
    sample_rate: int
    channels: int
    layout: str
    sample_fmt: str  # FFmpeg's decoded sample format (s16, s32, fltp...)
    bits: int
    bit_rate: int  # bit/s of the audio stream (from the packets when FFmpeg reports none)
    duration_s: float
    lossless: bool
    damaged_packets: int = 0  # packets that failed to decode (decode_audio only)


def _name(src: Any, source: str | None) -> str:
    """The name errors carry."""
    if source:
        return source
    return os.fspath(src) if isinstance(src, (str, os.PathLike)) else "<audio>"


def _container_name(fmt: str) -> str:
    """labelkit's short name for an FFmpeg demuxer name."""
    names = fmt.split(",")
    if "mp4" in names or "mov" in names:
        return "mp4"
    if "matroska" in names:
        return "matroska"
    return names[0]


def _declared_bits(codec: str, extradata: bytes | None) -> int:
    """The sample depth a FLAC STREAMINFO or an ALAC magic cookie declares (0 when neither)."""
    e = bytes(extradata or b"")
    if codec == "flac":
        e = e[8:] if e[:4] == b"fLaC" else e  # some muxers keep the marker and block header
        return (((e[12] & 1) << 4) | (e[13] >> 4)) + 1 if len(e) >= 18 else 0
    if codec == "alac" and len(e) >= 36 and e[4:8] == b"alac":
        return e[17]
    return 0


def _describe(inp: Any, source: str, limits: Limits, count_packets: bool) -> tuple[Any, AudioInfo]:
    """Check the first audio stream against the limits and describe it (no decoding)."""
    if not inp.streams.audio:
        raise CorruptInput("no audio stream", source=source)
    stream = inp.streams.audio[0]
    ctx = stream.codec_context
    if ctx is None:  # PyAV gives no context when FFmpeg has no decoder for the codec tag
        raise CorruptInput("the audio stream's codec is unknown (no decoder)", source=source)
    rate, channels = int(ctx.sample_rate or 0), int(ctx.channels or 0)
    if channels > limits.max_channels:
        raise LimitExceeded(f"audio declares {channels} channels, over the limit of "
                            f"{limits.max_channels}", source=source)
    if rate > limits.max_sample_rate:
        raise LimitExceeded(f"audio declares {rate} Hz, over the limit of "
                            f"{limits.max_sample_rate} Hz", source=source)
    if rate <= 0 or channels <= 0:
        raise CorruptInput(f"audio stream declares {rate} Hz and {channels} channels",
                           source=source)
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif inp.duration is not None:
        duration = inp.duration / 1_000_000
    if duration > limits.max_duration_s:
        raise LimitExceeded(f"audio declares {duration:.0f} s, over the limit of "
                            f"{limits.max_duration_s:.0f} s", source=source)
    if duration * rate * channels > limits.max_audio_samples:
        raise LimitExceeded(f"audio declares {duration * rate * channels:.0f} samples, over the "
                            f"limit of {limits.max_audio_samples}", source=source)
    codec = ctx.name or (ctx.codec.name if ctx.codec else "unknown")
    sample_fmt = ctx.format.name if ctx.format is not None else ""
    # PyAV exposes no bits_per_raw_sample for audio: FLAC and ALAC declare it in their headers.
    bits = int(getattr(ctx, "bits_per_raw_sample", 0) or 0) or _declared_bits(codec, ctx.extradata)
    if not bits and codec.startswith("pcm_"):
        digits = "".join(c for c in codec.split("_")[1] if c.isdigit())
        bits = int(digits) if digits else 0
    bits = bits or _FORMAT_BITS.get(sample_fmt, 16)
    bit_rate = int(ctx.bit_rate or stream.bit_rate or 0)
    if not bit_rate and count_packets:
        total = 0
        for packet in inp.demux(stream):
            total += packet.size
        if duration > 0:
            bit_rate = int(round(total * 8 / duration))
        inp.seek(0, any_frame=True, backward=True)
    lossless = codec.startswith("pcm_") or codec in _LOSSLESS
    layout = ctx.layout.name if ctx.layout is not None else ""
    return stream, AudioInfo(_container_name(inp.format.name), codec, rate, channels, layout,
                             sample_fmt, bits, bit_rate, duration, lossless)


def probe_audio(src: Any, source: str | None = None, limits: Limits = DEFAULT_LIMITS) -> AudioInfo:
    """Describe the first audio stream of ``src`` (path or bytes) without decoding it."""
    source = _name(src, source)
    with ffmpeg_errors(source, "probe", "audio"):
        with open_input(src, source, "audio") as inp:
            return _describe(inp, source, limits, True)[1]


def _frame_pcm(frame: Any, channels: int) -> np.ndarray:
    """One decoded frame as float32 (n, channels), converted exactly."""
    fmt = frame.format
    a = frame.to_ndarray()
    if fmt.is_planar:
        a = a.T
    else:
        a = a.reshape(-1, channels)
    if a.dtype.kind == "f":  # NaN and infinities are damage (a float WAV's flipped bytes)
        return np.nan_to_num(a.astype(np.float32), copy=False, nan=0.0, posinf=1.0, neginf=-1.0)
    if a.dtype == np.int16:
        return a.astype(np.float32) / np.float32(32768.0)
    if a.dtype == np.int32:
        return (a.astype(np.float64) / 2.0**31).astype(np.float32)
    if a.dtype == np.uint8:
        return (a.astype(np.float32) - 128.0) / np.float32(128.0)
    if a.dtype == np.int64:
        return (a.astype(np.float64) / 2.0**63).astype(np.float32)
    return a.astype(np.float32)


def decode_audio(src: Any, source: str | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> tuple[np.ndarray, AudioInfo]:
    """Decode the first audio stream to float32 (n, channels), with its AudioInfo."""
    source = _name(src, source)
    av_error = av.error.FFmpegError if av is not None else OSError
    with ffmpeg_errors(source, "decode", "audio"):
        with open_input(src, source, "audio") as inp:
            stream, info = _describe(inp, source, limits, False)
            channels = info.channels
            chunks: list[np.ndarray] = []
            held = damaged = packets = 0
            sample_fmt = info.sample_fmt

            def take(frames: Any) -> None:
                nonlocal held, sample_fmt
                for frame in frames:
                    if len(frame.layout.channels) != channels:
                        raise CorruptInput("the channel count changes inside the stream",
                                           source=source)
                    held += frame.samples * channels
                    if held > limits.max_audio_samples:
                        raise LimitExceeded(f"audio holds more than {limits.max_audio_samples}"
                                            " samples", source=source)
                    sample_fmt = frame.format.name
                    chunks.append(_frame_pcm(frame, channels))

            for packet in inp.demux(stream):
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream marker, not a damaged packet
                packets += 1
                try:
                    take(stream.codec_context.decode(packet))
                except (av_error, ValueError) as exc:
                    if isinstance(exc, LabelkitError):
                        raise
                    damaged += 1
                    if damaged > MAX_BAD_PACKETS:
                        raise CorruptInput(f"more than {MAX_BAD_PACKETS} audio packets fail to "
                                           "decode", source=source) from None
            try:
                take(stream.codec_context.decode(None))
            except av_error:
                damaged += 1 if packets else 0  # flushing a decoder that saw nothing
    total = sum(len(c) for c in chunks)
    if total == 0 and damaged:
        raise CorruptInput(f"no audio decodes ({damaged} damaged packets)", source=source)
    pcm = np.concatenate(chunks) if chunks else np.zeros((0, channels), np.float32)
    pcm = np.ascontiguousarray(pcm, dtype=np.float32)
    bit_rate = info.bit_rate
    duration = info.duration_s or (total / info.sample_rate)
    info = AudioInfo(info.container, info.codec, info.sample_rate, channels, info.layout,
                     sample_fmt or info.sample_fmt, info.bits, bit_rate, duration,
                     info.lossless, damaged)
    if not bit_rate and info.duration_s > 0:
        # Not reported by FFmpeg: from the packets (a second pass over the demuxer only).
        info = probe_audio(src, source, limits)
        info = AudioInfo(info.container, info.codec, info.sample_rate, channels, info.layout,
                         sample_fmt or info.sample_fmt, info.bits, info.bit_rate, duration,
                         info.lossless, damaged)
    return pcm, info


# --- encoding ---------------------------------------------------------------------------------

def _layout_name(info: AudioInfo, channels: int) -> str:
    """The layout to write: the source's when it fits the channel count, else FFmpeg's default."""
    if info.layout and av is not None:
        try:
            if len(av.AudioLayout(info.layout).channels) == channels:
                return info.layout
        except (ValueError, av.error.FFmpegError):
            pass
    return {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1",
            8: "7.1"}.get(channels, f"{channels} channels")


def _channel_mask(layout: str, channels: int) -> int:
    """The WAVE_FORMAT_EXTENSIBLE speaker mask of a layout (0 when it has other speakers)."""
    try:
        names = [c.name for c in av.AudioLayout(layout).channels]
    except Exception:  # noqa: BLE001 - unknown layout: no mask
        return 0
    if len(names) != channels or any(n not in _SPEAKERS for n in names):
        return 0
    return sum(1 << _SPEAKERS.index(n) for n in names)


def _to_int(pcm: np.ndarray, bits: int) -> np.ndarray:
    """float [-1, 1] -> integers round(x * 2**(bits-1)), clipped to the integer range."""
    scale = 2.0 ** (bits - 1)
    a = np.rint(pcm.astype(np.float64) * scale)
    return np.clip(a, -scale, scale - 1).astype(np.int64)


def _wav_bytes(pcm: np.ndarray, rate: int, info: AudioInfo) -> bytes:
    """A WAV file of ``pcm`` in the source's PCM format, written exactly (no LIST/INFO chunk)."""
    n, channels = pcm.shape
    codec = info.codec
    if codec == "pcm_f32le":
        data, bits, tag = np.ascontiguousarray(pcm, "<f4").tobytes(), 32, 3
    elif codec == "pcm_f64le":
        data, bits, tag = np.ascontiguousarray(pcm, "<f8").tobytes(), 64, 3
    elif codec == "pcm_u8":
        data, bits, tag = (_to_int(pcm, 8) + 128).astype(np.uint8).tobytes(), 8, 1
    else:
        bits = {"pcm_s24le": 24, "pcm_s32le": 32}.get(codec, 16)
        ints = _to_int(pcm, bits)
        if bits == 16:
            data = ints.astype("<i2").tobytes()
        elif bits == 32:
            data = ints.astype("<i4").tobytes()
        else:
            data = ints.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
        tag = 1
    block = channels * bits // 8
    extensible = channels > 2 or bits > 16
    if extensible:
        mask = _channel_mask(_layout_name(info, channels), channels)
        guid = struct.pack("<IHH", tag, 0x0000, 0x0010) + bytes.fromhex("800000aa00389b71")
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits, 22,
                          bits, mask) + guid
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    pad = b"\0" if len(data) % 2 else b""
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", len(data)) + data + pad)
    if len(body) + 8 > 0xFFFFFFFF:
        raise PolicyError("audio too long for a WAV file (4 GiB)")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _resample(pcm: np.ndarray, rate: int, out_rate: int, layout: str) -> np.ndarray:
    """``pcm`` resampled to ``out_rate`` with FFmpeg's resampler (float32, same channels)."""
    channels = pcm.shape[1]
    if rate == out_rate or len(pcm) == 0:
        if len(pcm) == 0:
            return np.zeros((0, channels), np.float32)
        return pcm
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=out_rate)
    out: list[np.ndarray] = []
    step = 65536
    for start in range(0, len(pcm), step):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[start:start + step].T),
                                           format="fltp", layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        out.extend(f.to_ndarray().T for f in resampler.resample(frame))
    out.extend(f.to_ndarray().T for f in resampler.resample(None))
    if not out:
        return np.zeros((0, channels), np.float32)
    return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)


def _legal_mp3_rate(bit_rate: int, rate: int) -> int:
    """The legal MP3 bit rate nearest to ``bit_rate`` at sample rate ``rate``."""
    legal = _MP3_RATES[rate]
    kbps = bit_rate / 1000 if bit_rate else 128
    return 1000 * min(legal, key=lambda r: abs(r - kbps))


def _encode_av(pcm: np.ndarray, rate: int, layout: str, fmt: str, codec: str, sample_fmt: str,
               bit_rate: int, codec_options: dict[str, str], muxer_options: dict[str, str],
               qscale: float | None = None) -> bytes:
    """Encode ``pcm`` with PyAV into an in-memory file of muxer ``fmt``."""
    buf = io.BytesIO()
    if qscale is not None:
        # PyAV's ``qscale`` is only the QSCALE flag: with global_quality left at 0 the Vorbis
        # encoder codes silence. The quality goes in global_quality, in lambda units.
        codec_options = {**codec_options, "flags": "+qscale",
                         "global_quality": str(max(1, round(qscale * _FF_QP2LAMBDA)))}
    with av.open(buf, "w", format=fmt, options=muxer_options) as out:
        stream = out.add_stream(codec, rate=rate, options=codec_options)
        ctx = stream.codec_context
        ctx.layout = layout
        ctx.format = sample_fmt
        if bit_rate:
            ctx.bit_rate = bit_rate
        ctx.open(strict=False)
        out.start_encoding()  # PyAV writes the header at the first packet: maybe none comes
        size = ctx.frame_size or 4096
        planar = sample_fmt.endswith("p")
        if sample_fmt.startswith("s16"):
            data = _to_int(pcm, 16).astype(np.int16)
        elif sample_fmt.startswith("s32"):
            bits = int(codec_options.get("bits_per_raw_sample", "32"))
            data = (_to_int(pcm, bits) << (32 - bits)).astype(np.int32)
        else:
            data = np.clip(pcm, -1.0, 1.0).astype(np.float32)
        for start in range(0, len(data), size):
            chunk = data[start:start + size]
            arr = np.ascontiguousarray(chunk.T if planar else chunk.reshape(1, -1))
            frame = av.AudioFrame.from_ndarray(arr, format=sample_fmt, layout=layout)
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = ctx.time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def _stream_bit_rate(data: bytes) -> int:
    """The audio bit rate of an encoded file, from its packets."""
    return probe_audio(data, "<trial>", DEFAULT_LIMITS).bit_rate


def encode_audio(pcm: np.ndarray, rate: int, info: AudioInfo, *, bitrate: int | None = None,
                 source: str = "<audio>") -> bytes:
    """Encode float32 ``pcm`` (n, channels) as a file of the same format as ``info`` describes."""
    a = np.asarray(pcm, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] < 1:
        raise PolicyError(f"audio must be (n, channels), not {a.shape}", source=source)
    a = np.ascontiguousarray(np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=-1.0))
    channels, rate = a.shape[1], int(rate)
    codec, container = info.codec, info.container
    if container == "wav" and (codec.startswith("pcm_")):
        return _wav_bytes(a, rate, info)
    if av is None:
        raise PolicyError("encoding audio needs PyAV", source=source)
    layout = _layout_name(info, channels)
    target = int(bitrate or info.bit_rate or 0)
    fmt = {"mp4": "mp4", "matroska": "matroska", "ogg": "ogg", "mp3": "mp3",
           "flac": "flac"}.get(container)
    if fmt is None:
        raise PolicyError(f"cannot encode audio into a {container} container", source=source)
    if len(a) == 0 and fmt != "flac":
        # A stream of no packets does not open (MP3, Ogg, Matroska; MP4 drops the track), and
        # flushing FFmpeg's Vorbis encoder before any frame yields packets without end: code one
        # silent sample instead.
        a = np.zeros((1, channels), np.float32)
    # No +faststart for MP4: it reopens the output by name, and this one is in memory; the MP4
    # handler writes the label into the moov wherever it is.
    mux: dict[str, str] = {"fflags": "+bitexact"}
    with ffmpeg_errors(source, "encode", "audio"):
        if codec == "flac":
            bits = 24 if info.bits > 16 else 16
            opts = {"bits_per_raw_sample": str(bits)} if bits == 24 else {}
            return _encode_av(a, rate, layout, fmt, "flac", "s32" if bits == 24 else "s16", 0,
                              opts, mux)
        if codec == "alac":
            bits = 24 if info.bits > 16 else 16
            opts = {"bits_per_raw_sample": str(bits)} if bits == 24 else {}
            return _encode_av(a, rate, layout, "ipod" if fmt == "mp4" else fmt, "alac",
                              "s32p" if bits == 24 else "s16p", 0, opts, mux)
        if codec in ("mp3", "mp3float"):  # FFmpeg names its MP3 decoders either way
            if rate not in _MP3_RATES:
                raise PolicyError(f"MP3 cannot code {rate} Hz audio", source=source)
            if channels > 2:
                raise PolicyError(f"MP3 cannot code {channels} channels", source=source)
            return _encode_av(a, rate, layout, fmt, "libmp3lame", "fltp",
                              _legal_mp3_rate(target, rate), {}, mux)
        if codec == "aac":
            if rate not in _AAC_RATES:
                raise PolicyError(f"AAC cannot code {rate} Hz audio", source=source)
            return _encode_av(a, rate, layout, fmt, "aac", "fltp", target or 128000, {}, mux)
        if codec == "opus":
            if rate > 384000 or channels > 8:
                raise PolicyError(f"Opus cannot code {rate} Hz / {channels}-channel audio",
                                  source=source)
            a = _resample(a, rate, 48000, layout)  # Opus codes 48 kHz (it may be told others)
            return _encode_av(a, 48000, layout, fmt, "libopus", "flt", target or 96000,
                              {"vbr": "constrained"}, mux)
        if codec == "vorbis":
            if channels != 2:  # libvorbis is not in PyAV's FFmpeg
                raise PolicyError(f"FFmpeg's Vorbis encoder codes stereo only, not {channels} "
                                  "channels", source=source)
            return _encode_vorbis(a, rate, layout, fmt, target, mux)
        if codec.startswith("pcm_"):
            sample_fmt = "flt" if "f32" in codec else ("s16" if info.bits <= 16 else "s32")
            return _encode_av(a, rate, layout, fmt, codec, sample_fmt, 0, {}, mux)
    raise PolicyError(f"cannot encode {codec} audio", source=source)


def _encode_vorbis(a: np.ndarray, rate: int, layout: str, fmt: str, target: int,
                   mux: dict[str, str]) -> bytes:
    """FFmpeg's native Vorbis encoder, its quality steered to bring the rate near ``target``."""
    opts = {"strict": "experimental"}
    quality = 3.0
    data = _encode_av(a, rate, layout, fmt, "vorbis", "fltp", 0, opts, mux, quality)
    if not target or len(a) < rate // 10:
        return data
    # The encoder takes a quality, not a rate, and the rate grows as quality ** 0.3 to 0.8 with
    # the content: steer by secant steps in log-log, keep the nearest. Past quality 60 it
    # codes worse, not better.
    best, best_miss, slope, seen = data, math.inf, 0.5, None
    for attempt in range(5):
        got = _stream_bit_rate(data)
        if not got:
            break
        miss = math.log(target / got)
        if abs(miss) < abs(best_miss):
            best, best_miss = data, miss
        if abs(miss) <= 0.08 or attempt == 4:  # within 8 %, or enough tries
            break
        here = (math.log(quality), math.log(got))
        if seen is not None and here[0] != seen[0]:
            slope = float(np.clip((here[1] - seen[1]) / (here[0] - seen[0]), 0.2, 1.5))
        seen = here
        next_quality = float(np.clip(quality * math.exp(miss / slope), 0.1, 60.0))
        if next_quality == quality:
            break
        quality = next_quality
        data = _encode_av(a, rate, layout, fmt, "vorbis", "fltp", 0, opts, mux, quality)
    return best


def load_notice(path: Any, rate: int, channels: int,
                limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """A spoken-notice clip decoded, resampled to ``rate`` and given ``channels`` channels."""
    source = _name(path, None)
    rate, channels = int(rate), int(channels)
    if not (0 < rate <= limits.max_sample_rate and 0 < channels <= limits.max_channels):
        raise PolicyError(f"a spoken notice cannot be made for {rate} Hz, {channels} channels",
                          source=source)
    if isinstance(path, (str, os.PathLike)) and not os.path.isfile(path):
        raise PolicyError("the spoken-notice file does not exist", source=source)
    try:
        pcm, info = decode_audio(path, source, limits)
    except LabelkitError as exc:  # the notice is part of the policy: say which file it is
        raise PolicyError(f"the spoken notice cannot be used: {exc.reason}",
                          source=source) from exc
    if not np.any(pcm):  # it would label the content with no audible label at all
        raise PolicyError("the spoken notice holds no sound", source=source)
    if pcm.shape[1] > 1:
        pcm = np.ascontiguousarray(pcm.mean(axis=1, keepdims=True, dtype=np.float32))
    pcm = _resample(pcm, info.sample_rate, rate, "mono")
    return np.ascontiguousarray(np.repeat(pcm, channels, axis=1), dtype=np.float32)
