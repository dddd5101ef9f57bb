"""What to apply per modality: texts, positions, sizes; validated once when a Labeler is built."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import PolicyError

__all__ = [
    "EXPLICIT_MODES",
    "POSITIONS",
    "ImagePolicy",
    "Policy",
    "VIDEO_CODECS",
    "VIDEO_MIN_LABEL_S",
    "VIDEO_PLACEMENTS",
    "VideoPolicy",
    "AudioPolicy",
    "AUDIO_PLACEMENTS",
    "TextPolicy",
    "TEXT_PLACEMENTS",
    "TEXT_NOTICES",
    "explicit_mode",
    "validate_label_text",
]

# Corners and edges where GB 45438 5.x allows the picture label.
POSITIONS = (
    "bottom-right",
    "bottom-left",
    "top-right",
    "top-left",
    "bottom",
    "top",
    "left",
    "right",
)

_AI_ELEMENTS = ("人工智能", "AI")
_GENERATION_ELEMENTS = ("生成", "合成")


def validate_label_text(text: str) -> str:
    """Return ``text`` if it has an AI element and a generation element in Chinese, else raise."""
    if not isinstance(text, str) or not text.strip():
        raise PolicyError("the explicit label text is empty")
    if not any(e in text for e in _AI_ELEMENTS):
        raise PolicyError(f"label text {text!r} lacks an AI element ('人工智能' or 'AI')")
    if not any(e in text for e in _GENERATION_ELEMENTS):
        raise PolicyError(
            f"label text {text!r} lacks a generation element in Chinese ('生成' or '合成'); "
            "English may be added but never instead of Chinese"
        )
    return text


@dataclass(frozen=True)
class ImagePolicy:
    """The visible label on pictures (and, later, video frames)."""

    text: str = "AI生成"
    position: str = "bottom-right"
    # Ink (glyph bounding box) height as a share of min(width, height); the rule's floor is 0.05,
    # the default keeps a margin so that rounding and resampling never fall below it.
    height_ratio: float = 0.06
    margin_ratio: float = 0.02  # gap to the picture's edge, share of min(width, height)
    font_path: str | None = None  # None: the bundled OFL CJK subset
    # Invisible watermark: "invisible" keeps PSNR >= 40 dB and SSIM >= 0.99 on photos; "robust"
    # spends an SSIM of 0.97-0.985 (PSNR still >= 40 dB) to survive more; the strength (up to
    # 8) multiplies either, past their PSNR and SSIM.
    watermark_profile: str = "invisible"
    watermark_strength: float = 1.0

    def __post_init__(self) -> None:
        validate_label_text(self.text)
        if self.position not in POSITIONS:
            raise PolicyError(f"position {self.position!r} is not one of {', '.join(POSITIONS)}")
        if not 0.05 <= self.height_ratio <= 0.5:
            raise PolicyError(f"height_ratio {self.height_ratio} must be within [0.05, 0.5]")
        if not 0.0 <= self.margin_ratio <= 0.2:
            raise PolicyError(f"margin_ratio {self.margin_ratio} must be within [0, 0.2]")
        if not 0.0 < self.watermark_strength <= 8.0:
            raise PolicyError(f"watermark_strength {self.watermark_strength} must be in (0, 8]")
        if self.watermark_profile not in ("invisible", "robust"):
            raise PolicyError(f"watermark_profile {self.watermark_profile!r} must be 'invisible' "
                              "or 'robust'")


# What to do about the explicit label:
#   "apply":   draw it (re-encodes the pixels);
#   "present": the caller vouches the content already carries it: metadata only, no re-encode;
#   "omit":    hand the content out without it; allowed only with a recipient on record
#              (Labeling Measures Art. 9). Also metadata only.
EXPLICIT_MODES = ("apply", "present", "omit")


def explicit_mode(value: bool | str) -> str:
    """Normalise an explicit-label setting: True -> "apply", False -> "omit", or a mode name."""
    if value is True:
        return "apply"
    if value is False:
        return "omit"
    if value not in EXPLICIT_MODES:
        raise PolicyError(f"explicit must be True, False or one of {EXPLICIT_MODES}, not {value!r}")
    return value


# Where the visible label appears in a video: the opening is mandatory (GB 45438); the end and
# the whole length are options.
VIDEO_PLACEMENTS = ("start", "start+end", "throughout")
# Encoder families labelkit re-encodes in, by the source's codec (keeps the container legal).
VIDEO_CODECS = ("h264", "hevc", "vp9", "av1")
VIDEO_MIN_LABEL_S = 2.0  # GB 45438: the opening label is shown for at least 2 s


@dataclass(frozen=True)
class VideoPolicy:
    """The visible label and the re-encode of video (the label's look comes from ImagePolicy)."""

    placement: str = "start"
    # Seconds of presentation time the label is shown at the start (and at the end with
    # "start+end"); the rule's floor is 2.0, the default keeps a margin over frame rounding.
    duration_s: float = 2.5
    # Encoder quality: None means visually lossless for the codec (x264 CRF 18, x265 CRF 20,
    # VP9 CRF 20, SVT-AV1 CRF 24); an int is the encoder's own CRF scale.
    crf: int | None = None
    preset: str | None = None  # the encoder's speed preset; None: the encoder's default
    threads: int = 0  # encoder threads; 0 lets the encoder choose
    # Audio tracks are copied bit-exact; True runs them through the audio path (not built yet).
    label_audio: bool = False

    def __post_init__(self) -> None:
        if self.placement not in VIDEO_PLACEMENTS:
            raise PolicyError(f"video placement {self.placement!r} is not one of "
                              f"{', '.join(VIDEO_PLACEMENTS)}")
        if not VIDEO_MIN_LABEL_S <= self.duration_s <= 3600.0:
            raise PolicyError(f"video label duration {self.duration_s} s must be at least 2.0 "
                              "(GB 45438) and at most an hour")
        if self.crf is not None and not 0 <= self.crf <= 63:
            raise PolicyError(f"crf {self.crf} must be within [0, 63]")
        if self.threads < 0:
            raise PolicyError("threads must be >= 0")
        if self.label_audio:
            raise PolicyError("labeling a video's audio track needs the audio path, which is "
                              "not built yet: audio is copied bit-exact")


# Where the audible cue goes: before the content, after it, or both; never mixed over it.
AUDIO_PLACEMENTS = ("start", "end", "both")


@dataclass(frozen=True)
class AudioPolicy:
    """The audible label (the Morse "AI" cue or a spoken notice) and the audio re-encode."""

    placement: str = "start"
    # The cue: Morse ".- .." (dot 1 unit, dash 3, gaps 1, letter gap 3) as a sine with short
    # fades. GB 45438 fixes the rhythm, not the timing: Morse ratios, a unit of 100-120 ms.
    unit_s: float = 0.11
    frequency_hz: float = 800.0
    fade_s: float = 0.008  # raised-cosine fade of each tone (no clicks)
    gap_s: float = 0.25  # silence between the cue and the content
    # The cue's level: None matches the content's loudness (RMS of its active part over the
    # first/last ``level_window_s``), else a fixed RMS level in dBFS.
    level_dbfs: float | None = None
    level_offset_db: float = 0.0  # added to the matched level
    level_window_s: float = 1.0  # how much content decides the matched level (stream latency)
    min_level_dbfs: float = -40.0  # the cue is never quieter than this (content near silence)
    max_level_dbfs: float = -9.0  # nor louder (sine RMS -9 dBFS peaks at -6 dBFS)
    notice: str | None = None  # a spoken-notice clip (audio file) used instead of the cue
    # Lossy formats are re-encoded at the source's bitrate unless a bitrate (bit/s) is given.
    bitrate: int | None = None
    watermark_strength: float = 1.0

    def __post_init__(self) -> None:
        if self.placement not in AUDIO_PLACEMENTS:
            raise PolicyError(f"audio placement {self.placement!r} is not one of "
                              f"{', '.join(AUDIO_PLACEMENTS)}")
        if not 0.08 <= self.unit_s <= 0.15:
            raise PolicyError(f"cue unit {self.unit_s} s must be within [0.08, 0.15]")
        if not 300.0 <= self.frequency_hz <= 3000.0:
            raise PolicyError(f"cue frequency {self.frequency_hz} Hz must be within [300, 3000]")
        if not 0.001 <= self.fade_s <= self.unit_s / 3:
            raise PolicyError(f"cue fade {self.fade_s} s must be within [0.001, unit/3]")
        if not 0.0 <= self.gap_s <= 5.0:
            raise PolicyError(f"cue gap {self.gap_s} s must be within [0, 5]")
        if self.level_dbfs is not None and not -60.0 <= self.level_dbfs <= -3.0:
            raise PolicyError(f"cue level {self.level_dbfs} dBFS must be within [-60, -3]")
        if not 0.1 <= self.level_window_s <= 30.0:
            raise PolicyError(f"level window {self.level_window_s} s must be within [0.1, 30]")
        if not -60.0 <= self.min_level_dbfs <= self.max_level_dbfs <= -3.0:
            raise PolicyError("cue level bounds must satisfy -60 <= min <= max <= -3 dBFS")
        if self.bitrate is not None and not 8_000 <= self.bitrate <= 1_536_000:
            raise PolicyError(f"bitrate {self.bitrate} must be within [8000, 1536000] bit/s")
        if not 0.0 < self.watermark_strength <= 4.0:
            raise PolicyError(f"watermark_strength {self.watermark_strength} must be in (0, 4]")


# Where the text notice goes (GB 45438: start, end, or a suitable place in the middle).
TEXT_PLACEMENTS = ("start", "end", "both")
# The default notice per language setting; English is added, never instead of Chinese.
TEXT_NOTICES = {
    "zh": "【AI生成】本内容由人工智能生成。",
    "zh-en": "【AI生成】本内容由人工智能生成。AI-generated content.",
}


@dataclass(frozen=True)
class TextPolicy:
    """The text notice, where it goes, whether prose gets the invisible carrier, and the
    generation-time token watermark's green share and bias (Labeler.token_watermark)."""

    placement: str = "start"
    language: str = "zh"  # picks the default notice in TEXT_NOTICES
    notice: str | None = None  # a notice of one's own (with both elements) instead
    carrier: bool = True  # the invisible Unicode carrier in every paragraph
    # The detector must use the generator's gamma; delta only trades text quality for strength.
    token_gamma: float = 0.25
    token_delta: float = 2.5

    def __post_init__(self) -> None:
        if self.placement not in TEXT_PLACEMENTS:
            raise PolicyError(f"text placement {self.placement!r} is not one of "
                              f"{', '.join(TEXT_PLACEMENTS)}")
        if self.language not in TEXT_NOTICES:
            raise PolicyError(f"text language {self.language!r} is not one of "
                              f"{', '.join(TEXT_NOTICES)}")
        if self.notice is not None:
            validate_label_text(self.notice)
            if "\n" in self.notice or "\r" in self.notice:
                raise PolicyError("the text notice is one line")
        if not (isinstance(self.token_gamma, (int, float)) and 0.0 < self.token_gamma < 1.0):
            raise PolicyError(f"token_gamma must lie strictly between 0 and 1, not "
                              f"{self.token_gamma!r}")
        if not (isinstance(self.token_delta, (int, float)) and 0.0 <= self.token_delta <= 20.0):
            raise PolicyError(f"token_delta must be in 0..20 nats, not {self.token_delta!r}")

    @property
    def notice_text(self) -> str:
        """The notice written: the policy's own, or the language's default."""
        return self.notice if self.notice is not None else TEXT_NOTICES[self.language]


@dataclass(frozen=True)
class Policy:
    """Which layers a Labeler applies, and how."""

    explicit: bool | str = "apply"  # see EXPLICIT_MODES
    # Invisible watermark on content whose pixels are re-encoded anyway (metadata-only labels
    # never touch the essence, so they carry none). Needs the provider's secret key.
    watermark: bool = True
    image: ImagePolicy = field(default_factory=ImagePolicy)
    video: VideoPolicy = field(default_factory=VideoPolicy)
    audio: AudioPolicy = field(default_factory=AudioPolicy)
    text: TextPolicy = field(default_factory=TextPolicy)
    # The model or service that generated the content: named in the C2PA manifest's
    # c2pa.created action beside labelkit (Labeler(c2pa=...)); empty: labelkit only.
    generator: str = ""

    def __post_init__(self) -> None:
        explicit_mode(self.explicit)
        if not isinstance(self.generator, str) or len(self.generator) > 200 or any(
                ord(c) < 32 for c in self.generator):
            raise PolicyError("the generator's name is a line of at most 200 characters")
