"""The one intake for delivery feedback: every webhook, bounce import and mailbox job ends here.

Each event is tied to its notice — by the Message-ID notifier gave it (derived from the notice
key, so exact), else by the VERP token in the bounce address (the same digest), else by the
latest notice sent to the recipient within the match window ("matched by address") — then
stored once, raising the notice's verdict and applying the suppression policy, all in one
transaction (Store.add_feedback).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from notifier.core.feedback import (
    FeedbackEvent,
    MatchedBy,
    StoredFeedback,
    SuppressionPolicy,
    normalize_message_id,
)
from notifier.core.redact import mask_email
from notifier.store.base import Store

log = logging.getLogger("notifier.feedback")

# A provider's clock and ours disagree a little: a delivery reported a moment "before" the
# ledger recorded the send still belongs to it.
_SENT_AFTER_EVENT_SLACK = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class FeedbackReport:
    """What one batch of events did, for the webhook's answer and the import's summary."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0  # redeliveries of events already stored
    unmatched: int = 0  # stored, but tied to no notice
    matched: dict[MatchedBy, int] = field(default_factory=dict)
    suppressed: tuple[tuple[str, str], ...] = ()  # (address, reason) newly suppressed
    notice_keys: tuple[str, ...] = ()  # the notices the stored events were tied to

    def plus(self, other: FeedbackReport) -> FeedbackReport:
        """This report and another as one (an import's chunks, a mailbox run's batches)."""
        matched = Counter(self.matched)
        matched.update(other.matched)
        return FeedbackReport(
            received=self.received + other.received,
            stored=self.stored + other.stored,
            duplicates=self.duplicates + other.duplicates,
            unmatched=self.unmatched + other.unmatched,
            matched=dict(matched),
            suppressed=self.suppressed + other.suppressed,
            notice_keys=tuple(dict.fromkeys(self.notice_keys + other.notice_keys)),
        )

    def as_json(self) -> dict[str, object]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "unmatched": self.unmatched,
            "matched": {how.value: count for how, count in self.matched.items()},
            "suppressed": [address for address, _ in self.suppressed],
        }


class FeedbackIntake:
    """Match, store once, suppress: see the module doc."""

    def __init__(
        self,
        store: Store,
        *,
        policy: SuppressionPolicy,
        match_window: timedelta,
        message_id_domain: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.store = store
        self.policy = policy
        self.match_window = match_window
        self.message_id_domain = message_id_domain
        self.clock = clock

    def take(self, events: Sequence[FeedbackEvent]) -> FeedbackReport:
        """Tie, store and apply these events; raises StoreError if the ledger is unavailable."""
        if not events:
            return FeedbackReport()
        now = self.clock()
        wanted = {mid for event in events for mid, _ in self._message_ids(event)}
        by_message_id = self.store.notices_by_message_id(wanted)
        tied = [self._tie(event, by_message_id, now) for event in events]
        written = self.store.add_feedback(tied, policy=self.policy)
        matched: Counter[MatchedBy] = Counter()
        keys: list[str] = []
        unmatched = 0
        for item, new in zip(tied, written.stored, strict=True):
            if not new:
                continue
            if item.notice_key is None:
                unmatched += 1
            else:
                matched[item.matched_by] += 1
                keys.append(item.notice_key)
        stored = sum(written.stored)
        for address, reason in written.suppressed:
            # The reason's head names the event; its tail (the server's words) may hold the
            # address in full, which logs never do.
            log.warning("suppressed %s: %s", mask_email(address), reason.split(": ", 1)[0])
        return FeedbackReport(
            received=len(events),
            stored=stored,
            duplicates=len(events) - stored,
            unmatched=unmatched,
            matched=dict(matched),
            suppressed=written.suppressed,
            notice_keys=tuple(dict.fromkeys(keys)),
        )

    def _message_ids(self, event: FeedbackEvent) -> list[tuple[str, MatchedBy]]:
        found: list[tuple[str, MatchedBy]] = []
        if (mid := normalize_message_id(event.message_id)) is not None:
            found.append((mid, MatchedBy.MESSAGE_ID))
        if event.verp_token:
            # The token is the local part of the notice's Message-ID (core.feedback.verp_token).
            found.append((f"<{event.verp_token}@{self.message_id_domain}>", MatchedBy.VERP))
        return found

    def _tie(
        self, event: FeedbackEvent, by_message_id: dict[str, str], now: datetime
    ) -> StoredFeedback:
        for mid, how in self._message_ids(event):
            if (key := by_message_id.get(mid)) is not None:
                return StoredFeedback(event, key, how, received_at=now)
        if event.recipient:
            key = self.store.latest_sent_to(
                event.recipient,
                since=event.occurred_at - self.match_window,
                until=event.occurred_at + _SENT_AFTER_EVENT_SLACK,
            )
            if key is not None:
                return StoredFeedback(event, key, MatchedBy.ADDRESS, received_at=now)
        return StoredFeedback(event, None, MatchedBy.NONE, received_at=now)
