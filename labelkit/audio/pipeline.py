"""Labeling audio: PCM in-process, files metadata-only or with every layer, and TTS streams.

Every layer in the order of DESIGN.md: the content is watermarked (``watermark.audio``), the
audible cue goes before and/or after it (``explicit.audio``, never over it), the result is
encoded in the input's format (lossy formats at the source's bitrate), and the format handler
writes exactly one metadata label, signed over the new file's essence, carrying the original's
tags over. Metadata-only labels ("present", "omit") never decode or re-encode: the coded audio
stays byte-identical and carries no cue and no watermark (the result's notes say so).

``AudioStreamLabeler`` is the streaming form for TTS: it takes PCM chunks of any size and
returns labeled PCM as soon as it is final; its output equals ``label_pcm`` of the whole clip.
Latency: the cue needs the content's loudness, so with placement "start" or "both" nothing
leaves before ``AudioPolicy.level_window_s`` of content has arrived (1 s by default; a fixed
``level_dbfs`` removes this wait), then the cue, the gap and the content follow with the
watermark's latency of one STFT frame and its resampling filters (47 ms at 44.1 kHz).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import formats
from ..errors import LabelkitError, PolicyError
from ..explicit.audio import apply_cue
from ..record import new_produce_id
from ..watermark.audio import MIN_RATE, AudioEmbedder, BLOCK_S

if TYPE_CHECKING:
    from ..labeler import Labeler, LabelResult

__all__ = ["AudioStreamLabeler", "LabeledPcm", "is_audio", "label_audio_file", "label_pcm"]


def is_audio(container: Any) -> bool:
    """Whether a parsed container holds audio only (WAV, MP3, FLAC, Ogg, M4A, MKA)."""
    handler = formats.handlers()[container.format]
    return handler.MODALITY == "audio" or getattr(container, "kind", None) == "audio"


@dataclass(frozen=True)
class LabeledPcm:
    """Labeled samples and what was applied: the ProduceID, the watermark payload, notes."""

    pcm: np.ndarray
    rate: int
    produce_id: str
    watermark_payload: int | None
    content_start: int  # where the content begins in ``pcm`` (after a start cue and its gap)
    cue_spans: tuple[tuple[float, float], ...]
    notes: tuple[str, ...]


def _check_pcm(pcm: Any, rate: int, limits, source: str) -> np.ndarray:
    if not isinstance(pcm, np.ndarray) or pcm.dtype.kind != "f":
        raise LabelkitError("audio must be a float numpy array in [-1, 1]", source=source)
    a = pcm[:, None] if pcm.ndim == 1 else pcm
    if a.ndim != 2 or a.shape[1] < 1:
        raise LabelkitError(f"audio must be (n,) or (n, channels), not {pcm.shape}", source=source)
    if a.shape[1] > limits.max_channels:
        raise LabelkitError(f"{a.shape[1]} channels, over the limit of {limits.max_channels}",
                            source=source)
    if not 1 <= int(rate) <= limits.max_sample_rate:
        raise LabelkitError(f"sample rate {rate} is outside 1..{limits.max_sample_rate}",
                            source=source)
    if not np.all(np.isfinite(a)):
        raise LabelkitError("audio holds NaN or infinite samples", source=source)
    return np.ascontiguousarray(a, dtype=np.float32)


def _embedder(labeler: Labeler, produce_id: str, rate: int, channels: int, frames: int | None
              ) -> tuple[AudioEmbedder | None, int | None, list[str]]:
    """The watermark embedder for one item (None, with a note, when it cannot be applied)."""
    if not labeler.policy.watermark:
        return None, None, []
    if labeler.watermark_key is None:
        return None, None, ["watermark skipped: no secret key to derive it from"]
    if rate < MIN_RATE:
        return None, None, [f"watermark skipped: {rate} Hz audio is under {MIN_RATE} Hz"]
    payload = labeler.watermark_key.payload_for(produce_id)
    notes = []
    if frames is not None and frames < BLOCK_S * rate:
        notes.append(f"the clip is shorter than one watermark block ({BLOCK_S:.1f} s): its "
                     "watermark cannot be read back from it alone")
    e = AudioEmbedder(labeler.watermark_key, payload, rate, channels,
                      labeler.policy.audio.watermark_strength)
    return e, payload, notes


def _notice(labeler: Labeler, rate: int, channels: int) -> np.ndarray | None:
    path = labeler.policy.audio.notice
    if path is None:
        return None
    from .codec import load_notice

    return load_notice(path, rate, channels, labeler.limits)


def label_pcm(labeler: Labeler, pcm: np.ndarray, rate: int, produce_id: str | None = None,
              source: str = "<audio>") -> LabeledPcm:
    """Watermark ``pcm`` (n[, channels]) float and put the cue around it (see the module doc)."""
    a = _check_pcm(pcm, rate, labeler.limits, source)
    produce_id = produce_id or new_produce_id()
    embedder, payload, notes = _embedder(labeler, produce_id, rate, a.shape[1], a.shape[0])
    if embedder is not None:
        a = np.concatenate([embedder.process(a), embedder.flush()])
    applied = apply_cue(a, rate, labeler.policy.audio, _notice(labeler, rate, a.shape[1]))
    return LabeledPcm(applied.pcm, rate, produce_id, payload, applied.content_start,
                      applied.spans, tuple(notes))


class AudioStreamLabeler:
    """Labels a stream of PCM chunks (TTS): ``feed(chunk)`` and ``close()`` return labeled PCM.

    The concatenated output equals ``label_pcm`` of the whole clip, whatever the chunking."""

    def __init__(self, labeler: Labeler, rate: int, channels: int,
                 produce_id: str | None = None) -> None:
        _check_pcm(np.zeros((0, channels), np.float32), rate, labeler.limits, "<stream>")
        self.rate, self.channels = int(rate), int(channels)
        self.produce_id = produce_id or new_produce_id()
        self._policy = labeler.policy.audio
        self._embedder, self.watermark_payload, notes = _embedder(
            labeler, self.produce_id, rate, channels, None)
        self.notes = tuple(notes)
        self._notice = _notice(labeler, rate, channels)
        self._window = int(round(self._policy.level_window_s * rate))
        self._start = self._policy.placement in ("start", "both")
        self._head: list[np.ndarray] | None = [] if self._start else None  # held until the cue
        self._held = 0
        self._tail = np.zeros((0, channels), np.float32)  # the last window, for an end cue
        self._closed = False

    def _content(self, marked: np.ndarray) -> np.ndarray:
        """Route marked content: hold it until the start cue can be built, keep the tail."""
        if self._policy.placement in ("end", "both") and marked.shape[0]:
            self._tail = np.concatenate([self._tail, marked])[-self._window:]
        if self._head is None:
            return marked
        self._head.append(marked)
        self._held += marked.shape[0]
        if self._held < self._window:
            return np.zeros((0, self.channels), np.float32)
        return self._release()

    def _release(self) -> np.ndarray:
        held = np.concatenate(self._head) if self._head else np.zeros((0, self.channels),
                                                                      np.float32)
        self._head = None
        start = replace(self._policy, placement="start")
        # The cue's level depends on the first window only: the same cue as the whole clip's.
        return apply_cue(held, self.rate, start, self._notice).pcm

    def feed(self, chunk: np.ndarray) -> np.ndarray:
        """Take the next chunk (n[, channels]) float; return the labeled samples now final."""
        if self._closed:
            raise PolicyError("the stream is closed")
        a = _check_pcm(chunk, self.rate, _NoLimits, "<stream>")
        if a.shape[1] != self.channels:
            raise PolicyError(f"chunk has {a.shape[1]} channels, the stream {self.channels}")
        marked = self._embedder.process(a) if self._embedder is not None else a
        return self._content(marked)

    def close(self) -> np.ndarray:
        """End the stream: the rest of the content and the end cue, if the policy has one."""
        if self._closed:
            raise PolicyError("the stream is closed")
        self._closed = True
        rest = (self._embedder.flush() if self._embedder is not None
                else np.zeros((0, self.channels), np.float32))
        out = [self._content(rest)]
        if self._head is not None:
            out.append(self._release())
        if self._policy.placement in ("end", "both"):
            end = replace(self._policy, placement="end")
            tail = self._tail
            out.append(apply_cue(tail, self.rate, end, self._notice).pcm[tail.shape[0]:])
        return np.concatenate(out)


class _NoLimits:
    """Chunks were checked against the stream's limits when it was opened."""

    max_channels = 1 << 30
    max_sample_rate = 1 << 30


