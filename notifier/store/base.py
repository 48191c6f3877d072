"""The ledger's interface: what the engine needs from a store, whatever database is behind it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from notifier.core.decide import Decision, OrderView
from notifier.core.feedback import FeedbackRates, StoredFeedback, SuppressionPolicy
from notifier.core.history import HistoryEntry
from notifier.core.models import FulfillmentState, Notice, NoticeStatus, Record
from notifier.core.records import Rejection


@dataclass(frozen=True, slots=True)
class IngestResult:
    decision: Decision
    created: tuple[str, ...]  # keys of the notices actually inserted (not already in the ledger)


@dataclass(frozen=True, slots=True)
class Completion:
    """How a claimed notice ended this time."""

    status: NoticeStatus  # sent | retry | failed | cancelled
    at: datetime
    reason: str | None = None
    due_at: datetime | None = None  # for retry
    message_id: str | None = None
    ambiguous: bool = False
    suppress_reason: str | None = None  # also suppress the recipient (hard bounce)
    # For the notice's history: the server's reply (sent: its answer to DATA), else the error.
    detail: str | None = None
    # sent: the exact bytes handed to the transport, kept as the notice's sent copy.
    sent_bytes: bytes | None = None

    @property
    def stored_due_at(self) -> datetime:
        """The notice's due_at once this is recorded: the retry time, else the outcome's."""
        if self.status is NoticeStatus.RETRY:
            assert self.due_at is not None
            return self.due_at
        return self.at


def recipient_spellings(address: str) -> list[str]:
    """The spellings to look a notice's recipient up by, for an address in any case.

    Recipients are stored as the record gave them; the usual forms of one address are the
    one given and its lower case (providers and operators type it lower-cased). An exact
    match on each keeps the index on notices.recipient in use.
    """
    return sorted({address, address.lower()})


# How long refused records are remembered (Store.add_rejections).
REJECTIONS_KEPT = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class FeedbackWrite:
    """What storing a batch of feedback events did."""

    stored: tuple[bool, ...]  # per event: False for a redelivery (already stored)
    suppressed: tuple[tuple[str, str], ...]  # (address, reason) newly suppressed


# Given the touched orders' state, return the decision to write (duplicates are decided
# against that state: the store keeps no key per record).
Decider = Callable[[dict[str, OrderView]], Decision]


class Store(Protocol):
    def ingest(self, records: Sequence[Record], decide: Decider) -> IngestResult:
        """In one transaction: load what the records touch, decide, write the outcome."""
        ...

    def claim_due(
        self, *, now: datetime, limit: int, lease_until: datetime, token: str
    ) -> list[Notice]:
        """Mark up to `limit` due notices `sending` under this claim token, and return them."""
        ...

    def complete(self, key: str, *, token: str, completion: Completion) -> bool:
        """Record how a claimed notice ended; False if the claim was lost to another worker.

        In the same transaction: an `attempt` row in the notice's history and, for a sent
        notice with `sent_bytes`, its sent copy."""
        ...

    def complete_many(
        self, completions: Sequence[tuple[str, Completion]], *, token: str
    ) -> list[bool]:
        """`complete` for several notices in one transaction; one answer per notice."""
        ...

    def record_sends(
        self, writes: Sequence[tuple[str, Completion | None]], *, token: str, now: datetime
    ) -> list[bool]:
        """Outcomes and send marks together, in one transaction: `(key, completion)` is
        `complete`, `(key, None)` is `mark_send_started` at `now`; one answer per write."""
        ...

    def mark_send_started(self, keys: Sequence[str], *, token: str, now: datetime) -> list[bool]:
        """Record, in one transaction, that these claimed notices' messages are about to
        leave (the transport's before_data: for SMTP, DATA is next); False for one whose
        claim is no longer this token's. The mark stays until the notice's outcome is
        recorded: a notice claimed again with its mark still set was interrupted in its send
        (a crash) and may have arrived."""
        ...

    def release(self, keys: Collection[str], *, token: str, now: datetime) -> int:
        """Give claimed notices back (shutting down): they are due again at once."""
        ...

    def claim_holders(self) -> list[str]:
        """The claim tokens that hold `sending` notices now (to find crashed holders)."""
        ...

    def expire_claims(self, tokens: Collection[str], *, now: datetime) -> int:
        """End the leases of these (crashed) holders' notices now, so they are due at once."""
        ...

    def claim_keys(
        self, keys: Collection[str], *, now: datetime, lease_until: datetime, token: str
    ) -> list[Notice]:
        """Claim_due for just these keys (those of them that are due)."""
        ...

    def add_resend(self, key: str, *, now: datetime, reason: str) -> str | None:
        """Copy a notice as a new pending notice `<key>#resend-<n>`; its key, or None."""
        ...

    def add_history(self, entries: Sequence[HistoryEntry]) -> None:
        """Append rows to notices' histories (operator actions), in one transaction."""
        ...

    def history(self, key: str) -> list[HistoryEntry]:
        """A notice's history, oldest first."""
        ...

    def sent_copy(self, key: str) -> bytes | None:
        """The exact bytes the notice was sent as, if a copy is still kept."""
        ...

    def prune_sent_copies(self, *, before: datetime, limit: int) -> int:
        """Delete up to `limit` sent copies older than `before`; how many went."""
        ...

    def orders(self, order_ids: Collection[str]) -> dict[str, OrderView]: ...

    def next_due_at(self) -> datetime | None: ...

    def notices(
        self,
        *,
        status: NoticeStatus | None = None,
        order_id: str | None = None,
        limit: int | None = None,
    ) -> list[Notice]: ...

    def notice_counts(self) -> Mapping[NoticeStatus, int]: ...

    def notice_counts_by_rule(self) -> Mapping[str, Mapping[NoticeStatus, int]]:
        """Per rule id, how many of its notices are in each status (`notifier rules`)."""
        ...

    def due_count(self, *, now: datetime) -> int:
        """How many notices are due now and not yet claimed: the delivery queue's depth."""
        ...

    def make_due(self, keys: Collection[str] | None, *, now: datetime) -> int:
        """Make notices waiting in retry or failed due now (all of them when keys is None)."""
        ...

    def suppressed(self, addresses: Collection[str]) -> dict[str, str]:
        """The suppressed ones among these addresses (case-folded), with the reason."""
        ...

    def suppress(self, address: str, *, reason: str, now: datetime) -> None: ...

    def unsuppress(self, address: str) -> bool: ...

    def suppressions(self) -> list[tuple[str, str, datetime]]: ...

    def fulfillment(self, fulfillment_id: str) -> FulfillmentState | None: ...

    # --- delivery feedback (notifier.engine.feedback) -----------------------------------

    def notices_by_message_id(self, message_ids: Collection[str]) -> dict[str, str]:
        """Message-ID -> notice key, for those of these Message-IDs some sent notice has."""
        ...

    def latest_sent_to(self, address: str, *, since: datetime, until: datetime) -> str | None:
        """The key of the latest notice sent to `address` (case-insensitive) in the window."""
        ...

    def add_feedback(
        self, feedback: Sequence[StoredFeedback], *, policy: SuppressionPolicy
    ) -> FeedbackWrite:
        """In one transaction: store each event once (provider, event_id), raise its notice's
        verdict, and suppress its recipient where the policy says so (an address already
        suppressed keeps its reason)."""
        ...

    def feedback_for(self, notice_key: str) -> list[StoredFeedback]:
        """The events tied to this notice, oldest first."""
        ...

    def feedback_rates(self, *, since: datetime) -> FeedbackRates:
        """Verdicts on the notices sent since then, overall and per campaign."""
        ...

    def notice(self, key: str) -> Notice | None: ...

    def add_rejections(self, rejections: Sequence[Rejection], *, now: datetime) -> None:
        """Keep these refused records' where and why (received now), and forget those older
        than REJECTIONS_KEPT: the console's "needs attention" lists the last day's."""
        ...

    def cursor(self, name: str) -> str | None:
        """A small named value kept across restarts (a polled source's position)."""
        ...

    def set_cursor(self, name: str, value: str, *, now: datetime) -> None: ...

    def job_lock(self, name: str) -> AbstractContextManager[bool]:
        """Hold a cluster-wide lock for a scheduled job: True if taken, False if another has it."""
        ...

    def close(self) -> None: ...

    def hold_checkpoints(self) -> bool:
        """Take the store's log checkpoints off its commits, for `checkpoint` to run from a
        thread of the caller's; False if it has none (notifier.processes.checkpoints)."""
        ...

    def checkpoint(self) -> tuple[int, int]:
        """Fold the log into the store as far as it can without waiting: its frames, and
        how many are folded in."""
        ...
