"""PDF: Info /AIGC and XMP TC260:AIGC as an incremental update, read back by other readers.

Fixtures are made at run time by the producers on this machine: a PDF written here by hand
(offsets computed independently of labelkit), Pillow, pypdf, qpdf (object and xref streams,
linearized), exiftool (an incremental update with XMP), poppler's cairo backend and
LibreOffice. A producer that is missing skips its fixtures, with the reason.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import random
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from PIL import Image

from labelkit import formats
from labelkit.errors import (
    CorruptInput,
    LabelkitError,
    LimitExceeded,
    PolicyError,
    UnsupportedFormat,
)
from labelkit.formats import pdf
from labelkit.formats._pdf_objects import Name, Ref
from labelkit.limits import DEFAULT_LIMITS, Limits

from .samples import LABEL, LABEL2, OLD, TITLE, dc_title, exiftool, xmp_packet

pypdf = pytest.importorskip("pypdf")

TEXT = "Hello PDF world"
CONTENT = b"BT /F1 24 Tf 72 700 Td (" + TEXT.encode() + b") Tj ET"


def build_pdf(objects: dict[int, bytes], trailer: bytes, *, version: bytes = b"1.4") -> bytes:
    """A one-revision PDF from object bodies, with a classic table and ``trailer`` entries."""
    out = bytearray(b"%PDF-" + version + b"\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for num, body in sorted(objects.items()):
        offsets[num] = len(out)
        out += b"%d 0 obj\n%s\nendobj\n" % (num, body)
    xref = len(out)
    size = max(objects) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for num in range(1, size):
        out += b"%010d 00000 n \n" % offsets[num] if num in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d %s >>\nstartxref\n%d\n%%%%EOF\n" % (size, trailer, xref)
    return bytes(out)


def stream(data: bytes, extra: bytes = b"") -> bytes:
    """A stream object's body."""
    return b"<< /Length %d %s >>\nstream\n%s\nendstream" % (len(data), extra, data)


def page_objects(content: bytes = CONTENT) -> dict[int, bytes]:
    """Objects 1-5 of a one-page text PDF: Catalog, Pages, Page, its content, a font."""
    return {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        3: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
           b"/Resources << /Font << /F1 5 0 R >> >> >>",
        4: stream(content),
        5: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }  # fmt: skip


def handmade(*, packet: bytes | None = None, info: bytes | None = None,
             meta_extra: bytes = b"", content: bytes = CONTENT, trailer: bytes = b"") -> bytes:
    """A one-page text PDF; optionally with an XMP stream (object 6) and an Info (object 7)."""
    objects = page_objects(content)
    if packet is not None:
        objects[1] = objects[1].replace(b" >>", b" /Metadata 6 0 R >>")
    if packet is not None:
        objects[6] = stream(packet, b"/Type /Metadata /Subtype /XML " + meta_extra)
    if info is not None:
        objects[7] = info
    refs = b"/Root 1 0 R" + (b" /Info 7 0 R" if info is not None else b"")
    return build_pdf(objects, refs + b" " + trailer)


def hybrid() -> bytes:
    """A hybrid-reference file: a classic table whose /XRefStm stream lists an object (the
    Info) inside an object stream; the table marks it free, for PDF 1.4 readers."""
    info = b"<< /Title (hybrid) /AIGC (" + OLD.encode() + b") >>"
    objects = page_objects()
    objects[8] = stream(b"7 0 " + info, b"/Type /ObjStm /N 1 /First 4")
    objects[9] = stream(b"\x02\x00\x08\x00", b"/Type /XRef /Size 10 /W [1 2 1] /Index [7 1]")
    trailer = b"/Root 1 0 R /Info 7 0 R /XRefStm %010d"
    draft = build_pdf(objects, trailer % 0, version=b"1.5")
    return build_pdf(objects, trailer % draft.index(b"9 0 obj"), version=b"1.5")


def labeled_by_others() -> bytes:
    """A PDF that another tool labeled: Info /AIGC and XMP TC260:AIGC, plus a title to keep."""
    return handmade(packet=xmp_packet(aigc_elem=OLD),
                    info=b"<< /Title (" + TITLE.encode() + b") /AIGC (" + OLD.encode() + b") >>")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (the Makefile's apt-get line installs it)")
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


def _pillow(append: bool) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "PDF", title="Pillow ünicode")
    if append:  # Pillow's own incremental update (it starts right after %%EOF, no newline)
        Image.new("L", (20, 20), 128).save(buf, "PDF", append=True)
    return buf.getvalue()


