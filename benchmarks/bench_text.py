"""Speed of text labeling and carrier detection on one core, in MB/s of UTF-8 text.

  pytest benchmarks/bench_text.py --benchmark-only

Issue 6's targets: notice + carrier labeling >= 100 MB/s, carrier detection >= 100 MB/s. The
text is real prose (the interpreter's LICENSE, paragraphs of a few hundred bytes) repeated to
20 MB, and a Chinese variant. The baseline in the same run is one pass over the bytes that any
text tool makes: decoding them as UTF-8.
"""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

import pytest

from labelkit import Labeler
from labelkit.signing import generate_key
from labelkit.watermark.text import insert_carriers_utf8, scan_carriers

from .conftest import PRODUCER, record

SIZE = 20_000_000


def _prose(chinese: bool) -> bytes:
    if chinese:
        para = ("人工智能生成的内容需要按照国家标准添加显式标识和隐式标识，"
                "服务提供者应当在文本的起始、末尾或中间适当位置添加文字提示。") * 3
        unit = (para + "\n\n").encode("utf-8")
    else:
        base = next(p for d in (sysconfig.get_paths()["stdlib"], sys.base_prefix)
                    for p in Path(d).glob("LICENSE*"))
        unit = base.read_bytes()
    return (unit * (SIZE // len(unit) + 1))[:SIZE].rsplit(b"\n", 1)[0]


@pytest.fixture(scope="module", params=["english", "chinese"])
def prose(request) -> tuple[str, bytes]:
    return request.param, _prose(request.param == "chinese")


def test_decode_baseline(benchmark, prose):
    name, data = prose
    benchmark.pedantic(data.decode, args=("utf-8",), rounds=5, iterations=1)
    record(f"text labeling ({name}, 20 MB)", "bytes.decode (baseline)", benchmark,
           nbytes=len(data), baseline=True)


def test_label_text(benchmark, prose):
    name, data = prose
    labeler = Labeler(PRODUCER, generate_key())
    benchmark.pedantic(labeler.label_text, args=(data, "text"), rounds=5, iterations=1)
    record(f"text labeling ({name}, 20 MB)", "Labeler.label_text (notice + carriers)", benchmark,
           nbytes=len(data), target=">= 100 MB/s", subject=True)


def test_insert_carriers(benchmark, prose):
    name, data = prose
    benchmark.pedantic(insert_carriers_utf8, args=(data, 0x0123456789ABCDEF), rounds=5,
                       iterations=1)
    record(f"text labeling ({name}, 20 MB)", "insert_carriers_utf8", benchmark, nbytes=len(data))


def test_detect_carriers(benchmark, prose):
    name, data = prose
    marked = insert_carriers_utf8(data, 0x0123456789ABCDEF)
    found = benchmark.pedantic(scan_carriers, args=(marked,), rounds=5, iterations=1)
    assert found.payload == 0x0123456789ABCDEF
    record(f"text labeling ({name}, 20 MB)", "scan_carriers (detection)", benchmark,
           nbytes=len(marked), target=">= 100 MB/s")
