"""MP4/MOV handler: the mdta AIGC label as ffprobe, exiftool and PyAV read it; moov surgery.

Fixtures are tiny clips (64x64, 10 frames) made by ffmpeg, PyAV and exiftool at run time. The
checks use those independent readers and a small box walker of this file's own, not only
labelkit's parser.
"""

from __future__ import annotations

import hashlib
import io
import json
import mmap
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from labelkit import formats
from labelkit.errors import CorruptInput, LabelkitError, LimitExceeded, PolicyError
from labelkit.formats import isobmff
from labelkit.limits import DEFAULT_LIMITS, Limits

from .formats.samples import LABEL, LABEL2, OLD

av = pytest.importorskip("av")
FFMPEG, FFPROBE, EXIFTOOL = (shutil.which(n) for n in ("ffmpeg", "ffprobe", "exiftool"))
pytestmark = pytest.mark.skipif(not (FFMPEG and FFPROBE), reason="needs ffmpeg and ffprobe")

TC260 = "http://www.tc260.org.cn/ns/AIGC/1.0/"
VIDEO = ["-f", "lavfi", "-i", "testsrc2=size=64x64:rate=10"]
AUDIO = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
X264 = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "3", "-t", "1"]
ITUNES = ["-metadata", "title=Clip Title", "-metadata", "comment=keep this comment"]
RECIPES = {
    "plain.mp4": VIDEO + X264,
    "itunes.mp4": VIDEO + X264 + ITUNES,
    "faststart.mp4": VIDEO + X264 + ITUNES + ["-movflags", "+faststart"],
    "audio.mp4": VIDEO + AUDIO + X264 + ["-c:a", "aac"] + ITUNES,
    "clip.mov": VIDEO + X264 + ITUNES,
    "mdta.mp4": VIDEO + X264 + ["-movflags", "use_metadata_tags+faststart",
                                "-metadata", "title=mdta title", "-metadata", f"AIGC={OLD}"],
    "frag.mp4": VIDEO + X264 + ["-movflags", "frag_keyframe+empty_moov+default_base_moof"],
    "fragbase.mp4": VIDEO + X264 + ["-movflags", "frag_keyframe"],  # explicit tfhd offsets, mfra
    "sound.m4a": AUDIO + ["-t", "1", "-c:a", "aac"],
}  # fmt: skip
EXIFTOOL_CONFIG = """%Image::ExifTool::UserDefined = (
    'Image::ExifTool::XMP::Main' => {
        TC260 => { SubDirectory => { TagTable => 'Image::ExifTool::UserDefined::TC260' } },
    },
);
%Image::ExifTool::UserDefined::TC260 = (
    GROUPS => { 0 => 'XMP', 1 => 'XMP-TC260', 2 => 'Image' },
    NAMESPACE => { 'TC260' => 'http://www.tc260.org.cn/ns/AIGC/1.0/' },
    WRITABLE => 'string',
    AIGC => { },
);
1;
"""


# -- independent helpers --------------------------------------------------------------------------
def boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int, int]]:
    """(type, start, payload start, end) of the boxes in a range: this test's own walker."""
    end = len(data) if end is None else end
    out = []
    while start + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, start)
        head = 8
        if size == 1:
            size, head = struct.unpack_from(">Q", data, start + 8)[0], 16
        elif size == 0:
            size = end - start
        out.append((kind, start, start + head, start + size))
        start += size
    return out


def child(data: bytes, path: str, start: int = 0, end: int | None = None):
    """The first box at a slash path such as "moov/udta/meta" (meta: an ISO full box)."""
    found = None
    for name in path.split("/"):
        found = next((b for b in boxes(data, start, end) if b[0] == name.encode()), None)
        if found is None:
            return None
        start, end = found[2] + (4 if name == "meta" and data[found[2] + 4 : found[2] + 8] != b"hdlr"
                                 else 0), found[3]  # fmt: skip
    return found


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60)


def ffprobe(path: Path) -> tuple[dict, str]:
    """Format tags as ffprobe reads them, and everything it printed on stderr."""
    r = run(FFPROBE, "-v", "error", "-show_format", "-show_streams", "-of", "json", str(path))
    return json.loads(r.stdout)["format"].get("tags", {}), r.stderr


def exiftool(path: Path) -> dict:
    if not EXIFTOOL:
        pytest.skip("exiftool is not installed (apt-get install libimage-exiftool-perl)")
    r = run(EXIFTOOL, "-j", "-a", "-G1", "-s", str(path))
    return json.loads(r.stdout)[0]


def decoded(path: Path | bytes) -> list[str]:
    """md5 of every decoded video frame's planes and audio frame's samples, in decode order."""
    src = io.BytesIO(path) if isinstance(path, bytes) else str(path)
    with av.open(src) as c:
        return [hashlib.md5(f.to_ndarray().tobytes()).hexdigest() for f in c.decode(*c.streams)]


def pyav_tags(path: Path) -> dict:
    with av.open(str(path)) as c:
        return dict(c.metadata)


