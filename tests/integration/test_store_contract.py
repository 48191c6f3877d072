"""The Store contract: every test runs on MemoryStore, SQLite and PostgreSQL alike.

The engine's unit tests run on MemoryStore; these checks keep it from drifting from the
SQL store they stand in for. Concurrency and schema checks stay in test_store_shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from support.ledger import engine_on, tracking_records
from support.project import RULES

from notifier.core.decide import Decision, OrderView
from notifier.core.feedback import (
    FeedbackEvent,
    FeedbackKind,
    MatchedBy,
    StoredFeedback,
    SuppressionPolicy,
)
from notifier.core.history import HistoryEntry
from notifier.core.models import NewNotice, NoticeStatus, Scope
from notifier.core.records import parse_record
from notifier.core.rules import parse_rule
from notifier.errors import StoreError
from notifier.store.base import Completion
from notifier.store.memory import MemoryStore
from notifier.store.schema import as_utc
from notifier.store.sql import SqlStore

AnyStore = MemoryStore | SqlStore
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=1)
LEASE = timedelta(minutes=5)


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStore]:
    """A fresh, empty ledger: in memory, in a SQLite file, or this run's PostgreSQL database."""
    opened: AnyStore
    if request.param == "memory":
        opened = MemoryStore()
    elif request.param == "sqlite":
        opened = SqlStore(f"sqlite:///{tmp_path / 'notifier.db'}")
    else:
        opened = SqlStore(request.getfixturevalue("pg_url"))
    yield opened
    opened.close()


def seed(store: AnyStore, count: int, *, start: int = 0) -> list[str]:
    # The engine's clock is the tests' NOW, so the notices are due at NOW, not at today's date.
    report = engine_on(store, clock=lambda: NOW).ingest(tracking_records(count, start=start))
    assert report.notices_created == count
    return report.created_keys


def claim_all(store: AnyStore, *, token: str, at: datetime = LATER) -> list[str]:
    return [n.key for n in store.claim_due(now=at, limit=100, lease_until=at + LEASE, token=token)]


def sent(at: datetime = LATER, message_id: str = "<m@example.com>") -> Completion:
    return Completion(NoticeStatus.SENT, at=at, message_id=message_id)


# --- ingestion --------------------------------------------------------------------------


def test_ingest_hands_the_decider_fresh_orders_with_their_recent_keys(store: AnyStore) -> None:
    """The decider sees each touched order's state (unknown orders as empty views), each
    fulfillment with the keys of its records; what it returns is written, all of it."""
    seed(store, 1)
    stored = next(tracking_records(1))
    new = next(tracking_records(1, start=5))
    seen: list[dict[str, OrderView]] = []

    def decider(orders: dict[str, OrderView]) -> Decision:
        seen.append({k: OrderView(k, dict(v.fulfillments)) for k, v in orders.items()})
        return Decision()

    result = store.ingest([stored, new], decider)
    (orders,) = seen
    assert orders["O0"].fulfillments["O0-F1"].recent_keys == (stored.dedup_key,)
    assert set(orders) == {"O0", "O5"}
    assert set(orders["O0"].fulfillments) == {"O0-F1"} and orders["O5"].fulfillments == {}
    assert result.created == () and store.record_count() == 1


def test_a_redelivery_is_stored_as_a_duplicate_and_changes_nothing(store: AnyStore) -> None:
    """The records have no key each: a redelivery (here the same records again, in reverse)
    is told by its fulfillment's recent keys, kept in the audit, and fires nothing."""
    records = list(tracking_records(3))
    engine = engine_on(store, clock=lambda: NOW)
    assert engine.ingest(records).notices_created == 3
    report = engine.ingest(list(reversed(records)))
    assert (report.accepted, report.duplicates, report.notices_created) == (0, 3, 0)
    assert store.record_count() == 6 and len(store.notices()) == 3
    state = store.fulfillment("O1-F1")
    assert state is not None and state.recent_keys == (records[1].dedup_key,)


