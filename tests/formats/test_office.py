"""OOXML packages (DOCX/XLSX/PPTX): the custom property AIGC, raw-copied parts, readers, bad input.

Fixtures are made at run time: python-docx, openpyxl and python-pptx write the packages,
LibreOffice (when installed) saves one of its own, and ``package`` writes minimal ones with
zipfile (independently of labelkit's ZIP code)."""

from __future__ import annotations

import io
import json
import random
import re
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import pytest

from labelkit import formats
from labelkit.errors import CorruptInput, LabelkitError, LimitExceeded, PolicyError
from labelkit.errors import UnsupportedFormat
from labelkit.formats import office
from labelkit.limits import DEFAULT_LIMITS, Limits

from .samples import EXIFTOOL, LABEL, OLD, sample

docx = pytest.importorskip("docx")
openpyxl = pytest.importorskip("openpyxl")
pptx = pytest.importorskip("pptx")

SOFFICE = shutil.which("soffice")
needs_soffice = pytest.mark.skipif(SOFFICE is None, reason="LibreOffice (soffice) is not "
                                   "installed (the Makefile installs libreoffice-*-nogui)")
CUSTOM_NS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"
VT_NS = "http://schemas.openxmlformats.org/officeDocument/2006/docPropsVTypes"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/"
OTHER = ('<property fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="2" name="Other">'
         '<vt:lpwstr>keep &amp; me</vt:lpwstr></property>')


def soffice(outdir: Path, convert_to: str, *files: Path) -> None:
    """Convert files with LibreOffice headless, with a profile of its own (a running instance
    on the default profile would take the job over, or refuse it)."""
    profile = (outdir.parent / "lo-profile").as_uri()
    subprocess.run([SOFFICE, f"-env:UserInstallation={profile}", "--headless", "--convert-to",
                    convert_to, "--outdir", str(outdir), *map(str, files)], check=True,
                   capture_output=True, timeout=300)


def custom_xml(*props: str) -> str:
    """A custom-properties part holding these property elements."""
    return (f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Properties '
            f'xmlns="{CUSTOM_NS}" xmlns:vt="{VT_NS}">{"".join(props)}</Properties>')


def aigc_prop(value: str, pid: int = 3, name: str = "AIGC") -> str:
    """A custom property element holding ``value``."""
    return (f'<property fmtid="{{D5CDD505-2E9C-101B-9397-08002B2CF9AE}}" pid="{pid}" '
            f'name="{name}"><vt:lpwstr>{value.replace("&", "&amp;")}</vt:lpwstr></property>')


def minimal_parts(custom: str | None = custom_xml(OTHER)) -> dict[str, str]:
    """The parts of a small DOCX: content types, relationships, document, core and custom."""
    overrides = ('<Override PartName="/word/document.xml" ContentType="application/vnd.openxml'
                 'formats-officedocument.wordprocessingml.document.main+xml"/>')
    rels = f'<Relationship Id="rId1" Type="{REL}officeDocument" Target="word/document.xml"/>'
    if custom is not None:
        overrides += ('<Override PartName="/docProps/custom.xml" ContentType="application/vnd.'
                      'openxmlformats-officedocument.custom-properties+xml"/>')
        rels += (f'<Relationship Id="rId2" Type="{REL}custom-properties" '
                 'Target="docProps/custom.xml"/>')
    parts = {
        "[Content_Types].xml": '<Types xmlns="http://schemas.openxmlformats.org/package/2006/'
        'content-types"><Default Extension="xml" ContentType="application/xml"/><Default '
        'Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+'
        f'xml"/>{overrides}</Types>',
        "_rels/.rels": '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
        f'relationships">{rels}</Relationships>',
        "word/document.xml": '<w:document xmlns:w="http://schemas.openxmlformats.org/'
        'wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>Hello</w:t></w:r></w:p></w:body>'
        "</w:document>",
        "docProps/core.xml": "<coreProperties/>",
    }
    if custom is not None:
        parts["docProps/custom.xml"] = custom
    return parts


