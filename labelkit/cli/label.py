"""``labelkit label``: label files and folders of pictures and videos into an output folder, resumably."""

from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any

from ..errors import KeyFileError, LabelkitError
from ..labeler import Labeler
from ..policy import (AUDIO_PLACEMENTS, POSITIONS, TEXT_NOTICES, TEXT_PLACEMENTS,
                      VIDEO_PLACEMENTS, AudioPolicy, ImagePolicy, TextPolicy,
                      Policy, VideoPolicy)
from ..signing import load_key
from ._common import (
    EXIT_FAILURE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    HelpFormatter,
    UsageError,
    add_jobs_option,
    add_run_options,
    internal_error_text,
    resolve_jobs,
)
from ._inputs import TEMP_SUFFIX, Inputs, collect
from ._progress import Progress, format_duration
from ._runner import Interrupt, run as run_tasks
from ._state import Journal, settings_digest

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
Label pictures (PNG, JPEG, WebP, GIF, TIFF), videos (MP4, MOV, MKV, WebM), audio (WAV, MP3,
FLAC, Ogg Vorbis/Opus, M4A), text (plain, Markdown, HTML) and documents (PDF, DOCX, XLSX, PPTX)
as GB 45438-2025 requires: a visible "AI生成" label (on a video: its opening seconds; on audio:
the Morse ".- .." cue before the content; in text: a notice at its start), the invisible
watermark (in text: a Unicode carrier in every paragraph),
the implicit metadata label of Annex E (XMP TC260:AIGC; MP4/MOV key AIGC; Matroska tag AIGC)
and a signature in ReservedCode1 that binds the label to the content. Videos are re-encoded in
their own codec family (H.264, H.265, VP9, AV1) at a visually lossless quality, audio copied
as is; with --metadata-only they are remuxed without re-encoding. Originals are never modified: each output
goes to OUTDIR under its own file name (a folder argument's tree is mirrored), written
atomically, so an interrupted run never leaves a partial file.

Folders are searched recursively; their files are recognised by content (magic bytes), not by
extension (text, which has no magic bytes, only when named .txt, .md or .html), and files
that are not a supported format are skipped and counted. A file named on the
command line that is not a supported format is reported as failed.

A rerun skips outputs an earlier run finished (same input, unchanged since, same options;
recorded in OUTDIR/.labelkit-state.jsonl), so an interrupted batch is resumed by running the
same command again. --force labels everything again.
"""

EPILOG = """\
examples:
  labelkit label --producer 001191110102MAD55U9H0F10002 --key provider.key -o out/ photos/
      photos/a/b.jpg -> out/a/b.jpg; rerun the same command to resume after an interruption
  labelkit label --producer 001191110102MAD55U9H0F10002 --key provider.key -o out/ -j 0 \\
      --text "AI生成 AI-generated" --position top-left img1.png img2.webp
  labelkit label --producer 001191110102MAD55U9H0F10002 --key provider.key -o out/ \\
      --no-explicit --recipient customer-42 --recipient-log recipients.jsonl photos/
  labelkit label --producer 001191110102MAD55U9H0F10002 --key provider.key -o out/ \\
      --c2pa --generator "Example Diffusion 3" renders/

Ctrl-C stops after the files in progress (a second Ctrl-C stops at once); nothing partial is
left behind. exit status: 0 all labeled (or already done), 1 some file failed, 2 usage error,
3 internal error, 130 interrupted
"""

SERVICE_GENERATION = "1"  # position 23 of a provider code: 1 generation, 2 propagation


@dataclass(frozen=True)
class Task:
    """One file to label: where from, where to, and what the resume journal needs."""

    src: str
    dst: str
    rel: str
    real: str
    st: os.stat_result


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the label command."""
    parser = subparsers.add_parser(
        "label", help="label pictures and videos (files and folders) into an output folder",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="picture and video files and folders (searched recursively)")
    parser.add_argument("--producer", required=True, metavar="CODE",
                        help="ContentProducer: your 27-character provider code (GB 45438 "
                             "Annex E; structure and USCC checksum are checked), "
                             "e.g. 001191110102MAD55U9H0F10002")
    parser.add_argument("--key", required=True, metavar="KEYFILE",
                        help="the secret key from `labelkit keygen`, to sign ReservedCode1")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR",
                        help="folder for the labeled copies (created if needed), e.g. -o out/")
    add_jobs_option(parser)
    parser.add_argument("--force", action="store_true",
                        help="label again what an earlier run finished, replacing its outputs")
    visible = parser.add_argument_group(
        "visible label", "the explicit label drawn on the picture (GB 45438 ch. 5)")
    visible.add_argument("--text", default=ImagePolicy.text, metavar="TEXT",
                         help="label text: needs an AI element (AI or 人工智能) and 生成 or 合成; "
                              "English may be added, e.g. --text 'AI生成 AI-generated'")
    visible.add_argument("--position", choices=POSITIONS, default=ImagePolicy.position,
                         metavar="POS", help="corner or edge: " + ", ".join(POSITIONS))
    visible.add_argument("--no-explicit", action="store_true",
                         help="no visible label (metadata and signature only, pixels untouched): "
                              "allowed only for a named recipient, logged (Measures Art. 9); "
                              "needs --recipient and --recipient-log")
    visible.add_argument("--metadata-only", action="store_true",
                         help="the files already carry their visible label: write only the "
                              "metadata label and signature, never re-encode the pixels")
    visible.add_argument("--recipient", metavar="NAME",
                         help="who receives the unlabeled copies, e.g. --recipient customer-42")
    visible.add_argument("--recipient-log", metavar="FILE",
                         help="JSON-lines log the recipient is appended to (keep >= 6 months)")
    mark = parser.add_argument_group(
        "watermark", "the invisible watermark keyed by --key (on re-encoded pictures only)")
    mark.add_argument("--no-watermark", action="store_true",
                      help="do not embed the invisible watermark")
    mark.add_argument("--watermark-profile", choices=("invisible", "robust"),
                      default=ImagePolicy.watermark_profile,
                      help="invisible (default): PSNR >= 40 dB and SSIM >= 0.99; robust: PSNR "
                      ">= 40 dB, SSIM 0.97-0.985, survives more re-encoding and resizing")
    mark.add_argument("--watermark-strength", type=float, default=ImagePolicy.watermark_strength,
                      metavar="S", help="multiplies the profile's mark (default 1.0; up to 8): "
                      "more survival, visible grain on flat areas past ~2")
    video = parser.add_argument_group(
        "video", "how videos are labeled and re-encoded (GB 45438: the label shows >= 2 s "
        "from the start)")
    video.add_argument("--video-label-seconds", type=float, default=VideoPolicy.duration_s,
                       metavar="S", help="presentation time the visible label is shown at the "
                       f"start (default {VideoPolicy.duration_s}; at least 2.0)")
    video.add_argument("--video-label-placement", choices=VIDEO_PLACEMENTS,
                       default=VideoPolicy.placement,
                       help="start (default), start+end, or throughout")
    video.add_argument("--video-crf", type=int, metavar="N",
                       help="encoder quality on the codec's own CRF scale (default visually "
                       "lossless: x264 18, x265 20, VP9 20, SVT-AV1 24)")
    video.add_argument("--video-preset", metavar="NAME",
                       help="encoder speed preset, e.g. veryfast for x264 (default: the "
                       "encoder's own)")
    audio = parser.add_argument_group(
        "audio", "how audio is labeled and re-encoded (GB 45438: the Morse \".- ..\" cue or a "
        "spoken notice before or after the content, never over it)")
    audio.add_argument("--audio-cue-placement", choices=AUDIO_PLACEMENTS,
                       default=AudioPolicy.placement, help="start (default), end, or both")
    audio.add_argument("--audio-notice", metavar="FILE",
                       help="a spoken-notice clip (any audio file) used instead of the cue")
    audio.add_argument("--audio-cue-level", type=float, metavar="DBFS",
                       help="a fixed cue level (RMS, dBFS) instead of the content's loudness")
    audio.add_argument("--audio-bitrate", type=int, metavar="BPS",
                       help="bitrate for lossy formats (default: the source's)")
    text = parser.add_argument_group(
        "text", "how plain text, Markdown and HTML are labeled (GB 45438: a notice with \"AI\" "
        "and \"生成\"; PDF and Office documents get the metadata label only)")
    text.add_argument("--text-placement", choices=TEXT_PLACEMENTS, default=TextPolicy.placement,
                      help="where the notice goes: start (default), end, or both")
    text.add_argument("--text-language", choices=tuple(TEXT_NOTICES),
                      default=TextPolicy.language,
                      help="the default notice's language: zh, or zh-en (English added)")
    text.add_argument("--text-notice", metavar="TEXT",
                      help="a notice of your own (one line, with an AI and a 生成/合成 element)")
    text.add_argument("--no-carrier", action="store_true",
                      help="no invisible Unicode carrier in the text's paragraphs")
    cred = parser.add_argument_group(
        "C2PA", "Content Credentials signed last into JPEG, PNG, WebP, GIF, TIFF, MP4, MOV, M4A, "
        "WAV, MP3 and FLAC (other formats: not applicable, noted); needs c2pa-python")
    cred.add_argument("--c2pa", action="store_true",
                      help="add a C2PA manifest, signed with KEYFILE.c2pa-key.pem and "
                           "KEYFILE.c2pa-chain.pem (from `labelkit keygen --c2pa`) unless "
                           "--c2pa-chain/--c2pa-key name others")
    cred.add_argument("--c2pa-chain", metavar="PEM",
                      help="the signing certificate chain, leaf first (implies --c2pa)")
    cred.add_argument("--c2pa-key", metavar="PEM", help="the leaf's private key (implies --c2pa)")
    cred.add_argument("--c2pa-tsa", metavar="URL",
                      help="an RFC 3161 timestamp authority (default: none; offline signing)")
    parser.add_argument("--ledger", metavar="PATH",
                        help="record every labeled item in this ledger: a SQLite file or a "
                             "postgresql:// URL (default: a SQLite file in your data directory;"
                             " see `labelkit ledger`)")
    cred.add_argument("--generator", default="", metavar="NAME",
                      help="the model or service that generated the content, named in the "
                           "manifest beside labelkit")
    add_run_options(parser)
    parser.set_defaults(func=run, parser=parser)


