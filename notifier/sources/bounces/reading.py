"""One bounce message -> the feedback events it reports, or why it was not understood.

Standards first, then the detectors: an RFC 5965 abuse report (`arf`), an RFC 3464
delivery status notification (`dsn`), else whatever flufl.bounce's detectors find in a
non-standard bounce (`bounce`). Each event carries the original's Message-ID and the VERP
token where the bounce has them; the intake ties it to its notice by those, or by address.

An event's id is derived from the bounce's own Message-ID, the recipient and the kind: the
same bounce read twice (imported again, left in a mailbox by a crash) is stored once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import parsedate_to_datetime

from notifier.core.feedback import FeedbackEvent, content_id, normalize_message_id
from notifier.sources.bounces.arf import arf_outcomes, is_arf
from notifier.sources.bounces.detectors import DetectorFailed, detected_outcomes
from notifier.sources.bounces.dsn import dsn_outcomes, is_dsn
from notifier.sources.bounces.original import original_message_id, verp_token_of
from notifier.sources.bounces.outcome import Outcome, readable, unfolded

# The bounce's headers are kept with each event for audit, up to this much.
_PAYLOAD_CHARS = 8_000
_EARLIEST_YEAR = 1990


@dataclass(frozen=True, slots=True)
class NotUnderstood:
    """A message that is no bounce or report that notifier (or a detector) can read."""

    reason: str

    def __str__(self) -> str:
        return self.reason


def read_bounce(
    message: Message, *, received_at: datetime, bounce_address: str | None = None
) -> list[FeedbackEvent] | NotUnderstood:
    """The events `message` reports (an empty list: understood, nothing to record, e.g. a
    `not-spam` report), or NotUnderstood with the reason."""
    if is_arf(message):
        provider, outcomes = "arf", arf_outcomes(message)
    else:
        provider, outcomes = "dsn", dsn_outcomes(message) if is_dsn(message) else []
        if not outcomes:
            provider = "bounce"
            try:
                outcomes = detected_outcomes(message)
            except DetectorFailed as exc:
                return NotUnderstood(f"the bounce detectors failed on it ({exc}); {_seen(message)}")
            if not outcomes:
                return NotUnderstood(f"no bounce or complaint report found; {_seen(message)}")
    return _events(message, provider, outcomes, received_at, bounce_address)


def _events(
    message: Message,
    provider: str,
    outcomes: list[Outcome],
    received_at: datetime,
    bounce_address: str | None,
) -> list[FeedbackEvent]:
    identity = _identity(message)
    common = {
        "occurred_at": _date(message, received_at),
        "message_id": original_message_id(message),
        "verp_token": verp_token_of(message, bounce_address),
        "payload": _headers_text(message),
    }
    events: dict[str, FeedbackEvent] = {}
    for outcome in outcomes:
        event_id = content_id(provider, identity, outcome.recipient, outcome.kind.value)
        # A report may list one recipient several times (one block per attempt): one event.
        events.setdefault(
            event_id,
            FeedbackEvent(
                provider=provider,
                event_id=event_id,
                kind=outcome.kind,
                recipient=outcome.recipient,
                diagnostic=outcome.diagnostic,
                **common,  # type: ignore[arg-type]
            ),
        )
    return list(events.values())


def _identity(message: Message) -> str:
    """The bounce's own Message-ID; without one, a digest of its headers and text."""
    own = normalize_message_id(unfolded(message.get("Message-ID", "")))
    if own is not None:
        return own
    digest = hashlib.sha256(_headers_text(message).encode("utf-8", errors="replace"))
    body = message.get_payload()
    if isinstance(body, str):
        digest.update(body.encode("utf-8", errors="replace"))
    return f"sha256:{digest.hexdigest()}"


def _date(message: Message, received_at: datetime) -> datetime:
    """When the bounce was written (its Date), never later than it was received."""
    try:
        written = parsedate_to_datetime(unfolded(message.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        return received_at
    if written.year < _EARLIEST_YEAR:
        return received_at  # a two-digit year some old MTAs write ("101" for 2001)
    if written.tzinfo is None:
        written = written.replace(tzinfo=UTC)
    return min(written.astimezone(UTC), received_at)


def _headers_text(message: Message) -> str:
    text = "\n".join(f"{name}: {unfolded(value)}" for name, value in message.items())
    return text[:_PAYLOAD_CHARS]


def _seen(message: Message) -> str:
    sender = unfolded(message.get("From", "")) or "no From"
    subject = readable(message.get("Subject", "")) or "no Subject"
    return f"From: {sender[:100]}, Subject: {subject[:100]}"
