"""The ``labelkit`` command line: ``main(argv) -> int``, one module per command."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ._common import (
    EXIT_FAILURE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    HelpFormatter,
    UsageError,
    print_internal_error,
)

__all__ = ["main", "build_parser"]

DESCRIPTION = """\
Label AI-generated pictures as GB 45438-2025 requires (a visible label, the implicit metadata
label of Annex E, and a signature binding the label to the content), and verify such labels.
"""

EPILOG = """\
examples:
  labelkit keygen -o provider.key
  labelkit label --producer 001191110102MAD55U9H0F10002 --key provider.key -o out/ photos/
  labelkit verify --pubkey provider.key.pub out/

`labelkit COMMAND -h` explains a command and its options.

exit status: 0 ok, 1 some file failed or is not compliant, 2 usage error, 3 internal error
(a bug: please report it), 130 interrupted (Ctrl-C)
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``labelkit`` and its commands."""
    from . import keygen, label, ledger, propagate, serve, verify
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="labelkit", description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"labelkit {__version__}")
    parser.add_argument("--report", action="store_true",
                        help="describe this installation (versions, native or pure-Python "
                             "kernels, formats, layers) and exit")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an internal error")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    keygen.add_parser(subparsers)
    label.add_parser(subparsers)
    verify.add_parser(subparsers)
    ledger.add_parser(subparsers)
    propagate.add_parser(subparsers)
    serve.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the labelkit command line; return the exit status instead of exiting."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # known before parsing, for errors raised while parsing
    try:
        parser = build_parser()
        try:
            args, extra = parser.parse_known_args(argv)
            if extra:  # reported by the command's own parser, so its usage is shown
                getattr(args, "parser", parser).error(
                    "unrecognized arguments: " + " ".join(extra))
        except SystemExit as exc:  # argparse: -h, --version (0) or a usage error (2)
            return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None
                                                               else EXIT_USAGE)
        args.debug = getattr(args, "debug", False)
        args.quiet = getattr(args, "quiet", False)
        debug = args.debug
        if args.report:
            from .. import features

            print(features.report_text())
            return EXIT_OK
        if args.command is None:
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        try:
            return args.func(args)
        except UsageError as exc:
            args.parser.print_usage(sys.stderr)
            print(f"{args.parser.prog}: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nlabelkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `labelkit verify --json out/ | head`: the reader left
        _silence_stdout()
        return EXIT_FAILURE
    except Exception as exc:  # a bug: say so briefly, not with a bare traceback
        print_internal_error(exc, debug)
        return EXIT_INTERNAL


def _silence_stdout() -> None:
    # Python flushes stdout again at exit and would complain about the closed pipe.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests)
        pass
