"""Labeler: the one object a service configures once and calls per item."""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
from PIL import Image

from . import formats, imaging
from .errors import LabelkitError, PolicyError, named
from .fileio import atomic_write, map_input, read_input
from .limits import DEFAULT_LIMITS, Limits
from .policy import Policy, explicit_mode
from .record import AIGCRecord, check_value_chars, new_produce_id
from .signing import SigningKey, load_key, parse_rc1, sign_rc1
from .watermark import WatermarkKey, WatermarkTooSmall, embed_image

if TYPE_CHECKING:
    from .audio.pipeline import AudioStreamLabeler, LabeledPcm
    from .credentials.signer import C2paSigner
    from .ledger import SqlLedger
    from .text.pipeline import TextStreamLabeler
    from .video.frames import FrameLabeler
    from .watermark.tokens import TokenWatermark

__all__ = ["Labeler", "LabelResult"]

@dataclass(frozen=True)
class LabelResult:
    """What one labeling produced: the bytes, the record written, and which layers were applied."""

    data: bytes
    record: AIGCRecord
    format: str
    layers: tuple[str, ...]
    visible: Any = None  # explicit.image.VisibleLabel of the first frame, when applied
    fingerprint: bytes = b""
    watermark_payload: int | None = None  # the 64-bit ID the watermark carries, when applied
    notes: tuple[str, ...] = ()  # layers the policy asked for but this item could not take
    path: str | None = None  # where a video was written (its data is not held in memory)