def test_a_notice_key_is_created_once_forever(store: AnyStore) -> None:
    """A later change that calls for a notice already in the ledger creates nothing; the
    record is kept, the fulfillment's state moves on, the notice stays as it was."""
    (key,) = seed(store, 1)
    again = parse_record(
        {
            "order_id": "O0",
            "fulfillment_id": "O0-F1",
            "status": "Pending Shipment",
            "email": "other@example.com",
            "tracking_number": "1Z999AA10123456784",
            "occurred_at": "2026-11-20T11:00:00+00:00",
        },
        received_at=NOW,
    )
    cancel = parse_record(
        {
            "order_id": "O0",
            "fulfillment_id": "O0-F1",
            "status": "Cancelled",
            "occurred_at": "2026-11-20T10:30:00+00:00",
        },
        received_at=NOW,
    )
    engine = engine_on(store, clock=lambda: NOW)
    engine.ingest([cancel])
    report = engine.ingest([again])
    assert report.accepted == 1 and report.notices_created == 0 and report.created_keys == []
    assert store.record_count() == 3
    (notice,) = store.notices()
    assert notice.key == key and notice.recipient == "customer0@example.com"
    state = store.fulfillment("O0-F1")
    assert state is not None and state.status.value == "Pending Shipment"


def test_order_fulfillment_ids_are_kept_with_the_order(store: AnyStore) -> None:
    """An order's full id list, once told, comes back with the order; unknown orders are empty."""
    record = parse_record(
        {
            "order_id": "O1",
            "fulfillment_id": "F1",
            "status": "Shipped",
            "email": "jane@example.com",
            "order_fulfillment_ids": ["F1", "F2"],
        },
        received_at=NOW,
    )
    assert engine_on(store, clock=lambda: NOW).ingest([record]).notices_created == 0
    orders = store.orders(["O1", "O9"])
    assert orders["O1"].fulfillment_ids == ("F1", "F2")
    assert set(orders["O1"].fulfillments) == {"F1"}
    assert orders["O9"].fulfillments == {} and orders["O9"].fulfillment_ids is None
    assert store.fulfillment("F2") is None


# --- claims and completion --------------------------------------------------------------


def test_an_expired_lease_is_taken_over_and_the_old_claim_is_lost(store: AnyStore) -> None:
    """A dead worker's claim is taken after its lease; its late completion is refused."""
    (key,) = seed(store, 1)
    lease = timedelta(seconds=30)
    (first,) = store.claim_due(now=LATER, limit=10, lease_until=LATER + lease, token="dead")
    assert first.status is NoticeStatus.SENDING and first.lease_until == LATER + lease
    assert first.attempts == 1 and first.first_attempt_at == LATER
    # Still leased: nobody else gets it.
    assert store.claim_due(now=LATER + lease / 2, limit=10, lease_until=LATER, token="b") == []
    (taken,) = store.claim_due(
        now=LATER + lease, limit=10, lease_until=LATER + 3 * lease, token="b"
    )
    assert taken.key == key and taken.attempts == 2 and taken.claim_token == "b"
    assert taken.first_attempt_at == LATER  # the first attempt's time is kept
    done_at = LATER + lease
    assert store.complete(key, token="dead", completion=sent(done_at)) is False
    assert store.notice(key).status is NoticeStatus.SENDING  # type: ignore[union-attr]
    assert store.complete(key, token="b", completion=sent(done_at)) is True
    done = store.notice(key)
    assert done is not None and done.status is NoticeStatus.SENT and done.claim_token is None
    assert done.message_id == "<m@example.com>" and done.sent_at == done_at
    assert done.lease_until is None
    # Completed is final: a second completion by anyone is refused.
    assert store.complete(key, token="b", completion=sent(done_at)) is False


def test_claim_due_takes_the_earliest_due_first_up_to_the_limit(store: AnyStore) -> None:
    """Up to `limit` notices, earliest due first; a notice due later than now is not taken."""
    keys = seed(store, 3)
    claim_all(store, token="a")
    retry_at = {keys[0]: LATER + timedelta(hours=3), keys[1]: LATER + timedelta(hours=1)}
    retry_at[keys[2]] = LATER + timedelta(hours=9)
    for key, at in retry_at.items():
        done = Completion(NoticeStatus.RETRY, at=LATER, due_at=at, reason="transient: 451")
        assert store.complete(key, token="a", completion=done)
    at = LATER + timedelta(hours=4)
    claimed = store.claim_due(now=at, limit=1, lease_until=at + LEASE, token="b")
    assert [n.key for n in claimed] == [keys[1]]
    assert claim_all(store, token="b", at=at) == [keys[0]]
    assert store.due_count(now=at) == 0 and store.next_due_at() == at + LEASE


