"""Turn the PATH arguments (files and folders) into the list of files a command works on."""

from __future__ import annotations

import functools
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterator, Sequence

from .. import formats
from ..errors import UnsupportedFormat
from ._common import UsageError

__all__ = ["InputFile", "Inputs", "collect", "TEMP_SUFFIX", "STATE_NAME"]

TEMP_SUFFIX = ".lk-tmp"  # fileio.atomic_write's temp files: never inputs
STATE_NAME = ".labelkit-state.jsonl"  # the label command's resume journal in OUTDIR
_SNIFF_BYTES = 64  # what formats.sniff looks at
_SNIFF_THREADS = 16  # sniffing is a small read per file: threads hide disk and network latency
_SNIFF_CHUNK = 64  # files per thread task: a task per file would cost more than the read


@dataclass(frozen=True)
class InputFile:
    """One file to work on."""

    path: str  # as the user would write it: the argument, joined with the path inside it
    rel: str  # where its output goes under OUTDIR: path inside the folder argument, or its name
    real: str  # resolved path: tells two names for the same file apart from two files
    named: bool  # named on the command line, rather than found in a folder
    st: os.stat_result


@dataclass
class Inputs:
    """The files found, and what was left out."""

    files: list[InputFile] = field(default_factory=list)
    not_images: int = 0  # files in folders that no format handler accepts
    errors: list[str] = field(default_factory=list)  # folders that could not be read


def collect(paths: Sequence[str], *, exclude: Sequence[str] = ()) -> Inputs:
    """Expand ``paths``: files as named, folders recursively keeping only files a handler accepts.

    Files in folders are sniffed by their magic bytes, never judged by extension; a file named
    on the command line is kept whatever it holds, so that the command reports why it fails.
    Folders in ``exclude`` (e.g. the output folder inside an input folder) are not entered,
    nor are symbolic links to folders (they could loop).
    """
    formats.handlers()  # load the registry once, before threads use it
    skip = set()
    for folder in exclude:
        try:
            st = os.stat(folder)
            skip.add((st.st_dev, st.st_ino))
        except OSError:
            pass  # not created yet: nothing to skip
    inputs = Inputs()
    for arg in paths:
        try:
            st = os.stat(arg)
        except FileNotFoundError:
            raise UsageError(f"no such file or folder: {arg}") from None
        except OSError as exc:
            raise UsageError(f"cannot access {arg}: {exc.strerror}") from None
        if stat.S_ISDIR(st.st_mode):
            _collect_folder(arg, skip, inputs)
        elif stat.S_ISREG(st.st_mode):
            # The output takes the name as given (a symbolic link's, not its target's).
            name = os.path.basename(os.path.normpath(arg))
            inputs.files.append(InputFile(arg, name, os.path.realpath(arg), True, st))
        else:
            raise UsageError(f"not a regular file or folder: {arg}")
    return inputs


def _collect_folder(arg: str, skip: set[tuple[int, int]], inputs: Inputs) -> None:
    candidates = list(_walk(arg, skip, inputs))
    paths = [c.path for c in candidates]
    chunks = [paths[i : i + _SNIFF_CHUNK] for i in range(0, len(paths), _SNIFF_CHUNK)]
    with ThreadPoolExecutor(_SNIFF_THREADS) as pool:
        verdicts = [keep for chunk in pool.map(_sniff_chunk, chunks) for keep in chunk]
    for candidate, keep in zip(candidates, verdicts):
        if keep:
            inputs.files.append(candidate)
        else:
            inputs.not_images += 1


def _walk(arg: str, skip: set[tuple[int, int]], inputs: Inputs) -> Iterator[InputFile]:
    """Files under ``arg`` in sorted depth-first order (stable across runs and machines)."""
    # (display path, resolved path, path relative to arg) of each folder still to read
    stack = [(arg, os.path.realpath(arg), "")]
    while stack:
        folder, real, rel = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            inputs.errors.append(f"{folder}: cannot read folder: {exc.strerror or exc}")
            continue
        subfolders = []
        for entry in entries:
            path = os.path.join(folder, entry.name)
            entry_rel = os.path.join(rel, entry.name) if rel else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    if (st.st_dev, st.st_ino) not in skip:
                        subfolders.append((path, os.path.join(real, entry.name), entry_rel))
                    continue
                if entry.name.endswith(TEMP_SUFFIX) or entry.name == STATE_NAME:
                    continue  # labelkit's own working files
                if entry.is_file():
                    entry_real = (os.path.realpath(path) if entry.is_symlink()
                                  else os.path.join(real, entry.name))
                    yield InputFile(path, entry_rel, entry_real, False, entry.stat())
                elif entry.is_symlink() and not os.path.exists(path):
                    # Kept, so that the command reports it like any file it cannot read.
                    st = entry.stat(follow_symlinks=False)
                    yield InputFile(path, entry_rel, os.path.realpath(path), False, st)
                elif not entry.is_symlink():
                    inputs.not_images += 1  # a FIFO, socket or device: never read it
            except OSError as exc:
                inputs.errors.append(f"{path}: cannot access: {exc.strerror or exc}")
        stack.extend(reversed(subfolders))


def _sniff_chunk(paths: list[str]) -> list[bool]:
    return [_is_image(p) for p in paths]


def _is_image(path: str) -> bool:
    """True when a format handler accepts the file's first bytes, or when the file claims to be
    a picture by its extension or cannot be read: the command then reports why it fails (a text
    file named .png is an error to show, not a file to skip silently)."""
    if os.path.splitext(path)[1].lower() in _image_extensions():
        return True
    try:
        with open(path, "rb") as f:
            prefix = f.read(_SNIFF_BYTES)
    except OSError:
        return True
    try:
        handler = formats.sniff(prefix, path)
    except UnsupportedFormat:
        return False
    # Any UTF-8 file looks like text (source code, CSV, JSON...) and any ZIP like an Office
    # package (.zip, .jar, .whl...): in a folder only files named as such (kept above) count.
    return handler.NAME not in ("text", "office")


@functools.cache
def _image_extensions() -> frozenset[str]:
    return frozenset(e.lower() for m in formats.handlers().values() for e in m.EXTENSIONS)
