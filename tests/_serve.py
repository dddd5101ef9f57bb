"""Starting a real ``labelkit serve`` subprocess on a free loopback port, for the server tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

__all__ = ["free_port", "start_server"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(keyfile, *options: str, env: dict | None = None, timeout: float = 30
                 ) -> tuple[subprocess.Popen, str, int]:
    """Start ``python -m labelkit serve --key KEYFILE --port P OPTIONS...`` and wait until
    /healthz answers; (process, base URL, port). Fails the test with the server's output."""
    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "labelkit", "serve", "--key", os.fspath(keyfile), "--port",
         str(port), *options],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return proc, base, port
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not start: {proc.stdout.read().decode()}")
        time.sleep(0.1)
