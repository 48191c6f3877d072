"""The Message-ID index holds only notices that have one (migration 0013), and feedback's
lookup by Message-ID still reads it, on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.engine import make_url
from support.indexes import plan_on_partial_index

from notifier.store.schema import notices


def test_a_lookup_by_message_id_reads_the_partial_index(store_url: str) -> None:
    """An unsent notice (no Message-ID yet) writes no entry; a lookup of Message-IDs, as
    feedback makes it (notifier.store.feedback), goes through the index, not a scan."""
    lookup = select(notices.c.message_id, notices.c.key).where(
        notices.c.message_id.in_(["<a@example.com>", "<b@example.com>"])
    )
    dialect = make_url(store_url).get_dialect()()
    query = lookup.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    plan = plan_on_partial_index(
        store_url,
        table="notices",
        index="ix_notices_message_id",
        where="message_id IS NOT NULL",
        query=str(query),
    )
    assert "ix_notices_message_id" in plan, plan
