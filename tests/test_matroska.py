"""Matroska/WebM handler: labels read by ffprobe, exiftool, mkvtoolnix and PyAV; frames intact.

Fixtures are tiny clips written at run time by ffmpeg (and mkvmerge, PyAV); the checks use
independent readers, plus a small EBML walker of the test's own for Cues and SeekHead offsets.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import shutil
import subprocess
from pathlib import Path

import pytest

from labelkit import formats
from labelkit.errors import CorruptInput, LabelkitError, LimitExceeded, PolicyError
from labelkit.errors import UnsupportedFormat
from labelkit.formats import _ebml, matroska
from labelkit.limits import DEFAULT_LIMITS, Limits

av = pytest.importorskip("av")

FFMPEG, FFPROBE = shutil.which("ffmpeg"), shutil.which("ffprobe")
MKVMERGE, MKVEXTRACT = shutil.which("mkvmerge"), shutil.which("mkvextract")
MKVPROPEDIT, EXIFTOOL = shutil.which("mkvpropedit"), shutil.which("exiftool")
pytestmark = pytest.mark.skipif(FFMPEG is None or FFPROBE is None, reason="needs ffmpeg/ffprobe")

PRODUCER = "001191110102MAD55U9H0F10002"
LABEL = json.dumps(
    {"Label": "1", "ContentProducer": PRODUCER, "ProduceID": "mkv-0001", "ReservedCode1": "",
     "ContentPropagator": "", "PropagateID": "", "ReservedCode2": ""},
    separators=(",", ":"),
)  # fmt: skip
LABEL2 = LABEL.replace("mkv-0001", "mkv-0002").replace('"ContentPropagator":""',
                                                       f'"ContentPropagator":"{PRODUCER}"')
SRC = ["-f", "lavfi", "-i", "testsrc2=size=64x48:rate=10"]
SINE = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "5"]
VP9 = ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-g", "5"]


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    """Run a tool, failing the test with its stderr if it fails."""
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{args[0]} failed: {r.stderr[-2000:]}"
    return r


def ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly."""
    run(FFMPEG, "-v", "error", "-y", *args)


def parse(data: bytes, name: str = "clip.mkv", limits: Limits = DEFAULT_LIMITS):
    """Parse with the handler under test."""
    return matroska.parse(data, name, limits)


# -- an independent EBML walker (for offsets the handler writes) ---------------------------------


def _vint(d: bytes, p: int) -> tuple[int, int, int]:
    """(raw value with marker, value without marker, width) of the VINT at p."""
    w = 8 - d[p].bit_length() + 1
    raw = int.from_bytes(d[p : p + w], "big")
    return raw, raw & ((1 << (7 * w)) - 1), w


def top_level(d: bytes) -> tuple[int, list[tuple[int, int, int, int, bool]]]:
    """(Segment data offset, [(id, start, data, end, unknown_size)]) of the Segment's children."""
    _, hsize, hw = _vint(d, 4)
    p = 4 + hw + hsize
    assert d[p : p + 4] == b"\x18\x53\x80\x67"
    _, ssize, sw = _vint(d, p + 4)
    seg = p + 4 + sw
    end = len(d) if ssize == (1 << (7 * sw)) - 1 else seg + ssize
    out, p = [], seg
    level1 = {0x114D9B74, 0x1549A966, 0x1654AE6B, 0x1043A770, 0x1F43B675, 0x1C53BB6B,
              0x1941A469, 0x1254C367}  # fmt: skip
    while p < end:
        eid, _, iw = _vint(d, p)
        _, size, w = _vint(d, p + iw)
        data = p + iw + w
        unknown = size == (1 << (7 * w)) - 1
        if unknown:  # step over the cluster's blocks to the next level-1 element
            q = data
            while q < end and _vint(d, q)[0] not in level1:
                cid, _, ciw = _vint(d, q)
                _, csize, cw = _vint(d, q + ciw)
                q += ciw + cw + csize
            stop = q
        else:
            stop = data + size
        out.append((eid, p, data, stop, unknown))
        p = stop
    return seg, out


