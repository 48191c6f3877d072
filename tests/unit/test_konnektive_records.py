"""Konnektive orders to records, CRM local times, and the query window. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from notifier.core.models import Record, Status
from notifier.core.records import Rejection
from notifier.sources.konnektive import KonnektiveOptions, crm_time, order_records, query_window

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)


def test_each_fulfillment_becomes_a_record_knowing_the_whole_order() -> None:
    """Konnektive spellings map to record fields; order_fulfillment_ids lists every parcel."""
    order = {
        "orderId": "K-1",
        "emailAddress": "jane@example.com",
        "firstName": "Jane",
        "lastName": "Doe",
        "campaignId": 12,
        "dateUpdated": "2026-11-27 09:30:00",
        "fulfillments": [
            {
                "fulfillmentId": 501,
                "status": "PENDING_SHIPMENT",
                "trackingNumber": "1Z999AA1 0123456784",
                "shipCarrier": "UPS",
                "dateShipped": "",
                "shipMethod": "Ground",
            },
            {"fulfillmentId": 502, "status": "HOLD", "trackingNumber": None},
        ],
    }
    first, second = order_records(order, tz=NY, received_at=NOW, source="test")
    assert isinstance(first, Record) and isinstance(second, Record)
    assert (first.order_id, first.fulfillment_id, first.status) == (
        "K-1",
        "501",
        Status.PENDING_SHIPMENT,
    )
    assert first.tracking_number == "1Z999AA10123456784" and first.carrier == "UPS"
    assert (first.email, first.first_name, first.campaign_id) == ("jane@example.com", "Jane", "12")
    assert first.order_fulfillment_ids == second.order_fulfillment_ids == ("501", "502")
    # dateUpdated is New York time: 09:30 EST is 14:30 UTC.
    assert first.occurred_at == datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
    assert second.status is Status.HOLD and second.tracking_number is None


def test_a_bad_fulfillment_is_rejected_and_its_siblings_still_come_through() -> None:
    """An unknown status is a Rejection naming the order and fulfillment; the rest go on."""
    order = {
        "orderId": "K-2",
        "fulfillments": [
            {"fulfillmentId": "1", "status": "LOST_IN_SPACE"},
            {"fulfillmentId": "2", "status": "SHIPPED"},
        ],
    }
    bad, good = order_records(order, tz=NY, received_at=NOW, source="konnektive page 1")
    assert isinstance(bad, Rejection) and "order K-2 fulfillment 0" in str(bad)
    assert "LOST_IN_SPACE" in bad.reason
    assert isinstance(good, Record) and good.occurred_at is None  # no dateUpdated: poll time
    # An order with no fulfillments yet is normal (nothing to say); a garbled list is not.
    assert list(order_records({"orderId": "K-3"}, tz=NY, received_at=NOW, source="p")) == []
    odd = {"orderId": "K-4", "fulfillments": "F1"}
    garbled = list(order_records(odd, tz=NY, received_at=NOW, source="p"))
    assert isinstance(garbled[0], Rejection) and "fulfillments" in garbled[0].reason


def test_crm_times_are_read_in_the_crm_time_zone() -> None:
    """Both the API's "Y-m-d H:i:s" and m/d/Y forms; across DST; junk is None."""
    assert crm_time("2026-07-01 12:00:00", NY) == datetime(2026, 7, 1, 16, 0, tzinfo=UTC)
    assert crm_time("11/27/2026", NY) == datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
    assert crm_time("11/27/2026 08:15:00", NY) == datetime(2026, 11, 27, 13, 15, tzinfo=UTC)
    assert crm_time("yesterday", NY) is None and crm_time("", NY) is None


def test_the_window_reaches_back_by_the_overlap_in_whole_crm_days() -> None:
    """First poll: lookback; then from the last poll minus the overlap, dates in the CRM's zone."""
    options = KonnektiveOptions(base_url="http://x", login_id="u", password="p", timezone=NY)
    first = query_window(None, now=NOW, options=options)
    assert [d.isoformat() for d in first] == ["2026-11-26", "2026-11-27"]
    # Last poll 00:30 New York on the 28th: minus one hour is the 27th, so it is re-read.
    last = datetime(2026, 11, 28, 5, 30, tzinfo=UTC)
    later = query_window(last, now=last + timedelta(minutes=15), options=options)
    assert [d.isoformat() for d in later] == ["2026-11-27", "2026-11-28"]


def test_delivered_and_rma_fulfillments_carry_their_date_and_rma_number() -> None:
    """The order query's dateDelivered becomes delivered_at; an RMA number on the fulfillment
    (or, failing that, on the order) becomes record.extra.rma_number."""
    order = {
        "orderId": "K-2",
        "emailAddress": "jane@example.com",
        "dateUpdated": "2026-11-29 09:30:00",
        "rmaNumber": "RMA-ORDER",
        "fulfillments": [
            {"fulfillmentId": 601, "status": "DELIVERED", "dateDelivered": "11/28/2026"},
            {"fulfillmentId": 602, "status": "RMA_PENDING", "returnMerchandiseAuthorization": 77},
            {"fulfillmentId": 603, "status": "RETURNED"},
        ],
    }
    delivered, pending, returned = order_records(order, tz=NY, received_at=NOW, source="test")
    assert isinstance(delivered, Record) and isinstance(pending, Record)
    assert isinstance(returned, Record)
    assert (delivered.status, delivered.delivered_at) == (Status.DELIVERED, "11/28/2026")
    assert (pending.status, pending.extra["rma_number"]) == (Status.RMA_PENDING, "77")
    assert (returned.status, returned.extra["rma_number"]) == (Status.RETURNED, "RMA-ORDER")
