"""Amazon SES's feedback, as SNS delivers it: notifications (`notificationType` Bounce,
Complaint, Delivery) and event publishing (`eventType` Bounce, Complaint, Delivery,
DeliveryDelay; Send, Reject, Open, Click… are not feedback about a recipient and are ignored).

One SES notification names one message and may list several recipients: one event each.
The message is ours when SES was given the original headers (`mail.commonHeaders.messageId`,
or the Message-ID in `mail.headers`); SES's own `mail.messageId` is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from notifier.core.feedback import FeedbackEvent, FeedbackKind, content_id, normalize_message_id
from notifier.http.feedback.common import (
    Collected,
    Parsed,
    PayloadInvalid,
    address,
    iso_time,
    obj,
    optional_text,
)

PROVIDER = "ses"

# SES bounce types: Undetermined is SES not knowing; treated like a soft bounce, which
# suppresses only when it repeats.
_BOUNCE_KINDS = {
    "Permanent": FeedbackKind.BOUNCE_PERMANENT,
    "Transient": FeedbackKind.BOUNCE_TRANSIENT,
    "Undetermined": FeedbackKind.BOUNCE_TRANSIENT,
}
# type -> (the object holding the details, its list of recipients)
_SHAPES = {
    "Bounce": ("bounce", "bouncedRecipients"),
    "Complaint": ("complaint", "complainedRecipients"),
    "Delivery": ("delivery", "recipients"),
    "DeliveryDelay": ("deliveryDelay", "delayedRecipients"),
}


def parse_notification(value: Any, *, payload: str) -> Parsed:
    """The FeedbackEvents in one SES notification (the SNS Message, decoded)."""
    notification = obj(value, what="the SES notification")
    kind = notification.get("notificationType", notification.get("eventType"))
    if not isinstance(kind, str):
        raise PayloadInvalid("the SES notification has no notificationType or eventType")
    collected = Collected()
    if kind not in _SHAPES:
        collected.ignored += 1
        return collected.parsed()
    mail = obj(notification.get("mail"), what="the SES notification's mail")
    holder, listed = _SHAPES[kind]
    details = obj(notification.get(holder), what=f"the SES notification's {holder}")
    recipients = details.get(listed)
    if not isinstance(recipients, list) or not recipients:
        raise PayloadInvalid(f"the SES {holder} has no {listed}")
    occurred_at = iso_time(
        details.get("timestamp", mail.get("timestamp")), what=f"the SES {holder}'s timestamp"
    )
    message_id = _original_message_id(mail)
    feedback_kind, summary = _kind_and_summary(kind, details)
    reference = optional_text(details.get("feedbackId")) or optional_text(mail.get("messageId"))
    for index, entry in enumerate(recipients):
        recipient, said = _recipient(entry, what=f"{holder}.{listed}[{index}]")
        diagnostic = "; ".join(part for part in (summary, said) if part)
        collected.events.append(
            FeedbackEvent(
                provider=PROVIDER,
                # SES has no id per recipient: its feedback id (or message id), the type and
                # the address identify one, and a redelivery has the same.
                event_id=content_id(kind, reference, occurred_at.isoformat(), recipient.lower()),
                kind=feedback_kind,
                occurred_at=occurred_at,
                recipient=recipient,
                message_id=message_id,
                diagnostic=diagnostic,
                payload=payload,
            )
        )
    return collected.parsed()


def _kind_and_summary(kind: str, details: Mapping[str, Any]) -> tuple[FeedbackKind, str]:
    if kind == "Bounce":
        bounce_type = optional_text(details.get("bounceType")) or "Undetermined"
        sub_type = optional_text(details.get("bounceSubType"))
        summary = f"{bounce_type} bounce" + (f" ({sub_type})" if sub_type else "")
        return _BOUNCE_KINDS.get(bounce_type, FeedbackKind.BOUNCE_TRANSIENT), summary
    if kind == "Complaint":
        feedback_type = optional_text(details.get("complaintFeedbackType"))
        return FeedbackKind.COMPLAINT, f"complaint ({feedback_type})" if feedback_type else ""
    if kind == "Delivery":
        return FeedbackKind.DELIVERED, optional_text(details.get("smtpResponse")) or ""
    delay_type = optional_text(details.get("delayType"))
    return FeedbackKind.DEFERRED, f"delayed ({delay_type})" if delay_type else "delayed"


def _recipient(entry: Any, *, what: str) -> tuple[str, str]:
    """The address and what the remote server said about it. Delivery lists bare strings;
    the others objects with emailAddress (and status, diagnosticCode)."""
    if isinstance(entry, str):
        return address(entry, what=what), ""
    fields = obj(entry, what=what)
    recipient = address(fields.get("emailAddress"), what=f"{what}.emailAddress")
    said = [optional_text(fields.get(name)) for name in ("status", "diagnosticCode")]
    return recipient, " ".join(part for part in said if part)


def _original_message_id(mail: Mapping[str, Any]) -> str | None:
    common = mail.get("commonHeaders")
    if isinstance(common, dict):
        found = normalize_message_id(optional_text(common.get("messageId")))
        if found:
            return found
    headers = mail.get("headers")
    if isinstance(headers, list):
        for header in headers:
            if isinstance(header, dict) and str(header.get("name", "")).lower() == "message-id":
                found = normalize_message_id(optional_text(header.get("value")))
                if found:
                    return found
    return None
