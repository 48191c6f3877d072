"""SendGrid's signed Event Webhook: a JSON array of events, ECDSA P-256 signed.

The signature (base64 DER, `X-Twilio-Email-Event-Webhook-Signature`) is over the timestamp
header's text followed by the raw body, with SHA-256; the public key is the base64 DER
SubjectPublicKeyInfo SendGrid shows when signing is switched on. Feedback events: bounce
(`type` bounce: permanent; blocked: transient), dropped, deferred, spamreport, delivered;
processed, open, click and the (un)subscribe events are counted as ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from notifier.core.feedback import FeedbackEvent, FeedbackKind, content_id, normalize_message_id
from notifier.errors import ConfigError
from notifier.http.feedback.common import (
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

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
MAX_EVENTS = 10_000  # SendGrid batches up to a few thousand per POST
_MAX_SIGNATURE_CHARS = 200  # a base64 DER P-256 signature is ~96

_SIMPLE_KINDS = {
    "dropped": FeedbackKind.BOUNCE_PERMANENT,  # SendGrid will not send to it (its own list)
    "deferred": FeedbackKind.DEFERRED,
    "spamreport": FeedbackKind.COMPLAINT,
    "delivered": FeedbackKind.DELIVERED,
}


def load_public_key(value: str) -> ec.EllipticCurvePublicKey:
    """The verification key from NOTIFIER_SENDGRID_WEBHOOK_PUBLIC_KEY; ConfigError if it is
    not a base64 DER P-256 public key."""
    try:
        key = load_der_public_key(base64.b64decode("".join(value.split()), validate=True))
    except (binascii.Error, ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            "NOTIFIER_SENDGRID_WEBHOOK_PUBLIC_KEY is not a base64 DER public key"
            " (paste the key SendGrid shows under Signed Event Webhook)"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ConfigError("NOTIFIER_SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA P-256 key")
    return key


def verify(
    key: ec.EllipticCurvePublicKey,
    *,
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    now: datetime,
) -> None:
    """Unverified unless the signature is the key's over timestamp + body, signed recently."""
    if not signature or not timestamp:
        raise Unverified(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}")
    if len(signature) > _MAX_SIGNATURE_CHARS or len(timestamp) > 20:
        raise Unverified("the SendGrid signature headers are too long")
    signed_at = unix_time(timestamp, what=TIMESTAMP_HEADER, error=Unverified)
    try:
        der = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Unverified(f"{SIGNATURE_HEADER} is not base64") from None
    try:
        key.verify(der, timestamp.encode("ascii") + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, UnicodeEncodeError):
        raise Unverified(f"{SIGNATURE_HEADER} does not match the body") from None
    # After the signature: a stale time on a forged request is a forgery, not a replay.
    check_fresh(signed_at, now, what=TIMESTAMP_HEADER)


def parse_events(value: Any) -> Parsed:
    """The FeedbackEvents in one Event Webhook POST (a JSON array)."""
    if not isinstance(value, list):
        raise PayloadInvalid("the SendGrid Event Webhook body must be a JSON array")
    if len(value) > MAX_EVENTS:
        raise PayloadInvalid(f"{len(value)} events: at most {MAX_EVENTS} per request")
    collected = Collected()
    for index, item in enumerate(value):
        event = _event(obj(item, what=f"event #{index}"), index)
        if event is None:
            collected.ignored += 1
        else:
            collected.events.append(event)
    return collected.parsed()


def _event(item: Mapping[str, Any], index: int) -> FeedbackEvent | None:
    name = text(item.get("event"), what=f"event #{index}'s event")
    diagnostic = " ".join(
        part
        for part in (optional_text(item.get(f)) for f in ("status", "reason", "response"))
        if part
    )
    if name == "bounce":
        # `type` is "bounce" (the address is refused) or "blocked" (the server refused us,
        # for now); older payloads have no type: a bounce.
        blocked = optional_text(item.get("type")) == "blocked"
        kind = FeedbackKind.BOUNCE_TRANSIENT if blocked else FeedbackKind.BOUNCE_PERMANENT
        classification = optional_text(item.get("bounce_classification"))
        if classification:
            diagnostic = f"{classification}: {diagnostic}" if diagnostic else classification
    elif name in _SIMPLE_KINDS:
        kind = _SIMPLE_KINDS[name]
        if name == "dropped":
            diagnostic = f"dropped: {diagnostic}" if diagnostic else "dropped"
    else:
        return None
    recipient = address(item.get("email"), what=f"event #{index}'s email")
    occurred_at = unix_time(item.get("timestamp"), what=f"event #{index}'s timestamp")
    smtp_id = optional_text(item.get("smtp-id"))
    event_id = optional_text(item.get("sg_event_id")) or content_id(
        name, smtp_id, recipient.lower(), occurred_at.isoformat()
    )
    return FeedbackEvent(
        provider=PROVIDER,
        event_id=event_id,
        kind=kind,
        occurred_at=occurred_at,
        recipient=recipient,
        message_id=normalize_message_id(smtp_id),
        diagnostic=diagnostic,
        payload=_compact(item),
    )


def _compact(item: Mapping[str, Any]) -> str:
    """One event's JSON, its audit copy (the request holds many)."""
    return json.dumps(item, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
