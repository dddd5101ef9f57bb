"""``labelkit serve``: run the verification service (``labelkit.server``) under uvicorn."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
from typing import Any, Iterator

from ..errors import KeyFileError, LabelkitError
from ._common import EXIT_OK, HelpFormatter, UsageError, add_run_options

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
Run the verification service: POST /v1/verify takes one file (multipart/form-data, or the raw
body) and answers the report `labelkit verify --json` gives; GET /v1/records/PRODUCEID answers
what the ledger publishes about a labeled item (never its recipient); GET /healthz; the OpenAPI
document at /openapi.json (GET / redirects there).

The invisible watermark is looked for with the secret derived from --key, on the server: the
key never leaves it. Only uploaded bytes are verified (no server paths, no URLs: C2PA remote
manifests are never fetched). Uploads over --max-upload-mb are refused with 413 (unread when
their Content-Length says so), requests over --timeout get 504, and at most --concurrency
files are verified at once (503 with Retry-After when all are busy). Uploads are kept in a
private temp folder only while they are verified.

--workers N runs N server processes on the one port (uvicorn's workers), each with its own
--concurrency slots: verifying is CPU-bound, so workers spread it over the cores. They get the
options, never the key itself: each reads the --key file.
"""

EPILOG = """\
examples:
  labelkit serve --key provider.key
  labelkit serve --key provider.key --host 0.0.0.0 --port 8080 --ledger postgresql://ledger/db
  labelkit serve --key provider.key --workers 2 --no-watermark --no-visible
  curl -F file=@photo.jpg http://127.0.0.1:8000/v1/verify
  curl --data-binary @photo.jpg 'http://127.0.0.1:8000/v1/verify?name=photo.jpg'

Put a reverse proxy with TLS in front of it to serve it beyond this machine.

exit status: 0 stopped (Ctrl-C or SIGTERM), 2 usage error, 3 internal error
"""


def _positive(kind: type, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} is not positive")
        return value
    return parse


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (0-65535)")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register the serve command."""
    parser = subparsers.add_parser(
        "serve", help="run the verification service (HTTP)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=HelpFormatter,
    )
    parser.add_argument("--key", required=True, metavar="KEYFILE",
                        help="the provider's secret key: signatures and the watermark")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=_port, default=8000, help="port to listen on")
    parser.add_argument("--pubkey", action="append", metavar="PUBFILE",
                        help="another trusted producer's public key; repeat for several")
    parser.add_argument("--c2pa-trust", action="append", metavar="ROOT.pem",
                        help="a C2PA trust anchor (CA certificate); repeat for several")
    parser.add_argument("--ledger", metavar="PATH",
                        help="the ledger records are looked up in: a SQLite file or a "
                             "postgresql:// URL (default: the SQLite file in your data "
                             "directory that `labelkit label` records into)")
    parser.add_argument("--max-upload-mb", type=_positive(float, "a number"), default=256.0,
                        metavar="MB", help="largest upload accepted, in MiB")
    parser.add_argument("--timeout", type=_positive(float, "a number"), default=120.0,
                        metavar="S", help="seconds a request may take before 504")
    parser.add_argument("--concurrency", type=_positive(int, "a whole number"), default=None,
                        metavar="N", help="files verified at once, per worker (default: one "
                                          "per CPU)")
    parser.add_argument("--workers", type=_positive(int, "a whole number"), default=1,
                        metavar="N", help="server processes (uvicorn workers) on the one port")
    parser.add_argument("--no-visible", action="store_true",
                        help="skip looking for the visible label (faster: no pixel decoding)")
    parser.add_argument("--require-visible", action="store_true",
                        help="a missing visible label fails the file (default: a warning)")
    parser.add_argument("--no-watermark", action="store_true",
                        help="skip looking for the invisible watermark: the label's metadata "
                             "and signature only (with --no-visible, no pixel decoding at all)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"],
                        help="uvicorn's log level")
    add_run_options(parser)
    parser.set_defaults(func=run, parser=parser)