class _Pipe(io.RawIOBase):
    """An unseekable sink: zipfile then writes data descriptors, as streaming writers do."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.buf += b
        return len(b)


def package(parts: dict[str, str | bytes], *, stream: bool = False) -> bytes:
    """A ZIP of these parts, deflated, in this order (with data descriptors if ``stream``)."""
    sink = _Pipe() if stream else io.BytesIO()
    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED) as z:
        for name, body in parts.items():
            z.writestr(name, body)
    return bytes(sink.buf) if stream else sink.getvalue()


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, bytes]:
    """Every fixture package once per module, by name."""
    folder = tmp_path_factory.mktemp("office")
    d = docx.Document()
    d.add_paragraph("Hello, labelkit")
    d.core_properties.title = "Original title"
    d.save(folder / "a.docx")
    wb = openpyxl.Workbook()
    wb.active["A1"] = "Hello"
    wb.custom_doc_props.append(openpyxl.packaging.custom.StringProperty(name="Other", value="keep"))
    wb.save(folder / "a.xlsx")
    p = pptx.Presentation()
    p.slides.add_slide(p.slide_layouts[1]).shapes.title.text = "Hello"
    p.save(folder / "a.pptx")
    out = {f"python.{k}": (folder / f"a.{k}").read_bytes() for k in ("docx", "xlsx", "pptx")}
    if SOFFICE is not None:  # LibreOffice's own writer: UTF-8 names, data descriptors
        soffice(folder / "lo", "docx:MS Word 2007 XML", folder / "a.docx")
        out["libreoffice.docx"] = (folder / "lo" / "a.docx").read_bytes()
    out["minimal.docx"] = package(minimal_parts())
    out["stream.docx"] = package(minimal_parts(), stream=True)
    out["bare.docx"] = package(minimal_parts(custom=None))
    return out


NAMES = ["python.docx", "python.xlsx", "python.pptx", "libreoffice.docx", "minimal.docx",
         "stream.docx", "bare.docx"]


@pytest.fixture(params=NAMES)
def name(request, made) -> str:
    """Each fixture package's name (LibreOffice's skips without soffice)."""
    if request.param not in made:
        pytest.skip("LibreOffice (soffice) is not installed")
    return request.param


def raw_entries(data: bytes) -> dict[str, bytes]:
    """Each entry's local header and stored bytes, as zipfile (not labelkit) finds them."""
    out = {}
    for info in zipfile.ZipFile(io.BytesIO(data)).infolist():
        n, m = struct.unpack_from("<HH", data, info.header_offset + 26)
        start = info.header_offset + 30 + n + m
        out[info.filename] = data[info.header_offset : start + info.compress_size]
    return out


def parse(data: bytes, source: str = "x.docx", limits: Limits = DEFAULT_LIMITS):
    return office.parse(data, source, limits)


def test_label_roundtrip(made, name):
    data = made[name]
    assert formats.sniff(data[:64]) is office and office.MODALITY == "document"
    original = formats.parse(data, name)
    assert original.kind == name.rsplit(".", 1)[1] and original.carriers == []
    out = original.with_label(LABEL)
    assert zipfile.ZipFile(io.BytesIO(out)).testzip() is None
    labeled = formats.parse(out, "out")
    assert [(c.kind, c.text) for c in labeled.carriers] == [("office-custom-property", LABEL)]
    assert labeled.carriers[0].location.startswith("docProps/custom.xml property AIGC")
    assert formats.essence_digest(labeled) == formats.essence_digest(original)
    # every part but the three labeling may touch is copied raw, in the same order
    before, after = raw_entries(data), raw_entries(out)
    touched = {"docProps/custom.xml", "[Content_Types].xml", "_rels/.rels"}
    assert [n for n in after if n in before] == list(before)
    assert {n: b for n, b in after.items() if n not in touched} == {
        n: b for n, b in before.items() if n not in touched}
    again = formats.parse(labeled.with_label(OLD), "again")
    assert [c.text for c in again.carriers] == [OLD]
    assert formats.essence_digest(again) == formats.essence_digest(original)


def test_other_properties_are_kept_byte_for_byte(made):
    out = parse(made["minimal.docx"]).with_label(LABEL)
    text = zipfile.ZipFile(io.BytesIO(out)).read("docProps/custom.xml").decode()
    assert text.startswith(custom_xml(OTHER).removesuffix("</Properties>"))
    assert 'pid="3" name="AIGC"' in text  # the next free pid
    wb = openpyxl.load_workbook(io.BytesIO(parse(made["python.xlsx"]).with_label(LABEL)))
    assert {p.name: p.value for p in wb.custom_doc_props.props} == {"Other": "keep",
                                                                    "AIGC": LABEL}