# -- the command ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Label every input into OUTDIR; see DESCRIPTION."""
    started = time.monotonic()
    config = _config(args)
    jobs = resolve_jobs(args.jobs)
    outdir = args.output
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise UsageError(f"-o {outdir}: exists and is not a folder")
    inputs = collect(args.paths, exclude=[outdir])
    journal = Journal(outdir, settings_digest(config["settings"]))
    if os.path.isdir(outdir):
        journal.load()
    tasks, skipped, folders = _plan(inputs, outdir, journal, args.force)
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"-o {outdir}: cannot create the folder: {exc.strerror}") from None
    _sweep_stale_temps(folders)

    jobs = min(jobs, max(1, len(tasks)))  # no idle workers to start
    progress = Progress(len(tasks), enabled=not args.quiet)
    for error in inputs.errors:
        progress.print(f"labelkit: error: {error}")
    if not inputs.files and not args.quiet:
        progress.print("labelkit: warning: no picture or video files found in "
                       + " ".join(args.paths))
    if not args.quiet and (tasks or skipped):
        extra = f", {skipped} already done" if skipped else ""
        progress.print(f"labelkit: labeling {len(tasks)} file(s) with {jobs} worker(s){extra}")
    counts = {"labeled": 0, "failed": 0, "internal": 0}
    interrupt = Interrupt()
    try:
        with interrupt:
            results = run_tasks(tasks, _label_one, jobs=jobs, init=_init_worker,
                                initargs=(config, progress.frames, progress.tick if jobs <= 1
                                          else None), interrupt=interrupt, lost=_lost,
                                cleanup=_remove_temps, tick=progress.tick)
            noticed = False
            for task, result in results:
                _handle(task, result, journal, progress, counts, args.debug)
                progress.advance()
                if interrupt.stopped and not noticed:
                    noticed = True
                    progress.print("labelkit: interrupted: finishing the files in progress "
                                   "(Ctrl-C again to stop at once)")
    finally:
        progress.close()
        journal.close()
        _worker.clear()  # in-process runs: do not keep the secret key around
    elapsed = time.monotonic() - started  # scanning included: what the user waited
    if not args.quiet:
        print(_summary(counts, skipped, inputs, elapsed, interrupt.stopped), flush=True)
    if interrupt.stopped:
        return EXIT_INTERRUPTED
    if counts["internal"]:
        return EXIT_INTERNAL
    if counts["failed"] or inputs.errors:
        return EXIT_FAILURE
    return EXIT_OK


