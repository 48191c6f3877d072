"""A notice's email built again now, where its sent copy is not kept (the console and the
notices API show it so, saying it is today's rendering, not the bytes that went out)."""

from __future__ import annotations

import logging
from email.message import EmailMessage

from notifier.core.models import Notice, message_id_for
from notifier.engine.engine import Engine
from notifier.errors import NotifierError

log = logging.getLogger("notifier.rerender")


class CannotRerender(NotifierError):
    """Why the email cannot be built today (its rule gone, its template broken...)."""


def rerender(engine: Engine, notice: Notice) -> EmailMessage:
    """The email as delivery would build it now: today's rules and templates, the order as the
    ledger knows it now, dated when it was sent. Raises CannotRerender saying why not."""
    rule = engine.rules_by_id.get(notice.rule_id)
    if rule is None:
        raise CannotRerender(f"its rule {notice.rule_id!r} is no longer in the rules folder")
    if notice.recipient is None:
        raise CannotRerender("it has no recipient address")
    order = engine.store.orders({notice.order_id}).get(notice.order_id)
    if order is None:
        raise CannotRerender(f"order {notice.order_id!r} is not in the ledger")
    message_id = message_id_for(notice.key, engine.config.branding.message_id_domain)
    try:
        return engine.composer.compose(
            notice, rule, order, message_id=message_id, now=notice.sent_at or engine.clock()
        )
    except NotifierError as exc:
        raise CannotRerender(f"it does not render today: {exc}") from None
    except Exception as exc:
        # As in delivery (Engine._prepare): data no one foresaw must not become a crash.
        log.exception("notice %s: could not build its message again", notice.key)
        raise CannotRerender(f"its message cannot be built: {type(exc).__name__}") from None
