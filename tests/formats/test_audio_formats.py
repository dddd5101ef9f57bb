"""Audio format handlers (WAV, and more as they land): carriers, essence, readers, bad input.

Fixtures are made at run time with the ffmpeg CLI (a 1 s sine; no media is committed)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from labelkit import formats
from labelkit.errors import CorruptInput, LimitExceeded
from labelkit.limits import Limits

FFMPEG = shutil.which("ffmpeg")
pytestmark = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg CLI is not installed")

LABEL = json.dumps({"Label": "1", "ContentProducer": "P1", "ProduceID": "id-1",
                    "ReservedCode1": "", "ContentPropagator": "", "PropagateID": "",
                    "ReservedCode2": ""}, separators=(",", ":"))

# name -> ffmpeg output arguments (input: a 1 s sine at 44.1 kHz, tagged title/comment)
RECIPES = {
    "s16.wav": ["-c:a", "pcm_s16le"],
    "s24.wav": ["-c:a", "pcm_s24le", "-ac", "2"],
    "pic.flac": ["PICTURE"],
    "plain.flac": ["-ac", "2"],
    "v24.mp3": ["-id3v2_version", "4"],
    "v23.mp3": ["-id3v2_version", "3", "-ac", "2"],
    "vorbis.ogg": ["-c:a", "libvorbis"],
    "opus.ogg": ["-c:a", "libopus"],
    "bare.mp3": ["-id3v2_version", "0", "-write_xing", "0", "-map_metadata", "-1"],
}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """Build every sample file once per module."""
    folder = tmp_path_factory.mktemp("audio")
    out = {}
    cover = folder / "cover.png"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "color=red:s=16x16",
                    "-frames:v", "1", str(cover)], check=True)
    for name, args in RECIPES.items():
        path = folder / name
        if args == ["PICTURE"]:  # an embedded cover picture
            args = ["-i", str(cover), "-map", "0", "-map", "1", "-c:v", "png",
                    "-disposition:v", "attached_pic"]
        subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=f=440:d=1",
                        *args, "-metadata", "title=Hello", "-metadata", "comment=Kept",
                        str(path)], check=True)
        out[name] = path
    return out


def _boundaries(parsed) -> list[int]:
    """Every structural boundary of a parsed file (chunk, block, tag, frame and page edges),
    and one byte either side."""
    edges = []
    for c in (getattr(parsed, "_chunks", []) + getattr(parsed, "_blocks", [])
              + getattr(parsed, "_pages", [])):
        edges += [c.start, c.end]
    for t in getattr(parsed, "_tags", []):
        edges += [t.start, t.end, *(f[0] for f in t.frames), *(f[1] for f in t.frames)]
    return sorted({e + d for e in edges for d in (-1, 0, 1) if 0 < e + d < len(parsed._data)})


def _label(path: Path, tmp: Path, text: str = LABEL) -> Path:
    parsed = formats.parse(path.read_bytes(), str(path))
    out = tmp / ("labeled" + path.suffix)
    out.write_bytes(parsed.with_label(text))
    return out


def _decode(path: Path) -> bytes:
    return subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-f", "s32le", "-"],
                          check=True, capture_output=True).stdout


@pytest.mark.parametrize("name", list(RECIPES))
def test_label_roundtrip(made, tmp_path, name):
    src = made[name]
    original = formats.parse(src.read_bytes(), str(src))
    assert formats.sniff(src.read_bytes()).MODALITY == "audio"
    assert original.width == original.height == original.frames == 0
    assert original.sample_rate in (44100, 48000) and original.channels in (1, 2)
    out = _label(src, tmp_path)
    labeled = formats.parse(out.read_bytes(), str(out))
    assert [c.text for c in labeled.carriers] == [LABEL]
    assert formats.essence_digest(labeled) == formats.essence_digest(original)
    assert _decode(out) == _decode(src)
    # relabeling keeps exactly one label
    again = formats.parse(labeled.with_label(LABEL.replace("P1", "P2")), "again")
    assert [c.text for c in again.carriers] == [LABEL.replace("P1", "P2")]


@pytest.mark.parametrize("name", list(RECIPES))
def test_one_audio_byte_changes_the_digest(made, name):
    data = bytearray(made[name].read_bytes())
    before = formats.essence_digest(formats.parse(bytes(data), name))
    data[-10] ^= 1
    assert formats.essence_digest(formats.parse(bytes(data), name)) != before


@pytest.mark.parametrize("name", list(RECIPES))
def test_truncated_and_corrupt(made, name):
    data = made[name].read_bytes()
    parsed = formats.parse(data, name)
    cuts = sorted({8, 12, 16, 20, 40, 60, len(data) // 2, len(data) - 1, *_boundaries(parsed)})
    handler = formats.sniff(data)
    for cut in cuts:
        try:
            handler.parse(data[:cut], "cut.x", Limits())
        except CorruptInput as exc:
            assert "cut.x" in str(exc)
    if not name.startswith("bare"):  # a bare MP3 has no chunks/frames/blocks to count
        with pytest.raises(LimitExceeded):
            formats.parse(data, "x", Limits(max_chunks=1))


def test_wav_readers(made, tmp_path):
    out = _label(made["s16.wav"], tmp_path)
    # ffprobe keeps the LIST/INFO tags and ignores the AIGC chunk
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-of", "json", str(out)],
                           check=True, capture_output=True, text=True).stdout
    tags = json.loads(probe)["format"]["tags"]
    assert tags["title"] == "Hello"
    if shutil.which("exiftool"):
        # exiftool shows the chunk only as "Unknown_AIGC" binary data with -u
        info = json.loads(subprocess.run(["exiftool", "-j", "-u", "-b", str(out)],
                                         check=True, capture_output=True, text=True).stdout)[0]
        assert info["Title"] == "Hello"
        assert "Unknown_AIGC" in info
    # mutagen.wave reads only an `id3 ` chunk: it cannot read the RIFF AIGC chunk.


def test_wav_corrupt_sizes(made):
    data = bytearray(made["s16.wav"].read_bytes())
    bad = bytearray(data)
    bad[16:20] = (0x7FFFFFF0).to_bytes(4, "little")  # fmt size past the end
    with pytest.raises(CorruptInput, match="0xc"):
        formats.parse(bytes(bad), "bad.wav")
    with pytest.raises(CorruptInput, match="bad.wav"):
        formats.parse(bytes(data[:40]), "bad.wav")
    rf64 = b"RF64" + bytes(data[4:])
    with pytest.raises(Exception, match="64-bit"):
        formats.parse(rf64, "x.wav")


def test_wav_metadata_from(made, tmp_path):
    orig = formats.parse(made["s16.wav"].read_bytes(), "orig")
    new = formats.parse(made["s24.wav"].read_bytes(), "new")
    out = formats.parse(new.with_label(LABEL, metadata_from=orig), "out")
    assert formats.essence_digest(out) == formats.essence_digest(new)
    assert [c.text for c in out.carriers] == [LABEL]
    assert [c.id for c in out._chunks if c.id == b"LIST"] == [b"LIST"]


def _probe_tags(path: Path) -> dict[str, str]:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_format", "-show_streams", "-of",
                          "json", str(path)], check=True, capture_output=True, text=True).stdout
    info = json.loads(out)
    tags = dict(info["format"].get("tags", {}))
    for st in info["streams"]:
        tags.update(st.get("tags", {}))
    return tags


def _exiftool(path: Path) -> dict:
    return json.loads(subprocess.run(["exiftool", "-j", "-u", str(path)], check=True,
                                     capture_output=True, text=True).stdout)[0]


def test_flac_readers_and_tags(made, tmp_path):
    import mutagen.flac

    out = _label(made["pic.flac"], tmp_path)
    tags = mutagen.flac.FLAC(str(out))
    assert tags["AIGC"] == [LABEL] and tags["title"] == ["Hello"]
    assert len(tags.pictures) == 1
    assert _probe_tags(out)["AIGC"] == LABEL
    if shutil.which("exiftool"):
        assert _exiftool(out)["Aigc"] == LABEL
    # an edit of another tag by mutagen keeps the essence digest
    before = formats.essence_digest(formats.parse(out.read_bytes(), "a"))
    tags["title"] = "Changed"
    tags.save()
    after = formats.parse(out.read_bytes(), "b")
    assert formats.essence_digest(after) == before
    assert [c.text for c in after.carriers] == [LABEL]


def test_flac_duplicates_and_id3_prefix(made, tmp_path):
    import mutagen.flac

    path = tmp_path / "dup.flac"
    path.write_bytes(made["plain.flac"].read_bytes())
    tags = mutagen.flac.FLAC(str(path))
    tags["AIGC"] = ["one", "two"]
    tags.save()
    parsed = formats.parse(path.read_bytes(), "dup")
    assert [c.text for c in parsed.carriers] == ["one", "two"]
    labeled = formats.parse(parsed.with_label(LABEL), "l")
    assert [c.text for c in labeled.carriers] == [LABEL]
    # no VORBIS_COMMENT at all: one is added after STREAMINFO
    tags = mutagen.flac.FLAC(str(path))
    tags.delete()
    parsed = formats.parse(path.read_bytes(), "bare")
    labeled = formats.parse(parsed.with_label(LABEL), "l")
    assert [c.text for c in labeled.carriers] == [LABEL]
    assert formats.essence_digest(labeled) == formats.essence_digest(parsed)


def test_flac_metadata_from(made):
    orig = formats.parse(made["pic.flac"].read_bytes(), "orig")
    new = formats.parse(made["plain.flac"].read_bytes(), "new")
    out = formats.parse(new.with_label(LABEL, metadata_from=orig), "out")
    assert formats.essence_digest(out) == formats.essence_digest(new)
    assert [c.text for c in out.carriers] == [LABEL]
    assert 6 in [b.type for b in out._blocks]  # the original's PICTURE


@pytest.mark.parametrize("name", ["v24.mp3", "v23.mp3", "bare.mp3"])
def test_mp3_readers_and_tags(made, tmp_path, name):
    import mutagen.id3

    out = _label(made[name], tmp_path)
    tags = mutagen.id3.ID3(str(out))
    assert [f.text for f in tags.getall("TXXX:AIGC")] == [[LABEL]]
    if name != "bare.mp3":
        assert tags["TIT2"].text == ["Hello"]
        assert tags.version[1] == int(name[2])  # the input's ID3 version is kept
    assert _probe_tags(out)["AIGC"] == LABEL
    if shutil.which("exiftool"):
        # -j would merge the repeated UserDefinedText tags; one value a line keeps them all
        texts = subprocess.run(["exiftool", "-a", "-s3", "-UserDefinedText", str(out)],
                               check=True, capture_output=True, text=True).stdout.splitlines()
        assert f"(AIGC) {LABEL}" in texts
    before = formats.essence_digest(formats.parse(out.read_bytes(), "a"))
    tags.add(mutagen.id3.TPE1(encoding=3, text=["Someone"]))
    tags.save(str(out), v2_version=tags.version[1])
    after = formats.parse(out.read_bytes(), "b")
    assert formats.essence_digest(after) == before
    assert [c.text for c in after.carriers] == [LABEL]


def test_mp3_duplicates_trailers_and_refusals(made, tmp_path):
    import mutagen.id3

    path = tmp_path / "dup.mp3"
    path.write_bytes(made["v23.mp3"].read_bytes())
    tags = mutagen.id3.ID3(str(path))
    tags.add(mutagen.id3.TXXX(encoding=0, desc="AIGC", text=["one"]))
    tags.save(str(path), v2_version=3)
    data = path.read_bytes()
    raw = data + b"TAG" + b"\0" * 125  # an ID3v1 trailer stays out of the essence
    first = formats.parse(data, "a")
    # duplicates: a second frame with the same description, written by hand
    payload = b"\0AIGC\0two"
    frame = b"TXXX" + len(payload).to_bytes(4, "big") + b"\0\0" + payload
    dup = formats.parse(raw, "b")
    assert formats.essence_digest(dup) == formats.essence_digest(first)
    assert [c.text for c in dup.carriers] == ["one"]
    tag_end = dup._tags[0].end
    body = data[10:tag_end]
    head = data[:6] + bytes(((len(body) + len(frame)) >> 21 & 127, (len(body) + len(frame)) >> 14
                             & 127, (len(body) + len(frame)) >> 7 & 127,
                             (len(body) + len(frame)) & 127))
    two = formats.parse(head + frame + body + data[tag_end:], "c")
    assert [c.text for c in two.carriers] == ["two", "one"]
    one = formats.parse(two.with_label(LABEL), "d")
    assert [c.text for c in one.carriers] == [LABEL]
    # unsynchronisation: read, but labeling refuses
    unsync = data[:5] + bytes([data[5] | 0x80]) + data[6:]
    parsed = formats.parse(unsync, "u")
    with pytest.raises(Exception, match="unsynchronisation"):
        parsed.with_label(LABEL)
    # huge declared tag size
    with pytest.raises(LimitExceeded):
        formats.parse(data, "h", Limits(max_metadata_bytes=10))
    # random bytes with a frame-sync-looking start are not an MP3
    assert not formats.handlers()["mp3"].accept(b"\xff\xfb" + b"\x12" * 62)


def test_mp3_metadata_from(made):
    orig = formats.parse(made["v24.mp3"].read_bytes(), "orig")
    new = formats.parse(made["bare.mp3"].read_bytes(), "new")
    out = formats.parse(new.with_label(LABEL, metadata_from=orig), "out")
    assert formats.essence_digest(out) == formats.essence_digest(new)
    assert [c.text for c in out.carriers] == [LABEL]
    assert len(out._tags) == 1 and len(out._tags[0].frames) == len(orig._tags[0].frames) + 1


@pytest.mark.parametrize("name", ["vorbis.ogg", "opus.ogg"])
def test_ogg_readers_pages_and_tags(made, tmp_path, name):
    import struct

    import mutagen

    from labelkit.formats.ogg import ogg_crc

    out = _label(made[name], tmp_path)
    tags = mutagen.File(str(out))  # mutagen checks the page structure as it reads
    assert tags["AIGC"] == [LABEL] and tags["title"] == ["Hello"]
    assert _probe_tags(out)["AIGC"] == LABEL
    if shutil.which("exiftool"):
        assert _exiftool(out)["Aigc"] == LABEL
    data = out.read_bytes()
    parsed = formats.parse(data, "p")
    for seq, page in enumerate(parsed._pages):  # renumbered, every CRC right
        raw = bytearray(data[page.start : page.end])
        assert struct.unpack_from("<I", raw, 18)[0] == seq
        crc = struct.unpack_from("<I", raw, 22)[0]
        raw[22:26] = bytes(4)
        assert ogg_crc(raw) == crc
    before = formats.essence_digest(parsed)
    tags["title"] = "Changed with a much longer title " * 20  # re-paginates the headers
    tags.save()
    after = formats.parse(out.read_bytes(), "b")
    assert formats.essence_digest(after) == before
    assert [c.text for c in after.carriers] == [LABEL]


def test_ogg_metadata_from_and_refusals(made):
    orig = formats.parse(made["vorbis.ogg"].read_bytes(), "orig")
    new = formats.parse(made["vorbis.ogg"].read_bytes(), "new")
    out = formats.parse(new.with_label(LABEL, metadata_from=orig), "out")
    assert formats.essence_digest(out) == formats.essence_digest(new)
    assert [c.text for c in out.carriers] == [LABEL]
    data = made["opus.ogg"].read_bytes()
    chained = data + data  # a second logical stream (BOS again)
    with pytest.raises(Exception, match="chained or multiplexed"):
        formats.parse(chained, "chain.ogg")
    bad = bytearray(data)
    bad[26] = 255  # a lacing table past the end of the page data
    with pytest.raises(CorruptInput, match="0x0"):
        formats.handlers()["ogg"].parse(bytes(bad), "bad.ogg", Limits())


def test_m4a_metadata_label(tmp_path):
    import mutagen.mp4

    src = tmp_path / "t.m4a"
    subprocess.run([FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=f=440:d=1",
                    "-c:a", "aac", "-metadata", "title=Hello", str(src)], check=True)
    original = formats.parse(src.read_bytes(), str(src))
    assert original.format == "mp4" and original.kind == "audio"
    out = _label(src, tmp_path)
    labeled = formats.parse(out.read_bytes(), "l")
    assert [c.text for c in labeled.carriers] == [LABEL]
    assert formats.essence_digest(labeled) == formats.essence_digest(original)
    again = formats.parse(labeled.with_label(LABEL), "again")
    assert len(again.carriers) == 1
    assert _probe_tags(out)["AIGC"] == LABEL  # ffprobe reads the mdta key as a format tag
    if shutil.which("exiftool"):
        assert _exiftool(out)["AIGC"] == LABEL
    # mutagen.mp4 reads only the iTunes ilst atoms, not mdta keys: the label is invisible to
    # it, while the other tags stay readable.
    tags = mutagen.mp4.MP4(str(out)).tags
    assert tags["\xa9nam"] == ["Hello"] and "AIGC" not in tags
    assert _decode(out) == _decode(src)


@pytest.mark.parametrize("name", list(RECIPES))
def test_corrupt_bytes_raise_only_labelkit_errors(made, name):
    from labelkit.errors import LabelkitError

    data = made[name].read_bytes()
    handler = formats.sniff(data)
    for at in list(range(0, 160)) + _boundaries(handler.parse(data, name, Limits()))[:300]:
        for value in (0x00, 0xFF, 0x7F):
            bad = bytearray(data)
            if at >= len(bad):
                continue
            bad[at] = value
            try:
                parsed = handler.parse(bytes(bad), "bad.x", Limits())
                parsed.with_label(LABEL)
            except LabelkitError as exc:
                assert "bad.x" in str(exc)


def test_flac_with_leading_id3(made, tmp_path):
    id3 = b"ID3\x03\0\0\0\0\0\x0c" + b"TIT2\0\0\0\x02\0\0\0A"
    data = id3 + made["plain.flac"].read_bytes()
    parsed = formats.parse(data, "id3.flac")
    assert parsed.format == "flac"
    out = parsed.with_label(LABEL)
    assert out.startswith(id3)
    labeled = formats.parse(out, "l")
    assert [c.text for c in labeled.carriers] == [LABEL]
    assert formats.essence_digest(labeled) == formats.essence_digest(parsed)


def test_huge_declared_sizes(made):
    flac = bytearray(made["pic.flac"].read_bytes())
    flac[4 + 38 + 1 : 4 + 38 + 4] = b"\xff\xff\xf0"  # the block after STREAMINFO: ~16 MB
    with pytest.raises(LimitExceeded, match="0x2a"):
        formats.parse(bytes(flac), "huge.flac")
    with pytest.raises(CorruptInput, match="past the end"):
        formats.parse(bytes(flac), "huge.flac", Limits(max_metadata_bytes=1 << 25))
    wav = bytearray(made["s16.wav"].read_bytes())
    wav[40:44] = (0x7FFFFFF0).to_bytes(4, "little")
    with pytest.raises(CorruptInput, match="huge.wav"):
        formats.parse(bytes(wav), "huge.wav")


def test_wav_unpadded_last_chunk_moves_safely(made):
    data = made["s16.wav"].read_bytes()
    odd = data + b"junk" + (3).to_bytes(4, "little") + b"abc"  # no pad byte at the very end
    odd = odd[:4] + (len(odd) - 8).to_bytes(4, "little") + odd[8:]
    parsed = formats.parse(odd, "odd.wav")
    other = formats.parse(made["s24.wav"].read_bytes(), "new")
    out = formats.parse(other.with_label(LABEL, metadata_from=parsed), "out")
    assert [c.id for c in out._chunks][-1] == b"data"
    assert formats.essence_digest(out) == formats.essence_digest(other)


def test_wav_tag_edit_by_mutagen_keeps_digest_and_label(made, tmp_path):
    import mutagen.id3
    import mutagen.wave

    out = _label(made["s16.wav"], tmp_path)
    before = formats.essence_digest(formats.parse(out.read_bytes(), "a"))
    wave = mutagen.wave.WAVE(str(out))  # mutagen.wave reads/writes only an `id3 ` chunk
    wave.add_tags()
    wave.tags.add(mutagen.id3.TIT2(encoding=3, text=["Edited"]))
    wave.save()
    after = formats.parse(out.read_bytes(), "b")
    assert b"id3 " in [c.id for c in after._chunks]
    assert formats.essence_digest(after) == before
    assert [c.text for c in after.carriers] == [LABEL]
