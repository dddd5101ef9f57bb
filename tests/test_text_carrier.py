"""The invisible text carrier: kernels native and twin, survival of copies and normalisation.

Real text: the Python license shipped with the interpreter, a package's Markdown description.
"""

from __future__ import annotations

import random
import sys
import sysconfig
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from labelkit import _kernels_py
from labelkit._impl import kernel
from labelkit.watermark.text import (CARRIER_CHARS, carrier, detect_text, insert_carriers,
                                     insert_carriers_utf8, scan_carriers, strip_carriers,
                                     strip_carriers_utf8)
from labelkit.watermark.text_stream import CarrierStream

from .conftest import PURE

PAYLOAD = 0x0123456789ABCDEF
C = carrier(PAYLOAD)


def python_license() -> str:
    """The interpreter's own LICENSE.txt: real prose nobody here wrote."""
    for base in (sysconfig.get_paths()["stdlib"], sys.base_prefix):
        for path in Path(base).glob("LICENSE*"):
            return path.read_text("utf-8")
    pytest.skip("the interpreter ships no LICENSE file")


def test_carrier_is_thirty_selectors_and_starts_with_vs8():
    assert len(C) == CARRIER_CHARS == 30
    assert all(0xFE00 <= ord(c) <= 0xFE0F for c in C)
    assert C[0] == "\ufe07"  # VS8: in no standardized variation sequence
    assert carrier(PAYLOAD + 1) != C
    with pytest.raises(ValueError):
        carrier(1 << 64)


@pytest.mark.parametrize("text", [
    "", "x", "\n\n\n", "Hello.\n\nWorld.", "  lead\n \t\nnext\r\n\r\nthird",
    "e\u0301 accent\n\n\u0301 bare mark\n\nz\u200d", "👍🏽 ok\n\n你好，世界\n\n\ufeffbom",
    "a\u200d\u200db\n\n\u00a0\u3000full-width space first",
])
def test_paragraph_marks_twins_agree(text):
    data = text.encode("utf-8")
    want = np.empty(data.count(b"\n") + 1, np.int64)
    got = np.empty_like(want)
    n_twin = _kernels_py.paragraph_marks(data, want)
    n = kernel("paragraph_marks")(data, got)
    assert n == n_twin and np.array_equal(got[:n], want[:n])
    out_twin = bytearray(len(data) + n * 4)
    out = bytearray(len(out_twin))
    _kernels_py.splice(data, want[:n], b"ABCD", out_twin)
    kernel("splice")(data, got[:n], b"ABCD", out)
    assert out == out_twin
    if not PURE:
        from labelkit import _native_text

        assert kernel("splice") is _native_text.splice


def test_real_text_twins_agree_and_every_paragraph_is_marked():
    text = python_license()
    data = text.encode("utf-8")
    marked = insert_carriers_utf8(data, PAYLOAD)
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    assert scan_carriers(marked).carriers == len(paragraphs)
    offsets = np.empty(data.count(b"\n") + 1, np.int64)
    twin = np.empty_like(offsets)
    assert kernel("paragraph_marks")(data, offsets) == _kernels_py.paragraph_marks(data, twin)
    assert strip_carriers_utf8(marked) == data
    # every paragraph, copied alone, decodes
    for p in marked.decode("utf-8").split("\n\n")[:40]:
        if p.strip():
            assert scan_carriers(p).payload == PAYLOAD


def test_vs_runs_twins_agree_and_resume():
    text = ("x" + C + " y\ufe0f " + "\ufe00" * 29 + " " + C + C) * 5
    data = text.encode("utf-8")
    for cap in (1, 2, 3, 100):
        runs = []
        for impl in (kernel("vs_runs"), _kernels_py.vs_runs):
            found, offset, out = 0, 0, []
            while True:
                s, e = np.empty(cap, np.int64), np.empty(cap, np.int64)
                n, offset = impl(data, 30, s, e, offset)
                out += list(zip(s[:n].tolist(), e[:n].tolist()))
                if n < cap:
                    break
            runs.append(out)
        a, b = runs
        assert a == b and len(a) == 10  # the 29-selector run is too short to count


