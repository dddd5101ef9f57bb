"""What every command shares: exit codes, usage errors, option helpers, messages."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import TextIO

__all__ = [
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "REPORT_HINT",
    "UsageError",
    "HelpFormatter",
    "add_run_options",
    "add_jobs_option",
    "resolve_jobs",
    "internal_error_text",
    "print_internal_error",
    "warn",
    "write_line",
]

EXIT_OK = 0
EXIT_FAILURE = 1  # some file failed, or is not compliant
EXIT_USAGE = 2  # the command line cannot run as given
EXIT_INTERNAL = 3  # a bug: an exception labelkit did not expect
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT (128 + 2)

# No project URL is configured anywhere (pyproject has none), so say what to send, not where.
REPORT_HINT = (
    "this is a bug in labelkit: please report it to the labelkit maintainers with the command "
    "you ran and the output of `labelkit --report`; rerun with --debug to see the traceback"
)


class UsageError(Exception):
    """A command line that cannot run as given (bad option value, conflicting paths): exit 2."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keep the examples in descriptions and epilogs as written, and show defaults."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            "%(default)" not in text
            and action.default not in (None, False, argparse.SUPPRESS)
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Add --quiet and --debug to a command.

    SUPPRESS as default: a subcommand's defaults would otherwise overwrite ``labelkit --debug``
    given before the command name (argparse copies the sub-namespace over the main one).
    """
    parser.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print only errors: no progress and no summary")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an internal error")


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative; use 0 for one per CPU")
    return value


def add_jobs_option(parser: argparse.ArgumentParser) -> None:
    """Add -j/--jobs N (0 = one worker per CPU)."""
    parser.add_argument("-j", "--jobs", type=_jobs, default=1, metavar="N",
                        help="worker processes; 0 = one per CPU (e.g. -j 8)")


def resolve_jobs(jobs: int) -> int:
    """The number of workers for ``-j``: 0 means the CPUs this process may run on."""
    if jobs > 0:
        return jobs
    try:
        return max(1, len(os.sched_getaffinity(0)))  # respects containers and taskset
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def internal_error_text(exc: BaseException) -> str:
    """One line naming an unexpected exception."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def print_internal_error(exc: BaseException, debug: bool, stream: TextIO | None = None) -> None:
    """Tell the user about a bug: a short message and where to report it, the traceback on --debug."""
    stream = stream or sys.stderr
    if debug:
        traceback.print_exception(exc, file=stream)
    print(f"labelkit: internal error: {internal_error_text(exc)}", file=stream)
    print(f"labelkit: {REPORT_HINT}", file=stream)


def write_line(stream: TextIO, text: str) -> None:
    """Write one line, escaping what the stream's encoding cannot show (odd file names)."""
    try:
        stream.write(text + "\n")
    except UnicodeEncodeError:
        encoding = getattr(stream, "encoding", None) or "utf-8"
        stream.write((text + "\n").encode(encoding, "backslashreplace").decode(encoding))


def warn(message: str, stream: TextIO | None = None) -> None:
    """Print a one-line message prefixed with the program name on stderr."""
    stream = stream or sys.stderr
    write_line(stream, f"labelkit: {message}")
    stream.flush()