def test_a_claimed_notice_reads_as_the_ledger_reads_it_back(store: AnyStore) -> None:
    """What a claim returns is the notice as stored: every field, its times as UTC instants
    (a retried notice, so it has a first attempt, a reason and an attempt count)."""
    keys = seed(store, 2)
    claim_all(store, token="a")
    store.mark_send_started([keys[0]], token="a", now=LATER)
    retry = Completion(NoticeStatus.RETRY, at=LATER, due_at=LATER, reason="transient: 451")
    assert store.complete(keys[0], token="a", completion=retry)
    assert store.complete(keys[1], token="a", completion=sent())
    later = LATER + timedelta(hours=1)
    claimed = store.claim_due(now=later, limit=10, lease_until=later + LEASE, token="b")
    assert [n.key for n in claimed] == [keys[0]]
    assert claimed == [store.notice(keys[0])]
    (notice,) = claimed
    assert notice.attempts == 2 and notice.first_attempt_at == LATER
    assert notice.lease_until == later + LEASE and notice.reason == "transient: 451"
    assert notice.due_at.utcoffset() == timedelta(0) and notice.record


def test_claim_keys_takes_only_the_named_notices_that_are_due(store: AnyStore) -> None:
    """Named keys that are due are claimed; unknown, leased or finished ones are left."""
    keys = seed(store, 4)
    assert store.claim_keys([], now=LATER, lease_until=LATER + LEASE, token="a") == []
    (held,) = store.claim_keys([keys[0]], now=LATER, lease_until=LATER + LEASE, token="a")
    assert held.key == keys[0] and held.claim_token == "a"
    store.complete(keys[0], token="a", completion=sent())
    claimed = store.claim_keys(
        [keys[0], keys[1], "no-such-key"], now=LATER, lease_until=LATER + LEASE, token="b"
    )
    assert [n.key for n in claimed] == [keys[1]]
    assert store.claim_keys([keys[1]], now=LATER, lease_until=LATER + LEASE, token="c") == []
    assert store.notice_counts() == {
        NoticeStatus.SENT: 1,
        NoticeStatus.SENDING: 1,
        NoticeStatus.PENDING: 2,
    }


def test_release_gives_back_only_the_callers_claims(store: AnyStore) -> None:
    """Release by another token changes nothing; by the owner, the notices are due again at once."""
    keys = seed(store, 3)
    claimed = store.claim_due(
        now=LATER, limit=10, lease_until=LATER + timedelta(hours=1), token="a"
    )
    assert len(claimed) == 3
    assert store.release([], token="a", now=LATER) == 0
    assert store.release(keys, token="b", now=LATER) == 0
    assert store.release(keys, token="a", now=LATER) == 3
    for notice in store.notices():
        assert notice.status is NoticeStatus.PENDING and notice.attempts == 0
        assert notice.claim_token is None and notice.due_at == LATER
    again = store.claim_due(now=LATER, limit=10, lease_until=LATER + timedelta(hours=1), token="c")
    assert sorted(n.key for n in again) == sorted(keys)


def test_expire_claims_ends_only_the_named_holders_leases(store: AnyStore) -> None:
    """Holders are listed; expiring a dead one's claims makes them due now, others untouched."""
    seed(store, 3)
    store.claim_due(now=LATER, limit=2, lease_until=LATER + timedelta(hours=1), token="dead")
    store.claim_due(now=LATER, limit=1, lease_until=LATER + timedelta(hours=1), token="alive")
    assert sorted(store.claim_holders()) == ["alive", "dead"]
    assert store.expire_claims([], now=LATER) == 0
    assert store.expire_claims(["dead", "nobody"], now=LATER) == 2
    assert store.expire_claims(["dead"], now=LATER) == 0  # already due: nothing to end
    taken = claim_all(store, token="new")
    assert len(taken) == 2
    assert sorted(store.claim_holders()) == ["alive", "new"]
    # The dead holder's late completions are refused: the notices are someone else's now.
    assert [store.complete(key, token="dead", completion=sent()) for key in taken] == [False] * 2


def test_complete_many_answers_each_notice(store: AnyStore) -> None:
    """One answer per notice: True where the claim held, False where it did not."""
    keys = seed(store, 2)
    store.claim_keys([keys[0]], now=LATER, lease_until=LATER + LEASE, token="a")
    answers = store.complete_many([(keys[0], sent()), (keys[1], sent())], token="a")
    assert answers == [True, False]
    assert store.notice_counts() == {NoticeStatus.SENT: 1, NoticeStatus.PENDING: 1}


# --- history and sent copies ---------------------------------------------------------------


