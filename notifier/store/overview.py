"""The console overview's read queries: counts by status, emails sent over time, and what
needs an operator's attention.

Read-side only, on the SQL ledger (`notifier serve` always has one): nothing here is part
of the write-side Store protocol the engine depends on. Every query is bounded — counts
are aggregates and lists carry a LIMIT — so the page costs the same on a large ledger.
Days and hours are UTC.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Connection, and_, func, select

from notifier.core.models import NoticeStatus
from notifier.store import audit
from notifier.store.schema import notices, rejected_records
from notifier.store.sql import SqlStore

__all__ = [
    "Attention",
    "HeldNotice",
    "Overview",
    "RejectedRecord",
    "SentBucket",
    "StaleRecord",
    "read_overview",
    "start_of_day",
]

# A notice retrying for longer than this needs a look (the first retry is ~1 min after).
RETRYING_TOO_LONG = timedelta(hours=1)
# Stale and rejected records this recent are shown (older ones are history, not news).
STALE_WINDOW = timedelta(days=1)
WEEK_DAYS = 7

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SentBucket:
    """Emails sent in one hour (today's chart) or one day (the week's)."""

    start: datetime
    sent: int


@dataclass(frozen=True, slots=True)
class HeldNotice:
    """A notice in the attention lists: enough to recognise it and link to its page."""

    key: str
    rule_id: str
    order_id: str
    recipient: str | None
    status: NoticeStatus
    due_at: datetime
    created_at: datetime
    first_attempt_at: datetime | None
    attempts: int
    reason: str | None


@dataclass(frozen=True, slots=True)
class StaleRecord:
    """A record older than what was known of its fulfillment: kept, fired nothing."""

    order_id: str
    fulfillment_id: str
    status: str
    occurred_at: datetime
    received_at: datetime


@dataclass(frozen=True, slots=True)
class RejectedRecord:
    """A record an edge refused (bad JSON, a missing field): where it was and why."""

    source: str
    location: str
    reason: str
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Listed(Generic[T]):
    """The first `limit` items of a list, and how many there are in all."""

    items: tuple[T, ...]
    total: int


@dataclass(frozen=True, slots=True)
class Attention:
    failed: Listed[HeldNotice]
    retrying: Listed[HeldNotice]  # in retry for over RETRYING_TOO_LONG
    held: Listed[HeldNotice]  # pending and due later: a delay or quiet hours
    stale: Listed[StaleRecord]  # received in the last STALE_WINDOW
    rejected: Listed[RejectedRecord]  # refused in the last STALE_WINDOW

    @property
    def empty(self) -> bool:
        return not (
            self.failed.total
            or self.retrying.total
            or self.held.total
            or self.stale.total
            or self.rejected.total
        )


@dataclass(frozen=True, slots=True)
class Overview:
    now: datetime
    today: Mapping[NoticeStatus, int]  # notices created today, by status
    week: Mapping[NoticeStatus, int]  # created in the last 7 days (today included)
    hourly: tuple[SentBucket, ...]  # today's 24 hours
    daily: tuple[SentBucket, ...]  # the last 7 days, oldest first
    attention: Attention


def start_of_day(moment: datetime) -> datetime:
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def read_overview(store: SqlStore, *, now: datetime, limit: int = 10) -> Overview:
    """Everything the overview page shows, in one read transaction."""
    today = start_of_day(now)
    week_start = today - timedelta(days=WEEK_DAYS - 1)
    with store.reading("reading the console overview") as conn:
        hours = _sent_per_hour(conn, store.dialect, since=week_start)
        days: dict[datetime, int] = {}
        for start, sent in hours.items():
            day = start_of_day(start)
            days[day] = days.get(day, 0) + sent
        return Overview(
            now=now,
            today=_counts(conn, since=today),
            week=_counts(conn, since=week_start),
            hourly=tuple(
                SentBucket(start, hours.get(start, 0))
                for start in (today + timedelta(hours=h) for h in range(24))
            ),
            daily=tuple(
                SentBucket(start, days.get(start, 0))
                for start in (week_start + timedelta(days=d) for d in range(WEEK_DAYS))
            ),
            attention=_attention(conn, now=now, limit=limit),
        )


def _counts(conn: Connection, *, since: datetime) -> dict[NoticeStatus, int]:
    query = (
        select(notices.c.status, func.count())
        .where(notices.c.created_at >= since)
        .group_by(notices.c.status)
    )
    return {NoticeStatus(status): int(count) for status, count in conn.execute(query)}


def _sent_per_hour(conn: Connection, dialect: str, *, since: datetime) -> dict[datetime, int]:
    """Sent emails per UTC hour since `since`, counted by the database.

    A sent notice's due_at is its sent_at (the store writes a completion's time to both:
    notifier.store.base.Completion.stored_due_at), and (status, due_at) is indexed for the
    claim: counted on that index, a week of 90,000 sent notices takes a fraction of what
    reading sent_at from each row does (bench/console_overview.py)."""
    bucket = _hour_of(notices.c.due_at, dialect).label("bucket")
    query = (
        select(bucket, func.count())
        .where(notices.c.status == NoticeStatus.SENT.value, notices.c.due_at >= since)
        .group_by(bucket)
    )
    return {
        datetime.fromisoformat(f"{text}:00").replace(tzinfo=since.tzinfo): int(count)
        for text, count in conn.execute(query)
    }


def _hour_of(column: Any, dialect: str) -> ColumnElement[str]:
    """`YYYY-MM-DD HH` of a UTC moment, as text, in either database."""
    if dialect == "sqlite":
        # Stored as UTC text, `YYYY-MM-DD HH:MM:SS.ffffff` (notifier.store.schema).
        return func.substr(column, 1, 13)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD HH24")


def _attention(conn: Connection, *, now: datetime, limit: int) -> Attention:
    status = notices.c.status
    return Attention(
        failed=_notices(conn, status == NoticeStatus.FAILED.value, limit, newest_first=True),
        retrying=_notices(
            conn,
            and_(
                status == NoticeStatus.RETRY.value,
                notices.c.first_attempt_at <= now - RETRYING_TOO_LONG,
            ),
            limit,
        ),
        held=_notices(
            conn, and_(status == NoticeStatus.PENDING.value, notices.c.due_at > now), limit
        ),
        stale=_stale(conn, since=now - STALE_WINDOW, limit=limit),
        rejected=_rejected(conn, since=now - STALE_WINDOW, limit=limit),
    )


def _listed(
    conn: Connection,
    item: Callable[..., T],
    columns: Sequence[ColumnElement[Any]],
    where: ColumnElement[bool],
    order: Sequence[ColumnElement[Any]],
    limit: int,
) -> Listed[T]:
    """The first `limit` rows `where` selects, in `order`, each made into an `item` from its
    columns (named as the item's fields), and how many rows there are in all."""
    table = columns[0].table
    total = int(conn.scalar(select(func.count()).select_from(table).where(where)) or 0)
    if not total:
        return Listed((), 0)
    rows = conn.execute(select(*columns).where(where).order_by(*order).limit(limit))
    return Listed(tuple(item(**row._mapping) for row in rows), total)


def _held_notice(status: str, **fields: Any) -> HeldNotice:
    return HeldNotice(status=NoticeStatus(status), **fields)


def _notices(
    conn: Connection, where: ColumnElement[bool], limit: int, *, newest_first: bool = False
) -> Listed[HeldNotice]:
    order = notices.c.due_at.desc() if newest_first else notices.c.due_at
    columns = [
        notices.c.key,
        notices.c.rule_id,
        notices.c.order_id,
        notices.c.recipient,
        notices.c.status,
        notices.c.due_at,
        notices.c.created_at,
        notices.c.first_attempt_at,
        notices.c.attempts,
        notices.c.reason,
    ]
    return _listed(conn, _held_notice, columns, where, [order, notices.c.key], limit)


def _stale(conn: Connection, *, since: datetime, limit: int) -> Listed[StaleRecord]:
    found = audit.stale_records(conn, since=since)
    shown = tuple(
        StaleRecord(
            order_id=record.order_id,
            fulfillment_id=record.fulfillment_id,
            status=record.status,
            occurred_at=record.occurred_at,
            received_at=record.received_at,
        )
        for record in found[:limit]
    )
    return Listed(shown, len(found))


def _rejected(conn: Connection, *, since: datetime, limit: int) -> Listed[RejectedRecord]:
    where = rejected_records.c.received_at >= since
    table = rejected_records.c
    columns = [table.source, table.location, table.reason, table.received_at]
    order = [table.received_at.desc(), table.id.desc()]
    return _listed(conn, RejectedRecord, columns, where, order, limit)
