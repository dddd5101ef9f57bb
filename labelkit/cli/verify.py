"""``labelkit verify``: check the labels of files and folders, as a table or JSON lines."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from typing import Any

from ..errors import KeyFileError, LabelkitError
from ..policy import ImagePolicy, Policy, TextPolicy
from ..signing import load_key
from ..text.tokenizer import load_tokenizer
from ..verify import VERDICTS, Report, trust_store, verify
from ..watermark import WatermarkKey
from ._common import (
    EXIT_FAILURE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    REPORT_HINT,
    HelpFormatter,
    UsageError,
    add_jobs_option,
    add_run_options,
    internal_error_text,
    resolve_jobs,
)
from ._inputs import InputFile, collect
from ._progress import Progress
from ._runner import Interrupt, run as run_tasks

__all__ = ["add_parser", "run", "label_status", "first_problem"]

DESCRIPTION = """\
Verify GB 45438-2025 labels: the implicit metadata label (every carrier, strict JSON, exact keys,
character rule, provider code and USCC checksum, exactly one label), the ReservedCode1
signature (with --key or --pubkey: is the label bound to this very content?) and labelkit's
visible label (on a video: found on the opening frame, and for how long from the start: GB
45438 wants at least 2 s).

Each file gets a verdict: compliant, noncompliant (a check failed), not_found (no label at all),
traces_only (no metadata label, but labelkit's watermark or visible label is there: the
metadata was stripped) or inconclusive (the file could not be parsed, or a check could not run).
With --key the invisible watermark is looked for too (in a video, over its first seconds): it
still identifies a picture or video whose metadata was stripped, re-encoded, cropped or
resized. Folders are searched recursively; their files are recognised by content, and files
that are not pictures or videos are skipped.
"""

EPILOG = """\
examples:
  labelkit verify --pubkey provider.key.pub out/
  labelkit verify --pubkey a.pub --pubkey b.pub --json -j 0 out/ > reports.jsonl
  labelkit verify --no-visible photo.jpg
  labelkit verify --key provider.key --tokenizer ./model-dir answer.md
  labelkit verify --pubkey provider.key.pub --c2pa-trust provider.key.c2pa-root.pem out/

--json writes one JSON object per line and file: schema_version, path, format, verdict, record
(the seven fields found, or null), checks (list of {id, status, message, evidence}), carriers,
and one object per layer (explicit, signature, watermark: present, p_value, payload,
matches_record; token_watermark with --tokenizer: present, p_value, score (z), scored,
green; c2pa: status trusted / valid / invalid / absent / n/a, failures, signer,
aigc_matches_label, soft_binding). For a video, explicit also has duration_s (how long the label shows from the start)
and watermark has frames (how many were decoded).

