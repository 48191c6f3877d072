"""A record's dedup key is stored among its fulfillment's recent keys: it must stay what
ledgers already hold, BLAKE2b-128 of its event id or of its change, whichever way it is
computed."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from notifier.core.models import Record, Status

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _blake2b_128(basis: str) -> str:
    return hashlib.blake2b(basis.encode(), digest_size=16).hexdigest()


def test_the_key_of_an_event_id_is_its_hash() -> None:
    record = Record("O-1", "F-1", Status.SHIPPED, AT, event_id="evt-42")
    assert record.dedup_key == _blake2b_128("event\x1fevt-42")


def test_the_key_of_a_change_is_the_hash_of_what_changed() -> None:
    record = Record("O-1", "F-1", Status.SHIPPED, AT, occurred_at=AT, tracking_number="1Z9")
    basis = "\x1f".join(("change", "F-1", "Shipped", "1Z9", AT.isoformat()))
    assert record.dedup_key == _blake2b_128(basis)
    # Each record hashes on its own: the shared hash object is copied, never updated.
    again = Record("O-2", "F-2", Status.HOLD, AT)
    assert again.dedup_key == _blake2b_128("\x1f".join(("change", "F-2", "Hold", "", "")))
    assert Record("O-1", "F-1", Status.SHIPPED, AT, event_id="evt-42").dedup_key == (
        _blake2b_128("event\x1fevt-42")
    )
