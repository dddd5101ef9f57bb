"""The ledger: a record of every labeled item, kept at least 180 days (Labeling Measures).

``open_ledger(location)`` opens one: a path is a SQLite file, ``None`` the default file in the
user's data directory, ``postgresql://...`` a PostgreSQL database shared by many machines. ``Labeler(ledger=...)`` records each item it labels.
"""

from __future__ import annotations

import os
from pathlib import Path

from .sqlite import SqliteLedger
from .store import (EXPLICIT_MODES, RETENTION_DAYS, LedgerEntry, LedgerError, PropagationEntry,
                    SqlLedger)

__all__ = ["EXPLICIT_MODES", "LedgerEntry", "LedgerError", "PropagationEntry", "RETENTION_DAYS",
           "SqlLedger", "SqliteLedger", "default_ledger_path", "open_ledger"]


def default_ledger_path() -> Path:
    """$XDG_DATA_HOME/labelkit/ledger.sqlite3 (~/.local/share when XDG_DATA_HOME is unset)."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local",
                                                            "share")
    return Path(base) / "labelkit" / "ledger.sqlite3"


def open_ledger(location: str | os.PathLike | None = None) -> SqlLedger:
    """Open (creating if needed) the ledger at a path, or the default one."""
    target = os.fspath(location) if location is not None else os.fspath(default_ledger_path())
    if target.startswith(("postgresql://", "postgres://")):
        from .postgres import PostgresLedger

        return PostgresLedger(target)
    if "://" in target:
        raise LedgerError(f"ledger {target}: a SQLite file path or a postgresql:// URL")
    return SqliteLedger(target)
