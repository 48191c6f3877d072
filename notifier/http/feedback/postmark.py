"""Postmark's webhooks: Bounce, SpamComplaint and Delivery records, behind HTTP Basic auth.

Postmark's `MessageID` is its own id, not the message's Message-ID header. A bounce's
`Content` (the full bounce message, when the webhook is set to include it) usually returns
the original headers: their Message-ID ties the event to its notice. Otherwise the event
carries only the recipient, and the intake matches it by address.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import hmac
import re
from collections.abc import Mapping
from email.message import Message
from typing import Any

from notifier.core.feedback import FeedbackEvent, FeedbackKind, content_id, normalize_message_id
from notifier.http.feedback.common import (
    Collected,
    Parsed,
    PayloadInvalid,
    Unverified,
    address,
    iso_time,
    obj,
    optional_text,
    text,
)

PROVIDER = "postmark"

# Postmark's bounce Types (its Bounce API's list). Not here — AutoResponder, AddressChange,
# Subscribe, Unsubscribe, ChallengeVerification, OpenRelayTest, VirusNotification,
# DMARCPolicy (the sender's problem, not the address's), TemplateRenderingFailed,
# SMTPApiError, InboundError, Unknown: not about the recipient's mailbox, ignored.
_BOUNCE_TYPES = {
    "HardBounce": FeedbackKind.BOUNCE_PERMANENT,
    "BadEmailAddress": FeedbackKind.BOUNCE_PERMANENT,
    "ManuallyDeactivated": FeedbackKind.BOUNCE_PERMANENT,
    "SoftBounce": FeedbackKind.BOUNCE_TRANSIENT,
    "Transient": FeedbackKind.BOUNCE_TRANSIENT,
    "DnsError": FeedbackKind.BOUNCE_TRANSIENT,
    "Blocked": FeedbackKind.BOUNCE_TRANSIENT,
    "SpamNotification": FeedbackKind.BOUNCE_TRANSIENT,
    "SpamComplaint": FeedbackKind.COMPLAINT,
}
_MESSAGE_ID_LINE = re.compile(r"^Message-ID:[ \t]*(<[^<>\s]+>)", re.IGNORECASE | re.MULTILINE)
MAX_CONTENT_CHARS = 256 * 1024  # a bounce dump beyond this is not searched for headers


def check_basic_auth(header: str | None, *, user: str, password: str) -> None:
    """Unverified unless `Authorization: Basic` carries exactly this user and password
    (compared in constant time, both always)."""
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise Unverified("missing HTTP Basic credentials (Authorization: Basic …)")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Unverified("the Basic credentials are not base64") from None
    given_user, colon, given_password = decoded.partition(b":")
    same_user = hmac.compare_digest(given_user, user.encode("utf-8"))
    same_password = hmac.compare_digest(given_password, password.encode("utf-8"))
    if not (colon and same_user and same_password):
        raise Unverified("wrong Basic credentials")


def parse_record(value: Any, *, payload: str) -> Parsed:
    """The FeedbackEvent in one Postmark webhook record (none for Open, Click…)."""
    record = obj(value, what="the Postmark record")
    record_type = optional_text(record.get("RecordType"))
    collected = Collected()
    if record_type == "Delivery":
        collected.events.append(_delivery(record, payload))
    elif record_type in ("Bounce", "SpamComplaint"):
        bounce_type = text(record.get("Type"), what="the Postmark record's Type")
        kind = _BOUNCE_TYPES.get(bounce_type)
        if kind is None:
            collected.ignored += 1
        else:
            collected.events.append(_bounce(record, kind, bounce_type, payload))
    elif record_type is None:
        raise PayloadInvalid("the Postmark record has no RecordType")
    else:
        collected.ignored += 1
    return collected.parsed()


def _bounce(
    record: Mapping[str, Any], kind: FeedbackKind, bounce_type: str, payload: str
) -> FeedbackEvent:
    occurred_at = iso_time(record.get("BouncedAt"), what="the Postmark record's BouncedAt")
    recipient = address(record.get("Email"), what="the Postmark record's Email")
    said = [optional_text(record.get(name)) for name in ("Description", "Details")]
    postmark_id = optional_text(record.get("ID"))
    content = record.get("Content")
    return FeedbackEvent(
        provider=PROVIDER,
        event_id=f"bounce:{postmark_id}"
        if postmark_id
        else content_id(bounce_type, optional_text(record.get("MessageID")), recipient),
        kind=kind,
        occurred_at=occurred_at,
        recipient=recipient,
        message_id=returned_message_id(content) if isinstance(content, str) else None,
        diagnostic=f"{bounce_type}: " + " ".join(part for part in said if part),
        payload=payload,
    )


def _delivery(record: Mapping[str, Any], payload: str) -> FeedbackEvent:
    occurred_at = iso_time(record.get("DeliveredAt"), what="the Postmark record's DeliveredAt")
    recipient = address(record.get("Recipient"), what="the Postmark record's Recipient")
    postmark_message = optional_text(record.get("MessageID"))
    return FeedbackEvent(
        provider=PROVIDER,
        # Deliveries have no id of their own: one per message and recipient.
        event_id=content_id("Delivery", postmark_message, recipient.lower()),
        kind=FeedbackKind.DELIVERED,
        occurred_at=occurred_at,
        recipient=recipient,
        diagnostic=optional_text(record.get("Details")) or "",
        payload=payload,
    )


def returned_message_id(content: str) -> str | None:
    """The original message's Message-ID in a bounce message: from its returned message or
    headers part (RFC 3464), else from a Message-ID line in its body — never the bounce's
    own Message-ID (in its top headers)."""
    content = content[:MAX_CONTENT_CHARS]
    bounce = email.message_from_string(content, policy=email.policy.compat32)
    for part in bounce.walk():
        found = _returned_in(part)
        if found:
            return found
    _, _, body = content.replace("\r\n", "\n").partition("\n\n")
    match = _MESSAGE_ID_LINE.search(body)
    return normalize_message_id(match.group(1)) if match else None


def _returned_in(part: Message) -> str | None:
    media = part.get_content_type()
    if media == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], Message):
            return normalize_message_id(str(inner[0].get("Message-ID", "")))
    if media == "text/rfc822-headers":
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            headers = email.message_from_bytes(payload, policy=email.policy.compat32)
            return normalize_message_id(str(headers.get("Message-ID", "")))
    return None