def children(d: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """[(id, data, end)] of the elements between start and end."""
    out, p = [], start
    while p < end:
        eid, _, iw = _vint(d, p)
        _, size, w = _vint(d, p + iw)
        out.append((eid, p + iw + w, p + iw + w + size))
        p = p + iw + w + size
    return out


def check_offsets(d: bytes) -> None:
    """Every SeekHead entry and every CueClusterPosition points at an element of that kind."""
    seg, elements = top_level(d)
    starts = {start - seg: eid for eid, start, *_ in elements}
    for eid, _, data, end, _ in elements:
        if eid == 0x114D9B74:
            for sid, sdata, send in children(d, data, end):
                if sid != 0x4DBB:
                    continue
                kids = {k: d[a:b] for k, a, b in children(d, sdata, send)}
                target = int.from_bytes(kids[0x53AB], "big")
                assert starts.get(int.from_bytes(kids[0x53AC], "big")) == target, hex(target)
        if eid == 0x1C53BB6B:
            for pid, pdata, pend in children(d, data, end):
                for tid, tdata, tend in children(d, pdata, pend) if pid == 0xBB else []:
                    for fid, fdata, fend in children(d, tdata, tend) if tid == 0xB7 else []:
                        if fid == 0xF1:
                            assert starts[int.from_bytes(d[fdata:fend], "big")] == 0x1F43B675


def make_live(d: bytes) -> bytes:
    """The file as a live writer leaves it: Segment and Clusters of unknown size (same widths)."""
    out = bytearray(d)
    seg, elements = top_level(d)
    _, _, hw = _vint(d, 4)
    pos = 4 + hw + _vint(d, 4)[1] + 4
    sw = _vint(d, pos)[2]
    out[pos : pos + sw] = ((1 << (8 * sw - sw + 1)) - 1).to_bytes(sw, "big")
    for eid, start, data, _, _ in elements:
        if eid == 0x1F43B675:
            w = data - start - 4
            out[start + 4 : data] = ((1 << (8 * w - w + 1)) - 1).to_bytes(w, "big")
    return bytes(out)


# -- fixtures -----------------------------------------------------------------------------------


def _make(kind: str, tmp: Path) -> Path:
    """Write one fixture clip into tmp and return its path."""
    out = tmp / {"webm_vp9_opus": "a.webm", "live_webm": "live.webm"}.get(kind, f"{kind}.mkv")
    tags = ["-metadata", "title=Orig Title", "-metadata", "comment=keep me"]
    if kind == "mkv_h264_aac":
        ffmpeg(*SRC, *SINE, "-t", "2", *X264, "-c:a", "aac", *tags, str(out))
    elif kind == "webm_vp9_opus":
        ffmpeg(*SRC, *SINE, "-t", "2", *VP9, "-c:a", "libopus", *tags, str(out))
    elif kind == "mkv_av1":
        encoders = run(FFMPEG, "-hide_banner", "-encoders").stdout
        if "libsvtav1" not in encoders:
            pytest.skip("ffmpeg has no libsvtav1 encoder")
        ffmpeg("-f", "lavfi", "-i", "testsrc2=size=64x64:rate=10", "-t", "1", "-c:v",
               "libsvtav1", "-preset", "12", "-g", "5", *tags, str(out))  # fmt: skip
    elif kind == "mkv_with_aigc":  # global AIGC, a lower-case per-track one, a nested one
        ffmpeg(*SRC, "-t", "2", *X264, *tags, "-metadata", 'AIGC={"Label":"2"}',
               "-metadata:s:v:0", "aigc=stray", str(out))  # fmt: skip
        if MKVPROPEDIT:
            xml = tmp / "tags.xml"
            xml.write_text(  # replaces the global tags: the COMMENT and the AIGC come again
                '<?xml version="1.0"?><Tags><Tag><Targets><TargetTypeValue>50</TargetTypeValue>'
                "</Targets><Simple><Name>COMMENT</Name><String>keep me</String></Simple>"
                '<Simple><Name>AIGC</Name><String>{"Label":"2"}</String></Simple>'
                "<Simple><Name>ARTIST</Name><String>someone</String><Simple>"
                "<Name>AIGC</Name><String>nested</String></Simple></Simple></Tag></Tags>"
            )
            run(MKVPROPEDIT, "-q", str(out), "--tags", f"global:{xml}")
    elif kind == "mkvmerge":
        if MKVMERGE is None:
            pytest.skip("mkvmerge is not installed")
        src = tmp / "src.mkv"
        ffmpeg(*SRC, *SINE, "-t", "2", *X264, "-c:a", "aac", *tags, str(src))
        run(MKVMERGE, "-q", "-o", str(out), str(src))
    elif kind == "live_webm":  # -live to a pipe: unknown-size Segment; Clusters made unknown
        r = subprocess.run([FFMPEG, "-v", "error", *SRC, "-t", "2", *VP9, *tags, "-live", "1",
                            "-f", "webm", "-"], capture_output=True, check=True)  # fmt: skip
        out.write_bytes(make_live(r.stdout))
    return out


KINDS = ["mkv_h264_aac", "webm_vp9_opus", "mkv_av1", "mkv_with_aigc", "mkvmerge", "live_webm"]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Lazily made fixture clips by kind (each made once per module)."""
    tmp = tmp_path_factory.mktemp("mkv")

    class Clips(dict):
        def __missing__(self, kind: str) -> Path:
            self[kind] = _make(kind, tmp)
            return self[kind]

    return Clips()


def ffprobe_json(path: Path, *what: str) -> dict:
    """ffprobe's JSON for the file; its stderr (at level error) must be empty."""
    r = run(FFPROBE, "-v", "error", *what, "-of", "json", str(path))
    assert r.stderr == "", r.stderr
    return json.loads(r.stdout)


def decoded_md5(path: Path) -> dict[str, str]:
    """md5 of every decoded frame's planes, per stream type, with PyAV."""
    digests = {}
    with av.open(str(path)) as c:
        for s in c.streams:
            if s.type not in ("video", "audio"):
                continue
            h = hashlib.md5()
            with av.open(str(path)) as c2:
                for frame in c2.decode(c2.streams[s.index]):
                    h.update(frame.to_ndarray().tobytes())  # not planes: line padding is junk
            digests[s.type] = h.hexdigest()
    return digests


def label_file(src: Path, dst: Path, label: str = LABEL) -> tuple[bytes, bytes]:
    """Label src into dst; return (original bytes, labeled bytes)."""
    data = src.read_bytes()
    out = parse(data, src.name).with_label(label)
    dst.write_bytes(out)
    return data, out


# -- the labeled file, seen by every reader -----------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_label_read_everywhere(kind: str, clips: dict, tmp_path: Path) -> None:
    src = clips[kind]
    dst = tmp_path / f"labeled{src.suffix}"
    data, out = label_file(src, dst)
    before, after = parse(data), parse(out)
    assert [c.text for c in after.carriers] == [LABEL]
    assert after.carriers[0].kind == "matroska-simpletag"
    assert formats.essence_digest(before) == formats.essence_digest(after)
    assert after.doctype == before.doctype == ("webm" if src.suffix == ".webm" else "matroska")
    assert (after.width, after.height, after.kind) == (64, 64 if kind == "mkv_av1" else 48, "video")
    check_offsets(out)

    fmt = ffprobe_json(dst, "-show_format")["format"]
    assert fmt["tags"]["AIGC"] == LABEL
    if kind != "live_webm":  # ffmpeg cannot put a title into a live WebM's Info
        assert fmt["tags"]["title"] == "Orig Title"
        assert fmt["tags"].get("comment", fmt["tags"].get("COMMENT")) == "keep me"
    with av.open(str(dst)) as c:
        assert c.metadata["AIGC"] == LABEL
    assert decoded_md5(dst) == decoded_md5(src)
    assert run(FFMPEG, "-v", "error", "-i", str(dst), "-f", "null", "-").stderr == ""
    if kind == "mkvmerge":  # mkvmerge leaves kilobytes of Void: the label fits, nothing moves
        clusters = lambda d: [e[1] for e in top_level(d)[1] if e[0] == 0x1F43B675]  # noqa: E731
        assert clusters(out) == clusters(data) and len(out) < len(data)
    if MKVMERGE:
        ident = json.loads(run(MKVMERGE, "-J", str(dst)).stdout)
        assert ident["errors"] == [] and ident["warnings"] == []
        assert ident["container"]["recognized"] and ident["container"]["supported"]
    if MKVEXTRACT:
        xml = run(MKVEXTRACT, str(dst), "tags", "-").stdout
        assert "<Name>AIGC</Name>" in xml and xml.count("AIGC") == 1
        assert "mkv-0001" in xml
    if EXIFTOOL:
        meta = json.loads(run(EXIFTOOL, "-j", "-Aigc", str(dst)).stdout)[0]
        assert meta["Aigc"] == LABEL


def test_existing_aigc_carriers_found_and_replaced(clips: dict, tmp_path: Path) -> None:
    src = clips["mkv_with_aigc"]
    c = parse(src.read_bytes())
    texts = sorted(x.text for x in c.carriers)
    expected = ['{"Label":"2"}', "stray"] + (["nested"] if MKVPROPEDIT else [])
    assert texts == sorted(expected)
    assert any("track UID" in x.location for x in c.carriers)
    assert all(" at 0x" in x.location and x.location.startswith("Tags[") for x in c.carriers)
    _, out = label_file(src, tmp_path / "x.mkv")
    dst = tmp_path / "x.mkv"
    tags = ffprobe_json(dst, "-show_format", "-show_streams")
    assert tags["format"]["tags"]["AIGC"] == LABEL
    assert tags["format"]["tags"]["title"] == "Orig Title"
    if MKVPROPEDIT:
        assert tags["format"]["tags"]["ARTIST"] == "someone"  # the nested AIGC's parent stays
    assert all("aigc" not in k.lower() for s in tags["streams"] for k in s.get("tags", {}))
    assert "ENCODER" in tags["streams"][0]["tags"]  # the track tag lost only its AIGC


def test_relabel_replaces_in_place(clips: dict, tmp_path: Path) -> None:
    src = clips["mkv_h264_aac"]
    _, once = label_file(src, tmp_path / "1.mkv")
    twice = parse(once).with_label(LABEL2)
    assert [c.text for c in parse(twice).carriers] == [LABEL2]
    assert len(twice) == len(once)  # the headroom Void took the longer label: nothing moved
    clusters = [e[1:] for e in top_level(once)[1] if e[0] == 0x1F43B675]
    assert clusters == [e[1:] for e in top_level(twice)[1] if e[0] == 0x1F43B675]
    (tmp_path / "2.mkv").write_bytes(twice)
    assert ffprobe_json(tmp_path / "2.mkv", "-show_format")["format"]["tags"]["AIGC"] == LABEL2


def test_clusters_move_with_cues(clips: dict, tmp_path: Path) -> None:
    """ffmpeg leaves little Void: the Clusters move, Cues follow, and seeking still works."""
    src = clips["mkv_h264_aac"]
    data, out = label_file(src, tmp_path / "l.mkv")
    first = lambda d: next(e[1] for e in top_level(d)[1] if e[0] == 0x1F43B675)  # noqa: E731
    assert first(out) > first(data)
    check_offsets(out)
    for path in (src, tmp_path / "l.mkv"):
        with av.open(str(path)) as c:
            c.seek(1_500_000, any_frame=False)  # microseconds: uses the Cues
            frame = next(c.decode(video=0))
            h = hashlib.md5(frame.to_ndarray().tobytes()).hexdigest()
            if path == src:
                want = (frame.pts, h)
            else:
                assert (frame.pts, h) == want


def codec_private(d: bytes) -> tuple[int, int]:
    """(data, end) of the first CodecPrivate in a TrackEntry, found by this test's walker."""
    _, elements = top_level(d)
    tracks = next(e for e in elements if e[0] == 0x1654AE6B)
    for eid, data, end in children(d, tracks[2], tracks[3]):
        for cid, cdata, cend in children(d, data, end) if eid == 0xAE else []:
            if cid == 0x63A2 and cend > cdata:
                return cdata, cend
    raise AssertionError("no CodecPrivate")


@pytest.mark.parametrize("kind", ["mkv_h264_aac", "webm_vp9_opus"])
def test_one_byte_of_codec_private_changes_the_essence(kind: str, clips: dict) -> None:
    """CodecPrivate (avcC, OpusHead) decides how every frame decodes: it is essence."""
    data = clips[kind].read_bytes()
    start, end = codec_private(data)
    at = (start + end) // 2
    edited = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]
    before = parse(data)
    assert data[start:end] in [bytes(p) for p in before.essence()]
    assert formats.essence_digest(parse(edited)) != formats.essence_digest(before)


