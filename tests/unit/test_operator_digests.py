"""Operator alerts and digests (docs/design.md §3-§4): `to = "operator"` mails
NOTIFIER_OPERATOR_EMAIL; `digest` gathers a window's notices into one email.

On MemoryStore and MemoryTransport with a clock the test moves (tests/support/memory_engine).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from support.memory_engine import START, UPS, Rig, change, rig, shipped_rule, text_of

from notifier.core.models import NoticeStatus
from notifier.core.rules import parse_rule
from notifier.errors import ConfigError, RuleError

DAY = timedelta(days=1)
OPERATOR = "ops@example.com"


def operator_rig(*, claim_batch: int = 64) -> Rig:
    """The example operator rule switched on: Pending Shipment for 3 days, daily digest."""
    rule = dataclasses.replace(shipped_rule("stalled_parcels_operator"), enabled=True)
    return rig(rules=[rule], claim_batch=claim_batch, operator_email=OPERATOR)


def stall_three(r: Rig) -> None:
    r.engine.ingest(
        [
            change(f"O{n}", f"F{n}", "Pending Shipment", at=START, tracking_number=UPS)
            for n in (1, 2, 3)
        ]
    )


def test_three_stalled_fulfillments_make_one_email_to_the_operator() -> None:
    """Three parcels stalled the same day: one digest at the end of the day, to the
    operator, listing all three; every notice sent with that one message's Message-ID."""
    r = operator_rig()
    stall_three(r)
    r.clock.now = START + 3 * DAY
    assert r.deliver().total == 0  # due at the end of the day it stalled in
    r.clock.now = (START + 4 * DAY).replace(hour=0)
    r.deliver()
    assert len(r.sent) == 1
    (message,) = r.sent
    assert message["To"] == OPERATOR
    assert "3 fulfillments" in str(message["Subject"])
    body = text_of(message)
    assert all(f"fulfillment F{n}" in body for n in (1, 2, 3))
    notices = list(r.store.notices_by_key.values())
    assert {n.status for n in notices} == {NoticeStatus.SENT}
    assert {n.message_id for n in notices} == {message["Message-ID"]}
    assert all(n.key in body for n in notices)


def test_a_digest_is_claimed_whole_past_the_claim_batch() -> None:
    """With a claim batch of 1, the three notices still go out as one email."""
    r = operator_rig(claim_batch=1)
    stall_three(r)
    r.clock.now = START + 5 * DAY
    r.deliver()
    assert len(r.sent) == 1
    assert "3 fulfillments" in str(r.sent[0]["Subject"])


def test_a_member_that_moved_on_is_cancelled_and_left_out() -> None:
    """F2 ships before the digest goes: the digest lists F1 and F3, F2's notice says why."""
    r = operator_rig()
    stall_three(r)
    r.engine.ingest([change("O2", "F2", "Shipped", at=START + DAY, received=START + DAY)])
    r.clock.now = START + 5 * DAY
    r.deliver()
    (message,) = r.sent
    body = text_of(message)
    assert "fulfillment F1" in body and "fulfillment F3" in body
    assert "fulfillment F2" not in body
    by_fulfillment = {n.fulfillment_id: n for n in r.store.notices_by_key.values()}
    assert by_fulfillment["F2"].status is NoticeStatus.CANCELLED
    assert by_fulfillment["F2"].reason == "fulfillment F2 moved on to Shipped"
    assert by_fulfillment["F1"].status is NoticeStatus.SENT


def test_an_operator_rule_without_digest_mails_the_operator_each_time() -> None:
    """to = "operator" alone: one email per notice, to the operator, not the customer."""
    rule = parse_rule(
        'id = "ops"\nname = "Ops"\non = "Hold"\ntemplate = "on_hold"\nto = "operator"\n',
        source="ops.toml",
    )
    r = rig(rules=[rule], operator_email=OPERATOR)
    r.engine.ingest([change("O1", "F1", "Hold", at=START)])
    r.deliver()
    assert [m["To"] for m in r.sent] == [OPERATOR]


def test_an_operator_rule_without_an_operator_address_stops_the_start() -> None:
    """An enabled rule to the operator with no NOTIFIER_OPERATOR_EMAIL: a config error
    naming the rule; the shipped example (disabled) starts fine without one."""
    rule = dataclasses.replace(shipped_rule("stalled_parcels_operator"), enabled=True)
    with pytest.raises(ConfigError, match=r"'stalled_parcels_operator'.*NOTIFIER_OPERATOR_EMAIL"):
        rig(rules=[rule])
    rig(rules=[shipped_rule("stalled_parcels_operator")])


def test_a_digest_is_for_operator_rules_only() -> None:
    """digest on a customer rule is refused, naming the file and the field."""
    with pytest.raises(RuleError, match=r"c\.toml: field 'digest'"):
        parse_rule(
            'id = "c"\nname = "C"\non = "Hold"\ntemplate = "on_hold"\ndigest = "1h"\n',
            source="c.toml",
        )
