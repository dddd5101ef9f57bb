#!/usr/bin/env python3
"""Load the verification service on loopback: requests/s, p50/p99 latency, failures, memory.

  .venv/bin/python tools/server_load.py                      # 10,000 requests per mode, 2 workers
  .venv/bin/python tools/server_load.py --requests 3000 --modes watermark --out load.md
  .venv/bin/python tools/server_load.py --workers 1 --server-concurrency 2   # one process

Issue 8: "verification requests per second for 1080p JPEGs at 2 workers, metadata + signature
only and with watermark detection, with p50/p99 latency; no failed request and no memory growth
over 10,000 requests".

For each mode a fresh ``python -m labelkit serve --key K --port <free> --workers 2 -q`` (plus the
mode's options) runs on 127.0.0.1 as a subprocess, with its own ledger and TMPDIR in a temp
folder. Modes:

* ``metadata``: ``--no-watermark --no-visible``: the label's metadata and its signature, no
  pixel decoded;
* ``watermark``: ``--no-visible``: the same plus the invisible watermark (the first frame is
  decoded and searched with the key's secret);
* ``full``: serve's defaults: the watermark and the visible label (not in the default run).

The JPEG is made at run time: scikit-image's astronaut (in its wheel) resized to 1920x1080
(Lanczos) and labeled by ``labelkit.Labeler(PRODUCER, key).label_image(pixels, "jpeg")``
(visible label, watermark, metadata, signature) with the key the server is given.

The client: ``--concurrency`` threads, each with its own ``httpx.Client`` (one keep-alive
connection; ``--new-connections`` opens one per request instead), posting the JPEG as a
multipart upload (``curl -F``; ``--raw``: the raw body) until ``--requests`` are done. A request
fails on a transport error, any status but 200, a verdict other than ``compliant``, or a
watermark finding other than the mode's (found with the record's payload when looked for,
``n/a`` when not). Latency is per request, from sending to the whole response read; requests/s
is all requests over the wall time from the first send to the last response.

Memory: the resident set (VmRSS) summed over the server's process tree (the uvicorn supervisor
and its workers) from /proc: before the first request, after the warm-up (the 1,000th request)
and every 500 requests to the end. The run fails when the RSS grows between the warm-up and the
end by more than ``--max-growth-mb`` (30 MB) or ``--max-growth-pct`` (10 %) of the RSS after
the warm-up, whichever is hit first. Why these: the first requests grow the heap to its working
size (imports done lazily, numpy/Pillow buffers, glibc's per-thread arenas for the verification
threads), so growth is counted from the warm-up on; after that, what the workers hold per
request in flight is a few frames (a 1080p RGB frame is 6 MB, its float32 luma 8 MB), and the
allocator returning or keeping such blocks moves the RSS by tens of MB either way without any
leak: 30 MB is about the two workers' in-flight working set. A leak shows as steady growth: over
9,000 requests 30 MB is 3.4 kB a request, so keeping any request's upload (450 kB), frame or
report would be caught many times over. The slope of a least-squares line through the samples
after the warm-up (kB/request) is printed beside it, to tell a trend from a step.

Also checked per mode: the server exits 0 on SIGTERM and leaves no upload in its temp folder.
Exit status: 0 all good, 1 a failed request, memory growth over the limit, or a server problem.
The client runs on the same machine and takes CPU from the server: its CPU time is printed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

__all__ = ["MODES", "LoadResult", "Server", "labeled_jpeg", "markdown", "run_load", "tree_rss"]

PRODUCER = "001191110102MAD55U9H0F10002"
MODES = {  # mode -> serve options
    "metadata": ["--no-watermark", "--no-visible"],
    "watermark": ["--no-visible"],
    "full": [],
}
MODE_TEXT = {
    "metadata": "metadata + signature",
    "watermark": "metadata + signature + watermark",
    "full": "metadata + signature + watermark + visible label",
}
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
MB = 1e6


# -- the picture ----------------------------------------------------------------------------------


def labeled_jpeg(key) -> tuple[bytes, str]:
    """A real photo resized to 1920x1080 and labeled with ``key``: (bytes, watermark payload)."""
    import skimage.data
    from PIL import Image

    import labelkit

    with Image.open(Path(skimage.data.__file__).parent / "astronaut.png") as im:
        pixels = np.asarray(im.convert("RGB").resize((1920, 1080), Image.Resampling.LANCZOS))
    result = labelkit.Labeler(PRODUCER, key).label_image(pixels, "jpeg", source="astronaut.jpg")
    return result.data, f"{result.watermark_payload:016x}"  # as reports show it


# -- the server's processes -----------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        out.setdefault(ppid, []).append(int(entry))
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc."""
    children = _children()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def _rss(pid: int) -> int:
    """Resident bytes of one process (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all CPUs), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / TICKS


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid``'s process tree."""
    return sum(_cpu_s(p) for p in process_tree(pid))


