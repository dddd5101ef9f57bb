"""The service as an import string, for uvicorn's worker processes (``labelkit serve --workers``).

uvicorn starts each worker as a fresh (spawned) process that imports the app by name, so the
options cannot be handed over as objects: ``labelkit serve`` checks them, then puts them in the
environment variable ``LABELKIT_SERVE_OPTIONS`` as JSON and runs
``uvicorn.run("labelkit.server.factory:app", factory=True, workers=N)``. Each worker calls
``app()``, which builds its own ``create_app(ServerConfig(...))``: its own key, ledger
connection, verification slots and private temp folder.

The JSON holds paths and settings only, never key material: the provider's key is named by its
file (``key``), which each worker reads itself, like the trusted ``.pub`` files and the C2PA
trust anchors.
"""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["ENV", "OPTIONS", "app", "config_from_options", "options_to_env"]

ENV = "LABELKIT_SERVE_OPTIONS"

# The ServerConfig fields the options may set (all JSON values: paths, numbers, booleans).
OPTIONS = ("key", "pubkeys", "c2pa_trust", "ledger", "max_upload_bytes", "request_timeout_s",
           "max_concurrency", "queue_wait_s", "detect_visible", "require_visible",
           "detect_watermark", "check_c2pa", "publish_digest")


def options_to_env(options: dict[str, Any]) -> str:
    """The JSON text for ``ENV``; refuses anything but the known options with JSON values."""
    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"unknown server options: {', '.join(sorted(unknown))}")
    if not isinstance(options.get("key"), str):
        raise ValueError("the key must be given as the path of its file")
    return json.dumps(options, sort_keys=True)


def config_from_options(options: dict[str, Any]):
    """The ServerConfig the options describe."""
    from .app import ServerConfig

    unknown = set(options) - set(OPTIONS)
    if unknown:
        raise ValueError(f"unknown server options: {', '.join(sorted(unknown))}")
    kwargs = dict(options)
    for name in ("pubkeys", "c2pa_trust"):
        if name in kwargs:
            kwargs[name] = list(kwargs[name] or ())
    return ServerConfig(**kwargs)


def app():
    """The Starlette app of one worker, from the options in ``LABELKIT_SERVE_OPTIONS``."""
    from .app import create_app

    text = os.environ.get(ENV)
    if not text:
        raise RuntimeError(f"{ENV} is not set: start the workers with `labelkit serve --workers`")
    return create_app(config_from_options(json.loads(text)))
