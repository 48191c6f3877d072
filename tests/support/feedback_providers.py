"""The mail providers' side of the feedback webhooks, with real keys made here: an RSA key
and its self-signed certificate served over HTTP for SNS, an ECDSA P-256 key for SendGrid,
an HMAC key for Mailgun, Basic credentials for Postmark."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from support.certificates import self_signed

TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-feedback"
POSTMARK_USER = "postmark"
POSTMARK_PASSWORD = "test-postmark-password"
MAILGUN_KEY = "test-mailgun-signing-key"
SNS_COMMON_NAME = "sns.test.invalid"


class SnsSide:
    """SNS as the test plays it: a signing key, its certificate served by a real HTTP server
    on 127.0.0.1 (port 0), and the subscription confirmations it was sent."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = self_signed(self.key, common_name=SNS_COMMON_NAME)
        self.confirmations: list[str] = []
        self.certificate_fetches = 0
        side = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/cert"):
                    side.certificate_fetches += 1
                    self._answer(200, side.pem)
                elif self.path.startswith("/confirm"):
                    side.confirmations.append(self.path)
                    self._answer(200, b"<ConfirmSubscriptionResponse/>")
                else:
                    self._answer(404, b"")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def cert_url(self) -> str:
        return f"{self.base}/cert/SimpleNotificationService-test.pem"

    @property
    def url_pattern(self) -> str:
        return rf"^{self.base.replace('.', '[.]')}/"

    def __enter__(self) -> SnsSide:
        self.thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()

    def notification(
        self,
        ses_notification: dict[str, Any],
        *,
        at: datetime | None = None,
        version: str = "1",
        cert_url: str | None = None,
        topic: str = TOPIC,
        message_id: str | None = None,
    ) -> dict[str, Any]:
        message = {
            "Type": "Notification",
            "MessageId": message_id or str(uuid.uuid4()),
            "TopicArn": topic,
            "Message": json.dumps(ses_notification),
            "Timestamp": _sns_time(at),
            "SignatureVersion": version,
            "SigningCertURL": cert_url or self.cert_url,
            "UnsubscribeURL": f"{self.base}/unsubscribe",
        }
        return self.signed(message)

    def subscription_confirmation(self, *, topic: str = TOPIC) -> dict[str, Any]:
        token = uuid.uuid4().hex
        message = {
            "Type": "SubscriptionConfirmation",
            "MessageId": str(uuid.uuid4()),
            "Token": token,
            "TopicArn": topic,
            "Message": f"You have chosen to subscribe to the topic {topic}.",
            "SubscribeURL": f"{self.base}/confirm?Action=ConfirmSubscription&Token={token}",
            "Timestamp": _sns_time(None),
            "SignatureVersion": "1",
            "SigningCertURL": self.cert_url,
        }
        return self.signed(message)

    def signed(self, message: dict[str, Any]) -> dict[str, Any]:
        """`message` with its Signature, made the way SNS documents it."""
        if message["Type"] == "Notification":
            names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
        else:
            names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn"]
            names.append("Type")
        text = "".join(f"{n}\n{message[n]}\n" for n in names if n in message)
        digest = hashes.SHA1() if message["SignatureVersion"] == "1" else hashes.SHA256()
        signature = self.key.sign(text.encode(), padding.PKCS1v15(), digest)
        return {**message, "Signature": base64.b64encode(signature).decode()}


def _sns_time(at: datetime | None) -> str:
    moment = at or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def ses_bounce(recipient: str, message_id: str | None, *, bounce_type: str = "Permanent") -> Any:
    """An SES Bounce notification (as in the SES docs) for one recipient of our message."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    common: dict[str, Any] = {"to": [recipient], "subject": "Your order"}
    if message_id:
        common["messageId"] = message_id
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {
                    "emailAddress": recipient,
                    "status": "5.1.1",
                    "action": "failed",
                    "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                }
            ],
            "timestamp": now,
            "feedbackId": f"0100018{uuid.uuid4().hex}-000000",
        },
        "mail": {
            "timestamp": now,
            "source": "orders@example.com",
            "messageId": f"0100018{uuid.uuid4().hex}-000000",
            "destination": [recipient],
            "headersTruncated": False,
            "commonHeaders": common,
        },
    }


class SendgridSide:
    """SendGrid's Signed Event Webhook: an ECDSA P-256 key; the public half as SendGrid shows it."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        der = self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: bytes, *, at: datetime | None = None) -> dict[str, str]:
        timestamp = str(int((at or datetime.now(UTC)).timestamp()))
        signature = self.key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }


def sendgrid_bounce(recipient: str, message_id: str | None, *, event_id: str | None = None) -> Any:
    event: dict[str, Any] = {
        "email": recipient,
        "timestamp": int(datetime.now(UTC).timestamp()),
        "event": "bounce",
        "type": "bounce",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist",
        "status": "5.1.1",
        "sg_event_id": event_id or base64.b64encode(uuid.uuid4().bytes).decode(),
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    }
    if message_id:
        event["smtp-id"] = message_id
    return [event]


def mailgun_signed(
    event_data: dict[str, Any], *, at: datetime | None = None, token: str | None = None
) -> dict[str, Any]:
    timestamp = str(int((at or datetime.now(UTC)).timestamp()))
    token = token or uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new(
        MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    return {
        "signature": {"timestamp": timestamp, "token": token, "signature": signature},
        "event-data": event_data,
    }


def mailgun_failure(recipient: str, message_id: str | None, *, event_id: str | None = None) -> Any:
    headers = {"to": recipient, "subject": "Your order"}
    if message_id:
        headers["message-id"] = message_id.strip("<>")  # Mailgun reports it without brackets
    return {
        "event": "failed",
        "id": event_id or uuid.uuid4().hex[:22],
        "timestamp": datetime.now(UTC).timestamp(),
        "severity": "permanent",
        "reason": "bounce",
        "delivery-status": {"code": 550, "message": "5.1.1 No such user", "description": ""},
        "message": {"headers": headers},
        "recipient": recipient,
    }


def postmark_auth(user: str = POSTMARK_USER, password: str = POSTMARK_PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def postmark_bounce(recipient: str, message_id: str | None, *, bounce_id: int = 0) -> Any:
    """A HardBounce record; with `message_id`, its Content returns the original headers."""
    content = ""
    if message_id:
        content = (
            "From: MAILER-DAEMON@mx.example.net\r\nSubject: Undelivered Mail\r\n"
            "Message-ID: <bounce-1@mx.example.net>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\n550 5.1.1 User unknown\r\n"
            "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"To: {recipient}\r\nMessage-ID: {message_id}\r\n\r\n--b--\r\n"
        )
    return {
        "RecordType": "Bounce",
        "MessageStream": "outbound",
        "ID": bounce_id or uuid.uuid4().int % 10**15,
        "Type": "HardBounce",
        "TypeCode": 1,
        "Name": "Hard bounce",
        "MessageID": str(uuid.uuid4()),
        "Description": "The server was unable to deliver your message (ex: unknown user).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
        "Email": recipient,
        "From": "orders@example.com",
        "BouncedAt": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "DumpAvailable": True,
        "Inactive": True,
        "CanActivate": True,
        "Subject": "Your order",
        "Content": content,
    }
