"""Record parsing (docs/design.md §2): formats, spellings, and rejections that say where and why."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from notifier.core.models import Record, Status
from notifier.core.records import Rejection, parse_record, read_records

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def read(text: str, format: str | None = None) -> list[Record | Rejection]:
    return list(read_records(io.StringIO(text), source="batch", received_at=NOW, format=format))


@pytest.mark.parametrize(
    "spelling",
    [
        "Pending Shipment",
        "PENDING_SHIPMENT",
        "pending_shipment",
        "pending-shipment",
        "pEnDiNg ShIpMeNt",
    ],
)
def test_every_status_spelling_is_accepted(spelling: str) -> None:
    """Each documented spelling of a status, in any case, parses to the same status."""
    assert Status.parse(spelling) is Status.PENDING_SHIPMENT


def test_unknown_status_names_the_known_ones() -> None:
    """An unknown status is rejected with the list of valid ones."""
    with pytest.raises(ValueError, match=r"unknown status 'Shiped'.*Pending Shipment"):
        Status.parse("Shiped")


def test_konnektive_spellings_map_to_fields() -> None:
    """Konnektive field names are accepted; unknown fields land in extra."""
    record = parse_record(
        {
            "orderId": 123,
            "fulfillmentId": "F1",
            "fulfillmentStatus": "SHIPPED",
            "emailAddress": "a@example.com",
            "firstName": "Ann",
            "trackingNumber": "1Z 999 AA1 01 2345 6784",
            "shipCarrier": "UPS",
            "dateShipped": "11/22/2026",
            "campaignId": "7",
            "giftNote": "hi",
        },
        received_at=NOW,
    )
    assert record.order_id == "123"
    assert record.status is Status.SHIPPED
    assert record.email == "a@example.com"
    assert record.first_name == "Ann"
    assert record.tracking_number == "1Z999AA10123456784"
    assert record.carrier == "UPS"
    assert record.shipped_at == "11/22/2026"
    assert record.campaign_id == "7"
    assert record.extra == {"giftNote": "hi"}


def test_jsonl_reports_bad_lines_and_keeps_the_rest() -> None:
    """A broken line and an invalid record are reported with their line; valid ones go on."""
    text = (
        '{"order_id": "1", "fulfillment_id": "a", "status": "Hold"}\n'
        "\n"
        '{"order_id": "1", "fulfillment_id": "b", "status": "Nope"}\n'
        '{"order_id": "1", "fulfillment_id": "c", "status": "Hold"\n'
        '{"order_id": "1", "fulfillment_id": "d", "status": "Pending"}\n'
    )
    items = read(text)
    rejections = [i for i in items if isinstance(i, Rejection)]
    records = [i for i in items if isinstance(i, Record)]
    assert [r.fulfillment_id for r in records] == ["a", "d"]
    assert [r.location for r in rejections] == ["line 3", "line 4"]
    assert "unknown status 'Nope'" in rejections[0].reason
    assert "broken JSON" in rejections[1].reason
    assert str(rejections[0]).startswith("batch line 3: ")


def test_json_array_and_records_wrapper() -> None:
    """A JSON array and {"records": [...]} both yield their records, rejections by index."""
    array = read('[{"order_id": "1", "fulfillment_id": "a", "status": "Hold"}, {"order_id": "1"}]')
    assert isinstance(array[0], Record)
    assert isinstance(array[1], Rejection) and array[1].location == "index 1"
    assert "fulfillment_id" in array[1].reason
    wrapped = read('{"records": [{"order_id": "1", "fulfillment_id": "a", "status": "Hold"}]}')
    assert [type(i) for i in wrapped] == [Record]


def test_pretty_printed_single_object() -> None:
    """A JSON object spread over several lines is one record, not broken lines."""
    items = read('{\n  "order_id": "1",\n  "fulfillment_id": "a",\n  "status": "Hold"\n}\n')
    assert len(items) == 1 and isinstance(items[0], Record)


def test_csv_with_header_and_semicolon_ids() -> None:
    """CSV rows become records; `;`-separated ids become a tuple; bad rows name their line."""
    text = (
        "orderId,fulfillmentId,fulfillmentStatus,emailAddress,order_fulfillment_ids\n"
        "O1,F1,Shipped,a@example.com,F1;F2\n"
        "O1,F2,Bogus,a@example.com,F1;F2\n"
    )
    items = read(text)
    assert isinstance(items[0], Record)
    assert items[0].order_fulfillment_ids == ("F1", "F2")
    assert isinstance(items[1], Rejection) and items[1].location == "line 3"


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("email", "no-at-sign", "not a valid address"),
        ("email", "a@example.com\r\nBcc: evil@example.com", "CR or LF"),
        ("first_name", "Ann\nBcc: evil@example.com", "control character"),
        ("last_name", "x\x00", "control character"),
        ("occurred_at", "2026-11-20T10:00:00", "needs a UTC offset"),
        ("occurred_at", "yesterday", "not ISO 8601"),
        ("order_id", "", "missing field 'order_id'"),
        ("first_name", "x" * 300, "longer than"),
    ],
)
def test_bad_fields_are_rejected_with_the_field_named(field: str, value: str, reason: str) -> None:
    """Header-bound fields cannot carry CR/LF; bad values are rejected naming the field."""
    data = {"order_id": "1", "fulfillment_id": "a", "status": "Hold", field: value}
    items = read(__import__("json").dumps(data))
    assert isinstance(items[0], Rejection)
    assert reason in items[0].reason


def test_dedup_key_without_event_id_uses_the_change() -> None:
    """Without event_id, the same (fulfillment, status, tracking, occurred_at) is the same key."""
    data = {
        "order_id": "1",
        "fulfillment_id": "a",
        "status": "Shipped",
        "occurred_at": "2026-11-20T10:00:00Z",
    }
    first = parse_record(data, received_at=NOW)
    again = parse_record(data, received_at=datetime(2026, 12, 1, tzinfo=UTC))
    other = parse_record({**data, "tracking_number": "X1"}, received_at=NOW)
    assert first.dedup_key == again.dedup_key
    assert first.dedup_key != other.dedup_key
    with_event = parse_record({**data, "event_id": "e1"}, received_at=NOW)
    assert (
        with_event.dedup_key
        == parse_record({**data, "event_id": "e1", "status": "Hold"}, received_at=NOW).dedup_key
    )
