"""What the mail providers say happened after the SMTP handoff, as values (docs/design.md §9).

Every source of feedback — a provider's webhook, a bounce message (DSN, ARF), a bounce mailbox
— turns what it received into `FeedbackEvent`s; one intake (notifier.engine.feedback) ties each
to its notice, stores it once and applies the suppression policy. Nothing here does I/O.
"""

from __future__ import annotations

import enum
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


class FeedbackKind(enum.StrEnum):
    """What happened to a sent message, in the providers' common terms."""

    DELIVERED = "delivered"
    BOUNCE_PERMANENT = "bounce-permanent"
    BOUNCE_TRANSIENT = "bounce-transient"
    COMPLAINT = "complaint"
    DEFERRED = "deferred"

    @property
    def verdict(self) -> str:
        """The word shown beside `sent` in `notifier notices` and the console."""
        return _VERDICTS[self]


_VERDICTS = {
    FeedbackKind.DELIVERED: "delivered",
    FeedbackKind.BOUNCE_PERMANENT: "bounced",
    FeedbackKind.BOUNCE_TRANSIENT: "soft-bounced",
    FeedbackKind.COMPLAINT: "complained",
    FeedbackKind.DEFERRED: "deferred",
}

# A later verdict replaces an earlier one unless it ranks lower: a complaint after a delivery
# is what the operator must see, a "deferred" after a bounce is not news.
VERDICT_RANK = {
    FeedbackKind.DEFERRED: 0,
    FeedbackKind.DELIVERED: 1,
    FeedbackKind.BOUNCE_TRANSIENT: 2,
    FeedbackKind.BOUNCE_PERMANENT: 3,
    FeedbackKind.COMPLAINT: 4,
}


class MatchedBy(enum.StrEnum):
    """How an event was tied to its notice, most certain first."""

    MESSAGE_ID = "message-id"
    VERP = "verp"
    ADDRESS = "address"  # the latest notice sent to the recipient within the window
    NONE = "unmatched"


@dataclass(frozen=True, slots=True)
class FeedbackEvent:
    """One thing a provider (or a bounce message) reported about one recipient of one message.

    `provider` with `event_id` identify the event: providers redeliver, and a redelivery is
    stored once. Where the provider gives no id, `content_id` derives one from what was sent.
    """

    provider: str  # ses | postmark | sendgrid | mailgun | dsn | arf | bounce
    event_id: str
    kind: FeedbackKind
    occurred_at: datetime
    recipient: str | None
    message_id: str | None = None  # of the original message, in angle brackets as sent
    verp_token: str | None = None  # from the bounce address (VERP), when the envelope had one
    diagnostic: str = ""  # the remote server's words, or the provider's description
    payload: str = ""  # what was received, for audit (JSON text, or the message's headers)


@dataclass(frozen=True, slots=True)
class StoredFeedback:
    """A feedback event as the ledger holds it, tied (or not) to a notice."""

    event: FeedbackEvent
    notice_key: str | None
    matched_by: MatchedBy
    received_at: datetime


def content_id(*parts: str | None) -> str:
    """An event id for a source that gives none: the same report read twice has the same id."""
    digest = hashlib.sha256("\x1f".join(p or "" for p in parts).encode()).hexdigest()
    return digest[:32]


_ANGLE = re.compile(r"<([^<>\s]+)>")


def normalize_message_id(value: str | None) -> str | None:
    """A Message-ID as notifier writes it (`<local@domain>`), from the forms providers report:
    with or without angle brackets, with surrounding spaces, several in a References list."""
    if not value:
        return None
    found = _ANGLE.search(value)
    bare = found.group(1) if found else value.strip()
    if not bare or any(c.isspace() for c in bare) or "@" not in bare:
        return None
    return f"<{bare}>"


# --- VERP ------------------------------------------------------------------------------------


def verp_token(message_id: str) -> str:
    """The token carried in a notice's bounce address: the local part of its Message-ID
    (already a digest of the notice key), so a DSN without the original headers maps back."""
    return message_id.strip("<>").split("@", 1)[0]


def verp_address(bounce_address: str, message_id: str) -> str:
    """`bounces@shop.example` + a notice's Message-ID -> `bounces+<token>@shop.example`."""
    local, _, domain = bounce_address.rpartition("@")
    return f"{local}+{verp_token(message_id)}@{domain}"


_VERP_TOKEN = re.compile(r"^[0-9a-f]{16,64}$")