def test_mkvpropedit_edit_keeps_essence(clips: dict, tmp_path: Path) -> None:
    """Info and TrackEntry metadata (title, track name, language, flags) are not essence."""
    if MKVPROPEDIT is None:
        pytest.skip("mkvpropedit is not installed")
    dst = tmp_path / "e.mkv"
    _, out = label_file(clips["mkv_h264_aac"], dst)
    run(MKVPROPEDIT, "-q", str(dst), "--edit", "info", "--set", "title=Edited")
    edited = parse(dst.read_bytes())
    assert dst.read_bytes() != out
    assert formats.essence_digest(edited) == formats.essence_digest(parse(out))
    run(MKVPROPEDIT, "-q", str(dst), "--edit", "track:v1", "--set", "name=Video",
        "--set", "language=fre", "--set", "flag-default=0")  # fmt: skip
    edited = parse(dst.read_bytes())
    assert ffprobe_json(dst, "-show_streams")["streams"][0]["tags"]["title"] == "Video"
    assert formats.essence_digest(edited) == formats.essence_digest(parse(out))
    assert [c.text for c in edited.carriers] == [LABEL]


def test_attributes_and_registry(clips: dict) -> None:
    data = clips["webm_vp9_opus"].read_bytes()
    c = formats.parse(data, "a.webm")  # the module registers itself on import
    assert isinstance(c, matroska.MatroskaFile)
    assert (c.format, c.doctype, c.extension, c.mime) == ("matroska", "webm", ".webm",
                                                          "video/webm")  # fmt: skip
    assert 1.9 < c.duration < 2.2 and c.frames == 0 and c.xmp is None
    assert matroska.accept(data[:64]) and not matroska.accept(b"\x89PNG\r\n\x1a\n")