def tree_rss(pid: int) -> tuple[int, dict[int, int]]:
    """The RSS summed over ``pid``'s process tree, and per process."""
    per = {p: _rss(p) for p in process_tree(pid)}
    return sum(per.values()), per


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``labelkit serve`` in a subprocess on 127.0.0.1, with its own ledger and TMPDIR."""

    def __init__(self, keyfile: Path, folder: Path, options: list[str], *, workers: int,
                 concurrency: int | None) -> None:
        self.folder = folder
        self.tmp = folder / "tmp"
        self.tmp.mkdir(parents=True)
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.command = [sys.executable, "-m", "labelkit", "serve", "--key", str(keyfile),
                        "--port", str(self.port), "--ledger", str(folder / "ledger.sqlite3"),
                        "-q", *options]
        if workers != 1:
            self.command += ["--workers", str(workers)]
        if concurrency is not None:
            self.command += ["--concurrency", str(concurrency)]
        self.log_path = folder / "server.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> None:
        import httpx

        env = dict(os.environ, TMPDIR=str(self.tmp))
        self.log = open(self.log_path, "wb")  # a file, not a pipe: a full pipe stalls a server
        self.proc = subprocess.Popen(self.command, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd=self.folder)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start: {self.log_text()}")
            # Up when it answers and every worker is there (supervisor + workers).
            try:
                up = httpx.get(self.base + "/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                up = False
            if up and len(self.workers_pids()) >= self.workers:
                break
            time.sleep(0.2)

    def workers_pids(self) -> list[int]:
        """The processes that serve: the workers, or the one server process."""
        if self.proc is None:
            return []
        if self.workers == 1:
            return [self.proc.pid]
        # The supervisor's children running the app (not multiprocessing's helpers).
        out = []
        for p in process_tree(self.proc.pid)[1:]:
            try:
                with open(f"/proc/{p}/cmdline", "rb") as f:
                    cmd = f.read()
            except OSError:
                continue
            if b"resource_tracker" not in cmd:
                out.append(p)
        return out

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM, as a service manager would; the exit status (None: had to be killed)."""
        if self.proc is None:
            return None
        pids = process_tree(self.proc.pid)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            for p in reversed(pids):  # ours: the server and the workers it started
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.wait()
            code = None
        self.log.close()
        return code

    def leftovers(self) -> list[str]:
        """Files left in the server's TMPDIR (its uploads' private folders should be gone)."""
        return [str(p.relative_to(self.tmp)) for p in self.tmp.rglob("*") if p.is_file()]


