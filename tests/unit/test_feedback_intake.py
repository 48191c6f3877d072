"""The feedback intake on the in-memory ledger: each event tied to its notice, stored once,
and the suppression policy applied — so the next notice to a bounced address is cancelled."""

from __future__ import annotations

from datetime import timedelta

from support.memory_engine import Rig, rig, tna_key, tracking

from notifier.core.feedback import (
    FeedbackEvent,
    FeedbackKind,
    MatchedBy,
    SuppressionPolicy,
    verp_token,
)
from notifier.core.models import NoticeStatus
from notifier.engine.feedback import FeedbackIntake

WINDOW = timedelta(days=7)


def intake(r: Rig, **policy: object) -> FeedbackIntake:
    return FeedbackIntake(
        r.store,
        policy=SuppressionPolicy(**policy),  # type: ignore[arg-type]
        match_window=WINDOW,
        message_id_domain=r.engine.config.branding.message_id_domain,
        clock=r.clock,
    )


def sent_one(r: Rig, n: int) -> str:
    r.engine.ingest([tracking(n, at=r.clock.now)])
    r.deliver()
    notice = r.notice(tna_key(n))
    assert notice.status is NoticeStatus.SENT and notice.message_id
    return notice.message_id


def event(n: int, kind: FeedbackKind, r: Rig, **fields: object) -> FeedbackEvent:
    values: dict[str, object] = {
        "provider": "ses",
        "event_id": f"evt-{n}-{kind.value}",
        "kind": kind,
        "occurred_at": r.clock.now,
        "recipient": f"customer{n}@example.com",
        "diagnostic": "smtp; 550 5.1.1 user unknown",
    }
    values.update(fields)
    return FeedbackEvent(**values)  # type: ignore[arg-type]


def test_a_permanent_bounce_suppresses_and_the_next_notice_is_cancelled_naming_it() -> None:
    r = rig()
    message_id = sent_one(r, 1)
    report = intake(r).take(
        [event(1, FeedbackKind.BOUNCE_PERMANENT, r, message_id=message_id.strip("<>"))]
    )
    assert (report.stored, report.matched) == (1, {MatchedBy.MESSAGE_ID: 1})
    assert report.notice_keys == (tna_key(1),)
    assert r.notice(tna_key(1)).feedback is FeedbackKind.BOUNCE_PERMANENT
    assert report.suppressed[0][0] == "customer1@example.com"

    # The same customer's next order: cancelled before sending, naming the bounce.
    r.clock.advance(timedelta(hours=1))
    r.engine.ingest([tracking(2, at=r.clock.now, email="Customer1@example.com")])
    r.deliver()
    later = r.notice(tna_key(2))
    assert later.status is NoticeStatus.CANCELLED
    assert later.reason is not None and "ses bounce-permanent" in later.reason
    assert len(r.sent) == 1


def test_a_redelivered_event_is_stored_and_applied_once() -> None:
    r = rig()
    message_id = sent_one(r, 1)
    complaint = event(1, FeedbackKind.COMPLAINT, r, message_id=message_id)
    first = intake(r).take([complaint])
    again = intake(r).take([complaint])
    assert (first.stored, first.duplicates, len(first.suppressed)) == (1, 0, 1)
    assert (again.stored, again.duplicates, again.suppressed) == (0, 1, ())
    assert len(r.store.feedback_for(tna_key(1))) == 1


def test_a_verp_token_ties_a_bounce_without_the_original_headers() -> None:
    r = rig()
    message_id = sent_one(r, 1)
    bare = event(
        1, FeedbackKind.BOUNCE_PERMANENT, r, recipient=None, verp_token=verp_token(message_id)
    )
    report = intake(r).take([bare])
    assert report.matched == {MatchedBy.VERP: 1}
    assert r.notice(tna_key(1)).feedback is FeedbackKind.BOUNCE_PERMANENT


def test_without_ids_the_latest_notice_to_the_address_within_the_window_is_taken() -> None:
    r = rig()
    sent_one(r, 1)
    r.clock.advance(timedelta(days=1))
    report = intake(r).take([event(1, FeedbackKind.DELIVERED, r)])
    assert report.matched == {MatchedBy.ADDRESS: 1}
    assert r.notice(tna_key(1)).feedback is FeedbackKind.DELIVERED

    r.clock.advance(WINDOW)  # now the send is too long ago to be this event's
    late = intake(r).take([event(1, FeedbackKind.BOUNCE_TRANSIENT, r)])
    assert (late.unmatched, late.matched) == (1, {})


def test_an_event_for_an_unknown_message_is_stored_unmatched() -> None:
    r = rig()
    report = intake(r).take(
        [event(7, FeedbackKind.BOUNCE_PERMANENT, r, message_id="<nope@elsewhere.example>")]
    )
    assert (report.stored, report.unmatched) == (1, 1)
    # Not mail notifier sent (another system's, or backscatter): the address stays.
    assert report.suppressed == ()
    assert not r.store.suppressed(["customer7@example.com"])


def test_the_policy_can_leave_complaints_and_bounces_alone() -> None:
    r = rig()
    message_id = sent_one(r, 1)
    quiet = intake(r, on_permanent_bounce=False, on_complaint=False)
    report = quiet.take(
        [
            event(1, FeedbackKind.COMPLAINT, r, message_id=message_id),
            event(1, FeedbackKind.BOUNCE_PERMANENT, r, message_id=message_id),
        ]
    )
    assert (report.stored, report.suppressed) == (2, ())
    assert not r.store.suppressed(["customer1@example.com"])
