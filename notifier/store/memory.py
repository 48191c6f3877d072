"""The ledger in plain dicts: the test double the project ships, not a production store.

Like procrastinate's InMemoryConnector, it keeps the Store protocol's semantics exactly
as SqlStore has them (tests/integration/test_store_contract.py runs the same checks on
both), so the engine's behaviour can be tested fast, with no database, and tests can
assert on the state itself: `store.notices_by_key[key].status`, `store.records`,
`store.fulfillments`, `store.suppressed_addresses`. Nothing survives the process.

One lock guards every method, so the engine's `asyncio.to_thread` calls may overlap.
Each method mirrors its SqlStore namesake statement by statement; a new Store method
belongs here too, next to its SQL twin's position in the protocol.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from notifier.core.decide import Decision, OrderView, Outcome
from notifier.core.feedback import (
    FeedbackKind,
    FeedbackRates,
    StoredFeedback,
    SuppressionPolicy,
    rates_from_counts,
    stronger,
)
from notifier.core.history import ATTEMPT, HistoryEntry
from notifier.core.models import FulfillmentState, NewNotice, Notice, NoticeStatus, Record
from notifier.core.records import Rejection
from notifier.errors import StoreError
from notifier.store.base import (
    REJECTIONS_KEPT,
    Completion,
    Decider,
    FeedbackWrite,
    IngestResult,
    Store,
    recipient_spellings,
)

_DUE_STATUSES = frozenset({NoticeStatus.PENDING, NoticeStatus.RETRY, NoticeStatus.SENDING})
_WAITING_STATUSES = frozenset({NoticeStatus.PENDING, NoticeStatus.RETRY})
_REQUEUE_STATUSES = frozenset({NoticeStatus.RETRY, NoticeStatus.FAILED})


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """An accepted record as the audit trail keeps it (the `records` table's row)."""

    record: Record
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Suppression:
    reason: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredCursor:
    value: str
    updated_at: datetime


class MemoryStore:
    """The Store protocol (notifier.store.base) over dicts, for tests. See the module doc."""

    safe_url = "memory://"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        # The audit copy, append-only, duplicates too (the records table has no key either).
        self.records: list[StoredRecord] = []
        # Keyed as the tables' unique keys are: a second row under a key cannot exist.
        self.fulfillments: dict[str, FulfillmentState] = {}  # by fulfillment id
        self.order_fulfillment_ids: dict[str, tuple[str, ...]] = {}  # by order id
        self.notices_by_key: dict[str, Notice] = {}  # in insertion order
        self.suppressed_addresses: dict[str, Suppression] = {}  # by case-folded address
        self.cursors: dict[str, StoredCursor] = {}
        self.history_rows: list[HistoryEntry] = []  # in the order written
        self.sent_copies: dict[str, tuple[datetime, bytes]] = {}  # by notice key
        self.feedback_events: dict[tuple[str, str], StoredFeedback] = {}  # (provider, event_id)
        self.rejections: list[tuple[Rejection, datetime]] = []  # refused records, when
        self._held_jobs: set[str] = set()
        self.closed = False

    # --- plumbing ---------------------------------------------------------------------

    def close(self) -> None:
        self.closed = True

    def hold_checkpoints(self) -> bool:
        return False  # no log to checkpoint

    def checkpoint(self) -> tuple[int, int]:
        return 0, 0

    # --- ingestion --------------------------------------------------------------------

    def ingest(self, records: Sequence[Record], decide: Decider) -> IngestResult:
        with self._lock:
            loaded = self._load_orders({record.order_id for record in records})
            decision = decide(loaded)
            created = self._write_decision(decision)
        return IngestResult(decision=decision, created=created)

    def _write_decision(self, decision: Decision) -> tuple[str, ...]:
        self._check_writable(decision)  # all or nothing, as the SQL transaction is
        self.records.extend(StoredRecord(record, outcome) for record, outcome in decision.outcomes)
        for state in decision.states.values():
            self.fulfillments[state.fulfillment_id] = replace(
                state,
                occurred_at=_utc(state.occurred_at),
                status_since=None if state.status_since is None else _utc(state.status_since),
            )
        self.order_fulfillment_ids.update(decision.order_fulfillment_ids)
        created: list[str] = []
        for new in decision.notices:
            if new.key in self.notices_by_key:
                continue  # notice keys are unique forever: a conflict is skipped
            self.notices_by_key[new.key] = _notice_from(new)
            created.append(new.key)
        return tuple(created)

    def _check_writable(self, decision: Decision) -> None:
        doing = "ingesting records"
        for record, _ in decision.outcomes:
            _check_aware(record.effective_at, record.received_at, doing=doing)
        for state in decision.states.values():
            _check_aware(state.occurred_at, state.status_since, doing=doing)
        for new in decision.notices:
            _check_aware(new.due_at, new.created_at, new.entered_at, doing=doing)

    def _load_orders(self, order_ids: Collection[str]) -> dict[str, OrderView]:
        # Fresh views every time, as rows read from a table are: decide() mutates them.
        views = {order_id: OrderView(order_id) for order_id in sorted(order_ids)}
        for state in self.fulfillments.values():
            if state.order_id in views:
                views[state.order_id].fulfillments[state.fulfillment_id] = state
        for order_id, view in views.items():
            view.fulfillment_ids = self.order_fulfillment_ids.get(order_id)
        return views

    def orders(self, order_ids: Collection[str]) -> dict[str, OrderView]:
        with self._lock:
            return self._load_orders(set(order_ids))

    def fulfillment(self, fulfillment_id: str) -> FulfillmentState | None:
        with self._lock:
            return self.fulfillments.get(fulfillment_id)

    def record_count(self) -> int:
        with self._lock:
            return len(self.records)

    # --- delivery feedback --------------------------------------------------------------

    def notices_by_message_id(self, message_ids: Collection[str]) -> dict[str, str]:
        wanted = set(message_ids)
        with self._lock:
            return {
                n.message_id: n.key
                for n in self.notices_by_key.values()
                if n.message_id is not None and n.message_id in wanted
            }

    def latest_sent_to(self, address: str, *, since: datetime, until: datetime) -> str | None:
        spellings = set(recipient_spellings(address))
        latest: tuple[datetime, str] | None = None
        with self._lock:
            for n in self.notices_by_key.values():
                at = n.sent_at
                if n.recipient not in spellings or n.status is not NoticeStatus.SENT or not at:
                    continue
                # The latest in the window; on a tie the smallest key, as the SQL orders them.
                if _utc(since) <= at <= _utc(until) and (
                    latest is None or at > latest[0] or (at == latest[0] and n.key < latest[1])
                ):
                    latest = (at, n.key)
        return None if latest is None else latest[1]

    def add_feedback(
        self, feedback: Sequence[StoredFeedback], *, policy: SuppressionPolicy
    ) -> FeedbackWrite:
        stored: list[bool] = []
        suppressed: list[tuple[str, str]] = []
        with self._lock:
            for item in feedback:
                event = item.event
                recipient = event.recipient.casefold() if event.recipient else None
                identity = (event.provider, event.event_id)
                if identity in self.feedback_events:
                    stored.append(False)
                    continue
                self.feedback_events[identity] = replace(
                    item, event=replace(event, recipient=recipient)
                )
                stored.append(True)
                notice = self.notices_by_key.get(item.notice_key or "")
                if notice is None:
                    continue  # see SuppressionPolicy: only mail notifier sent suppresses
                verdict = stronger(notice.feedback, event.kind)
                self.notices_by_key[notice.key] = replace(notice, feedback=verdict)
                if recipient is None:
                    continue
                transient = 0
                if event.kind is FeedbackKind.BOUNCE_TRANSIENT:
                    transient = sum(
                        1
                        for f in self.feedback_events.values()
                        if f.event.recipient == recipient
                        and f.event.kind is FeedbackKind.BOUNCE_TRANSIENT
                        and f.notice_key is not None
                        and event.occurred_at - policy.transient_window
                        < f.event.occurred_at
                        <= event.occurred_at
                    )
                reason = policy.reason(event, transient)
                if reason is not None and recipient not in self.suppressed_addresses:
                    self._suppress(recipient, reason, item.received_at)
                    suppressed.append((recipient, reason))
        return FeedbackWrite(stored=tuple(stored), suppressed=tuple(suppressed))

    def feedback_for(self, notice_key: str) -> list[StoredFeedback]:
        with self._lock:
            found = [f for f in self.feedback_events.values() if f.notice_key == notice_key]
        return sorted(found, key=lambda f: f.event.occurred_at)

    def feedback_rates(self, *, since: datetime) -> FeedbackRates:
        counts: dict[tuple[str | None, FeedbackKind | None], int] = {}
        with self._lock:
            for n in self.notices_by_key.values():
                if n.status is NoticeStatus.SENT and n.sent_at and n.sent_at >= _utc(since):
                    group = (n.campaign_id, n.feedback)
                    counts[group] = counts.get(group, 0) + 1
        return rates_from_counts(since, ((c, v, k) for (c, v), k in counts.items()))

    # --- delivery ---------------------------------------------------------------------

    def claim_due(
        self, *, now: datetime, limit: int, lease_until: datetime, token: str
    ) -> list[Notice]:
        _check_aware(now, lease_until, doing="claiming due notices")
        with self._lock:
            due = sorted(
                (n for n in self.notices_by_key.values() if _is_due(n, now)),
                key=lambda n: n.due_at,
            )
            keys = [n.key for n in due[:limit]]
            return self._claim(keys + self._digest_siblings(keys, now), now, lease_until, token)

    def _digest_siblings(self, keys: list[str], now: datetime) -> list[str]:
        groups = {g for key in keys if (g := self.notices_by_key[key].digest_key) is not None}
        if not groups:
            return []
        chosen = set(keys)
        return [
            n.key
            for n in self.notices_by_key.values()
            if n.digest_key in groups
            and n.key not in chosen
            and (
                n.status in (NoticeStatus.PENDING, NoticeStatus.RETRY)
                or (n.status is NoticeStatus.SENDING and n.due_at <= now)
            )
        ]

    def claim_keys(
        self, keys: Collection[str], *, now: datetime, lease_until: datetime, token: str
    ) -> list[Notice]:
        _check_aware(now, lease_until, doing="claiming notices")
        with self._lock:
            due = [
                key
                for key in dict.fromkeys(keys)
                if (n := self.notices_by_key.get(key)) is not None and _is_due(n, now)
            ]
            return self._claim(due, now, lease_until, token)

    def _claim(
        self, keys: list[str], now: datetime, lease_until: datetime, token: str
    ) -> list[Notice]:
        lease = _utc(lease_until)
        for key in keys:
            notice = self.notices_by_key[key]
            self.notices_by_key[key] = replace(
                notice,
                status=NoticeStatus.SENDING,
                due_at=lease,
                lease_until=lease,
                claim_token=token,
                # Claimed with its send mark still set, a notice is not attempted again now:
                # the engine records the interrupted send as the attempt (as SqlStore).
                attempts=notice.attempts + (1 if notice.send_started_at is None else 0),
                first_attempt_at=notice.first_attempt_at or _utc(now),
            )
        return [self.notices_by_key[key] for key in keys]

    def complete(self, key: str, *, token: str, completion: Completion) -> bool:
        return self.complete_many([(key, completion)], token=token)[0]

    def complete_many(
        self, completions: Sequence[tuple[str, Completion]], *, token: str
    ) -> list[bool]:
        for _, completion in completions:
            _check_aware(completion.at, completion.due_at, doing="recording deliveries")
        with self._lock:
            return [self._complete(key, token, completion) for key, completion in completions]

    def _complete(self, key: str, token: str, completion: Completion) -> bool:
        notice = self.notices_by_key.get(key)
        if notice is None or notice.status is not NoticeStatus.SENDING:
            return False
        if notice.claim_token != token:
            return False  # the claim was lost: another worker holds (or finished) it
        sent = completion.status is NoticeStatus.SENT
        self.notices_by_key[key] = replace(
            notice,
            status=completion.status,
            reason=completion.reason,
            claim_token=None,
            lease_until=None,
            due_at=_utc(completion.stored_due_at),
            sent_at=_utc(completion.at) if sent else notice.sent_at,
            message_id=completion.message_id or notice.message_id,
            ambiguous_attempts=notice.ambiguous_attempts + (1 if completion.ambiguous else 0),
            send_started_at=None,
        )
        self.history_rows.append(
            HistoryEntry(
                key=key,
                at=_utc(completion.at),
                kind=ATTEMPT,
                outcome=completion.status.value,
                detail=completion.detail or completion.reason,
            )
        )
        if sent and completion.sent_bytes is not None:
            self.sent_copies[key] = (_utc(completion.at), completion.sent_bytes)
        if completion.suppress_reason and notice.recipient:
            self._suppress(notice.recipient, completion.suppress_reason, completion.at)
        return True

    # --- history and sent copies --------------------------------------------------------

    def add_history(self, entries: Sequence[HistoryEntry]) -> None:
        _check_aware(*(e.at for e in entries), doing="writing a notice's history")
        with self._lock:
            self.history_rows.extend(replace(e, at=_utc(e.at)) for e in entries)

    def history(self, key: str) -> list[HistoryEntry]:
        with self._lock:
            rows = [e for e in self.history_rows if e.key == key]
        return sorted(rows, key=lambda e: e.at)  # stable: ties stay in the order written

    def sent_copy(self, key: str) -> bytes | None:
        with self._lock:
            kept = self.sent_copies.get(key)
        return None if kept is None else kept[1]

    def prune_sent_copies(self, *, before: datetime, limit: int) -> int:
        _check_aware(before, doing="pruning sent copies")
        with self._lock:
            old = sorted((at, key) for key, (at, _) in self.sent_copies.items() if at < before)
            for _, key in old[:limit]:
                del self.sent_copies[key]
            return len(old[:limit])

    def record_sends(
        self, writes: Sequence[tuple[str, Completion | None]], *, token: str, now: datetime
    ) -> list[bool]:
        with self._lock:  # one transaction: nothing else sees a part of it
            return [
                self.mark_send_started([key], token=token, now=now)[0]
                if done is None
                else self.complete(key, token=token, completion=done)
                for key, done in writes
            ]

    def mark_send_started(self, keys: Sequence[str], *, token: str, now: datetime) -> list[bool]:
        _check_aware(now, doing="recording that sends started")
        with self._lock:
            marked = []
            for key in keys:
                notice = self.notices_by_key.get(key)
                held = (
                    notice is not None
                    and notice.status is NoticeStatus.SENDING
                    and notice.claim_token == token
                )
                if held:
                    assert notice is not None
                    self.notices_by_key[key] = replace(notice, send_started_at=_utc(now))
                marked.append(held)
            return marked

    def release(self, keys: Collection[str], *, token: str, now: datetime) -> int:
        _check_aware(now, doing="releasing claims")
        with self._lock:
            released = 0
            for key in set(keys):
                notice = self.notices_by_key.get(key)
                if notice is None or notice.status is not NoticeStatus.SENDING:
                    continue
                if notice.claim_token != token:
                    continue
                self.notices_by_key[key] = replace(
                    notice,
                    status=NoticeStatus.PENDING,
                    due_at=_utc(now),
                    lease_until=None,
                    claim_token=None,
                    # A send cut off at shutdown was an attempt (its mark stays: the next
                    # claim counts it as ambiguous); a notice never handed over was not.
                    attempts=notice.attempts - (1 if notice.send_started_at is None else 0),
                )
                released += 1
            return released

    def next_due_at(self) -> datetime | None:
        with self._lock:
            due = [n.due_at for n in self.notices_by_key.values() if n.status in _DUE_STATUSES]
        return min(due, default=None)

    # --- takeover, targeted claims and resends ----------------------------------------

    def claim_holders(self) -> list[str]:
        with self._lock:
            holders = (
                n.claim_token
                for n in self.notices_by_key.values()
                if n.status is NoticeStatus.SENDING and n.claim_token is not None
            )
            return list(dict.fromkeys(holders))

    def expire_claims(self, tokens: Collection[str], *, now: datetime) -> int:
        _check_aware(now, doing="taking over claims")
        moment = _utc(now)
        with self._lock:
            expired = [
                n
                for n in self.notices_by_key.values()
                if n.status is NoticeStatus.SENDING and n.claim_token in tokens and n.due_at > now
            ]
            for notice in expired:
                self.notices_by_key[notice.key] = replace(notice, due_at=moment, lease_until=moment)
            return len(expired)

    def add_resend(self, key: str, *, now: datetime, reason: str) -> str | None:
        _check_aware(now, doing="adding a resend")
        with self._lock:
            original = self.notices_by_key.get(key)
            if original is None:
                return None
            # A resend of a resend is numbered after the original: KEY#resend-2, not nested.
            prefix = f"{key.split('#resend-')[0]}#resend-"
            numbers = [
                int(k[len(prefix) :])
                for k in self.notices_by_key
                if k.startswith(prefix) and k[len(prefix) :].isdigit()
            ]
            new_key = f"{prefix}{max(numbers, default=0) + 1}"
            if new_key in self.notices_by_key:
                return None
            self.notices_by_key[new_key] = Notice(
                key=new_key,
                rule_id=original.rule_id,
                scope=original.scope,
                order_id=original.order_id,
                fulfillment_id=original.fulfillment_id,
                recipient=original.recipient,
                campaign_id=original.campaign_id,
                status=NoticeStatus.PENDING,
                attempts=0,
                due_at=_utc(now),
                created_at=_utc(now),
                fulfillment_ids=original.fulfillment_ids,
                record=original.record,
                reason=reason,
                entered_at=original.entered_at,
            )
            return new_key

    # --- inspection -------------------------------------------------------------------

    def notices(
        self,
        *,
        status: NoticeStatus | None = None,
        order_id: str | None = None,
        limit: int | None = None,
    ) -> list[Notice]:
        with self._lock:
            chosen = [
                n
                for n in self.notices_by_key.values()
                if (status is None or n.status is status)
                and (order_id is None or n.order_id == order_id)
            ]
        chosen.sort(key=lambda n: (n.created_at, n.key))
        return chosen if limit is None else chosen[:limit]

    def notice(self, key: str) -> Notice | None:
        with self._lock:
            return self.notices_by_key.get(key)

    def notice_counts(self) -> Mapping[NoticeStatus, int]:
        counts: dict[NoticeStatus, int] = {}
        with self._lock:
            for notice in self.notices_by_key.values():
                counts[notice.status] = counts.get(notice.status, 0) + 1
        return counts

    def notice_counts_by_rule(self) -> Mapping[str, Mapping[NoticeStatus, int]]:
        counts: dict[str, dict[NoticeStatus, int]] = {}
        with self._lock:
            for notice in self.notices_by_key.values():
                of_rule = counts.setdefault(notice.rule_id, {})
                of_rule[notice.status] = of_rule.get(notice.status, 0) + 1
        return counts

    def due_count(self, *, now: datetime) -> int:
        _check_aware(now, doing="counting due notices")
        with self._lock:
            return sum(
                1
                for n in self.notices_by_key.values()
                if n.status in _WAITING_STATUSES and n.due_at <= now
            )

    def make_due(self, keys: Collection[str] | None, *, now: datetime) -> int:
        _check_aware(now, doing="making notices due")
        with self._lock:
            chosen = [
                n
                for n in self.notices_by_key.values()
                if n.status in _REQUEUE_STATUSES and (keys is None or n.key in keys)
            ]
            for notice in chosen:
                self.notices_by_key[notice.key] = replace(
                    notice,
                    status=NoticeStatus.RETRY,
                    due_at=_utc(now),
                    first_attempt_at=None,
                    reason=None,
                )
            return len(chosen)

    # --- suppression ------------------------------------------------------------------

    def _suppress(self, address: str, reason: str, now: datetime) -> None:
        # An address already suppressed keeps its first reason (ON CONFLICT DO NOTHING).
        self.suppressed_addresses.setdefault(address.casefold(), Suppression(reason, _utc(now)))

    def suppressed(self, addresses: Collection[str]) -> dict[str, str]:
        folded = sorted({address.casefold() for address in addresses})
        with self._lock:
            return {
                address: self.suppressed_addresses[address].reason
                for address in folded
                if address in self.suppressed_addresses
            }

    def suppress(self, address: str, *, reason: str, now: datetime) -> None:
        _check_aware(now, doing="suppressing an address")
        with self._lock:
            self._suppress(address, reason, now)

    def unsuppress(self, address: str) -> bool:
        with self._lock:
            return self.suppressed_addresses.pop(address.casefold(), None) is not None

    def suppressions(self) -> list[tuple[str, str, datetime]]:
        with self._lock:
            return [
                (address, entry.reason, entry.created_at)
                for address, entry in sorted(self.suppressed_addresses.items())
            ]

    # --- refused records ----------------------------------------------------------------

    def add_rejections(self, rejections: Sequence[Rejection], *, now: datetime) -> None:
        _check_aware(now, doing="keeping refused records")
        with self._lock:
            cutoff = _utc(now) - REJECTIONS_KEPT
            self.rejections = [(r, at) for r, at in self.rejections if at >= cutoff]
            self.rejections.extend((r, _utc(now)) for r in rejections)

    # --- cursors and job locks --------------------------------------------------------

    def cursor(self, name: str) -> str | None:
        with self._lock:
            stored = self.cursors.get(name)
        return None if stored is None else stored.value

    def set_cursor(self, name: str, value: str, *, now: datetime) -> None:
        _check_aware(now, doing="saving a cursor")
        with self._lock:
            self.cursors[name] = StoredCursor(value, _utc(now))

    @contextmanager
    def job_lock(self, name: str) -> Iterator[bool]:
        """True while this store holds the job's lock; False if another caller has it."""
        with self._lock:
            taken = name not in self._held_jobs
            self._held_jobs.add(name)
        try:
            yield taken
        finally:
            if taken:
                with self._lock:
                    self._held_jobs.discard(name)


def _is_due(notice: Notice, now: datetime) -> bool:
    return notice.status in _DUE_STATUSES and notice.due_at <= now


def _utc(moment: datetime) -> datetime:
    """The instant as the SQL store reads it back: aware, in UTC."""
    return moment.astimezone(UTC)


def _check_aware(*moments: datetime | None, doing: str) -> None:
    # The SQL store refuses naive datetimes (a time zone guessed is an instant wrong).
    if any(moment is not None and moment.tzinfo is None for moment in moments):
        raise StoreError(f"store memory: {doing}: naive datetime given to the store")


def _notice_from(new: NewNotice) -> Notice:
    return Notice(
        key=new.key,
        rule_id=new.rule_id,
        scope=new.scope,
        order_id=new.order_id,
        fulfillment_id=new.fulfillment_id,
        recipient=new.recipient,
        campaign_id=new.campaign_id,
        status=new.status,
        attempts=0,
        due_at=_utc(new.due_at),
        created_at=_utc(new.created_at),
        fulfillment_ids=tuple(new.fulfillment_ids),
        record=_as_stored(new.record),
        reason=new.reason,
        entered_at=None if new.entered_at is None else _utc(new.entered_at),
        digest_key=new.digest_key,
    )


def _as_stored(record: Mapping[str, Any]) -> dict[str, Any]:
    # Through JSON, as the SQL store keeps it: what cannot be stored fails here too, and a
    # template sees the same lists and strings whichever store it ran on.
    loaded: dict[str, Any] = json.loads(json.dumps(dict(record), ensure_ascii=False))
    return loaded


if TYPE_CHECKING:
    # mypy names any Store method this class lacks (or has with another signature).
    _conforms: Store = MemoryStore()