def test_each_completion_adds_an_attempt_row_with_the_reply(store: AnyStore) -> None:
    """A retry then a send: two attempt rows, oldest first, with the error and the reply."""
    (key,) = seed(store, 1)
    store.claim_keys([key], now=LATER, lease_until=LATER + LEASE, token="a")
    retry = Completion(
        NoticeStatus.RETRY,
        at=LATER,
        due_at=LATER + timedelta(minutes=1),
        reason="transient: 451 4.3.0 try later",
    )
    assert store.complete(key, token="a", completion=retry)
    again = LATER + timedelta(minutes=2)
    store.claim_keys([key], now=again, lease_until=again + LEASE, token="a")
    done = replace(sent(at=again), detail="250 2.0.0 Ok: queued as 7F3A")
    assert store.complete(key, token="a", completion=done)
    history = store.history(key)
    assert [(h.kind, h.outcome, h.detail) for h in history] == [
        ("attempt", "retry", "transient: 451 4.3.0 try later"),
        ("attempt", "sent", "250 2.0.0 Ok: queued as 7F3A"),
    ]
    assert [h.at for h in history] == [LATER, again] and history[0].actor is None


def test_a_lost_claim_writes_no_history_and_no_copy(store: AnyStore) -> None:
    """A completion refused (claim lost) leaves no trace: the other worker's outcome counts."""
    (key,) = seed(store, 1)
    store.claim_keys([key], now=LATER, lease_until=LATER + LEASE, token="a")
    lost = replace(sent(), sent_bytes=b"Subject: x\r\n\r\nbody\r\n")
    assert not store.complete(key, token="b", completion=lost)
    assert store.history(key) == [] and store.sent_copy(key) is None


def test_a_sent_copy_is_kept_exactly_and_pruned_by_age(store: AnyStore) -> None:
    """The exact bytes come back; pruning removes only copies older than the cut, bounded."""
    keys = seed(store, 3)
    message = "Subject: Ihre Sendung\r\n\r\nGrüße\r\n".encode() * 50
    for offset, key in enumerate(keys):
        at = LATER + timedelta(days=offset)
        store.claim_keys([key], now=at, lease_until=at + LEASE, token="a")
        store.complete(
            key, token="a", completion=replace(sent(at=at), sent_bytes=message + key.encode())
        )
    assert store.sent_copy(keys[1]) == message + keys[1].encode()
    assert store.prune_sent_copies(before=LATER + timedelta(days=2), limit=1) == 1
    assert store.sent_copy(keys[0]) is None and store.sent_copy(keys[1]) is not None
    assert store.prune_sent_copies(before=LATER + timedelta(days=2), limit=10) == 1
    assert [store.sent_copy(k) is not None for k in keys] == [False, False, True]


def test_actions_join_the_history_in_time_order(store: AnyStore) -> None:
    """An operator action lands between the attempts it came between, with its actor."""
    (key,) = seed(store, 1)
    store.claim_keys([key], now=LATER, lease_until=LATER + LEASE, token="a")
    failed = Completion(NoticeStatus.FAILED, at=LATER, reason="permanent: 550 no such user")
    store.complete(key, token="a", completion=failed)
    store.add_history(
        [
            HistoryEntry(
                key=key,
                at=LATER + timedelta(hours=1),
                kind="action",
                outcome="retry",
                detail="made due again",
                actor="console-token:1a2b3c4d",
            )
        ]
    )
    history = store.history(key)
    assert [(h.kind, h.outcome, h.actor) for h in history] == [
        ("attempt", "failed", None),
        ("action", "retry", "console-token:1a2b3c4d"),
    ]
    assert history[1].at == LATER + timedelta(hours=1)
    assert store.history("no such key") == []


def test_notice_counts_by_rule_count_each_rules_notices_by_status(store: AnyStore) -> None:
    """Per rule, its notices by status; a rule with no notices is absent."""
    keys = seed(store, 3)
    store.claim_keys([keys[0]], now=LATER, lease_until=LATER + LEASE, token="a")
    store.complete_many([(keys[0], sent())], token="a")
    assert store.notice_counts_by_rule() == {
        "tracking_number_assigned": {NoticeStatus.SENT: 1, NoticeStatus.PENDING: 2}
    }


