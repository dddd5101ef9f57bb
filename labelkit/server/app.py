"""The verification service: ``create_app(ServerConfig(...))`` builds a Starlette ASGI app.

Endpoints (described in ``/openapi.json``):

- ``POST /v1/verify``: one file, as a multipart part or as the raw body; answers the report of
  ``labelkit verify --json``. The watermark is looked for with the provider's key, which stays
  on the server. Nothing is fetched from URLs (C2PA remote manifests are never followed) and no
  server path is ever read on a client's behalf: only the uploaded bytes are verified.
- ``GET /v1/records/{ProduceID}``: what the ledger publishes about a labeled item (``publish``).
- ``GET /healthz``: liveness.
- ``GET /openapi.json``: the OpenAPI 3.1 document.
- ``GET /``: the web page (``static/index.html``; ``/static/`` serves its ``app.js``,
  ``app.css`` and ``favicon.svg``): drop a file in, read the report in Chinese and English.
  Served under a strict Content-Security-Policy (``default-src 'self'``, no inline script or
  style; uploaded pictures are previewed from ``blob:`` URLs); it loads nothing from elsewhere.

Status codes: 400 no file or an empty one (or a malformed multipart body), 404 unknown record
or path, 413 upload over ``max_upload_bytes``, 415 bytes of no format labelkit handles
(``UnsupportedFormat``), 422 a supported format that cannot be parsed or is over a decoding
limit (any other ``LabelkitError``; the body names the upload), 503 with Retry-After when every
verification slot stayed busy for ``queue_wait_s``, 504 past ``request_timeout_s``. Every error
is JSON: ``{"error": message}``, with ``path`` for 415 and 422.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from typing import Any, Iterable

import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..errors import LabelkitError, UnsupportedFormat
from ..ledger import LedgerEntry, SqlLedger, open_ledger
from ..limits import DEFAULT_LIMITS, Limits
from ..policy import Policy
from ..signing import PublicKey, SigningKey, load_key
from ..verify import c2pa_anchors, trust_store, verify
from ..watermark import WatermarkKey
from .limits import Busy, RequestLimits, Slots
from .openapi import document
from .upload import UploadError, receive_upload, remove_quietly

__all__ = ["CONTENT_SECURITY_POLICY", "RETRY_AFTER_S", "ServerConfig", "create_app", "publish"]

log = logging.getLogger("labelkit.server")

RETRY_AFTER_S = 5  # what a 503 tells the client to wait before trying again
_MIB = 1024 * 1024

# The web page's policy: its own script, style and fetches only; blob: for the client-side
# preview of the uploaded picture; no plugins, no framing, no <base> or form posts elsewhere.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# The page's files (package data in labelkit/server/static/), each with its media type: only
# these are served, so no request path ever reaches the file system.
_STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@dataclass
class ServerConfig:
    """Everything the service needs; the key is the provider's and never leaves the server.

    ``key``: the provider's secret key (a SigningKey or a key file): signatures are checked
    against its public part and the watermark is looked for with the secret derived from it.
    ``pubkeys``: more trusted producer keys (PublicKey objects or .pub files). ``c2pa_trust``:
    C2PA trust anchors (CA file paths, or PEM text). ``ledger``: a SQLite path, a
    ``postgresql://`` URL, an open ledger, or None for ``default_ledger_path()``.
    ``temp_dir``: where uploads are put while they are verified (default: a new private
    folder under the system's temp folder, removed at shutdown).
    """

    key: SigningKey | str | os.PathLike
    pubkeys: Iterable[PublicKey | str | os.PathLike] = ()
    c2pa_trust: Iterable[str | os.PathLike] | str = ()
    ledger: SqlLedger | str | os.PathLike | None = None
    max_upload_bytes: int = 256 * _MIB
    request_timeout_s: float = 120.0
    max_concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    queue_wait_s: float = 10.0  # how long a request waits in line for a slot before 503
    temp_dir: str | os.PathLike | None = None
    detect_visible: bool = True
    require_visible: bool = False
    detect_watermark: bool = True
    check_c2pa: bool = True
    policy: Policy | None = None
    limits: Limits = DEFAULT_LIMITS
    publish_digest: bool = True  # see ``publish``


def publish(entry: LedgerEntry, *, digest: bool = True) -> dict[str, Any]:
    """What the service tells anyone about a labeled item, from its ledger entry.

    Published: the ProduceID, the producer's code, modality and format, when it was labeled,
    whether the explicit label was applied (or already present), whether a watermark was
    embedded. Not published: the recipient of content handed out without the explicit label
    (personal data, Labeling Measures Art. 9), the watermark payload (it is keyed, and nothing
    a holder needs), the explicit mode beyond applied/not and the layer list.

    The essence digest is published (``digest=False`` withholds it): it is already inside every
    labeled copy, in ReservedCode1, so it tells nobody who holds the content anything new, and
    it lets the holder of a copy whose metadata was stripped or replaced check that the media
    are the ones this record was made for. What it could give away is limited to someone who
    holds only a ProduceID and guesses the content (a very short text): ProduceIDs travel
    with the content they name, which is why the default is to publish.
    """
    out: dict[str, Any] = {
        "ProduceID": entry.produce_id,
        "producer": entry.producer,
        "modality": entry.modality,
        "format": entry.format,
        "labeled_at": entry.to_dict()["labeled_at_iso"],
        "explicit_applied": entry.explicit_applied,
        "watermark_embedded": entry.watermark_payload is not None,
    }
    if digest:
        out["essence_digest"] = entry.essence_digest
    return out


def create_app(config: ServerConfig) -> Starlette:
    """The service as a Starlette app; keys, trust anchors and the ledger are loaded now."""
    key = config.key if isinstance(config.key, SigningKey) else load_key(config.key)
    trust = trust_store(key, list(config.pubkeys) or None)
    watermark_key = WatermarkKey.from_signing_key(key) if config.detect_watermark else None
    c2pa_trust = (config.c2pa_trust if isinstance(config.c2pa_trust, (str, os.PathLike))
                  else list(config.c2pa_trust))
    anchors = c2pa_anchors(c2pa_trust) if c2pa_trust else None  # PEM text, or None
    if isinstance(config.ledger, SqlLedger):
        ledger, own_ledger = config.ledger, False
    else:
        ledger, own_ledger = open_ledger(config.ledger), True
    if config.temp_dir is not None:
        temp_dir, own_temp = os.fspath(config.temp_dir), False
        os.makedirs(temp_dir, mode=0o700, exist_ok=True)
    else:
        temp_dir, own_temp = tempfile.mkdtemp(prefix="labelkit-serve-"), True  # mode 0700
    slots = Slots(config.max_concurrency)
    policy = config.policy or Policy()
    openapi = json.dumps(document(config.max_upload_bytes), ensure_ascii=False).encode()

    def run_verify(path: str, name: str) -> dict[str, Any]:
        report = verify(path, trust=trust, watermark_key=watermark_key, c2pa_trust=anchors,
                        check_c2pa=config.check_c2pa, policy=policy, limits=config.limits,
                        detect_visible=config.detect_visible,
                        require_visible=config.require_visible, name=name)
        return report.to_dict()

    async def verify_endpoint(request: Request) -> Response:
        try:
            upload = await receive_upload(request, temp_dir)
        except UploadError as exc:
            return _error(400, str(exc))
        name = upload.name
        try:
            report = await slots.run(lambda: run_verify(upload.path, name),
                                     wait_s=config.queue_wait_s,
                                     cleanup=lambda: remove_quietly(upload.path))
        except Busy as exc:
            return _error(503, f"{exc}; try again later",
                          headers={"Retry-After": str(RETRY_AFTER_S)})
        except LabelkitError as exc:
            # The message names the upload, never the server's temp file.
            reason = exc.reason.replace(upload.path, name)
            status = 415 if isinstance(exc, UnsupportedFormat) else 422
            return _error(status, f"{name}: {reason}", path=name)
        except MemoryError:
            return _error(422, f"{name}: out of memory while verifying", path=name)
        # Same bytes as a line of `labelkit verify --json`.
        return Response(json.dumps(report, separators=(",", ":")),
                        media_type="application/json")

    async def record_endpoint(request: Request) -> Response:
        produce_id = request.path_params["produce_id"]
        try:
            entry = await anyio.to_thread.run_sync(ledger.get, produce_id)
        except LabelkitError as exc:
            log.error("ledger lookup failed: %s", exc)
            return _error(503, "the ledger cannot be read now; try again later",
                          headers={"Retry-After": str(RETRY_AFTER_S)})
        if entry is None:
            return _error(404, f"no record of ProduceID {produce_id}")
        return JSONResponse(publish(entry, digest=config.publish_digest))

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__,
                             "busy": slots.busy, "slots": slots.n})

    async def openapi_endpoint(request: Request) -> Response:
        return Response(openapi, media_type="application/json")

    static = {name: (importlib.resources.files(__package__).joinpath("static", name)
                     .read_bytes(), media_type) for name, media_type in _STATIC.items()}

    def page_file(name: str) -> Response:
        body, media_type = static[name]
        return Response(body, media_type=media_type, headers=_PAGE_HEADERS)

    async def root(request: Request) -> Response:
        return page_file("index.html")

    async def static_endpoint(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in static:
            return _error(404, f"no static file {name}")
        return page_file(name)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        try:
            yield
        finally:
            if own_ledger:
                ledger.close()
            if own_temp:
                shutil.rmtree(temp_dir, ignore_errors=True)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, exc.detail, headers=exc.headers)

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal error")

    app = Starlette(
        routes=[
            Route("/", root, methods=["GET"]),
            Route("/static/{name}", static_endpoint, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/openapi.json", openapi_endpoint, methods=["GET"]),
            Route("/v1/verify", verify_endpoint, methods=["POST"]),
            Route("/v1/records/{produce_id}", record_endpoint, methods=["GET"]),
        ],
        middleware=[Middleware(RequestLimits, max_body_bytes=config.max_upload_bytes,
                               timeout_s=config.request_timeout_s)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.temp_dir = temp_dir
    app.state.slots = slots
    app.state.ledger = ledger
    return app


def _error(status: int, message: str, *, path: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"error": message}
    if path is not None:
        body["path"] = path
    return JSONResponse(body, status_code=status, headers=headers)
