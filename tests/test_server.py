"""The verification service: in-process (Starlette's TestClient) and over a real socket (uvicorn).

The reports must equal ``labelkit.verify(...).to_dict()``; limits (size, time, concurrency)
answer JSON errors without reading what they refuse; no upload outlives its request.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
pytest.importorskip("python_multipart")

from starlette.testclient import TestClient  # noqa: E402

import labelkit  # noqa: E402
from labelkit import signing  # noqa: E402
from labelkit.ledger import open_ledger  # noqa: E402
from labelkit.server import ServerConfig, create_app  # noqa: E402
from labelkit.server import app as server_app  # noqa: E402
from labelkit.server.upload import safe_name  # noqa: E402

from ._serve import start_server
from .conftest import PRODUCER, skimage_photo  # noqa: E402


@pytest.fixture(scope="module")
def provider_key() -> signing.SigningKey:
    return signing.generate_key("ed25519")


@pytest.fixture(scope="module")
def ledger_path(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("ledger") / "ledger.sqlite3")


@pytest.fixture(scope="module")
def labeled(provider_key, ledger_path):
    """A labeled JPEG (visible label and watermark) and an item handed out without the label
    to a recipient, both recorded in the ledger."""
    with open_ledger(ledger_path) as ledger:
        labeler = labelkit.Labeler(PRODUCER, provider_key, ledger=ledger)
        photo = labeler.label_image(skimage_photo("astronaut.png"), format="jpeg")
        plain = labelkit.Labeler(PRODUCER, provider_key).label_image(
            skimage_photo("coffee.png")[:200, :200], "png").data
        omitted = labeler.label_image(plain, explicit=False, recipient="customer-42")
    return {"photo": photo, "omitted": omitted}


@pytest.fixture
def temp_dir(tmp_path) -> Path:
    return tmp_path / "uploads"


def make_client(key, ledger_path, temp_dir, **overrides) -> TestClient:
    config = ServerConfig(key=key, ledger=ledger_path, temp_dir=temp_dir, **overrides)
    return TestClient(create_app(config), raise_server_exceptions=False)


@pytest.fixture
def client(provider_key, ledger_path, temp_dir, labeled):
    with make_client(provider_key, ledger_path, temp_dir) as c:
        yield c


def same_report(got: dict, want: dict) -> None:
    assert got["verdict"] == want["verdict"]
    assert got["record"] == want["record"]
    assert [(c["id"], c["status"]) for c in got["checks"]] == [
        (c["id"], c["status"]) for c in want["checks"]]
    assert got["watermark"]["payload"] == want["watermark"]["payload"]
    assert got["signature"] == want["signature"]


def test_verify_multipart_and_raw_equal_the_library(client, labeled, provider_key, temp_dir):
    data = labeled["photo"].data
    want = labelkit.verify(data, key=provider_key, name="photo.jpg").to_dict()
    assert want["verdict"] == "compliant"
    by_form = client.post("/v1/verify", files={"file": ("photo.jpg", data, "image/jpeg")})
    raw = client.post("/v1/verify", content=data, params={"name": "photo.jpg"},
                      headers={"content-type": "image/jpeg"})
    for response in (by_form, raw):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        got = response.json()
        same_report(got, want)
        assert got["path"] == "photo.jpg"
        # The key stays on the server, and the watermark is found with it.
        assert got["watermark"]["present"] is True and got["watermark"]["matches_record"] is True
        assert got["watermark"]["payload"] == f"{labeled['photo'].watermark_payload:016x}"
    assert os.listdir(temp_dir) == []


def test_stripped_copy_is_traced_by_the_watermark(client, labeled):
    from PIL import Image
    import io

    stripped = io.BytesIO()
    Image.open(io.BytesIO(labeled["photo"].data)).save(stripped, "JPEG", quality=90)
    got = client.post("/v1/verify", files={"file": ("copy.jpg", stripped.getvalue())}).json()
    assert got["verdict"] == "traces_only"
    assert got["watermark"]["payload"] == f"{labeled['photo'].watermark_payload:016x}"


def test_records_publish_no_recipient(client, labeled):
    item = labeled["omitted"]
    response = client.get(f"/v1/records/{item.record.produce_id}")
    assert response.status_code == 200
    got = response.json()
    assert got["ProduceID"] == item.record.produce_id and got["producer"] == PRODUCER
    assert got["explicit_applied"] is False and got["watermark_embedded"] is False
    assert got["modality"] == "image" and got["format"] == "png"
    assert got["labeled_at"].endswith("Z")
    assert "customer-42" not in response.text and "recipient" not in got
    assert len(got["essence_digest"]) == 64
    photo = client.get(f"/v1/records/{labeled['photo'].record.produce_id}").json()
    assert photo["explicit_applied"] is True and photo["watermark_embedded"] is True
    missing = client.get("/v1/records/01M8XZB5N38D3H6KZYYZWWWY36")
    assert missing.status_code == 404 and "01M8XZB5N38D3H6KZYYZWWWY36" in missing.json()["error"]


def test_digest_can_be_withheld(provider_key, ledger_path, temp_dir, labeled):
    with make_client(provider_key, ledger_path, temp_dir, publish_digest=False) as c:
        got = c.get(f"/v1/records/{labeled['photo'].record.produce_id}").json()
    assert "essence_digest" not in got and got["watermark_embedded"] is True


def test_declared_oversize_is_refused_unread(provider_key, ledger_path, temp_dir):
    consumed = []

    def body():
        for _ in range(64):
            consumed.append(1 << 14)
            yield b"\0" * (1 << 14)

    with make_client(provider_key, ledger_path, temp_dir, max_upload_bytes=1 << 16) as c:
        response = c.post("/v1/verify", content=body(),
                          headers={"content-length": str(64 << 14)})
    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    assert consumed == []  # not one chunk was asked for
    assert os.listdir(temp_dir) == []


def test_chunked_oversize_stops_at_the_limit(provider_key, ledger_path, temp_dir, labeled):
    def body():
        for _ in range(64):
            yield b"\xff" * (1 << 14)

    with make_client(provider_key, ledger_path, temp_dir, max_upload_bytes=1 << 16) as c:
        chunked = c.post("/v1/verify", content=body())  # no Content-Length: chunked
        assert chunked.status_code == 413, chunked.text
        form = c.post("/v1/verify", files={"file": ("big.jpg", b"\xff" * (1 << 17))})
        assert form.status_code == 413
    assert os.listdir(temp_dir) == []


def test_empty_upload_is_400(client, temp_dir):
    for response in (client.post("/v1/verify", content=b""),
                     client.post("/v1/verify", files={"file": ("empty.jpg", b"")}),
                     client.post("/v1/verify", data={"note": "no file"},
                                 files={"other": (None, "field only")})):
        assert response.status_code == 400, response.text
        assert response.json()["error"]
    assert os.listdir(temp_dir) == []


def test_truncated_jpeg_is_422_naming_the_upload(client, labeled, temp_dir):
    data = labeled["photo"].data
    response = client.post("/v1/verify", files={"file": ("cut.jpg", data[:200])})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["path"] == "cut.jpg" and body["error"].startswith("cut.jpg: ")
    assert str(temp_dir) not in response.text  # never the server's temp file
    unknown = client.post("/v1/verify", files={"file": ("x.bin", b"\x00\x01\x02" * 100)})
    assert unknown.status_code == 415 and unknown.json()["path"] == "x.bin"
    assert os.listdir(temp_dir) == []


def test_traversal_in_the_filename_is_harmless(client, labeled, temp_dir, tmp_path):
    data = labeled["photo"].data
    for name in ("../../etc/passwd", "..\\..\\x.jpg", "/etc/passwd", "..", "a\x00b\n.jpg"):
        response = client.post("/v1/verify", files={"file": (name, data)})
        assert response.status_code == 200, (name, response.text)
        path = response.json()["path"]
        assert "/" not in path and "\\" not in path and ".." not in path and path.isprintable()
        raw = client.post("/v1/verify", content=data, params={"name": name}).json()["path"]
        assert raw == path or "\x00" in name  # httpx percent-escapes a multipart name's NUL
        assert raw.isprintable() and "/" not in raw
    assert safe_name("../../etc/passwd") == "passwd" and safe_name("..") == "upload"
    assert os.listdir(temp_dir) == []
    assert not (tmp_path / "passwd").exists()


def _slow_verify(monkeypatch, release: threading.Event, started: threading.Event):
    real = server_app.verify

    def slow(*args, **kwargs):
        started.set()
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(server_app, "verify", slow)


def test_saturated_slots_give_503(provider_key, ledger_path, temp_dir, labeled, monkeypatch):
    release, started = threading.Event(), threading.Event()
    _slow_verify(monkeypatch, release, started)
    data = labeled["photo"].data
    with make_client(provider_key, ledger_path, temp_dir, max_concurrency=1,
                     queue_wait_s=0.2) as c:
        first: dict = {}
        worker = threading.Thread(target=lambda: first.setdefault(
            "r", c.post("/v1/verify", content=data)))
        worker.start()
        assert started.wait(10)
        assert c.get("/healthz").json()["busy"] == 1
        busy = c.post("/v1/verify", content=data)
        assert busy.status_code == 503 and int(busy.headers["retry-after"]) > 0
        assert "busy" in busy.json()["error"]
        release.set()
        worker.join(20)
        assert first["r"].status_code == 200
        assert c.get("/healthz").json()["busy"] == 0
    assert os.listdir(temp_dir) == []


def test_timeout_gives_504_and_the_upload_is_removed_after(provider_key, ledger_path, temp_dir,
                                                           labeled, monkeypatch):
    release, started = threading.Event(), threading.Event()
    _slow_verify(monkeypatch, release, started)
    with make_client(provider_key, ledger_path, temp_dir, request_timeout_s=0.3,
                     max_concurrency=1) as c:
        response = c.post("/v1/verify", content=labeled["photo"].data)
        assert response.status_code == 504 and "0.3 s" in response.json()["error"]
        # The abandoned verification still holds its slot and its file until it ends.
        assert c.get("/healthz").json()["busy"] == 1
        release.set()
        deadline = time.monotonic() + 10
        while (os.listdir(temp_dir) or c.get("/healthz").json()["busy"]) and \
                time.monotonic() < deadline:
            time.sleep(0.05)
    assert os.listdir(temp_dir) == []


def test_health_openapi_root_and_json_errors(client):
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    doc = client.get("/openapi.json")
    assert doc.status_code == 200
    spec = json.loads(doc.content)
    assert spec["openapi"].startswith("3.1")
    assert {"/v1/verify", "/v1/records/{ProduceID}", "/healthz", "/openapi.json"} <= set(
        spec["paths"])
    report = spec["components"]["schemas"]["Report"]
    assert set(report["properties"]["verdict"]["enum"]) == set(labelkit.verify.__globals__[
        "VERDICTS"])
    root = client.get("/", follow_redirects=False)  # the web page (tests/test_web_page.py)
    assert root.status_code == 200 and root.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in root.headers["content-security-policy"]
    for response in (client.get("/nowhere"), client.get("/v1/verify")):
        assert response.status_code in (404, 405)
        assert response.headers["content-type"] == "application/json"
        assert response.json()["error"]


def test_the_key_and_server_paths_never_show(client, provider_key, labeled):
    pem = provider_key.to_pem().decode()
    secret_lines = [line for line in pem.splitlines() if line and not line.startswith("-----")]
    texts = [client.post("/v1/verify", content=labeled["photo"].data).text,
             client.post("/v1/verify", content=b"\xff\xd8\xff").text,
             client.get("/healthz").text, client.get("/openapi.json").text,
             client.get(f"/v1/records/{labeled['photo'].record.produce_id}").text]
    for text in texts:
        assert "upload-" not in text and "PRIVATE" not in text  # no temp file, no key
        assert not any(line in text for line in secret_lines)


# -- a real server --------------------------------------------------------------------------------


@pytest.fixture
def real_server(tmp_path, provider_key, ledger_path, labeled):
    keyfile = tmp_path / "provider.key"
    signing.write_key_pair(keyfile, provider_key)
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    os.makedirs(env["TMPDIR"])
    proc, base, port = start_server(keyfile, "--ledger", ledger_path, "--max-upload-mb", "1",
                                    "--concurrency", "2", "-q", env=env)
    yield base, port, Path(env["TMPDIR"])
    proc.terminate()
    proc.wait(15)


def test_real_server(real_server, labeled, provider_key):
    import httpx

    base, port, tmp = real_server
    data = labeled["photo"].data
    assert len(data) < 1 << 20
    want = labelkit.verify(data, key=provider_key, name="photo.jpg").to_dict()
    got = httpx.post(base + "/v1/verify", files={"file": ("photo.jpg", data)}, timeout=60)
    assert got.status_code == 200, got.text
    same_report(got.json(), want)
    raw = httpx.post(base + "/v1/verify?name=photo.jpg", content=data, timeout=60).json()
    same_report(raw, want)
    record = httpx.get(f"{base}/v1/records/{labeled['omitted'].record.produce_id}").json()
    assert "customer-42" not in json.dumps(record)
    # Over the limit by Content-Length: answered before a byte of the body is sent.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        reply = s.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 413") and "100 Continue" not in reply
    # Nothing left in the server's temp folder but its own (empty) private folder.
    leftovers = [p for p in tmp.rglob("*") if p.is_file()]
    assert leftovers == []


def test_serve_usage_errors(tmp_path, capsys):
    from labelkit.cli import main

    assert main(["serve", "--key", str(tmp_path / "missing.key")]) == 2
    assert "--key" in capsys.readouterr().err
    keyfile = tmp_path / "provider.key"
    signing.write_key_pair(keyfile, signing.generate_key("ed25519"))
    assert main(["serve", "--key", str(keyfile), "--ledger", "http://example.invalid/x"]) == 2
    assert "--ledger" in capsys.readouterr().err
    assert main(["serve", "--key", str(keyfile), "--max-upload-mb", "0"]) == 2
    assert main(["serve", "--key", str(keyfile), "--no-visible", "--require-visible"]) == 2


def test_slots_serve_waiters_first_come_first_served():
    import threading

    import anyio

    from labelkit.server.limits import Slots

    order: list[str] = []

    async def main() -> None:
        slots = Slots(1)
        gate = threading.Event()

        async def job(name: str, hold: bool) -> None:
            await slots.run(lambda: (order.append(name), hold and gate.wait(5)), wait_s=5)

        async with anyio.create_task_group() as tg:
            tg.start_soon(job, "first", True)
            await anyio.sleep(0.05)
            tg.start_soon(job, "waiter", False)
            await anyio.sleep(0.05)
            gate.set()
            while slots.busy:  # the slot is free, and the waiter has not looked yet
                await anyio.sleep(0)
            tg.start_soon(job, "newcomer", False)

    anyio.run(main)
    assert order == ["first", "waiter", "newcomer"]