def test_carriers_survive_normalisation_and_strip_and_are_removable():
    text = insert_carriers("Ｆｕｌｌ width.\n\nCafé and ﬁ ligature.\n\n  spaced  ", PAYLOAD)
    for form in ("NFC", "NFKC", "NFD", "NFKD"):
        assert scan_carriers(unicodedata.normalize(form, text)).carriers == 3
    assert scan_carriers(text.strip()).carriers == 3
    assert scan_carriers(" ".join(text.split())).carriers == 3
    assert strip_carriers(text) == "Ｆｕｌｌ width.\n\nCafé and ﬁ ligature.\n\n  spaced  "
    # what a deliberate strip does, as the docs say
    import re

    assert scan_carriers(re.sub("[\ufe00-\ufe0f]", "", text)).carriers == 0


def test_labeling_twice_keeps_one_carrier_per_paragraph():
    once = insert_carriers("One.\n\nTwo.", PAYLOAD)
    assert insert_carriers(once, PAYLOAD) == once
    other = insert_carriers(once, PAYLOAD ^ 1)
    assert scan_carriers(other).payloads == {PAYLOAD ^ 1: 2}


def test_damage_is_corrected_up_to_two_bytes_and_then_refused():
    nibbles = [ord(c) - 0xFE00 for c in C]

    def with_damage(positions):
        n = list(nibbles)
        for p in positions:
            n[p] ^= 0x5
        return "x" + "".join(chr(0xFE00 + v) for v in n)

    assert scan_carriers(with_damage([2, 9])).payload == PAYLOAD  # two bytes hit
    rng = random.Random(4)
    refused = 0
    for _ in range(200):
        scan = scan_carriers(with_damage(rng.sample(range(2, 30), 8)))
        assert scan.payload in (None, PAYLOAD)  # never a wrong payload
        refused += scan.payload is None
    assert refused > 150


def test_no_false_carrier_in_emoji_and_ideographic_variants():
    text = "❤️ ☺︎ 葛󠄀 " * 1000 + "\ufe0f" * 29
    scan = scan_carriers(text)
    assert scan.carriers == 0 and scan.runs == 0
    assert not detect_text(text).present


def test_detection_reports_a_p_value_and_the_payload():
    found = detect_text(insert_carriers("A.\n\nB.\n\nC.", PAYLOAD))
    assert found.present and found.payload == PAYLOAD and found.p_value < 1e-6
    assert found.geometry["carriers"] == 3


def test_stream_carrier_is_independent_of_tokenisation():
    text = python_license()[:6000]
    whole = CarrierStream(PAYLOAD)
    expected = whole.feed(text) + whole.close()
    rng = random.Random(9)
    s, parts, i = CarrierStream(PAYLOAD), [], 0
    while i < len(text):
        n = rng.randint(1, 7)
        parts.append(s.feed(text[i : i + n]))
        i += n
    parts.append(s.close())
    assert "".join(parts) == expected
    assert strip_carriers(expected) == text
    assert scan_carriers(expected).carriers >= text.count("\n\n") // 2


@pytest.mark.parametrize("source,expected", [
    ("# Title here\n\n1. First item\n", "# Title{C} here\n\n1. First{C} item\n"),
    ("```py\nx = 1\n```\n\nAfter", "```py\nx = 1\n```\n\nAfter{C}"),
    ("`code` then word", "`code` then{C} word"),
    ("see https://example.com/a now", "see{C} https://example.com/a now"),
    ("&amp; entity", "&amp; entity{C}"),
    ("[ref]: http://x.y\n\n- item", "[ref]: http://x.y\n\n- item{C}"),
])
def test_stream_carrier_avoids_markdown_syntax(source, expected):
    s = CarrierStream(PAYLOAD)
    assert (s.feed(source) + s.close()).replace(C, "{C}") == expected