def labeled(path: Path, label: str = LABEL, **kw) -> tuple[isobmff.Mp4File, bytes]:
    data = path.read_bytes()
    parsed = isobmff.parse(data, path.name, DEFAULT_LIMITS)
    return parsed, parsed.with_label(label, **kw)


def xmp_packet(title: str, aigc: str | None) -> bytes:
    prop = f"<TC260:AIGC>{aigc.replace('&', '&amp;')}</TC260:AIGC>" if aigc else ""
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-'
        'rdf-syntax-ns#"><rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/"'
        f' xmlns:TC260="{TC260}"><dc:title><rdf:Alt><rdf:li xml:lang="x-default">{title}</rdf:li>'
        f"</rdf:Alt></dc:title>{prop}</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()


def qt_meta(items: list[tuple[bytes, bytes]]) -> bytes:
    """A QuickTime (no version/flags) meta atom with hdlr mdta, keys and an indexed ilst."""
    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(payload), kind) + payload

    keys = b"".join(struct.pack(">I", 8 + len(k)) + b"mdta" + k for k, _ in items)
    ilst = b"".join(box(struct.pack(">I", i), box(b"data", struct.pack(">II", 1, 0) + v))
                    for i, (_, v) in enumerate(items, 1))  # fmt: skip
    return box(b"meta", box(b"hdlr", bytes(8) + b"mdta" + bytes(13))
               + box(b"keys", bytes(4) + struct.pack(">I", len(items)) + keys) + box(b"ilst", ilst))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """clip(name) -> path of a fixture file, made on first use."""
    root = tmp_path_factory.mktemp("isobmff")
    made: dict[str, Path] = {}

    def make(name: str) -> Path:
        if name in made:
            return made[name]
        path = root / name
        if name in RECIPES:
            r = run(FFMPEG, "-v", "error", "-y", *RECIPES[name], str(path))
            assert r.returncode == 0, r.stderr
        elif name == "xmp.mp4":  # exiftool: moov moved to the front, a top-level XMP uuid box
            config = root / "tc260.config"
            config.write_text(EXIFTOOL_CONFIG)
            shutil.copy(make("itunes.mp4"), path)
            if not EXIFTOOL:
                pytest.skip("exiftool is not installed")
            r = run(EXIFTOOL, "-config", str(config), "-overwrite_original",
                    f"-XMP-TC260:AIGC={OLD}", "-XMP-dc:Title=xmp title", str(path))  # fmt: skip
            assert r.returncode == 0, r.stderr
        elif name == "iphone.mov":  # moov/meta keys as iPhones write them, with an old label
            data = make("clip.mov").read_bytes()
            moov = child(data, "moov")
            assert moov[3] == len(data)  # moov is the last box: it can simply grow
            meta = qt_meta([(b"com.apple.quicktime.make", b"Apple"), (b"AIGC", OLD.encode()),
                            (b"com.apple.quicktime.model", b"iPhone 15")])  # fmt: skip
            head = struct.pack(">I", moov[3] - moov[1] + len(meta))
            path.write_bytes(data[: moov[1]] + head + data[moov[1] + 4 :] + meta)
        else:
            raise KeyError(name)
        made[name] = path
        return path

    return make


# -- parsing ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, brand, kind, frames",
    [("plain.mp4", "mp4", "video", 10), ("clip.mov", "mov", "video", 10),
     ("audio.mp4", "mp4", "video", 10), ("frag.mp4", "mp4", "video", 10),
     ("fragbase.mp4", "mp4", "video", 10), ("sound.m4a", "mp4", "audio", 0)],
)  # fmt: skip
def test_parse_reports_what_ffprobe_sees(clip, name, brand, kind, frames):
    path = clip(name)
    parsed = isobmff.parse(path.read_bytes(), name, DEFAULT_LIMITS)
    probe = json.loads(run(FFPROBE, "-v", "error", "-show_format", "-show_streams", "-of", "json",
                           str(path)).stdout)  # fmt: skip
    video = [s for s in probe["streams"] if s["codec_type"] == "video"]
    assert (parsed.format, parsed.brand, parsed.kind, parsed.frames) == ("mp4", brand, kind, frames)
    assert (parsed.width, parsed.height) == ((64, 64) if video else (0, 0))
    assert parsed.duration == pytest.approx(float(probe["format"]["duration"]), abs=0.05)
    assert parsed.carriers == [] and parsed.xmp is None


def test_sniffing_is_by_magic_bytes_only(clip):
    for name in ("plain.mp4", "clip.mov", "frag.mp4", "sound.m4a"):
        data = clip(name).read_bytes()
        assert isobmff.accept(data[:64])
        assert formats.parse(data, "video.png").format == "mp4"
    moov = child(clip("plain.mp4").read_bytes(), "moov")
    data = clip("plain.mp4").read_bytes()
    assert isobmff.accept(data[moov[1] : moov[1] + 64])  # an old QuickTime file starts with moov
    assert isobmff.accept(struct.pack(">I4s", 8, b"wide") + struct.pack(">I4s", 0, b"mdat"))
    heif = struct.pack(">I4s4sI", 24, b"ftyp", b"heic", 0) + b"mif1heic"
    for other in (heif, b"\x89PNG\r\n\x1a\n" + bytes(56), b"RIFF\0\0\0\0WEBPVP8 ", bytes(64)):
        assert not isobmff.accept(other)


