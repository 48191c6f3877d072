"""What the operator console reads: search, a notice's history, records, the sent copy.

Read-only queries over a SQL ledger (`notifier serve` always has one), kept off the
write-side Store protocol: the engine never needs them. One box (`q`) finds a notice by its
order id, fulfillment id, email address, tracking number or key (exact, or a prefix when
it looks like a key); every branch of the match is an index lookup (migration 0007), so a
100,000-notice ledger answers in milliseconds (bench/console_search.py).
"""

from __future__ import annotations

import sys
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, CompoundSelect, FromClause, and_, func, or_, select, union

from notifier.core.feedback import StoredFeedback
from notifier.core.history import HistoryEntry, ReceivedRecord
from notifier.core.models import Notice, NoticeStatus, Scope
from notifier.core.timeline import TimelineEntry, timeline
from notifier.store import audit
from notifier.store.base import recipient_spellings
from notifier.store.schema import fulfillments, notices, sent_copies
from notifier.store.sql import SqlStore, notice_from_row

__all__ = ["MAX_PAGE", "ConsoleQueries", "NoticeDossier", "NoticePage", "NoticeQuery"]

MAX_PAGE = 500  # notices per page at most (CSV exports page too)
_KEY_SEPARATOR = ":"  # every notice key has one: rule:scope:id


@dataclass(frozen=True, slots=True)
class NoticeQuery:
    """A console search: `q` and the filters, all optional; newest first, paged."""

    q: str | None = None
    status: NoticeStatus | None = None
    rule_id: str | None = None
    campaign_id: str | None = None
    created_from: datetime | None = None  # inclusive
    created_to: datetime | None = None  # exclusive
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_PAGE:
            raise ValueError(f"limit must be between 1 and {MAX_PAGE}, not {self.limit}")
        if self.offset < 0:
            raise ValueError(f"offset cannot be negative, not {self.offset}")


@dataclass(frozen=True, slots=True)
class NoticeDossier:
    """Everything the ledger knows of one notice, its timeline put together."""

    notice: Notice
    history: tuple[HistoryEntry, ...]
    records: tuple[ReceivedRecord, ...]
    feedback: tuple[StoredFeedback, ...]
    timeline: tuple[TimelineEntry, ...]
    copy_kept: bool  # the exact bytes it was sent as are still kept


@dataclass(frozen=True, slots=True)
class NoticePage:
    """One page of a search's results, and how many match in all."""

    notices: tuple[Notice, ...]
    total: int
    limit: int
    offset: int


class ConsoleQueries:
    """The console's reads, over one SQL store."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store

    def search_notices(self, query: NoticeQuery) -> NoticePage:
        where = _conditions(query)
        source: FromClause = notices
        q = (query.q or "").strip()
        if q:
            # The few keys `q` matches first, then their rows: planned the other way round,
            # PostgreSQL walks the whole created_at index testing each row against them.
            matched = (
                _matches(q, dialect=self.store.dialect)
                .cte("matched")
                .prefix_with("MATERIALIZED", dialect="postgresql")
            )
            source = notices.join(matched, matched.c.key == notices.c.key)
        page = (
            select(notices)
            .select_from(source)
            .where(*where)
            .order_by(notices.c.created_at.desc(), notices.c.key.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
        count = select(func.count()).select_from(source).where(*where)
        with self.store.reading("searching notices") as conn:
            found = tuple(notice_from_row(row) for row in conn.execute(page))
            # A first page that is not full is the whole answer: no second query.
            if query.offset == 0 and len(found) < query.limit:
                total = len(found)
            else:
                total = int(conn.scalar(count) or 0)
        return NoticePage(notices=found, total=total, limit=query.limit, offset=query.offset)

    def notice(self, key: str) -> Notice | None:
        return self.store.notice(key)

    def notice_history(self, key: str) -> list[HistoryEntry]:
        """The notice's attempts and the actions on it, oldest first."""
        return self.store.history(key)

    def records_for(
        self, order_id: str, *, fulfillment_ids: Collection[str] | None = None
    ) -> list[ReceivedRecord]:
        """The audit copies of an order's records (or of just these fulfillments'), in the
        order received, each with its outcome (applied, repeat, stale, duplicate)."""
        with self.store.reading("reading an order's records") as conn:
            return audit.order_records(conn, order_id, fulfillment_ids=fulfillment_ids)

    def sent_copy(self, key: str) -> bytes | None:
        """The exact bytes the notice was sent as, while the copy is kept."""
        return self.store.sent_copy(key)

    def has_sent_copy(self, key: str) -> bool:
        query = select(sent_copies.c.notice_key).where(sent_copies.c.notice_key == key)
        with self.store.reading("reading a sent copy") as conn:
            return conn.scalar(query) is not None

    def dossier(self, key: str) -> NoticeDossier | None:
        """The notice `key` with its history, its fulfillments' records and its timeline;
        None if there is no such notice."""
        notice = self.store.notice(key)
        if notice is None:
            return None
        history = tuple(self.notice_history(key))
        received = tuple(
            self.records_for(notice.order_id, fulfillment_ids=notice.fulfillment_ids or None)
        )
        feedback = tuple(self.store.feedback_for(key))
        return NoticeDossier(
            notice=notice,
            history=history,
            records=received,
            feedback=feedback,
            timeline=tuple(timeline(notice, history=history, records=received, feedback=feedback)),
            copy_kept=self.has_sent_copy(key),
        )