# -- the load -------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    mode: str
    requests: int
    wall_s: float
    latencies: np.ndarray
    failures: dict[str, int]
    samples: list[tuple[int, int]]  # (requests done, tree RSS bytes)
    per_process_rss: dict[int, int] = field(default_factory=dict)
    worker_cpu_s: list[float] = field(default_factory=list)
    client_cpu_s: float = 0.0
    other_cpu_s: float = 0.0  # CPU the rest of the machine used meanwhile
    warmup: int = 1000
    exit_code: int | None = 0
    leftovers: list[str] = field(default_factory=list)
    server: str = ""

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1e3

    def rss_at(self, done: int) -> int:
        return next(r for n, r in self.samples if n >= done)

    @property
    def rss_start(self) -> int:
        return self.samples[0][1]

    @property
    def rss_warm(self) -> int:
        return self.rss_at(self.warmup)

    @property
    def rss_end(self) -> int:
        return self.samples[-1][1]

    @property
    def growth(self) -> int:
        return self.rss_end - self.rss_warm

    def slope_kb(self) -> float | None:
        """kB per request of a least-squares line through the samples after the warm-up."""
        pts = [(n, r) for n, r in self.samples if n >= self.warmup]
        if len(pts) < 3:
            return None
        x, y = np.array(pts, dtype=float).T
        return float(np.polyfit(x, y, 1)[0]) / 1e3