# -- labeling: what the independent readers see ---------------------------------------------------
LABEL_CASES = ["plain.mp4", "itunes.mp4", "faststart.mp4", "audio.mp4", "clip.mov", "mdta.mp4",
               "frag.mp4", "fragbase.mp4", "sound.m4a", "xmp.mp4", "iphone.mov"]  # fmt: skip


@pytest.mark.parametrize("name", LABEL_CASES)
def test_label_is_read_by_ffprobe_exiftool_and_pyav_and_media_is_untouched(clip, name, tmp_path):
    src = clip(name)
    parsed, out = labeled(src)
    dst = tmp_path / f"out-{name}"
    dst.write_bytes(out)
    again = isobmff.parse(out, dst.name, DEFAULT_LIMITS)
    assert [(c.kind, c.text) for c in again.carriers] == [("mp4-mdta", LABEL)]
    assert formats.essence_digest(again) == formats.essence_digest(parsed)
    tags, errors = ffprobe(dst)
    assert errors == "" and tags["AIGC"] == LABEL
    assert pyav_tags(dst)["AIGC"] == LABEL
    assert exiftool(dst)["Keys:AIGC"] == LABEL
    assert decoded(dst) == decoded(src)
    assert run(FFMPEG, "-v", "error", "-i", str(dst), "-f", "null", "-").stderr == ""


@pytest.mark.parametrize("name", ["itunes.mp4", "faststart.mp4", "audio.mp4", "clip.mov"])
def test_itunes_and_quicktime_tags_survive(clip, name, tmp_path):
    src = clip(name)
    before = exiftool(src)
    dst = tmp_path / name
    dst.write_bytes(labeled(src)[1])
    tags, _ = ffprobe(dst)
    assert tags["title"] == "Clip Title"
    after = exiftool(dst)
    group = "UserData" if name.endswith(".mov") else "ItemList"
    assert after[f"{group}:Title"] == before[f"{group}:Title"] == "Clip Title"
    if group == "ItemList":
        assert tags["comment"] == after["ItemList:Comment"] == "keep this comment"
        # the iTunes meta (hdlr mdir) is kept byte-identical, the label is a second meta box
        old, new = src.read_bytes(), dst.read_bytes()
        udta_old, udta_new = child(old, "moov/udta"), child(new, "moov/udta")
        metas_old = [b for b in boxes(old, udta_old[2], udta_old[3]) if b[0] == b"meta"]
        metas_new = [b for b in boxes(new, udta_new[2], udta_new[3]) if b[0] == b"meta"]
        assert len(metas_old) == 1 and len(metas_new) == 2
        assert new[metas_new[0][1] : metas_new[0][3]] == old[metas_old[0][1] : metas_old[0][3]]
        assert b"mdirappl" in old[metas_old[0][1] : metas_old[0][3]]
        assert b"mdta" in new[metas_new[1][1] : metas_new[1][3]]


def _leaves(data: bytes, start: int, end: int, path: str = "") -> list[tuple[str, bytes]]:
    out = []
    for kind, s, p, e in boxes(data, start, end):
        name = f"{path}/{kind.decode('latin-1')}"
        if kind in (b"trak", b"mdia", b"minf", b"stbl"):
            out += _leaves(data, p, e, name)
        else:
            out.append((name, data[s:e]))
    return out


@pytest.mark.parametrize("name", ["itunes.mp4", "faststart.mp4", "audio.mp4", "fragbase.mp4"])
def test_every_other_box_is_byte_identical(clip, name):
    old = clip(name).read_bytes()
    new = labeled(clip(name))[1]
    top_old = [(k, old[p:e]) for k, _, p, e in boxes(old) if k not in (b"moov", b"moof", b"mfra")]
    top_new = [(k, new[p:e]) for k, _, p, e in boxes(new) if k not in (b"moov", b"moof", b"mfra")]
    assert top_old == top_new  # ftyp, free, mdat payloads
    moov_old, moov_new = child(old, "moov"), child(new, "moov")
    shifted = ("/stco", "/co64")  # only when the moov precedes the media data
    keep_old = [x for x in _leaves(old, moov_old[2], moov_old[3]) if not x[0].endswith(shifted)
                and x[0] != "/udta"]  # fmt: skip
    keep_new = [x for x in _leaves(new, moov_new[2], moov_new[3]) if not x[0].endswith(shifted)
                and x[0] != "/udta"]  # fmt: skip
    assert keep_old == keep_new
    if moov_old[1] > child(old, "mdat")[1]:  # moov last: nothing shifted at all
        assert new[: moov_old[1]] == old[: moov_old[1]]


