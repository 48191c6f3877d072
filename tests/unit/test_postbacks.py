"""Konnektive postback parameters -> record fields, with operator remapping."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from notifier.core.models import Status
from notifier.core.records import RecordInvalid, parse_record
from notifier.errors import ConfigError
from notifier.sources.postbacks import PostbackFields

NOW = datetime(2026, 11, 27, tzinfo=UTC)


def test_konnektive_spellings_make_a_record_and_token_is_dropped() -> None:
    """Default names are Konnektive's; the token never lands in the record."""
    params = [
        ("token", "t0k"),
        ("orderId", "KN-1"),
        ("fulfillmentId", "F-1"),
        ("fulfillmentStatus", "SHIPPED"),
        ("emailAddress", "jane@example.com"),
        ("trackingNumber", "1Z 999 AA1 0123456784"),
        ("campaignId", "12"),
    ]
    record = parse_record(PostbackFields().record_data(params), received_at=NOW)
    assert (record.order_id, record.fulfillment_id, record.status) == (
        "KN-1",
        "F-1",
        Status.SHIPPED,
    )
    assert record.tracking_number == "1Z999AA10123456784"
    assert record.campaign_id == "12"
    assert "token" not in record.extra


def test_operator_remapping_renames_fields() -> None:
    """NOTIFIER_POSTBACK_FIELDS maps an Export Profile's own names onto record fields."""
    fields = PostbackFields.from_settings(
        {"oid": "order_id", "fid": "fulfillmentId", "st": "status"}
    )
    data = fields.record_data([("oid", "9"), ("fid", "F9"), ("st", "pending"), ("note", "x")])
    record = parse_record(data, received_at=NOW)
    assert (record.order_id, record.fulfillment_id, record.status) == ("9", "F9", Status.PENDING)
    assert record.extra == {"note": "x"}


def test_remapping_to_an_unknown_field_is_a_config_error() -> None:
    """A typo in the mapping is caught at start, naming the entry."""
    with pytest.raises(ConfigError, match="'trk' -> 'tracking_nmber'"):
        PostbackFields.from_settings({"trk": "tracking_nmber"})


def test_a_parameter_given_twice_is_rejected() -> None:
    """?orderId=1&orderId=2 is ambiguous: reject rather than pick one."""
    with pytest.raises(RecordInvalid, match="given twice"):
        PostbackFields().record_data([("orderId", "1"), ("orderId", "2")])


def test_delivered_and_rma_postbacks_carry_their_date_and_rma_number() -> None:
    """Fulfillment Delivered and RMA postbacks: the delivered date is a record field, the
    RMA number (either Konnektive name) lands in record.extra as rma_number."""
    delivered = parse_record(
        PostbackFields().record_data(
            [
                ("orderId", "KN-2"),
                ("fulfillmentId", "F-2"),
                ("fulfillmentStatus", "DELIVERED"),
                ("dateDelivered", "11/29/2026"),
            ]
        ),
        received_at=NOW,
    )
    assert (delivered.status, delivered.delivered_at) == (Status.DELIVERED, "11/29/2026")
    for name in ("rmaNumber", "returnMerchandiseAuthorization"):
        rma = parse_record(
            PostbackFields().record_data(
                [
                    ("orderId", "KN-3"),
                    ("fulfillmentId", "F-3"),
                    ("fulfillmentStatus", "RMA_PENDING"),
                    (name, "RMA-42"),
                    ("reason", "too small"),
                ]
            ),
            received_at=NOW,
        )
        assert rma.status is Status.RMA_PENDING
        assert rma.extra == {"rma_number": "RMA-42", "reason": "too small"}
    returned = parse_record(
        PostbackFields().record_data(
            [("orderId", "KN-3"), ("fulfillmentId", "F-3"), ("fulfillmentStatus", "RETURNED")]
        ),
        received_at=NOW,
    )
    assert returned.status is Status.RETURNED