def _config(args: argparse.Namespace) -> dict[str, Any]:
    """Check every option before any file is touched; what the workers need to rebuild it."""
    if args.no_explicit and args.metadata_only:
        raise UsageError("--no-explicit and --metadata-only exclude each other")
    if args.no_explicit:
        if not args.recipient or not args.recipient_log:
            raise UsageError("--no-explicit needs --recipient NAME and --recipient-log FILE: "
                             "unlabeled copies may only go to a recipient on record "
                             "(Labeling Measures Art. 9)")
    elif args.recipient or args.recipient_log:
        raise UsageError("--recipient and --recipient-log only apply with --no-explicit")
    try:
        image = ImagePolicy(text=args.text, position=args.position,
                            watermark_strength=args.watermark_strength,
                            watermark_profile=args.watermark_profile)
    except LabelkitError as exc:
        raise UsageError(f"--text/--position/--watermark-strength: {exc}") from None
    try:
        video = VideoPolicy(duration_s=args.video_label_seconds,
                            placement=args.video_label_placement, crf=args.video_crf,
                            preset=args.video_preset)
    except LabelkitError as exc:
        raise UsageError(f"--video-*: {exc}") from None
    notice = os.path.abspath(args.audio_notice) if args.audio_notice else None
    if notice is not None and not os.path.isfile(notice):
        raise UsageError(f"--audio-notice {args.audio_notice}: no such file")
    try:
        audio = AudioPolicy(placement=args.audio_cue_placement, notice=notice,
                            level_dbfs=args.audio_cue_level, bitrate=args.audio_bitrate,
                            watermark_strength=min(args.watermark_strength, 4.0))
    except LabelkitError as exc:
        raise UsageError(f"--audio-*: {exc}") from None
    audio_config = [audio.placement, audio.notice, audio.level_dbfs, audio.bitrate,
                    audio.watermark_strength]
    try:
        text = TextPolicy(placement=args.text_placement, language=args.text_language,
                          notice=args.text_notice, carrier=not args.no_carrier)
    except LabelkitError as exc:
        raise UsageError(f"--text-*: {exc}") from None
    text_config = [text.placement, text.language, text.notice, text.carrier]
    try:
        Labeler(args.producer)
    except LabelkitError as exc:
        raise UsageError(f"--producer: {exc}") from None
    if len(args.producer) == 27 and args.producer[22] != SERVICE_GENERATION:
        print(f"labelkit: warning: --producer {args.producer} has service type "
              f"{args.producer[22]}; a content producer's code has 1 (generation)",
              file=sys.stderr)
    try:
        key = load_key(args.key)
    except KeyFileError as exc:
        raise UsageError(f"--key: {exc}") from None
    explicit = "omit" if args.no_explicit else "present" if args.metadata_only else "apply"
    drawn = explicit == "apply"
    c2pa = _c2pa_config(args)
    from ..ledger import default_ledger_path, open_ledger

    ledger = (args.ledger if args.ledger and "://" in args.ledger
              else os.path.abspath(args.ledger) if args.ledger else os.fspath(default_ledger_path()))
    try:
        open_ledger(ledger).close()  # created, migrated and writable before any file is read
    except LabelkitError as exc:
        raise UsageError(f"--ledger: {exc}") from None
    return {
        "producer": args.producer,
        "key": os.path.abspath(args.key),  # workers may start elsewhere (spawn)
        "text": image.text,
        "position": image.position,
        "explicit": explicit,
        "recipient": args.recipient,
        "recipient_log": os.path.abspath(args.recipient_log) if args.recipient_log else None,
        "watermark": drawn and not args.no_watermark,
        "watermark_strength": image.watermark_strength,
        "watermark_profile": image.watermark_profile,
        "video": [video.duration_s, video.placement, video.crf, video.preset],
        "audio": audio_config,
        "text_policy": text_config,
        "c2pa": c2pa,
        "generator": args.generator,
        "ledger": ledger,
        # Everything that shapes an output: a change means earlier outputs are not "done".
        "settings": {
            "producer": args.producer,
            "key_id": key.key_id.hex(),
            "explicit": explicit,
            "text": image.text if drawn else None,
            "position": image.position if drawn else None,
            "recipient": args.recipient if explicit == "omit" else None,
            "watermark": [image.watermark_profile, image.watermark_strength]
            if drawn and not args.no_watermark else None,
            "video": [video.duration_s, video.placement, video.crf, video.preset]
            if drawn else None,
            "audio": audio_config if drawn else None,
            "text_policy": text_config,
            "c2pa": [c2pa["fingerprint"], c2pa["tsa"], args.generator] if c2pa else None,
        },
    }


