"""The audible explicit label: Morse "AI" rhythm, level, placement, detection and its attacks."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from labelkit.explicit.audio import (
    DETECTION_THRESHOLD,
    PATTERN_UNITS,
    apply_cue,
    content_level,
    cue_pattern,
    cue_signal,
    detect_cue,
)
from labelkit.policy import AudioPolicy

R = 44100
HAVE_FFMPEG = shutil.which("ffmpeg") is not None
HAVE_ESPEAK = shutil.which("espeak-ng") is not None
needs_ffmpeg = pytest.mark.skipif(not HAVE_FFMPEG, reason="ffmpeg not on PATH")
needs_espeak = pytest.mark.skipif(not (HAVE_ESPEAK and HAVE_FFMPEG), reason="espeak-ng missing")


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, np.float64) ** 2)))


def db(x: float) -> float:
    return 20 * np.log10(x)


def decode(data: bytes, rate: int = R, ch: int = 2, pre: tuple[str, ...] = ()) -> np.ndarray:
    cmd = ["ffmpeg", "-v", "error", *pre, "-i", "-", "-f", "f32le", "-ac", str(ch),
           "-ar", str(rate), "-"]
    out = subprocess.run(cmd, input=data, capture_output=True, check=True).stdout
    return np.frombuffer(out, np.float32).reshape(-1, ch).copy()


def ffmpeg(pcm: np.ndarray, rate: int, enc: list[str], fmt: str, out_rate: int | None = None,
           in_rate: int | None = None) -> np.ndarray:
    cmd = ["ffmpeg", "-v", "error", "-f", "f32le", "-ar", str(in_rate or rate), "-ac",
           str(pcm.shape[1]), "-i", "-", *enc, "-f", fmt, "-"]
    data = subprocess.run(cmd, input=np.ascontiguousarray(pcm).tobytes(), capture_output=True,
                          check=True).stdout
    return decode(data, out_rate or rate, pcm.shape[1])


def speak(tmp_path_factory, voice: str, text: str) -> np.ndarray:
    path = tmp_path_factory.mktemp("tts") / f"{voice}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True,
                   capture_output=True)
    return decode(path.read_bytes())


@pytest.fixture(scope="module")
def speech_en(tmp_path_factory) -> np.ndarray:
    if not (HAVE_ESPEAK and HAVE_FFMPEG):
        pytest.skip("espeak-ng or ffmpeg missing")
    return speak(tmp_path_factory, "en", "This is a piece of synthetic speech produced by an "
                 "artificial intelligence system, for testing the audio label detector.")


@pytest.fixture(scope="module")
def speech_zh(tmp_path_factory) -> np.ndarray:
    if not (HAVE_ESPEAK and HAVE_FFMPEG):
        pytest.skip("espeak-ng or ffmpeg missing")
    return speak(tmp_path_factory, "cmn",
                 "这是一段人工智能生成的语音，用于测试音频标识的检测器，不应该被误判。")


def chord_melody(seconds: float = 8.0, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    notes = [261.6, 293.7, 329.6, 349.2, 392.0, 440.0, 493.9, 523.3]
    out = []
    t = np.arange(int(0.25 * R)) / R
    for _ in range(int(seconds / 0.25)):
        n = notes[rng.integers(len(notes))]
        s = sum(np.sin(2 * np.pi * n * m * t) / (j + 1) for j, m in enumerate((1, 1.25, 1.5, 2)))
        s *= np.minimum(1, np.minimum(t / 0.01, (0.25 - t) / 0.05))
        out.append(0.1 * s)
    x = np.concatenate(out).astype(np.float32)
    return np.repeat(x[:, None], 2, axis=1)


def morse(code: str, unit: float = 0.11, f: float = 800.0, lead: float = 0.5) -> np.ndarray:
    """'.' and '-' elements, ' ' letter gap, '/' word gap; faded tones like the real cue."""
    parts = [np.zeros(int(lead * R))]
    k = int(0.008 * R)
    fade = 0.5 - 0.5 * np.cos(np.pi * np.arange(k) / k)
    for ch in code:
        if ch in ".-":
            n = int((1 if ch == "." else 3) * unit * R)
            s = 0.3 * np.sin(2 * np.pi * f * np.arange(n) / R)
            s[:k] *= fade
            s[-k:] *= fade[::-1]
            parts += [s, np.zeros(int(unit * R))]
        elif ch == " ":
            parts.append(np.zeros(int(2 * unit * R)))
        elif ch == "/":
            parts.append(np.zeros(int(6 * unit * R)))
    parts.append(np.zeros(int(lead * R)))
    return np.concatenate(parts).astype(np.float32)[:, None]


# -- rhythm and level -------------------------------------------------------------------------


def test_pattern_timing():
    pol = AudioPolicy(unit_s=0.1)
    spans = cue_pattern(pol)
    assert len(spans) == 4
    u = pol.unit_s
    durations = [round((b - a) / u, 6) for a, b in spans]
    assert durations == [1, 3, 1, 1]
    gaps = [round((spans[i + 1][0] - spans[i][1]) / u, 6) for i in range(3)]
    assert gaps == [1, 3, 1]
    assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(PATTERN_UNITS * u)
    sig = cue_signal(R, pol, 0.1)
    assert sig.dtype == np.float32 and sig.ndim == 1
    assert sig.size == round(PATTERN_UNITS * u * R)
    # silent between tones, and the tones are at the frequency
    assert np.all(sig[int(0.105 * R):int(0.195 * R)] == 0)
    seg = sig[int(0.25 * R):int(0.45 * R)].astype(np.float64)
    spec = np.abs(np.fft.rfft(seg * np.hanning(seg.size)))
    assert abs(np.argmax(spec) * R / seg.size - pol.frequency_hz) < 10
    # the fades: no click at the tone's edges
    assert abs(sig[0]) < 1e-3 and abs(sig[int(0.1 * R) - 1]) < 1e-2


def test_cue_rms_over_tones():
    pol = AudioPolicy()
    sig = cue_signal(R, pol, 0.05).astype(np.float64)
    on = np.concatenate([sig[int(round(a * R)):int(round(b * R))] for a, b in cue_pattern(pol)])
    assert db(rms(on)) == pytest.approx(db(0.05), abs=0.05)


def test_level_matches_content():
    pol = AudioPolicy(level_window_s=1.0)
    rng = np.random.default_rng(0)
    content = np.zeros((3 * R, 2), np.float32)
    content[: R // 2] = rng.normal(0, 0.05, (R // 2, 2))  # active half of the window
    content[R:] = rng.normal(0, 0.3, (2 * R, 2))  # outside the window: ignored
    level = content_level(content, R, pol, "start")
    assert db(level) == pytest.approx(db(rms(content[: R // 2])), abs=0.5)
    out = apply_cue(content, R, pol)
    s, e = out.spans[0]
    tones = np.concatenate([out.pcm[int(round(s * R + a * R)):int(round(s * R + b * R)), 0]
                            for a, b in cue_pattern(pol)])
    assert db(rms(tones)) == pytest.approx(db(rms(content[: R // 2])), abs=0.5)
    # the end uses the last window
    assert db(content_level(content, R, pol, "end")) == pytest.approx(
        db(rms(content[-R:])), abs=0.5)


def test_level_bounds_offset_override():
    pol = AudioPolicy()
    silence = np.zeros((R, 2), np.float32)
    assert db(content_level(silence, R, pol)) == pytest.approx(pol.min_level_dbfs, abs=0.01)
    assert db(content_level(np.zeros((0, 2), np.float32), R, pol)) == pytest.approx(-40, abs=0.01)
    loud = np.full((R, 1), 0.9, np.float32)
    assert db(content_level(loud, R, pol)) == pytest.approx(pol.max_level_dbfs, abs=0.01)
    quiet = (0.1 * np.sin(np.arange(R) * 0.1)).astype(np.float32)[:, None]
    off = AudioPolicy(level_offset_db=-6.0)
    assert db(content_level(quiet, R, off)) == pytest.approx(db(rms(quiet)) - 6, abs=0.3)
    assert db(content_level(quiet, R, AudioPolicy(level_dbfs=-20.0))) == pytest.approx(-20)


# -- placement --------------------------------------------------------------------------------


@pytest.mark.parametrize("placement", ["start", "end", "both"])
def test_placement_preserves_content(placement):
    pol = AudioPolicy(placement=placement)
    rng = np.random.default_rng(1)
    content = rng.uniform(-0.5, 0.5, (2 * R + 17, 2)).astype(np.float32)
    out = apply_cue(content, R, pol)
    n_cue = round(PATTERN_UNITS * pol.unit_s * R)
    n_gap = round(pol.gap_s * R)
    n_extra = (n_cue + n_gap) * (2 if placement == "both" else 1)
    assert out.pcm.shape == (content.shape[0] + n_extra, 2)
    assert out.pcm.dtype == np.float32 and out.pcm.flags["C_CONTIGUOUS"]
    cs = out.content_start
    assert cs == (0 if placement == "end" else n_cue + n_gap)
    assert np.array_equal(out.pcm[cs:cs + content.shape[0]], content)
    assert len(out.spans) == (2 if placement == "both" else 1)
    # never over the content, the same cue on every channel, silence in the gap
    for s, e in out.spans:
        a, b = round(s * R), round(e * R)
        assert b <= cs or a >= cs + content.shape[0]
        assert np.array_equal(out.pcm[a:b, 0], out.pcm[a:b, 1])
    if placement != "end":
        assert not out.pcm[n_cue:cs].any()
    # deterministic
    again = apply_cue(content, R, pol)
    assert np.array_equal(again.pcm, out.pcm)


def test_level_depends_only_on_window():
    pol = AudioPolicy(placement="both")
    rng = np.random.default_rng(2)
    a = rng.normal(0, 0.1, (5 * R, 1)).astype(np.float32)
    b = a.copy()
    b[2 * R:3 * R] *= 3  # the middle differs: outside both windows
    oa, ob = apply_cue(a, R, pol), apply_cue(b, R, pol)
    n = round(PATTERN_UNITS * pol.unit_s * R)
    assert np.array_equal(oa.pcm[:n], ob.pcm[:n]) and np.array_equal(oa.pcm[-n:], ob.pcm[-n:])


def test_zero_length_content_gets_cue():
    pol = AudioPolicy(placement="both")
    out = apply_cue(np.zeros((0, 2), np.float32), R, pol)
    assert len(out.spans) == 2 and out.pcm.shape[0] > 0 and out.pcm.any()
    assert detect_cue(out.pcm, R).present


def test_notice_replaces_cue():
    pol = AudioPolicy(placement="both")
    notice = (0.2 * np.sin(2 * np.pi * 440 * np.arange(R // 2) / R)).astype(np.float32)
    content = np.full((R, 2), 0.1, np.float32)
    out = apply_cue(content, R, pol, notice=notice)
    n, g = notice.size, round(pol.gap_s * R)
    assert out.pcm.shape == (2 * (n + g) + R, 2)
    assert np.array_equal(out.pcm[:n, 1], notice) and np.array_equal(out.pcm[-n:, 0], notice)
    assert out.spans[0] == (0.0, n / R)
    assert np.array_equal(out.pcm[out.content_start:out.content_start + R], content)
    # a stereo notice is used as is
    st = np.stack([notice, -notice], axis=1)
    out2 = apply_cue(content, R, AudioPolicy(placement="start"), notice=st)
    assert np.array_equal(out2.pcm[:n], st)


# -- detection --------------------------------------------------------------------------------


def spans_close(found, expected, tol=0.03):
    assert len(found) == len(expected), (found, expected)
    for f, (s, e) in zip(found, expected):
        assert abs(f.start_s - s) <= tol and abs(f.end_s - e) <= tol, (f, s, e)


@pytest.fixture(scope="module")
def labelled(speech_en):
    content = speech_en[: 6 * R]
    out = apply_cue(content, R, AudioPolicy(placement="both"))
    return content, out


@pytest.mark.parametrize("placement", ["start", "end", "both"])
def test_detect_placements(speech_en, placement):
    out = apply_cue(speech_en[: 5 * R], R, AudioPolicy(placement=placement))
    d = detect_cue(out.pcm, R)
    assert d.present
    spans_close(d.spans, out.spans)
    wheres = [s.where for s in d.spans]
    assert wheres == {"start": ["start"], "end": ["end"], "both": ["start", "end"]}[placement]
    for s in d.spans:
        assert s.score >= DETECTION_THRESHOLD
        assert abs(s.unit_s - 0.11) < 0.006 and abs(s.frequency_hz - 800) < 40
    json.dumps(d.to_dict())


def test_detect_without_gap(speech_en):
    chord = chord_melody(4.0)
    for content in (speech_en[: 4 * R], chord):
        out = apply_cue(content, R, AudioPolicy(placement="both", gap_s=0.0))
        d = detect_cue(out.pcm, R)
        spans_close(d.spans, out.spans)


def test_detect_long_audio_chunks():
    rng = np.random.default_rng(12)
    x = rng.normal(0, 0.02, (130 * R, 1)).astype(np.float32)
    cue = cue_signal(R, AudioPolicy(), 0.1)
    at = [10.0, 59.5, 63.0, 127.5]  # across and inside the chunk overlap; the last one: "end"
    for s in at:
        x[int(s * R):int(s * R) + cue.size, 0] += cue
    d = detect_cue(x, R)
    spans_close(d.spans, [(s, s + cue.size / R) for s in at])
    assert [s.where for s in d.spans] == ["middle", "middle", "middle", "end"]


def test_detect_middle_and_other_settings():
    rng = np.random.default_rng(4)
    pol = AudioPolicy(unit_s=0.09, frequency_hz=1500.0)
    cue = cue_signal(R, pol, 0.1)
    x = rng.normal(0, 0.02, (12 * R, 1)).astype(np.float32)
    x[5 * R:5 * R + cue.size, 0] += cue
    d = detect_cue(x, R)
    spans_close(d.spans, [(5.0, 5.0 + cue.size / R)])
    assert d.spans[0].where == "middle"
    assert abs(d.spans[0].frequency_hz - 1500) < 40 and abs(d.spans[0].unit_s - 0.09) < 0.005


def _attacks():
    def resample_speed(x, sp):
        # replay faster/slower: the samples are played at R * sp, then brought back to R
        return ffmpeg(x, R, ["-ar", str(R)], "wav", in_rate=int(round(R * sp)))

    return {
        "mp3-128k": lambda x: ffmpeg(x, R, ["-c:a", "libmp3lame", "-b:a", "128k"], "mp3"),
        "mp3-64k": lambda x: ffmpeg(x, R, ["-c:a", "libmp3lame", "-b:a", "64k"], "mp3"),
        "mp3-32k": lambda x: ffmpeg(x, R, ["-c:a", "libmp3lame", "-b:a", "32k"], "mp3"),
        "aac-128k": lambda x: ffmpeg(x, R, ["-c:a", "aac", "-b:a", "128k"], "adts"),
        "opus-32k": lambda x: ffmpeg(x, R, ["-c:a", "libopus", "-b:a", "32k"], "ogg",
                                     out_rate=48000),
        "resample-16k": lambda x: ffmpeg(x, R, ["-ar", "16000"], "wav", out_rate=16000),
        "lowpass-3k": lambda x: ffmpeg(x, R, ["-af", "lowpass=f=3000"], "wav"),
        "speed+2%": lambda x: resample_speed(x, 1.02),
        "speed-2%": lambda x: resample_speed(x, 0.98),
        "tempo+5%": lambda x: ffmpeg(x, R, ["-af", "atempo=1.05"], "wav"),
        "tempo-5%": lambda x: ffmpeg(x, R, ["-af", "atempo=0.95"], "wav"),
    }


ATTACK_RATES = {"opus-32k": 48000, "resample-16k": 16000}


@needs_ffmpeg
@pytest.mark.parametrize("name", list(_attacks()))
def test_detect_survives_codec_attacks(labelled, name):
    _, out = labelled
    y = _attacks()[name](out.pcm)
    d = detect_cue(y, ATTACK_RATES.get(name, R))
    assert [s.where for s in d.spans] == ["start", "end"], (name, d)


@pytest.mark.parametrize("name", ["vol-6", "vol+6", "noise-30dB", "mono"])
def test_detect_survives_signal_attacks(labelled, name):
    content, out = labelled
    x = out.pcm
    if name == "vol-6":
        y = x * np.float32(0.5)
    elif name == "vol+6":
        y = np.clip(x * np.float32(2.0), -1, 1)
    elif name == "noise-30dB":
        rng = np.random.default_rng(7)
        y = (x + rng.normal(0, rms(content) * 10 ** (-30 / 20), x.shape)).astype(np.float32)
    else:
        y = x.mean(axis=1)
    d = detect_cue(y, R)
    spans_close(d.spans, out.spans)


def test_detect_cue_under_content(speech_en, speech_zh):
    # mixed under speech at a quarter of its RMS (-12 dB), at 13 places in each of two voices
    found = places = 0
    for speech in (speech_en, speech_zh):
        content = speech[: 8 * R]
        cue = cue_signal(R, AudioPolicy(), 0.25 * rms(content))
        for at_s in np.arange(0.5, content.shape[0] / R - 1.3, 0.5):
            places += 1
            mix = content.copy()
            at = int(round(at_s * R))
            mix[at:at + cue.size] += cue[:, None]
            d = detect_cue(mix, R)
            assert all(abs(s.start_s - at_s) < 0.15 for s in d.spans), (at_s, d)  # no stray ones
            found += len(d.spans)
            if at_s == 0.5:
                spans_close(d.spans, [(0.5, 0.5 + cue.size / R)], tol=0.04)
    # ~3 of 4 measured: the misses are where a vowel's harmonic sits on the tone
    assert found >= 0.65 * places, (found, places)


def test_no_detection_on_speech(speech_en, speech_zh):
    assert not detect_cue(speech_en, R).present
    assert not detect_cue(speech_zh, R).present
    assert not detect_cue(speech_zh.mean(axis=1)[::2].copy(), R // 2).present


def test_no_detection_on_music_noise_silence():
    assert not detect_cue(chord_melody(), R).present
    rng = np.random.default_rng(9)
    assert not detect_cue(rng.normal(0, 0.1, (5 * R, 2)).astype(np.float32), R).present
    assert not detect_cue(np.zeros((5 * R, 2), np.float32), R).present
    assert not detect_cue(np.zeros((100, 2), np.float32), R).present
    # a steady tone
    tone = (0.2 * np.sin(2 * np.pi * 800 * np.arange(4 * R) / R)).astype(np.float32)
    assert not detect_cue(tone, R).present


MUSIC_FILES = ["/usr/share/games/frozen-bubble/snd/frozen-mainzik-1p.ogg",  # frozen-bubble-data
               "/usr/share/games/frozen-bubble/snd/introzik.ogg"]
SOUND_DIR = Path("/usr/share/sounds/freedesktop/stereo")  # sound-theme-freedesktop


@needs_ffmpeg
def test_no_detection_on_recorded_music_and_desktop_sounds():
    music = [p for p in MUSIC_FILES if Path(p).exists()]
    sounds = sorted(SOUND_DIR.glob("*.oga")) if SOUND_DIR.is_dir() else []
    if not music and not sounds:
        pytest.skip("no music or desktop sounds installed (frozen-bubble-data, "
                    "sound-theme-freedesktop)")
    for p in music:
        x = decode(Path(p).read_bytes(), pre=("-t", "30"))
        assert not detect_cue(x, R).present, p
        out = apply_cue(x, R, AudioPolicy(placement="both"))
        assert [s.where for s in detect_cue(out.pcm, R).spans] == ["start", "end"], p
    for p in sounds:  # bells, alarms, phone rings
        x = np.concatenate([decode(p.read_bytes()), np.zeros((R, 2), np.float32)])
        assert not detect_cue(x, R).present, p


@pytest.mark.parametrize("code", [
    ".. ..", ".- .-", ".-- ..", "..- ..", ".- ...", ".- .-.", ".- -.", "- ..", ".-..",
    "... --- ...", ".- / ..", "-- ..", ". .. .", "-.-. --.-", "..-. .-.",
])
def test_no_detection_on_other_morse(code):
    assert not detect_cue(morse(code), R).present, code
    assert detect_cue(morse(".- ..", lead=0.5), R).present


MORSE = {"E": ".", "T": "-", "N": "-.", "M": "--", "S": "...", "O": "---", "R": ".-.",
         "U": "..-", "D": "-..", "K": "-.-", "G": "--.", "W": ".--", "H": "....", "B": "-...",
         "V": "...-", "L": ".-..", "F": "..-.", "P": ".--.", "C": "-.-.", "Y": "-.--",
         "Q": "--.-", "Z": "--..", "X": "-..-", "J": ".---", "I": "..", "A": ".-"}


def test_no_detection_on_random_morse_words():
    rng = np.random.default_rng(21)
    letters = list(MORSE)
    tried = 0
    while tried < 25:
        word = "".join(rng.choice(letters) for _ in range(rng.integers(2, 6)))
        if "AI" in word:
            continue
        tried += 1
        x = morse(" ".join(MORSE[c] for c in word), unit=float(rng.uniform(0.08, 0.15)),
                  f=float(rng.uniform(400, 2000)))
        assert not detect_cue(x, R).present, word
    # a word containing A then I does carry the rhythm
    d = detect_cue(morse(" ".join(MORSE[c] for c in "RAIN")), R)
    assert len(d.spans) == 1


def test_detection_over_a_minute_of_stereo():
    # Its speed is measured in benchmarks/bench_audio_cue.py, not asserted here.
    rng = np.random.default_rng(11)
    x = rng.normal(0, 0.05, (60 * R, 2)).astype(np.float32)
    out = apply_cue(x, R, AudioPolicy(placement="both"))
    d = detect_cue(out.pcm, R)
    assert [s.where for s in d.spans] == ["start", "end"]
