"""Stalled rules (docs/design.md §3): a status that stood too long, re-checked when due.

On MemoryStore and MemoryTransport with a clock the test moves (tests/support/memory_engine).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from support.memory_engine import START, UPS, Rig, change, rig, shipped_rule

from notifier.core.models import NoticeStatus, Scope, Status
from notifier.core.rules import parse_rule
from notifier.errors import RuleError

DAY = timedelta(days=1)


def pickup_rig() -> Rig:
    """Only the built-in Awaiting carrier pickup rule, switched on (3 days)."""
    rule = dataclasses.replace(shipped_rule("awaiting_carrier_pickup"), enabled=True)
    return rig(rules=[rule])


def keys(r: Rig) -> list[str]:
    return sorted(r.store.notices_by_key)


def test_a_pending_shipment_with_no_later_change_sends_one_email_after_three_days() -> None:
    """Nothing is due before the 3 days; at 3 days one email, then nothing more."""
    r = pickup_rig()
    r.engine.ingest([change("O1", "F1", "Pending Shipment", at=START, tracking_number=UPS)])
    r.clock.advance(3 * DAY - timedelta(minutes=1))
    assert r.deliver().total == 0
    r.clock.advance(timedelta(minutes=1))
    r.deliver()
    r.clock.advance(DAY)
    r.deliver()
    assert len(r.sent) == 1
    assert "waiting for the carrier" in str(r.sent[0]["Subject"])
    (key,) = keys(r)
    assert key.startswith("awaiting_carrier_pickup:fulfillment:F1:since=")
    assert r.notice(key).status is NoticeStatus.SENT


def test_one_that_ships_first_sends_nothing_and_says_why() -> None:
    """Shipped a day later: when the stalled notice falls due it is cancelled, with why."""
    r = pickup_rig()
    r.engine.ingest([change("O1", "F1", "Pending Shipment", at=START)])
    r.engine.ingest([change("O1", "F1", "Shipped", at=START + DAY, received=START + DAY)])
    r.clock.advance(3 * DAY)
    r.deliver()
    assert r.sent == []
    (key,) = keys(r)
    notice = r.notice(key)
    assert notice.status is NoticeStatus.CANCELLED
    assert notice.reason == "fulfillment F1 moved on to Shipped"


def test_leaving_and_entering_again_stalls_again_once_per_entry() -> None:
    """Pending Shipment, Hold a day later, Pending Shipment again: the first entry's notice
    is cancelled (it entered again), the second sends 3 days after the second entry."""
    r = pickup_rig()
    r.engine.ingest([change("O1", "F1", "Pending Shipment", at=START)])
    r.engine.ingest([change("O1", "F1", "Hold", at=START + DAY, received=START + DAY)])
    again = START + 2 * DAY
    r.engine.ingest([change("O1", "F1", "Pending Shipment", at=again, received=again)])
    assert len(keys(r)) == 2
    r.clock.now = START + 3 * DAY
    r.deliver()
    assert r.sent == []
    first, second = (r.notice(k) for k in keys(r))
    assert first.status is NoticeStatus.CANCELLED
    assert first.reason is not None and "entered it again" in first.reason
    r.clock.now = again + 3 * DAY
    r.deliver()
    assert len(r.sent) == 1
    assert r.notice(second.key).status is NoticeStatus.SENT


def test_a_redelivered_or_repeated_entry_is_still_one_notice() -> None:
    """The same record again is a duplicate; a later report of the same status (a repeat)
    neither makes a second notice nor counts as moving on: one email."""
    r = pickup_rig()
    entry = change("O1", "F1", "Pending Shipment", at=START, event_id="e1")
    r.engine.ingest([entry])
    report = r.engine.ingest([entry])
    assert report.duplicates == 1
    later = START + DAY
    r.engine.ingest(
        [change("O1", "F1", "Pending Shipment", at=later, received=later, tracking_number=UPS)]
    )
    assert len(keys(r)) == 1
    r.clock.now = START + 3 * DAY
    r.deliver()
    assert len(r.sent) == 1


def test_an_order_scope_stall_is_cancelled_by_any_later_change_in_the_order() -> None:
    """Order reaches Shipped (stalled 7 days, not Delivered): a sibling delivered meanwhile
    cancels it, naming that fulfillment."""
    rule = parse_rule(
        'id = "not_delivered"\nname = "Not delivered"\non = "Shipped"\nscope = "order"\n'
        'template = "all_fulfillments"\nstalled_after = "7d"\n',
        source="not_delivered.toml",
    )
    assert rule.scope is Scope.ORDER and rule.on is Status.SHIPPED
    r = rig(rules=[rule])
    ids = "F1;F2"
    r.engine.ingest(
        [
            change("O1", "F1", "Shipped", at=START, order_fulfillment_ids=ids),
            change("O1", "F2", "Shipped", at=START, order_fulfillment_ids=ids),
        ]
    )
    r.engine.ingest([change("O1", "F1", "Delivered", at=START + DAY, received=START + DAY)])
    r.clock.now = START + 7 * DAY
    r.deliver()
    assert r.sent == []
    (key,) = keys(r)
    assert r.notice(key).reason == "fulfillment F1 moved on to Delivered"


def test_stalled_after_must_be_longer_than_nothing() -> None:
    """stalled_after = "0s" is refused, naming the file and the field."""
    with pytest.raises(RuleError, match=r"x\.toml.*stalled_after"):
        parse_rule(
            'id = "x"\nname = "X"\non = "Hold"\ntemplate = "on_hold"\nstalled_after = "0s"\n',
            source="x.toml",
        )
