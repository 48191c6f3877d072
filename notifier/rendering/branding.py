"""Who a message is from and which shop it speaks for: everything composing needs to know.

Kept apart from the engine's options so that composing (delivery, preview, check) never
reaches back into the engine. The shop details become the templates' `store` variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from notifier.core.feedback import verp_address
from notifier.core.mime import envelope_address


@dataclass(frozen=True, slots=True)
class Branding:
    # The default sender ("Name <address>"); its domain is also the Message-ID domain.
    mail_from: str
    # The shop's name, support address and URL: the templates' `store` variable.
    shop: Mapping[str, Any] = field(default_factory=dict)
    # Per-campaign sender, overriding mail_from (templates/<campaign>/campaign.toml).
    campaign_senders: Mapping[str, str] = field(default_factory=dict)
    # Per-campaign shop details, complete (the campaign's keys on top of `shop`).
    campaign_shops: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # VERP (NOTIFIER_BOUNCE_ADDRESS): bounces come back to this address plus each notice's
    # token, so one whose original headers are lost still names its notice.
    bounce_address: str | None = None

    def sender_for(self, campaign_id: str | None) -> str:
        if campaign_id is not None and campaign_id in self.campaign_senders:
            return self.campaign_senders[campaign_id]
        return self.mail_from

    def shop_for(self, campaign_id: str | None) -> Mapping[str, Any]:
        if campaign_id is not None and campaign_id in self.campaign_shops:
            return self.campaign_shops[campaign_id]
        return self.shop

    def envelope_sender(self, message_id: str) -> str | None:
        """The SMTP envelope sender of the message with this Message-ID: its VERP bounce
        address, or None (the From address) without a bounce address."""
        if self.bounce_address is None:
            return None
        return verp_address(self.bounce_address, message_id)

    @property
    def message_id_domain(self) -> str:
        # Always the global sender's domain: a campaign's sender change never re-keys a notice.
        return envelope_address(self.mail_from).rpartition("@")[2] or "notifier.invalid"
