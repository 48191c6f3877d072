"""Property-based: any record, record file or rule file: a value or a clear error, never a crash."""

from __future__ import annotations

import contextlib
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.reliability import EXAMPLES, example_ran, report_examples

from notifier.core.records import (
    ALIASES,
    KNOWN_FIELDS,
    MAX_FIELD_LENGTH,
    RecordInvalid,
    Rejection,
    parse_record,
    read_records,
)
from notifier.core.rules import Rule, parse_rule
from notifier.errors import RuleError

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# Text that hunts for trouble: controls, CR/LF/NUL, odd unicode (RTL marks, combining,
# astral, surrogate-free), and now and then something very long.
odd_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from("\r\n\x00\t \u202e\u200b\u0301é漢😀<>&\"';,@"), max_size=20),
    st.text(min_size=250, max_size=300),
    # Lone surrogates: what JSON's "\ud800" escapes decode to; not encodable as UTF-8.
    st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=3),
    st.sampled_from(["", " ", "Pending Shipment", "PENDING_SHIPMENT", "2026-11-21T08:00:00Z"]),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | odd_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(sorted(KNOWN_FIELDS | set(ALIASES))) | st.text(max_size=12)
records = st.dictionaries(field_names, json_values, max_size=12)
plausible = st.fixed_dictionaries(
    {
        "order_id": odd_text,
        "fulfillment_id": odd_text,
        "status": st.sampled_from(["Shipped", "pending-shipment", "Delivered", "Nope"]),
    },
    optional={
        "email": odd_text | st.emails(),
        "first_name": odd_text,
        "tracking_number": odd_text,
        "occurred_at": odd_text,
        "order_fulfillment_ids": json_values,
        "campaign_id": json_values,
    },
)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    report_examples(
        {
            "property: parse_record": "arbitrary JSON objects and values: controls, CR/LF/NUL,"
            " odd unicode, lone surrogates, 300-character fields",
            "property: read_records": "arbitrary text as JSONL, JSON and CSV, deep nesting,"
            " 200 kB fields, NUL",
            "property: parse_rule": "arbitrary rule fields and arbitrary TOML text",
        }
    )


def check_accepted(record: Any) -> None:
    for name in ("order_id", "fulfillment_id", "first_name", "last_name", "tracking_number"):
        value = getattr(record, name)
        if value is not None:
            assert not _CONTROL.search(value), (name, value)
            assert len(value) <= MAX_FIELD_LENGTH
    if record.tracking_number is not None:
        assert not any(ch.isspace() for ch in record.tracking_number)
    if record.email is not None:
        assert "@" in record.email and not _CONTROL.search(record.email)
    assert len(record.dedup_key) == 32
    # Storable as the audit payload, in UTF-8 (the store's and the mail's encoding).
    json.dumps(record.to_json(), ensure_ascii=False).encode("utf-8")


@PROPERTY
@given(st.one_of(records, plausible))
def test_parse_record_accepts_or_names_the_problem(data: dict[str, Any]) -> None:
    """Any JSON object: a clean Record, or RecordInvalid; never another exception."""
    example_ran("property: parse_record")
    try:
        record = parse_record(data, received_at=NOW)
    except RecordInvalid as exc:
        assert str(exc)
        return
    check_accepted(record)


@PROPERTY
@given(json_values)
def test_parse_record_rejects_non_objects(data: Any) -> None:
    """A JSON value that is not an object (or an object of nonsense) never crashes parsing."""
    example_ran("property: parse_record")
    with contextlib.suppress(RecordInvalid):
        check_accepted(parse_record(data, received_at=NOW))


@PROPERTY
@given(
    st.one_of(
        st.text(max_size=400),
        st.lists(st.one_of(records, plausible), max_size=5).map(
            lambda items: "\n".join(json.dumps(item) for item in items)
        ),
        st.lists(st.lists(odd_text, max_size=6), max_size=5).map(
            lambda rows: "\n".join(",".join(row) for row in rows)
        ),
    ),
    st.sampled_from([None, "jsonl", "json", "csv"]),
)
@example("[" * 100_000, None)
@example("{" * 100_000, "jsonl")
@example('{"order_id": "O", "fulfillment_id": "F", "status": "Shipped", "x": "\\ud800"}', None)
@example('{"order_id": "O", "fulfillment_id": "F", "status": "Shipped", "\\udfff": 1}', None)
@example("order_id,fulfillment_id,status\n" + "x" * 200_000 + ",F,Shipped\n", "csv")
@example("order_id,fulfillment_id,status\n\x00,F,Shipped\n", "csv")
@example('"unterminated,quote\n', "csv")
def test_read_records_on_any_text(text: str, format: str | None) -> None:
    """Any file content in any format: records and rejections with a location, nothing raised."""
    example_ran("property: read_records")
    items = list(read_records(io.StringIO(text), source="f", received_at=NOW, format=format))
    for item in items:
        if isinstance(item, Rejection):
            assert item.location and item.reason
        else:
            check_accepted(item)


RULE_KEYS = [
    "id",
    "name",
    "on",
    "scope",
    "template",
    "require",
    "cancel_if",
    "enabled",
    "campaigns",
    "match",
    "key_fields",
    "delay",
    "max_age",
]
toml_scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    odd_text,
    st.sampled_from(["shipped", "Pending Shipment", "order", "fulfillment", "10m", "9" * 30 + "w"]),
)
toml_values = st.one_of(toml_scalars, st.lists(toml_scalars, max_size=4))


def to_toml(data: dict[str, Any]) -> str:
    # JSON strings, numbers, booleans and arrays of them are valid TOML values.
    return "\n".join(f"{json.dumps(key)} = {json.dumps(value)}" for key, value in data.items())


@PROPERTY
@given(st.dictionaries(st.sampled_from(RULE_KEYS) | st.text(max_size=10), toml_values, max_size=10))
@example({"id": "x", "name": "x", "on": "Shipped", "template": "t", "delay": "9" * 30 + "w"})
@example({"id": "x", "name": "x", "on": "Shipped", "template": "t", "max_age": 1e300})
@example({"id": "x", "name": "x", "on": "Shipped", "template": "t", "delay": -1})
def test_parse_rule_on_any_fields(data: dict[str, Any]) -> None:
    """Any set of rule fields: a Rule, or a RuleError naming the file; never another exception."""
    example_ran("property: parse_rule")
    try:
        rule = parse_rule(to_toml(data), source="rules/x.toml")
    except RuleError as exc:
        assert str(exc).startswith("rules/x.toml: ")
        return
    assert isinstance(rule, Rule) and rule.delay.total_seconds() >= 0


@PROPERTY
@given(st.text(max_size=300))
@example('id = "x"\nid = "y"')
@example("a = " + "[" * 10_000)
def test_parse_rule_on_any_text(text: str) -> None:
    """Any text as a rule file: a Rule or a RuleError, never a crash."""
    example_ran("property: parse_rule")
    try:
        parse_rule(text, source="rules/x.toml")
    except RuleError as exc:
        assert str(exc).startswith("rules/x.toml: ")
