"""The SQLite ledger: one file, nothing to set up (the default).

WAL journal mode lets the CLI's worker processes write while a reader exports; each process has
its own connection and waits up to 30 s for another's write lock instead of failing.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from .store import LedgerError, SqlLedger

__all__ = ["SqliteLedger"]


class SqliteLedger(SqlLedger):
    """A ledger in a SQLite file (created, with its folder, on first use)."""

    name = "sqlite"

    def _connect(self) -> sqlite3.Connection:
        path = Path(self.location)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(os.fspath(path), timeout=30.0, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint, WAL-safe
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the ledger {path}: {exc}") from None
        return conn

    def _errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error,)
