"""Future-dated records (DESIGN.md §8 "Time"): taken as received now, never making a later
record stale, their own time kept for dedup and audit. Pure: every time is given."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifier.core.decide import Decision, OrderView, Outcome, apply_record, decide
from notifier.core.future_dated import (
    BATCH,
    FutureDated,
    Source,
    batch_source,
    describe_skew,
    job_source,
    merge_into,
    tally,
    warning,
)
from notifier.core.models import Record, Status, future_skew, ordering_time
from notifier.core.rules import Rule, load_rules

ROOT = Path(__file__).resolve().parents[2]
# Any moment will do: the core reads no clock, it is handed `now` and each receipt.
NOW = datetime(2030, 3, 4, 12, 0, tzinfo=UTC)
AHEAD = timedelta(hours=5)
TOLERANCE = timedelta(minutes=5)
UPS = "1Z999AA10123456784"


@pytest.fixture(scope="module")
def rules() -> tuple[Rule, ...]:
    return load_rules(ROOT / "rules")


def rec(status: str, *, occurred: datetime | None, received: datetime, **fields: object) -> Record:
    return Record(
        order_id="O1",
        fulfillment_id="F1",
        status=Status.parse(status),
        received_at=received,
        occurred_at=occurred,
        email="c@example.com",
        tracking_number=UPS,
        **fields,  # type: ignore[arg-type]
    )


def run(
    records: list[Record],
    orders: dict[str, OrderView],
    rules: Sequence[Rule],
    *,
    now: datetime = NOW,
    tolerance: timedelta = TOLERANCE,
) -> Decision:
    return decide(
        records,
        orders=orders,
        rules=rules,
        now=now,
        future_tolerance=tolerance,
    )


def test_only_a_time_beyond_the_tolerance_is_future_dated() -> None:
    """Dated 5 min ahead is clock drift and kept; 5 min 1 s ahead is taken as received."""
    at_edge = rec("Pending", occurred=NOW + TOLERANCE, received=NOW)
    beyond = rec("Pending", occurred=NOW + TOLERANCE + timedelta(seconds=1), received=NOW)
    undated = rec("Pending", occurred=None, received=NOW)
    assert future_skew(at_edge, TOLERANCE) is None
    assert ordering_time(at_edge, TOLERANCE) == (NOW + TOLERANCE, False)
    assert future_skew(beyond, TOLERANCE) == TOLERANCE + timedelta(seconds=1)
    assert ordering_time(beyond, TOLERANCE) == (NOW, True)
    assert ordering_time(undated, TOLERANCE) == (NOW, False)


def test_a_future_dated_record_keeps_its_own_time_and_dedup_key() -> None:
    """The clamp changes ordering only: a redelivery is still a duplicate, audit keeps the date."""
    first = rec("Pending Shipment", occurred=NOW + AHEAD, received=NOW)
    redelivered = rec("Pending Shipment", occurred=NOW + AHEAD, received=NOW + timedelta(hours=1))
    assert first.dedup_key == redelivered.dedup_key
    assert first.effective_at == NOW + AHEAD
    assert first.to_json()["occurred_at"] == (NOW + AHEAD).isoformat()
    orders: dict[str, OrderView] = {}
    decide([first], orders=orders, rules=(), now=NOW, future_tolerance=TOLERANCE)
    decision = decide(
        [redelivered],
        orders=orders,
        rules=(),
        now=NOW + timedelta(hours=1),
        future_tolerance=TOLERANCE,
    )
    assert decision.duplicates == 1 and decision.future_dated == []


def test_tracking_notice_of_a_record_5_h_ahead_is_due_now_and_shipped_completes_the_order(
    rules: tuple[Rule, ...],
) -> None:
    """The issue's case: TNA due at once, not in 5 h; the real Shipped a minute later applies."""
    orders: dict[str, OrderView] = {}
    pending = rec("Pending Shipment", occurred=NOW + AHEAD, received=NOW)
    first = run([pending], orders, rules, now=NOW, tolerance=TOLERANCE)
    assert [(n.rule_id, n.due_at) for n in first.notices] == [("tracking_number_assigned", NOW)]
    assert first.future_dated == [(pending, AHEAD)]
    assert first.states["F1"].occurred_at == NOW and first.states["F1"].occurred_at_clamped

    later = NOW + timedelta(minutes=1)
    shipped = rec("Shipped", occurred=later, received=later)
    second = run([shipped], orders, rules, now=later, tolerance=TOLERANCE)
    assert second.outcomes == [(shipped, Outcome.APPLIED)]
    assert [(n.rule_id, n.due_at) for n in second.notices] == [("all_fulfillments", later)]
    assert not second.states["F1"].occurred_at_clamped


