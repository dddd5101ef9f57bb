"""``labelkit serve --workers N`` and ``--no-watermark``: the factory the workers import, the
options they get (paths, never key material), and real servers stopped by SIGTERM (exit 0)."""

from __future__ import annotations

import json
import os
import signal

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
pytest.importorskip("httpx")
pytest.importorskip("python_multipart")

import labelkit  # noqa: E402
from labelkit import signing  # noqa: E402
from labelkit.cli import build_parser  # noqa: E402
from labelkit.cli import serve  # noqa: E402
from labelkit.server import ServerConfig, factory  # noqa: E402

from ._serve import start_server
from .conftest import PRODUCER, skimage_photo  # noqa: E402


@pytest.fixture(scope="module")
def keyfile(tmp_path_factory):
    path = tmp_path_factory.mktemp("key") / "provider.key"
    signing.write_key_pair(path, signing.generate_key("ed25519"))
    return path


def _args(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def test_worker_options_are_paths_not_keys(keyfile, tmp_path, monkeypatch):
    monkeypatch.chdir(keyfile.parent)
    ledger = tmp_path / "ledger.sqlite3"
    args = _args("--key", keyfile.name, "--pubkey", f"{keyfile.name}.pub", "--ledger",
                 str(ledger), "--no-watermark", "--no-visible", "--concurrency", "3",
                 "--workers", "2")
    options = serve._worker_options(args)
    text = factory.options_to_env(options)
    assert json.loads(text)["key"] == str(keyfile)  # absolute: the workers may chdir
    assert "PRIVATE KEY" not in text and "PUBLIC KEY" not in text
    config = factory.config_from_options(json.loads(text))
    assert isinstance(config, ServerConfig)
    assert (config.detect_watermark, config.detect_visible, config.max_concurrency) == (
        False, False, 3)
    assert config.pubkeys == [f"{keyfile}.pub"] and config.c2pa_trust == []
    # The single-process path builds the same settings with the loaded objects.
    direct = serve._config(args, ServerConfig)
    assert isinstance(direct.key, signing.SigningKey)
    assert (direct.detect_watermark, direct.ledger) == (False, str(ledger))
    assert serve._config(_args("--key", str(keyfile), "--ledger", str(ledger)),
                         ServerConfig).detect_watermark is True


def test_factory_refuses_what_it_does_not_know(monkeypatch):
    with pytest.raises(ValueError, match="unknown"):
        factory.options_to_env({"key": "/k", "secret": "x"})
    with pytest.raises(ValueError, match="path"):
        factory.options_to_env({"key": signing.generate_key("ed25519")})
    with pytest.raises(ValueError, match="unknown"):
        factory.config_from_options({"key": "/k", "bogus": 1})
    monkeypatch.delenv(factory.ENV, raising=False)
    with pytest.raises(RuntimeError, match=factory.ENV):
        factory.app()


def test_workers_usage_error(keyfile, capsys):
    from labelkit.cli import main

    assert main(["serve", "--key", str(keyfile), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


def _start(keyfile, tmp_path, *options: str):
    env = dict(os.environ, TMPDIR=str(tmp_path / "tmp"))
    os.makedirs(env["TMPDIR"], exist_ok=True)
    proc, base, _ = start_server(keyfile, "--ledger", str(tmp_path / "ledger.sqlite3"), "-q",
                                 *options, env=env, timeout=60)
    return proc, base


@pytest.fixture(scope="module")
def photo(keyfile):
    key = signing.load_key(keyfile)
    return labelkit.Labeler(PRODUCER, key).label_image(skimage_photo("astronaut.png"), "jpeg")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_real_server_without_watermark_stops_on_sigterm(keyfile, tmp_path, photo, workers):
    import httpx

    proc, base = _start(keyfile, tmp_path, "--workers", workers, "--no-watermark")
    try:
        reports = [httpx.post(base + "/v1/verify", files={"file": ("photo.jpg", photo.data)},
                              timeout=60) for _ in range(4)]
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        output = proc.stdout.read().decode()
    for response in reports:
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["verdict"] == "compliant"
        assert ("signature", "pass") in [(c["id"], c["status"]) for c in report["checks"]]
        assert report["watermark"]["status"] == "n/a"  # not looked for
        assert "watermark" not in [c["id"] for c in report["checks"]]
    assert code == 0, output
    assert [p for p in (tmp_path / "tmp").rglob("*") if p.is_file()] == []
