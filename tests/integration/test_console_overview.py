"""The console overview's queries (notifier.store.overview) on SQLite and PostgreSQL.

A real engine on a real ledger, on an injected clock a few days back from now: notices
sent on two days, one failed, one retrying for hours, one held by its rule's delay and a
stale record; the overview read at a later moment must count and list each where it
belongs.
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event
from support.ledger import engine_on
from support.memory_engine import Clock
from support.project import RULES

from notifier.core.models import NoticeStatus, Record
from notifier.core.records import parse_record
from notifier.core.rules import load_rules
from notifier.errors import PermanentSendError, TransientSendError
from notifier.store.overview import read_overview, start_of_day
from notifier.store.sql import SqlStore
from notifier.transports.memory import MemoryTransport

UPS = "1Z999AA10123456784"


def _record(n: str, clock: Clock, **fields: Any) -> Record:
    data = {
        "order_id": f"O-{n}",
        "fulfillment_id": f"F-{n}",
        "status": "Pending Shipment",
        "email": f"customer-{n}@example.com",
        "tracking_number": UPS,
        "occurred_at": clock().isoformat(),
    }
    data.update(fields)
    return parse_record(data, received_at=clock())


def test_overview_counts_charts_and_attention(store_url: str) -> None:
    day = start_of_day(datetime.now(UTC)) - timedelta(days=3)
    clock = Clock(day - timedelta(days=2) + timedelta(hours=10))
    store = SqlStore(store_url)
    transport = MemoryTransport()
    engine = engine_on(store, transport, clock=clock)
    try:
        # Two days before: three sent.
        engine.ingest([_record(f"a{n}", clock) for n in range(3)])
        asyncio.run(engine.deliver_due())
        # The day itself, 09:15: two sent; 09:20 one refused for good; 09:25 one put off.
        clock.now = day + timedelta(hours=9, minutes=15)
        engine.ingest([_record("b1", clock), _record("b2", clock)])
        asyncio.run(engine.deliver_due())
        clock.now = day + timedelta(hours=9, minutes=20)
        engine.ingest([_record("failed", clock)])
        transport.fail_next(PermanentSendError("554 5.6.0 message refused", code=554))
        asyncio.run(engine.deliver_due())
        clock.now = day + timedelta(hours=9, minutes=25)
        engine.ingest([_record("retry", clock)])
        transport.fail_next(TransientSendError("451 4.3.0 try again later", code=451))
        asyncio.run(engine.deliver_due())
        # 10:30: a stale record (older than what is known of F-b1), and a notice whose rule
        # waits two hours before sending.
        clock.now = day + timedelta(hours=10, minutes=30)
        stale = _record(
            "b1", clock, status="Pending", occurred_at=(day - timedelta(days=9)).isoformat()
        )
        engine.ingest([stale])
        delayed = [
            dataclasses.replace(rule, delay=timedelta(hours=2))
            if rule.id == "tracking_number_assigned"
            else rule
            for rule in load_rules(RULES)
        ]
        engine_on(store, transport, rules=delayed, clock=clock).ingest([_record("held", clock)])

        now = day + timedelta(hours=11)
        overview = read_overview(store, now=now)
    finally:
        store.close()

    assert overview.today == {
        NoticeStatus.SENT: 2,
        NoticeStatus.FAILED: 1,
        NoticeStatus.RETRY: 1,
        NoticeStatus.PENDING: 1,
    }
    assert overview.week[NoticeStatus.SENT] == 5
    assert sum(overview.week.values()) == 8

    assert len(overview.hourly) == 24 and overview.hourly[0].start == day
    assert {b.start.hour: b.sent for b in overview.hourly if b.sent} == {9: 2}
    assert [b.start for b in overview.daily] == [day - timedelta(days=d) for d in range(6, -1, -1)]
    assert [b.sent for b in overview.daily][-3:] == [3, 0, 2]

    attention = overview.attention
    assert [n.key for n in attention.failed.items] == [
        "tracking_number_assigned:fulfillment:F-failed"
    ]
    assert attention.failed.items[0].reason is not None
    assert "554" in attention.failed.items[0].reason
    assert [n.key for n in attention.retrying.items] == [
        "tracking_number_assigned:fulfillment:F-retry"
    ]
    assert [n.key for n in attention.held.items] == ["tracking_number_assigned:fulfillment:F-held"]
    assert attention.held.items[0].due_at == day + timedelta(hours=12, minutes=30)
    assert [(r.fulfillment_id, r.status) for r in attention.stale.items] == [("F-b1", "Pending")]
    assert not attention.empty


def test_an_empty_ledger_needs_no_attention(store_url: str) -> None:
    store = SqlStore(store_url)
    try:
        overview = read_overview(store, now=datetime.now(UTC))
    finally:
        store.close()
    assert overview.today == {} and overview.week == {}
    assert sum(b.sent for b in overview.hourly) == 0 and len(overview.daily) == 7
    assert overview.attention.empty


def test_rejected_records_of_the_last_day_need_attention_and_old_ones_are_forgotten(
    store_url: str,
) -> None:
    """Refused records are noted (the first few of a batch), listed for a day, and forgotten
    after a week: the ledger never fills up with a sender's garbage."""
    from notifier.core.records import Rejection
    from notifier.engine.ingesting import REJECTIONS_NOTED
    from notifier.store.schema import rejected_records

    now = datetime.now(UTC)
    clock = Clock(now - timedelta(days=8))
    store = SqlStore(store_url)
    engine = engine_on(store, MemoryTransport(), clock=clock)
    try:
        engine.note_rejections([Rejection("old.jsonl", "line 1", "broken JSON")])
        clock.now = now - timedelta(hours=30)
        engine.note_rejections([Rejection("yesterday.jsonl", "line 2", "no order_id")])
        clock.now = now - timedelta(minutes=5)
        many = [Rejection("webhook", f"#{n}", "status: unknown") for n in range(50)]
        engine.note_rejections(many)

        attention = read_overview(store, now=now, limit=5).attention
        with store.engine.connect() as conn:
            kept = conn.execute(rejected_records.select()).fetchall()
    finally:
        store.close()
    assert attention.rejected.total == REJECTIONS_NOTED  # the first few of the request
    assert not attention.empty
    shown = attention.rejected.items
    assert len(shown) == 5 and all(r.source == "webhook" for r in shown)
    assert shown[0].reason == "status: unknown" and shown[0].location.startswith("#")
    # A week on, the oldest note is gone; yesterday's stays in the ledger, off the list.
    assert sorted({row.source for row in kept}) == ["webhook", "yesterday.jsonl"]


