"""Mailgun's webhooks: one event per POST, `signature` {timestamp, token, signature} beside
`event-data`. The signature is the hex HMAC-SHA256 of timestamp + token under the domain's
HTTP webhook signing key; a token is good once (kept in a bounded set: older tokens are
refused by their time anyway).

Feedback events: failed (severity permanent or temporary), complained, delivered; accepted,
opened, clicked, unsubscribed… are counted as ignored. Mailgun reports the Message-ID
without angle brackets.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from notifier.core.feedback import FeedbackEvent, FeedbackKind, content_id, normalize_message_id
from notifier.http.feedback.common import (
    FRESHNESS_SECONDS,
    Collected,
    Parsed,
    PayloadInvalid,
    Unverified,
    address,
    check_fresh,
    obj,
    optional_text,
    text,
    unix_time,
)

PROVIDER = "mailgun"
REMEMBERED_TOKENS = 100_000  # far more than arrive within the freshness window
_MAX_FIELD_CHARS = 200


class TokenLedger:
    """Mailgun tokens already accepted, the oldest forgotten first once past the bound."""

    def __init__(self, limit: int = REMEMBERED_TOKENS) -> None:
        self.limit = limit
        self._seen: OrderedDict[str, datetime] = OrderedDict()
        self._lock = threading.Lock()

    def first_use(self, token: str, signed_at: datetime) -> bool:
        """Record `token`; False if it was seen before (a replay)."""
        with self._lock:
            if token in self._seen:
                return False
            self._seen[token] = signed_at
            while len(self._seen) > self.limit:
                self._seen.popitem(last=False)
            # Tokens signed before the window can never verify again: forget them early.
            while self._seen:
                oldest_token, oldest_at = next(iter(self._seen.items()))
                if (signed_at - oldest_at).total_seconds() <= 2 * FRESHNESS_SECONDS:
                    break
                del self._seen[oldest_token]
            return True


def verify(value: Any, *, key: str, tokens: TokenLedger, now: datetime) -> None:
    """Unverified unless the body's `signature` is the key's, recent, and not seen before."""
    if not isinstance(value, dict) or not isinstance(value.get("signature"), dict):
        raise Unverified("no Mailgun signature object in the body")
    fields = value["signature"]
    parts = [fields.get(name) for name in ("timestamp", "token", "signature")]
    if not all(isinstance(p, str | int) and not isinstance(p, bool) for p in parts):
        raise Unverified("the Mailgun signature needs timestamp, token and signature")
    timestamp, token, signature = (str(p).strip() for p in parts)
    if any(not p or len(p) > _MAX_FIELD_CHARS for p in (timestamp, token, signature)):
        raise Unverified("the Mailgun signature's fields are empty or too long")
    expected = hmac.new(
        key.encode("utf-8"), (timestamp + token).encode("utf-8"), hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), signature.lower().encode("utf-8")):
        raise Unverified("the Mailgun signature does not match (wrong signing key?)")
    signed_at = unix_time(timestamp, what="the Mailgun signature's timestamp", error=Unverified)
    check_fresh(signed_at, now, what="the Mailgun signature's timestamp")
    if not tokens.first_use(token, signed_at):
        raise Unverified("this Mailgun signature token was used before: a replay")


def parse_event(value: Any, *, payload: str) -> Parsed:
    """The FeedbackEvent in a verified Mailgun webhook body (none for opens, clicks…)."""
    data = obj(obj(value, what="the body").get("event-data"), what="event-data")
    name = text(data.get("event"), what="event-data.event")
    collected = Collected()
    kind = _kind(name, data)
    if kind is None:
        collected.ignored += 1
        return collected.parsed()
    recipient = address(data.get("recipient"), what="event-data.recipient")
    occurred_at = unix_time(data.get("timestamp"), what="event-data.timestamp")
    message = data.get("message")
    headers = message.get("headers") if isinstance(message, dict) else None
    raw_id = optional_text(headers.get("message-id")) if isinstance(headers, dict) else None
    collected.events.append(
        FeedbackEvent(
            provider=PROVIDER,
            event_id=optional_text(data.get("id"))
            or content_id(name, raw_id, recipient.lower(), occurred_at.isoformat()),
            kind=kind,
            occurred_at=occurred_at,
            recipient=recipient,
            message_id=normalize_message_id(raw_id),
            diagnostic=_diagnostic(data),
            payload=payload,
        )
    )
    return collected.parsed()


def _kind(name: str, data: Mapping[str, Any]) -> FeedbackKind | None:
    if name == "failed":
        severity = optional_text(data.get("severity"))
        if severity == "permanent":
            return FeedbackKind.BOUNCE_PERMANENT
        if severity == "temporary":
            return FeedbackKind.BOUNCE_TRANSIENT
        raise PayloadInvalid(f"event-data.severity must be permanent or temporary: {severity!r}")
    return {"complained": FeedbackKind.COMPLAINT, "delivered": FeedbackKind.DELIVERED}.get(name)


def _diagnostic(data: Mapping[str, Any]) -> str:
    status = data.get("delivery-status")
    said: list[str | None] = [optional_text(data.get("reason"))]
    if isinstance(status, dict):
        said += [optional_text(status.get(f)) for f in ("code", "message", "description")]
    return " ".join(part for part in said if part)