def test_64_bit_box_headers_are_kept(clip, tmp_path):
    """moov and udta with largesize headers (legal, rarely written): rebuilt in the same form."""
    data = clip("itunes.mp4").read_bytes()
    moov, udta = child(data, "moov"), child(data, "moov/udta")
    assert udta[3] == moov[3] == len(data)
    udta_long = struct.pack(">I4sQ", 1, b"udta", udta[3] - udta[1] + 8) + data[udta[2] : udta[3]]
    body = data[moov[2] : udta[1]] + udta_long
    wide = data[: moov[1]] + struct.pack(">I4sQ", 1, b"moov", len(body) + 16) + body
    out = isobmff.parse(wide, "wide.mp4", DEFAULT_LIMITS).with_label(LABEL)
    assert out[moov[1] : moov[1] + 8] == struct.pack(">I4s", 1, b"moov")
    assert struct.unpack_from(">Q", out, moov[1] + 8)[0] == len(out) - moov[1]
    dst = tmp_path / "wide.mp4"
    dst.write_bytes(out)
    tags, errors = ffprobe(dst)
    assert errors == "" and tags["AIGC"] == LABEL and tags["title"] == "Clip Title"
    assert exiftool(dst)["Keys:AIGC"] == LABEL
    assert [c.text for c in isobmff.parse(out, "o", DEFAULT_LIMITS).carriers] == [LABEL]


def test_quicktime_udta_terminator_stays_last(clip, tmp_path):
    """Some QuickTime writers end udta with a zero word; the new meta goes before it."""
    data = clip("clip.mov").read_bytes()
    moov, udta = child(data, "moov"), child(data, "moov/udta")
    assert udta[3] == moov[3] == len(data)
    grown = bytearray(data + bytes(4))
    for start in (moov[1], udta[1]):
        struct.pack_into(">I", grown, start, struct.unpack_from(">I", grown, start)[0] + 4)
    out = isobmff.parse(bytes(grown), "term.mov", DEFAULT_LIMITS).with_label(LABEL)
    assert out.endswith(LABEL.encode() + bytes(4))
    dst = tmp_path / "term.mov"
    dst.write_bytes(out)
    tags, errors = ffprobe(dst)
    assert errors == "" and tags["AIGC"] == LABEL and tags["title"] == "Clip Title"
    info = exiftool(dst)
    assert info["Keys:AIGC"] == LABEL and info["UserData:Title"] == "Clip Title"


def test_an_existing_mdta_label_is_replaced_in_its_slot(clip):
    src = clip("mdta.mp4")
    parsed, out = labeled(src)
    assert [(c.kind, c.text) for c in parsed.carriers] == [("mp4-mdta", OLD)]

    def keys(data):
        meta = child(data, "moov/udta/meta")
        k = next(b for b in boxes(data, meta[2] + 4, meta[3]) if b[0] == b"keys")
        count, pos, names = struct.unpack_from(">I", data, k[2] + 4)[0], k[2] + 8, []
        for _ in range(count):
            size = struct.unpack_from(">I", data, pos)[0]
            names.append(data[pos + 8 : pos + size])
            pos += size
        return names

    assert keys(out) == keys(src.read_bytes())  # [title, AIGC, encoder]: same slots
    assert out.count(b"mdta") == src.read_bytes().count(b"mdta")  # no second keys table
    assert ffprobe_tags_of(out)["title"] == "mdta title"


def ffprobe_tags_of(data: bytes) -> dict:
    r = subprocess.run([FFPROBE, "-v", "error", "-show_format", "-of", "json", "-"],
                       input=data, capture_output=True, timeout=60)  # fmt: skip
    return json.loads(r.stdout)["format"].get("tags", {})


def test_an_iphone_keys_table_gets_the_label_and_no_second_table_is_added(clip, tmp_path):
    src = clip("iphone.mov")
    parsed, out = labeled(src)
    assert [(c.kind, c.text) for c in parsed.carriers] == [("mp4-mdta", OLD)]
    assert out.count(b"keys") == 1  # libavformat and exiftool read only one keys table
    dst = tmp_path / "iphone.mov"
    dst.write_bytes(out)
    info = exiftool(dst)
    assert (info["Keys:Make"], info["Keys:Model"], info["Keys:AIGC"]) == ("Apple", "iPhone 15", LABEL)
    tags, _ = ffprobe(dst)
    assert tags["com.apple.quicktime.make"] == "Apple" and tags["AIGC"] == LABEL


def test_relabel_replaces(clip):
    _, once = labeled(clip("itunes.mp4"))
    twice = isobmff.parse(once, "once.mp4", DEFAULT_LIMITS).with_label(LABEL2)
    parsed = isobmff.parse(twice, "twice.mp4", DEFAULT_LIMITS)
    assert [(c.kind, c.text) for c in parsed.carriers] == [("mp4-mdta", LABEL2)]
    assert len(twice) == len(once) + len(LABEL2) - len(LABEL)
    assert ffprobe_tags_of(twice)["AIGC"] == LABEL2