def _c2pa_config(args: argparse.Namespace) -> dict[str, Any] | None:
    """The C2PA signer's files, checked now (so a bad chain fails before any file is read)."""
    if not (args.c2pa or args.c2pa_chain or args.c2pa_key):
        if args.c2pa_tsa or args.generator:
            raise UsageError("--c2pa-tsa and --generator only apply with --c2pa")
        return None
    from ..credentials.certs import credential_paths, load_credentials
    from ..credentials.signer import C2paSigner

    key_path, chain_path, _ = credential_paths(args.key)
    chain = os.path.abspath(args.c2pa_chain or chain_path)
    key = os.path.abspath(args.c2pa_key or key_path)
    try:
        credentials = load_credentials(chain, key)
        C2paSigner(credentials, tsa_url=args.c2pa_tsa)
        Policy(generator=args.generator)
    except LabelkitError as exc:
        raise UsageError(f"--c2pa: {exc}") from None
    from cryptography.hazmat.primitives import hashes

    fingerprint = credentials.leaf.fingerprint(hashes.SHA256()).hex()
    return {"chain": chain, "key": key, "tsa": args.c2pa_tsa, "fingerprint": fingerprint}


def _plan(inputs: Inputs, outdir: str, journal: Journal, force: bool
          ) -> tuple[list[Task], int, set[str]]:
    """Map inputs to outputs, refuse overwriting an input or two inputs on one output, and
    leave out what an earlier run finished; also return the output folders."""
    outdir_real = os.path.realpath(outdir)
    by_real = {f.real: f for f in inputs.files}
    by_inode = {(f.st.st_dev, f.st.st_ino): f for f in inputs.files}
    claimed: dict[str, Any] = {}  # resolved output path -> the input written there
    tasks: list[Task] = []
    skipped = 0
    folders: set[str] = set()
    for f in inputs.files:
        dst = os.path.join(outdir, f.rel)
        folders.add(os.path.dirname(dst))
        dst_real = os.path.normpath(os.path.join(outdir_real, f.rel))
        other = claimed.get(dst_real)
        if other is not None:
            if other.real == f.real:
                continue  # the same file named twice (e.g. itself and its folder)
            raise UsageError(f"{other.path} and {f.path} would both be written to {dst}; "
                             "label them into different output folders")
        claimed[dst_real] = f
        try:
            st_out = os.stat(dst)
        except OSError:
            st_out = None
        victim = by_real.get(dst_real) or (
            by_inode.get((st_out.st_dev, st_out.st_ino)) if st_out else None)
        if victim is not None:
            raise UsageError(f"the output {dst} would overwrite the input {victim.path}; "
                             "choose an output folder outside the inputs")
        if not force and journal.is_done(f.rel, f.real, f.st, st_out):
            skipped += 1
            continue
        tasks.append(Task(f.path, dst, f.rel, f.real, f.st))
    return tasks, skipped, folders


