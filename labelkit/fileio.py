"""Reading inputs under limits and writing outputs atomically (temp file + rename)."""

from __future__ import annotations

import itertools
import mmap
import os
import secrets
from contextlib import contextmanager
from typing import BinaryIO, Iterator, Sequence

from .errors import CorruptInput, LabelkitError, LimitExceeded
from .limits import DEFAULT_LIMITS, Limits

__all__ = ["read_input", "map_input", "release", "atomic_write"]


@contextmanager
def _opened(path: str | os.PathLike, limits: Limits) -> Iterator[tuple[BinaryIO, int]]:
    """Open an input for reading, refusing files over ``limits.max_file_bytes``; errors named."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limits.max_file_bytes:
                raise LimitExceeded(
                    f"file is {size} bytes, over the limit of {limits.max_file_bytes}", source=name
                )
            yield f, size
    except IsADirectoryError:
        raise LabelkitError("is a directory, not a file", source=name) from None
    except FileNotFoundError:
        raise LabelkitError("no such file", source=name) from None
    except (OSError, ValueError) as exc:  # ValueError: mmap of a file that shrank
        raise CorruptInput(f"cannot read: {getattr(exc, 'strerror', None) or exc}",
                           source=name) from None


def read_input(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Read a whole input file, refusing files over ``limits.max_file_bytes``."""
    with _opened(path, limits) as (f, _):
        return f.read(limits.max_file_bytes + 1)


def map_input(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> bytes | mmap.mmap:
    """Map a whole input file read-only (for video: nothing is copied until it is written out).

    The file must not change while the map is in use (labelkit never writes to its inputs);
    an empty file gives b"" (mmap refuses length 0).
    """
    with _opened(path, limits) as (f, size):
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""


def release(buffer: object) -> None:
    """Unmap what map_input returned, unless slices of it are still alive (the GC unmaps then)."""
    close = getattr(buffer, "close", None)
    if close is not None:
        try:
            close()
        except BufferError:  # memoryviews of it are still referenced somewhere
            pass


def atomic_write(
    path: str | os.PathLike,
    data: bytes | Sequence[bytes | memoryview],
    *,
    mode: int = 0o644,
    durable: bool = True,
) -> None:
    """Write ``data`` (bytes, or a sequence of parts written in order) to ``path`` atomically.

    The parts form lets a video be written from slices of its mapped input without joining them.
    It goes through a temp file in the same folder and an atomic rename.

    An error leaves either the old file or none, never a partial one; ``durable`` also flushes
    the data to disk before the rename, so a power cut cannot leave an empty file behind.
    ``mode`` is filtered by the umask, as for any new file.
    """
    target = os.fspath(path)
    folder, name = os.path.split(target)
    # Unique per process and call, unguessable enough that two writers never collide; O_EXCL
    # guarantees it. The ".lk-tmp" suffix lets the CLI recognise (and clean up) leftovers.
    tmp = os.path.join(folder, f".{name}.{os.getpid()}-{next(_counter)}-{secrets.token_hex(4)}.lk-tmp")
    try:
        if folder:
            os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        raise LabelkitError(f"cannot write: {exc.strerror or exc}", source=target) from None
    try:
        with os.fdopen(fd, "wb") as f:
            for part in ([data] if isinstance(data, (bytes, bytearray, memoryview)) else data):
                f.write(part)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise LabelkitError(f"cannot write: {exc.strerror or exc}", source=target) from None
        raise


_counter = itertools.count()