def test_xmp_carrier_is_stripped_and_the_rest_of_the_packet_kept(clip, tmp_path):
    src = clip("xmp.mp4")
    parsed, out = labeled(src)
    assert [(c.kind, c.text) for c in parsed.carriers] == [("xmp-element", OLD)]
    assert parsed.xmp is not None
    dst = tmp_path / "xmp.mp4"
    dst.write_bytes(out)
    info = exiftool(dst)
    assert info["XMP-dc:Title"] == "xmp title" and "XMP-TC260:AIGC" not in info
    assert info["Keys:AIGC"] == LABEL


def test_freeform_itunes_aigc_item_is_removed(clip):
    # ffmpeg cannot write ---- items: add one (mean com.apple.iTunes, name AIGC) to the ilst.
    data = clip("itunes.mp4").read_bytes()
    moov, udta, meta = child(data, "moov"), child(data, "moov/udta"), child(data, "moov/udta/meta")
    ilst = child(data, "moov/udta/meta/ilst")
    assert moov[3] == len(data) and udta[3] == meta[3] == ilst[3] == len(data)

    def box(kind, payload):
        return struct.pack(">I4s", 8 + len(payload), kind) + payload

    item = box(b"----", box(b"mean", bytes(4) + b"com.apple.iTunes") + box(b"name", bytes(4) + b"AIGC")
               + box(b"data", struct.pack(">II", 1, 0) + OLD.encode()))  # fmt: skip
    out = bytearray(data + item)
    for start in (moov[1], udta[1], meta[1], ilst[1]):
        struct.pack_into(">I", out, start, struct.unpack_from(">I", out, start)[0] + len(item))
    parsed = isobmff.parse(bytes(out), "freeform.mp4", DEFAULT_LIMITS)
    assert [(c.kind, c.text) for c in parsed.carriers] == [("mp4-freeform", OLD)]
    result = parsed.with_label(LABEL)
    assert b"----" not in result and result.count(b"com.apple.iTunes") == 0
    assert [c.kind for c in isobmff.parse(result, "o", DEFAULT_LIMITS).carriers] == ["mp4-mdta"]
    assert ffprobe_tags_of(result)["title"] == "Clip Title"


@pytest.mark.parametrize("name, where", [("itunes.mp4", b"uuid"), ("clip.mov", b"XMP_"),
                                         ("xmp.mp4", b"uuid")])  # fmt: skip
def test_an_xmp_argument_becomes_the_movie_packet_without_a_second_label(clip, name, where, tmp_path):
    packet = xmp_packet("given title", aigc=LABEL2)
    out = labeled(clip(name), xmp=packet)[1]
    parsed = isobmff.parse(out, name, DEFAULT_LIMITS)
    assert [(c.kind, c.text) for c in parsed.carriers] == [("mp4-mdta", LABEL)]
    assert b"given title" in parsed.xmp and b"TC260:AIGC" not in parsed.xmp
    assert out.count(b"given title") == 1 and out.count(b"xmp title") == 0
    assert (child(out, "moov/udta/XMP_") if where == b"XMP_" else child(out, "uuid")) is not None
    dst = tmp_path / name
    dst.write_bytes(out)
    info = exiftool(dst)
    assert info.get("XMP-dc:Title") == "given title" and "XMP-TC260:AIGC" not in info
    assert decoded(dst) == decoded(clip(name))


# -- fragmented MP4 -------------------------------------------------------------------------------
def test_labeled_init_segment_plus_the_original_fragments_plays(tmp_path):
    frames = [np.full((64, 64, 3), (i * 23) % 256, np.uint8) for i in range(12)]
    sink = io.BytesIO()
    flags = "frag_keyframe+empty_moov+default_base_moof"
    with av.open(sink, "w", format="mp4", options={"movflags": flags}) as out:
        stream = out.add_stream("libx264", rate=10, options={"g": "4"})
        stream.width = stream.height = 64
        stream.pix_fmt = "yuv420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    whole = sink.getvalue()
    first_moof = next(b[1] for b in boxes(whole) if b[0] == b"moof")
    init, fragments = whole[:first_moof], whole[first_moof:]
    parsed = isobmff.parse(init, "init.mp4", DEFAULT_LIMITS)
    stsd = child(init, "moov/trak/mdia/minf/stbl/stsd")
    assert [bytes(p) for p in parsed.essence()] == [init[stsd[2] : stsd[3]]]  # codec setup only
    assert parsed.frames == 0
    labeled_init = b"".join(parsed.label_parts(LABEL))
    dst = tmp_path / "stream.mp4"
    dst.write_bytes(labeled_init + fragments)
    tags, errors = ffprobe(dst)
    assert errors == "" and tags["AIGC"] == LABEL
    assert decoded(dst) == decoded(whole) and len(decoded(dst)) == 12
    again = isobmff.parse(dst.read_bytes(), dst.name, DEFAULT_LIMITS)
    assert again.frames == 12 and [c.text for c in again.carriers] == [LABEL]


