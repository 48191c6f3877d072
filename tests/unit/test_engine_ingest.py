"""The engine's ingestion on MemoryStore: dedup, stale and repeated changes, orders that
reach Shipped, missing data, group commits. What is stored is read off the store itself."""

from __future__ import annotations

from datetime import timedelta

from support.memory_engine import (
    START,
    UPS,
    USPS,
    change,
    rig,
    text_of,
    tna_key,
    tracking,
)

from notifier.core.decide import Outcome
from notifier.core.models import NoticeStatus, Status

DAY = timedelta(days=1)
EARLIER = START - 5 * DAY  # when the changes of these scenarios happened


def test_the_same_batch_twice_without_event_ids_is_all_duplicates() -> None:
    """A batch ingested twice (no event ids): the second time every record is a duplicate,
    nothing more is stored and no notice is created or sent twice."""
    setup = rig()
    records = [
        change("O3", "F1", "Pending Shipment", at=EARLIER, tracking_number=UPS),
        change("O3", "F1", "Shipped", at=EARLIER + timedelta(hours=1), tracking_number=UPS),
    ]
    first = setup.engine.ingest(records)
    assert (first.accepted, first.notices_created) == (2, 2)
    setup.deliver()
    again = setup.engine.ingest(records)
    assert (again.accepted, again.duplicates, again.notices_created) == (0, 2, 0)
    assert setup.deliver().total == 0
    # The audit keeps every record received, the redeliveries as duplicates.
    assert len(setup.sent) == 2
    assert [stored.outcome for stored in setup.store.records] == [
        Outcome.APPLIED,
        Outcome.APPLIED,
        Outcome.DUPLICATE,
        Outcome.DUPLICATE,
    ]
    # The same change with no occurred_at at all, reported twice: one change.
    bare = change("O4", "F9", "Pending", at=None)
    setup.engine.ingest([bare])
    assert setup.engine.ingest([bare]).duplicates == 1
    assert setup.store.records[-1].outcome is Outcome.DUPLICATE


def test_a_redelivered_event_id_is_a_duplicate_whatever_else_changed() -> None:
    """Two records with one event_id are one change: the second is a duplicate, even when
    its fields differ (a sender's retry with a fresh timestamp)."""
    setup = rig()
    first = tracking(1, event_id="evt-1")
    resent = tracking(1, event_id="evt-1", at=START - timedelta(minutes=3))
    report = setup.engine.ingest([first, resent])
    assert (report.accepted, report.duplicates, report.notices_created) == (1, 1, 1)
    assert [(s.record, s.outcome) for s in setup.store.records] == [
        (first, Outcome.APPLIED),
        (resent, Outcome.DUPLICATE),
    ]


def test_an_older_change_arriving_late_is_stale_kept_and_fires_nothing() -> None:
    """Shipped arriving before the older Pending Shipment: the stale record is stored for
    audit, the fulfillment stays Shipped, and only the order email goes out."""
    setup = rig()
    shipped = change("O5", "F1", "Shipped", at=EARLIER + DAY, tracking_number=UPS)
    late = change("O5", "F1", "Pending Shipment", at=EARLIER, tracking_number=UPS)
    report = setup.engine.ingest([shipped, late])
    assert (report.accepted, report.stale, report.notices_created) == (2, 1, 1)
    setup.deliver()
    assert [m["Subject"] for m in setup.sent] == ["Your Example Store order O5 has shipped"]
    assert setup.store.fulfillments["F1"].status is Status.SHIPPED
    assert [s.outcome for s in setup.store.records] == [Outcome.APPLIED, Outcome.STALE]


def test_a_repeat_of_the_current_status_fires_nothing_new_but_updates_details() -> None:
    """Pending Shipment reported again later (a new carrier): a repeat, stored; the state
    takes the new details; no second notice."""
    setup = rig()
    setup.engine.ingest([tracking(1, at=EARLIER)])
    repeat = tracking(1, at=EARLIER + timedelta(hours=2), carrier="FedEx")
    report = setup.engine.ingest([repeat])
    assert (report.accepted, report.repeats, report.notices_created) == (1, 1, 0)
    state = setup.store.fulfillments["F1"]
    assert state.carrier == repeat.carrier and state.occurred_at == EARLIER + timedelta(hours=2)
    assert list(setup.store.notices_by_key) == [tna_key(1)]


def test_all_fulfillments_waits_for_the_whole_order_and_lists_every_parcel() -> None:
    """The order email waits for every fulfillment not cancelled, then lists each tracking
    number (and notes the cancelled item) in one email."""
    setup = rig()
    ids = ["F1", "F2", "F3"]
    first = setup.engine.ingest(
        [change("O2", "F1", "Shipped", at=EARLIER, tracking_number=UPS, order_fulfillment_ids=ids)]
    )
    assert first.notices_created == 0
    assert setup.deliver().total == 0 and setup.sent == []
    setup.engine.ingest(
        [
            change(
                "O2",
                "F2",
                "Shipped",
                at=EARLIER + timedelta(hours=1),
                tracking_number=USPS,
                order_fulfillment_ids=ids,
            ),
            change("O2", "F3", "Cancelled", at=EARLIER + timedelta(hours=2)),
        ]
    )
    setup.deliver()
    (message,) = setup.sent
    text = text_of(message)
    assert UPS in text and USPS in text
    assert "1 item(s) of this order were cancelled" in text
    assert "tools.usps.com" in text_of(message, "html")
    notice = setup.notice("all_fulfillments:order:O2")
    assert notice.status is NoticeStatus.SENT and notice.fulfillment_ids == ("F1", "F2")


def test_an_unheard_of_sibling_holds_the_order_email_back() -> None:
    """Without the order's id list, only known fulfillments count; with it, a sibling not
    yet reported keeps the order from counting as shipped."""
    setup = rig()
    report = setup.engine.ingest(
        [change("O1", "F1", "Shipped", at=EARLIER, order_fulfillment_ids=["F1", "F2"])]
    )
    assert report.notices_created == 0
    assert setup.store.order_fulfillment_ids == {"O1": ("F1", "F2")}
    alone = setup.engine.ingest([change("O2", "F1b", "Shipped", at=EARLIER)])
    assert alone.created_keys == ["all_fulfillments:order:O2"]


def test_a_notice_missing_required_data_is_created_cancelled_with_the_reason() -> None:
    """A Pending Shipment without a tracking number: the notice exists, cancelled, saying
    what was missing; nothing is sent."""
    setup = rig()
    record = change("O1", "F1", "Pending Shipment", at=EARLIER)
    report = setup.engine.ingest([record])
    assert (report.notices_created, report.notices_cancelled) == (1, 1)
    notice = setup.notice(tna_key(1))
    assert notice.status is NoticeStatus.CANCELLED and notice.reason == "missing tracking_number"
    assert setup.deliver().total == 0 and setup.sent == []


def test_ingest_groups_reports_each_group_and_cross_group_duplicates() -> None:
    """One transaction, a report per group; a record an earlier group holds is a duplicate."""
    setup = rig()
    setup.engine.ingest([tracking(0)])
    total, reports = setup.engine.ingest_groups(
        [[tracking(1), tracking(2)], [tracking(1), tracking(3), tracking(0)], []]
    )
    assert [(r.accepted, r.duplicates) for r in reports] == [(2, 0), (1, 2), (0, 0)]
    # Each group is credited with the notices its own records created.
    assert [r.notices_created for r in reports] == [2, 1, 0]
    assert (total.accepted, total.duplicates, total.notices_created) == (3, 2, 3)
    assert sorted(setup.store.notices_by_key) == [tna_key(n) for n in range(4)]