def test_retry_completion_and_rowcounts(store: AnyStore) -> None:
    """Retry keeps the next attempt time; make_due counts what it re-queued; suppression sticks."""
    (key,) = seed(store, 1)
    store.claim_due(now=LATER, limit=1, lease_until=LATER + timedelta(minutes=5), token="a")
    retry = Completion(
        NoticeStatus.RETRY,
        at=LATER,
        due_at=LATER + timedelta(minutes=10),
        reason="transient: 451",
        ambiguous=True,
    )
    assert store.complete(key, token="a", completion=retry) is True
    notice = store.notice(key)
    assert notice is not None and notice.status is NoticeStatus.RETRY
    assert notice.due_at == LATER + timedelta(minutes=10) and notice.reason == "transient: 451"
    assert notice.ambiguous_attempts == 1 and notice.first_attempt_at == LATER
    assert store.next_due_at() == LATER + timedelta(minutes=10)
    assert store.due_count(now=LATER) == 0 and store.due_count(now=LATER + LEASE * 2) == 1
    assert store.make_due(None, now=LATER) == 1
    assert store.make_due(["no-such-key"], now=LATER) == 0
    assert store.notice_counts() == {NoticeStatus.RETRY: 1}
    store.suppress("Jane@Example.com", reason="operator", now=LATER)
    store.suppress("jane@example.com", reason="again", now=LATER)  # conflict: kept as was
    assert store.suppressed(["JANE@example.com"]) == {"jane@example.com": "operator"}
    assert store.suppressed([]) == {}
    assert store.unsuppress("jane@EXAMPLE.com") is True
    assert store.unsuppress("jane@example.com") is False


def test_make_due_requeues_failed_notices_afresh_and_leaves_the_rest(store: AnyStore) -> None:
    """A failed notice becomes retry, due now, its reason and first attempt cleared; sent,
    pending and sending notices are not touched."""
    keys = seed(store, 4)
    claim_all(store, token="a")
    failed = Completion(NoticeStatus.FAILED, at=LATER, reason="permanent: 550")
    store.complete(keys[0], token="a", completion=failed)
    store.complete(keys[1], token="a", completion=sent())
    store.release([keys[2]], token="a", now=LATER)
    at = LATER + timedelta(hours=2)
    assert store.make_due(keys, now=at) == 1
    notice = store.notice(keys[0])
    assert notice is not None and notice.status is NoticeStatus.RETRY
    assert notice.due_at == at and notice.reason is None and notice.first_attempt_at is None
    assert notice.attempts == 1  # the count of attempts made is history, not reset
    statuses = [n.status for n in (store.notice(k) for k in keys[1:]) if n is not None]
    assert statuses == [NoticeStatus.SENT, NoticeStatus.PENDING, NoticeStatus.SENDING]
    assert store.due_count(now=at) == 2


def test_a_hard_bounce_completion_suppresses_the_recipient(store: AnyStore) -> None:
    """A completion with suppress_reason suppresses the notice's address, case-folded."""
    record = parse_record(
        {
            "order_id": "O1",
            "fulfillment_id": "F1",
            "status": "Pending Shipment",
            "email": "Gone@Example.com",
            "tracking_number": "1Z999AA10123456784",
        },
        received_at=NOW,
    )
    (key,) = engine_on(store, clock=lambda: NOW).ingest([record]).created_keys
    claim_all(store, token="a")
    bounce = Completion(
        NoticeStatus.FAILED,
        at=LATER,
        reason="permanent: 550 no such user",
        message_id="<m@example.com>",
        suppress_reason="hard bounce: 550 no such user",
    )
    assert store.complete(key, token="a", completion=bounce) is True
    assert store.suppressions() == [("gone@example.com", "hard bounce: 550 no such user", LATER)]
    failed = store.notice(key)
    assert failed is not None and failed.message_id == "<m@example.com>"
    assert failed.sent_at is None and failed.due_at == LATER


def test_resends_are_numbered_after_the_original(store: AnyStore) -> None:
    """add_resend copies a notice as KEY#resend-1, then -2 (also from a resend), pending, due
    now, with the reason; an unknown key gives None."""
    (key,) = seed(store, 1)
    claim_all(store, token="a")
    store.complete(key, token="a", completion=sent())
    at = LATER + timedelta(hours=1)
    assert store.add_resend("no-such-key", now=at, reason="r") is None
    first = store.add_resend(key, now=at, reason="resend of it")
    assert first == f"{key}#resend-1"
    assert store.add_resend(first, now=at, reason="again") == f"{key}#resend-2"
    original, copy = store.notice(key), store.notice(first)
    assert original is not None and copy is not None
    assert copy.status is NoticeStatus.PENDING and copy.attempts == 0
    assert copy.due_at == at and copy.created_at == at and copy.reason == "resend of it"
    assert copy.message_id is None and copy.sent_at is None and copy.claim_token is None
    assert (copy.rule_id, copy.recipient, copy.fulfillment_ids, copy.record) == (
        original.rule_id,
        original.recipient,
        original.fulfillment_ids,
        original.record,
    )
    assert [n.key for n in store.notices()] == [key, first, f"{key}#resend-2"]