def test_the_stale_list_is_read_on_its_partial_index(store_url: str) -> None:
    """The last day's stale records are read from the batches holding any, found on
    `ix_record_batches_stale_received` (those batches only), never by scanning the audit of
    every record: the database's own planner says so of the statement the overview sends to
    `record_batches` (SQLite: EXPLAIN QUERY PLAN; PostgreSQL: EXPLAIN with sequential scans
    priced out, as on a large ledger, so only an index that covers the query can be
    chosen)."""
    clock = Clock(datetime.now(UTC) - timedelta(hours=2))
    store = SqlStore(store_url)
    engine = engine_on(store, MemoryTransport(), clock=clock)
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM record_batches" in statement:
            sent.append((statement, parameters))

    try:
        engine.ingest([_record(str(n), clock) for n in range(20)])
        earlier = (clock() - timedelta(days=3)).isoformat()
        engine.ingest([_record("7", clock, status="Pending", occurred_at=earlier)])
        event.listen(store.engine, "before_cursor_execute", capture)
        try:
            stale = read_overview(store, now=clock() + timedelta(hours=1)).attention.stale
        finally:
            event.remove(store.engine, "before_cursor_execute", capture)
        plans = [_plan(store, statement, parameters) for statement, parameters in sent]
    finally:
        store.close()
    assert [(r.fulfillment_id, r.status) for r in stale.items] == [("F-7", "Pending")]
    assert len(plans) == 1  # the batches, counted and listed from what they hold
    for plan in plans:
        assert "ix_record_batches_stale_received" in plan, plan


def _plan(store: SqlStore, statement: str, parameters: Any) -> str:
    """How the database would run `statement`, as its planner words it."""
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            return "\n".join(str(row[-1]) for row in rows)
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # this transaction only
        rows = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters)
        return "\n".join(str(row[0]) for row in rows)
