"""Delivery feedback in the SQL ledger: the statements behind SqlStore's feedback methods.

Each function runs inside the transaction SqlStore opens for it. An event is stored once:
the unique (provider, event_id) with ON CONFLICT DO NOTHING decides, so two redeliveries
racing on two instances still apply their effects (verdict, suppression) once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from notifier.core.feedback import (
    FeedbackEvent,
    FeedbackKind,
    FeedbackRates,
    MatchedBy,
    StoredFeedback,
    SuppressionPolicy,
    rates_from_counts,
    stronger,
)
from notifier.core.models import NoticeStatus
from notifier.store.base import FeedbackWrite, recipient_spellings
from notifier.store.schema import feedback_events, notices, suppressions

Insert = Callable[[Any], Any]  # SqlStore._insert: the dialect's INSERT with ON CONFLICT


def notices_by_message_id(conn: Connection, message_ids: Collection[str]) -> dict[str, str]:
    wanted = sorted(set(message_ids))
    if not wanted:
        return {}
    rows = conn.execute(
        select(notices.c.message_id, notices.c.key).where(notices.c.message_id.in_(wanted))
    )
    return {message_id: key for message_id, key in rows}


def latest_sent_to(conn: Connection, address: str, since: datetime, until: datetime) -> str | None:
    return conn.scalar(
        select(notices.c.key)
        .where(
            notices.c.recipient.in_(recipient_spellings(address)),
            notices.c.status == NoticeStatus.SENT.value,
            notices.c.sent_at >= since,
            notices.c.sent_at <= until,
        )
        .order_by(notices.c.sent_at.desc(), notices.c.key)
        .limit(1)
    )


def add_feedback(
    conn: Connection,
    insert: Insert,
    feedback: Sequence[StoredFeedback],
    policy: SuppressionPolicy,
) -> FeedbackWrite:
    stored: list[bool] = []
    suppressed: list[tuple[str, str]] = []
    # RETURNING tells whether the row went in (psycopg reports no rowcount for ON CONFLICT).
    add_event = (
        insert(feedback_events)
        .on_conflict_do_nothing(
            index_elements=[feedback_events.c.provider, feedback_events.c.event_id]
        )
        .returning(feedback_events.c.id)
    )
    add_suppression = (
        insert(suppressions)
        .on_conflict_do_nothing(index_elements=[suppressions.c.address])
        .returning(suppressions.c.address)
    )
    for item in feedback:
        event = item.event
        recipient = event.recipient.casefold() if event.recipient else None
        new = conn.execute(add_event, _event_row(item, recipient)).first() is not None
        stored.append(new)
        if not new:
            continue
        if item.notice_key is None:
            continue  # see SuppressionPolicy: only mail notifier sent suppresses
        _raise_verdict(conn, item.notice_key, event.kind)
        if recipient is None:
            continue
        reason = policy.reason(event, _transient_count(conn, recipient, event, policy))
        if reason is None:
            continue
        added = conn.execute(
            add_suppression,
            {"address": recipient, "reason": reason, "created_at": item.received_at},
        ).first()
        if added is not None:
            suppressed.append((recipient, reason))
    return FeedbackWrite(stored=tuple(stored), suppressed=tuple(suppressed))


def _event_row(item: StoredFeedback, recipient: str | None) -> dict[str, Any]:
    event = item.event
    return {
        "provider": event.provider,
        "event_id": event.event_id,
        "notice_key": item.notice_key,
        "matched_by": item.matched_by.value,
        "kind": event.kind.value,
        "occurred_at": event.occurred_at,
        "received_at": item.received_at,
        "recipient": recipient,
        "message_id": event.message_id,
        "diagnostic": event.diagnostic,
        "payload": event.payload,
    }


def _raise_verdict(conn: Connection, key: str, kind: FeedbackKind) -> None:
    current = conn.scalar(select(notices.c.feedback).where(notices.c.key == key))
    verdict = stronger(FeedbackKind(current) if current else None, kind)
    if verdict.value != current:
        conn.execute(update(notices).where(notices.c.key == key).values(feedback=verdict.value))


def _transient_count(
    conn: Connection, recipient: str, event: FeedbackEvent, policy: SuppressionPolicy
) -> int:
    if event.kind is not FeedbackKind.BOUNCE_TRANSIENT:
        return 0
    return int(
        conn.scalar(
            select(func.count()).where(
                feedback_events.c.recipient == recipient,
                feedback_events.c.kind == FeedbackKind.BOUNCE_TRANSIENT.value,
                feedback_events.c.notice_key.is_not(None),
                feedback_events.c.occurred_at > event.occurred_at - policy.transient_window,
                feedback_events.c.occurred_at <= event.occurred_at,
            )
        )
        or 0
    )


def feedback_for(conn: Connection, notice_key: str) -> list[StoredFeedback]:
    rows = conn.execute(
        select(feedback_events)
        .where(feedback_events.c.notice_key == notice_key)
        .order_by(feedback_events.c.occurred_at, feedback_events.c.id)
    )
    return [
        StoredFeedback(
            event=FeedbackEvent(
                provider=row.provider,
                event_id=row.event_id,
                kind=FeedbackKind(row.kind),
                occurred_at=row.occurred_at,
                recipient=row.recipient,
                message_id=row.message_id,
                diagnostic=row.diagnostic,
                payload=row.payload,
            ),
            notice_key=row.notice_key,
            matched_by=MatchedBy(row.matched_by),
            received_at=row.received_at,
        )
        for row in rows
    ]


def feedback_rates(conn: Connection, since: datetime) -> FeedbackRates:
    rows = conn.execute(
        select(notices.c.campaign_id, notices.c.feedback, func.count())
        .where(and_(notices.c.status == NoticeStatus.SENT.value, notices.c.sent_at >= since))
        .group_by(notices.c.campaign_id, notices.c.feedback)
    )
    return rates_from_counts(
        since,
        (
            (campaign, FeedbackKind(verdict) if verdict else None, int(count))
            for campaign, verdict, count in rows
        ),
    )