# --- inspection -------------------------------------------------------------------------


def test_notices_are_listed_oldest_first_and_filtered(store: AnyStore) -> None:
    """notices() lists by creation time, then key; status, order and limit filter it."""
    keys = seed(store, 3)
    store.claim_keys([keys[1]], now=LATER, lease_until=LATER + LEASE, token="a")
    assert [n.key for n in store.notices()] == sorted(keys)
    assert [n.key for n in store.notices(status=NoticeStatus.SENDING)] == [keys[1]]
    assert [n.key for n in store.notices(order_id="O2")] == [keys[2]]
    assert len(store.notices(limit=2)) == 2
    assert store.notice("no-such-key") is None
    (sending,) = store.notices(status=NoticeStatus.SENDING)
    assert sending.lease_until == LATER + LEASE and sending.due_at == LATER + LEASE


def test_times_come_back_as_the_same_utc_instants(store: AnyStore) -> None:
    """Datetimes in any offset are kept as instants and read back in UTC; naive ones refused."""
    seed(store, 2)
    first, second = store.notices()
    plus_five = timezone(timedelta(hours=5))
    # 14:00+05:00 (09:00 UTC) is earlier than 10:00 UTC although its wall clock is later.
    early = datetime(2026, 11, 27, 14, 0, tzinfo=plus_five)
    late = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    store.claim_due(now=NOW + timedelta(days=1), limit=2, lease_until=late, token="t")
    store.complete(
        first.key, token="t", completion=Completion(NoticeStatus.RETRY, at=late, due_at=late)
    )
    store.complete(
        second.key, token="t", completion=Completion(NoticeStatus.RETRY, at=early, due_at=early)
    )
    assert store.next_due_at() == early
    due = store.next_due_at()
    assert due is not None and due.utcoffset() == timedelta(0)
    assert due == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    with pytest.raises(StoreError, match="naive datetime"):
        store.claim_due(now=datetime(2026, 11, 27, 12, 0), limit=1, lease_until=late, token="t")


def test_a_stalled_entry_keeps_its_time_in_the_state_and_the_notice(store: AnyStore) -> None:
    """When a fulfillment entered its status (kept through a repeat) and a stalled notice's
    entry come back as the same UTC instants."""
    rule = replace(
        parse_rule((RULES / "awaiting_carrier_pickup.toml").read_text(), source="a"), enabled=True
    )
    engine = engine_on(store, rules=[rule], clock=lambda: NOW)
    entered = datetime(2026, 11, 27, 14, 0, tzinfo=timezone(timedelta(hours=5)))
    data = {"order_id": "O1", "fulfillment_id": "F1", "email": "a@example.com"}
    engine.ingest(
        [
            parse_record(
                {**data, "status": "Pending Shipment", "occurred_at": entered.isoformat()},
                received_at=NOW,
            )
        ]
    )
    engine.ingest(
        [
            parse_record(
                {
                    **data,
                    "status": "Pending Shipment",
                    "tracking_number": "X1",
                    "occurred_at": NOW.isoformat(),
                },
                received_at=NOW,
            )
        ]
    )
    state = store.fulfillment("F1")
    assert state is not None and state.status_since == entered and state.occurred_at == NOW
    (notice,) = store.notices()
    assert notice.entered_at == entered and notice.entered_at.utcoffset() == timedelta(0)
    assert notice.due_at == entered + timedelta(days=3)


def digest_notice(n: int, group: str | None, *, due: datetime = NOW) -> NewNotice:
    return NewNotice(
        key=f"ops:fulfillment:F{n}",
        rule_id="ops",
        scope=Scope.FULFILLMENT,
        order_id=f"O{n}",
        fulfillment_id=f"F{n}",
        recipient="ops@example.com",
        campaign_id=None,
        due_at=due,
        created_at=NOW,
        fulfillment_ids=(f"F{n}",),
        record={"order_id": f"O{n}"},
        digest_key=group,
    )


