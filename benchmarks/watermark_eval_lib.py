"""The watermark evaluation shared by the benchmark and tools/watermark_eval.py.

Two runs, both split across worker processes:

- the robustness suite (``run_suite``): every picture of the robustness set is marked at the
  default strength with the benchmark key and the payload of a ProduceID; PSNR and SSIM are
  measured against the original; then every attack (and "none") is applied and detected. A case
  passes when the detector returns exactly the embedded payload; "detected" counts present=True.
  A payload that is returned but wrong is counted apart: it must never happen.
- the false-positive run (``run_null``): unmarked items of the null corpus, each detected with
  the benchmark key; any present=True is a false detection. The report gives the distribution of
  the best score z, the smallest p-value and the analytic threshold z* at which the union bound
  (the detector's p-value) reaches P_THRESHOLD, with the empirical tail against that bound.

``format_suite`` and ``format_null`` render the text reports; ``*.to_json()`` the raw results.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import subprocess
import sys
import textwrap
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from labelkit.watermark import P_THRESHOLD, WatermarkKey, detect_image, embed_image

from . import watermark_attacks, watermark_corpus
from .watermark_corpus import SuiteImage

__all__ = [
    "KEY",
    "PAYLOAD",
    "PRODUCE_ID",
    "TARGET",
    "Case",
    "ImageResult",
    "NullResult",
    "NullRun",
    "SuiteResult",
    "environment",
    "format_null",
    "format_suite",
    "null_summary",
    "psnr",
    "run_null",
    "run_suite",
    "write_examples",
    "z_threshold",
]

KEY = WatermarkKey(bytes.fromhex("6c6b2d77" * 8))  # the benchmark's provider key
PRODUCE_ID = "01J9ZQ4T7K3M8X2R5V6W1Y0HCD"
PAYLOAD = KEY.payload_for(PRODUCE_ID)
TARGET = 0.99  # exact payload in >= 99% of (image, attack) cases
PSNR_TARGET = 40.0
SSIM_TARGET = 0.99


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 pictures, in dB."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two uint8 RGB pictures (scikit-image, per channel, 7x7 window)."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def z_threshold(hypotheses: int, p: float = P_THRESHOLD) -> float:
    """The score z at which the union bound hypotheses * exp(-z^2/2) equals ``p``."""
    return math.sqrt(2 * math.log(hypotheses / p))


def _pool(processes: int):
    """A worker pool (fork where the platform has it: workers inherit the imports)."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    return ctx.Pool(processes)


def _imap(fn, jobs, processes: int, chunksize: int = 1):
    """(job index, fn(job)) for every job, in completion order; in-process when processes <= 1."""
    indexed = list(enumerate(jobs))
    if processes <= 1:
        for i, job in indexed:
            yield i, fn(job)
        return
    with _pool(processes) as pool:
        yield from pool.imap_unordered(_Indexed(fn), indexed, chunksize=chunksize)


