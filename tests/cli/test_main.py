"""`labelkit` itself: help, --version, --report, exit-code mapping, the real console entry,
Ctrl-C, and the progress display."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import labelkit
from labelkit.cli._inputs import STATE_NAME
from labelkit.cli._progress import Progress

from ..conftest import PRODUCER, skimage_photo
from .conftest import IMAGES, ROOT, image_bytes, run_subprocess


def test_version(cli):
    r = cli("--version")
    assert r.code == 0 and r.out.strip() == f"labelkit {labelkit.__version__}"


def test_report_lists_formats_and_implementation(cli):
    r = cli("--report")
    assert r.code == 0
    assert "implementation: " in r.out
    formats_line = next(line for line in r.out.splitlines() if line.startswith("formats:"))
    for name in ("jpeg", "png", "webp", "gif", "tiff"):
        assert name in formats_line


def test_help_explains_every_command(cli):
    top = cli("-h")
    assert top.code == 0 and "exit status" in top.out
    for command in ("keygen", "label", "verify"):
        assert command in top.out
        r = cli(command, "-h")
        assert r.code == 0 and "examples:" in r.out and f"labelkit {command}" in r.out


def test_no_command_is_a_usage_error(cli):
    r = cli()
    assert r.code == 2 and "usage: labelkit" in r.err
    r = cli("frobnicate")
    assert r.code == 2 and "invalid choice" in r.err


def test_internal_error_mapping(cli, monkeypatch):
    from labelkit import features

    def broken() -> str:
        raise RuntimeError("feature table broke")

    monkeypatch.setattr(features, "report_text", broken)
    r = cli("--report")
    assert r.code == 3
    assert "internal error: RuntimeError: feature table broke" in r.err
    assert "report" in r.err and "--debug" in r.err and "Traceback" not in r.err
    r = cli("--report", "--debug")
    assert r.code == 3 and "Traceback (most recent call last)" in r.err


# -- the real console entry -------------------------------------------------------------------


def test_console_entry_end_to_end(tmp_path):
    r = run_subprocess("--report")
    assert r.returncode == 0 and "formats: jpeg" in r.stdout and "implementation:" in r.stdout
    key = tmp_path / "provider.key"
    r = run_subprocess("keygen", "-o", key)
    assert r.returncode == 0, r.stderr
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "coffee.jpg").write_bytes(image_bytes(skimage_photo("coffee.png"), "JPEG"))
    (photos / "notes.csv").write_text("skip,me\n")
    r = run_subprocess("label", "--producer", PRODUCER, "--key", key, "-o", tmp_path / "out",
                       "-j", "2", photos)
    assert r.returncode == 0, r.stderr
    assert "labeled 1, skipped 0" in r.stdout
    r = run_subprocess("verify", "--pubkey", f"{key}.pub", "--json", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    (d,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert d["verdict"] == "compliant" and d["signature"]["status"] == "valid"
    r = run_subprocess("label", "--key", key, "-o", tmp_path / "out", photos)
    assert r.returncode == 2 and "--producer" in r.stderr
    r = run_subprocess("verify", photos / "notes.csv")  # named: read as plain text, unlabeled
    assert r.returncode == 1 and "not_found" in r.stdout


# -- Ctrl-C -----------------------------------------------------------------------------------


def _journal_lines(outdir: Path) -> int:
    try:
        return len((outdir / STATE_NAME).read_text().splitlines())
    except FileNotFoundError:
        return 0


def _interrupted_run(tmp_path: Path, keyfile: Path, jobs: str, sig: int):
    """Start labeling 30 photos in a subprocess, send ``sig`` to its process group once two
    are done (what a terminal does on Ctrl-C), wait; return what a rerun needs."""
    photos = tmp_path / "photos"
    photos.mkdir()
    base = skimage_photo("astronaut.png")[::2, ::2]  # 256x256: quick, still a real photo
    for i in range(30):  # different pictures, so no two outputs are alike
        (photos / f"{i:03d}.png").write_bytes(image_bytes(np.roll(base, 7 * i, axis=1), "PNG"))
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    args = [sys.executable, "-m", "labelkit", "label", "--producer", PRODUCER, "--key",
            str(keyfile), "-o", str(out), str(photos)]
    proc = subprocess.Popen([*args, "-j", jobs], env=env, start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _journal_lines(out) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, sig)
    stdout, stderr = proc.communicate(timeout=120)
    return proc.returncode, stdout, stderr, out, args, env


def _rerun_completes(out: Path, args: list[str], env: dict, pubfile: Path) -> None:
    done = _journal_lines(out)
    r = subprocess.run([*args, "-j", "2"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"labeled {30 - done}, skipped {done} (already done)" in r.stdout
    r = subprocess.run([sys.executable, "-m", "labelkit", "verify", "--pubkey", str(pubfile),
                        "--json", "--no-visible", "-j", "2", str(out)],
                       env=env, capture_output=True, text=True, timeout=300)
    verdicts = [json.loads(line)["verdict"] for line in r.stdout.splitlines()]
    assert verdicts == ["compliant"] * 30, r.stderr


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_stops_cleanly_and_rerun_resumes(tmp_path, keyfile, pubfile, jobs):
    code, stdout, stderr, out, args, env = _interrupted_run(tmp_path, keyfile, jobs,
                                                            signal.SIGINT)
    assert code == 130, (stdout, stderr)
    assert "interrupted" in stdout + stderr and "Traceback" not in stderr
    done = _journal_lines(out)
    written = sorted(p.name for p in out.iterdir() if p.name != STATE_NAME)
    assert not [n for n in written if n.endswith(".lk-tmp")]  # nothing half-written left
    assert 2 <= len(written) == done < 30  # every finished output is on record
    _rerun_completes(out, args, env, pubfile)


def test_killed_run_never_leaves_an_output_a_rerun_would_skip(tmp_path, keyfile, pubfile):
    code, stdout, stderr, out, args, env = _interrupted_run(tmp_path, keyfile, "2",
                                                            signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert 2 <= _journal_lines(out) < 30
    _rerun_completes(out, args, env, pubfile)


# -- progress ---------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_bar_on_a_terminal():
    stream, clock = io.StringIO(), _Clock()
    progress = Progress(10, stream=stream, tty=True, clock=clock)
    clock.now += 2
    progress.advance(4)
    text = stream.getvalue()
    assert text.startswith("\r\x1b[K[") and "4/10 files (40%)" in text
    assert "2.0 files/s" in text and "ETA 0:03" in text
    progress.print("labelkit: error: x.png: broken")  # above the bar, then the bar again
    assert stream.getvalue().endswith("labelkit: error: x.png: broken\n" + text)
    progress.close()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_progress_plain_lines_when_not_a_terminal():
    stream, clock = io.StringIO(), _Clock()
    progress = Progress(100, stream=stream, tty=False, plain_interval=10, clock=clock)
    for _ in range(30):
        clock.now += 1
        progress.advance()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3  # one every 10 s, never a carriage return
    assert lines[0] == "labelkit: 10/100 files (10%), 1.0 files/s, ETA 1:30"
    assert "\r" not in stream.getvalue()


def test_progress_disabled_prints_nothing():
    stream, clock = io.StringIO(), _Clock()
    progress = Progress(5, stream=stream, tty=True, enabled=False, clock=clock)
    clock.now += 60
    progress.advance(5)
    progress.close()
    assert stream.getvalue() == ""


def test_label_on_a_terminal_shows_the_bar(cli, tree, keyfile, tmp_path, monkeypatch):
    monkeypatch.setattr("labelkit.cli._progress._isatty", lambda stream: True)
    r = cli("label", "--producer", PRODUCER, "--key", keyfile, "-o", tmp_path / "out", tree)
    assert r.code == 0
    assert f"{len(IMAGES)}/{len(IMAGES)} files (100%)" in r.err and "\r\x1b[K" in r.err
    r = cli("label", "-q", "--producer", PRODUCER, "--key", keyfile, "-o", tmp_path / "o2", tree)
    assert r.code == 0 and r.err == "" and r.out == ""