def test_without_the_clamp_the_same_records_wait_5_h_and_go_stale(rules: tuple[Rule, ...]) -> None:
    """The failure the clamp fixes, shown with a tolerance wider than the skew."""
    orders: dict[str, OrderView] = {}
    wide = timedelta(hours=6)
    pending = rec("Pending Shipment", occurred=NOW + AHEAD, received=NOW)
    first = run([pending], orders, rules, now=NOW, tolerance=wide)
    assert [n.due_at for n in first.notices] == [NOW + AHEAD]
    later = NOW + timedelta(minutes=1)
    shipped = rec("Shipped", occurred=later, received=later)
    second = run([shipped], orders, rules, now=later, tolerance=wide)
    assert second.outcomes == [(shipped, Outcome.STALE)] and second.notices == []


def test_a_record_received_after_a_clamped_state_applies_though_dated_before_it() -> None:
    """Shipped at 12:00:30, received 12:02, over a Pending Shipment received 12:01 claiming
    17:00 (clamped to 12:01): the later-received record wins; a replay received earlier is stale."""
    received = NOW + timedelta(minutes=1)
    skewed = rec("Pending Shipment", occurred=received + AHEAD, received=received)
    state, outcome = apply_record(None, skewed, future_tolerance=TOLERANCE)
    assert outcome is Outcome.APPLIED and state.occurred_at == received
    assert state.occurred_at_clamped

    shipped = rec(
        "Shipped", occurred=NOW + timedelta(seconds=30), received=NOW + timedelta(minutes=2)
    )
    after, outcome = apply_record(state, shipped, future_tolerance=TOLERANCE)
    assert outcome is Outcome.APPLIED
    assert after.status is Status.SHIPPED
    assert after.occurred_at == shipped.effective_at and not after.occurred_at_clamped

    earlier = rec("Pending", occurred=NOW, received=NOW)
    unchanged, outcome = apply_record(state, earlier, future_tolerance=TOLERANCE)
    assert outcome is Outcome.STALE and unchanged == replace(
        state, recent_keys=(*state.recent_keys, earlier.dedup_key)
    )


def test_an_unclamped_state_still_orders_by_occurred_at() -> None:
    """The receipt rule is only for clamped states: a late, older record stays stale."""
    shipped = rec("Shipped", occurred=NOW, received=NOW)
    state, _ = apply_record(None, shipped, future_tolerance=TOLERANCE)
    late = rec("Pending", occurred=NOW - timedelta(hours=1), received=NOW + timedelta(hours=1))
    assert apply_record(state, late, future_tolerance=TOLERANCE)[1] is Outcome.STALE


def test_a_delay_counts_from_the_receipt_of_a_future_dated_record() -> None:
    """A delayed rule's notice is due `delay` after receipt, not after the future date."""
    rule = next(r for r in load_rules(ROOT / "rules") if r.id == "tracking_number_assigned")
    delayed = replace(rule, delay=timedelta(minutes=10))
    decision = run([rec("Pending Shipment", occurred=NOW + AHEAD, received=NOW)], {}, (delayed,))
    assert [n.due_at for n in decision.notices] == [NOW + timedelta(minutes=10)]


def test_counts_per_source_keep_the_largest_skew_and_the_hint() -> None:
    """Tallies by source name merge counts, keep the largest skew and the source's hint."""
    job = job_source("konnektive", hint="check its `timezone`")
    counted = tally([(job, AHEAD), (job, timedelta(hours=4)), (BATCH, timedelta(minutes=9))])
    assert counted["job `konnektive`"] == FutureDated(2, AHEAD, "check its `timezone`")
    total: dict[str, FutureDated] = {"batch": FutureDated(1, timedelta(hours=7))}
    merge_into(total, counted)
    assert total["batch"].count == 2 and total["batch"].largest == timedelta(hours=7)
    assert warning("job `konnektive`", counted["job `konnektive`"]).startswith(
        "times from job `konnektive` are 5 h ahead of this clock: check its `timezone`"
    )


@pytest.mark.parametrize(
    ("skew", "text"),
    [
        (timedelta(seconds=40), "40 s"),
        (timedelta(minutes=12), "12 min"),
        (AHEAD - timedelta(milliseconds=30), "5 h"),
        (timedelta(hours=5, minutes=30), "5 h 30 min"),
    ],
)
def test_skews_read_as_an_operator_would_say_them(skew: timedelta, text: str) -> None:
    """Rounded to the minute: a record is received a moment after it is dated."""
    assert describe_skew(skew) == text


def test_batch_sources_name_their_one_file() -> None:
    """`batch FILE` for one file; several files or stdin are just `batch`."""
    assert batch_source(["day.jsonl"]) == Source("batch day.jsonl")
    assert batch_source(["a.jsonl", "b.jsonl"]) is BATCH
    assert batch_source(["-"]) is BATCH