def test_duplicate_aigc_properties_are_reported_and_merged():
    custom = custom_xml(aigc_prop(OLD, 2), OTHER.replace('pid="2"', 'pid="3"'),
                        aigc_prop("{}", 4, name=" aigc"))
    parsed = parse(package(minimal_parts(custom)), "dup.docx")
    assert [c.text for c in parsed.carriers] == [OLD, "{}"]
    assert [c.location for c in parsed.carriers] == [
        "docProps/custom.xml property AIGC pid=2", "docProps/custom.xml property  aigc pid=4"]
    out = zipfile.ZipFile(io.BytesIO(parsed.with_label(LABEL))).read("docProps/custom.xml")
    pids = re.findall(rb'pid="(\d+)"', out)
    assert out.count(b"AIGC") == 1 and b"aigc" not in out and sorted(pids) == [b"2", b"3"]
    assert [c.text for c in parse(parsed.with_label(LABEL)).carriers] == [LABEL]


def test_a_new_custom_part_is_registered(made):
    data = made["bare.docx"]
    out = parse(data).with_label(LABEL)
    z, old = zipfile.ZipFile(io.BytesIO(out)), zipfile.ZipFile(io.BytesIO(data))
    assert z.namelist() == old.namelist() + ["docProps/custom.xml"]
    types, rels = z.read("[Content_Types].xml").decode(), z.read("_rels/.rels").decode()
    assert types == old.read("[Content_Types].xml").decode().replace(
        "</Types>", '<Override PartName="/docProps/custom.xml" ContentType="application/vnd.'
        'openxmlformats-officedocument.custom-properties+xml"/></Types>')
    assert rels == old.read("_rels/.rels").decode().replace(
        "</Relationships>", f'<Relationship Id="rId2" Type="{REL}custom-properties" '
        'Target="docProps/custom.xml"/></Relationships>')
    assert 'fmtid="{D5CDD505-2E9C-101B-9397-08002B2CF9AE}" pid="2" name="AIGC"' in z.read(
        "docProps/custom.xml").decode()


@pytest.mark.parametrize("kind", ["docx", "pptx"])
def test_a_title_edit_keeps_the_digest(made, kind):
    data = made[f"python.{kind}"]
    labeled = parse(data).with_label(LABEL)
    doc = (docx.Document if kind == "docx" else pptx.Presentation)(io.BytesIO(labeled))
    doc.core_properties.title = "Edited by another tool"
    edited = io.BytesIO()
    doc.save(edited)
    assert raw_entries(edited.getvalue())["docProps/core.xml"] != raw_entries(labeled)[
        "docProps/core.xml"]
    assert formats.essence_digest(parse(edited.getvalue())) == formats.essence_digest(
        parse(labeled))