def _pypdf_rewrite() -> bytes:
    writer = pypdf.PdfWriter(clone_from=io.BytesIO(labeled_by_others()))
    writer.add_metadata({"/Producer": "pypdf"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _converted(work: Path, name: str, data: bytes, *command: str) -> bytes:
    """``data`` run through a command that reads {src} and writes {dst}."""
    src, dst = work / f"{name}-in.pdf", work / f"{name}.pdf"
    src.write_bytes(data)
    args = [a.format(src=src, dst=dst, dir=work) for a in command]
    done = _run(*args)
    if not dst.exists():
        pytest.fail(f"{args[0]} made no PDF: {done.stderr[-500:]}")
    return dst.read_bytes()


def _libreoffice(work: Path) -> bytes:
    soffice = _tool("soffice")
    text = work / "lo.txt"
    text.write_text(f"{TEXT}\nSecond line\n")
    _run(soffice, f"-env:UserInstallation=file://{work}/lo-profile", "--headless",
         "--convert-to", "pdf", "--outdir", str(work), str(text))
    out = work / "lo.pdf"
    if not out.exists():
        pytest.skip("LibreOffice did not convert the text file")
    return out.read_bytes()


PRODUCERS = {
    "handmade": lambda work: handmade(),
    "labeled-by-others": lambda work: labeled_by_others(),
    "hybrid": lambda work: hybrid(),
    "pillow": lambda work: _pillow(False),
    "pillow-appended": lambda work: _pillow(True),
    "pypdf": lambda work: _pypdf_rewrite(),
    "qpdf-objstm": lambda work: _converted(work, "objstm", labeled_by_others(), _tool("qpdf"),
                                           "--object-streams=generate", "{src}", "{dst}"),
    "qpdf-linearized": lambda work: _converted(work, "lin", handmade(), _tool("qpdf"),
                                               "--linearize", "{src}", "{dst}"),
    "exiftool-update": lambda work: _converted(work, "exif", handmade(), _tool("exiftool"),
                                               "-q", "-XMP-dc:Title=" + TITLE, "-o", "{dst}",
                                               "{src}"),
    "cairo": lambda work: _converted(work, "cairo", handmade(), _tool("pdftocairo"), "-pdf",
                                     "{src}", "{dst}"),
    "libreoffice": _libreoffice,
}
NAMES = sorted(PRODUCERS)


@pytest.fixture(scope="session")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("pdf")


@functools.cache
def _made(name: str, work: Path) -> bytes:
    return PRODUCERS[name](work)


@pytest.fixture(params=NAMES)
def made(request, work) -> tuple[str, bytes, Path, Path]:
    """(name, original bytes, original path, labeled path) of every producer's file."""
    name = request.param
    data = _made(name, work)
    src, dst = work / f"orig-{name}.pdf", work / f"out-{name}.pdf"
    src.write_bytes(data)
    dst.write_bytes(formats.parse(data, str(src)).with_label(LABEL))
    return name, data, src, dst


def _carriers(data: bytes) -> list[tuple[str, str]]:
    return [(c.kind, c.text) for c in formats.parse(data, "x.pdf").carriers]


# -- labelkit's own reading and writing ------------------------------------------------------


def test_sniffing():
    assert formats.sniff(handmade()).NAME == "pdf"
    assert pdf.accept(b"%PDF-2.0\n") and not pdf.accept(b"junk\n%PDF-1.4")
    assert formats.handlers()["pdf"].MODALITY == "document"


def test_label_is_an_update_after_the_original_bytes(made):
    name, data, _, dst = made
    out = dst.read_bytes()
    assert out.startswith(data) and out[len(data):].startswith(pdf.MARKER)
    assert _carriers(out) == [("pdf-info", LABEL), ("xmp-element", LABEL)]
    parsed = formats.parse(out, "x.pdf")
    assert parsed.essence_hash == "blake3"
    assert formats.essence_digest(parsed) == formats.essence_digest(formats.parse(data, "o.pdf"))
    assert parsed.frames == parsed.pages == formats.parse(data, "o.pdf").pages > 0


def test_update_keeps_the_kind_of_cross_reference(made):
    name, data, _, dst = made
    update = dst.read_bytes()[len(data):]
    latest_is_stream = formats.parse(data, "o.pdf")._base.xref_kind == "stream"
    assert latest_is_stream == (name == "qpdf-objstm")
    assert (b"/Type /XRef" in update) == latest_is_stream
    assert (b"\nxref\n0 " in update) != latest_is_stream


def test_relabel_leaves_exactly_one_label(made):
    name, data, _, dst = made
    once = dst.read_bytes()
    twice = formats.parse(once, "x.pdf").with_label(LABEL2)
    assert twice.startswith(data) and twice.count(pdf.MARKER) == data.count(pdf.MARKER) + 1
    assert len(twice) == len(once)
    assert _carriers(twice) == [("pdf-info", LABEL2), ("xmp-element", LABEL2)]
    digest = formats.essence_digest(formats.parse(data, "o.pdf"))
    assert formats.essence_digest(formats.parse(twice, "x.pdf")) == digest


def test_other_labels_are_superseded_and_other_metadata_kept():
    data = labeled_by_others()
    assert _carriers(data) == [("pdf-info", OLD), ("xmp-element", OLD)]
    out = formats.parse(data, "x.pdf").with_label(LABEL)
    assert _carriers(out) == [("pdf-info", LABEL), ("xmp-element", LABEL)]
    parsed = formats.parse(out, "x.pdf")
    assert dc_title(parsed.xmp) == TITLE
    assert pypdf.PdfReader(io.BytesIO(out)).metadata["/Title"] == TITLE


def test_hybrid_files_find_objects_through_xrefstm():
    assert _carriers(hybrid()) == [("pdf-info", OLD)]
    out = formats.parse(hybrid(), "x.pdf").with_label(LABEL)
    assert pypdf.PdfReader(io.BytesIO(out)).metadata["/Title"] == "hybrid"


def test_label_text_with_escapes_round_trips():
    label = json.dumps({"Label": "1", "ProduceID": 'a(b)c\\"d)'}, separators=(",", ":"))
    out = formats.parse(handmade(), "x.pdf").with_label(label)
    assert _carriers(out) == [("pdf-info", label), ("xmp-element", label)]
    assert pypdf.PdfReader(io.BytesIO(out)).metadata["/AIGC"] == label
    wide = label.replace("a(b)c", "生成")  # not ASCII: a UTF-16BE text string
    assert _carriers(formats.parse(out, "x.pdf").with_label(wide))[0] == ("pdf-info", wide)


def test_page_content_is_essence():
    digest = formats.essence_digest(formats.parse(handmade(), "a.pdf"))
    changed = handmade(content=CONTENT.replace(b"Hello", b"Jello"))
    assert formats.essence_digest(formats.parse(changed, "b.pdf")) != digest
    out = formats.parse(handmade(), "a.pdf").with_label(LABEL)
    assert formats.essence_digest(formats.parse(out, "c.pdf")) == digest


def test_a_forged_or_extended_update_is_not_dropped():
    data = handmade()
    parsed = formats.parse(data, "x.pdf")
    digest = formats.essence_digest(parsed)
    base = parsed._base
    catalog = {**base.catalog, Name(b"OpenAction"): [Ref(3, 0), Name(b"Fit")]}
    forged = data + pdf._update(dataclasses.replace(base, catalog=catalog),
                                {Name(b"AIGC"): LABEL.encode()}, xmp_packet())
    for changed in (forged, parsed.with_label(LABEL) + b"appended\n"):
        again = formats.parse(changed, "x.pdf")
        assert formats.essence_digest(again) != digest  # the update is part of the essence
        relabeled = again.with_label(LABEL2)
        assert relabeled.startswith(changed) and _carriers(relabeled)[0] == ("pdf-info", LABEL2)


def test_a_revision_appended_after_labelkit_supersedes_nothing_else(work):
    exiftool_path = _tool("exiftool")
    src, dst = work / "after-in.pdf", work / "after.pdf"
    src.write_bytes(formats.parse(handmade(), "x.pdf").with_label(LABEL))
    _run(exiftool_path, "-q", "-XMP-dc:Title=later", "-o", str(dst), str(src))
    edited = dst.read_bytes()
    assert edited.startswith(src.read_bytes())
    relabeled = formats.parse(edited, "x.pdf").with_label(LABEL2)
    assert _carriers(relabeled) == [("pdf-info", LABEL2), ("xmp-element", LABEL2)]
    assert dc_title(formats.parse(relabeled, "x.pdf").xmp) == "later"
    assert relabeled.startswith(edited)  # exiftool's revision is history, kept


def test_xmp_argument_and_metadata_from():
    packet = xmp_packet(title="given")
    out = formats.parse(handmade(), "x.pdf").with_label(LABEL, xmp=packet)
    assert dc_title(formats.parse(out, "x.pdf").xmp) == "given"
    original = formats.parse(labeled_by_others(), "orig.pdf")
    rendered = formats.parse(_pillow(False), "new.pdf")
    out = rendered.with_label(LABEL, metadata_from=original)
    assert _carriers(out) == [("pdf-info", LABEL), ("xmp-element", LABEL)]
    assert dc_title(formats.parse(out, "x.pdf").xmp) == TITLE
    assert pypdf.PdfReader(io.BytesIO(out)).metadata["/Title"] == TITLE
    png = formats.parse(_png(), "x.png")
    with pytest.raises(PolicyError, match="x.pdf"):
        formats.parse(handmade(), "x.pdf").with_label(LABEL, metadata_from=png)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "PNG")
    return buf.getvalue()


# -- independent readers ---------------------------------------------------------------------


def test_qpdf_check_passes(made):
    qpdf = _tool("qpdf")
    done = _run(qpdf, "--check", str(made[3]))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stdout + done.stderr


def test_pdfinfo_opens_it_with_the_same_pages(made):
    pdfinfo = _tool("pdfinfo")
    before, after = (_run(pdfinfo, str(p)) for p in made[2:])
    pages = [line for line in after.stdout.splitlines() if line.startswith("Pages:")]
    assert after.returncode == 0 and pages and pages[0] in before.stdout
    assert f"AIGC:            {LABEL}" in _run(pdfinfo, "-custom", str(made[3])).stdout
    assert f"<TC260:AIGC>{LABEL.replace('&', '&amp;')}</TC260:AIGC>" in _run(
        pdfinfo, "-meta", str(made[3])).stdout


def test_exiftool_reads_info_and_xmp(made, exiftool_path):
    tags = json.loads(exiftool("-j", "-G1", "-PDF:AIGC", "-XMP-TC260:all", str(made[3])))[0]
    assert tags.get("PDF:AIGC") == LABEL and tags.get("XMP-TC260:Aigc") == LABEL
    before, after = (set(exiftool("-validate", "-warning", "-a", "-s3", str(path)).splitlines()[1:])
                     for path in made[2:])  # fmt: skip
    assert after <= before, f"labelkit introduced exiftool warnings: {sorted(after - before)}"


def test_pypdf_reads_the_label_and_the_same_text(made):
    original = pypdf.PdfReader(made[2])
    labeled = pypdf.PdfReader(made[3], strict=True)
    assert labeled.metadata["/AIGC"] == LABEL
    assert LABEL in labeled.xmp_metadata.stream.get_data().decode()
    assert labeled.trailer.get("/ID") == original.trailer.get("/ID")
    texts = [[page.extract_text() for page in r.pages] for r in (original, labeled)]
    assert texts[0] == texts[1]
    if made[0] in ("handmade", "libreoffice"):
        assert TEXT in texts[1][0]


# -- bad input -------------------------------------------------------------------------------
# The handler itself, not formats.parse: a cut or flipped header is another format's business.


def parse(data: bytes, source: str, limits: Limits = DEFAULT_LIMITS) -> pdf.PdfFile:
    """The PDF handler's parse."""
    return pdf.parse(data, source, limits)


def test_encrypted_pdfs_are_refused(work):
    data = _converted(work, "enc", handmade(), _tool("qpdf"), "--encrypt", "u", "o", "256",
                      "--", "{src}", "{dst}")
    with pytest.raises(UnsupportedFormat, match="enc.pdf: encrypted PDF"):
        parse(data, "enc.pdf")


def test_every_truncation_point_is_corrupt():
    data = handmade(packet=xmp_packet(), info=b"<< /Title (t) >>")
    for cut in range(len(data) - 1):  # the last byte is the newline after %%EOF
        with pytest.raises(CorruptInput, match="cut.pdf"):
            parse(data[:cut], "cut.pdf")


def test_truncated_labeled_files_only_raise_labelkit_errors():
    data = formats.parse(handmade(), "x.pdf").with_label(LABEL)
    for cut in range(len(data)):
        try:
            parse(data[:cut], "cut.pdf").with_label(LABEL2)
        except LabelkitError as exc:
            assert "cut.pdf" in str(exc)


@pytest.mark.parametrize("name", ["labeled-by-others", "qpdf-objstm", "pillow-appended"])
def test_random_corruption_only_raises_labelkit_errors(name, work):
    data = _made(name, work)
    rng = random.Random(45438)
    for _ in range(300):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(bad))
            if rng.random() < 0.8:
                bad[at] = rng.choice([0, 0x20, 0x30, 0x2F, 0x3C, 0x5B, 0xFF, rng.randrange(256)])
            else:
                del bad[at : at + rng.randint(1, 20)]
        try:
            parsed = parse(bytes(bad), "bad.pdf")
            out = parse(parsed.with_label(LABEL), "bad.pdf")
        except LabelkitError as exc:
            assert "bad.pdf" in str(exc)
            continue
        assert [c.text for c in out.carriers] == [LABEL, LABEL]
        assert formats.essence_digest(out) == formats.essence_digest(parsed)


