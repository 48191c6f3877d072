"""The feedback endpoints' request bodies in the OpenAPI schema: the providers' shapes,
loosely (the fields notifier reads; providers add others, which are allowed)."""

from __future__ import annotations

from typing import Any


def _json_body(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": schema}},
        }
    }


_STRING = {"type": "string"}
_SNS_MESSAGE = {
    "type": "object",
    "description": "An SNS HTTP(S) delivery (sent as text/plain; any content type is read)",
    "required": ["Type", "MessageId", "TopicArn", "Message", "Timestamp", "Signature"],
    "properties": {
        "Type": {
            "type": "string",
            "enum": ["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"],
        },
        "MessageId": _STRING,
        "TopicArn": _STRING,
        "Subject": _STRING,
        "Message": {"type": "string", "description": "the SES notification, as JSON text"},
        "Timestamp": {"type": "string", "format": "date-time"},
        "SignatureVersion": {"type": "string", "enum": ["1", "2"]},
        "Signature": _STRING,
        "SigningCertURL": _STRING,
        "SubscribeURL": _STRING,
        "Token": _STRING,
    },
}
_POSTMARK_RECORD = {
    "type": "object",
    "required": ["RecordType"],
    "properties": {
        "RecordType": {"type": "string", "enum": ["Bounce", "SpamComplaint", "Delivery"]},
        "ID": {"type": "integer"},
        "Type": {"type": "string", "example": "HardBounce"},
        "MessageID": _STRING,
        "Email": _STRING,
        "Recipient": _STRING,
        "BouncedAt": {"type": "string", "format": "date-time"},
        "DeliveredAt": {"type": "string", "format": "date-time"},
        "Description": _STRING,
        "Details": _STRING,
        "Content": {"type": "string", "description": "the bounce message (original headers)"},
    },
}
_SENDGRID_EVENT = {
    "type": "object",
    "required": ["event", "email", "timestamp"],
    "properties": {
        "event": {"type": "string", "example": "bounce"},
        "email": _STRING,
        "timestamp": {"type": "integer"},
        "smtp-id": _STRING,
        "sg_event_id": _STRING,
        "type": {"type": "string", "enum": ["bounce", "blocked"]},
        "reason": _STRING,
        "status": _STRING,
        "response": _STRING,
    },
}
_MAILGUN_EVENT = {
    "type": "object",
    "required": ["signature", "event-data"],
    "properties": {
        "signature": {
            "type": "object",
            "required": ["timestamp", "token", "signature"],
            "properties": {"timestamp": _STRING, "token": _STRING, "signature": _STRING},
        },
        "event-data": {
            "type": "object",
            "required": ["event"],
            "properties": {
                "event": {"type": "string", "example": "failed"},
                "severity": {"type": "string", "enum": ["permanent", "temporary"]},
                "id": _STRING,
                "timestamp": {"type": "number"},
                "recipient": _STRING,
                "message": {"type": "object"},
            },
        },
    },
}

BODIES: dict[str, dict[str, Any]] = {
    "ses": _json_body("An SNS message carrying SES feedback", _SNS_MESSAGE),
    "postmark": _json_body("One Postmark webhook record", _POSTMARK_RECORD),
    "sendgrid": _json_body(
        "SendGrid Event Webhook events", {"type": "array", "items": _SENDGRID_EVENT}
    ),
    "mailgun": _json_body("One Mailgun webhook event", _MAILGUN_EVENT),
}
