"""Documents end to end: DOCX, XLSX, PPTX and PDF labeled by Labeler and the CLI, then verified.

The packages come from python-docx, openpyxl and python-pptx, the PDF from Pillow: writers
nobody here made. Format-level details are in tests/formats/test_office.py and test_pdf.py.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest
from PIL import Image

from labelkit import verify

from .conftest import skimage_photo


def _docx() -> bytes:
    docx = pytest.importorskip("docx")
    d = docx.Document()
    d.add_heading("生成的报告", level=1)
    d.add_paragraph("Quarterly revenue grew in every region.")
    out = io.BytesIO()
    d.save(out)
    return out.getvalue()


def _xlsx() -> bytes:
    openpyxl = pytest.importorskip("openpyxl")
    wb = openpyxl.Workbook()
    wb.active.append(["region", "revenue"])
    wb.active.append(["north", 12])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _pptx() -> bytes:
    pptx = pytest.importorskip("pptx")
    p = pptx.Presentation()
    slide = p.slides.add_slide(p.slide_layouts[0])
    slide.shapes.title.text = "Generated slides"
    out = io.BytesIO()
    p.save(out)
    return out.getvalue()


def _pdf() -> bytes:
    out = io.BytesIO()
    Image.fromarray(skimage_photo("coffee.png")).save(out, "PDF", resolution=72)
    return out.getvalue()


MAKERS = {"report.docx": _docx, "sheet.xlsx": _xlsx, "deck.pptx": _pptx, "scan.pdf": _pdf}


@pytest.mark.parametrize("name", list(MAKERS))
def test_documents_are_labeled_and_verified(labeler, key, name):
    data = MAKERS[name]()
    result = labeler.label_document(data, source=name)
    assert result.layers == ("metadata", "signature")
    assert any("application that made it" in n for n in result.notes)
    report = verify(result.data, key=key, name=name)
    assert report.verdict == "compliant", report.to_json()
    assert report.signature["status"] == "valid"
    assert report.check("single_label").status == "pass"
    assert json.loads(report.carriers[0]["text"])["ProduceID"] == result.record.produce_id
    # relabeling keeps exactly one label, and the new one
    again = labeler.label_document(result.data, source=name)
    report = verify(again.data, key=key, name=name)
    assert report.verdict == "compliant"
    assert report.record["ProduceID"] == again.record.produce_id


def test_a_changed_pdf_page_breaks_the_signature(labeler, key):
    result = labeler.label_document(_pdf(), source="scan.pdf")
    data = bytearray(result.data)
    i = data.index(b"stream", data.index(b"/Image")) + 100  # inside the picture's data
    data[i] ^= 0xFF
    report = verify(bytes(data), key=key, name="scan.pdf")
    assert report.signature["status"] == "content_mismatch"
    assert report.verdict == "noncompliant"


def test_cli_labels_a_folder_of_documents(tmp_path, producer):
    key_file = tmp_path / "k"
    subprocess.run([sys.executable, "-m", "labelkit", "keygen", "-o", str(key_file)],
                   check=True, capture_output=True)
    src = tmp_path / "in"
    src.mkdir()
    for name, make in MAKERS.items():
        (src / name).write_bytes(make())
    (src / "archive.zip").write_bytes(b"PK\x03\x04" + bytes(60))  # a ZIP, not a document
    run = subprocess.run([sys.executable, "-m", "labelkit", "label", "--producer", producer,
                          "--key", str(key_file), "-o", str(tmp_path / "out"), str(src)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr + run.stdout
    assert "1 non-image file(s) ignored" in run.stdout + run.stderr
    check = subprocess.run([sys.executable, "-m", "labelkit", "verify", "--key", str(key_file),
                            "--json", str(tmp_path / "out")], capture_output=True, text=True)
    verdicts = [json.loads(line)["verdict"] for line in check.stdout.splitlines()
                if line.startswith("{")]
    assert verdicts == ["compliant"] * len(MAKERS), check.stdout
