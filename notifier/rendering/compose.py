"""Notice -> the exact email message delivery sends. Shared by delivery and preview."""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from typing import Any

from notifier.core.decide import OrderView
from notifier.core.models import Notice, Scope
from notifier.core.rules import Rule
from notifier.rendering.branding import Branding
from notifier.rendering.renderer import Renderer, build_context, build_message, fulfillment_view


class Composer:
    """Builds a notice's template context and renders it into a message."""

    def __init__(self, renderer: Renderer, branding: Branding) -> None:
        self.renderer = renderer
        self.branding = branding

    def compose(
        self, notice: Notice, rule: Rule, order: OrderView, *, message_id: str, now: datetime
    ) -> EmailMessage:
        """Render a notice to the exact message delivery sends."""
        context = self.context(notice, rule, order)
        rendered = self.renderer.render(rule.template, context, campaign_id=notice.campaign_id)
        assert notice.recipient is not None
        customer = context["customer"]
        name = " ".join(p for p in (customer["first_name"], customer["last_name"]) if p) or None
        return build_message(
            rendered,
            sender=self.branding.sender_for(notice.campaign_id),
            recipient=notice.recipient,
            recipient_name=name,
            message_id=message_id,
            date=now,
            reply_to=self.branding.shop_for(notice.campaign_id).get("support_email"),
        )

    def context(self, notice: Notice, rule: Rule, order: OrderView) -> dict[str, Any]:
        views = {
            fid: fulfillment_view(
                fid,
                status=state.status.value,
                tracking_number=state.tracking_number,
                carrier=state.carrier,
                shipped_at=state.shipped_at,
                delivered_at=state.delivered_at,
            )
            for fid in order.expected_ids()
            if (state := order.fulfillments.get(fid)) is not None
        }
        fulfillment = None
        if notice.scope is Scope.FULFILLMENT and notice.fulfillment_id is not None:
            fulfillment = views.get(notice.fulfillment_id) or self._view_from_record(notice)
        return build_context(
            rule={"id": rule.id, "name": rule.name},
            record=notice.record,
            order_id=notice.order_id,
            campaign_id=notice.campaign_id,
            fulfillments=list(views.values()),
            fulfillment=fulfillment,
            store=self.branding.shop_for(notice.campaign_id),
        )

    @staticmethod
    def _view_from_record(notice: Notice) -> dict[str, Any]:
        record = notice.record
        return fulfillment_view(
            str(record.get("fulfillment_id")),
            status=record.get("status"),
            tracking_number=record.get("tracking_number"),
            carrier=record.get("carrier"),
            shipped_at=record.get("shipped_at"),
            delivered_at=record.get("delivered_at"),
        )
