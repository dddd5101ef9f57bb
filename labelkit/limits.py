"""Decoding limits that keep a crafted file from exhausting memory or time."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Limits", "DEFAULT_LIMITS"]


@dataclass(frozen=True)
class Limits:
    """Upper bounds applied while parsing and decoding untrusted files."""

    max_pixels: int = 100_000_000  # 100 MP: above any camera, below a bomb
    max_file_bytes: int = 2 * 1024**3
    max_metadata_bytes: int = 4 * 1024 * 1024  # one XMP/EXIF/text block
    max_chunks: int = 100_000  # chunks/segments/blocks in one container
    # Decoded pixels held at once (all frames of an animation, width x height x channels).
    max_decoded_bytes: int = 1024**3
    # Video and audio: presentation time a file may declare or hold (a crafted header can claim
    # years), and video frames decoded for one item.
    max_duration_s: float = 6 * 3600.0
    max_frames: int = 2_000_000
    # Audio: channels and sample rate a stream may declare (8 channels and 384 kHz are real;
    # a crafted header claims thousands), and decoded samples held at once (all channels).
    max_channels: int = 32
    max_sample_rate: int = 768_000
    max_audio_samples: int = 1_000_000_000


DEFAULT_LIMITS = Limits()
