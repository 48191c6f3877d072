"""Notice -> the exact email message delivery sends. Shared by delivery and preview."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email.message import EmailMessage
from typing import Any

from notifier.core.decide import OrderView
from notifier.core.digests import digest_window, window_start_of
from notifier.core.models import Notice, Scope
from notifier.core.rules import Audience, Rule
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
        if rule.digest is not None:
            # A digest rule's one notice (a preview, a resend) is a digest of one.
            return self.compose_digest([(notice, order)], rule, message_id=message_id, now=now)
        context = self.context(notice, rule, order)
        rendered = self.renderer.render(rule.template, context, campaign_id=notice.campaign_id)
        assert notice.recipient is not None
        customer = context["customer"]
        name = " ".join(p for p in (customer["first_name"], customer["last_name"]) if p) or None
        if rule.to is Audience.OPERATOR:
            name = None  # the address is the operator's, not this customer's
        return build_message(
            rendered,
            sender=self.branding.sender_for(notice.campaign_id),
            recipient=notice.recipient,
            recipient_name=name,
            message_id=message_id,
            date=now,
            reply_to=self.branding.shop_for(notice.campaign_id).get("support_email"),
            envelope_from=self.branding.envelope_sender(message_id),
        )

    def compose_digest(
        self,
        members: Sequence[tuple[Notice, OrderView]],
        rule: Rule,
        *,
        message_id: str,
        now: datetime,
    ) -> EmailMessage:
        """Render several notices of one digest rule into the ONE message that lists them."""
        context = self.digest_context(members, rule)
        rendered = self.renderer.render(rule.template, context, campaign_id=None)
        recipient = members[0][0].recipient
        assert recipient is not None
        return build_message(
            rendered,
            sender=self.branding.mail_from,
            recipient=recipient,
            recipient_name=None,
            message_id=message_id,
            date=now,
            reply_to=self.branding.shop.get("support_email"),
            envelope_from=self.branding.envelope_sender(message_id),
        )

    def context(self, notice: Notice, rule: Rule, order: OrderView) -> dict[str, Any]:
        """The template context of one notice (a digest rule's: a digest of one)."""
        if rule.digest is not None:
            return self.digest_context([(notice, order)], rule)
        return self._notice_context(notice, rule, order)

    def digest_context(
        self, members: Sequence[tuple[Notice, OrderView]], rule: Rule
    ) -> dict[str, Any]:
        """`rule`, `store`, `digest` (`start`, `end`, `count`) and `notices`: each notice's own
        context (`customer`, `order`, `fulfillment`, `record`) with its `key`."""
        assert rule.digest is not None and members
        lead = members[0][0]
        if lead.digest_key is not None:
            start = window_start_of(lead.digest_key)
            end = start + rule.digest
        else:
            start, end = digest_window(lead.due_at, rule.digest)
        items = [
            {**self._notice_context(notice, rule, order), "key": notice.key}
            for notice, order in members
        ]
        return {
            "rule": {"id": rule.id, "name": rule.name},
            "store": dict(self.branding.shop),
            "digest": {"start": start.isoformat(), "end": end.isoformat(), "count": len(items)},
            "notices": items,
        }

    def _notice_context(self, notice: Notice, rule: Rule, order: OrderView) -> dict[str, Any]:
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