def run(args: argparse.Namespace) -> int:
    """Build the app from the options and serve it until interrupted."""
    try:
        import uvicorn

        from ..server import ServerConfig, create_app
    except ImportError as exc:
        raise UsageError(f"the service needs the serve extra (pip install 'labelkit[serve]'): "
                         f"{exc}") from None
    log_level = "warning" if args.quiet else args.log_level
    common = dict(host=args.host, port=args.port, log_level=log_level, server_header=False,
                  timeout_graceful_shutdown=10)
    if args.workers == 1:
        app = create_app(_config(args, ServerConfig))
        with _stopped_by_signal():
            uvicorn.run(app, **common)
        return EXIT_OK
    from ..server import factory

    text = factory.options_to_env(_worker_options(args))  # checked here, before any worker
    os.environ[factory.ENV] = text  # the spawned workers inherit it
    try:
        with _stopped_by_signal():
            uvicorn.run("labelkit.server.factory:app", factory=True, workers=args.workers,
                        **common)
    finally:
        os.environ.pop(factory.ENV, None)
    return EXIT_OK


class _Stopped(Exception):
    """SIGINT or SIGTERM: the server was asked to stop (exit 0)."""


@contextlib.contextmanager
def _stopped_by_signal() -> Iterator[None]:
    """A stop by SIGINT/SIGTERM ends the command normally.

    uvicorn shuts down gracefully on either, then raises the signal again with the handlers it
    found in place; without these the process would die by SIGTERM (status -15) or end in
    KeyboardInterrupt (130). A signal before uvicorn has taken over stops the start just the
    same.
    """
    def stop(sig: int, frame: Any) -> None:
        raise _Stopped(sig)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    except _Stopped:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _config(args: argparse.Namespace, config_type: Any):
    """The ServerConfig, with every option checked before the server starts."""
    key, pubkeys, anchors = _loaded(args)
    return config_type(key=key, pubkeys=pubkeys, c2pa_trust=anchors, **_settings(args))


def _worker_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of ``--workers``' processes (``labelkit.server.factory``), checked as for
    ``_config``: files by absolute path (the key's too, never its contents)."""
    _loaded(args)
    return {"key": os.path.abspath(args.key),
            "pubkeys": [os.path.abspath(p) for p in args.pubkey or ()],
            "c2pa_trust": [os.path.abspath(p) for p in args.c2pa_trust or ()],
            **_settings(args)}


def _loaded(args: argparse.Namespace) -> tuple[Any, list, str | list]:
    """The key, the trusted public keys and the C2PA trust anchors (PEM text), checked."""
    from ..signing import load_key, load_public_key
    from ..verify import c2pa_anchors

    if args.require_visible and args.no_visible:
        raise UsageError("--require-visible and --no-visible exclude each other")
    try:
        key = load_key(args.key)
    except KeyFileError as exc:
        raise UsageError(f"--key: {exc}") from None
    try:
        pubkeys = [load_public_key(p) for p in args.pubkey or ()]
    except KeyFileError as exc:
        raise UsageError(f"--pubkey: {exc}") from None
    anchors: str | list = []
    if args.c2pa_trust:
        try:
            anchors = c2pa_anchors([os.path.abspath(p) for p in args.c2pa_trust])
        except LabelkitError as exc:
            raise UsageError(f"--c2pa-trust: {exc}") from None
    return key, pubkeys, anchors


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The rest of the ServerConfig (plain values), the ledger checked reachable."""
    from ..ledger import default_ledger_path, open_ledger

    location = (args.ledger if args.ledger and "://" in args.ledger
                else os.path.abspath(args.ledger) if args.ledger
                else os.fspath(default_ledger_path()))
    try:
        open_ledger(location).close()  # reachable and migrated before the server starts
    except LabelkitError as exc:
        raise UsageError(f"--ledger: {exc}") from None
    kwargs = {} if args.concurrency is None else {"max_concurrency": args.concurrency}
    return dict(ledger=location, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                request_timeout_s=args.timeout, detect_visible=not args.no_visible,
                require_visible=args.require_visible,
                detect_watermark=not args.no_watermark, **kwargs)
