"""The audit copy in bulk (design.md §6), on SQLite and PostgreSQL: what a ledger kept in
`records` (revision 0011) moves into batches with every field, and back on downgrade, and
reads back by order, by fulfillment, as the stale list and as the count."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from support.ledger import audit_rows, migrated_to

from notifier.store.audit import AuditRow
from notifier.store.overview import read_overview
from notifier.store.queries import ConsoleQueries
from notifier.store.schema import as_utc, bind_stamp
from notifier.store.sql import SqlStore, create_store_engine

NOW = datetime.now(UTC).replace(microsecond=0)
# More rows than one migrated batch holds, two orders interleaved, every outcome.
OUTCOMES = ("applied", "repeat", "stale", "duplicate")
OLD = [
    AuditRow(
        f"O-{n % 2}",
        f"F-{n % 5}",
        "Pending",
        bind_stamp(NOW - timedelta(hours=5, seconds=n), "sqlite"),
        bind_stamp(NOW - timedelta(hours=1, seconds=-n), "sqlite"),
        OUTCOMES[n % 4],
        json.dumps({"order_id": f"O-{n % 2}", "n": n, "note": "café"}),
    )
    for n in range(1203)
]


def _at_0011(url: str, rows: list[AuditRow]) -> None:
    with migrated_to(url, "0011") as connection:
        _insert_records(connection, rows)


def _insert_records(connection: sa.Connection, rows: list[AuditRow]) -> None:
    dialect = connection.dialect.name
    params: list[dict[str, Any]] = [
        {
            **row._asdict(),
            "occurred_at": bind_stamp(as_utc(row.occurred_at), dialect),
            "received_at": bind_stamp(as_utc(row.received_at), dialect),
        }
        for row in rows
    ]
    connection.execute(
        sa.text(
            "INSERT INTO records (order_id, fulfillment_id, status, occurred_at, received_at,"
            " outcome, payload) VALUES (:order_id, :fulfillment_id, :status, :occurred_at,"
            " :received_at, :outcome, :payload)"
        ),
        params,
    )


def _records_rows(url: str) -> list[AuditRow]:
    engine = create_store_engine(url)
    try:
        with engine.connect() as connection:
            query = (
                "SELECT order_id, fulfillment_id, status, occurred_at, received_at, outcome,"
                " payload FROM records ORDER BY id"
            )
            return [
                AuditRow(*row[:3], _text(row[3]), _text(row[4]), *row[5:])
                for row in connection.exec_driver_sql(query)
            ]
    finally:
        engine.dispose()


def _text(moment: datetime | str) -> str:
    return str(bind_stamp(as_utc(moment), "sqlite"))


def _migrate(url: str, revision: str, *, down: bool = False) -> None:
    with migrated_to(url, revision, down=down):
        pass


def test_a_ledger_from_0011_moves_every_record_into_batches_and_back(
    empty_store_url: str,
) -> None:
    """Upgraded: every row, every field, in its order; an order's records and the stale
    list read from the batches; the count kept. Downgraded: the same rows in `records`."""
    _at_0011(empty_store_url, OLD)
    store = SqlStore(empty_store_url)  # migrates to head
    try:
        assert audit_rows(store) == OLD
        assert store.record_count() == len(OLD)
        queries = ConsoleQueries(store)
        order = queries.records_for("O-1")
        assert [r.payload["n"] for r in order] == [n for n in range(1203) if n % 2]
        only = queries.records_for("O-1", fulfillment_ids=["F-3"])
        assert [r.payload["n"] for r in only] == [n for n in range(1203) if n % 10 == 3]
        assert only[0].outcome == OUTCOMES[3] and only[0].payload["note"] == "café"
        assert only[0].received_at == as_utc(OLD[3].received_at)
        stale = read_overview(store, now=NOW).attention.stale
        assert stale.total == len([row for row in OLD if row.outcome == "stale"])
        newest = max((row for row in OLD if row.outcome == "stale"), key=lambda r: r.received_at)
        assert stale.items[0].received_at == as_utc(newest.received_at)
    finally:
        store.close()
    _migrate(empty_store_url, "0011", down=True)
    assert _records_rows(empty_store_url) == OLD
    _migrate(empty_store_url, "head")
    assert audit_rows(empty_store_url) == OLD