def test_mmap_input_and_parts_are_slices(clips: dict) -> None:
    path = clips["mkv_h264_aac"]
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        c = parse(mm)  # type: ignore[arg-type]
        parts = c.label_parts(LABEL)
        biggest = max(parts, key=len)
        assert isinstance(biggest, memoryview)  # the Clusters are not copied
        assert b"".join(parts) == parse(path.read_bytes()).with_label(LABEL)
        digest = formats.essence_digest(c)
        del parts, biggest, c  # release the views before the map closes
    assert digest == formats.essence_digest(parse(path.read_bytes()))


def test_live_file_cut_between_clusters_parses(clips: dict) -> None:
    data = clips["live_webm"].read_bytes()
    seg, elements = top_level(data)
    clusters = [e for e in elements if e[0] == 0x1F43B675]
    assert all(e[4] for e in clusters) and len(clusters) >= 2
    cut = parse(data[: clusters[-1][1]])
    assert len(list(cut.essence())) == 3 + len(clusters) - 1  # one track's codec setup, Clusters
    assert [c.text for c in parse(cut.with_label(LABEL)).carriers] == [LABEL]


def test_tags_between_clusters(clips: dict, tmp_path: Path) -> None:
    """A Tags element between two Clusters becomes a Void of its size: the Clusters stay put."""
    data = clips["live_webm"].read_bytes()
    _, elements = top_level(data)
    second = [e for e in elements if e[0] == 0x1F43B675][1][1]
    simple = b"\x45\xa3\x84AIGC" + b"\x44\x87\x83mid"
    tag = b"\x63\xc0\x80" + b"\x67\xc8" + bytes([0x80 | len(simple)]) + simple
    tags = b"\x12\x54\xc3\x67" + bytes([0x80 | len(tag) + 3]) + b"\x73\x73"
    tags += bytes([0x80 | len(tag)]) + tag
    src = data[:second] + tags + data[second:]
    c = parse(src)
    assert sorted(x.text for x in c.carriers) == ["mid"]
    out = c.with_label(LABEL)
    assert [x.text for x in parse(out).carriers] == [LABEL]
    assert formats.essence_digest(parse(out)) == formats.essence_digest(c)
    clusters = lambda d: [e[1] for e in top_level(d)[1] if e[0] == 0x1F43B675]  # noqa: E731
    (a1, a2), (b1, b2) = clusters(src), clusters(out)
    assert b2 - b1 == a2 - a1  # the middle kept its length
    dst = tmp_path / "mid.webm"
    dst.write_bytes(out)
    assert ffprobe_json(dst, "-show_format")["format"]["tags"]["AIGC"] == LABEL
    (tmp_path / "src.webm").write_bytes(src)
    assert decoded_md5(dst) == decoded_md5(tmp_path / "src.webm")


