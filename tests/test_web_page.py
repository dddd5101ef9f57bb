"""The web page at ``/``, in a real headless Chromium (Debian's package) driven by Playwright.

A real ``labelkit serve`` runs in a subprocess; the page is given files through its picker and
through a dispatched drag-and-drop, and what it shows is read back from the DOM: the verdict in
both languages, every check, the record, the watermark's payload, the visible label's region
drawn over the preview, and the error texts of 413 and 422. Every case leaves a screenshot in
``test-artifacts/web/``. Console errors, CSP violations and requests leaving the server fail
the test.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
pytest.importorskip("python_multipart")
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)")

CHROMIUM = "/usr/bin/chromium"
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)

import httpx  # noqa: E402

import labelkit  # noqa: E402
from labelkit import signing  # noqa: E402

from ._serve import start_server
from .conftest import PRODUCER, encode, skimage_photo  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "web"
MAX_UPLOAD_MB = 0.5  # the server's limit: the labeled JPEG (~100 KB) fits, 1 MiB does not


@pytest.fixture(scope="module")
def provider_key() -> signing.SigningKey:
    return signing.generate_key("ed25519")


@pytest.fixture(scope="module")
def files(provider_key) -> dict:
    """A labeled JPEG with its report from the library, and an unlabeled PNG."""
    labeled = labelkit.Labeler(PRODUCER, provider_key).label_image(
        skimage_photo("astronaut.png"), format="jpeg")
    report = labelkit.verify(labeled.data, key=provider_key, name="astronaut.jpg").to_dict()
    assert report["verdict"] == "compliant" and report["explicit"].get("box")
    plain = encode(skimage_photo("coffee.png")[:240, :320], "PNG")
    return {"labeled": labeled, "report": report, "plain": plain}


@pytest.fixture(scope="module")
def server(tmp_path_factory, provider_key):
    tmp = tmp_path_factory.mktemp("web")
    keyfile = tmp / "provider.key"
    signing.write_key_pair(keyfile, provider_key)
    proc, base, _ = start_server(keyfile, "--ledger", str(tmp / "ledger.sqlite3"),
                                 "--max-upload-mb", str(MAX_UPLOAD_MB), "--concurrency", "2",
                                 "-q")
    yield base
    proc.terminate()
    proc.wait(15)


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


class Watched:
    """A page, with every console error, page error and request it made."""

    def __init__(self, page, base: str):
        self.page, self.base = page, base
        self.errors: list[str] = []
        self.requests: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("request", lambda r: self.requests.append(r.url))

    def open(self) -> None:
        response = self.page.goto(self.base + "/")
        assert response.status == 200
        self.page.wait_for_selector('body[data-state="idle"]')

    def pick(self, name: str, data: bytes, mime: str) -> None:
        self.page.set_input_files("#file", files=[{"name": name, "mimeType": mime,
                                                   "buffer": data}])

    def drop(self, name: str, data: bytes, mime: str) -> None:
        """A real drag-and-drop: a DataTransfer holding a File, dispatched on the zone."""
        transfer = self.page.evaluate_handle(
            """([name, b64, type]) => {
                const bin = atob(b64);
                const bytes = new Uint8Array(bin.length);
                for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
                const dt = new DataTransfer();
                dt.items.add(new File([bytes], name, {type}));
                return dt;
            }""", [name, base64.b64encode(data).decode(), mime])
        self.page.dispatch_event("#drop", "dragenter", {"dataTransfer": transfer})
        self.page.dispatch_event("#drop", "dragover", {"dataTransfer": transfer})
        assert "over" in self.page.get_attribute("#drop", "class")  # the zone shows the hover
        self.page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})

    def settle(self, state: str) -> None:
        self.page.wait_for_selector(f'body[data-state="{state}"]', timeout=90_000)

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def shot(self, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000
        return path

    def assert_clean(self, allowed_status: int | None = None) -> None:
        """No console or page errors (a failed POST's own 'Failed to load resource' line for
        ``allowed_status`` aside), and no request to anywhere but this server or a blob."""
        expected = f"status of {allowed_status}" if allowed_status else None
        errors = [e for e in self.errors if not (expected and "Failed to load resource" in e
                                                  and expected in e)]
        assert errors == []
        strays = [u for u in self.requests
                  if not (u.startswith(self.base + "/") or u.startswith("blob:"))]
        assert strays == []


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="zh-CN")
    yield Watched(context.new_page(), server)
    context.close()


def test_page_headers_and_csp(server):
    root = httpx.get(server + "/")
    assert root.status_code == 200 and root.headers["content-type"].startswith("text/html")
    csp = root.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'self'" and directives["script-src"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert directives["img-src"] == "'self' blob:" and directives["object-src"] == "'none'"
    assert root.headers["x-content-type-options"] == "nosniff"
    # No inline script or style, nothing from another origin.
    html = root.text
    assert "<script>" not in html and "<style" not in html and " style=" not in html
    assert "http://" not in html and "https://" not in html
    for name, kind in (("app.js", "javascript"), ("app.css", "css")):
        asset = httpx.get(f"{server}/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
        assert asset.headers["content-security-policy"] == csp
    assert httpx.get(server + "/static/../app.py").status_code == 404
    assert httpx.get(server + "/static/app.py").status_code == 404


def test_labeled_jpeg_is_compliant_with_its_label_region_drawn(page, files):
    report, labeled = files["report"], files["labeled"]
    page.open()
    page.pick("astronaut.jpg", labeled.data, "image/jpeg")
    page.settle("done")
    p = page.page
    assert p.get_attribute("#verdict", "data-verdict") == "compliant"
    badge = page.text("#verdict .badge")
    assert "合规" in badge and "Compliant" in badge and "不合规" not in badge
    assert p.get_attribute('#verdict [lang="zh-CN"]', "lang") == "zh-CN"
    # Every check, in the report's order, with its status in both languages.
    rows = p.query_selector_all("#checks li")
    assert [(r.get_attribute("data-check"), r.get_attribute("data-status")) for r in rows] == [
        (c["id"], c["status"]) for c in report["checks"]]
    assert all("通过" in r.inner_text() and "Pass" in r.inner_text() for r in rows)
    watermark_row = p.inner_text('#checks li[data-check="watermark"]')
    assert "隐藏水印" in watermark_row and "Invisible watermark" in watermark_row
    # The record's seven fields, and the watermark's payload that the server's key found.
    record = labeled.record
    assert page.text('dd[data-field="ProduceID"]') == record.produce_id
    assert page.text('dd[data-field="ContentProducer"]') == PRODUCER
    assert len(p.query_selector_all("#record dd")) == 7
    payload = f"{labeled.watermark_payload:016x}"
    assert page.text("#layer-watermark .payload") == payload
    assert p.get_attribute("#layer-watermark .match", "data-match") == "true"
    assert "有效" in page.text("#layer-signature") and "Valid" in page.text("#layer-signature")
    assert "No C2PA manifest" in page.text("#layer-c2pa")
    # The visible label's region, drawn in the picture's own pixels over the preview...
    p.wait_for_selector('#preview[data-loaded="true"]')
    x0, y0, x1, y1 = report["explicit"]["box"]
    rect = p.query_selector("#label-box")
    assert rect is not None
    assert [float(rect.get_attribute(a)) for a in ("x", "y", "width", "height")] == [
        x0, y0, x1 - x0, y1 - y0]
    # ...and on screen where the label is in the displayed picture.
    img = p.query_selector("#preview-img").bounding_box()
    drawn = rect.bounding_box()
    natural = p.evaluate("() => [document.getElementById('preview-img').naturalWidth,"
                         " document.getElementById('preview-img').naturalHeight]")
    assert natural == [512, 512]
    sx, sy = img["width"] / natural[0], img["height"] / natural[1]
    want = (img["x"] + x0 * sx, img["y"] + y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)
    got = (drawn["x"], drawn["y"], drawn["width"], drawn["height"])
    assert all(abs(g - w) <= 3 for g, w in zip(got, want)), (got, want)
    assert "右下角" in page.text("#layer-explicit") and "bottom right" in page.text(
        "#layer-explicit")
    # Focus moved to the result for keyboard and screen-reader users.
    assert p.evaluate("() => document.activeElement.id") == "result-title"
    page.shot("labeled-jpeg-compliant")
    page.assert_clean()


def test_unlabeled_png_dropped_is_not_found(page, files):
    page.open()
    name = "<img src=x onerror=alert(1)>coffee.png"
    page.drop(name, files["plain"], "image/png")
    page.settle("done")
    p = page.page
    assert p.get_attribute("#verdict", "data-verdict") == "not_found"
    badge = page.text("#verdict .badge")
    assert "未发现标识" in badge and "No label found" in badge
    meaning = page.text("#verdict")
    assert "没有 AI 生成内容标识" in meaning and "carries no AI-generated-content label" in meaning
    assert p.get_attribute('#checks li[data-check="label_present"]', "data-status") == "fail"
    assert "未通过" in page.text('#checks li[data-check="label_present"]')
    assert "Fail" in page.text('#checks li[data-check="label_present"]')
    assert "文件中没有可读的隐式标识" in page.text("#record")
    # A preview, with no region: none was found.
    p.wait_for_selector('#preview[data-loaded="true"]')
    assert p.query_selector("#label-box") is None
    assert "No visible label" in page.text("#preview-caption")
    # The upload's name is text, never markup.
    assert "coffee.png" in page.text("#result-name")
    assert p.query_selector("#result-name img, #result img[src='x']") is None
    page.shot("unlabeled-png-not-found")
    page.assert_clean()


def test_corrupt_file_shows_the_422_text(page, files):
    page.open()
    page.pick("cut.jpg", files["labeled"].data[:200], "image/jpeg")
    page.settle("error")
    p = page.page
    assert p.get_attribute("#error", "data-status") == "422"
    text = page.text("#error")
    assert "无法核验" in text and "Could not verify" in text
    assert "已损坏" in text and "damaged, truncated" in text
    assert "HTTP 422" in text and "cut.jpg: " in text  # the server's own message
    assert p.is_hidden("#result")
    assert p.evaluate("() => document.activeElement.id") == "error"
    page.shot("corrupt-422")
    page.assert_clean(allowed_status=422)


def test_oversized_upload_shows_the_413_text(page):
    page.open()
    big = b"\xff\xd8\xff" + os.urandom(int(MAX_UPLOAD_MB * 1024 * 1024) * 2)
    page.pick("big.jpg", big, "image/jpeg")
    page.settle("error")
    p = page.page
    assert p.get_attribute("#error", "data-status") == "413"
    text = page.text("#error")
    assert "文件太大" in text and "too large" in text and "HTTP 413" in text
    assert "limit" in text  # the server's message
    page.shot("oversized-413")
    page.assert_clean(allowed_status=413)


def test_narrow_screen_has_no_horizontal_scroll(browser, server, files):
    context = browser.new_context(viewport={"width": 360, "height": 780}, locale="zh-CN")
    page = Watched(context.new_page(), server)
    try:
        page.open()
        # The picker is the first thing the keyboard reaches.
        page.page.keyboard.press("Tab")
        assert page.page.evaluate("() => document.activeElement.id") == "file"
        page.pick("astronaut.jpg", files["labeled"].data, "image/jpeg")
        page.settle("done")
        page.page.wait_for_selector('#preview[data-loaded="true"]')
        width = page.page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= 360, f"the page is {width} px wide at a 360 px viewport"
        box = page.page.query_selector("#preview-img").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360
        page.shot("labeled-jpeg-360px")
        page.assert_clean()
    finally:
        context.close()

