"""The verification service: ``create_app(ServerConfig(key=...))`` is an ASGI app (Starlette).

``labelkit serve`` runs it under uvicorn. Needs the ``serve`` extra
(``pip install 'labelkit[serve]'``: starlette, uvicorn, python-multipart).
"""

from __future__ import annotations

from .app import ServerConfig, create_app, publish

__all__ = ["ServerConfig", "create_app", "publish"]
