"""Receive one uploaded file, multipart or raw, streamed into a temp file of the server's own.

The upload's name is only ever a label in the report (``safe_name``); the file on disk is named
by the server, in its private temp folder. Multipart bodies are parsed as they arrive
(python-multipart's push parser), so that neither the whole body nor a copy of it is held, and
no temp file is made anywhere else (Starlette's own form parser spools to the system's temp
folder).
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass

import anyio.to_thread
from starlette.requests import Request

__all__ = ["Upload", "UploadError", "receive_upload", "safe_name"]

_FLUSH_BYTES = 1 << 20  # written to disk in a worker thread once this much has arrived
_MAX_NAME = 200
_EXTENSION = re.compile(r"\.[a-z0-9]{1,10}")


class UploadError(Exception):
    """The request does not carry one usable file (400)."""


@dataclass
class Upload:
    """A received file: where the server put it, the name it goes by, its size."""

    path: str
    name: str
    size: int


def safe_name(raw: str | None) -> str:
    """The last component of an uploaded file's name, printable, without leading dots.

    ``../../etc/passwd`` becomes ``passwd``: the name labels the report and picks the text
    handler by extension (.txt/.md/.html), and is never used as a path.
    """
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".").strip()
    if len(name) > _MAX_NAME:
        stem, ext = os.path.splitext(name)
        name = stem[: _MAX_NAME - len(ext)] + ext if len(ext) <= 11 else name[:_MAX_NAME]
    return name or "upload"


def _temp_file(folder: str, name: str) -> tuple[str, int]:
    """A new 0600 file in ``folder``, with the upload's extension when it is a plain one (the
    video handlers map video files, and text is recognised by its extension)."""
    ext = os.path.splitext(name)[1].lower()
    fd, path = tempfile.mkstemp(prefix="upload-", suffix=ext if _EXTENSION.fullmatch(ext) else "",
                                dir=folder)
    return path, fd


class _Sink:
    """Buffered writes of the upload's bytes to its temp file, off the event loop."""

    def __init__(self, fd: int) -> None:
        self.file = os.fdopen(fd, "wb")
        self.pending: list[bytes] = []
        self.buffered = 0
        self.size = 0

    def add(self, data: bytes) -> None:
        self.pending.append(data)
        self.buffered += len(data)
        self.size += len(data)

    async def flush(self, force: bool = False) -> None:
        if self.pending and (force or self.buffered >= _FLUSH_BYTES):
            block = b"".join(self.pending)
            self.pending.clear()
            self.buffered = 0
            await anyio.to_thread.run_sync(self.file.write, block)

    def close(self) -> None:
        self.file.close()


async def receive_upload(request: Request, folder: str) -> Upload:
    """Stream the request's file into ``folder``; the caller removes ``Upload.path``.

    multipart/form-data: the one part with a filename (any field name; ``file`` by convention).
    Anything else: the raw body is the file, named by the ``name`` query parameter.
    Raises UploadError (400) for no file or an empty one; on any error nothing is left behind.
    """
    content_type = request.headers.get("content-type", "")
    multipart = content_type.lower().startswith("multipart/form-data")
    name = None if multipart else safe_name(request.query_params.get("name"))
    path, fd = _temp_file(folder, name or "")
    sink = _Sink(fd)
    try:
        if multipart:
            name = await _receive_multipart(request, content_type, sink)
        else:
            async for chunk in request.stream():
                if chunk:
                    sink.add(chunk)
                    await sink.flush()
        await sink.flush(force=True)
        sink.close()
        if sink.size == 0:
            raise UploadError("the upload is empty")
        if multipart and name is not None:
            # The name arrives with the body: rename to give the temp file its extension.
            wanted, fd2 = _temp_file(folder, name)
            os.close(fd2)
            os.replace(path, wanted)
            path = wanted
        return Upload(path, name or "upload", sink.size)
    except BaseException:
        sink.close()
        remove_quietly(path)
        raise


async def _receive_multipart(request: Request, content_type: str, sink: _Sink) -> str:
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header

    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadError("multipart/form-data without a boundary")
    state: dict = {"header": b"", "value": b"", "disposition": b"", "in_file": False,
                   "name": None, "files": 0}

    def on_part_begin() -> None:
        state.update(header=b"", value=b"", disposition=b"", in_file=False)

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["value"] += data[start:end]

    def on_header_end() -> None:
        if state["header"].lower() == b"content-disposition":
            state["disposition"] = state["value"]
        state["header"] = state["value"] = b""

    def on_headers_finished() -> None:
        _, options = parse_options_header(state["disposition"])
        if b"filename" in options:
            state["files"] += 1
            if state["files"] > 1:
                raise UploadError("one file per request")
            state["in_file"] = True
            state["name"] = safe_name(options[b"filename"].decode("utf-8", "replace"))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if state["in_file"]:  # other fields are ignored, never held
            sink.add(data[start:end])

    def on_part_end() -> None:
        state["in_file"] = False

    parser = MultipartParser(boundary, {
        "on_part_begin": on_part_begin, "on_header_field": on_header_field,
        "on_header_value": on_header_value, "on_header_end": on_header_end,
        "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
        "on_part_end": on_part_end,
    })
    try:
        async for chunk in request.stream():
            parser.write(chunk)
            await sink.flush()
        parser.finalize()
    except FormParserError:
        raise UploadError("the multipart body is malformed") from None
    if state["files"] == 0:
        raise UploadError("no file in the multipart body: send it as a part with a filename "
                          "(field name 'file')")
    return state["name"]


def remove_quietly(path: str) -> None:
    """Remove a file if it is there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
