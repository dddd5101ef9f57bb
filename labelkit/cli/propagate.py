"""``labelkit propagate``: a platform relabels what it distributes (Labeling Measures Art. 6)."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import KeyFileError, LabelkitError
from ..propagate import Propagator
from ..verify import trust_store
from ._common import EXIT_FAILURE, EXIT_OK, HelpFormatter, UsageError, add_run_options
from ._inputs import collect
from .ledger import add_ledger_option

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
Relabel files as a propagating platform: read each file's label and write the platform's own
ContentPropagator, PropagateID and ReservedCode2 (its signature over the label and the content)
into the one label, metadata only (the content is not re-encoded, the producer's ReservedCode1
stays valid). A valid label keeps its Label ("1"); without one, --declared-ai (the uploader
says it is AI-generated) gives "2"; otherwise traces (a visible label, labelkit's watermark
or text carrier, a C2PA manifest, an invalid label) give "3". A file with none of these is
not relabeled and nothing is written for it.
"""

EPILOG = """\
examples:
  labelkit propagate --propagator 001191110102MAD55U9H0F20002 --key platform.key -o out/ uploads/
  labelkit propagate --propagator CODE --key platform.key --declared-ai -o out/ upload.jpg

exit status: 0 every file relabeled or left alone, 1 some file failed, 2 usage error
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the propagate command."""
    parser = subparsers.add_parser(
        "propagate", help="relabel files as a propagating platform (Measures Art. 6)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files and folders")
    parser.add_argument("--propagator", required=True, metavar="CODE",
                        help="the platform's provider code (service type 2, propagation)")
    parser.add_argument("--key", required=True, metavar="KEYFILE",
                        help="the platform's secret key: signs ReservedCode2")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    parser.add_argument("--declared-ai", action="store_true",
                        help="the uploader declares these files AI-generated (Label 2 when "
                             "they carry no valid label)")
    parser.add_argument("--pubkey", action="append", metavar="PUBFILE",
                        help="a producer's public key, to check ReservedCode1 (repeatable)")
    parser.add_argument("--c2pa-trust", action="append", metavar="ROOT.pem",
                        help="C2PA trust anchors for reading manifests (repeatable)")
    add_ledger_option(parser)
    add_run_options(parser)
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    """Relabel every input into OUTDIR; print one line per file."""
    from ..ledger import open_ledger

    try:
        ledger = open_ledger(args.ledger)
    except LabelkitError as exc:
        raise UsageError(f"--ledger: {exc}") from None
    try:
        propagator = Propagator(args.propagator, args.key, trust=trust_store(None, args.pubkey),
                                c2pa_trust=args.c2pa_trust, ledger=ledger)
    except KeyFileError as exc:
        raise UsageError(f"--key/--pubkey: {exc}") from None
    except LabelkitError as exc:
        raise UsageError(f"--propagator: {exc}") from None
    inputs = collect(args.paths)
    failed = len(inputs.errors)
    for error in inputs.errors:
        print(f"labelkit: error: {error}", file=sys.stderr)
    for item in inputs.files:
        dst = os.path.join(args.output, item.rel)
        try:
            os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
            result = propagator.propagate_file(item.path, dst, declared_ai=args.declared_ai)
        except (LabelkitError, OSError) as exc:
            failed += 1
            print(f"labelkit: {item.path}: {exc}", file=sys.stderr)
            continue
        if not args.quiet:
            what = (f"Label {result.label_class} -> {dst}" if result.label_class
                    else "not relabeled")
            print(f"{item.path}: {what} ({result.reason})")
            for note in result.notes:
                print(f"  note: {note}")
    ledger.close()
    return EXIT_FAILURE if failed else EXIT_OK
