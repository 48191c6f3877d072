"""The console's reads (notifier.store.queries) on the example batch, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.indexes import plan_on_partial_index
from support.project import ROOT, settings_for

from notifier.core.models import NoticeStatus, Record
from notifier.core.records import read_path
from notifier.engine import Engine
from notifier.processes.wiring import open_engine
from notifier.store.queries import ConsoleQueries, NoticeQuery
from notifier.store.sql import SqlStore

BATCH = ROOT / "examples" / "batch.jsonl"


@pytest.fixture
def engine(tmp_path: Path, store_url: str) -> Iterator[Engine]:
    """The example batch ingested and delivered to the outbox folder."""
    with open_engine(settings_for(tmp_path, database_url=store_url)) as opened:
        items = read_path(BATCH, received_at=datetime.now(UTC))
        opened.ingest([item for item in items if isinstance(item, Record)])
        asyncio.run(opened.deliver_due())
        yield opened


@pytest.fixture
def queries(engine: Engine) -> ConsoleQueries:
    assert isinstance(engine.store, SqlStore)
    return ConsoleQueries(engine.store)


def keys(queries: ConsoleQueries, **asked: object) -> list[str]:
    return [n.key for n in queries.search_notices(NoticeQuery(**asked)).notices]  # type: ignore[arg-type]


def test_an_order_id_finds_its_three_notices(queries: ConsoleQueries) -> None:
    """KN-1002 (two parcels) has three notices: one per parcel and the all-shipped one."""
    page = queries.search_notices(NoticeQuery(q="KN-1002"))
    assert page.total == 3 and len(page.notices) == 3
    assert {n.order_id for n in page.notices} == {"KN-1002"}
    assert [n.created_at for n in page.notices] == sorted(
        (n.created_at for n in page.notices), reverse=True
    )


def test_the_box_finds_by_address_fulfillment_tracking_and_key(queries: ConsoleQueries) -> None:
    """Each way an operator names a notice leads to it; an unknown word finds nothing."""
    by_order = set(keys(queries, q="KN-1002"))
    assert set(keys(queries, q="sam.okafor@example.com")) == by_order
    assert set(keys(queries, q="SAM.OKAFOR@example.com")) == by_order  # addresses fold
    parcel = set(keys(queries, q="F-2002"))
    assert parcel and parcel < by_order  # its own notice and the order-wide one
    assert set(keys(queries, q="986578788855")) == parcel  # F-2002's tracking number
    assert keys(queries, q="9400 1112 0620 6406 2607 87")  # KN-1001's, as printed
    one = sorted(by_order)[0]
    assert keys(queries, q=one) == [one]
    assert set(keys(queries, q=one.rsplit(":", 1)[0])) >= {one}  # a key prefix
    assert keys(queries, q="no-such-thing") == []
    assert keys(queries, q="100%_") == []  # LIKE wildcards are escaped


def test_filters_and_pages(queries: ConsoleQueries) -> None:
    """Status, rule, date range; limit/offset pages with the total of all matches."""
    everything = queries.search_notices(NoticeQuery(limit=500))
    assert everything.total == len(everything.notices) >= 9
    sent = queries.search_notices(NoticeQuery(status=NoticeStatus.SENT, limit=500))
    assert sent.total and all(n.status is NoticeStatus.SENT for n in sent.notices)
    rule = everything.notices[0].rule_id
    assert all(n.rule_id == rule for n in queries.search_notices(NoticeQuery(rule_id=rule)).notices)
    first = queries.search_notices(NoticeQuery(limit=2))
    second = queries.search_notices(NoticeQuery(limit=2, offset=2))
    assert first.total == second.total == everything.total
    assert [n.key for n in first.notices + second.notices] == [
        n.key for n in everything.notices[:4]
    ]
    future = datetime.now(UTC) + timedelta(days=1)
    assert queries.search_notices(NoticeQuery(created_from=future)).total == 0
    assert queries.search_notices(NoticeQuery(created_to=future)).total == everything.total


def test_records_for_an_order_come_with_their_outcomes(queries: ConsoleQueries) -> None:
    """KN-1003's late Pending record is kept as stale, in the order received."""
    received = queries.records_for("KN-1003")
    assert [r.outcome for r in received] == ["applied", "applied", "stale"]
    assert received[2].payload["note"].startswith("arrives late")
    only = queries.records_for("KN-1002", fulfillment_ids=["F-2002"])
    assert {r.fulfillment_id for r in only} == {"F-2002"} and len(only) == 2


def test_a_sent_notice_has_history_and_a_copy(queries: ConsoleQueries) -> None:
    """Delivered to the outbox: an attempt row naming the file and the kept bytes."""
    (notice, *_) = queries.search_notices(NoticeQuery(status=NoticeStatus.SENT)).notices
    (attempt,) = queries.notice_history(notice.key)
    assert attempt.outcome == "sent" and "outbox" in (attempt.detail or "")
    copy = queries.sent_copy(notice.key)
    assert copy is not None and f"Message-ID: {notice.message_id}".encode() in copy


def test_bad_pages_are_refused() -> None:
    """A page size out of bounds or a negative offset is a clear error."""
    with pytest.raises(ValueError, match="limit"):
        NoticeQuery(limit=0)
    with pytest.raises(ValueError, match="offset"):
        NoticeQuery(offset=-1)


def test_a_search_by_tracking_number_reads_the_partial_tracking_index(store_url: str) -> None:
    """The index holds only fulfillments with a number (migration 0010); a search by number
    still finds its way through it rather than scanning every fulfillment."""
    from sqlalchemy.engine import make_url

    from notifier.store.queries import _matches

    dialect = make_url(store_url).get_dialect()()
    query = _matches("9400 1112 0000", dialect=dialect.name).compile(
        dialect=dialect, compile_kwargs={"literal_binds": True}
    )
    plan = plan_on_partial_index(
        store_url,
        table="fulfillments",
        index="ix_fulfillments_tracking",
        where="tracking_number IS NOT NULL",
        query=str(query),
    )
    assert "ix_fulfillments_tracking" in plan, plan
