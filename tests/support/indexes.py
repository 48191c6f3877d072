"""Whether a query reads a partial index, on the ledger's schema as its migrations make it."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from notifier.store.sql import SqlStore


def plan_on_partial_index(store_url: str, *, table: str, index: str, where: str, query: str) -> str:
    """The plan of `query` (SQL with its values written in), after checking that `index` on
    `table` is partial (SQLite: PRAGMA index_list; PostgreSQL: its definition ends in
    `WHERE (where)`). PostgreSQL plans it with sequential scans off: an empty table is
    cheapest to scan."""
    SqlStore(store_url).close()  # the schema, by its migrations
    database = create_engine(store_url)
    try:
        with database.connect() as conn:
            if database.dialect.name == "sqlite":
                partial = {
                    row[1]: row[4] for row in conn.execute(text(f"PRAGMA index_list({table})"))
                }
                assert partial[index] == 1
                return " ".join(
                    row[-1] for row in conn.execute(text(f"EXPLAIN QUERY PLAN {query}"))
                )
            definition = conn.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = :index"), {"index": index}
            )
            assert f"WHERE ({where})" in str(definition), definition
            conn.execute(text("SET enable_seqscan = off"))
            return " ".join(row[0] for row in conn.execute(text(f"EXPLAIN {query}")))
    finally:
        database.dispose()