class _Indexed:
    """A picklable wrapper that carries the job index through the pool."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, indexed):
        i, job = indexed
        return i, self.fn(job)


# --------------------------------------------------------------------------------- the suite
@dataclass
class Case:
    """One (image, attack) case."""

    attack: str
    exact: bool
    present: bool
    wrong_payload: bool
    z: float
    p_value: float
    seconds: float
    shape: tuple[int, int]
    error: str | None = None  # the attack or the detector raised: a failed case


@dataclass
class ImageResult:
    """One marked picture: its invisibility numbers, timings and its cases."""

    name: str
    cls: str
    size: tuple[int, int]
    core: bool
    psnr: float
    ssim: float
    embed_seconds: float
    cases: list[Case]
    error: str | None = None  # embedding raised: every case failed


def _run_image(job: tuple[SuiteImage, tuple[str, ...], float]) -> ImageResult:
    """Mark one picture, measure PSNR/SSIM, apply and detect every attack."""
    image, attacks, strength = job
    original = image.pixels()
    t0 = time.perf_counter()
    try:
        marked = embed_image(original, KEY, PAYLOAD, strength=strength)
    except Exception as exc:  # reported as failed cases, the run goes on
        error = f"embed: {type(exc).__name__}: {exc}"
        cases = [Case(a, False, False, False, 0.0, 1.0, 0.0, original.shape[:2], error)
                 for a in attacks]
        return ImageResult(image.name, image.cls, image.size, image.core, math.nan, math.nan,
                           0.0, cases, error)
    embed_s = time.perf_counter() - t0
    cases = []
    for name in attacks:
        t0 = time.perf_counter()
        try:
            attacked = watermark_attacks.attack(name)(marked)
            t0 = time.perf_counter()
            det = detect_image(attacked, KEY)
        except Exception as exc:
            cases.append(Case(name, False, False, False, 0.0, 1.0, time.perf_counter() - t0,
                              marked.shape[:2], f"{type(exc).__name__}: {exc}"))
            continue
        dt = time.perf_counter() - t0
        cases.append(Case(name, det.payload == PAYLOAD, bool(det.present),
                          det.payload is not None and det.payload != PAYLOAD, float(det.score),
                          float(det.p_value), dt, tuple(attacked.shape[:2])))
    return ImageResult(image.name, image.cls, image.size, image.core, psnr(original, marked),
                       ssim(original, marked), embed_s, cases)


@dataclass
class SuiteResult:
    """Every image's result, the attacks in order, the settings and the wall time."""

    images: list[ImageResult]
    attacks: list[str]
    strength: float
    processes: int
    seconds: float
    meta: dict = field(default_factory=dict)

    def cases(self, attacks_only: bool = True, where=lambda r: True):
        """(image result, case) pairs, "none" left out if ``attacks_only``."""
        return [(r, c) for r in self.images if where(r) for c in r.cases
                if not (attacks_only and c.attack == "none")]

    def rate(self, attacks_only: bool = True, where=lambda r: True) -> float:
        """Exact-payload rate over the selected cases."""
        cases = self.cases(attacks_only, where)
        return sum(c.exact for _, c in cases) / len(cases) if cases else math.nan

    def to_json(self) -> dict:
        """Everything, JSON-ready."""
        return {
            "kind": "watermark_robustness",
            "strength": self.strength,
            "processes": self.processes,
            "seconds": round(self.seconds, 2),
            "attacks": self.attacks,
            "exact_rate_attacks_only": self.rate(),
            "target": TARGET,
            "meta": self.meta,
            "images": [asdict(r) for r in self.images],
        }


def run_suite(images: list[SuiteImage] | None = None, attacks: list[str] | None = None,
              processes: int = 2, strength: float = 1.0, progress=None) -> SuiteResult:
    """Run every picture against every attack (and "none") on ``processes`` workers."""
    images = watermark_corpus.suite_images() if images is None else images
    attacks = watermark_attacks.attack_names() if attacks is None else list(attacks)
    for name in attacks:
        watermark_attacks.attack(name)  # fail before the pool starts
    order = sorted(range(len(images)), key=lambda i: -images[i].size[0] * images[i].size[1])
    jobs = [(images[i], tuple(attacks), strength) for i in order]  # big pictures first
    results: list[ImageResult | None] = [None] * len(images)
    meta = environment()  # before the workers start: the code they run
    t0 = time.perf_counter()
    for done, (j, result) in enumerate(_imap(_run_image, jobs, processes), 1):
        results[order[j]] = result
        if progress:
            progress(f"  [{done}/{len(jobs)}] {result.name}: "
                     f"{sum(c.exact for c in result.cases)}/{len(result.cases)} exact "
                     f"({time.perf_counter() - t0:.0f} s)")
    return SuiteResult(results, attacks, strength, processes, time.perf_counter() - t0, meta)


