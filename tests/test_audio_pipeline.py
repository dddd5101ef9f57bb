"""Audio labeling in-process and as a stream (TTS): the stream's output equals the whole clip's."""

from __future__ import annotations

import numpy as np
import pytest

import labelkit
from labelkit.explicit.audio import detect_cue
from labelkit.policy import AudioPolicy, Policy

from .conftest import PRODUCER
from .test_watermark_audio import RATE, _music


def _labeler(key, **audio) -> labelkit.Labeler:
    return labelkit.Labeler(PRODUCER, key, Policy(audio=AudioPolicy(**audio)))


def _stream(labeler, pcm, produce_id, sizes):
    s = labeler.audio_stream(RATE, pcm.shape[1], produce_id=produce_id)
    out, i, k = [], 0, 0
    while i < pcm.shape[0]:
        n = sizes[k % len(sizes)]
        out.append(s.feed(pcm[i : i + n]))
        i, k = i + n, k + 1
    out.append(s.close())
    return np.concatenate(out), s


@pytest.mark.parametrize("placement", ["start", "end", "both"])
def test_stream_equals_whole_clip(key, placement):
    labeler = _labeler(key, placement=placement)
    pcm = _music(7)
    whole = labeler.label_pcm(pcm, RATE, produce_id="tts-1")
    for sizes in ([441], [1, 7000, 13], [RATE * 10]):
        streamed, s = _stream(labeler, pcm, "tts-1", sizes)
        assert np.array_equal(streamed, whole.pcm), sizes
        assert s.watermark_payload == whole.watermark_payload is not None


def test_stream_of_a_clip_shorter_than_the_level_window(key):
    labeler = _labeler(key, placement="both")
    pcm = _music(0.4)
    streamed, _ = _stream(labeler, pcm, "short", [1000])
    assert np.array_equal(streamed, labeler.label_pcm(pcm, RATE, produce_id="short").pcm)


def test_stream_latency_is_the_level_window(key):
    labeler = _labeler(key)
    s = labeler.audio_stream(RATE, 2)
    assert s.feed(_music(0.5)).shape[0] == 0  # waiting for the loudness window
    out = s.feed(_music(0.6))
    assert out.shape[0] > RATE  # the cue, the gap and the content so far


def test_label_pcm_puts_the_cue_before_the_content(key):
    labeler = _labeler(key)
    pcm = _music(6)
    done = labeler.label_pcm(pcm, RATE)
    assert done.content_start > 0 and done.cue_spans[0][0] == 0.0
    content = done.pcm[done.content_start :]
    assert content.shape == pcm.shape
    assert not np.any(done.pcm[done.content_start - int(0.2 * RATE) : done.content_start])
    found = detect_cue(done.pcm, RATE)
    assert found.present and found.spans[0].where == "start"


def test_stream_refuses_wrong_channels_and_use_after_close(key):
    s = _labeler(key).audio_stream(RATE, 2)
    with pytest.raises(labelkit.LabelkitError):
        s.feed(np.zeros((10, 3), np.float32))
    s.close()
    with pytest.raises(labelkit.LabelkitError):
        s.feed(np.zeros((10, 2), np.float32))


def test_bad_pcm_is_refused(key):
    labeler = _labeler(key)
    with pytest.raises(labelkit.LabelkitError):
        labeler.label_pcm(np.zeros((10, 2), np.int16), RATE)
    with pytest.raises(labelkit.LabelkitError):
        labeler.label_pcm(np.full((10, 2), np.nan, np.float32), RATE)
    with pytest.raises(labelkit.LabelkitError):
        labeler.label_pcm(np.zeros((10, 64), np.float32), RATE)
