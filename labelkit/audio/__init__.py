"""Audio: decode files to float32 PCM (n, channels) and encode them back in the source's format.

``codec`` holds the PyAV side (probe, decode, encode, spoken notices); ``pipeline`` labels PCM
and files with the audible cue and the watermark.
"""

from __future__ import annotations

from .codec import AudioInfo, decode_audio, encode_audio, load_notice, probe_audio

__all__ = ["AudioInfo", "probe_audio", "decode_audio", "encode_audio", "load_notice"]