def _handle(task: Task, result: tuple, journal: Journal, progress: Progress,
            counts: dict[str, int], debug: bool) -> None:
    status = result[0]
    if status == "labeled":
        _, produce_id, out_size, out_mtime_ns = result
        counts["labeled"] += 1
        try:
            journal.record(task.rel, task.real, task.st, out_size, out_mtime_ns, produce_id)
        except OSError as exc:  # the output is fine; only resuming will redo it
            progress.print(f"labelkit: warning: cannot update {journal.path}: {exc.strerror}")
    elif status == "failed":
        counts["failed"] += 1
        progress.print(f"labelkit: error: {result[1]}")
    else:
        counts["internal"] += 1
        if debug and result[2]:
            progress.print(result[2].rstrip())
        progress.print(f"labelkit: internal error: {task.src}: {result[1]} "
                       "(a bug in labelkit: please report it; --debug shows the traceback)")


def _summary(counts: dict[str, int], skipped: int, inputs: Inputs, elapsed: float,
             interrupted: bool) -> str:
    processed = counts["labeled"] + counts["failed"] + counts["internal"]
    failed = counts["failed"] + counts["internal"]
    rate = processed / elapsed if elapsed > 0 else 0.0
    text = (f"labeled {counts['labeled']}, skipped {skipped} (already done), failed {failed}"
            f"{f', {len(inputs.errors)} unreadable' if inputs.errors else ''}; "
            f"{inputs.not_images} non-image file(s) ignored; "
            f"{elapsed:.2f} s ({format_duration(elapsed)}), {rate:.1f} files/s")
    return ("interrupted: " if interrupted else "") + text