def test_audio_only(tmp_path: Path) -> None:
    src = tmp_path / "a.mka"
    ffmpeg(*SINE, "-t", "1", "-c:a", "aac", "-metadata", "title=Song", str(src))
    c = parse(src.read_bytes(), "a.mka")
    assert (c.kind, c.extension, c.mime, c.width, c.height) == ("audio", ".mka",
                                                                "audio/x-matroska", 0, 0)
    dst = tmp_path / "l.mka"
    dst.write_bytes(c.with_label(LABEL))
    tags = ffprobe_json(dst, "-show_format")["format"]["tags"]
    assert (tags["title"], tags["AIGC"]) == ("Song", LABEL)
    assert decoded_md5(dst) == decoded_md5(src)


# -- metadata_from: a re-encoded file gets the original's metadata ------------------------------


def _reencode(src: Path, dst: Path) -> None:
    """Decode the video and encode it again with PyAV (what the visible-label pipeline does)."""
    with av.open(str(src)) as i, av.open(str(dst), "w") as o:
        s = o.add_stream("libx264", rate=10, options={"preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for frame in i.decode(video=0):
            frame.pict_type = av.video.frame.PictureType.NONE
            for p in s.encode(frame):
                o.mux(p)
        for p in s.encode(None):
            o.mux(p)


def test_metadata_from_original(tmp_path: Path) -> None:
    chapters = tmp_path / "ch.txt"
    chapters.write_text(";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=1000\n"
                        "title=Intro\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=1000\nEND=2000\n"
                        "title=Main\n")  # fmt: skip
    note = tmp_path / "note.txt"
    note.write_text("attached")
    orig = tmp_path / "orig.mkv"
    ffmpeg(*SRC, "-i", str(chapters), "-t", "2", "-map", "0", "-map_chapters", "1", *X264,
           "-attach", str(note), "-metadata:s:t", "mimetype=text/plain",
           "-metadata", "title=Orig Title", "-metadata", "comment=keep me",
           "-metadata", "AIGC=old", str(orig))  # fmt: skip
    new = tmp_path / "new.mkv"
    _reencode(orig, new)
    original, fresh = parse(orig.read_bytes()), parse(new.read_bytes())
    out = fresh.with_label(LABEL, metadata_from=original)
    dst = tmp_path / "out.mkv"
    dst.write_bytes(out)
    labeled = parse(out)
    assert [c.text for c in labeled.carriers] == [LABEL]
    assert formats.essence_digest(labeled) == formats.essence_digest(fresh)
    check_offsets(out)
    probe = ffprobe_json(dst, "-show_format", "-show_chapters", "-show_streams")
    assert probe["format"]["tags"]["title"] == "Orig Title"
    assert probe["format"]["tags"]["COMMENT"] == "keep me"
    assert probe["format"]["tags"]["AIGC"] == LABEL
    assert [c["tags"]["title"] for c in probe["chapters"]] == ["Intro", "Main"]
    attachment = [s for s in probe["streams"] if s["codec_type"] == "attachment"]
    assert attachment[0]["tags"]["filename"] == "note.txt"
    assert decoded_md5(dst)["video"] == decoded_md5(new)["video"]
    if MKVMERGE:
        ident = json.loads(run(MKVMERGE, "-J", str(dst)).stdout)
        assert ident["errors"] == [] and len(ident["attachments"]) == 1
    # into WebM: chapters and tags come, attachments cannot (WebM has none)
    webm = tmp_path / "new.webm"
    ffmpeg(*SRC, "-t", "1", *VP9, str(webm))
    out = parse(webm.read_bytes(), "new.webm").with_label(LABEL, metadata_from=original)
    (tmp_path / "out.webm").write_bytes(out)
    probe = ffprobe_json(tmp_path / "out.webm", "-show_chapters", "-show_streams",
                         "-show_format")  # fmt: skip
    assert len(probe["chapters"]) == 2 and probe["format"]["tags"]["AIGC"] == LABEL
    assert [s["codec_type"] for s in probe["streams"]] == ["video"]
    chapters = next(e for e in top_level(out)[1] if e[0] == 0x1043A770)
    assert out[chapters[2]] != 0xBF  # WebM has no CRC-32 elements: dropped from the copy
    if MKVMERGE:
        assert json.loads(run(MKVMERGE, "-J", str(tmp_path / "out.webm")).stdout)["errors"] == []


def test_metadata_from_other_format_refused(clips: dict) -> None:
    png = formats.parse(
        b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\1\0\0\0\1\x08\0\0\0\0:~\x9bU"
        b"\0\0\0\nIDATx\x9cc`\0\0\0\2\0\1H\xaf\xa4q\0\0\0\0IEND\xaeB`\x82", "p.png"
    )  # fmt: skip
    with pytest.raises(PolicyError):
        parse(clips["mkv_h264_aac"].read_bytes()).with_label(LABEL, metadata_from=png)


# -- bad input ----------------------------------------------------------------------------------


def _only_corrupt(data: bytes, limits: Limits = DEFAULT_LIMITS) -> LabelkitError | None:
    """Parse (and label): any failure must be a LabelkitError naming the file."""
    try:
        parse(data, "bad.mkv", limits).with_label(LABEL)
    except LabelkitError as exc:
        assert "bad.mkv" in str(exc)
        return exc
    return None


@pytest.mark.parametrize("kind", ["mkv_h264_aac", "live_webm"])
def test_truncated_files_raise_corrupt(kind: str, clips: dict) -> None:
    data = clips[kind].read_bytes()
    _, elements = top_level(data)
    last = elements[-1]
    cuts = [3, 20, 50, 200, len(data) // 3, len(data) // 2, last[2] + 5, len(data) - 1]
    # In a live file, a cut between two blocks leaves a whole (shorter) stream: not a case here.
    boundaries = {b for e in elements if e[4] for _, _, b in children(data, e[2], e[3])}
    cuts = [c + (c in boundaries) for c in cuts]
    for cut in cuts:
        exc = _only_corrupt(data[:cut])
        assert isinstance(exc, CorruptInput), (cut, exc)
    assert "truncated" in str(_only_corrupt(data[: cuts[5]]))


def test_corrupt_size_fields(clips: dict) -> None:
    data = clips["mkv_h264_aac"].read_bytes()
    _, elements = top_level(data)
    tags = next(e for e in elements if e[0] == 0x1254C367)
    cluster = next(e for e in elements if e[0] == 0x1F43B675)
    size_at = tags[1] + 4
    width = tags[2] - size_at
    cases = {
        "zero size byte": data[:size_at] + b"\0" + data[size_at + 1 :],
        "2**56-2 bytes": data[:size_at] + b"\x01" + (2**56 - 2).to_bytes(7, "big")
        + data[tags[2] :],
        "unknown-size Tags": data[:size_at] + b"\xff" * 1 + data[tags[2] :]
        if width == 1 else data[:size_at] + (b"\x7f\xff" if width == 2 else b"\x01" + b"\xff" * 7)
        + data[tags[2] :],
        "bad ID byte": data[: cluster[1]] + b"\x05" + data[cluster[1] + 1 :],
        "child past parent": data.replace(b"\x45\xa3\x87COMMENT", b"\x45\xa3\xfeCOMMENT"),
        "segment size lie": data[:0x2C] + b"\x01" + (2**40).to_bytes(7, "big") + data[0x34:],
    }  # fmt: skip
    for what, bad in cases.items():
        exc = _only_corrupt(bad)
        assert isinstance(exc, CorruptInput), (what, exc)
    assert "past the end" in str(_only_corrupt(cases["2**56-2 bytes"]))


def test_random_corruption_only_raises_labelkit_errors(clips: dict) -> None:
    """Bytes changed, dropped or cut anywhere: a LabelkitError or a labeled file, nothing else."""
    import random

    rng = random.Random(45438)
    data = clips["mkv_with_aigc"].read_bytes()
    before = formats.essence_digest(parse(data))
    for _ in range(300):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(bad))
            if rng.random() < 0.7:
                bad[at] = rng.choice([0, 1, 0x40, 0x7F, 0x80, 0xFF, rng.randrange(256)])
            else:
                del bad[at : at + rng.randint(1, 40)]
        try:
            c = parse(bytes(bad))
            out = parse(c.with_label(LABEL))
        except LabelkitError:
            continue
        assert [x.text for x in out.carriers] == [LABEL]
        assert formats.essence_digest(out) == formats.essence_digest(c)
    assert formats.essence_digest(parse(data)) == before


def test_limits_and_hostile_tags(clips: dict) -> None:
    data = clips["mkv_h264_aac"].read_bytes()
    assert isinstance(_only_corrupt(data, Limits(max_chunks=5)), LimitExceeded)
    assert isinstance(_only_corrupt(data, Limits(max_pixels=64 * 47)), LimitExceeded)
    assert isinstance(_only_corrupt(data, Limits(max_metadata_bytes=64)), LimitExceeded)
    # SimpleTags nested 100 deep inside a Tags element appended to the Segment
    inner = b""
    for _ in range(100):
        body = b"\x45\xa3\x81X" + inner
        inner = b"\x67\xc8" + _ebml.size_bytes(len(body)) + body
    tag = b"\x73\x73" + _ebml.size_bytes(len(inner)) + inner
    tags = b"\x12\x54\xc3\x67" + _ebml.size_bytes(len(tag)) + tag
    seg, _ = top_level(data)
    size = int.from_bytes(data[seg - 8 : seg], "big") & ((1 << 56) - 1)
    hostile = data[: seg - 8] + ((1 << 56) | (size + len(tags))).to_bytes(8, "big")
    hostile += data[seg:] + tags
    exc = _only_corrupt(hostile)
    assert isinstance(exc, CorruptInput) and "nested" in str(exc)


def test_not_matroska(clips: dict) -> None:
    data = clips["mkv_h264_aac"].read_bytes()
    other = data.replace(b"\x42\x82\x88matroska", b"\x42\x82\x88notmkv!!", 1)
    with pytest.raises(UnsupportedFormat, match="DocType"):
        parse(other)
    with pytest.raises(CorruptInput):
        parse(b"RIFF\0\0\0\0WAVE")
    chained = data + data
    with pytest.raises(LabelkitError):
        parse(chained)
