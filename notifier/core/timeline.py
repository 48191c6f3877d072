"""One timeline per notice: records received, its creation, attempts, actions, feedback.

Pure: handed what the ledger holds about a notice, it orders it into the entries the
console and `notifier show` print, oldest first. Entries at the same moment keep the
order things happen in (a record, then the notice it created, then its attempts).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from notifier.core.feedback import StoredFeedback
from notifier.core.history import HistoryEntry, ReceivedRecord
from notifier.core.models import Notice

__all__ = ["TimelineEntry", "TimelineKind", "timeline"]

TimelineKind = Literal["record", "created", "attempt", "action", "feedback"]
# Tie-break for entries at the same instant: causes before their effects.
_ORDER: dict[TimelineKind, int] = {
    "record": 0,
    "created": 1,
    "attempt": 2,
    "action": 3,
    "feedback": 4,
}
_ACTION_TITLES = {
    "retry": "Retry requested",
    "resend": "Resend requested",
    "suppress": "Address suppressed",
    "unsuppress": "Address unsuppressed",
}
_ATTEMPT_TITLES = {
    "sent": "Sent",
    "retry": "Attempt failed, will retry",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One line of a notice's timeline."""

    at: datetime
    kind: TimelineKind
    title: str
    detail: str | None = None
    outcome: str | None = None  # a record's (applied...), an attempt's (sent...), feedback's
    actor: str | None = None  # who acted (actions)


def timeline(
    notice: Notice,
    *,
    history: Iterable[HistoryEntry] = (),
    records: Iterable[ReceivedRecord] = (),
    feedback: Iterable[StoredFeedback] = (),
) -> list[TimelineEntry]:
    """Everything known about `notice`, oldest first."""
    entries = [_created(notice)]
    entries += [_record(r) for r in records if _concerns(notice, r)]
    entries += [_history(h) for h in history]
    entries += [_feedback(f) for f in feedback]
    return sorted(entries, key=lambda e: (e.at, _ORDER[e.kind]))  # stable within a kind


def _concerns(notice: Notice, record: ReceivedRecord) -> bool:
    ids: Sequence[str] = notice.fulfillment_ids
    return record.order_id == notice.order_id and (not ids or record.fulfillment_id in ids)


def _created(notice: Notice) -> TimelineEntry:
    where = f"fulfillment {notice.fulfillment_id}" if notice.fulfillment_id else "the order"
    return TimelineEntry(
        at=notice.created_at,
        kind="created",
        title=f"Notice created by rule {notice.rule_id}",
        detail=f"for {where} of order {notice.order_id}, to {notice.recipient or 'no address'}",
    )


def _record(record: ReceivedRecord) -> TimelineEntry:
    return TimelineEntry(
        at=record.received_at,
        kind="record",
        title=f"Record received: {record.fulfillment_id} is {record.status}",
        detail=f"occurred at {record.occurred_at.isoformat()}",
        outcome=record.outcome,
    )


def _history(entry: HistoryEntry) -> TimelineEntry:
    if entry.kind == "action":
        title = _ACTION_TITLES.get(entry.outcome, f"Action: {entry.outcome}")
        return TimelineEntry(
            at=entry.at,
            kind="action",
            title=title,
            detail=entry.detail,
            outcome=entry.outcome,
            actor=entry.actor,
        )
    return TimelineEntry(
        at=entry.at,
        kind="attempt",
        title=_ATTEMPT_TITLES.get(entry.outcome, entry.outcome),
        detail=entry.detail,
        outcome=entry.outcome,
    )


def _feedback(stored: StoredFeedback) -> TimelineEntry:
    event = stored.event
    return TimelineEntry(
        at=event.occurred_at,
        kind="feedback",
        title=f"{event.provider}: {event.kind.verdict}",
        detail=event.diagnostic or None,
        outcome=event.kind.value,
    )
