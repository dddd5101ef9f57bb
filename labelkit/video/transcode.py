"""Decode, label each frame in YUV, re-encode in the source's codec family; audio copied as is.

The output is a fresh file in the source's container with no metadata of its own: the format
handler then writes the label and carries the original's metadata over (``with_label``), the
same path a picture takes. What is kept here is what lives in the streams: frame size, pixel
format, timestamps (frame pts pass through unchanged), frame rate, rotation, colour description.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import imaging
from ..errors import CorruptInput, LimitExceeded
from ..explicit.video import display_view
from ..limits import Limits
from ..policy import VideoPolicy
from ._av import av, ffmpeg_errors, open_input, video_info, VideoInfo
from .codecs import encoder_for
from .frames import FrameLabeler, frame_planes, frame_seconds

__all__ = ["Transcoded", "transcode", "MAX_BAD_PACKETS"]

# A file whose packets mostly fail to decode is not worth labeling: give up past this many.
MAX_BAD_PACKETS = 100
_COLOUR = ("color_range", "color_primaries", "color_trc", "colorspace")


@dataclass
class Transcoded:
    """What a transcode did: frames, the visible label's span, problems met on the way."""

    frames: int = 0
    labelled_until: float = 0.0  # presentation time at which the opening label ends
    visible: Any = None
    fingerprint: bytes = b""
    notes: list[str] = field(default_factory=list)
    info: VideoInfo | None = None


def transcode(
    src: Any,
    dst: str | os.PathLike,
    out_format: str,
    make_labeler: Callable[[VideoInfo, int, str], FrameLabeler],
    video: VideoPolicy,
    limits: Limits,
    source: str,
    progress: Callable[[int, int], None] | None = None,
) -> Transcoded:
    """Label every frame of ``src`` (path or bytes) into the new file ``dst`` (``out_format``)."""
    result = Transcoded()
    with ffmpeg_errors(source):
        with open_input(src, source) as inp, av.open(os.fspath(dst), "w", format=out_format) as out:
            info = video_info(inp, source, limits)
            result.info = info
            encoder = encoder_for(info.codec, out_format, source)
            vin = inp.streams.video[0]
            vin.thread_type = "AUTO"
            vout = out.add_stream(encoder.name, rate=info.rate, options=encoder.options(video))
            ctx = vout.codec_context
            ctx.width, ctx.height = info.width, info.height
            if video.threads:
                ctx.thread_count = video.threads
            ctx.time_base = vin.time_base
            vout.time_base = vin.time_base
            streams = {vin.index: vout}
            for stream in inp.streams:
                if stream.type in ("audio", "subtitle") and stream is not vin:
                    try:
                        streams[stream.index] = out.add_stream_from_template(stream)
                    except (ValueError, av.error.FFmpegError) as exc:
                        result.notes.append(f"{stream.type} stream {stream.index} dropped: "
                                            f"the output container cannot carry it ({exc})")
            expected = int(info.duration_s * float(info.rate)) if info.rate else 0
            labeler = _pump(inp, out, vin, vout, streams, make_labeler, info, limits, source,
                            result, progress, expected)
    result.frames = labeler.frames
    result.visible = labeler.visible
    return result


def _setup(vout: Any, first: Any) -> None:
    """Settings only the first decoded frame tells: pixel format, colour, rotation. They must be
    set before the encoder opens and the header is written (the first encode and mux)."""
    ctx = vout.codec_context
    ctx.pix_fmt = first.format.name
    for name in _COLOUR:
        try:
            setattr(ctx, name, getattr(first, name))
        except (ValueError, TypeError, AttributeError):
            pass  # an unspecified value the encoder will not take: its default is it
    if first.rotation:
        vout.set_display_rotation(int(first.rotation))


def _pump(inp, out, vin, vout, streams, make_labeler, info: VideoInfo, limits: Limits,
          source: str, result: Transcoded, progress, expected: int) -> FrameLabeler:
    """The demux → decode → label → encode → mux loop; other streams' packets copied as is.

    Packets of other streams that come before the first video frame wait for it: the header
    (with the rotation the frame tells) cannot be written before."""
    labeler: FrameLabeler | None = None
    waiting: list[Any] = []
    bad = 0
    first_pts = None
    index = 0
    opening, last_t = True, 0.0
    damaged = 0
    rate = float(info.rate) if info.rate else None
    copied = [inp.streams[i] for i in streams]
    for packet in inp.demux(*copied):
        if packet.stream.index != vin.index:
            if packet.dts is None:
                continue  # the demuxer's end-of-stream marker
            packet.stream = streams[packet.stream.index]
            if labeler is None:
                waiting.append(packet)
            else:
                out.mux(packet)
            continue
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            bad += 1
            if bad > MAX_BAD_PACKETS:
                raise CorruptInput(f"more than {MAX_BAD_PACKETS} video packets cannot be "
                                   "decoded", source=source) from None
            continue
        for frame in frames:
            # The decoder conceals damage it can (and flags the frame) rather than failing.
            damaged += bool(frame.is_corrupt) or bool(packet.is_corrupt)
            if labeler is None:
                _setup(vout, frame)
                labeler = make_labeler(info, int(frame.rotation or 0), frame.format.name)
                first_pts = frame.pts
            t = frame_seconds(frame, first_pts, index, rate)
            if index == 0 or labeler.touches(t):
                planes = frame_planes(frame)
                drawn = labeler.label_planes(planes[0], *planes[1:3], t)
            else:  # nothing to draw or mark: no private copy of the decoder's buffer needed
                drawn = False
                labeler.frames += 1
            if opening and not drawn:
                result.labelled_until, opening = t, False  # shown until this frame replaces it
            last_t = t
            if index == 0:
                result.fingerprint = imaging.fingerprint(
                    np.ascontiguousarray(display_view(planes[0], int(frame.rotation or 0))))
            frame.pict_type = av.video.frame.PictureType.NONE
            for out_packet in vout.encode(frame):
                out.mux(out_packet)
            index += 1
            if index > limits.max_frames:
                raise LimitExceeded(f"more than {limits.max_frames} frames", source=source)
            if progress is not None and index % 16 == 0:
                progress(index, expected)
            if waiting:
                for early in waiting:
                    out.mux(early)
                waiting.clear()
    if labeler is None:
        raise CorruptInput("no video frame could be decoded", source=source)
    for out_packet in vout.encode(None):
        out.mux(out_packet)
    if opening:  # labelled to the end: the last frame is shown for one frame's duration
        result.labelled_until = last_t + (1.0 / rate if rate else 0.0)
    if damaged:
        result.notes.append(f"{damaged} video frame(s) were damaged in the source and decoded "
                            "with concealment; the rest was labeled")
    if bad:
        result.notes.append(f"{bad} video packet(s) could not be decoded and were skipped; "
                            "the rest was labeled")
    if progress is not None:
        progress(index, max(expected, index))
    return labeler