exit status: 0 every file compliant, 1 some file is not, 2 usage error, 3 internal error,
130 interrupted
"""

# Checks about the metadata label itself (for the LABEL column of the table).
_LABEL_CHECKS = frozenset({"single_label", "json", "keys", "types", "label_value", "charset",
                           "producer_code", "propagator_code", "record"})


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the verify command."""
    parser = subparsers.add_parser(
        "verify", help="verify the labels of files and folders",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="files and folders (searched recursively)")
    keys = parser.add_mutually_exclusive_group()
    keys.add_argument("--key", metavar="KEYFILE",
                      help="check signatures with the public part of this secret key")
    keys.add_argument("--pubkey", action="append", metavar="PUBFILE",
                      help="a trusted public key (KEYFILE.pub); repeat for several producers")
    parser.add_argument("--json", action="store_true",
                        help="one JSON report per line and file, instead of a table")
    parser.add_argument("--no-visible", action="store_true",
                        help="skip looking for the visible label (faster: no pixel decoding)")
    parser.add_argument("--require-visible", action="store_true",
                        help="a missing visible label fails the file (default: a warning, since "
                             "files handed out under Measures Art. 9 lack it legitimately)")
    parser.add_argument("--no-watermark", action="store_true",
                        help="skip looking for the invisible watermark (it is looked for only "
                             "with --key: detection needs the provider's secret)")
    parser.add_argument("--text", default=ImagePolicy.text, metavar="TEXT",
                        help="the visible label text to look for, as given to `label --text`")
    parser.add_argument("--tokenizer", metavar="SPEC",
                        help="test text for the generation-time token watermark (needs --key), "
                             "tokenized as the model did: tiktoken:NAME, a tokenizer.json file "
                             "or a transformers model folder")
    parser.add_argument("--c2pa-trust", action="append", metavar="ROOT.pem",
                        help="a C2PA trust anchor (CA certificate, e.g. KEYFILE.c2pa-root.pem); "
                             "repeat for several. Without one, an intact manifest is reported "
                             "valid but untrusted")
    parser.add_argument("--no-c2pa", action="store_true",
                        help="skip reading C2PA manifests")
    parser.add_argument("--token-gamma", type=float, default=TextPolicy.token_gamma,
                        metavar="G", help="the green share the generator used "
                                          "(Policy.text.token_gamma; default %(default)s)")
    add_jobs_option(parser)
    add_run_options(parser)
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    """Verify every input; print a table or JSON lines; exit 0 only if all are compliant."""
    started = time.monotonic()
    config = _config(args)
    inputs = collect(args.paths)
    jobs = min(resolve_jobs(args.jobs), max(1, len(inputs.files)))  # no idle workers to start
    progress = Progress(len(inputs.files), enabled=not args.quiet)
    for error in inputs.errors:
        progress.print(f"labelkit: error: {error}")
    if not inputs.files and not args.quiet:
        progress.print("labelkit: warning: no picture files found in " + " ".join(args.paths))
    width = min(48, max([len(f.path) for f in inputs.files] + [4]))
    if not args.json and inputs.files:
        progress.print(_row(width, "PATH", "VERDICT", "LABEL", "SIGNATURE", "EXPLICIT",
                            "WATERMARK", "NOTE"),
                       sys.stdout)
    verdicts: dict[str, int] = {}
    internal = 0
    interrupt = Interrupt()
    try:
        with interrupt:
            for _, (status, report, trace) in run_tasks(
                inputs.files, _verify_one, jobs=jobs, init=_init_worker, initargs=(config,),
                interrupt=interrupt, lost=_lost, tick=progress.tick,
            ):
                verdicts[report["verdict"]] = verdicts.get(report["verdict"], 0) + 1
                if status == "internal":
                    internal += 1
                    if args.debug and trace:
                        progress.print(trace.rstrip())
                    progress.print(f"labelkit: {report['path']}: {first_problem(report)}")
                progress.print(_format(report, args.json, width), sys.stdout)
                progress.advance()
    finally:
        progress.close()
        _worker.clear()
    if not args.quiet:
        summary = _summary(verdicts, inputs.not_images, time.monotonic() - started,
                           interrupt.stopped)
        # stdout carries only JSON lines with --json
        print(summary, file=sys.stderr if args.json else sys.stdout, flush=True)
    if interrupt.stopped:
        return EXIT_INTERRUPTED
    if internal:
        return EXIT_INTERNAL
    if inputs.errors or any(v != "compliant" for v in verdicts):
        return EXIT_FAILURE
    return EXIT_OK


def _config(args: argparse.Namespace) -> dict[str, Any]:
    """Check the options before any file is read; what the workers need."""
    try:
        trust_store(args.key, args.pubkey)  # fail early, naming the option
    except KeyFileError as exc:
        raise UsageError(f"{'--key' if args.key else '--pubkey'}: {exc}") from None
    try:
        ImagePolicy(text=args.text)
    except LabelkitError as exc:
        raise UsageError(f"--text: {exc}") from None
    if args.require_visible and args.no_visible:
        raise UsageError("--require-visible and --no-visible exclude each other")
    try:
        TextPolicy(token_gamma=args.token_gamma)
        if args.tokenizer:
            load_tokenizer(args.tokenizer)  # fail before any file is read
    except LabelkitError as exc:
        raise UsageError(f"--{'tokenizer' if args.tokenizer else 'token-gamma'}: {exc}") from None
    if args.tokenizer and not args.key:
        raise UsageError("--tokenizer needs --key: the token watermark is keyed")
    anchors = ""
    if args.c2pa_trust:
        if args.no_c2pa:
            raise UsageError("--c2pa-trust and --no-c2pa exclude each other")
        from ..verify import c2pa_anchors

        try:
            anchors = c2pa_anchors([os.path.abspath(p) for p in args.c2pa_trust])
        except LabelkitError as exc:
            raise UsageError(f"--c2pa-trust: {exc}") from None
    return {"key": args.key, "pubkeys": args.pubkey, "detect_visible": not args.no_visible,
            "require_visible": args.require_visible, "text": args.text,
            "detect_watermark": not args.no_watermark, "tokenizer": args.tokenizer,
            "c2pa_trust": anchors, "check_c2pa": not args.no_c2pa,
            "token_gamma": args.token_gamma}


# -- output ---------------------------------------------------------------------------------


