"""A fulfillment's state is written by one of two statements (notifier.store.fast_paths):
the full row, or, for a state without shipping details, a shorter one that writes them as
NULL in its SQL. Whichever wrote it, and whatever it overwrites, the state read back is
the state written, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifier.core.decide import Decision, OrderView
from notifier.core.models import FulfillmentState, Record, Status
from notifier.store.sql import SqlStore

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _write(store: SqlStore, *states: FulfillmentState) -> None:
    records = [
        Record(
            order_id=s.order_id, fulfillment_id=s.fulfillment_id, status=s.status, received_at=AT
        )
        for s in states
    ]

    def decide(_orders: dict[str, OrderView]) -> Decision:
        return Decision(states={s.fulfillment_id: s for s in states})

    store.ingest(records, decide)


def _read(store: SqlStore, order_id: str) -> dict[str, FulfillmentState]:
    return dict(store.orders([order_id])[order_id].fulfillments)


def test_both_shapes_write_what_they_are_given_and_overwrite_each_other(store_url: str) -> None:
    store = SqlStore(store_url)
    try:
        shipped = FulfillmentState(
            "F-1",
            "O-1",
            Status.SHIPPED,
            AT,
            tracking_number="1Z999AA10123456784",
            carrier="UPS",
            shipped_at="2026-03-01",
            delivered_at="2026-03-03",
            occurred_at_clamped=True,
            status_since=AT,
            recent_keys=("a" * 32, "b" * 32),
        )
        unshipped = FulfillmentState(
            "F-2", "O-1", Status.HOLD, AT + timedelta(hours=1), recent_keys=("c" * 32,)
        )
        _write(store, shipped, unshipped)
        assert _read(store, "O-1") == {"F-1": shipped, "F-2": unshipped}

        # Each shape over a row the other wrote: the short one clears the shipping details,
        # the full one sets them; the flag and the keys go both ways.
        cleared = FulfillmentState("F-1", "O-1", Status.PENDING, AT, status_since=None)
        filled = FulfillmentState(
            "F-2",
            "O-1",
            Status.SHIPPED,
            AT + timedelta(hours=2),
            tracking_number="9400100000000000000000",
            occurred_at_clamped=True,
            status_since=AT + timedelta(hours=2),
        )
        _write(store, cleared, filled)
        assert _read(store, "O-1") == {"F-1": cleared, "F-2": filled}
    finally:
        store.close()