def environment() -> dict:
    """What produced the numbers: labelkit's kernels, library versions, the commit."""
    import PIL

    import labelkit
    import labelkit.watermark as wm_pkg
    from labelkit import _impl

    meta = {"python": sys.version.split()[0], "numpy": np.__version__, "pillow": PIL.__version__,
            "labelkit": getattr(labelkit, "__version__", "?"),
            "implementation": getattr(_impl, "IMPLEMENTATION", "?")}
    digest = hashlib.sha256()
    for source in sorted(Path(wm_pkg.__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    meta["watermark_sources"] = digest.hexdigest()[:12]  # ties the numbers to the code measured
    try:
        root = Path(__file__).resolve().parent.parent
        meta["commit"] = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "labelkit"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        meta["labelkit_tree"] = "modified" if dirty else "clean"
    except (OSError, subprocess.SubprocessError):
        pass
    return meta


def _pct(x: float) -> str:
    return "   n/a" if math.isnan(x) else f"{100 * x:6.2f}%"


def _size_name(size) -> str:
    return f"{size[0]}x{size[1]}"


def _status(c: Case) -> str:
    """How a case failed: error, wrong payload, detected without payload, or not detected."""
    if c.error:
        return f"ERROR {c.error}"
    return "WRONG PAYLOAD" if c.wrong_payload else "det, no payload" if c.present else "-"


def format_suite(res: SuiteResult, max_names: int = 4) -> str:
    """The robustness report: per-attack table, overall rates, invisibility, timing, failures."""
    out: list[str] = []
    w = out.append
    n_img = len(res.images)
    n_att = len([a for a in res.attacks if a != "none"])
    sizes = sorted({r.size for r in res.images}, key=lambda s: (s[0] * s[1], s))
    classes = sorted({r.cls for r in res.images})
    w(f"=== watermark robustness: {n_img} images x {n_att} attacks (+ none), strength "
      f"{res.strength}, {res.processes} processes, {res.seconds:.0f} s ===")
    if res.meta:
        w("    " + ", ".join(f"{k} {v}" for k, v in res.meta.items()))
    by_attack: dict[str, list[tuple[ImageResult, Case]]] = defaultdict(list)
    for r in res.images:
        for c in r.cases:
            by_attack[c.attack].append((r, c))
    w("")
    w("exact = the embedded payload recovered; detected = present (p <= threshold); per size:")
    w("failed cases / pictures of that size; the names give z (det: detected, payload not read)")
    head = " ".join(f"{_size_name(s):>9s}" for s in sizes)
    w(f"{'attack':22s} {'exact':>7s} {'detected':>8s} {'med z':>5s} {'min z':>5s} {head}  "
      "missed on")
    for a in res.attacks:
        rows = by_attack[a]
        exact = np.mean([c.exact for _, c in rows])
        det = np.mean([c.present for _, c in rows])
        zs = [c.z for _, c in rows]
        per_size = " ".join(f"{sum(not c.exact for r, c in rows if r.size == s):>4d}/"
                            f"{sum(r.size == s for r, _ in rows):<4d}" for s in sizes)
        fails = [f"{r.name}({c.z:.1f}{',det' if c.present else ''})" for r, c in rows
                 if not c.exact]
        more = f" +{len(fails) - max_names}" if len(fails) > max_names else ""
        w(f"{a:22s} {_pct(exact)} {_pct(det):>8s} {np.median(zs):5.1f} {min(zs):5.1f} {per_size}  "
          f"{' '.join(fails[:max_names])}{more}")
    cases = res.cases()
    n = len(cases)
    exact = sum(c.exact for _, c in cases)
    det = sum(c.present for _, c in cases)
    wrong = sum(c.wrong_payload for _, c in res.cases(attacks_only=False))
    rate = exact / n if n else math.nan
    verdict = "MET" if rate >= TARGET else "MISSED"
    w("")
    w(f"OVERALL (attacks only): exact payload {_pct(rate).strip()} of {n} cases ({n - exact} "
      f"failures) -- target >= {100 * TARGET:.0f}%: {verdict}")
    w(f"  detected (present=True): {_pct(det / n if n else math.nan).strip()}; wrong payload "
      f"accepted: {wrong} (must be 0); unattacked: "
      f"{sum(c.exact for _, c in res.cases(False) if c.attack == 'none')}/{n_img} exact")
    errors = [(r, c) for r, c in res.cases(False) if c.error]
    if errors:
        w(f"  ERRORS: {len(errors)} cases raised (counted as failures), e.g. {errors[0][0].name} "
          f"{errors[0][1].attack}: {errors[0][1].error}")
    n_core = len(res.cases(where=lambda r: r.core))
    if n_core != n:
        w(f"  on the prototype's set (5 photos + synthetic): "
          f"{_pct(res.rate(where=lambda r: r.core)).strip()} of {n_core} cases")
    w("")
    w("exact payload by class and size (attacks only):")
    w(f"  {'class':10s} " + " ".join(f"{_size_name(s):>10s}" for s in sizes) + f" {'all':>10s}")
    for cls in classes:
        cells = [_pct(res.rate(where=lambda r, s=s, cls=cls: r.cls == cls and r.size == s))
                 for s in sizes]
        w(f"  {cls:10s} " + " ".join(f"{c:>10s}" for c in cells)
          + f" {_pct(res.rate(where=lambda r, cls=cls: r.cls == cls)):>10s}")
    w(f"  {'all':10s} " + " ".join(
        f"{_pct(res.rate(where=lambda r, s=s: r.size == s)):>10s}" for s in sizes)
      + f" {_pct(res.rate()):>10s}")
    w("")
    per_image = [f"{r.name} {k}" for r in res.images
                 if (k := sum(not c.exact for c in r.cases if c.attack != "none"))]
    w("failures per image (attacks only):")
    w(textwrap.fill(", ".join(per_image) or "none", 100, initial_indent="  ",
                    subsequent_indent="  "))
    w("")
    w(f"invisibility at strength {res.strength} (targets on photos: PSNR >= {PSNR_TARGET:.0f} dB, "
      f"SSIM >= {SSIM_TARGET}):")
    w(f"  {'class':10s} {'size':>10s} {'PSNR min':>9s} {'median':>7s} {'SSIM min':>9s} "
      f"{'median':>7s}  below a target")
    for cls in classes:
        for s in sizes + [None]:
            sel = [r for r in res.images if r.cls == cls and (s is None or r.size == s)
                   and r.error is None]
            if not sel:
                continue
            ps = np.array([r.psnr for r in sel])
            ss = np.array([r.ssim for r in sel])
            low = [r.name for r in sel if r.psnr < PSNR_TARGET or r.ssim < SSIM_TARGET]
            w(f"  {cls:10s} {_size_name(s) if s else 'all':>10s} {ps.min():8.2f}  "
              f"{np.median(ps):6.2f}  {ss.min():8.4f}  {np.median(ss):6.4f}  "
              f"{len(low)}/{len(sel)}")
    w("  per image (PSNR dB, SSIM):")
    cells = [f"{r.name:30s} {r.psnr:5.2f} {r.ssim:.4f}" for r in res.images]
    for i in range(0, len(cells), 2):
        w("    " + "   ".join(cells[i:i + 2]))
    w("")
    w("timing (per picture, in a worker):")
    for s in sizes:
        sel = [r for r in res.images if r.size == s]
        emb = np.median([r.embed_seconds for r in sel])
        det_none = np.median([c.seconds for r in sel for c in r.cases if c.attack == "none"]
                             or [math.nan])
        det_all = np.median([c.seconds for r in sel for c in r.cases])
        w(f"  {_size_name(s):>10s}: embed {1e3 * emb:6.0f} ms, detect {1e3 * det_none:6.0f} ms "
          f"unattacked, {1e3 * det_all:6.0f} ms median over all attacks")
    fails = [(r, c) for r, c in res.cases(attacks_only=False) if not c.exact]
    if fails:
        w("")
        w(f"all failures ({len(fails)}): image, attack, attacked size, z, p-value, status")
        for r, c in sorted(fails, key=lambda rc: (rc[1].attack, rc[0].name)):
            w(f"  {r.name:30s} {c.attack:22s} {c.shape[1]:>4d}x{c.shape[0]:<4d} z {c.z:5.2f} "
              f"p {c.p_value:8.2g}  {_status(c)}")
    return "\n".join(out) + "\n"


def write_examples(images: list[SuiteImage], folder: Path, strength: float = 1.0,
                   amplify: float = 16.0) -> list[Path]:
    """For a visual check at 100% zoom: each picture marked (PNG), and a sheet of its flattest
    384x384 window: original | marked | difference x ``amplify`` around mid-grey."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for image in images:
        original = image.pixels()
        marked = embed_image(original, KEY, PAYLOAD, strength=strength)
        Image.fromarray(marked).save(folder / f"{image.name}_marked.png")
        side = min(384, *original.shape[:2])
        luma = original.astype(np.float32).mean(axis=2)
        step = max(8, side // 4)
        best = None
        for y in range(0, original.shape[0] - side + 1, step):
            for x in range(0, original.shape[1] - side + 1, step):
                window = luma[y:y + side, x:x + side]
                flat = float(np.abs(np.diff(window, axis=0)).mean()
                             + np.abs(np.diff(window, axis=1)).mean())
                if best is None or flat < best[0]:
                    best = (flat, y, x)
        _, y, x = best
        a, b = original[y:y + side, x:x + side], marked[y:y + side, x:x + side]
        diff = np.clip(128 + amplify * (b.astype(np.float32) - a), 0, 255).astype(np.uint8)
        sheet = np.concatenate([a, np.full((side, 8, 3), 255, np.uint8), b,
                                np.full((side, 8, 3), 255, np.uint8), diff], axis=1)
        path = folder / f"{image.name}_flat_{x}_{y}.png"
        Image.fromarray(sheet).save(path)
        written += [folder / f"{image.name}_marked.png", path]
    return written


# ----------------------------------------------------------------------------- the null run
@dataclass
class NullResult:
    """The detector's answer on one unmarked item."""

    index: int
    kind: str
    recipe: str
    shape: tuple[int, int]
    present: bool
    payload_accepted: bool
    z: float
    p_value: float
    hypotheses: int
    seconds: float
    reason: str | None = None
    code: str = ""  # watermark_sources of the run that scored it (a resumed log may mix them)

    @classmethod
    def from_json(cls, d: dict) -> "NullResult":
        """Rebuild from a JSON line of the run log."""
        d = dict(d)
        d["shape"] = tuple(d["shape"])
        return cls(**d)


def _run_null_item(index: int) -> NullResult:
    """Build null item ``index`` and detect the benchmark key's mark in it."""
    try:
        item = watermark_corpus.null_item(index)
    except Exception as exc:  # a corpus bug must not end the run: reported, not scored
        return NullResult(index, watermark_corpus.NULL_KINDS[index % len(watermark_corpus.NULL_KINDS)],
                          "?", (0, 0), False, False, 0.0, 1.0, 0, 0.0,
                          f"error: corpus: {type(exc).__name__}: {exc}")
    t0 = time.perf_counter()
    try:
        det = detect_image(item.pixels, KEY)
    except Exception as exc:
        return NullResult(index, item.kind, item.recipe, tuple(item.pixels.shape[:2]), False,
                          False, 0.0, 1.0, 0, time.perf_counter() - t0,
                          f"error: detect: {type(exc).__name__}: {exc}")
    dt = time.perf_counter() - t0
    return NullResult(index, item.kind, item.recipe, tuple(item.pixels.shape[:2]),
                      bool(det.present), det.payload is not None, float(det.score),
                      float(det.p_value), int(det.hypotheses), dt, det.reason)


@dataclass
class NullRun:
    """The results of a null run over items [start, start + n)."""

    start: int
    n: int
    processes: int
    seconds: float
    results: list[NullResult]
    resumed: int = 0
    meta: dict = field(default_factory=dict)

    def to_json(self, items: bool = False) -> dict:
        """The summary numbers (and every item's result if ``items``), JSON-ready."""
        s = null_summary(self.results)
        out = {"kind": "watermark_null", "start": self.start, "n": self.n,
               "processes": self.processes, "seconds": round(self.seconds, 2),
               "resumed_items": self.resumed, "meta": self.meta, "summary": s}
        if items:
            out["items"] = [asdict(r) for r in self.results]
        return out


def run_null(start: int = 0, n: int = 10_000, processes: int = 2, log: Path | None = None,
             progress=None) -> NullRun:
    """Detect on null items [start, start + n); with ``log`` (JSON lines), skip the items it has
    and append the new ones, so an interrupted run resumes where it stopped."""
    done: dict[int, NullResult] = {}
    if log is not None and Path(log).exists():
        for line in Path(log).read_text().splitlines():
            if line.strip():
                try:
                    r = NullResult.from_json(json.loads(line))
                except (ValueError, TypeError, KeyError):
                    continue  # a line cut short by an interruption
                if start <= r.index < start + n:
                    done[r.index] = r
    resumed = len(done)
    todo = [i for i in range(start, start + n) if i not in done]
    meta = environment()  # before the workers start: the code they run
    t0 = time.perf_counter()
    sink = open(log, "a") if log is not None else None
    try:
        step = max(1, len(todo) // 20)
        for k, (_, r) in enumerate(_imap(_run_null_item, todo, processes, chunksize=4), 1):
            r.code = meta.get("watermark_sources", "")
            done[r.index] = r
            if sink:
                sink.write(json.dumps(asdict(r)) + "\n")
                sink.flush()
            if progress and (k % step == 0 or k == len(todo)):
                zs = [x.z for x in done.values()]
                progress(f"  [{k}/{len(todo)}] max z so far {max(zs):.2f}, false detections "
                         f"{sum(x.present for x in done.values())} "
                         f"({time.perf_counter() - t0:.0f} s)")
    finally:
        if sink:
            sink.close()
    results = [done[i] for i in sorted(done)]
    return NullRun(start, n, processes, time.perf_counter() - t0, results, resumed, meta)


def null_summary(results: list[NullResult]) -> dict:
    """The numbers the false-positive run is judged by."""
    scored = [r for r in results if r.hypotheses > 0]
    z = np.array([r.z for r in scored]) if scored else np.array([math.nan])
    hyp = np.array([r.hypotheses for r in scored]) if scored else np.array([1])
    zstar = np.array([z_threshold(int(h)) for h in hyp])
    margin = zstar - z
    tail = {}
    for zq in (4.5, 5.0, 5.5, 6.0, 6.5):
        bound = float(np.mean(np.minimum(1.0, hyp * math.exp(-zq * zq / 2))))
        gauss = float(np.mean(np.minimum(1.0, hyp * 0.5 * math.erfc(zq / math.sqrt(2)))))
        tail[f"{zq}"] = {"empirical": float(np.mean(z >= zq)), "union_bound_chernoff": bound,
                         "union_estimate_gaussian": gauss}
    per_kind = {}
    for kind in watermark_corpus.NULL_KINDS:
        sel = [r for r in scored if r.kind == kind]
        if sel:
            zk = np.array([r.z for r in sel])
            per_kind[kind] = {"n": len(sel), "median_z": float(np.median(zk)),
                              "max_z": float(zk.max()),
                              "false_detections": sum(r.present for r in sel)}
    worst = max(scored, key=lambda r: r.z) if scored else None
    closest = int(np.argmin(margin)) if scored else None
    return {
        "items": len(results),
        "scored": len(scored),
        "not_scored": dict(sorted(Counter(
            "error" if str(r.reason).startswith("error") else str(r.reason)
            for r in results if r.hypotheses == 0).items())),
        "false_detections": sum(r.present for r in results),
        "payloads_accepted": sum(r.payload_accepted for r in results),
        "z_median": float(np.median(z)),
        "z_p99": float(np.percentile(z, 99)),
        "z_max": float(z.max()),
        "smallest_p_value": min((r.p_value for r in results), default=math.nan),
        "p_threshold": P_THRESHOLD,
        "hypotheses_min": int(hyp.min()),
        "hypotheses_max": int(hyp.max()),
        "z_threshold_at_min_hypotheses": z_threshold(int(hyp.min())),
        "z_threshold_at_max_hypotheses": z_threshold(int(hyp.max())),
        "smallest_margin_to_threshold": float(margin.min()),
        "smallest_margin_item": scored[closest].index if scored else None,
        "worst_item": asdict(worst) if worst else None,
        "tail": tail,
        "per_kind": per_kind,
        "detect_seconds_median": float(np.median([r.seconds for r in results])),
        "detect_seconds_max": float(max(r.seconds for r in results)),
        "detect_seconds_total": float(sum(r.seconds for r in results)),
    }


def format_null(run: NullRun) -> str:
    """The false-positive report."""
    s = null_summary(run.results)
    out = []
    w = out.append
    w(f"=== false positives: null items {run.start}..{run.start + run.n - 1} "
      f"({s['items']} unmarked items, {run.processes} processes, {run.seconds:.0f} s"
      f"{f', {run.resumed} from the log' if run.resumed else ''}) ===")
    if run.meta:
        w("    " + ", ".join(f"{k} {v}" for k, v in run.meta.items()))
    codes = sorted({r.code for r in run.results})
    if len(codes) > 1:
        w(f"    WARNING: the log mixes items scored by {len(codes)} versions of the code: {codes}")
    verdict = "OK" if s["false_detections"] == 0 and s["payloads_accepted"] == 0 else "FAIL"
    w(f"false detections (present=True): {s['false_detections']}   payloads accepted: "
      f"{s['payloads_accepted']}   -> {verdict}")
    if s["not_scored"]:
        w(f"not scored (no hypotheses tried): {s['not_scored']}")
    errors = [r for r in run.results if r.reason and r.reason.startswith("error")]
    if errors:
        w(f"ERRORS: {len(errors)} items raised, e.g. item {errors[0].index}: {errors[0].reason}")
    w(f"max-over-hypotheses score z: median {s['z_median']:.2f}, 99th pct {s['z_p99']:.2f}, "
      f"max {s['z_max']:.2f}")
    w(f"smallest p-value: {s['smallest_p_value']:.3g} (threshold {P_THRESHOLD:g})")
    w(f"analytic threshold: z* = sqrt(2 ln(H / {P_THRESHOLD:g})) = "
      f"{s['z_threshold_at_min_hypotheses']:.2f} .. {s['z_threshold_at_max_hypotheses']:.2f} for "
      f"H = {s['hypotheses_min']} .. {s['hypotheses_max']} hypotheses per item; smallest margin "
      f"z* - z = {s['smallest_margin_to_threshold']:.2f} (item {s['smallest_margin_item']})")
    worst = s["worst_item"]
    if worst:
        w(f"highest z: item {worst['index']} ({worst['kind']}, {worst['shape'][1]}x"
          f"{worst['shape'][0]}): {worst['recipe']}  z {worst['z']:.2f}")
    w("tail of z against the union bound (mean over items of min(1, H * bound)):")
    w(f"  {'z >=':>6s} {'empirical':>10s} {'Chernoff':>10s} {'Gaussian':>10s}")
    for zq, t in s["tail"].items():
        w(f"  {float(zq):6.1f} {t['empirical']:10.4f} {t['union_bound_chernoff']:10.4f} "
          f"{t['union_estimate_gaussian']:10.4f}")
    w("by kind:")
    for kind, k in s["per_kind"].items():
        w(f"  {kind:20s} n {k['n']:6d}  median z {k['median_z']:5.2f}  max z {k['max_z']:5.2f}"
          f"  false detections {k['false_detections']}")
    w(f"detect time: median {1e3 * s['detect_seconds_median']:.0f} ms, max "
      f"{1e3 * s['detect_seconds_max']:.0f} ms, total {s['detect_seconds_total']:.0f} s of CPU")
    return "\n".join(out) + "\n"