def _sweep_stale_temps(folders: set[str]) -> None:
    """Remove temp files a killed earlier run left in the output folders.

    Only those untouched for a minute: a temp file being written right now by a concurrent
    run is recent.
    """
    limit = time.time() - 60
    for folder in folders:
        try:
            with os.scandir(folder) as it:
                for entry in it:
                    if (entry.name.startswith(".") and entry.name.endswith(TEMP_SUFFIX)
                            and entry.stat(follow_symlinks=False).st_mtime < limit):
                        os.unlink(entry.path)
        except OSError:
            continue  # not created yet, or not ours to clean: harmless


def _remove_temps(task: Task) -> None:
    """Remove the temp files of ``task``'s output (its worker was stopped mid-write)."""
    folder, name = os.path.split(task.dst)
    prefix = f".{name}."
    try:
        with os.scandir(folder or ".") as it:
            for entry in it:
                if entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX):
                    os.unlink(entry.path)
    except OSError:
        pass


# -- in the worker process ----------------------------------------------------------------------

_worker: dict[str, Any] = {}


def _init_worker(config: dict[str, Any], frames: Any = None, tick: Any = None) -> None:
    """Build the Labeler once per worker process; ``frames`` counts video frames for progress."""
    _worker["frames"], _worker["tick"] = frames, tick
    policy = Policy(explicit=config["explicit"], watermark=config["watermark"],
                    image=ImagePolicy(text=config["text"], position=config["position"],
                                      watermark_strength=config["watermark_strength"],
                                      watermark_profile=config["watermark_profile"]),
                    video=VideoPolicy(duration_s=config["video"][0],
                                      placement=config["video"][1], crf=config["video"][2],
                                      preset=config["video"][3]),
                    audio=AudioPolicy(placement=config["audio"][0],
                                      notice=config["audio"][1], level_dbfs=config["audio"][2],
                                      bitrate=config["audio"][3],
                                      watermark_strength=config["audio"][4]),
                    text=TextPolicy(*config["text_policy"]), generator=config["generator"])
    signer = None
    if config["c2pa"]:
        from ..credentials.signer import C2paSigner

        signer = C2paSigner.from_files(config["c2pa"]["chain"], config["c2pa"]["key"],
                                       tsa_url=config["c2pa"]["tsa"])
    from ..ledger import open_ledger

    _worker["labeler"] = Labeler(config["producer"], config["key"], policy,
                                 recipient_log=config["recipient_log"], c2pa=signer,
                                 ledger=open_ledger(config["ledger"]))
    _worker["recipient"] = config["recipient"]
    _worker["explicit"] = config["explicit"]


def _label_one(task: Task) -> tuple:
    """Label one file; a small picklable result, never an exception."""
    labeler: Labeler = _worker["labeler"]
    try:
        result = labeler.label_file(task.src, task.dst, explicit=_worker["explicit"],
                                    recipient=_worker["recipient"], progress=_frame_progress())
        st = os.stat(task.dst)
        return ("labeled", result.record.produce_id, st.st_size, st.st_mtime_ns)
    except LabelkitError as exc:
        # Some errors are raised without the file (e.g. a picture too small for the label).
        return ("failed", str(exc) if exc.source else f"{task.src}: {exc}")
    except MemoryError:
        return ("failed", f"{task.src}: out of memory")
    except OSError as exc:  # writing the output: disk full, permissions
        where = exc.filename or task.dst
        return ("failed", f"{where}: cannot write: {exc.strerror or exc}")
    except Exception as exc:
        return ("internal", internal_error_text(exc), traceback.format_exc())


def _frame_progress():
    """A callback that adds a video's decoded frames to the shared counters (done, expected)."""
    frames, tick = _worker.get("frames"), _worker.get("tick")
    if frames is None:
        return None
    last = [0, 0]

    def report(done: int, total: int) -> None:
        with frames.get_lock():
            frames[0] += done - last[0]
            frames[1] += max(total, done) - last[1]
        last[:] = [done, max(total, done)]
        if tick is not None:
            tick()

    return report


def _lost(task: Task, message: str) -> tuple:
    return ("internal", message, "")