def test_claim_due_takes_a_digest_whole_past_the_limit(store: AnyStore) -> None:
    """A claim of one that picks a digest notice takes the digest's other claimable notices
    too (even one due later), not those of another digest, nor one another worker holds."""
    day1, day2 = "ops:digest:2026-11-27", "ops:digest:2026-11-28"
    notices = [
        digest_notice(1, day1),
        digest_notice(2, day1, due=NOW + timedelta(minutes=1)),
        digest_notice(3, day1, due=NOW + timedelta(minutes=2)),
        digest_notice(4, day2, due=NOW + timedelta(minutes=3)),
        digest_notice(5, None, due=NOW + timedelta(minutes=4)),
    ]
    store.ingest([], lambda orders: Decision(notices=notices))
    (held,) = store.claim_keys(
        ["ops:fulfillment:F3"], now=LATER, lease_until=LATER + LEASE, token="other"
    )
    assert held.digest_key == day1
    claimed = store.claim_due(now=NOW, limit=1, lease_until=NOW + LEASE, token="me")
    assert sorted(n.key for n in claimed) == ["ops:fulfillment:F1", "ops:fulfillment:F2"]
    assert {n.digest_key for n in claimed} == {day1}
    assert {n.status for n in claimed} == {NoticeStatus.SENDING}


def test_an_empty_ledger_has_nothing_due(store: AnyStore) -> None:
    """No notices: nothing due, no next due time, no holders, no counts."""
    assert store.next_due_at() is None and store.due_count(now=NOW) == 0
    assert store.claim_holders() == [] and store.notice_counts() == {}
    assert claim_all(store, token="a") == [] and store.notices() == []


# --- cursors and job locks --------------------------------------------------------------


def test_cursors_keep_the_latest_value(store: AnyStore) -> None:
    """A cursor reads back what was last set under its name; an unknown one is None."""
    plus_five = timezone(timedelta(hours=5))
    assert store.cursor("feed") is None
    store.set_cursor("feed", "abc", now=datetime(2026, 11, 27, 14, 0, tzinfo=plus_five))
    store.set_cursor("feed", "def", now=NOW)
    store.set_cursor("other", "x", now=NOW)
    assert (store.cursor("feed"), store.cursor("other")) == ("def", "x")


def test_a_job_lock_is_held_by_one_caller_at_a_time(store: AnyStore) -> None:
    """While one caller holds a job's lock another gets False; after it, True; names are apart."""
    with store.job_lock("konnektive") as first:
        assert first is True
        with store.job_lock("konnektive") as second:
            assert second is False
        with store.job_lock("dropfolder") as other:
            assert other is True
    with store.job_lock("konnektive") as again:
        assert again is True


# --- delivery feedback ------------------------------------------------------------------


def sent_notices(store: AnyStore, count: int) -> list[str]:
    """`count` notices sent at LATER, each with its own Message-ID `<n@example.com>`."""
    keys = seed(store, count)
    claim_all(store, token="t")
    for n, key in enumerate(keys):
        assert store.complete(key, token="t", completion=sent(message_id=f"<{n}@example.com>"))
    return keys


def bounce(
    n: int,
    kind: FeedbackKind = FeedbackKind.BOUNCE_PERMANENT,
    *,
    recipient: str = "customer0@example.com",
    at: datetime = LATER,
    provider: str = "ses",
) -> FeedbackEvent:
    return FeedbackEvent(
        provider=provider,
        event_id=f"e{n}",
        kind=kind,
        occurred_at=at,
        recipient=recipient,
        message_id="<0@example.com>",
        diagnostic="550 5.1.1 user unknown",
    )


def test_notices_are_found_by_message_id_and_by_address(store: AnyStore) -> None:
    keys = sent_notices(store, 2)
    assert store.notices_by_message_id(["<1@example.com>", "<9@example.com>"]) == {
        "<1@example.com>": keys[1]
    }
    window = {"since": LATER - timedelta(days=7), "until": LATER + timedelta(hours=1)}
    # Case-insensitive on the address: providers report it lower-cased.
    assert store.latest_sent_to("Customer1@Example.com".lower(), **window) == keys[1]
    assert store.latest_sent_to("nobody@example.com", **window) is None
    outside = {"since": LATER + timedelta(minutes=1), "until": LATER + timedelta(days=1)}
    assert store.latest_sent_to("customer1@example.com", **outside) is None