def _with_trailer(data: bytes, old: bytes, new: bytes) -> bytes:
    at = data.rindex(b"trailer")
    return data[:at] + data[at:].replace(old, new, 1)


def _appended_section(data: bytes, trailer: bytes) -> bytes:
    """``data`` with an empty cross-reference section appended: (file, section offset)."""
    at = len(data)
    return data + b"xref\n0 1\n0000000000 65535 f \ntrailer\n<< " + trailer.replace(
        b"{self}", b"%d" % at) + b" >>\nstartxref\n%d\n%%%%EOF\n" % at


def _bomb(size: int) -> bytes:
    packed = zlib.compress(b"\0" * size, 9)
    return handmade(packet=packed, meta_extra=b"/Filter /FlateDecode")


def _xref_offset(data: bytes) -> int:
    return int(data[data.rindex(b"startxref") + 9 :].split()[0])


HOSTILE = {
    "prev-loop-self": (lambda d: _appended_section(d, b"/Size 6 /Root 1 0 R /Prev {self}"),
                       CorruptInput, "loops back"),
    "prev-loop-two": (lambda d: _appended_section(  # the /Prev is as long as the text it adds
        _with_trailer(d, b"/Size 6", b"/Size 6 /Prev %010d" % (len(d) + 17)),
        b"/Size 6 /Root 1 0 R /Prev %d" % _xref_offset(d)), CorruptInput, "loops back"),
    "prev-outside": (lambda d: _with_trailer(d, b"/Size 6", b"/Size 6 /Prev 99999999"),
                     CorruptInput, "outside the file"),
    "huge-size": (lambda d: _with_trailer(d, b"/Size 6", b"/Size 2147483647"),
                  LimitExceeded, "over the PDF limit"),
    "missing-root": (lambda d: _with_trailer(d, b"/Root 1 0 R", b""), CorruptInput, "no /Root"),
    "root-missing-object": (lambda d: _with_trailer(d, b"/Root 1 0 R", b"/Root 40 0 R"),
                            CorruptInput, "/Root object 40 is missing"),
    "startxref-garbage": (lambda d: d.replace(b"startxref\n%d" % _xref_offset(d),
                                              b"startxref\n%d" % (_xref_offset(d) - 7)),
                          CorruptInput, "no cross-reference section at startxref offset 0x"),
    "entry-elsewhere": (lambda d: d.replace(b"%010d 00000 n" % d.index(b"1 0 obj"),
                                            b"%010d 00000 n" % d.index(b"2 0 obj")),
                        CorruptInput, "entry of object 1 points to 0x.*holds object 2"),
    "no-eof": (lambda d: d[: d.rindex(b"%%EOF")], CorruptInput, "truncated"),
    "deep-nesting": (lambda d: handmade(info=b"[" * 5000 + b"]" * 5000), CorruptInput,
                     "nested more than"),
    "deflate-bomb": (lambda d: _bomb(5 * 1024 * 1024), LimitExceeded, "deflate bomb"),
    "other-filter": (lambda d: handmade(packet=b"3c3f", meta_extra=b"/Filter /ASCIIHexDecode"),
                     UnsupportedFormat, "ASCIIHexDecode filter"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_structures(case):
    make, error, message = HOSTILE[case]
    data = make(handmade())
    with pytest.raises(error, match=f"hostile.pdf: .*({message})"):
        parse(data, "hostile.pdf")


def test_metadata_limit_applies_to_object_streams(work):
    data = _made("qpdf-objstm", work)
    with pytest.raises(LimitExceeded, match="small.pdf: .*over the limit of 64"):
        parse(data, "small.pdf", Limits(max_metadata_bytes=64))


def test_prev_chain_length_is_bounded():
    data = handmade()
    for _ in range(6):
        data = _appended_section(data, b"/Size 6 /Root 1 0 R /Prev %d" % _xref_offset(data))
    parse(data, "long.pdf")
    with pytest.raises(LimitExceeded, match="long.pdf: more than 5 cross-reference sections"):
        parse(data, "long.pdf", Limits(max_chunks=5))