def label_status(report: dict[str, Any]) -> str:
    """The metadata label in one word: valid, invalid, absent or error."""
    checks = report["checks"]
    if any(c["status"] == "error" and c["id"] in ("parse", "internal") for c in checks):
        return "error"
    if any(c["id"] == "label_present" and c["status"] == "fail" for c in checks):
        return "absent"
    if any(c["id"] in _LABEL_CHECKS and c["status"] == "fail" for c in checks):
        return "invalid"
    return "valid"


def first_problem(report: dict[str, Any]) -> str:
    """The first failing (or erroring) check's message, else the first warning's, else ''."""
    for wanted, prefix in ((("fail", "error"), ""), (("warn",), "warning: ")):
        for check in report["checks"]:
            if check["status"] in wanted:
                return prefix + check["message"]
    return ""


def _row(width: int, *cells: str) -> str:
    path, verdict, label, signature, explicit, watermark, note = cells
    return (f"{path:<{width}}  {verdict:<12}  {label:<7}  {signature:<14}  {explicit:<8}  "
            f"{watermark:<9}  {note}").rstrip()


def _format(report: dict[str, Any], as_json: bool, width: int) -> str:
    if as_json:
        # ASCII escapes: any file name and any terminal encoding give valid JSON lines.
        return json.dumps(report, separators=(",", ":"))
    explicit = report["explicit"]
    seen = explicit.get("status", "?")
    if "duration_s" in explicit:  # a video: how long the opening label shows
        seen = f"{'>=' if explicit.get('duration_at_least') else ''}{explicit['duration_s']:.1f}s"
    return _row(width, report["path"], report["verdict"], label_status(report),
                report["signature"].get("status", "?"), seen,
                report.get("watermark", {}).get("status", "?"), first_problem(report))


def _summary(verdicts: dict[str, int], not_images: int, elapsed: float,
             interrupted: bool) -> str:
    total = sum(verdicts.values())
    parts = ", ".join(f"{verdicts.get(v, 0)} {v}"
                      for v in VERDICTS)
    rate = total / elapsed if elapsed > 0 else 0.0
    text = (f"verified {total} file(s): {parts}; {not_images} non-image file(s) ignored; "
            f"{elapsed:.2f} s, {rate:.1f} files/s")
    return ("interrupted: " if interrupted else "") + text


# -- in the worker process --------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _init_worker(config: dict[str, Any]) -> None:
    """Load the trusted keys once per worker process."""
    key = load_key(config["key"]) if config["key"] else None  # read the key file once
    _worker["trust"] = trust_store(key, config["pubkeys"])
    _worker["watermark_key"] = (WatermarkKey.from_signing_key(key)
                                if key is not None and config["detect_watermark"] else None)
    _worker["detect_visible"] = config["detect_visible"]
    _worker["require_visible"] = config["require_visible"]
    _worker["policy"] = Policy(image=ImagePolicy(text=config["text"]),
                               text=TextPolicy(token_gamma=config["token_gamma"]))
    _worker["tokenizer"] = load_tokenizer(config["tokenizer"]) if config["tokenizer"] else None
    _worker["c2pa"] = {"c2pa_trust": config["c2pa_trust"] or None,
                       "check_c2pa": config["check_c2pa"]}


def _verify_one(item: InputFile) -> tuple[str, dict[str, Any], str]:
    """Verify one file: ("ok" or "internal", the report as a dict, traceback or '')."""
    try:
        report = verify(item.path, trust=_worker["trust"], policy=_worker["policy"],
                        detect_visible=_worker["detect_visible"],
                        require_visible=_worker["require_visible"],
                        watermark_key=_worker["watermark_key"],
                        tokenizer=_worker["tokenizer"], **_worker["c2pa"], name=item.path)
        return ("ok", report.to_dict(), "")
    except LabelkitError as exc:
        # Never "not_found" for a file that could not be read: say it could not be checked.
        return ("ok", _unchecked(item.path, "parse", str(exc)), "")
    except MemoryError:
        return ("ok", _unchecked(item.path, "parse", f"{item.path}: out of memory"), "")
    except Exception as exc:
        message = f"internal error: {internal_error_text(exc)} ({REPORT_HINT})"
        return ("internal", _unchecked(item.path, "internal", message), traceback.format_exc())


def _unchecked(path: str, check_id: str, message: str) -> dict[str, Any]:
    """The report of a file whose labels could not be checked: verdict inconclusive."""
    report = Report(path=path, verdict="inconclusive")
    report.add(check_id, "error", message)
    report.explicit = {"status": "error", "message": "not checked"}
    report.signature = {"status": "error", "message": "not checked"}
    report.watermark = {"status": "error", "message": "not checked"}
    return report.to_dict()


def _lost(item: InputFile, message: str) -> tuple[str, dict[str, Any], str]:
    return ("internal", _unchecked(item.path, "internal", message), "")