def test_explicit_fragment_offsets_are_shifted(clip):
    data = clip("fragbase.mp4").read_bytes()
    out = labeled(clip("fragbase.mp4"))[1]
    delta = child(out, "moov")[3] - child(data, "moov")[3]
    assert delta > 0

    def bases(d):  # (moof start, tfhd base_data_offset) pairs, and tfra moof offsets
        pairs = []
        for kind, s, p, e in boxes(d):
            if kind == b"moof":
                tfhd = child(d, "traf/tfhd", p, e)
                assert struct.unpack_from(">I", d, tfhd[2])[0] & 1
                pairs.append((s, struct.unpack_from(">Q", d, tfhd[2] + 8)[0]))
        tfra = child(d, "mfra/tfra")
        count = struct.unpack_from(">I", d, tfra[2] + 12)[0]
        v1 = d[tfra[2]] == 1
        stride = (16 if v1 else 8) + 3
        fmt, at = (">Q", 8) if v1 else (">I", 4)
        moofs = [struct.unpack_from(fmt, d, tfra[2] + 16 + i * stride + at)[0] for i in range(count)]
        return pairs, moofs

    (old_pairs, old_tfra), (new_pairs, new_tfra) = bases(data), bases(out)
    assert [b - s for s, b in new_pairs] == [b - s for s, b in old_pairs]
    assert [s for s, _ in new_pairs] == [s + delta for s, _ in old_pairs]
    assert new_tfra == [m + delta for m in old_tfra] and set(new_tfra) <= {s for s, _ in new_pairs}


def test_stco_that_would_overflow_becomes_co64(clip, tmp_path):
    """A sparse 4 GiB file: media just under 2**32, so the label's few bytes overflow stco."""
    data = clip("faststart.mp4").read_bytes()
    moov, mdat = child(data, "moov"), child(data, "mdat")
    assert moov[1] < mdat[1]
    stcos = [(s, p, e) for k, s, p, e in _walk_all(data, moov[2], moov[3]) if k == b"stco"]
    old = {s: np.frombuffer(data[p + 8 : e], ">u4").astype(np.int64) for s, p, e in stcos}
    top = max(int(v.max()) for v in old.values())
    pad = 0xFFFFFFFF - top - 16  # the last chunk ends up 16 bytes below 2**32
    head = bytearray(data[: mdat[1]])
    for s, p, e in stcos:
        head[p + 8 : e] = (old[s] + pad).astype(">u4").tobytes()
    path = tmp_path / "sparse.mp4"
    with open(path, "wb") as f:
        f.write(head + struct.pack(">I4s", pad, b"free"))
        f.seek(mdat[1] + pad)
        f.write(data[mdat[1] :])
    if os.stat(path).st_blocks * 512 > 64 << 20:
        pytest.skip("the file system does not keep sparse files")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        parsed = isobmff.parse(m, "sparse.mp4", DEFAULT_LIMITS)
        parts = parsed.label_parts(LABEL)
        new_moov = bytes(parts[1])
        assert all(isinstance(p, memoryview) and p.obj is m for p in (parts[0], parts[2]))
        assert sum(len(p) for p in parts) > 1 << 32
        del parts, parsed
    assert new_moov[4:8] == b"moov" and b"stco" not in new_moov
    co64 = [(p, e) for k, s, p, e in _walk_all(new_moov, 8, len(new_moov)) if k == b"co64"]
    assert len(co64) == len(stcos)
    delta = len(new_moov) - (moov[3] - moov[1])
    for (p, e), (s, _, _) in zip(co64, stcos):
        values = np.frombuffer(new_moov[p + 8 : e], ">u8").astype(np.int64)
        assert np.array_equal(values, old[s] + pad + delta)
        assert values.max() > 0xFFFFFFFF


def _walk_all(data: bytes, start: int, end: int):
    for b in boxes(data, start, end):
        yield b
        if b[0] in (b"trak", b"mdia", b"minf", b"stbl"):
            yield from _walk_all(data, b[2], b[3])


