"""Future-dated records end to end (DESIGN.md §8 "Time"): a real ledger (SQLite and
PostgreSQL), a real SMTP server, the real webhook over HTTP, a real drop folder.

Every "5 h ahead" is counted from the real now, which is the clock the code reads here, so
these tests hold on any date (and under a shifted clock).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from support.cli import notifier
from support.project import smtp_settings, write_jsonl
from support.smtp_sink import SmtpSink

from notifier.store.sql import SqlStore

UPS = "1Z999AA10123456784"
AHEAD = timedelta(hours=5)


def change(status: str, occurred_at: datetime, **fields: Any) -> dict[str, Any]:
    record = {
        "order_id": "KN-2001",
        "fulfillment_id": "F-2001",
        "status": status,
        "occurred_at": occurred_at.isoformat(),
        "email": "jane@example.com",
        "first_name": "Jane",
        "tracking_number": UPS,
    }
    record.update(fields)
    return record


def test_a_pending_shipment_5_h_ahead_mails_at_once_and_shipped_completes_the_order(
    tmp_path: Path, smtp_sink: SmtpSink, store_url: str
) -> None:
    """The issue's case through `notifier run`: Tracking Number Assigned is sent at once, not
    in 5 h; the summary says why; the real Shipped that follows sends All Fulfillments, even
    dated a little before the skewed record was received. The audit copy keeps the 5 h date."""
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port, database_url=store_url)
    # The real moment the parcel shipped: before the skewed record is even received.
    shipped_at = datetime.now(UTC) - timedelta(seconds=30)
    claimed = datetime.now(UTC) + AHEAD
    first_file = write_jsonl(tmp_path / "pending.jsonl", [change("Pending Shipment", claimed)])

    first = notifier(settings, "run", str(first_file))

    assert first.exit_code == 0, first.stderr
    assert [m["Subject"] for m in smtp_sink.messages] == [
        "Your Example Store order KN-2001 has a tracking number"
    ]
    assert (
        f"future-dated: 1 record(s) from batch {first_file} dated up to 5 h after they were"
        " received, taken as received now: check the sender's clock"
    ) in first.stdout
    store = SqlStore(settings.database_url)
    try:
        state = store.fulfillment("F-2001")
        assert state is not None and state.occurred_at_clamped
        assert state.occurred_at < datetime.now(UTC) < claimed
        notice = store.notice("tracking_number_assigned:fulfillment:F-2001")
        assert notice is not None and notice.status.value == "sent"
        assert datetime.fromisoformat(notice.record["occurred_at"]) == claimed  # audit: as sent

        second_file = write_jsonl(tmp_path / "shipped.jsonl", [change("Shipped", shipped_at)])
        second = notifier(settings, "run", str(second_file))

        assert second.exit_code == 0, second.stderr
        assert "future-dated" not in second.stdout
        assert [m["Subject"] for m in smtp_sink.messages][1:] == [
            "Your Example Store order KN-2001 has shipped"
        ]
        state = store.fulfillment("F-2001")
        assert state is not None and state.status.value == "Shipped"
        assert state.occurred_at == shipped_at and not state.occurred_at_clamped
    finally:
        store.close()