def _conditions(query: NoticeQuery) -> list[ColumnElement[bool]]:
    """The filters besides `q`."""
    where: list[ColumnElement[bool]] = []
    if query.status is not None:
        where.append(notices.c.status == query.status.value)
    if query.rule_id:
        where.append(notices.c.rule_id == query.rule_id)
    if query.campaign_id:
        where.append(notices.c.campaign_id == query.campaign_id)
    if query.created_from is not None:
        where.append(notices.c.created_at >= query.created_from)
    if query.created_to is not None:
        where.append(notices.c.created_at < query.created_to)
    return where


def _matches(q: str, *, dialect: str) -> CompoundSelect[tuple[str]]:
    """The keys of the notices `q` names, as any of the things an operator searches by.
    Each branch is its own indexed SELECT, joined by UNION: an OR over different columns
    (and subqueries) would make PostgreSQL scan the whole table."""
    # Tracking numbers are printed with spaces ("9400 1112 ...") and kept as sent.
    tracking = sorted({q, "".join(q.split()).upper()})
    # A fulfillment named by its id or its tracking number: its notices, and the order-wide
    # notices of its order.
    parcel = or_(fulfillments.c.fulfillment_id == q, fulfillments.c.tracking_number.in_(tracking))
    key = notices.c.key
    branches = [
        select(key).where(key == q),
        select(key).where(notices.c.order_id == q),
        select(key).where(notices.c.fulfillment_id == q),
        select(key).where(notices.c.recipient.in_(recipient_spellings(q))),
        select(key).where(
            notices.c.fulfillment_id.in_(
                select(fulfillments.c.fulfillment_id).where(
                    fulfillments.c.tracking_number.in_(tracking)
                )
            )
        ),
        select(key).where(
            notices.c.scope == Scope.ORDER.value,
            notices.c.order_id.in_(select(fulfillments.c.order_id).where(parcel)),
        ),
    ]
    if _KEY_SEPARATOR in q:
        # Only what looks like a key is tried as a prefix.
        branches.append(select(key).where(_key_prefix(q, dialect=dialect)))
    return union(*branches)


def _key_prefix(prefix: str, *, dialect: str) -> ColumnElement[bool]:
    """Keys starting with `prefix`. SQLite compares text byte-wise, so a range on the
    primary key finds them by index (its LIKE ignores case and cannot); PostgreSQL's
    collation may not order prefixes together, so it gets LIKE (a scan, still quick)."""
    if dialect == "sqlite" and ord(prefix[-1]) < sys.maxunicode:
        following = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        return and_(notices.c.key >= prefix, notices.c.key < following)
    return notices.c.key.startswith(prefix, autoescape=True)
