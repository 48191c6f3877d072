"""Frozen values the core works on: statuses, status-change records, fulfillment state, notices."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from notifier.core.feedback import FeedbackKind
from notifier.core.frozen import quick_init


class Status(enum.StrEnum):
    """A fulfillment status, as the fulfillment house reports it (docs/design.md §1)."""

    HOLD = "Hold"
    PENDING = "Pending"
    PENDING_SHIPMENT = "Pending Shipment"
    SHIPPED = "Shipped"
    DELIVERED = "Delivered"
    CANCELLED = "Cancelled"
    RMA_PENDING = "RMA Pending"
    RETURNED = "Returned"
    FAILED = "Failed"
    RECYCLED = "Recycled"

    @classmethod
    def parse(cls, text: str) -> Status:
        """Accept `Pending Shipment`, `PENDING_SHIPMENT`, `pending-shipment`, in any case."""
        status = STATUS_BY_SPELLING.get(text)
        if status is not None:
            return status
        status = _STATUS_BY_KEY.get(_status_key(text))
        if status is None:
            known = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown status {text!r} (expected one of: {known})")
        return status


def _status_key(text: str) -> str:
    return " ".join(text.replace("_", " ").replace("-", " ").split()).casefold()


_STATUS_BY_KEY = {_status_key(s.value): s for s in Status}
# The usual spellings, looked up as given: parsing a status is on the ingest hot path
# (the JSONL fast path, notifier.core.record_lines, takes these and leaves the rest).
STATUS_BY_SPELLING = {
    spelling: s
    for s in Status
    for spelling in (s.value, s.value.upper().replace(" ", "_"), s.value.lower().replace(" ", "_"))
}

# Statuses after which a fulfillment counts as gone out to the customer.
SHIPPED_STATUSES = frozenset({Status.SHIPPED, Status.DELIVERED})


# A record's optional text fields, by their snake_case names.
OPTIONAL_TEXT_FIELDS = (
    "event_id",
    "email",
    "first_name",
    "last_name",
    "tracking_number",
    "carrier",
    "ship_method",
    "shipped_at",
    "delivered_at",
    "campaign_id",
)


# The dedup key's hash, BLAKE2b-128, copied for each record: a copy costs a third less than
# a new hash object, whose constructor parses its eight keyword parameters every time.
_DEDUP_HASH = hashlib.blake2b(digest_size=16)


def dedup_key_of(
    event_id: str | None,
    fulfillment_id: str,
    status: Status,
    tracking_number: str | None,
    occurred_at: datetime | None,
) -> str:
    """A record's dedup key: redelivery of the same change maps to the same key
    (docs/design.md §2, `event_id`).

    Kept among its fulfillment's recent keys (FulfillmentState.recent_keys), not in a
    table of every record's key: the records table has no key (design.md §6)."""
    if event_id:
        basis = f"event\x1f{event_id}"
    else:
        occurred = occurred_at.isoformat() if occurred_at else ""
        basis = "\x1f".join(
            ("change", fulfillment_id, status.value, tracking_number or "", occurred)
        )
    digest = _DEDUP_HASH.copy()
    digest.update(basis.encode())
    return digest.hexdigest()