def test_one_changed_byte_in_the_document_changes_the_digest(made):
    data = made["python.docx"]
    before = formats.essence_digest(parse(data))
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo("word/document.xml")
    n, m = struct.unpack_from("<HH", data, info.header_offset + 26)
    bad = bytearray(data)
    bad[info.header_offset + 30 + n + m + info.compress_size // 2] ^= 1
    assert formats.essence_digest(parse(bytes(bad))) != before
    parts = minimal_parts()
    changed = package({**parts, "word/document.xml": parts["word/document.xml"].replace(
        "Hello", "Hellp")})
    assert formats.essence_digest(parse(changed)) != formats.essence_digest(
        parse(package(parts)))


def test_metadata_from_carries_core_and_custom_properties(made):
    original = parse(made["python.docx"]).with_label(OLD)
    redone = docx.Document(io.BytesIO(original))
    redone.add_paragraph("A notice added by a later step")
    redone.core_properties.title = "Changed"
    buf = io.BytesIO()
    redone.save(buf)
    new = parse(buf.getvalue())
    out = new.with_label(LABEL, metadata_from=parse(original))
    assert docx.Document(io.BytesIO(out)).core_properties.title == "Original title"
    assert [c.text for c in parse(out).carriers] == [LABEL]
    assert formats.essence_digest(parse(out)) == formats.essence_digest(new)
    with pytest.raises(PolicyError):
        new.with_label(LABEL, metadata_from=formats.parse(sample("png-plain").data, "x.png"))


def test_readers_see_the_label(made, tmp_path):
    paths = {}
    for kind in ("docx", "xlsx", "pptx"):
        paths[kind] = tmp_path / f"labeled.{kind}"
        paths[kind].write_bytes(parse(made[f"python.{kind}"]).with_label(LABEL))
    document = docx.Document(paths["docx"])  # no custom-properties API: it opens, text intact
    assert [p.text for p in document.paragraphs] == ["Hello, labelkit"]
    assert document.core_properties.title == "Original title"
    wb = openpyxl.load_workbook(paths["xlsx"])
    assert wb.active["A1"].value == "Hello" and wb.custom_doc_props["AIGC"].value == LABEL
    slides = pptx.Presentation(paths["pptx"]).slides  # no custom-properties API either
    assert slides[0].shapes.title.text == "Hello"
    if EXIFTOOL is not None:  # exiftool names each custom property's tag after it
        found = json.loads(subprocess.run([EXIFTOOL, "-j", *map(str, paths.values())],
                                          check=True, capture_output=True, text=True).stdout)
        assert [f["AIGC"] for f in found] == [LABEL] * 3


@needs_soffice
def test_libreoffice_opens_and_keeps_the_label(made, tmp_path):
    files = []
    for name in ("python.docx", "python.xlsx", "python.pptx", "libreoffice.docx"):
        files.append(tmp_path / name.replace(".", "-labeled."))
        files[-1].write_bytes(parse(made[name]).with_label(LABEL))
    soffice(tmp_path / "pdf", "pdf", *files)
    for f in files:
        assert (tmp_path / "pdf" / f.with_suffix(".pdf").name).read_bytes()[:5] == b"%PDF-"
    # LibreOffice reads the property: it carries it into ODF (meta:user-defined) ...
    odf = tmp_path / "odf" / "python-labeled.odt"
    soffice(odf.parent, "odt", files[0])
    meta = zipfile.ZipFile(odf).read("meta.xml").decode()
    assert f'<meta:user-defined meta:name="AIGC">{LABEL.replace(chr(34), "&quot;")}<' in meta
    # ... and writes it back when it saves the document as DOCX
    resaved = tmp_path / "docx" / "python-labeled.docx"
    soffice(resaved.parent, "docx:MS Word 2007 XML", files[0])
    assert [c.text for c in parse(resaved.read_bytes()).carriers] == [LABEL]


def test_sniffing():
    plain = io.BytesIO()
    with zipfile.ZipFile(plain, "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(UnsupportedFormat, match="plain.zip: a ZIP archive, not an OOXML"):
        formats.parse(plain.getvalue(), "plain.zip")
    odf = package({"mimetype": "application/vnd.oasis.opendocument.text", "content.xml": "<a/>"})
    with pytest.raises(UnsupportedFormat, match="not a supported format"):
        formats.parse(odf, "x.odt")
    parts = minimal_parts()
    parts["[Content_Types].xml"] = parts["[Content_Types].xml"].replace("wordprocessingml",
                                                                        "nothingml")
    with pytest.raises(UnsupportedFormat, match="not a Word, Excel or PowerPoint"):
        formats.parse(package(parts), "other.zip")
    others = [m for m in formats.handlers().values() if m is not office]
    assert not any(m.accept(package(minimal_parts())[:64]) for m in others)


def _set(data: bytes, pos: int, fmt: str, *values: int) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, pos, *values)
    return bytes(buf)


def _central(data: bytes, name: str) -> int:
    """The offset of an entry's central directory record (its name follows 46 bytes)."""
    return data.index(name.encode(), data.index(b"PK\x01\x02")) - 46


def _with_custom(raw: bytes | str) -> bytes:
    return package(minimal_parts(custom=raw))


def _bad_packages() -> dict[str, tuple[bytes, type, str]]:
    parts = minimal_parts()
    data = package(parts)
    end = data.rindex(b"PK\x05\x06")
    doc = _central(data, "word/document.xml")
    (doc_local,) = struct.unpack_from("<I", data, doc + 42)
    cd = data.index(b"PK\x01\x02")
    record = data[doc : doc + 46 + len("word/document.xml")]
    count, cd_size = struct.unpack_from("<HI", data, end + 10)
    big = custom_xml(aigc_prop("a" * (5 << 20)))  # 5 MB that deflate makes 5 kB
    bomb = _with_custom(big)
    at = _central(bomb, "docProps/custom.xml")
    (local,) = struct.unpack_from("<I", bomb, at + 42)
    lied = _set(_set(bomb, at + 24, "<I", 100), local + 22, "<I", 100)
    return {
        "central directory": (_set(data, _central(data, "_rels/.rels"), "<I", 0), CorruptInput,
                              "bad central directory record"),
        "cd size": (_set(data, end + 12, "<I", 10), CorruptInput, "does not end at the end"),
        "wrong local header": (_set(data, doc + 42, "<I", 0), CorruptInput,
                               "local header .* disagrees"),
        "no local header": (_set(data, doc + 42, "<I", doc_local + 1), CorruptInput,
                            "no local header"),
        "same entry twice": (data[:end] + record + _set(data[end:], 8, "<HHI", count + 1,
                             count + 1, cd_size + len(record)), CorruptInput, "overlaps"),
        "gap": (data[:cd] + bytes(4) + _set(data[cd:], end - cd + 16, "<I", cd + 4),
                CorruptInput, "4 unaccounted bytes before the central directory"),
        "bomb": (bomb, LimitExceeded, "docProps/custom.xml' declares .* over the limit"),
        "lying bomb": (lied, LimitExceeded, "inflates past its declared 100 bytes"),
        "encrypted": (_set(data, doc + 8, "<H", 1), UnsupportedFormat, "encrypted"),
        "zip64": (_set(data, end + 8, "<HH", 0xFFFF, 0xFFFF), UnsupportedFormat, "ZIP64"),
        "multi-disk": (_set(data, end + 4, "<H", 1), UnsupportedFormat, "multi-disk"),
        "trailing junk": (data + b"junk", CorruptInput, "no end of central directory"),
        "latin-1": (_with_custom(custom_xml(OTHER).replace("UTF-8", "ISO-8859-1")),
                    UnsupportedFormat, "declares encoding"),
        "not utf-8": (_with_custom(custom_xml(OTHER).encode().replace(b"keep", b"k\xe9ep")),
                      CorruptInput, "is not UTF-8"),
        "dtd": (_with_custom('<!DOCTYPE p [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]>'
                             + custom_xml(aigc_prop("&b;"))), CorruptInput, "DOCTYPE/ENTITY"),
        "utf-16": (_with_custom(custom_xml(OTHER).encode("utf-16")), UnsupportedFormat,
                   "UTF-16"),
        "custom is main": (package({**parts, "_rels/.rels": parts["_rels/.rels"].replace(
            'Target="docProps/custom.xml"', 'Target="word/document.xml"')}), CorruptInput,
            "custom-properties relationship points at word/document.xml"),
        "malformed": (_with_custom(custom_xml(OTHER)[:-3]), CorruptInput, "malformed XML"),
        "wrong root": (_with_custom("<Other/>"), CorruptInput, "not a custom-properties part"),
        "no rels": (package({k: v for k, v in minimal_parts().items() if k != "_rels/.rels"}),
                    CorruptInput, "without _rels/.rels"),
    }


@pytest.mark.parametrize("case", sorted(_bad_packages()))
def test_bad_packages(case):
    data, error, message = _bad_packages()[case]
    with pytest.raises(error, match=f"bad.docx: .*{message}") as caught:
        formats.parse(data, "bad.docx")
    assert type(caught.value) is error


def test_limits(made):
    data = made["python.pptx"]
    with pytest.raises(LimitExceeded, match="x.pptx: more than 5 ZIP entries"):
        parse(data, "x.pptx", Limits(max_chunks=5))
    with pytest.raises(LimitExceeded, match=r"x.pptx: .*\[Content_Types\].xml"):
        parse(data, "x.pptx", Limits(max_metadata_bytes=100))
    forced = io.BytesIO()
    with zipfile.ZipFile(forced, "w") as z:
        for n, body in minimal_parts().items():
            with z.open(n, "w", force_zip64=True) as f:
                f.write(body.encode())
    with pytest.raises(UnsupportedFormat, match="ZIP64"):
        parse(forced.getvalue())


def test_every_truncation_point_is_corrupt(made):
    data = made["stream.docx"]
    for cut in range(len(data)):
        with pytest.raises(CorruptInput, match="cut.docx"):
            parse(data[:cut], "cut.docx")


def _mutant(data: bytes, rng: random.Random) -> bytes:
    """One to three edits (a byte set, or up to 40 dropped), half of them in the last 2 kB:
    the central directory and, in these small packages, the plumbing parts."""
    bad = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        low = 0 if rng.random() < 0.5 else max(0, len(bad) - 2048)
        at = rng.randrange(low, len(bad))
        if rng.random() < 0.3:
            del bad[at : at + rng.randint(1, 40)]
        else:
            bad[at] = rng.choice([0, 1, 0x3C, 0x7F, 0x80, 0xFF, rng.randrange(256)])
    return bytes(bad)


def test_random_corruption_only_raises_labelkit_errors(made):
    """Mutated packages: a LabelkitError naming the file, or a labeled file, nothing else."""
    rng = random.Random(45438)
    fixtures = [made["stream.docx"], _with_custom(custom_xml(OTHER, aigc_prop(OLD)))]
    for bad in (_mutant(data, rng) for data in fixtures for _ in range(400)):
        try:
            parsed = parse(bad, "fuzz.docx")
            out = parse(parsed.with_label(LABEL))
        except LabelkitError as exc:
            assert "fuzz.docx" in str(exc)
            continue
        assert [x.text for x in out.carriers] == [LABEL]
        assert formats.essence_digest(out) == formats.essence_digest(parsed)
