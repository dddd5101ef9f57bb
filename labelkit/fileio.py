"""Reading inputs under limits and writing outputs atomically (temp file + rename)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import CorruptInput, LabelkitError, LimitExceeded
from .limits import DEFAULT_LIMITS, Limits

__all__ = ["read_input", "atomic_write"]


def read_input(path: str | os.PathLike, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """Read a whole input file, refusing files over ``limits.max_file_bytes``."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limits.max_file_bytes:
                raise LimitExceeded(
                    f"file is {size} bytes, over the limit of {limits.max_file_bytes}", source=name
                )
            return f.read(limits.max_file_bytes + 1)
    except IsADirectoryError:
        raise LabelkitError("is a directory, not a file", source=name) from None
    except FileNotFoundError:
        raise LabelkitError("no such file", source=name) from None
    except OSError as exc:
        raise CorruptInput(f"cannot read: {exc.strerror or exc}", source=name) from None


def atomic_write(
    path: str | os.PathLike, data: bytes, *, mode: int | None = None, durable: bool = True
) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and an atomic rename.

    An error leaves either the old file or none, never a partial one; ``durable`` also flushes
    the data to disk before the rename, so a power cut cannot leave an empty file behind.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".lk-tmp", dir=target.parent)
    except OSError as exc:
        raise LabelkitError(f"cannot write: {exc.strerror or exc}", source=str(target)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, mode if mode is not None else 0o644 & ~_umask())
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise LabelkitError(f"cannot write: {exc.strerror or exc}", source=str(target)) from None
        raise


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
