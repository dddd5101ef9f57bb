#!/usr/bin/env python3
"""Evaluate the image watermark against robustness.md: robustness suite and false positives.

  python tools/watermark_eval.py                      # suite, then 10000 null items, 2 processes
  python tools/watermark_eval.py --suite              # the robustness suite only
  python tools/watermark_eval.py --null-only --null 10000 --start 20000 --processes 4
  python tools/watermark_eval.py --null-only --null 10000 --log null.jsonl   # resumable

The suite marks every picture of the robustness set (benchmarks/watermark_corpus.py) at the
given strength, applies every attack of benchmarks/watermark_attacks.py and detects; the table
gives the exact-payload and detected rates per attack, the overall rate against the 99% target,
PSNR/SSIM per class and size, and every failure. The null run detects on unmarked items
[start, start + N) of the null corpus (each rebuilt from its index: runs split across processes or
machines with --start, and --log resumes an interrupted run) and reports false detections,
accepted payloads, the distribution of the best score z, the smallest p-value and the analytic
threshold. The exit status is 0 even when a target is missed (this reports; tests assert),
unless --strict is given.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import watermark_attacks, watermark_corpus  # noqa: E402
from benchmarks import watermark_eval_lib as lib  # noqa: E402


def _sizes(text: str) -> list[tuple[int, int]]:
    """Parse "512x512,1920x1080" into [(512, 512), (1920, 1080)]."""
    try:
        return [tuple(int(v) for v in s.lower().split("x")) for s in text.split(",") if s]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes are WIDTHxHEIGHT,...: {text!r}") from None


def _names(text: str) -> list[str]:
    """Parse a comma-separated list."""
    return [s.strip() for s in text.split(",") if s.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    """The command line."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    what = ap.add_mutually_exclusive_group()
    what.add_argument("--suite", action="store_true", help="run the robustness suite only")
    what.add_argument("--null-only", action="store_true", help="run the false-positive run only")
    ap.add_argument("--null", type=int, default=10_000, metavar="N",
                    help="unmarked items in the false-positive run (default 10000; 0: none)")
    ap.add_argument("--start", type=int, default=0, metavar="K", help="first null item index")
    ap.add_argument("--processes", "-p", type=int, default=2, metavar="P",
                    help="worker processes (default 2; 1 runs in this process)")
    ap.add_argument("--log", type=Path, metavar="JSONL",
                    help="null run: append each item's result here and skip items already in it")
    ap.add_argument("--strength", type=float, default=1.0, help="embedding strength (default 1)")
    ap.add_argument("--photos", type=_names, metavar="A,B",
                    help="suite photos (files of skimage.data; default: "
                         + ",".join(watermark_corpus.CORE_PHOTOS + watermark_corpus.EXTRA_PHOTOS)
                         + ")")
    ap.add_argument("--synthetic", type=int, default=len(watermark_corpus.SYNTHETIC_STYLES),
                    metavar="N", help="synthetic pictures per size (default: one per style, 4)")
    ap.add_argument("--sizes", type=_sizes, default=list(watermark_corpus.SIZES),
                    metavar="WxH,...", help="suite sizes (default 512x512,1920x1080,1080x1920)")
    ap.add_argument("--attacks", type=_names, metavar="A,B",
                    help="suite attacks (default: all, and none): "
                         + ",".join(watermark_attacks.attack_names()))
    ap.add_argument("--out", type=Path, metavar="TXT", help="also write the text report here")
    ap.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON here")
    ap.add_argument("--json-items", action="store_true",
                    help="include every null item's result in the JSON")
    ap.add_argument("--examples", type=Path, metavar="DIR",
                    help="also write the suite's synthetic pictures (and the first photo) marked, "
                         "with a sheet of their flattest window (original | marked | "
                         "difference x16) for a look at 100%% zoom")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress lines on stderr")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 if the suite misses 99%% or the null run has a false detection")
    args = ap.parse_args(argv)
    if args.processes < 1 or args.null < 0 or args.start < 0:
        ap.error("--processes must be >= 1, --null and --start >= 0")
    if args.attacks:
        unknown = [a for a in args.attacks if a not in watermark_attacks.attack_names()]
        if unknown:
            ap.error(f"unknown attacks {unknown}; known: {watermark_attacks.attack_names()}")
    return args


def main(argv=None) -> int:
    """Run what was asked, print the reports, write --out/--json; the exit status."""
    args = parse_args(argv)
    progress = None if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
    command = "python tools/watermark_eval.py " + " ".join(sys.argv[1:] if argv is None else argv)
    reports, payload, ok = [f"command: {command}\n"], {"command": command}, True
    t0 = time.perf_counter()
    if not args.null_only:
        images = watermark_corpus.suite_images(args.photos, args.synthetic, args.sizes)
        if progress:
            progress(f"robustness suite: {len(images)} images on {args.processes} processes")
        if args.examples:
            picks = [i for i in images if i.cls == "synthetic"] + [
                i for i in images if i.cls == "photo"][:len(args.sizes)]
            written = lib.write_examples(picks, args.examples, args.strength)
            if progress:
                progress(f"wrote {len(written)} example files to {args.examples}")
        suite = lib.run_suite(images, args.attacks, args.processes, args.strength, progress)
        reports.append(lib.format_suite(suite))
        print(reports[-1], flush=True)
        payload["suite"] = suite.to_json()
        ok &= suite.rate() >= lib.TARGET
    if not args.suite and args.null > 0:
        if progress:
            progress(f"false-positive run: items {args.start}..{args.start + args.null - 1} "
                     f"on {args.processes} processes")
        null = lib.run_null(args.start, args.null, args.processes, args.log, progress)
        reports.append(lib.format_null(null))
        print(reports[-1], flush=True)
        payload["null"] = null.to_json(items=args.json_items)
        s = payload["null"]["summary"]
        ok &= s["false_detections"] == 0 and s["payloads_accepted"] == 0
    reports.append(f"total wall time {time.perf_counter() - t0:.0f} s\n")
    print(reports[-1], end="")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(reports))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=1) + "\n")
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
