"""The PostgreSQL ledger: one ledger for many labeling machines (``postgresql://...``).

The same schema and migrations as SQLite. Opening a ledger migrates it under a transaction-level
advisory lock, so machines that start together do not race to create the tables.
"""

from __future__ import annotations

from .store import LedgerError, SqlLedger

__all__ = ["PostgresLedger"]

_MIGRATION_LOCK = 0x6C6B6C67  # "lklg": the advisory lock id taken while migrating


class PostgresLedger(SqlLedger):
    """A ledger in a PostgreSQL database, through psycopg 3."""

    PARAM = "%s"
    name = "postgresql"

    def _connect(self):
        try:
            import psycopg
        except ImportError:
            raise LedgerError("a PostgreSQL ledger needs psycopg (pip install "
                              "'labelkit[postgres]')") from None
        try:
            return psycopg.connect(self.location, connect_timeout=10)
        except psycopg.Error as exc:
            raise LedgerError(f"cannot open the ledger {_redacted(self.location)}: "
                              f"{str(exc).strip()}") from None

    def _errors(self) -> tuple[type[BaseException], ...]:
        import psycopg

        return (psycopg.Error,)

    def _migrate(self) -> None:
        self._run([("SELECT pg_advisory_lock(%s)" % _MIGRATION_LOCK, ())])
        try:
            super()._migrate()
        finally:
            self._run([("SELECT pg_advisory_unlock(%s)" % _MIGRATION_LOCK, ())])

    def __repr__(self) -> str:
        return f"PostgresLedger({_redacted(self.location)!r})"


def _redacted(url: str) -> str:
    """The URL without its password (error messages and reprs end up in logs)."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