def test_feedback_is_stored_once_and_raises_the_notices_verdict(store: AnyStore) -> None:
    keys = sent_notices(store, 1)
    policy = SuppressionPolicy()
    delivered = StoredFeedback(
        bounce(1, FeedbackKind.DELIVERED), keys[0], MatchedBy.MESSAGE_ID, received_at=LATER
    )
    complaint = StoredFeedback(
        bounce(2, FeedbackKind.COMPLAINT), keys[0], MatchedBy.MESSAGE_ID, received_at=LATER
    )
    deferred = StoredFeedback(
        bounce(3, FeedbackKind.DEFERRED), keys[0], MatchedBy.MESSAGE_ID, received_at=LATER
    )
    first = store.add_feedback([delivered, complaint, delivered], policy=policy)
    assert first.stored == (True, True, False)  # the redelivery in the same batch too
    assert first.suppressed == (("customer0@example.com", first.suppressed[0][1]),)
    assert "spam complaint" in first.suppressed[0][1]
    again = store.add_feedback([complaint, deferred], policy=policy)
    assert again.stored == (False, True)
    assert again.suppressed == ()  # already suppressed: the first reason stays
    notice = store.notice(keys[0])
    assert notice is not None and notice.feedback is FeedbackKind.COMPLAINT  # deferred is no news
    kinds = [f.event.kind for f in store.feedback_for(keys[0])]
    assert sorted(kinds) == sorted(
        [FeedbackKind.DELIVERED, FeedbackKind.COMPLAINT, FeedbackKind.DEFERRED]
    )
    assert store.suppressed(["customer0@example.com"])


def test_transient_bounces_suppress_at_the_limit_within_the_window(store: AnyStore) -> None:
    (key,) = sent_notices(store, 1)
    policy = SuppressionPolicy(transient_limit=3, transient_window=timedelta(days=7))
    transient = FeedbackKind.BOUNCE_TRANSIENT

    def add(n: int, at: datetime, key: str | None = key) -> tuple[tuple[str, str], ...]:
        how = MatchedBy.MESSAGE_ID if key else MatchedBy.NONE
        event = StoredFeedback(bounce(n, transient, at=at), key, how, received_at=at)
        return store.add_feedback([event], policy=policy).suppressed

    # Unmatched ones (not mail notifier sent) neither suppress nor count.
    assert add(10, NOW, key=None) == add(11, NOW, key=None) == add(12, NOW, key=None) == ()
    assert add(1, NOW - timedelta(days=9)) == ()  # outside the window of the later ones
    assert add(2, NOW) == ()
    assert add(3, NOW + timedelta(days=1)) == ()
    (suppressed,) = add(4, NOW + timedelta(days=2))
    assert suppressed[0] == "customer0@example.com"
    assert suppressed[1].startswith("3 transient bounces within 7 days")


def test_feedback_rates_count_the_verdicts_of_notices_sent_in_the_window(
    store: AnyStore,
) -> None:
    keys = sent_notices(store, 4)
    policy = SuppressionPolicy()
    verdicts = [FeedbackKind.BOUNCE_PERMANENT, FeedbackKind.COMPLAINT, FeedbackKind.DELIVERED]
    store.add_feedback(
        [
            StoredFeedback(bounce(n, kind), keys[n], MatchedBy.MESSAGE_ID, received_at=LATER)
            for n, kind in enumerate(verdicts)
        ],
        policy=policy,
    )
    rates = store.feedback_rates(since=LATER - timedelta(days=7))
    assert (rates.overall.sent, rates.overall.bounced, rates.overall.complaints) == (4, 1, 1)
    assert rates.overall.bounce_rate == 0.25
    assert set(rates.by_campaign) == {None}
    assert store.feedback_rates(since=LATER + timedelta(seconds=1)).overall.sent == 0


@pytest.mark.parametrize(
    "stamp",
    ["2026-11-27 12:00:00.123456", "2026-11-27 12:00", "2026-11-27T12:00+05:00", "2026-11-27"],
)
def test_a_stamp_read_straight_from_the_driver_is_as_utc_reads_it(stamp: str) -> None:
    """SQLite's stamps (UTC text without an offset) read by as_utc's faster parse: the same
    instants, in UTC, as parsing them and then taking them as UTC (and text the faster
    parse cannot take, too)."""
    parsed = datetime.fromisoformat(stamp)
    expected = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    read = as_utc(stamp)
    assert read == expected and read.tzinfo is UTC
