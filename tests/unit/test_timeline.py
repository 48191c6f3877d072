"""A notice's timeline: everything known about it, in order, causes before effects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from notifier.core.feedback import FeedbackEvent, FeedbackKind, MatchedBy, StoredFeedback
from notifier.core.history import HistoryEntry, ReceivedRecord
from notifier.core.models import Notice, NoticeStatus, Scope
from notifier.core.timeline import timeline

T0 = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)
KEY = "tracking_number_assigned:fulfillment:F-2001"


def notice() -> Notice:
    return Notice(
        key=KEY,
        rule_id="tracking_number_assigned",
        scope=Scope.FULFILLMENT,
        order_id="KN-1002",
        fulfillment_id="F-2001",
        recipient="sam.okafor@example.com",
        campaign_id="12",
        status=NoticeStatus.SENT,
        attempts=2,
        due_at=T0,
        created_at=T0,
        fulfillment_ids=("F-2001",),
        record={},
    )


def record(fulfillment: str, status: str, at: datetime, outcome: str = "applied") -> ReceivedRecord:
    return ReceivedRecord(
        order_id="KN-1002",
        fulfillment_id=fulfillment,
        status=status,
        occurred_at=at,
        received_at=at,
        outcome=outcome,
        payload={},
    )


def test_entries_come_oldest_first_with_causes_before_effects() -> None:
    """The record and the notice it created share a moment: the record comes first."""
    later = T0 + timedelta(minutes=1)
    entries = timeline(
        notice(),
        records=[
            record("F-2001", "Shipped", later, "applied"),
            record("F-2001", "Pending Shipment", T0),
        ],
        history=[
            HistoryEntry(KEY, T0 + timedelta(minutes=2), "attempt", "retry", "451 busy"),
            HistoryEntry(KEY, T0 + timedelta(minutes=9), "attempt", "sent", "250 2.0.0 Ok"),
            HistoryEntry(
                KEY, T0 + timedelta(minutes=5), "action", "retry", "made due", "console-token:ab"
            ),
        ],
    )
    assert [e.kind for e in entries] == [
        "record",
        "created",
        "record",
        "attempt",
        "action",
        "attempt",
    ]
    assert entries[3].detail == "451 busy" and entries[5].outcome == "sent"
    assert entries[4].actor == "console-token:ab" and entries[4].title == "Retry requested"


def test_only_the_notices_own_fulfillments_records_are_shown() -> None:
    """The other parcel's records belong to its own notice's timeline."""
    entries = timeline(
        notice(), records=[record("F-2002", "Shipped", T0), record("F-2001", "Shipped", T0)]
    )
    assert [e.title for e in entries if e.kind == "record"] == [
        "Record received: F-2001 is Shipped"
    ]


def test_feedback_events_join_the_timeline() -> None:
    """A provider's bounce shows with its verdict and the remote server's words."""
    event = FeedbackEvent(
        provider="ses",
        event_id="e1",
        kind=FeedbackKind.BOUNCE_PERMANENT,
        occurred_at=T0 + timedelta(hours=1),
        recipient="sam.okafor@example.com",
        diagnostic="550 5.1.1 user unknown",
    )
    stored = StoredFeedback(event, KEY, MatchedBy.MESSAGE_ID, T0 + timedelta(hours=1))
    (*_, last) = timeline(notice(), feedback=[stored])
    assert last.kind == "feedback" and last.title == "ses: bounced"
    assert last.detail == "550 5.1.1 user unknown"
