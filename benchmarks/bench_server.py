"""The verification service under load (issue 8), short: a real ``labelkit serve`` subprocess.

  .venv/bin/python -m pytest benchmarks/bench_server.py --benchmark-only -p no:cacheprovider -s

The long run (10,000 requests per mode, RSS over the run) is ``make server-load``
(``tools/server_load.py``); this is its short version for ``make bench``, with the tool's own
server, client and checks. Per mode, a fresh ``labelkit serve --workers 2 --concurrency 4 -q``
on 127.0.0.1 (``metadata``: ``--no-watermark --no-visible``, the label's metadata and
signature only; ``watermark``: ``--no-visible``, plus the invisible watermark), 20 requests
of warm-up, then ``ROUNDS`` batches of ``BATCH`` requests from 4 client threads (keep-alive
connections, a multipart upload each). The benchmark's time is one batch's; ``extra_info`` holds
``requests_per_s`` (all the measured requests over their wall time), ``p50_ms`` / ``p99_ms``
(per request, sending to the whole response read), ``requests``, ``failures`` and the RSS of
the server's process tree before and after (``rss_mb_start`` / ``rss_mb_end``). Any failed
request (not 200, not compliant, the watermark not as the mode says) fails the test.

``--concurrency 4`` (slots per worker) equals the client threads: the kernel spreads the
connections over the workers unevenly (3 and 1 is common), and with serve's default of one slot
per CPU the busier worker then refuses some requests with 503 after its 1 s queue wait. This
measures speed; how the default configuration copes with that load is ``make server-load``'s
to judge.

The JPEG is the benchmarks' 1080p photo (scikit-image's astronaut resized to 1920x1080) labeled
by ``Labeler(PRODUCER, key).label_image(pixels, "jpeg")`` with the key the server is given.
The client shares the machine's CPUs with the server.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette", reason="starlette is not installed (labelkit[serve])")
pytest.importorskip("uvicorn", reason="uvicorn is not installed (labelkit[serve])")
pytest.importorskip("python_multipart", reason="python-multipart is not installed "
                    "(labelkit[serve])")
pytest.importorskip("httpx", reason="httpx is not installed (labelkit[test])")

from labelkit import Labeler, signing  # noqa: E402

from .conftest import PRODUCER, record  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import server_load  # noqa: E402

WORKERS = 2
CLIENTS = 4
SLOTS = CLIENTS  # verification slots per worker (serve --concurrency)
BATCH = 100
ROUNDS = {"metadata": 3, "watermark": 2}  # 300 and 200 requests
WARMUP = 20


@pytest.fixture(scope="module")
def served(tmp_path_factory, key, frame_1080p):
    """(keyfile, labeled JPEG, its watermark payload as reports show it, folder)."""
    folder = tmp_path_factory.mktemp("server-bench")
    keyfile = folder / "provider.key"
    signing.write_key_pair(keyfile, key)
    result = Labeler(PRODUCER, key).label_image(frame_1080p, "jpeg", source="astronaut.jpg")
    return keyfile, result.data, f"{result.watermark_payload:016x}", folder


@pytest.mark.parametrize("mode", ["metadata", "watermark"])
def test_server_verify(benchmark, served, mode):
    keyfile, data, payload, folder = served
    server = server_load.Server(keyfile, folder / mode, server_load.MODES[mode],
                                workers=WORKERS, concurrency=SLOTS)
    server.start()
    runs: list[server_load.LoadResult] = []
    try:
        server_load.run_load(server, data, payload, mode, requests=WARMUP, concurrency=CLIENTS)
        rss_start = server_load.tree_rss(server.proc.pid)[0]

        def batch() -> None:
            runs.append(server_load.run_load(server, data, payload, mode, requests=BATCH,
                                             concurrency=CLIENTS))

        benchmark.pedantic(batch, rounds=ROUNDS[mode], iterations=1)
        rss_end = server_load.tree_rss(server.proc.pid)[0]
    finally:
        code = server.stop()
    failures: dict[str, int] = {}
    for r in runs:
        for why, n in r.failures.items():
            failures[why] = failures.get(why, 0) + n
    latencies = np.concatenate([r.latencies for r in runs])
    requests = len(latencies)
    rps = requests / sum(r.wall_s for r in runs)
    p50, p99 = (float(np.percentile(latencies, q)) * 1e3 for q in (50, 99))
    benchmark.extra_info.update(
        mode=mode, checks=server_load.MODE_TEXT[mode], workers=WORKERS,
        slots_per_worker=SLOTS, client_threads=CLIENTS,
        requests=requests, failures=sum(failures.values()), requests_per_s=round(rps, 2),
        p50_ms=round(p50, 2), p99_ms=round(p99, 2), rss_mb_start=round(rss_start / 1e6, 1),
        rss_mb_end=round(rss_end / 1e6, 1), jpeg_bytes=len(data))
    print(f"\n[server bench] {mode} ({server_load.MODE_TEXT[mode]}): {requests} requests, "
          f"{rps:.1f} requests/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, RSS "
          f"{rss_start / 1e6:.0f} -> {rss_end / 1e6:.0f} MB, failures {failures or 0}")
    record(f"verification service, {len(data) / 1e3:.0f} kB 1080p JPEG, {WORKERS} workers, "
           f"{CLIENTS} client threads (time of a batch of {BATCH} requests)",
           f"{mode}: {rps:.1f} requests/s, p50 {p50:.0f} ms, p99 {p99:.0f} ms", benchmark)
    assert not failures, failures
    assert code == 0, server.log_text()
    assert server.leftovers() == []
