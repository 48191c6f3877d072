"""The ledger shared by several instances: every test runs on SQLite and on PostgreSQL.

Each "instance" is its own SqlStore (its own engine and connection pool), as separate
processes would be; threads make them race.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pytest
from sqlalchemy import inspect
from support.ledger import audit_rows, engine_on, tracking_records

from notifier.core.models import NoticeStatus
from notifier.core.records import parse_record
from notifier.core.rules import load_rules
from notifier.errors import StoreError
from notifier.store import migrate
from notifier.store.sql import SqlStore

T = TypeVar("T")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = SqlStore(store_url)
    yield opened
    opened.close()


def race(count: int, job: Callable[[int], T]) -> list[T]:
    """Run job(0..count-1) in threads released at the same moment; return their results."""
    barrier = threading.Barrier(count)

    def run(n: int) -> T:
        barrier.wait()
        return job(n)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def outcome_counts(store: SqlStore) -> dict[str, int]:
    return dict(Counter(row.outcome for row in audit_rows(store)))


def seed(store: SqlStore, count: int) -> list[str]:
    # The engine's clock is the tests' NOW, so the notices are due at NOW, not at today's date.
    report = engine_on(store, clock=lambda: NOW).ingest(tracking_records(count))
    assert report.notices_created == count
    return report.created_keys


def test_two_instances_ingesting_the_same_records_at_once_create_each_notice_once(
    store_url: str,
) -> None:
    """Two instances ingest the same 200 records concurrently: 200 notices, each created once."""
    records = list(tracking_records(200))
    stores = [SqlStore(store_url) for _ in range(2)]
    try:
        # Opposite orders, so the two instances collide on orders at different moments.
        batches = [records, list(reversed(records))]
        reports = race(2, lambda n: engine_on(stores[n]).ingest(batches[n]))
        assert sum(r.notices_created for r in reports) == 200
        assert sum(r.accepted for r in reports) == 200
        assert sum(r.duplicates for r in reports) == 200
        assert len(stores[0].notices()) == 200
        # Every record received is in the audit: the second of each as a duplicate.
        assert outcome_counts(stores[0]) == {"applied": 200, "duplicate": 200}
    finally:
        for opened in stores:
            opened.close()


def test_concurrent_claimers_never_share_a_notice(store_url: str, store: SqlStore) -> None:
    """Four instances claim in batches until nothing is left: every notice claimed exactly once."""
    keys = seed(store, 300)
    stores = [SqlStore(store_url) for _ in range(4)]

    def claim_all(n: int) -> list[str]:
        claimed: list[str] = []
        while batch := stores[n].claim_due(
            now=NOW + timedelta(days=1), limit=7, lease_until=NOW + timedelta(days=2), token=f"w{n}"
        ):
            claimed += [notice.key for notice in batch]
        return claimed

    try:
        claims = race(4, claim_all)
    finally:
        for opened in stores:
            opened.close()
    every = [key for claimed in claims for key in claimed]
    assert sorted(every) == sorted(keys)  # all of them, none twice
    by_token = {n.key: n.claim_token for n in store.notices(status=NoticeStatus.SENDING)}
    for n, claimed in enumerate(claims):
        assert all(by_token[key] == f"w{n}" for key in claimed)


def test_a_failed_ingest_writes_nothing_and_leaves_the_store_usable(store: SqlStore) -> None:
    """Ingestion talks to the driver directly: an error from the database half-way through
    (after the records' insert) is a StoreError naming what failed, the transaction rolls
    back whole, and the pooled connection is fine for the next ingest."""
    refuse = {
        "sqlite": [
            "CREATE TRIGGER refuse BEFORE INSERT ON fulfillments"
            " BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        ],
        "postgresql": [
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
            "CREATE TRIGGER refuse BEFORE INSERT ON fulfillments"
            " FOR EACH ROW EXECUTE FUNCTION refuse()",
        ],
    }[store.dialect]
    with store.engine.begin() as conn:
        for statement in refuse:
            conn.exec_driver_sql(statement)
    engine = engine_on(store)
    with pytest.raises(StoreError, match=r"ingesting records: .*refused by the test"):
        engine.ingest(tracking_records(3))
    assert store.record_count() == 0
    assert store.notices() == []
    with store.engine.begin() as conn:
        on_table = " ON fulfillments" if store.dialect == "postgresql" else ""
        conn.exec_driver_sql(f"DROP TRIGGER refuse{on_table}")
    assert engine.ingest(tracking_records(3)).notices_created == 3
    assert store.record_count() == 3


def test_longest_accepted_fields_fit_the_schema(store: SqlStore) -> None:
    """Ids, tracking numbers and names at the parser's 255-character limit are stored whole."""
    long_id = "X" * 255
    record = parse_record(
        {
            "order_id": long_id,
            "fulfillment_id": "F" * 255,
            "status": "Pending Shipment",
            "email": ("a" * 64) + "@" + ("b" * 185) + ".com",
            "tracking_number": "1Z" + "9" * 253,
            "carrier": "C" * 255,
            "first_name": "é" * 255,
            "campaign_id": "K" * 255,
        },
        received_at=NOW,
    )
    report = engine_on(store).ingest([record])
    assert report.accepted == 1 and report.notices_created == 1
    (notice,) = store.notices()
    assert notice.order_id == long_id and notice.fulfillment_id == "F" * 255
    assert notice.campaign_id == "K" * 255 and notice.record["first_name"] == "é" * 255
    state = store.fulfillment("F" * 255)
    assert state is not None and state.carrier == "C" * 255


def test_a_notice_key_longer_than_512_characters_is_stored(store: SqlStore, tmp_path: Path) -> None:
    """A rule keyed on extra fields can make keys of 600+ characters; every engine keeps them."""
    (tmp_path / "per_parcel.toml").write_text(
        'id = "per_parcel_and_carrier"\nname = "Per parcel"\non = "Pending Shipment"\n'
        'template = "tracking_number_assigned"\nkey_fields = ["tracking_number", "carrier"]\n',
        encoding="utf-8",
    )
    record = parse_record(
        {
            "order_id": "O1",
            "fulfillment_id": "F" * 255,
            "status": "Pending Shipment",
            "email": "jane@example.com",
            "tracking_number": "1Z" + "9" * 253,
            "carrier": "C" * 255,
        },
        received_at=NOW,
    )
    report = engine_on(store, rules=load_rules(tmp_path)).ingest([record])
    assert report.notices_created == 1
    (notice,) = store.notices()
    assert len(notice.key) > 512 and notice.key.endswith(":" + "C" * 255)
    assert store.notice(notice.key) is not None


def test_concurrent_first_use_migrates_once(empty_store_url: str) -> None:
    """Six instances opening an empty database at once: all succeed, the schema is at head."""
    url = empty_store_url

    def open_store(_: int) -> str:
        opened = SqlStore(url)
        try:
            with opened.engine.connect() as conn:
                return str(migrate.current_revision(conn))
        finally:
            opened.close()

    revisions = race(6, open_store)
    assert revisions == [migrate.head_revision()] * 6
    opened = SqlStore(url, migrate_schema=False)
    try:
        tables = set(inspect(opened.engine).get_table_names())
        assert {"notices", "record_batches", "fulfillments", "alembic_version"} <= tables
    finally:
        opened.close()
