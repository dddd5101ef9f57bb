"""What the ledger holds (one ``LedgerEntry`` per labeled item) and the SQL every backend shares.

The Labeling Measures make providers keep what they labeled, and what they handed out without
the explicit label and to whom (Art. 9), for at least six months: ``purge`` refuses to delete
anything younger than ``RETENTION_DAYS``. The ledger is also how a ProduceID, or a watermark
payload found in a stripped copy, is traced back to its record.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from ..errors import LabelkitError, PolicyError
from .schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["EXPLICIT_MODES", "LedgerEntry", "LedgerError", "PropagationEntry", "RETENTION_DAYS",
           "SqlLedger"]

RETENTION_DAYS = 180
EXPLICIT_MODES = ("apply", "present", "omit")
_COLUMNS = ("produce_id", "producer", "modality", "format", "essence_digest",
            "watermark_payload", "explicit", "recipient", "layers", "labeled_at")
_PROPAGATION_COLUMNS = ("propagate_id", "propagator", "produce_id", "producer", "label",
                        "reason", "format", "essence_digest", "declared_ai", "propagated_at")


class LedgerError(LabelkitError):
    """The ledger cannot be opened, read or written."""


@dataclass(frozen=True)
class LedgerEntry:
    """One labeled item: its IDs, what it is, what was applied, to whom it went, and when."""

    produce_id: str
    producer: str
    modality: str  # image, video, audio, text, document
    format: str
    essence_digest: str  # hex, as ReservedCode1 signs it
    watermark_payload: str | None  # 16 hex digits, or None when no watermark was embedded
    explicit: str  # apply (labeled here), present (already labeled), omit (Art. 9)
    recipient: str | None  # who got it without the explicit label (explicit == "omit")
    layers: str  # the layers applied, comma-separated
    labeled_at: int  # Unix time in milliseconds (UTC)

    def __post_init__(self) -> None:
        if self.explicit not in EXPLICIT_MODES:
            raise ValueError(f"explicit must be one of {EXPLICIT_MODES}, not {self.explicit!r}")
        if self.explicit == "omit" and not self.recipient:
            raise PolicyError("an item handed out without the explicit label needs its recipient "
                              "(Labeling Measures Art. 9)")

    @property
    def explicit_applied(self) -> bool:
        """Whether the content carries the explicit label (applied here or already present)."""
        return self.explicit != "omit"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with the time also as ISO 8601 UTC."""
        out = asdict(self)
        out["labeled_at_iso"] = _iso(self.labeled_at)
        out["explicit_applied"] = self.explicit_applied
        return out


@dataclass(frozen=True)
class PropagationEntry:
    """One item a platform relabeled: its PropagateID, the label class it wrote and why."""

    propagate_id: str
    propagator: str  # the platform's code (ContentPropagator)
    produce_id: str  # the producer's ProduceID, empty when there was no valid label
    producer: str
    label: str  # "1", "2" or "3"
    reason: str
    format: str
    essence_digest: str  # hex, as ReservedCode2 signs it
    declared_ai: int  # 1 when the uploader declared the content AI-generated
    propagated_at: int  # Unix time in milliseconds (UTC)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with the time also as ISO 8601 UTC."""
        out = asdict(self)
        out["propagated_at_iso"] = _iso(self.propagated_at)
        out["declared_ai"] = bool(self.declared_ai)
        return out


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


