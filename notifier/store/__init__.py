"""The ledger: one interface (base.Store), SQLite and PostgreSQL behind it (sql.SqlStore),
and the in-memory test double (memory.MemoryStore)."""

from notifier.store.base import Completion, IngestResult, Store
from notifier.store.memory import MemoryStore

__all__ = ["Completion", "IngestResult", "MemoryStore", "Store"]
