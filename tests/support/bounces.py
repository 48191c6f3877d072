"""Bounce messages as MTAs write them (a Postfix-style RFC 3464 DSN) about a test's own
notice, and the real-world samples in tests/data/bounces."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.message import Message
from email.utils import format_datetime, make_msgid

from support.project import ROOT

SAMPLES = ROOT / "tests" / "data" / "bounces"
_BOUNDARY = "C0FFEE.1764633600/mx.customer.example"


def dsn(
    *,
    to: str,
    recipient: str,
    action: str = "failed",
    status: str = "5.1.1",
    returned: bytes | None = None,
    headers_only: bool = False,
    when: datetime | None = None,
) -> bytes:
    """A DSN to `to` (the bounced message's envelope sender) about `recipient`. With
    `returned` (the original's bytes) the original, or with `headers_only` its headers, come
    back in it; without, nothing of the original does (VERP is then all that ties it)."""
    date = format_datetime(when or datetime.now(UTC))
    parts = [
        "Content-Description: Notification\nContent-Type: text/plain; charset=us-ascii\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients.\n\n"
        f"<{recipient}>: host mx.customer.example said: 550 5.1.1 User unknown\n",
        "Content-Description: Delivery report\nContent-Type: message/delivery-status\n\n"
        f"Reporting-MTA: dns; mx.customer.example\nArrival-Date: {date}\n\n"
        f"Final-Recipient: rfc822; {recipient}\nOriginal-Recipient: rfc822;{recipient}\n"
        f"Action: {action}\nStatus: {status}\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: Recipient address rejected:\n"
        "    User unknown in virtual mailbox table\n",
    ]
    if returned is not None:
        original = returned.decode("ascii").replace("\r\n", "\n")
        if headers_only:
            head = original.split("\n\n", 1)[0]
            parts.append(f"Content-Type: text/rfc822-headers\n\n{head}\n")
        else:
            parts.append(f"Content-Type: message/rfc822\n\n{original}")
    body = "".join(f"--{_BOUNDARY}\n{part}\n" for part in parts) + f"--{_BOUNDARY}--\n"
    head = (
        "From: MAILER-DAEMON@mx.customer.example (Mail Delivery System)\n"
        f"To: {to}\nSubject: Undelivered Mail Returned to Sender\nDate: {date}\n"
        f"Message-ID: {make_msgid(domain='mx.customer.example')}\nMIME-Version: 1.0\n"
        "Auto-Submitted: auto-replied\n"
        f'Content-Type: multipart/report; report-type=delivery-status;\n boundary="{_BOUNDARY}"\n'
    )
    return f"{head}\n{body}".encode("ascii")


def sample_names() -> list[str]:
    return sorted(p.name for p in SAMPLES.glob("*.eml"))


def sample(name: str) -> Message:
    return email.message_from_bytes((SAMPLES / name).read_bytes())
