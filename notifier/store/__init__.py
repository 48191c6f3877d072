"""The ledger: one interface (base.Store), SQLite and PostgreSQL behind it (sql.SqlStore)."""

from notifier.store.base import Completion, IngestResult, Store

__all__ = ["Completion", "IngestResult", "Store"]