def _check(response, mode: str, payload: str) -> str | None:
    """Why a response is a failure, or None."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}"
    try:
        report = response.json()
    except ValueError:
        return "not JSON"
    if report.get("verdict") != "compliant":
        return f"verdict {report.get('verdict')}"
    mark = report.get("watermark") or {}
    if mode == "metadata":
        if mark.get("status") != "n/a":
            return f"watermark {mark.get('status')} (not looked for in this mode)"
    elif not (mark.get("present") and mark.get("payload") == payload
              and mark.get("matches_record")):
        return f"watermark {mark.get('status')} payload {mark.get('payload')}"
    return None


def run_load(server: Server, data: bytes, payload: str, mode: str, *, requests: int,
             concurrency: int, warmup: int = 1000, sample_every: int = 500,
             new_connections: bool = False, raw: bool = False,
             progress: bool = False) -> LoadResult:
    """Fire ``requests`` verifications with ``concurrency`` client threads; measure."""
    import httpx

    warmup = min(warmup, requests)
    latencies = np.zeros(requests)
    failures: dict[str, int] = {}
    samples: list[tuple[int, int]] = [(0, tree_rss(server.proc.pid)[0])]
    marks = set(range(sample_every, requests + 1, sample_every)) | {warmup, requests}
    lock = threading.Lock()
    todo = itertools.count()
    done = [0]
    url = server.base + "/v1/verify" + ("?name=astronaut.jpg" if raw else "")
    limits = httpx.Limits(max_connections=1,
                          max_keepalive_connections=0 if new_connections else 1)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with httpx.Client(timeout=120, limits=limits) as client:
                while True:
                    i = next(todo)
                    if i >= requests:
                        return
                    t0 = time.perf_counter()
                    try:
                        if raw:
                            response = client.post(url, content=data)
                        else:
                            response = client.post(
                                url, files={"file": ("astronaut.jpg", data, "image/jpeg")})
                        why = _check(response, mode, payload)
                    except httpx.HTTPError as exc:
                        why = f"{type(exc).__name__}"
                    latencies[i] = time.perf_counter() - t0
                    with lock:
                        if why is not None:
                            failures[why] = failures.get(why, 0) + 1
                        done[0] += 1
                        n = done[0]
                        if n in marks:
                            samples.append((n, tree_rss(server.proc.pid)[0]))
                            if progress:
                                print(f"  {mode}: {n}/{requests} requests, "
                                      f"{sum(failures.values())} failed, RSS "
                                      f"{samples[-1][1] / MB:.0f} MB", file=sys.stderr,
                                      flush=True)
        except BaseException as exc:  # a bug in the client: the run is void
            errors.append(exc)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    busy0, tree0 = machine_busy_s(), tree_cpu_s(server.proc.pid)
    wcpu0 = {p: _cpu_s(p) for p in server.workers_pids()}
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    busy1, tree1 = machine_busy_s(), tree_cpu_s(server.proc.pid)
    wcpu = [_cpu_s(p) - wcpu0.get(p, 0.0) for p in server.workers_pids()]
    samples.sort()
    client = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    return LoadResult(mode=mode, requests=requests, wall_s=wall, latencies=latencies,
                      failures=failures, samples=samples,
                      per_process_rss=tree_rss(server.proc.pid)[1], worker_cpu_s=wcpu,
                      client_cpu_s=client,
                      other_cpu_s=max(0.0, (busy1 - busy0) - (tree1 - tree0) - client),
                      warmup=warmup)


# -- the report -----------------------------------------------------------------------------------


def growth_limit(result: LoadResult, max_mb: float, max_pct: float) -> float:
    """The allowed growth in bytes: the smaller of the two limits."""
    return min(max_mb * MB, result.rss_warm * max_pct / 100)


def markdown(results: list[LoadResult], *, header: str, max_mb: float, max_pct: float) -> str:
    lines = [header, "",
             "| mode | checks | requests | failures | requests/s | p50 ms | p99 ms "
             "| RSS start MB | RSS at warm-up MB | RSS end MB | growth after warm-up MB |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r.mode} | {MODE_TEXT[r.mode]} | {r.requests:,} | {r.failed} | {r.rps:.1f} "
            f"| {r.percentile(50):.1f} | {r.percentile(99):.1f} | {r.rss_start / MB:.0f} "
            f"| {r.rss_warm / MB:.0f} (at {r.warmup:,}) | {r.rss_end / MB:.0f} "
            f"| {r.growth / MB:+.1f} |")
    lines.append("")
    for r in results:
        slope = r.slope_kb()
        limit = growth_limit(r, max_mb, max_pct)
        trend = f"; trend {slope:+.2f} kB/request after warm-up" if slope is not None else ""
        lines.append(f"- **{r.mode}** (`{r.server}`): {r.wall_s:.1f} s; latency min "
                     f"{r.latencies.min() * 1e3:.1f} / mean {r.latencies.mean() * 1e3:.1f} / "
                     f"p90 {r.percentile(90):.1f} / max {r.latencies.max() * 1e3:.1f} ms; "
                     f"growth {r.growth / MB:+.1f} MB against a limit of {limit / MB:.1f} MB"
                     f"{trend}.")
        lines.append(f"  - RSS every sample (requests: MB): "
                     + ", ".join(f"{n}: {b / MB:.0f}" for n, b in r.samples))
        lines.append(f"  - RSS per process at the end (MB): "
                     + ", ".join(f"{pid}: {b / MB:.0f}" for pid, b in r.per_process_rss.items()))
        if r.worker_cpu_s:
            total = sum(r.worker_cpu_s) or 1
            lines.append(f"  - CPU s per serving process: "
                         + ", ".join(f"{c:.1f} ({c / total:.0%})" for c in r.worker_cpu_s)
                         + f"; the client's own CPU: {r.client_cpu_s:.1f} s; other "
                         f"processes: {r.other_cpu_s:.1f} s ({r.other_cpu_s / r.wall_s:.2f} "
                         f"CPUs on average)")
        if r.failures:
            lines.append("  - failures: " + ", ".join(f"{k}: {v}"
                                                       for k, v in sorted(r.failures.items())))
        if r.exit_code != 0:
            lines.append(f"  - the server's exit status on SIGTERM: {r.exit_code}")
        if r.leftovers:
            lines.append(f"  - files left in the server's TMPDIR: {r.leftovers[:5]}")
    return "\n".join(lines) + "\n"


def verdict(result: LoadResult, max_mb: float, max_pct: float) -> list[str]:
    """What is wrong with a run (empty: nothing)."""
    out = []
    if result.failed:
        out.append(f"{result.mode}: {result.failed} failed requests")
    if result.growth > growth_limit(result, max_mb, max_pct):
        out.append(f"{result.mode}: RSS grew {result.growth / MB:.1f} MB after the warm-up "
                   f"(limit {growth_limit(result, max_mb, max_pct) / MB:.1f} MB)")
    if result.exit_code != 0:
        out.append(f"{result.mode}: the server exited with {result.exit_code} on SIGTERM")
    if result.leftovers:
        out.append(f"{result.mode}: {len(result.leftovers)} files left in the server's TMPDIR")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--modes", default="metadata,watermark",
                    help=f"comma-separated, of {', '.join(MODES)} (default: %(default)s)")
    ap.add_argument("--requests", type=int, default=10_000, help="per mode (default: %(default)s)")
    ap.add_argument("--concurrency", type=int, default=4,
                    help="client requests in flight (default: %(default)s)")
    ap.add_argument("--workers", type=int, default=2,
                    help="serve --workers (default: %(default)s)")
    ap.add_argument("--server-concurrency", type=int, default=None, metavar="N",
                    help="serve --concurrency, per worker (default: serve's, one per CPU)")
    ap.add_argument("--warmup", type=int, default=1000,
                    help="requests before the RSS growth is counted (default: %(default)s)")
    ap.add_argument("--sample-every", type=int, default=500,
                    help="requests between RSS samples (default: %(default)s)")
    ap.add_argument("--max-growth-mb", type=float, default=30.0)
    ap.add_argument("--max-growth-pct", type=float, default=10.0)
    ap.add_argument("--new-connections", action="store_true",
                    help="a new TCP connection per request (default: keep-alive)")
    ap.add_argument("--raw", action="store_true",
                    help="post the raw body (?name=) instead of a multipart upload")
    ap.add_argument("--out", type=Path, help="also write the Markdown report here")
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        ap.error(f"unknown mode(s) {unknown}; choose from {', '.join(MODES)}")
    if args.requests < 1 or args.concurrency < 1 or args.workers < 1:
        ap.error("--requests, --concurrency and --workers must be positive")

    import httpx
    import uvicorn

    from labelkit import signing

    folder = Path(tempfile.mkdtemp(prefix="labelkit-load-"))
    results: list[LoadResult] = []
    problems: list[str] = []
    try:
        key = signing.generate_key("ed25519")
        keyfile = folder / "provider.key"
        signing.write_key_pair(keyfile, key)
        data, payload = labeled_jpeg(key)
        for mode in modes:
            server = Server(keyfile, folder / mode, MODES[mode], workers=args.workers,
                            concurrency=args.server_concurrency)
            server.start()
            try:
                if not args.quiet:
                    print(f"{mode}: {' '.join(server.command[1:])}", file=sys.stderr)
                result = run_load(server, data, payload, mode, requests=args.requests,
                                  concurrency=args.concurrency, warmup=args.warmup,
                                  sample_every=args.sample_every,
                                  new_connections=args.new_connections, raw=args.raw,
                                  progress=not args.quiet)
            finally:
                code = server.stop()
            result.exit_code = code
            result.leftovers = server.leftovers()
            result.server = " ".join(["labelkit", *server.command[3:]]).replace(
                str(folder) + "/", "")
            results.append(result)
            problems += verdict(result, args.max_growth_mb, args.max_growth_pct)
            if code != 0 or result.failed:
                print(server.log_text(), file=sys.stderr)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    workers = (f"{args.workers} workers" if args.workers != 1 else "1 process") + (
        f" x {args.server_concurrency} slots" if args.server_concurrency else
        " (serve's default slots: one per CPU each)")
    header = (f"Verification service under load on 127.0.0.1: {len(data) / 1e3:.0f} kB labeled "
              f"1920x1080 JPEG, {'raw body' if args.raw else 'multipart upload'}, "
              f"{args.concurrency} client threads "
              f"({'a new connection per request' if args.new_connections else 'keep-alive'}), "
              f"server {workers}; {cpus} CPUs, Python {platform.python_version()}, uvicorn "
              f"{uvicorn.__version__}, httpx {httpx.__version__}.")
    text = markdown(results, header=header, max_mb=args.max_growth_mb, max_pct=args.max_growth_pct)
    if problems:
        text += "\n**FAILED**: " + "; ".join(problems) + "\n"
    else:
        text += ("\nNo failed request; RSS growth after the warm-up within the limit "
                 f"(the smaller of {args.max_growth_mb:g} MB and {args.max_growth_pct:g} %).\n")
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
