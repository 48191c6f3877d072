"""The Message-ID index holds only notices that have one (migration 0013), and feedback's
lookup by Message-ID still reads it, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import create_engine, select, text

from notifier.store.schema import notices
from notifier.store.sql import SqlStore


def test_a_lookup_by_message_id_reads_the_partial_index(store_url: str) -> None:
    """An unsent notice (no Message-ID yet) writes no entry; a lookup of Message-IDs, as
    feedback makes it (notifier.store.feedback), goes through the index, not a scan."""
    SqlStore(store_url).close()  # the schema, by its migrations
    database = create_engine(store_url)
    dialect = database.dialect.name
    lookup = select(notices.c.message_id, notices.c.key).where(
        notices.c.message_id.in_(["<a@example.com>", "<b@example.com>"])
    )
    query = lookup.compile(dialect=database.dialect, compile_kwargs={"literal_binds": True})
    with database.connect() as conn:
        if dialect == "sqlite":
            partial = {row[1]: row[4] for row in conn.execute(text("PRAGMA index_list(notices)"))}
            assert partial["ix_notices_message_id"] == 1
            plan = " ".join(row[-1] for row in conn.execute(text(f"EXPLAIN QUERY PLAN {query}")))
        else:
            definition = conn.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_notices_message_id'")
            )
            assert "WHERE (message_id IS NOT NULL)" in str(definition), definition
            conn.execute(text("SET enable_seqscan = off"))  # an empty table is cheapest to scan
            plan = " ".join(row[0] for row in conn.execute(text(f"EXPLAIN {query}")))
    database.dispose()
    assert "ix_notices_message_id" in plan, plan