class SqlLedger:
    """The ledger over a DB-API connection; backends say how to connect and their parameter mark."""

    PARAM = "?"
    name = "sql"

    def __init__(self, location: str) -> None:
        self.location = location
        self._lock = threading.Lock()
        self._conn = self._connect()
        self._migrate()

    # -- backend hooks ------------------------------------------------------------------------

    def _connect(self):  # pragma: no cover - every backend overrides it
        raise NotImplementedError

    def _errors(self) -> tuple[type[BaseException], ...]:  # pragma: no cover
        raise NotImplementedError

    # -- plumbing ---------------------------------------------------------------------------

    def _sql(self, text: str) -> str:
        return text.replace("?", self.PARAM) if self.PARAM != "?" else text

    def _run(self, statements: list[tuple[str, tuple]], fetch: bool = False) -> list[tuple]:
        """Run statements in one transaction; rows of the last one when ``fetch``, else
        [(rowcount,)] of the last one (exact for INSERT/UPDATE/DELETE in DB-API drivers)."""
        rows: list[tuple] = []
        with self._lock:
            try:
                cur = self._conn.cursor()
                try:
                    for text, params in statements:
                        cur.execute(self._sql(text), params)
                    rows = list(cur.fetchall()) if fetch else [(cur.rowcount,)]
                finally:
                    cur.close()
                self._conn.commit()
            except self._errors() as exc:
                self._conn.rollback()
                raise LedgerError(f"ledger {self.location}: {exc}") from None
        return rows

    def _migrate(self) -> None:
        self._run([("CREATE TABLE IF NOT EXISTS labelkit_schema (version BIGINT NOT NULL)", ())])
        rows = self._run([("SELECT MAX(version) FROM labelkit_schema", ())], fetch=True)
        have = int(rows[0][0] or 0) if rows else 0
        if have > SCHEMA_VERSION:
            raise LedgerError(f"ledger {self.location} has schema {have}; this labelkit knows "
                              f"{SCHEMA_VERSION}: upgrade labelkit")
        for version in range(have + 1, SCHEMA_VERSION + 1):
            self._run([(sql, ()) for sql in MIGRATIONS[version - 1]]
                      + [("INSERT INTO labelkit_schema (version) VALUES (?)", (version,))])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "SqlLedger":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"

    # -- the ledger's API -------------------------------------------------------------------

    @property
    def schema_version(self) -> int:
        """The schema version this ledger is at."""
        rows = self._run([("SELECT MAX(version) FROM labelkit_schema", ())], fetch=True)
        return int(rows[0][0])

    def record(self, entry: LedgerEntry) -> None:
        """Add an item; a relabeled ProduceID replaces its earlier row."""
        self._upsert("labelkit_items", _COLUMNS, entry)

    def _upsert(self, table: str, columns: tuple[str, ...], entry: Any) -> None:
        # The first column is the key: a row with the same key is replaced.
        values = tuple(getattr(entry, c) for c in columns)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        self._run([(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                    f"({', '.join('?' * len(columns))}) "
                    f"ON CONFLICT ({columns[0]}) DO UPDATE SET {updates}", values)])

    def get(self, produce_id: str) -> LedgerEntry | None:
        """The item with this ProduceID, or None."""
        rows = self._select("WHERE produce_id = ?", (produce_id,))
        return rows[0] if rows else None

    def find_payload(self, payload: int | str) -> list[LedgerEntry]:
        """The items whose watermark carries ``payload`` (an int or 16 hex digits)."""
        text = f"{payload:016x}" if isinstance(payload, int) else str(payload).lower()
        return self._select("WHERE watermark_payload = ? ORDER BY labeled_at", (text,))

    def entries(self, *, since: int | None = None, until: int | None = None
                ) -> Iterator[LedgerEntry]:
        """Items labeled in [since, until) (Unix ms), oldest first, read in pages."""
        low, high = since if since is not None else -2**62, until if until is not None else 2**62
        after = ("", -2**62)
        while True:
            page = self._select("WHERE labeled_at >= ? AND labeled_at < ? AND "
                                "(labeled_at > ? OR (labeled_at = ? AND produce_id > ?)) "
                                "ORDER BY labeled_at, produce_id LIMIT 1000",
                                (low, high, after[1], after[1], after[0]))
            yield from page
            if len(page) < 1000:
                return
            after = (page[-1].produce_id, page[-1].labeled_at)

    def record_propagation(self, entry: PropagationEntry) -> None:
        """Add a platform's relabeling; the same PropagateID again replaces its row."""
        self._upsert("labelkit_propagations", _PROPAGATION_COLUMNS, entry)

    def propagations(self, *, propagate_id: str | None = None, produce_id: str | None = None
                     ) -> list[PropagationEntry]:
        """Relabelings by PropagateID, or of a producer's ProduceID (oldest first), or all."""
        where, params = "", ()
        if propagate_id is not None:
            where, params = "WHERE propagate_id = ?", (propagate_id,)
        elif produce_id is not None:
            where, params = "WHERE produce_id = ?", (produce_id,)
        rows = self._run([(f"SELECT {', '.join(_PROPAGATION_COLUMNS)} FROM labelkit_propagations "
                           f"{where} ORDER BY propagated_at, propagate_id", params)], fetch=True)
        return [PropagationEntry(*row) for row in rows]

    def count(self) -> int:
        """How many items the ledger holds."""
        return int(self._run([("SELECT COUNT(*) FROM labelkit_items", ())], fetch=True)[0][0])

    def purge(self, older_than_days: float, *, now_ms: int | None = None) -> int:
        """Delete items labeled more than ``older_than_days`` ago (at least RETENTION_DAYS)."""
        if not older_than_days >= RETENTION_DAYS:
            raise PolicyError(f"records are kept at least {RETENTION_DAYS} days (Labeling Measures:"
                              f" six months); refusing to purge those younger than "
                              f"{older_than_days} days")
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        cutoff = now_ms - int(older_than_days * 86_400_000)
        items = int(self._run([("DELETE FROM labelkit_items WHERE labeled_at < ?",
                                (cutoff,))])[0][0])
        return items + int(self._run([("DELETE FROM labelkit_propagations WHERE "
                                       "propagated_at < ?", (cutoff,))])[0][0])

    def _select(self, where: str, params: tuple) -> list[LedgerEntry]:
        rows = self._run([(f"SELECT {', '.join(_COLUMNS)} FROM labelkit_items {where}", params)],
                         fetch=True)
        return [LedgerEntry(*row) for row in rows]