def token_from_verp(bounce_address: str, address: str | None) -> str | None:
    """The token in `address` if it is `bounce_address` with one (case-insensitive), else None."""
    if not address:
        return None
    local, _, domain = bounce_address.rpartition("@")
    got_local, _, got_domain = address.strip().strip("<>").rpartition("@")
    if got_domain.casefold() != domain.casefold():
        return None
    base, plus, token = got_local.partition("+")
    if not plus or base.casefold() != local.casefold():
        return None
    token = token.lower()
    return token if _VERP_TOKEN.match(token) else None


# --- suppression -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SuppressionPolicy:
    """Which feedback stops mail to an address (settings NOTIFIER_FEEDBACK_*).

    Only an event tied to a notice suppresses: a bounce for mail notifier never sent (another
    system's, or backscatter from spam forged with a customer's address) says nothing about
    the address notifier mails, and must not silence a customer's shipping emails.
    """

    on_permanent_bounce: bool = True
    on_complaint: bool = True
    transient_limit: int = 3  # transient bounces within the window that suppress; 0: never
    transient_window: timedelta = timedelta(days=7)

    def reason(self, event: FeedbackEvent, transient_in_window: int) -> str | None:
        """Why this event suppresses its recipient, or None. `transient_in_window` counts the
        recipient's transient bounces within the window, this one included."""
        where = f"{event.provider} {event.kind.value} at {event.occurred_at:%Y-%m-%d %H:%M} UTC"
        said = f": {event.diagnostic[:200]}" if event.diagnostic else ""
        if event.kind is FeedbackKind.BOUNCE_PERMANENT and self.on_permanent_bounce:
            return f"{where}{said}"
        if event.kind is FeedbackKind.COMPLAINT and self.on_complaint:
            return f"{where} (spam complaint){said}"
        if (
            event.kind is FeedbackKind.BOUNCE_TRANSIENT
            and self.transient_limit
            and transient_in_window >= self.transient_limit
        ):
            count, days = transient_in_window, self.transient_window.days
            return f"{count} transient bounces within {days} days, the last {where}{said}"
        return None


# --- rates -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedbackRate:
    """Of the notices sent in a window, how many the providers reported on, by verdict."""

    sent: int = 0
    delivered: int = 0
    bounced: int = 0  # permanent
    soft_bounced: int = 0
    complaints: int = 0

    @property
    def bounce_rate(self) -> float:
        return self.bounced / self.sent if self.sent else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.sent if self.sent else 0.0

    def plus(self, verdict: FeedbackKind | None, count: int) -> FeedbackRate:
        """This rate with `count` more sent notices whose verdict is `verdict`."""
        return FeedbackRate(
            sent=self.sent + count,
            delivered=self.delivered + (count if verdict is FeedbackKind.DELIVERED else 0),
            bounced=self.bounced + (count if verdict is FeedbackKind.BOUNCE_PERMANENT else 0),
            soft_bounced=self.soft_bounced
            + (count if verdict is FeedbackKind.BOUNCE_TRANSIENT else 0),
            complaints=self.complaints + (count if verdict is FeedbackKind.COMPLAINT else 0),
        )


@dataclass(frozen=True, slots=True)
class FeedbackRates:
    """Rates over a window, overall and per campaign (None: notices without a campaign)."""

    since: datetime
    overall: FeedbackRate
    by_campaign: dict[str | None, FeedbackRate]


def rates_from_counts(
    since: datetime, counts: Iterable[tuple[str | None, FeedbackKind | None, int]]
) -> FeedbackRates:
    """Rates from (campaign, verdict, notices sent) counts, as the ledger groups them."""
    overall = FeedbackRate()
    by_campaign: dict[str | None, FeedbackRate] = {}
    for campaign, verdict, count in counts:
        overall = overall.plus(verdict, count)
        by_campaign[campaign] = by_campaign.get(campaign, FeedbackRate()).plus(verdict, count)
    return FeedbackRates(since=since, overall=overall, by_campaign=by_campaign)


# The window the rates are reported over (`notifier feedback stats`, /metrics).
FEEDBACK_WINDOW = timedelta(days=7)

# Gmail's and Yahoo's bulk-sender rules enforce 0.3%; warn well before it.
COMPLAINT_WARNING_RATE = 0.001


def stronger(current: FeedbackKind | None, new: FeedbackKind) -> FeedbackKind:
    """The verdict a notice shows after `new` arrives (a weaker report does not hide news)."""
    if current is None or VERDICT_RANK[new] >= VERDICT_RANK[current]:
        return new
    return current
