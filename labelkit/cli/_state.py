"""The label command's resume journal: which outputs in OUTDIR are finished, from which input.

One JSON line per finished output, appended by the main process only after the worker has
written the output atomically (temp file, fsync, rename). An output counts as done on a rerun
only if its line matches all of: the same input (resolved path, size, mtime), the same settings
(producer, key, visible label options), and the output file as it was written (size, mtime).
So a crash can never make a rerun skip a missing or half-written output (outputs are atomic,
and a line is written only after its output), an input edited since is labeled again, and an
output someone replaced or touched is labeled again. Unreadable lines (a crash mid-append) are
ignored: the worst a lost line costs is labeling that file once more.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Mapping

from ..fileio import atomic_write
from ._inputs import STATE_NAME

__all__ = ["Journal", "settings_digest"]

_VERSION = 1
# Keys of a journal line, in order; the in-memory value is the tuple of the others.
_FIELDS = ("in", "size", "mtime_ns", "settings", "out_size", "out_mtime_ns", "produce_id")


def settings_digest(settings: Mapping[str, Any]) -> str:
    """A short digest of everything that shapes an output, so changed options relabel."""
    text = json.dumps(dict(settings), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Journal:
    """Finished outputs under one OUTDIR, keyed by their path relative to it."""

    def __init__(self, outdir: str | os.PathLike, settings: str) -> None:
        self.path = os.path.join(outdir, STATE_NAME)
        self.settings = settings
        self.entries: dict[str, tuple] = {}
        self._lines = 0
        self._fd: int | None = None

    def load(self) -> None:
        """Read the journal, later lines winning; missing or damaged lines are ignored."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return
        with f:
            for raw in f:
                self._lines += 1
                try:
                    entry = json.loads(raw)
                    if entry.get("v") != _VERSION or not isinstance(entry.get("out"), str):
                        continue
                    self.entries[entry["out"]] = tuple(entry[k] for k in _FIELDS)
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue  # a torn last line after a crash, or not ours

    def is_done(self, rel: str, real: str, st_in: os.stat_result, st_out: os.stat_result | None
                ) -> bool:
        """True when ``rel`` was written from this very input, with these settings, and is
        still the file that was written."""
        entry = self.entries.get(rel)
        if entry is None or st_out is None:
            return False
        in_, size, mtime, settings, out_size, out_mtime = entry[:6]
        return (in_ == real and size == st_in.st_size and mtime == st_in.st_mtime_ns
                and settings == self.settings and out_size == st_out.st_size
                and out_mtime == st_out.st_mtime_ns)

    def record(self, rel: str, real: str, st_in: os.stat_result, out_size: int,
               out_mtime_ns: int, produce_id: str) -> None:
        """Append that ``rel`` is done (one write call per line: appends do not interleave)."""
        values = (real, st_in.st_size, st_in.st_mtime_ns, self.settings, out_size, out_mtime_ns,
                  produce_id)
        self.entries[rel] = values
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(self._fd, _line(rel, values))
        self._lines += 1

    def close(self) -> None:
        """Flush the journal; rewrite it without superseded lines once they dominate."""
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._lines > 2 * len(self.entries) + 1000:
            atomic_write(self.path, b"".join(_line(k, v) for k, v in self.entries.items()))
            self._lines = len(self.entries)


def _line(rel: str, values: tuple) -> bytes:
    entry = {"v": _VERSION, "out": rel, **dict(zip(_FIELDS, values))}
    # ASCII escapes: file names that are not valid UTF-8 (surrogate escapes) round-trip.
    return (json.dumps(entry, separators=(",", ":")) + "\n").encode("ascii")