# Built once per record read (a million in a batch): see notifier.core.frozen.
@quick_init(derived={"dedup_key": dedup_key_of})
@dataclass(frozen=True, slots=True)
class Record:
    """One fulfillment entering one status (docs/design.md §2), already validated."""

    order_id: str
    fulfillment_id: str
    status: Status
    received_at: datetime
    occurred_at: datetime | None = None
    event_id: str | None = None
    email: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    tracking_number: str | None = None
    carrier: str | None = None
    ship_method: str | None = None
    shipped_at: str | None = None
    delivered_at: str | None = None
    campaign_id: str | None = None
    order_fulfillment_ids: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    # The record exactly as received (a JSONL line), kept for audit; None: store to_json().
    received_text: str | None = field(default=None, repr=False, compare=False)

    @property
    def effective_at(self) -> datetime:
        """When the change happened: as reported, else when it was received.

        This is the record's own time, kept in its audit copy and its dedup key; ordering
        goes by `ordering_time`, which distrusts a time in the future.
        """
        return self.occurred_at or self.received_at

    # Worked out by quick_init as the record is built (dedup_key_of): ingest asks for it
    # several times per record.
    dedup_key: str = field(init=False, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """The record as stored for audit and handed back to templates as `record`."""
        data: dict[str, Any] = {
            "order_id": self.order_id,
            "fulfillment_id": self.fulfillment_id,
            "status": self.status.value,
            "received_at": self.received_at.isoformat(),
        }
        for name in OPTIONAL_TEXT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                data[name] = value
        if self.occurred_at is not None:
            data["occurred_at"] = self.occurred_at.isoformat()
        if self.order_fulfillment_ids:
            data["order_fulfillment_ids"] = list(self.order_fulfillment_ids)
        if self.extra:
            data["extra"] = dict(self.extra)
        return data


# How far past its receipt a record may be dated before it is taken as future-dated: the
# usual clock drift between a sender and us is seconds, a wrong time zone is hours.
DEFAULT_FUTURE_TOLERANCE = timedelta(minutes=5)


def future_skew(record: Record, tolerance: timedelta) -> timedelta | None:
    """How far ahead of its receipt the record is dated, if by more than `tolerance`."""
    if record.occurred_at is None:
        return None
    skew = record.occurred_at - record.received_at
    return skew if skew > tolerance else None


def ordering_time(record: Record, tolerance: timedelta) -> tuple[datetime, bool]:
    """When the record's change counts as having happened, and whether that is its receipt
    standing in for a future date (DESIGN.md §8: taken as received now)."""
    if future_skew(record, tolerance) is not None:
        return record.received_at, True
    return record.effective_at, False


@quick_init
@dataclass(frozen=True, slots=True)
class FulfillmentState:
    """What the engine knows of one fulfillment: its latest status and shipping details."""

    fulfillment_id: str
    order_id: str
    status: Status
    occurred_at: datetime
    tracking_number: str | None = None
    carrier: str | None = None
    shipped_at: str | None = None
    delivered_at: str | None = None
    # occurred_at is when a future-dated record was received, not when its change happened
    # (which is unknown): a record received later may be dated a little earlier and still
    # be the newer news (notifier.core.decide.apply_record).
    occurred_at_clamped: bool = False
    # When it entered its current status (a repeat of the status keeps it): a stalled
    # notice about an earlier entry is moot once this is later (notifier.core.stalled).
    # None for a state stored before this was kept.
    status_since: datetime | None = None
    # The dedup keys (Record.dedup_key) of the latest records it took, newest last, at
    # most decide.RECENT_KEYS: a record whose key is here is a duplicate.
    recent_keys: tuple[str, ...] = ()


class NoticeStatus(enum.StrEnum):
    """Where a notice is in its lifecycle (docs/design.md §3)."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Scope(enum.StrEnum):
    FULFILLMENT = "fulfillment"
    ORDER = "order"


@dataclass(frozen=True, slots=True)
class NewNotice:
    """A notice the engine has decided to send; the store keeps its key once, forever."""

    key: str
    rule_id: str
    scope: Scope
    order_id: str
    fulfillment_id: str | None
    recipient: str | None
    campaign_id: str | None
    due_at: datetime
    created_at: datetime
    # The fulfillments the notice is about (order scope: the shipped ones at decision time).
    fulfillment_ids: tuple[str, ...]
    record: Mapping[str, Any]
    status: NoticeStatus = NoticeStatus.PENDING
    reason: str | None = None
    # A stalled rule's notice: when the fulfillment (or order) entered the rule's status.
    entered_at: datetime | None = None
    # A digest rule's notice: the window it is sent in, with the others (core.digests).
    digest_key: str | None = None

    def as_stored(self) -> Notice:
        """The notice as the ledger holds it once created, before any attempt."""
        return Notice(
            key=self.key,
            rule_id=self.rule_id,
            scope=self.scope,
            order_id=self.order_id,
            fulfillment_id=self.fulfillment_id,
            recipient=self.recipient,
            campaign_id=self.campaign_id,
            status=self.status,
            attempts=0,
            due_at=self.due_at,
            created_at=self.created_at,
            fulfillment_ids=self.fulfillment_ids,
            record=self.record,
            reason=self.reason,
        )


@dataclass(frozen=True, slots=True)
class Notice:
    """A notice as the ledger holds it."""

    key: str
    rule_id: str
    scope: Scope
    order_id: str
    fulfillment_id: str | None
    recipient: str | None
    campaign_id: str | None
    status: NoticeStatus
    attempts: int
    due_at: datetime
    created_at: datetime
    fulfillment_ids: tuple[str, ...]
    record: Mapping[str, Any]
    message_id: str | None = None
    sent_at: datetime | None = None
    reason: str | None = None
    claim_token: str | None = None
    lease_until: datetime | None = None
    first_attempt_at: datetime | None = None
    ambiguous_attempts: int = 0
    # When its last send started, if no outcome was recorded after it (a crash mid-send).
    send_started_at: datetime | None = None
    # A stalled rule's notice: the entry into the status it is about (NewNotice.entered_at).
    entered_at: datetime | None = None
    # A digest rule's notice: sent in one message with the others of its window.
    digest_key: str | None = None
    # The providers' strongest verdict on it once sent (core.feedback.VERDICT_RANK), if any.
    feedback: FeedbackKind | None = None


def message_id_for(notice_key: str, domain: str) -> str:
    """A Message-ID derived from the notice key, so a resend after a crash carries the same one."""
    digest = hashlib.sha256(notice_key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


@dataclass(slots=True)
class OrderView:
    """What is known of one order: its fulfillments' states and, if told, its full id list."""

    order_id: str
    fulfillments: dict[str, FulfillmentState] = field(default_factory=dict)
    fulfillment_ids: tuple[str, ...] | None = None

    def expected_ids(self) -> Sequence[str]:
        return self.fulfillment_ids if self.fulfillment_ids else list(self.fulfillments)
