"""Labeling and verifying text: plain, Markdown, HTML, token streams; the notice, carriers, label.

Real content: a package's Markdown description (its wheel's METADATA), HTML that pydoc
generates for a stdlib module, and the Python license as plain text.
"""

from __future__ import annotations

import asyncio
import html.parser
import importlib.metadata
import json
import pydoc
import subprocess
import sys
import unicodedata

import pytest

from labelkit import Labeler, verify
from labelkit.errors import LabelkitError, PolicyError
from labelkit.explicit.text import find_notices
from labelkit.formats import markdown
from labelkit.policy import Policy, TextPolicy
from labelkit.watermark.text import scan_carriers, strip_carriers

from .conftest import PRODUCER
from .test_text_carrier import python_license

NOTICE = TextPolicy().notice_text


def package_markdown() -> str:
    """The Markdown long description a real package ships in its wheel."""
    for dist in ("av", "blake3", "imageio", "cffi"):
        try:
            meta = importlib.metadata.metadata(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        body = meta.get_payload() or ""
        if meta.get("Description-Content-Type", "").startswith("text/markdown") and "```" in body:
            return body
    pytest.skip("no installed package ships a Markdown description with code")


def pydoc_html() -> str:
    """HTML pydoc generates for a stdlib module (tables, pre, links, entities)."""
    import textwrap

    return pydoc.HTMLDoc().page("textwrap", pydoc.HTMLDoc().docmodule(textwrap))


@pytest.fixture(scope="module")
def both(key):
    return Labeler(PRODUCER, key, Policy(text=TextPolicy(placement="both")))


def _visible(text: str) -> str:
    return strip_carriers(text)


def test_plain_text_gets_notice_and_carriers_but_no_metadata(labeler, key):
    source = python_license()
    result = labeler.label_text(source)
    out = result.data.decode("utf-8")
    assert result.format == "text" and result.layers == ("explicit", "watermark")
    assert any("no metadata field" in n for n in result.notes)
    assert _visible(out) == NOTICE + "\n\n" + source
    assert scan_carriers(out).payload == result.watermark_payload
    report = verify(result.data, key=key, name="license.txt")
    assert report.verdict == "compliant", report.to_json()
    assert report.watermark["payload"] == f"{result.watermark_payload:016x}"
    assert report.check("label_present").status == "pass"
    # the carrier stripped and no notice: no label at all
    bare = verify(source.encode(), key=key, name="license.txt")
    assert bare.verdict == "not_found"


def test_markdown_front_matter_merged_and_code_untouched(both, key):
    source = "---\ntitle: Release notes\ntags: [a, b]\n---\n" + package_markdown()
    result = both.label_text(source, "markdown")
    out = result.data.decode("utf-8")
    fm_end = markdown.front_matter(out)[1]
    assert out.startswith("---\ntitle: Release notes\ntags: [a, b]\nAIGC:\n")
    assert '  ContentProducer: "' + PRODUCER + '"' in out[:fm_end]
    # every code block of the original survives byte for byte, without carriers
    for a, b in markdown.verbatim_spans(source, markdown.body_start(source)):
        block = source[a:b]
        if block.strip():
            assert block.rstrip("\n") in out
    body = _visible(out[fm_end:])
    assert body.startswith(NOTICE + "\n\n") and body.rstrip().endswith(NOTICE)
    report = verify(result.data, key=key, name="notes.md")
    assert report.verdict == "compliant", report.to_json()
    assert report.signature["status"] == "valid"
    assert {s["where"] for s in report.explicit["spans"]} == {"start", "end"}
    # labeling again keeps one label, one notice at each end, one carrier per paragraph
    again = both.label_text(result.data, "markdown").data.decode("utf-8")
    assert again.count("AIGC:") == 1 and _visible(again).count(NOTICE) == 2
    assert scan_carriers(again).carriers == scan_carriers(out).carriers


def test_markdown_notice_after_an_open_fence_is_not_code(both):
    out = both.label_text("Intro\n\n```python\nprint(1)\n", "markdown").data.decode("utf-8")
    tail = _visible(out).split("print(1)\n", 1)[1]
    assert tail.startswith("```\n") and tail.rstrip().endswith(NOTICE)
    assert markdown.open_fence(_visible(out)) is None


def test_markdown_other_tools_editing_front_matter_keep_the_signature(labeler, key):
    out = labeler.label_text("# Title\n\nText.\n", "markdown").data.decode("utf-8")
    edited = out.replace("---\nAIGC:", "---\nauthor: someone else\nAIGC:", 1)
    assert verify(edited.encode(), key=key, name="a.md").signature["status"] == "valid"
    changed = out.replace("Title", "Tidle")
    assert changed != out
    assert verify(changed.encode(), key=key, name="a.md").signature["status"] == \
        "content_mismatch"
    # CRLF conversion and NFD normalisation are not content changes
    crlf = unicodedata.normalize("NFD", out).replace("\n", "\r\n")
    assert verify(crlf.encode(), key=key, name="a.md").signature["status"] == "valid"


def test_html_meta_notice_and_carriers_outside_tags(both, key):
    source = pydoc_html()
    result = both.label_text(source, "html")
    out = result.data.decode("utf-8")
    assert out.count('<meta name="AIGC"') == 1
    head = out[: out.lower().index("</head>")]
    assert '<meta name="AIGC"' in head
    visible = _visible(out)
    assert f'<p class="aigc-notice">{NOTICE}</p>' in visible

    class Tags(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.bad = []

        def handle_starttag(self, tag, attrs):
            for k, v in attrs:
                if v and "\ufe07" in v and k != "content":
                    self.bad.append((tag, k))
            if "\ufe07" in tag:
                self.bad.append(tag)

    t = Tags()
    t.feed(out)
    assert not t.bad  # no carrier in a tag name or an attribute
    for pre in ("<pre", "<code"):
        if pre in source:
            seg = out[out.index(pre): out.index(pre) + 400]
            assert "\ufe07" not in seg.split(">", 1)[0]
    report = verify(result.data, key=key, name="page.html")
    assert report.verdict == "compliant", report.to_json()
    record = json.loads(next(c["text"] for c in report.carriers))
    assert record["ProduceID"] == result.record.produce_id
    assert report.watermark["matches_record"] is True


def test_html_fragment_and_relabel_keep_exactly_one_meta(labeler, key):
    first = labeler.label_text("<p>Hello <b>there</b></p>", "html").data
    second = labeler.label_text(first, "html").data.decode("utf-8")
    assert second.count('name="AIGC"') == 1
    assert _visible(second).count(NOTICE) == 1
    assert verify(second.encode(), key=key, name="f.html").signature["status"] == "valid"


def test_explicit_modes_and_policy_validation(labeler, tmp_path):
    plain = "Just text.\n"
    present = labeler.label_text(plain, "text", explicit="present").data.decode("utf-8")
    assert NOTICE not in _visible(present) and scan_carriers(present).carriers == 1
    with pytest.raises(PolicyError):
        labeler.label_text(plain, "text", explicit=False)  # no recipient on record
    logged = Labeler(PRODUCER, labeler.key, recipient_log=tmp_path / "log.jsonl")
    logged.label_text(plain, "text", explicit=False, recipient="acme")
    assert json.loads((tmp_path / "log.jsonl").read_text())["recipient"] == "acme"
    with pytest.raises(PolicyError):
        TextPolicy(notice="Generated by a machine")  # no AI + 生成 element
    with pytest.raises(PolicyError):
        TextPolicy(placement="middle")
    en = Labeler(PRODUCER, labeler.key, Policy(text=TextPolicy(language="zh-en")))
    assert "AI-generated" in en.label_text(plain, "text").data.decode("utf-8")
    with pytest.raises(PolicyError):
        labeler.label_text(plain, "rtf")


def test_token_stream_notice_first_and_carriers_without_buffering(both):
    tokens = ["Here", " is", " the", " answer", ".\n\n", "```", "py\nx", " = 1\n", "```",
              "\n\nDone", "."]
    stream = both.text_stream()
    first = stream.feed(tokens[0])
    assert _visible(first) == NOTICE + "\n\n" + "Here"  # nothing held back
    outs = [first] + [stream.feed(t) for t in tokens[1:]] + [stream.close()]
    for t, o in zip(tokens[1:], outs[1:]):
        assert _visible(o) == t
    text = "".join(outs)
    assert _visible(text) == NOTICE + "\n\n" + "".join(tokens) + "\n\n" + NOTICE
    assert "\ufe07" not in text[text.index("```"): text.rindex("```")]
    assert scan_carriers(text).payload == stream.watermark_payload
    assert [s.where for s in find_notices(text)] == ["start", "end"]


def test_async_token_stream(labeler):
    async def tokens():
        for t in ["Async", " tokens", " arrive", "."]:
            await asyncio.sleep(0)
            yield t

    async def collect():
        return [t async for t in labeler.text_stream().awrap(tokens())]

    out = asyncio.run(collect())
    assert _visible(out[0]).startswith(NOTICE) and _visible("".join(out)).endswith("arrive.")
    assert scan_carriers("".join(out)).carriers == 2  # the notice's paragraph and the content


@pytest.mark.parametrize("data,message", [
    (b"caf\xe9 latin-1", "not UTF-8"),
    (b"ok\n\xff\xfe broken", "not UTF-8"),
    (b"nul\x00inside", "NUL"),
])
def test_bad_text_is_refused_naming_the_file(labeler, tmp_path, data, message):
    src = tmp_path / "bad.txt"
    src.write_bytes(data)
    with pytest.raises(LabelkitError) as exc:
        labeler.label_file(src, tmp_path / "out.txt")
    assert str(src) in str(exc.value) and message in str(exc.value)
    assert not (tmp_path / "out.txt").exists()


def test_mixed_line_endings_and_a_gigantic_line(labeler, key):
    mixed = "one\r\ntwo\nthree\r\n\r\nfour\rfive"
    out = labeler.label_text(mixed, "text").data.decode("utf-8")
    assert _visible(out) == NOTICE + "\r\n\r\n" + mixed  # the dominant ending is used
    line = ("word " * 2_000_000).encode()  # 10 MB without a newline
    result = labeler.label_text(line, "text")
    assert scan_carriers(result.data).carriers == 2
    assert verify(result.data, key=key, name="big.txt").verdict == "compliant"


def test_cli_labels_text_files_and_skips_other_utf8(tmp_path, key, producer):
    key_file = tmp_path / "k"
    subprocess.run([sys.executable, "-m", "labelkit", "keygen", "-o", str(key_file)], check=True,
                   capture_output=True)
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.md").write_text("# T\n\nBody.\n", "utf-8")
    (src / "b.txt").write_text("Plain.\n", "utf-8")
    (src / "c.html").write_text("<!doctype html><html><body><p>Hi</p></body></html>", "utf-8")
    (src / "code.py").write_text("print('not content to label')\n", "utf-8")
    run = subprocess.run([sys.executable, "-m", "labelkit", "label", "--producer", producer,
                          "--key", str(key_file), "-o", str(tmp_path / "out"),
                          "--text-placement", "end", str(src)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) \
        == ["a.md", "b.txt", "c.html"]
    check = subprocess.run([sys.executable, "-m", "labelkit", "verify", "--key", str(key_file),
                            "--json", str(tmp_path / "out")], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    verdicts = [json.loads(line)["verdict"] for line in check.stdout.splitlines()
                if line.startswith("{")]
    assert verdicts == ["compliant"] * 3
    bad = tmp_path / "bad.md"
    bad.write_bytes(b"# \xff\n")
    run = subprocess.run([sys.executable, "-m", "labelkit", "label", "--producer", producer,
                          "--key", str(key_file), "-o", str(tmp_path / "o2"), str(bad)],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "not UTF-8" in run.stderr + run.stdout

