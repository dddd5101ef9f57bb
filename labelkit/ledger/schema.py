"""The ledger's tables, as numbered migrations that SQLite and PostgreSQL both run.

Only portable SQL: TEXT and BIGINT columns, a primary key, plain indexes, and upserts with
``ON CONFLICT``. A ledger records its version in ``labelkit_schema``; opening one applies the
migrations it lacks, in order, in one transaction each, and refuses a ledger newer than this
labelkit (it would not know what the new columns mean).
"""

from __future__ import annotations

__all__ = ["MIGRATIONS", "SCHEMA_VERSION"]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # 1: one row per labeled item
        """CREATE TABLE labelkit_items (
            produce_id TEXT PRIMARY KEY,
            producer TEXT NOT NULL,
            modality TEXT NOT NULL,
            format TEXT NOT NULL,
            essence_digest TEXT NOT NULL,
            watermark_payload TEXT,
            explicit TEXT NOT NULL,
            recipient TEXT,
            layers TEXT NOT NULL,
            labeled_at BIGINT NOT NULL
        )""",
        "CREATE INDEX labelkit_items_payload ON labelkit_items (watermark_payload)",
        "CREATE INDEX labelkit_items_time ON labelkit_items (labeled_at)",
    ),
    (  # 2: one row per item a platform relabeled (Measures Art. 6)
        """CREATE TABLE labelkit_propagations (
            propagate_id TEXT PRIMARY KEY,
            propagator TEXT NOT NULL,
            produce_id TEXT NOT NULL,
            producer TEXT NOT NULL,
            label TEXT NOT NULL,
            reason TEXT NOT NULL,
            format TEXT NOT NULL,
            essence_digest TEXT NOT NULL,
            declared_ai BIGINT NOT NULL,
            propagated_at BIGINT NOT NULL
        )""",
        "CREATE INDEX labelkit_propagations_produce ON labelkit_propagations (produce_id)",
        "CREATE INDEX labelkit_propagations_time ON labelkit_propagations (propagated_at)",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
