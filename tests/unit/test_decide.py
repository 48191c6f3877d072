"""Fulfillment and order state, and the notices they call for (docs/design.md §3). Pure."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from notifier.core.decide import Decision, OrderView, Outcome, decide, order_reached
from notifier.core.models import NoticeStatus, Record, Status
from notifier.core.rules import Rule, load_rules, parse_rule

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def rules() -> tuple[Rule, ...]:
    return load_rules(ROOT / "rules")


def rec(fid: str, status: str, hours: float = 0, order: str = "O1", **fields: object) -> Record:
    return Record(
        order_id=order,
        fulfillment_id=fid,
        status=Status.parse(status),
        received_at=NOW,
        occurred_at=T0 + timedelta(hours=hours),
        email=str(fields.pop("email", "c@example.com")),
        **fields,  # type: ignore[arg-type]
    )


def run(
    records: list[Record], rules: tuple[Rule, ...], orders: dict[str, OrderView] | None = None
) -> Decision:
    return decide(
        records,
        orders=orders if orders is not None else {},
        rules=rules,
        now=NOW,
    )


def keys(decision: Decision) -> list[str]:
    return [n.key for n in decision.notices]


def test_full_lifecycle_fires_both_default_rules(rules: tuple[Rule, ...]) -> None:
    """Hold → Pending → Pending Shipment → Shipped → Delivered: one TNA and one All Fulfillments."""
    decision = run(
        [
            rec("F1", "Hold", 0),
            rec("F1", "Pending", 1),
            rec("F1", "Pending Shipment", 2, tracking_number="1Z999AA10123456784"),
            rec("F1", "Shipped", 3),
            rec("F1", "Delivered", 4),
        ],
        rules,
    )
    assert keys(decision) == [
        "tracking_number_assigned:fulfillment:F1",
        "all_fulfillments:order:O1",
    ]
    assert decision.states["F1"].status is Status.DELIVERED
    assert decision.states["F1"].tracking_number == "1Z999AA10123456784"


def test_all_fulfillments_waits_for_every_fulfillment(rules: tuple[Rule, ...]) -> None:
    """With order_fulfillment_ids, the order email waits until every listed fulfillment shipped."""
    ids = ("F1", "F2")
    first = run([rec("F1", "Shipped", 1, order_fulfillment_ids=ids)], rules)
    assert keys(first) == []
    orders: dict[str, OrderView] = {}
    both = run(
        [
            rec("F1", "Shipped", 1, order_fulfillment_ids=ids),
            rec("F2", "Shipped", 2, order_fulfillment_ids=ids),
        ],
        rules,
        orders,
    )
    assert keys(both) == ["all_fulfillments:order:O1"]
    assert both.notices[0].fulfillment_ids == ("F1", "F2")


def test_cancelled_sibling_does_not_hold_the_order_back(rules: tuple[Rule, ...]) -> None:
    """A cancelled fulfillment is left out; its cancellation can complete the order."""
    ids = ("F1", "F2")
    decision = run(
        [
            rec("F1", "Shipped", 1, order_fulfillment_ids=ids),
            rec("F2", "Cancelled", 2, order_fulfillment_ids=ids),
        ],
        rules,
    )
    assert keys(decision) == ["all_fulfillments:order:O1"]
    assert decision.notices[0].fulfillment_ids == ("F1",)


def test_all_cancelled_is_not_shipped() -> None:
    """An order whose fulfillments are all cancelled has not shipped."""
    from notifier.core.models import FulfillmentState

    order = OrderView("O1", {"F1": FulfillmentState("F1", "O1", Status.CANCELLED, T0)})
    assert not order_reached(order, Status.SHIPPED)


def test_stale_record_changes_nothing(rules: tuple[Rule, ...]) -> None:
    """A record older than the current state is stored as stale and fires nothing."""
    decision = run(
        [
            rec("F1", "Shipped", 5, tracking_number="1Z999AA10123456784"),
            rec("F1", "Pending Shipment", 2, tracking_number="X"),
        ],
        rules,
    )
    assert [o for _, o in decision.outcomes] == [Outcome.APPLIED, Outcome.STALE]
    assert decision.states["F1"].status is Status.SHIPPED
    assert keys(decision) == ["all_fulfillments:order:O1"]


def test_repeat_fires_nothing_new(rules: tuple[Rule, ...]) -> None:
    """A repeat of the current status (a later report of the same thing) fires nothing."""
    decision = run(
        [
            rec("F1", "Pending Shipment", 1, tracking_number="1Z999AA10123456784"),
            rec("F1", "Pending Shipment", 2, tracking_number="1Z999AA10123456784"),
        ],
        rules,
    )
    assert [o for _, o in decision.outcomes] == [Outcome.APPLIED, Outcome.REPEAT]
    assert len(decision.notices) == 1


def test_duplicates_are_counted_not_applied(rules: tuple[Rule, ...]) -> None:
    """The same change twice in a batch, or already in the state, is a duplicate: kept
    among the outcomes (the audit stores it), changing nothing."""
    record = rec("F1", "Pending", 1)
    orders: dict[str, OrderView] = {}
    decision = decide([record, record], orders=orders, rules=rules, now=NOW)
    assert decision.duplicates == 1
    assert [o for _, o in decision.outcomes] == [Outcome.APPLIED, Outcome.DUPLICATE]
    again = decide([record], orders=orders, rules=rules, now=NOW)
    assert again.duplicates == 1 and again.outcomes == [(record, Outcome.DUPLICATE)]
    assert again.states == {}


def test_carrier_checking_off_skips_tracking_notice(rules: tuple[Rule, ...]) -> None:
    """Pending → Shipped directly: only All Fulfillments fires."""
    decision = run(
        [rec("F1", "Pending", 0), rec("F1", "Shipped", 1, tracking_number="1Z999AA10123456784")],
        rules,
    )
    assert keys(decision) == ["all_fulfillments:order:O1"]


def test_missing_required_data_is_a_cancelled_notice(rules: tuple[Rule, ...]) -> None:
    """Pending Shipment without a tracking number: a cancelled notice saying what was missing."""
    decision = run([rec("F1", "Pending Shipment", 1)], rules)
    (notice,) = decision.notices
    assert notice.status is NoticeStatus.CANCELLED
    assert notice.reason == "missing tracking_number"


def test_failed_then_recycled_then_shipped(rules: tuple[Rule, ...]) -> None:
    """Failed → Recycled → Pending Shipment → Shipped sends the usual notices once each."""
    decision = run(
        [
            rec("F1", "Failed", 0),
            rec("F1", "Recycled", 1),
            rec("F1", "Failed", 2),
            rec("F1", "Recycled", 3),
            rec("F1", "Pending Shipment", 4, tracking_number="1Z999AA10123456784"),
            rec("F1", "Shipped", 5),
        ],
        rules,
    )
    assert keys(decision) == [
        "tracking_number_assigned:fulfillment:F1",
        "all_fulfillments:order:O1",
    ]


def _rule(**extra: str) -> Rule:
    lines = [
        'id = "custom"',
        'name = "Custom"',
        'on = "Shipped"',
        'template = "t"',
        *(f"{k} = {v}" for k, v in extra.items()),
    ]
    return parse_rule("\n".join(lines), source="custom.toml")


def test_rule_filters_delay_and_max_age() -> None:
    """campaigns and match filter; delay sets the due time; max_age skips old news."""
    only_7 = _rule(campaigns='["7"]')
    assert run([rec("F1", "Shipped", 1, campaign_id="8")], (only_7,)).notices == []
    assert len(run([rec("F1", "Shipped", 1, campaign_id="7")], (only_7,)).notices) == 1

    express = _rule(match='{ ship_method = ["Express"] }')
    assert run([rec("F1", "Shipped", 1, ship_method="Ground")], (express,)).notices == []

    delayed = _rule(delay='"10m"')
    fresh = replace(rec("F1", "Shipped", 0), occurred_at=NOW)
    (notice,) = run([fresh], (delayed,)).notices
    assert notice.due_at == NOW + timedelta(minutes=10)

    young_only = _rule(max_age='"2d"')
    old = run([rec("F1", "Shipped", 0)], (young_only,))  # seven days old
    assert old.notices == [] and "max_age" in old.skipped[0][2]

    disabled = _rule(enabled="false")
    assert run([rec("F1", "Shipped", 1)], (disabled,)).notices == []


def test_key_fields_extend_the_dedup_key() -> None:
    """A rule can add fields to its key, e.g. one notice per tracking number."""
    per_tracking = _rule(key_fields='["tracking_number"]')
    decision = run([rec("F1", "Shipped", 1, tracking_number="A1")], (per_tracking,))
    assert keys(decision) == ["custom:fulfillment:F1:A1"]
