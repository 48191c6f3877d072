"""Rule files: the schema of docs/design.md §3, and errors that name the file and the field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from notifier.core.models import Scope, Status
from notifier.core.rules import describe_trigger, load_rules, parse_rule
from notifier.errors import RuleError

ROOT = Path(__file__).resolve().parents[2]
BASE = 'id = "r"\nname = "R"\non = "Shipped"\ntemplate = "t"\n'


def test_shipped_rules_load() -> None:
    """The two default rules load with the CRM's semantics."""
    rules = {rule.id: rule for rule in load_rules(ROOT / "rules")}
    tna = rules["tracking_number_assigned"]
    assert (tna.on, tna.scope, tna.require) == (
        Status.PENDING_SHIPMENT,
        Scope.FULFILLMENT,
        ("tracking_number", "email"),
    )
    assert Status.CANCELLED in tna.cancel_if
    assert (rules["all_fulfillments"].on, rules["all_fulfillments"].scope) == (
        Status.SHIPPED,
        Scope.ORDER,
    )


def test_optional_fields_parse() -> None:
    """delay, max_age, campaigns, match, enabled and key_fields parse to typed values."""
    extra = [
        'delay = "1h30m"',
        'max_age = "3d"',
        'campaigns = ["7"]',
        "enabled = false",
        'match = { ship_method = "Express" }',
        'key_fields = ["tracking_number"]',
    ]
    rule = parse_rule(
        BASE + "\n".join(extra),
        source="r.toml",
    )
    assert rule.delay == timedelta(hours=1, minutes=30)
    assert rule.max_age == timedelta(days=3)
    assert rule.campaigns == frozenset({"7"}) and not rule.enabled
    assert rule.match == {"ship_method": frozenset({"Express"})}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE.replace('"Shipped"', '"Shiped"'), "field 'on'"),
        (BASE + 'scope = "galaxy"\n', "field 'scope'"),
        (BASE + 'require = ["shoe_size"]\n', "field 'require'"),
        (BASE + 'delay = "soon"\n', "field 'delay'"),
        (BASE + "colour = 1\n", "field 'colour'"),
        (BASE.replace('id = "r"', 'id = "Bad Id!"'), "field 'id'"),
        ('id = "r"\n', "field 'name'"),
        ("id = ", "not valid TOML"),
    ],
)
def test_broken_rule_names_file_and_field(text: str, message: str) -> None:
    """Each kind of mistake is reported with the file name and the field."""
    with pytest.raises(RuleError) as caught:
        parse_rule(text, source="rules/r.toml")
    assert str(caught.value).startswith("rules/r.toml: ")
    assert message in str(caught.value)


def test_order_scope_only_for_shipped_or_delivered() -> None:
    """An order-scope rule must fire on a status an order as a whole can reach."""
    with pytest.raises(RuleError, match="order reaches"):
        parse_rule(BASE.replace('"Shipped"', '"Pending"') + 'scope = "order"\n', source="r.toml")


def test_folder_errors_are_all_reported(tmp_path: Path) -> None:
    """Every broken file and duplicate id in a folder is reported at once."""
    (tmp_path / "a.toml").write_text(BASE)
    (tmp_path / "b.toml").write_text(BASE)
    (tmp_path / "c.toml").write_text(BASE.replace('"Shipped"', '"Nope"'))
    with pytest.raises(RuleError) as caught:
        load_rules(tmp_path)
    text = str(caught.value)
    assert "c.toml: field 'on'" in text and "already used by" in text
    with pytest.raises(RuleError, match="does not exist"):
        load_rules(tmp_path / "missing")


def test_describe_trigger_says_what_fires_a_rule_in_one_line() -> None:
    """Order rules fire when the order reaches a status, fulfillment rules on entering one."""
    order = parse_rule(
        'id = "a"\nname = "A"\non = "SHIPPED"\nscope = "order"\ntemplate = "t"\n', source="a"
    )
    parcel = parse_rule(
        'id = "b"\nname = "B"\non = "pending-shipment"\ntemplate = "t"\n', source="b"
    )
    assert describe_trigger(order) == "order reaches Shipped"
    assert describe_trigger(parcel) == "fulfillment enters Pending Shipment"


def test_describe_trigger_says_when_a_stalled_or_operator_rule_fires() -> None:
    """A stalled rule names the status and how long it stands; an operator rule says so,
    and its digest's interval."""
    shipped = {rule.id: rule for rule in load_rules(ROOT / "rules")}
    assert (
        describe_trigger(shipped["awaiting_carrier_pickup"])
        == "fulfillment Pending Shipment unchanged for 3 days"
    )
    assert describe_trigger(shipped["on_hold"]) == "fulfillment Hold unchanged for 2 days"
    assert describe_trigger(shipped["stalled_parcels_operator"]) == (
        "fulfillment Pending Shipment unchanged for 3 days, to the operator (one digest per 1 day)"
    )
    odd = parse_rule(
        'id = "x"\nname = "X"\non = "Shipped"\nscope = "order"\ntemplate = "t"\n'
        'stalled_after = "36h"\n',
        source="x.toml",
    )
    assert describe_trigger(odd) == "order Shipped unchanged for 1 day 12 hours"