# -- the original's metadata after a re-encode ------------------------------------------------------
def reencode(src: Path, dst: Path) -> None:
    """What the video pipeline does: decode, re-encode with PyAV into a fresh MP4."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream("libx264", rate=10)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        for frame in inp.decode(vin):
            frame.pict_type = av.video.frame.PictureType.NONE
            for packet in vout.encode(frame):
                out.mux(packet)
        for packet in vout.encode(None):
            out.mux(packet)


@pytest.mark.parametrize("name", ["xmp.mp4", "mdta.mp4", "clip.mov"])
def test_metadata_from_carries_the_original_movie_metadata(clip, name, tmp_path):
    src = clip(name)
    new_path = tmp_path / f"reencoded{src.suffix}"
    reencode(src, new_path)
    original = isobmff.parse(src.read_bytes(), src.name, DEFAULT_LIMITS)
    new = isobmff.parse(new_path.read_bytes(), new_path.name, DEFAULT_LIMITS)
    out = new.with_label(LABEL, metadata_from=original)
    result = isobmff.parse(out, "out", DEFAULT_LIMITS)
    assert [(c.kind, c.text) for c in result.carriers] == [("mp4-mdta", LABEL)]
    assert formats.essence_digest(result) == formats.essence_digest(new)
    dst = tmp_path / f"out{src.suffix}"
    dst.write_bytes(out)
    assert decoded(dst) == decoded(new_path)
    tags, errors = ffprobe(dst)
    assert errors == "" and tags["AIGC"] == LABEL
    info = exiftool(dst)
    if name == "xmp.mp4":
        assert tags["title"] == info["ItemList:Title"] == "Clip Title"
        assert info["XMP-dc:Title"] == "xmp title" and "XMP-TC260:AIGC" not in info
    elif name == "mdta.mp4":
        assert tags["title"] == info["Keys:Title"] == "mdta title"
        assert out.count(b"keys") == 1
    else:
        assert tags["title"] == info["UserData:Title"] == "Clip Title"
    # the tracks are the new file's own (its sample tables), not the original's
    stsz = child(new_path.read_bytes(), "moov/trak/mdia/minf/stbl/stsz")
    assert new_path.read_bytes()[stsz[1] : stsz[3]] in out


def test_metadata_from_another_format_is_refused(clip):
    from PIL import Image

    png = io.BytesIO()
    Image.new("RGB", (8, 8)).save(png, "PNG")
    picture = formats.parse(png.getvalue(), "a.png")
    parsed = isobmff.parse(clip("plain.mp4").read_bytes(), "plain.mp4", DEFAULT_LIMITS)
    with pytest.raises(PolicyError, match="png"):
        parsed.with_label(LABEL, metadata_from=picture)


def test_label_parts_are_slices_of_an_mmap_input(clip):
    path = clip("faststart.mp4")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        parsed = isobmff.parse(m, path.name, DEFAULT_LIMITS)
        parts = parsed.label_parts(LABEL)
        essence = list(parsed.essence())
        assert all(isinstance(e, memoryview) and e.obj is m for e in essence)
        mdat_part = [p for p in parts if isinstance(p, memoryview) and p.obj is m]
        samples = essence[1:]  # after the one track's stsd
        assert mdat_part and sum(len(p) for p in mdat_part) >= sum(len(e) for e in samples)
        joined = b"".join(parts)
        del parts, essence, samples, mdat_part, parsed
    assert joined == labeled(path)[1]


# -- the essence: codec setup, then samples --------------------------------------------------------
def _digest(data: bytes) -> bytes:
    return formats.essence_digest(isobmff.parse(data, "essence.mp4", DEFAULT_LIMITS))


@pytest.mark.parametrize("name", ["audio.mp4", "frag.mp4"])
def test_one_byte_of_the_codec_configuration_changes_the_essence(clip, name):
    """A byte of the SPS in avcC (level_idc) decides how every sample decodes: it is essence."""
    data = clip(name).read_bytes()
    stsd = child(data, "moov/trak/mdia/minf/stbl/stsd")  # the video track's (the first trak)
    avcc = data.index(b"avcC", stsd[2], stsd[3]) + 4
    assert data[avcc + 5] & 0x1F == 1  # one SPS, its NAL unit after a 2-byte length
    at = avcc + 8 + 3
    edited = data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]
    assert _digest(edited) != _digest(data)
    parsed = isobmff.parse(data, name, DEFAULT_LIMITS)
    assert bytes(next(iter(parsed.essence()))) == data[stsd[2] : stsd[3]]
    assert _digest(parsed.with_label(LABEL)) == _digest(data)  # labeling keeps every stsd


@pytest.mark.parametrize("name", ["audio.mp4", "clip.mov"])
def test_an_exiftool_title_edit_keeps_the_essence(clip, name, tmp_path):
    if not EXIFTOOL:
        pytest.skip("exiftool is not installed")
    parsed, out = labeled(clip(name))
    dst = tmp_path / name
    dst.write_bytes(out)
    r = run(EXIFTOOL, "-overwrite_original", "-Title=edited", str(dst))
    assert r.returncode == 0, r.stderr
    assert dst.read_bytes() != out and exiftool(dst)["XMP-dc:Title"] == "edited"
    edited = isobmff.parse(dst.read_bytes(), dst.name, DEFAULT_LIMITS)
    assert formats.essence_digest(edited) == formats.essence_digest(parsed)
    assert [c.text for c in edited.carriers] == [LABEL]


# -- bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["plain.mp4", "faststart.mp4", "frag.mp4", "clip.mov"])
def test_truncated_files_raise_corrupt_input(clip, name):
    data = clip(name).read_bytes()
    cuts = {3, 11, len(data) - 1}
    for _, start, _, end in boxes(data):
        cuts |= {start + 9, (start + end) // 2, end - 2}
    for cut in sorted(c for c in cuts if 0 < c < len(data)):
        with pytest.raises(CorruptInput):
            isobmff.parse(data[:cut], f"{name}[:{cut}]", DEFAULT_LIMITS)


def test_the_cut_after_a_front_moov_is_caught(clip):
    data = clip("faststart.mp4").read_bytes()
    with pytest.raises(CorruptInput, match="past the end of the file"):
        isobmff.parse(data[: child(data, "moov")[3]], "cut.mp4", DEFAULT_LIMITS)
    end_of_mdat = child(clip("plain.mp4").read_bytes(), "moov")[1]
    with pytest.raises(CorruptInput, match="no moov box"):
        isobmff.parse(clip("plain.mp4").read_bytes()[:end_of_mdat], "cut.mp4", DEFAULT_LIMITS)


def _patched(data: bytes, at: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


def test_size_lies_and_giant_sizes(clip):
    data = clip("plain.mp4").read_bytes()
    moov, trak = child(data, "moov"), child(data, "moov/trak")
    stco = child(data, "moov/trak/mdia/minf/stbl/stco")
    stsz = child(data, "moov/trak/mdia/minf/stbl/stsz")
    mdat = child(data, "mdat")
    cases = {
        "trak bigger than moov": (_patched(data, trak[1], ">I", moov[3] - trak[1] + 8), "size lie"),
        "box smaller than header": (_patched(data, trak[1], ">I", 4), "less than its header"),
        "giant largesize": (_patched(_patched(data, mdat[1], ">I", 1), mdat[1] + 8, ">Q", 1 << 62),
                            "past the end of the file"),
        "giant stco count": (_patched(data, stco[2] + 4, ">I", 0xFFFFFFFF), "entries declared"),
        "giant stsz count": (_patched(data, stsz[2] + 8, ">I", 0x7FFFFFFF), "sample sizes"),
        "stco past the end": (_patched(data, stco[2] + 8, ">I", len(data) + 5), "past the end"),
    }  # fmt: skip
    for what, (bad, message) in cases.items():
        with pytest.raises(CorruptInput, match=message):
            isobmff.parse(bad, what, DEFAULT_LIMITS)


def test_limits_refuse_bombs(clip):
    data = clip("plain.mp4").read_bytes()
    stsd = child(data, "moov/trak/mdia/minf/stbl/stsd")
    entry = stsd[2] + 8
    huge = _patched(_patched(data, entry + 32, ">H", 0xFFFF), entry + 34, ">H", 0xFFFF)
    with pytest.raises(LimitExceeded, match="65535x65535"):
        isobmff.parse(huge, "huge.mp4", DEFAULT_LIMITS)
    mvhd = child(data, "moov/mvhd")
    forever = _patched(data, mvhd[2] + 16, ">I", 0xFFFFFFF0)  # at timescale 1000: 50 days
    with pytest.raises(LimitExceeded, match="declares"):
        isobmff.parse(forever, "forever.mp4", DEFAULT_LIMITS)
    with pytest.raises(LimitExceeded, match="boxes"):
        isobmff.parse(data, "many.mp4", Limits(max_chunks=5))


def test_structural_nonsense(clip):
    data = clip("plain.mp4").read_bytes()
    moov = child(data, "moov")
    ftyp = data[: child(data, "ftyp")[3]]
    with pytest.raises(CorruptInput, match="no moov box"):
        isobmff.parse(ftyp + struct.pack(">I4s", 12, b"mdat") + b"abcd", "x.mp4", DEFAULT_LIMITS)
    with pytest.raises(CorruptInput, match="second moov"):
        isobmff.parse(data + data[moov[1] : moov[3]], "x.mp4", DEFAULT_LIMITS)
    with pytest.raises(CorruptInput, match="truncated box header"):
        isobmff.parse(data + b"\0\0\0", "x.mp4", DEFAULT_LIMITS)
    with pytest.raises(CorruptInput, match="not an MP4"):
        isobmff.parse(b"GIF89a" + bytes(100), "x.mp4", DEFAULT_LIMITS)
    garbage = ftyp + random.Random(1).randbytes(500)
    with pytest.raises(CorruptInput):
        isobmff.parse(garbage, "garbage.mp4", DEFAULT_LIMITS)


def test_random_byte_flips_never_escape_as_other_exceptions(clip):
    """Mutate the moov of a tagged file: parse and label either work or raise LabelkitError."""
    data = clip("mdta.mp4").read_bytes()
    moov = child(data, "moov")
    rng = random.Random(4538)
    for _ in range(400):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            bad[rng.randrange(moov[1], moov[3])] = rng.randrange(256)
        try:
            parsed = isobmff.parse(bytes(bad), "flipped.mp4", DEFAULT_LIMITS)
            parsed.with_label(LABEL)
        except LabelkitError:
            pass