class Labeler:
    """Labels generated content; configure once (producer code, key, policy), call per item."""

    def __init__(
        self,
        producer: str,
        key: SigningKey | str | os.PathLike | None = None,
        policy: Policy | None = None,
        *,
        limits: Limits = DEFAULT_LIMITS,
        recipient_log: str | os.PathLike | None = None,
        watermark_key: WatermarkKey | None = None,
        c2pa: "C2paSigner | None" = None,
        ledger: "SqlLedger | None" = None,
    ) -> None:
        check_value_chars("ContentProducer", producer)
        if not producer:
            raise PolicyError("a producer code (ContentProducer) is required")
        AIGCRecord(content_producer=producer)  # validates a code's structure and USCC checksum
        self.producer = producer
        self.key = key if isinstance(key, SigningKey) or key is None else load_key(key)
        self.policy = policy or Policy()
        # The watermark secret is derived from the signing key unless given separately.
        if watermark_key is None and self.key is not None:
            watermark_key = WatermarkKey.from_signing_key(self.key)
        self.watermark_key = watermark_key
        self.limits = limits
        self.recipient_log = Path(recipient_log) if recipient_log else None
        self._log_lock = threading.Lock()
        # C2PA Content Credentials, signed last over the finished file (where C2PA applies).
        self.c2pa = c2pa
        # Every labeled item is recorded there (labelkit.ledger.open_ledger), recipients too.
        self.ledger = ledger

    # -- public API -------------------------------------------------------------------------

    def label_image(
        self,
        image: Image.Image | np.ndarray | bytes,
        format: str | None = None,
        *,
        explicit: bool | str | None = None,
        recipient: str | None = None,
        produce_id: str | None = None,
        source: str = "<image>",
    ) -> LabelResult:
        """Label a PIL image, a uint8 array (H, W[, 3|4]) or encoded bytes; return the result.

        Bytes keep their format (``format`` must match it if given); pixels are encoded as
        ``format`` (default PNG). ``explicit`` overrides the policy: True/"apply" draws the
        visible label; "present" (the content already carries it) and False/"omit" write the
        metadata without re-encoding. "omit" is allowed only with a ``recipient``, recorded in
        the ``ledger`` and/or ``recipient_log`` (Labeling Measures Art. 9).
        """
        with named(source):
            mode = self._explicit(explicit, recipient, source)
            if isinstance(image, (bytes, bytearray, memoryview)):
                result = self._label_encoded(bytes(image), format, mode, produce_id, source)
            else:
                if mode != "apply":
                    raise PolicyError("pixels are labeled with the visible label; pass encoded "
                                      "bytes for a metadata-only label")
                fmt = _output_format(format or "png", source)
                decoded = _decoded_from_pixels(image, fmt, source)
                result = self._label_decoded(decoded, None, produce_id, source)
            result = self._credentials(result, source)
        self._done(result, mode, recipient, source, "image")
        return result

    def label_file(
        self,
        src: str | os.PathLike,
        dst: str | os.PathLike,
        *,
        explicit: bool | str | None = None,
        recipient: str | None = None,
        produce_id: str | None = None,
        durable: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> LabelResult:
        """Label the file ``src`` into ``dst`` atomically; ``src`` is never modified unless dst == src.

        ``progress(frames_done, frames_expected)`` is called while a video is re-encoded."""
        name = os.fspath(src)
        modality = self._modality(src)
        if modality == "video":
            return self.label_video(src, dst, explicit=explicit, recipient=recipient,
                                    produce_id=produce_id, durable=durable, progress=progress)
        data = read_input(src, self.limits)
        label = {"audio": self.label_audio, "text": self.label_text,
                 "document": self.label_document}.get(modality or "", self.label_image)
        result = label(data, explicit=explicit, recipient=recipient, produce_id=produce_id,
                       source=name)
        atomic_write(dst, result.data, durable=durable)
        return result

    def label_video(
        self,
        src: str | os.PathLike | bytes,
        dst: str | os.PathLike,
        *,
        explicit: bool | str | None = None,
        recipient: str | None = None,
        produce_id: str | None = None,
        durable: bool = True,
        progress: Callable[[int, int], None] | None = None,
        source: str | None = None,
    ) -> LabelResult:
        """Label a video (MP4, MOV, MKV, WebM) from a path or bytes into the file ``dst``.

        With the visible label (the default) every frame is re-encoded in the source's codec
        family: label on the opening seconds, watermark on every frame, audio copied as is.
        "present" and "omit" label the metadata only, without re-encoding (no watermark then).
        The result's ``data`` is empty: the video is in ``dst``. ``progress(done, total)`` is
        called every few frames (total is an estimate, 0 when unknown)."""
        from .video.pipeline import label_video

        name = source or ("<video>" if isinstance(src, (bytes, bytearray, memoryview))
                          else os.fspath(src))
        with named(name):
            mode = self._explicit(explicit, recipient, name)
            if self.c2pa is None:
                result = label_video(self, src, dst, mode, produce_id, name, durable, progress)
            else:  # labeled into a temporary file, which the signed file then replaces
                staging = Path(dst).with_name(f".{Path(dst).name}.{os.getpid()}.c2pa-staging")
                try:
                    result = label_video(self, src, staging, mode, produce_id, name, False,
                                         progress)
                    result = self._credentials(replace(result, data=staging.read_bytes()),
                                               name)
                    atomic_write(dst, result.data, durable=durable)
                    result = replace(result, data=b"", path=os.fspath(dst))
                finally:
                    staging.unlink(missing_ok=True)
        self._done(result, mode, recipient, name, "video")
        return result

    def label_audio(
        self,
        data: bytes,
        *,
        explicit: bool | str | None = None,
        recipient: str | None = None,
        produce_id: str | None = None,
        source: str = "<audio>",
    ) -> LabelResult:
        """Label an audio file's bytes (WAV, MP3, FLAC, Ogg Vorbis/Opus, M4A) in its own format.

        With the audible label (the default) the audio is decoded, watermarked, given the cue
        (``Policy.audio``) and re-encoded (lossy formats at the source's bitrate); "present" and
        "omit" write the metadata only, without re-encoding (no cue, no watermark)."""
        from .audio.pipeline import label_audio_file

        with named(source):
            mode = self._explicit(explicit, recipient, source)
            result = label_audio_file(self, bytes(data), mode, produce_id, source)
            result = self._credentials(result, source)
        self._done(result, mode, recipient, source, "audio")
        return result

    def label_pcm(self, pcm: np.ndarray, rate: int, *, produce_id: str | None = None
                  ) -> "LabeledPcm":
        """Label raw float samples (n[, channels]) in-process: watermark, then the cue around them.

        Put ``produce_id`` and ``watermark_payload`` of the result into the file's metadata
        label (or label the encoded file metadata-only afterwards)."""
        from .audio.pipeline import label_pcm

        return label_pcm(self, pcm, rate, produce_id)

    def audio_stream(self, rate: int, channels: int, *, produce_id: str | None = None
                     ) -> "AudioStreamLabeler":
        """A streaming labeler for TTS: ``feed(chunk)`` / ``close()`` return labeled PCM."""
        from .audio.pipeline import AudioStreamLabeler

        return AudioStreamLabeler(self, rate, channels, produce_id)

    def label_text(
        self,
        text: str | bytes,
        kind: str | None = None,
        *,
        explicit: bool | str | None = None,
        recipient: str | None = None,
        produce_id: str | None = None,
        source: str = "<text>",
    ) -> LabelResult:
        """Label plain text, Markdown or HTML (``kind``; None sniffs, asking ``source``'s name).

        The notice goes at the start and/or end (``Policy.text``; not with "present"/"omit"),
        the invisible carrier into every paragraph of prose, and where the format has a
        metadata field (front matter, head) the signed label. ``result.data`` is UTF-8."""
        from .text.pipeline import label_text

        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        with named(source):
            mode = self._explicit(explicit, recipient, source)
            result = label_text(self, data, kind, mode, produce_id, source)
            result = self._credentials(result, source)
        self._done(result, mode, recipient, source, "text")
        return result

    def label_document(
        self,
        data: bytes,
        *,
        explicit: bool | str | None = None,
        recipient: str | None = None,
        produce_id: str | None = None,
        source: str = "<document>",
    ) -> LabelResult:
        """Label a PDF, DOCX, XLSX or PPTX in its metadata; the content stays byte-identical."""
        from .text.pipeline import label_document

        with named(source):
            mode = self._explicit(explicit, recipient, source)
            result = label_document(self, bytes(data), mode, produce_id, source)
            result = self._credentials(result, source)
        self._done(result, mode, recipient, source, "document")
        return result

    def text_stream(self, *, produce_id: str | None = None) -> "TextStreamLabeler":
        """A streaming labeler for generated text: ``feed(token)`` / ``close()``, or ``wrap``."""
        from .text.pipeline import TextStreamLabeler

        return TextStreamLabeler(self, produce_id)

    def token_watermark(self) -> "TokenWatermark":
        """The generation-time watermark for this provider's key: a numpy logits processor.

        Call ``process(input_ids, scores)`` on each step's logits (or wrap it with
        ``labelkit.watermark.hf.GreenListLogitsProcessor`` for transformers); its green share
        and bias come from ``Policy.text``. ``verify(..., tokenizer=...)`` detects it."""
        from .watermark.tokens import TokenWatermark

        if self.watermark_key is None:
            raise PolicyError("the token watermark needs the provider's secret key")
        text = self.policy.text
        return TokenWatermark(self.watermark_key, gamma=text.token_gamma, delta=text.token_delta)

    def _credentials(self, result: LabelResult, source: str) -> LabelResult:
        """Sign the C2PA manifest into the finished file, last (a note where C2PA does not apply)."""
        if self.c2pa is None:
            return result
        from .credentials.manifest import build_manifest, mime_type, not_applicable

        container = formats.parse(result.data, source, self.limits)
        mime = mime_type(container)
        if mime is None:
            return replace(result, notes=(*result.notes, "C2PA not applicable: "
                                          + not_applicable(result.format)))
        modality = formats.handlers()[result.format].MODALITY
        kind = "audio" if mime.startswith("audio/") else modality
        manifest = build_manifest(result.record, title=Path(source).name or result.format,
                                  generator=self.policy.generator,
                                  watermark_payload=result.watermark_payload, watermark=kind)
        data = self.c2pa.sign(result.data, mime, manifest, source)
        return replace(result, data=data, layers=(*result.layers, "c2pa"))

    def _modality(self, src: str | os.PathLike) -> str | None:
        """The file's modality; an MP4 or Matroska file without video is audio (M4A, MKA)."""
        modality = formats.modality_of(src, self.limits)
        if modality != "video":
            return modality
        from .fileio import map_input, release

        data = map_input(src, self.limits)
        try:
            kind = getattr(formats.parse(data, os.fspath(src), self.limits), "kind", "video")
        except LabelkitError:
            return modality  # the video path reports it
        finally:
            release(data)
        return "audio" if kind == "audio" else modality

    def frame_labeler(self, width: int, height: int, *, produce_id: str | None = None,
                      rotation: int = 0, pix_fmt: str = "yuv420p", full_range: bool = False,
                      duration_s: float | None = None) -> "FrameLabeler":
        """A per-frame labeler for services that encode video themselves.

        Call its ``label_frame(frame, t)`` on each frame in presentation order (``t`` seconds
        from the first frame); its ``produce_id`` and ``watermark_payload`` go into the
        metadata label the service writes (or use ``label_video`` metadata-only afterwards)."""
        from .video.pipeline import frame_labeler

        return frame_labeler(self, width, height, produce_id or new_produce_id(), rotation,
                             pix_fmt, full_range, duration_s, explicit=True)

    # -- the pipeline -----------------------------------------------------------------------

    def _explicit(self, explicit: bool | str | None, recipient: str | None, source: str) -> str:
        mode = explicit_mode(self.policy.explicit if explicit is None else explicit)
        if mode == "omit":
            if not recipient:
                raise PolicyError(
                    "content without the explicit label may only be handed out with a recipient "
                    "on record (Labeling Measures Art. 9): pass recipient=...",
                    source=source,
                )
            if self.recipient_log is None and self.ledger is None:
                raise PolicyError(
                    "explicit=False needs the recipient recorded: configure "
                    "Labeler(ledger=...) or Labeler(recipient_log=...)",
                    source=source,
                )
        return mode

    def _label_encoded(
        self, data: bytes, fmt: str | None, mode: str, produce_id: str | None, source: str
    ) -> LabelResult:
        container = formats.parse(data, source, self.limits)
        if fmt is not None and _output_format(fmt, source) != container.format:
            raise PolicyError(
                f"input is {container.format}, not {fmt}: labelkit keeps the input's format",
                source=source,
            )
        if mode != "apply":
            # Metadata only: the compressed image data stays byte-identical, and nothing is
            # decoded, so no fingerprint is taken (decoding would cost more than the rest).
            return self._finish(container, b"", None, None, produce_id, ("metadata",))
        decoded = imaging.decode(data, container.format, source, self.limits)
        return self._label_decoded(decoded, container, produce_id, source)

    def _label_decoded(
        self,
        decoded: imaging.Decoded,
        original: formats.Container | None,
        produce_id: str | None,
        source: str,
    ) -> LabelResult:
        from .explicit.image import apply_image_label

        produce_id = produce_id or new_produce_id()
        visible = None
        for frame in decoded.frames:
            placed = apply_image_label(frame, self.policy.image)
            visible = visible or placed
        layers: tuple[str, ...] = ("explicit",)
        payload, notes = self._watermark(decoded, produce_id)
        if payload is not None:
            layers = (*layers, "watermark")
        fp = imaging.fingerprint(decoded.frames[0])
        data = imaging.encode(decoded, source)
        container = formats.parse(data, source, self.limits)
        result = self._finish(container, fp, original, visible, produce_id, (*layers, "metadata"))
        return replace(result, watermark_payload=payload, notes=notes)

    def _watermark(
        self, decoded: imaging.Decoded, produce_id: str
    ) -> tuple[int | None, tuple[str, ...]]:
        """Mark every frame in place (after the visible label); return the payload and notes."""
        if not self.policy.watermark:
            return None, ()
        if self.watermark_key is None:
            return None, ("watermark skipped: no secret key to derive it from",)
        if decoded.mode not in ("L", "LA", "RGB", "RGBA"):
            return None, (f"watermark skipped: {decoded.mode} pixels cannot carry it",)
        payload = self.watermark_key.payload_for(produce_id)
        image = self.policy.image
        for i, frame in enumerate(decoded.frames):
            try:
                decoded.frames[i] = embed_image(frame, self.watermark_key, payload,
                                                image.watermark_strength, image.watermark_profile)
            except WatermarkTooSmall as exc:
                return None, (f"watermark skipped: {exc.reason}",)
        return payload, ()

    def _finish(
        self,
        container: formats.Container,
        fp: bytes,
        original: formats.Container | None,
        visible: Any,
        produce_id: str | None,
        layers: tuple[str, ...],
    ) -> LabelResult:
        record, layers = self._record(container, fp, produce_id, layers)
        # Pixels re-encoded: the original's metadata (EXIF, ICC, IPTC, comments, XMP...) is
        # carried over by the handler, around the new essence.
        data = container.with_label(record.to_json(), metadata_from=original)
        return LabelResult(data, record, container.format, layers, visible, fp)

    def _record(
        self,
        container: formats.Container,
        fp: bytes,
        produce_id: str | None,
        layers: tuple[str, ...],
    ) -> tuple[AIGCRecord, tuple[str, ...]]:
        """The record for a finished essence, signed when there is a key."""
        fields = {"Label": "1", "ContentProducer": self.producer,
                  "ProduceID": produce_id or new_produce_id()}
        rc1 = ""
        if self.key is not None:
            rc1 = sign_rc1(self.key, fields, formats.essence_digest(container), fp)
            layers = (*layers, "signature")
        # Built (and validated) once, signature included: this is the per-item hot path.
        record = AIGCRecord(label="1", content_producer=self.producer,
                            produce_id=fields["ProduceID"], reserved_code1=rc1)
        return record, layers

    def _done(self, result: LabelResult, mode: str, recipient: str | None, source: str,
              modality: str) -> None:
        """Record a finished item: in the ledger, and its recipient in the recipient log."""
        if mode == "omit" and self.recipient_log is not None:
            self._log_recipient(result, recipient, source)
        if self.ledger is not None:
            from .ledger import LedgerEntry

            self.ledger.record(LedgerEntry(
                produce_id=result.record.produce_id, producer=result.record.content_producer,
                modality=modality, format=result.format,
                essence_digest=self._essence_digest(result, source).hex(),
                watermark_payload=(None if result.watermark_payload is None
                                   else f"{result.watermark_payload:016x}"),
                explicit=mode, recipient=recipient if mode == "omit" else None,
                layers=",".join(result.layers), labeled_at=int(time.time() * 1000)))

    def _essence_digest(self, result: LabelResult, source: str) -> bytes:
        """The essence digest ReservedCode1 signs; computed from the output when unsigned."""
        rc1 = parse_rc1(result.record.reserved_code1) if result.record.reserved_code1 else None
        if rc1 is not None:
            return rc1.digest
        if not result.data and result.path is None:
            return b""  # streamed out unsigned (VideoWriter without a file): nothing to hash
        data = result.data or map_input(result.path, self.limits)
        return formats.essence_digest(formats.parse(data, source, self.limits))

    def _log_recipient(self, result: LabelResult, recipient: str | None, source: str) -> None:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "ProduceID": result.record.produce_id,
            "ContentProducer": result.record.content_producer,
            "recipient": recipient,
            "source": source,
            "format": result.format,
            "explicit": False,
        }
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        assert self.recipient_log is not None
        self.recipient_log.parent.mkdir(parents=True, exist_ok=True)
        with self._log_lock, open(self.recipient_log, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def _output_format(fmt: str, source: str) -> str:
    fmt = fmt.lower().lstrip(".")
    fmt = {"jpg": "jpeg", "tif": "tiff"}.get(fmt, fmt)
    if fmt not in imaging.FORMATS:
        raise PolicyError(f"cannot write images as {fmt!r}; choose one of {imaging.FORMATS}",
                          source=source)
    return fmt


def _decoded_from_pixels(image: Image.Image | np.ndarray, fmt: str, source: str) -> imaging.Decoded:
    """Turn caller pixels into frames to label, with default encoder settings for ``fmt``."""
    args: dict[str, Any] = {"jpeg": {"quality": 95}, "webp": {"quality": 95}}.get(fmt, {})
    if isinstance(image, Image.Image):
        for key in ("icc_profile", "exif", "dpi"):
            if image.info.get(key):
                args[key] = image.info[key]
        mode = image.mode if image.mode in ("L", "RGB", "RGBA") else (
            "RGBA" if "A" in image.mode or "transparency" in image.info else "RGB")
        array = np.asarray(image.convert(mode))
    elif isinstance(image, np.ndarray):
        array = image
        if array.dtype != np.uint8:
            raise LabelkitError(f"pixel arrays must be uint8, not {array.dtype}", source=source)
        if array.ndim == 3 and array.shape[2] == 1:
            array = array[:, :, 0]
        if array.ndim == 2:
            mode = "L"
        elif array.ndim == 3 and array.shape[2] in (3, 4):
            mode = "RGB" if array.shape[2] == 3 else "RGBA"
        else:
            raise LabelkitError(
                f"pixel arrays must be (H, W), (H, W, 3) or (H, W, 4), not {array.shape}",
                source=source,
            )
    else:
        raise LabelkitError(f"cannot label a {type(image).__name__}", source=source)
    if fmt == "jpeg" and mode == "RGBA":
        mode, array = "RGB", array[:, :, :3]
    # Copy: the caller's array is never modified.
    return imaging.Decoded(fmt, [np.array(array, dtype=np.uint8, order="C")], mode, args, [0])

