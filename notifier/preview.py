"""Render a rule's notice from sample or given records: no send, no store (DESIGN.md §5).

It goes through the same decide and compose code as delivery, on an in-memory order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

from notifier.compose import Composer
from notifier.decide import OrderView, apply_record, shipped_fulfillment_ids
from notifier.models import Notice, NoticeStatus, Record, Scope, Status, message_id_for
from notifier.rules import Rule, notice_key

_SAMPLE_TIME = datetime(2026, 3, 14, 15, 9, tzinfo=UTC)


def sample_records(rule: Rule, *, campaign_id: str | None = None) -> list[Record]:
    """A realistic order for a rule: two shipped fulfillments for order-scope rules."""
    base = {
        "order_id": "KN-10482",
        "email": "jane.doe@example.com",
        "first_name": "Jane",
        "last_name": "Doe",
        "campaign_id": campaign_id,
        "received_at": _SAMPLE_TIME,
        "ship_method": "Standard",
    }
    if rule.scope is Scope.ORDER:
        ids = ("F-1", "F-2")
        return [
            Record(
                fulfillment_id="F-1",
                status=rule.on,
                occurred_at=_SAMPLE_TIME,
                tracking_number="9400111899223197428490",
                carrier="USPS",
                shipped_at="03/14/2026",
                order_fulfillment_ids=ids,
                **base,  # type: ignore[arg-type]
            ),
            Record(
                fulfillment_id="F-2",
                status=rule.on,
                occurred_at=_SAMPLE_TIME + timedelta(hours=2),
                tracking_number="1Z999AA10123456784",
                carrier="UPS",
                shipped_at="03/14/2026",
                order_fulfillment_ids=ids,
                **base,  # type: ignore[arg-type]
            ),
        ]
    return [
        Record(
            fulfillment_id="F-1",
            status=rule.on,
            occurred_at=_SAMPLE_TIME,
            tracking_number="1Z999AA10123456784",
            carrier="UPS",
            shipped_at="03/14/2026" if rule.on in (Status.SHIPPED, Status.DELIVERED) else None,
            **base,  # type: ignore[arg-type]
        )
    ]


def preview_notice(rule: Rule, records: Sequence[Record]) -> tuple[Notice, OrderView]:
    """The notice the rule would create for the last record, and the order as it then stands."""
    if not records:
        raise ValueError("preview needs at least one record")
    last = records[-1]
    order = OrderView(last.order_id)
    for record in records:
        if record.order_id != last.order_id:
            continue
        if record.order_fulfillment_ids:
            order.fulfillment_ids = record.order_fulfillment_ids
        state, _ = apply_record(order.fulfillments.get(record.fulfillment_id), record)
        order.fulfillments[record.fulfillment_id] = state
    fulfillment_ids = (
        shipped_fulfillment_ids(order) or tuple(order.fulfillments)
        if rule.scope is Scope.ORDER
        else (last.fulfillment_id,)
    )
    notice = Notice(
        key=notice_key(rule, last),
        rule_id=rule.id,
        scope=rule.scope,
        order_id=last.order_id,
        fulfillment_id=last.fulfillment_id if rule.scope is Scope.FULFILLMENT else None,
        recipient=last.email or "customer@example.com",
        campaign_id=last.campaign_id,
        status=NoticeStatus.PENDING,
        attempts=0,
        due_at=last.effective_at,
        created_at=last.effective_at,
        fulfillment_ids=fulfillment_ids,
        record=last.to_json(),
    )
    return notice, order


def preview_message(composer: Composer, rule: Rule, records: Sequence[Record]) -> EmailMessage:
    """The exact message delivery would send for these records (raises TemplateError)."""
    notice, order = preview_notice(rule, records)
    message_id = message_id_for(notice.key, composer.config.message_id_domain)
    return composer.compose(notice, rule, order, message_id=message_id, now=notice.created_at)
