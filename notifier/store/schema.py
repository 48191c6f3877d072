"""The ledger's tables (SQLAlchemy Core). Alembic migrations create exactly these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
    literal_column,
    text,
)
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, whatever the database keeps."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = _utc(value)
        # SQLite has no time zones: keep UTC without an offset so text comparison orders by time.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return moment.astimezone(UTC)


def bind_stamp(moment: datetime, dialect: str) -> Any:
    """A datetime as UtcDateTime binds it, for SQL sent to the driver directly. SQLite: UTC
    text without an offset, exactly as SQLAlchemy stores its DATETIME (so stamps written
    either way compare and sort alike); PostgreSQL: the aware datetime itself."""
    if dialect == "sqlite":
        return _utc(moment).isoformat(sep=" ", timespec="microseconds")[:26]
    if moment.tzinfo is None:
        raise ValueError("naive datetime given to the store")
    return moment


def as_utc(value: datetime | str) -> datetime:
    """A stored moment as an aware UTC datetime: as UtcDateTime reads it back, or as a
    query straight to the driver returns it (SQLite: UTC text without an offset)."""
    if isinstance(value, str):
        # SQLite's usual text, UTC without an offset, parsed with the offset appended:
        # datetime.replace, with its keyword parsing, cost five times the parse (every
        # notice claimed, every state loaded reads several).
        try:
            parsed = datetime.fromisoformat(f"{value}+00:00")
        except ValueError:
            parsed = None  # text with an offset of its own
        # A date alone parses, but naive (the offset ignored): read the usual way below.
        if parsed is not None and parsed.tzinfo is UTC:
            return parsed
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()

# Every record ever accepted, exactly as received, for audit: append-only, written in bulk
# (notifier.store.audit; 0012): one row per ingest transaction holding all of its records,
# framed and compressed together. No key per record: a redelivery is told by its
# fulfillment's state (decide.is_duplicate) and stored too, as a duplicate; exactly-once
# rests on the notices' keys.
record_batches = Table(
    "record_batches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime, nullable=False),  # the latest receipt among them
    Column("records", Integer, nullable=False),
    Column("stale", Integer, nullable=False),  # how many of them are stale
    Column("body", LargeBinary, nullable=False),
)
# The batches holding any stale record, a sliver of them all, by receipt: the console's
# "needs attention" (notifier.store.overview) reads the last day's without reading the
# audit. Partial, so the other batches write no entry. The query uses this very expression
# (a literal, not a parameter): both databases can tell from the text that it is covered.
STALE_BATCH = record_batches.c.stale > literal_column("0")
Index(
    "ix_record_batches_stale_received",
    record_batches.c.received_at,
    sqlite_where=STALE_BATCH,
    postgresql_where=STALE_BATCH,
)
# Which batches hold an order's records: an order's timeline reads those alone. One entry
# per order and batch, clustered by order (SQLite: no rowid B-tree besides).
record_orders = Table(
    "record_orders",
    metadata,
    Column("order_id", String(255), primary_key=True),
    Column("batch_id", Integer, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,
)

# The latest known state of each fulfillment.
fulfillments = Table(
    "fulfillments",
    metadata,
    Column("fulfillment_id", String(255), primary_key=True),
    Column("order_id", String(255), nullable=False),
    Column("status", String(32), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("tracking_number", String(255)),
    Column("carrier", String(255)),
    Column("shipped_at", String(255)),
    Column("delivered_at", String(255)),
    # occurred_at is the receipt of a future-dated record (FulfillmentState.occurred_at_clamped).
    Column("occurred_at_clamped", Boolean, nullable=False, server_default=false()),
    # When it entered its current status (FulfillmentState.status_since); NULL before 0005.
    Column("status_since", UtcDateTime),
    # The dedup keys of its latest records, space-separated (FulfillmentState.recent_keys):
    # what tells a redelivery, in place of a unique key per record (0008).
    Column("recent_keys", Text),
    Index("ix_fulfillments_order", "order_id"),
    # Only fulfillments with a tracking number (0010): a lookup by number never reads the
    # NULLs, and most records come before there is one.
    Index(
        "ix_fulfillments_tracking",
        "tracking_number",
        sqlite_where=text("tracking_number IS NOT NULL"),
        postgresql_where=text("tracking_number IS NOT NULL"),
    ),
)

# An order's complete list of fulfillment ids, when a record told us (order_fulfillment_ids).
orders = Table(
    "orders",
    metadata,
    Column("order_id", String(255), primary_key=True),
    Column("fulfillment_ids", Text, nullable=False),
)

# The notices; the primary key *is* the dedup key: each notice exists once, forever.
notices = Table(
    "notices",
    metadata,
    Column("key", Text, primary_key=True),  # unbounded: key_fields can make it long
    Column("rule_id", String(64), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("order_id", String(255), nullable=False),
    Column("fulfillment_id", String(255)),
    Column("recipient", String(255)),
    Column("campaign_id", String(255)),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("ambiguous_attempts", Integer, nullable=False, server_default=text("0")),
    # When the notice is next due; while `sending`, when the claim's lease runs out.
    Column("due_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("first_attempt_at", UtcDateTime),
    Column("sent_at", UtcDateTime),
    Column("message_id", String(255)),
    Column("reason", Text),
    Column("claim_token", String(64)),
    # Set as the message is about to leave (SMTP: before DATA), cleared by its outcome: still
    # set when the notice is claimed again, its last send was interrupted (may have arrived).
    Column("send_started_at", UtcDateTime),
    # A stalled rule's notice: the entry into the status it is about (notifier.core.stalled).
    Column("entered_at", UtcDateTime),
    # A digest rule's notice: the window it is sent in, with the others (notifier.core.digests).
    Column("digest_key", Text),
    Column("fulfillment_ids", Text, nullable=False),
    Column("record", Text, nullable=False),
    # The providers' strongest verdict on the sent message so far (FeedbackKind; VERDICT_RANK).
    Column("feedback", String(24)),
    Index("ix_notices_due", "status", "due_at"),
    Index("ix_notices_order", "order_id"),
    Index("ix_notices_digest", "digest_key"),
    # The console's search (notifier.store.queries): by fulfillment, by status, newest
    # first (by address: ix_notices_recipient below).
    Index("ix_notices_fulfillment", "fulfillment_id"),
    Index("ix_notices_created", "created_at"),
    Index("ix_notices_status_created", "status", "created_at"),
    # Feedback is tied to its notice by Message-ID, else by the latest notice to the address.
    # Only notices that have one (0013): feedback compares Message-IDs, never matching NULL.
    Index(
        "ix_notices_message_id",
        "message_id",
        sqlite_where=text("message_id IS NOT NULL"),
        postgresql_where=text("message_id IS NOT NULL"),
    ),
    Index("ix_notices_recipient", "recipient", "sent_at"),
)

# What the mail providers reported after the handoff (notifier.core.feedback): each event once.
feedback_events = Table(
    "feedback_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("provider", String(32), nullable=False),
    Column("event_id", String(255), nullable=False),
    Column("notice_key", Text),  # NULL: matched no notice
    Column("matched_by", String(16), nullable=False),
    Column("kind", String(24), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("recipient", String(255)),
    Column("message_id", String(255)),
    Column("diagnostic", Text, nullable=False),
    Column("payload", Text, nullable=False),
    UniqueConstraint("provider", "event_id", name="uq_feedback_events_provider_event"),
    Index("ix_feedback_events_notice", "notice_key"),
    Index("ix_feedback_events_recipient", "recipient", "kind", "occurred_at"),
    Index("ix_feedback_events_occurred", "occurred_at"),
)

# Addresses that must not be mailed (hard bounces, operator's list).
suppressions = Table(
    "suppressions",
    metadata,
    Column("address", String(255), primary_key=True),
    Column("reason", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# Each notice's history: every attempt's outcome (written with it) and every operator action.
notice_history = Table(
    "notice_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("notice_key", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(16), nullable=False),  # attempt | action
    Column("outcome", String(32), nullable=False),
    Column("detail", Text),  # the server's reply, the error text, the action's note
    Column("actor", String(255)),  # who acted (actions only)
    Index("ix_notice_history_key", "notice_key"),
)

# The exact bytes of each sent message (zlib), kept for NOTIFIER_SENT_COPY_RETENTION.
sent_copies = Table(
    "sent_copies",
    metadata,
    Column("notice_key", Text, primary_key=True),
    Column("sent_at", UtcDateTime, nullable=False),
    Column("message", LargeBinary, nullable=False),
    Index("ix_sent_copies_sent_at", "sent_at"),
)

# Records refused at an edge (bad JSON, a missing field), for the console's "needs attention":
# what was wrong and where, never stored as records. Bounded: kept REJECTIONS_KEPT days.
rejected_records = Table(
    "rejected_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(255), nullable=False),
    Column("location", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Index("ix_rejected_records_received", "received_at"),
)

# Small named values that must survive restarts (e.g. a polled source's cursor).
cursors = Table(
    "cursors",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


# Column lists for SQL written by hand (notifier.store.fast_paths), from the tables above.
FULFILLMENT_COLUMNS = tuple(c.name for c in fulfillments.columns)
# What a new notice is written with; the other columns start empty.
NEW_NOTICE_COLUMNS = (
    "key",
    "rule_id",
    "scope",
    "order_id",
    "fulfillment_id",
    "recipient",
    "campaign_id",
    "status",
    "attempts",
    "ambiguous_attempts",
    "due_at",
    "created_at",
    "reason",
    "fulfillment_ids",
    "record",
    "entered_at",
    "digest_key",
)
