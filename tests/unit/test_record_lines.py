"""The JSONL fast path accepts only what the general parser accepts, as the very same Record.

notifier.core.record_lines decodes plain lines with msgspec; notifier.core.records'
parse_record is the contract (docs/design.md §2). Generated lines -- valid, padded, too
long, mistyped, aliased, escaped, non-ASCII -- go through both: the fast path either
declines (None) or builds a Record equal to the general one in every field, its audit text
and its dedup key; and it never accepts what the general parser rejects.
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from notifier.core.models import Record
from notifier.core.record_lines import fast_record
from notifier.core.records import RecordInvalid, parse_record, read_records

RECEIVED = datetime.now(UTC).replace(microsecond=0)

_ascii = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
_any_text = st.text(max_size=12)  # controls, DEL, non-ASCII, surrogates' neighbours


def _padded(core: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from(["", " ", "  "]), core, st.sampled_from(["", " "])).map(
        "".join
    )


_values: st.SearchStrategy[Any] = st.one_of(
    _padded(_ascii),
    _any_text,
    st.just(""),
    st.none(),
    st.integers(-5, 10**20),
    st.booleans(),
    st.just("x" * 254),
    st.just(" " + "y" * 255),  # 256 long, 255 once stripped
    st.just("z" * 256),
)
_statuses = st.sampled_from(
    ["Shipped", "PENDING_SHIPMENT", "pending_shipment", "pending-shipment", " Hold", "Nope", ""]
)
_times = st.one_of(
    st.datetimes(timezones=st.sampled_from([UTC, None])).map(datetime.isoformat),
    st.sampled_from(["2026-11-20T10:00:00Z", "2026-11-20", "yesterday", " 2026-11-20T10:00Z "]),
)
_emails = st.one_of(
    st.sampled_from(
        ["jane@example.com", " jane@example.com ", "jane@", "a b@example.com", "j\u00e9@x.com"]
    ),
    st.just("j" * 250 + "@example.com"),
    _values,
)
_ids = st.one_of(
    st.lists(st.one_of(_padded(_ascii), st.none(), st.integers(0, 9)), max_size=4),
    st.just("F-1; F-2;;F-1"),
    _values,
)
_fields = {
    "order_id": _values,
    "fulfillment_id": _values,
    "status": _statuses,
    "occurred_at": _times,
    "event_id": _values,
    "email": _emails,
    "first_name": _values,
    "last_name": _values,
    "tracking_number": st.one_of(st.just(" 1Z 999 AA1 "), _values),
    "carrier": _values,
    "ship_method": _values,
    "shipped_at": _values,
    "delivered_at": _values,
    "campaign_id": _values,
    "order_fulfillment_ids": _ids,
    "orderId": _values,  # a Konnektive spelling: the general parser's business
    "gift_note": _values,  # an extra field: kept by the general parser
}


@st.composite
def lines(draw: st.DrawFn) -> str:
    names = draw(st.lists(st.sampled_from(sorted(_fields)), unique=True, max_size=10))
    # Most generated lines carry what a valid record needs, so acceptance is exercised too.
    base = {"order_id": "KN-1", "fulfillment_id": "F-1", "status": "Shipped"}
    record = base if draw(st.booleans()) else {}
    record = {**record, **{name: draw(_fields[name]) for name in names}}
    # The fast path tells padded values by the spaces beside their quotes: every spacing
    # a sender may use between items must keep that right.
    separators = draw(st.sampled_from([(", ", ": "), (",", ":"), (" , ", " : ")]))
    return json.dumps(record, ensure_ascii=draw(st.booleans()), separators=separators)


def _general(line: str) -> Record | None:
    try:
        return parse_record(json.loads(line), received_at=RECEIVED, received_text=line)
    except RecordInvalid:
        return None


def _same(fast: Record, general: Record) -> None:
    for field in fields(Record):
        assert getattr(fast, field.name) == getattr(general, field.name), field.name


@settings(max_examples=1500, deadline=None)
@given(lines())
def test_the_fast_path_accepts_only_what_the_general_parser_accepts_and_alike(line: str) -> None:
    fast = fast_record(line, received_at=RECEIVED)
    if fast is None:
        return
    general = _general(line)
    assert general is not None, f"accepted by the fast path only: {line}"
    _same(fast, general)


def test_a_plain_line_takes_the_fast_path_and_an_unusual_one_does_not() -> None:
    """The decline cases are the fast path's whole safety: each goes the general way."""
    plain = (
        '{"order_id": "KN-1", "fulfillment_id": "F-1", "status": "Shipped",'
        ' "occurred_at": "2026-11-20T10:00:00+01:00", "email": "jane@example.com",'
        ' "tracking_number": "1Z 999", "order_fulfillment_ids": ["F-1", "F-2", "F-1"]}'
    )
    record = fast_record(plain, received_at=RECEIVED)
    assert record is not None
    assert record.occurred_at == datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    assert record.tracking_number == "1Z999"
    assert record.order_fulfillment_ids == ("F-1", "F-2")
    assert record.received_text == plain
    assert record.received_at - RECEIVED == timedelta(0)
    for unusual in (
        plain.replace('"Shipped"', '" shipped"'),  # a spelling Status.parse works out
        plain.replace("jane", "j\\u00e9"),  # an escape
        plain.replace("jane", "j\u00e9"),  # non-ASCII
        plain.replace("Shipped", "Shipped\x7f"),  # DEL, legal raw in JSON
        plain.replace('"order_id"', '"orderId"'),  # a Konnektive spelling
        plain.replace('"F-1",', '"F-1", "gift": 1,'),  # an extra field
        plain.replace('"KN-1"', "1"),  # a number for an id
        plain.replace("+01:00", ""),  # no UTC offset: the general parser says so
        plain[:-1],  # broken JSON
    ):
        assert fast_record(unusual, received_at=RECEIVED) is None, unusual


def test_reading_a_batch_gives_the_same_records_and_rejections_either_way() -> None:
    """Through read_records (the reader every batch source uses), mixed lines."""
    import io

    batch = "\n".join(
        [
            '{"order_id": "KN-1", "fulfillment_id": "F-1", "status": "Shipped"}',
            '{"orderId": "KN-2", "fulfillmentId": "F-2", "fulfillmentStatus": "HOLD"}',
            '{"order_id": "KN-3", "fulfillment_id": "F-3", "status": "Shipped", "email": "x@"}',
            "",
            "{broken",
            '{"order_id": "KN-4", "fulfillment_id": " ", "status": "Hold"}',
        ]
    )
    got = list(read_records(io.StringIO(batch), source="b.jsonl", received_at=RECEIVED))
    assert [type(item).__name__ for item in got] == [
        "Record",
        "Record",
        "Rejection",
        "Rejection",
        "Rejection",
    ]
    assert [str(item) for item in got[2:]] == [
        "b.jsonl line 3: field 'email' is not a valid address: 'x@'",
        "b.jsonl line 5: broken JSON: Expecting property name enclosed in double quotes (column 2)",
        "b.jsonl line 6: field 'fulfillment_id' is blank",
    ]