def label_audio_file(labeler: Labeler, data: bytes, mode: str, produce_id: str | None,
                     source: str) -> LabelResult:
    """Label an audio file's bytes; see Labeler.label_audio."""
    from ..labeler import LabelResult
    from .codec import decode_audio, encode_audio

    limits = labeler.limits
    original = formats.parse(data, source, limits)
    if not is_audio(original):
        raise PolicyError(f"{original.format} file is not audio", source=source)
    produce_id = produce_id or new_produce_id()
    if mode != "apply":
        record, layers = labeler._record(original, b"", produce_id, ("metadata",))
        return LabelResult(original.with_label(record.to_json()), record, original.format, layers,
                           notes=("metadata only: the coded audio is unchanged, with no cue "
                                  "and no watermark",))
    pcm, info = decode_audio(data, source, limits)
    done = label_pcm(labeler, pcm, info.sample_rate, produce_id, source)
    encoded = encode_audio(done.pcm, done.rate, info, bitrate=labeler.policy.audio.bitrate,
                           source=source)
    new = formats.parse(encoded, source, limits)
    layers: tuple[str, ...] = ("explicit",)
    if done.watermark_payload is not None:
        layers = (*layers, "watermark")
    record, layers = labeler._record(new, b"", produce_id, (*layers, "metadata"))
    out = new.with_label(record.to_json(), metadata_from=original)
    spans = ", ".join(f"{a:.2f}-{b:.2f} s" for a, b in done.cue_spans)
    notes = (*done.notes, f"audible cue at {spans}")
    return LabelResult(out, record, new.format, layers, None, b"", done.watermark_payload, notes)
