"""Which encoder re-encodes a video, with which settings, so that it stays in its codec family."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import PolicyError, UnsupportedFormat
from ..policy import VideoPolicy

__all__ = ["Encoder", "encoder_for", "PLANAR_FORMATS", "chroma_subsampling"]


@dataclass(frozen=True)
class Encoder:
    """An FFmpeg encoder and its options for one codec family."""

    family: str  # "h264", "hevc", "vp9", "av1"
    name: str  # FFmpeg encoder name
    crf: int  # the visually lossless default on the encoder's own scale
    extra: tuple[tuple[str, str], ...] = ()

    def options(self, policy: VideoPolicy) -> dict[str, str]:
        """The encoder's options for ``policy`` (quality and speed)."""
        opts = dict(self.extra)
        opts["crf"] = str(self.crf if policy.crf is None else policy.crf)
        if policy.preset is not None:
            preset = policy.preset
            if self.family in _NUMERIC_PRESETS and not preset.lstrip("-").isdigit():
                try:
                    preset = _NUMERIC_PRESETS[self.family][_X264_PRESETS.index(preset)]
                except ValueError:
                    raise PolicyError(f"preset {preset!r} is not one of {_X264_PRESETS} or "
                                      f"a number for {self.name}") from None
            if self.family == "vp9":
                opts["cpu-used"] = preset
                if int(preset) > 5:  # libvpx takes cpu-used above 5 in realtime mode only
                    opts["deadline"] = "realtime"
            else:
                opts["preset"] = preset
        return opts


# x264's preset names (shared by x265), and what they mean for the encoders that count instead:
# libvpx-vp9 cpu-used (0 slowest) and SVT-AV1 preset (0 slowest, 13 fastest).
_X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                 "slower", "veryslow", "placebo")
_NUMERIC_PRESETS = {
    "vp9": ("8", "7", "6", "5", "4", "3", "2", "1", "0", "0"),
    "av1": ("12", "11", "10", "9", "8", "6", "4", "3", "2", "1"),
}


# Visually lossless defaults: x264 CRF 18 is the usual "transparent" point; x265 reaches it about
# 2 CRF later, VP9 (0-63 scale, constant quality needs b=0) and SVT-AV1 later still.
_ENCODERS = {
    "h264": Encoder("h264", "libx264", 18),
    "hevc": Encoder("hevc", "libx265", 20, (("x265-params", "log-level=error"),)),
    "vp9": Encoder("vp9", "libvpx-vp9", 20, (("b", "0"), ("row-mt", "1"), ("deadline", "good"),
                                             ("cpu-used", "2"))),
    "av1": Encoder("av1", "libsvtav1", 24, (("preset", "8"),)),
}
# Decoder names that mean the same family (PyAV reports the decoder in use).
_ALIASES = {"libdav1d": "av1", "libaom-av1": "av1", "libvpx-vp9": "vp9", "h265": "hevc"}
# Containers and the families they may carry.
_ALLOWED = {"webm": ("vp9", "av1")}


def encoder_for(codec: str, container: str, source: str = "<video>") -> Encoder:
    """The encoder for a source coded with ``codec`` (FFmpeg name) going into ``container``."""
    family = _ALIASES.get(codec, codec)
    if family not in _ENCODERS:
        raise UnsupportedFormat(
            f"cannot re-encode {codec} video: labelkit re-encodes H.264, H.265, VP9 and AV1 "
            "(label it metadata-only, or convert it first)", source=source)
    if container in _ALLOWED and family not in _ALLOWED[container]:
        raise UnsupportedFormat(f"{container} cannot carry {family}", source=source)
    return _ENCODERS[family]


# 8- and 10-bit planar YUV: the formats whose planes labelkit edits in place, with their chroma
# subsampling (rows, columns).
PLANAR_FORMATS = {
    "yuv420p": (2, 2), "yuvj420p": (2, 2), "yuv422p": (1, 2), "yuvj422p": (1, 2),
    "yuv444p": (1, 1), "yuvj444p": (1, 1),
    "yuv420p10le": (2, 2), "yuv422p10le": (1, 2), "yuv444p10le": (1, 1),
}


def chroma_subsampling(pix_fmt: str, source: str = "<video>") -> tuple[int, int]:
    """(rows, columns) subsampling of a planar YUV format; UnsupportedFormat for the others."""
    try:
        return PLANAR_FORMATS[pix_fmt]
    except KeyError:
        raise UnsupportedFormat(
            f"pixel format {pix_fmt} is not planar 8/10-bit YUV, which labelkit labels in place",
            source=source) from None
