"""The providers' documented sample payloads, parsed into FeedbackEvents (no I/O, no keys:
verification has its own tests against real signatures)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from notifier.core.feedback import FeedbackKind
from notifier.http.feedback import mailgun, postmark, sendgrid, ses
from notifier.http.feedback.common import PayloadInvalid, iso_time

DATA = Path(__file__).resolve().parents[1] / "data" / "feedback"


def sample(provider: str, name: str) -> Any:
    return json.loads((DATA / provider / name).read_text(encoding="utf-8"))


def test_ses_permanent_bounce_with_dsn() -> None:
    """A Permanent bounce: one event per bounced recipient, the server's words kept."""
    parsed = ses.parse_notification(sample("ses", "bounce-with-dsn.json"), payload="{}")
    (event,) = parsed.events
    assert event.provider == "ses"
    assert event.kind is FeedbackKind.BOUNCE_PERMANENT
    assert event.recipient == "jane@example.com"
    assert event.occurred_at == datetime(2016, 1, 27, 14, 59, 38, 237000, tzinfo=UTC)
    assert "5.1.1" in event.diagnostic and "User" in event.diagnostic
    assert "Permanent bounce (General)" in event.diagnostic
    # The sample's Message-ID ("custom-message-ID") has no domain: not one notifier wrote.
    assert event.message_id is None


def test_ses_bounce_lists_each_recipient_with_its_own_id() -> None:
    parsed = ses.parse_notification(sample("ses", "bounce-without-dsn.json"), payload="{}")
    assert [e.recipient for e in parsed.events] == ["jane@example.com", "richard@example.com"]
    assert len({e.event_id for e in parsed.events}) == 2
    again = ses.parse_notification(sample("ses", "bounce-without-dsn.json"), payload="{}")
    assert [e.event_id for e in again.events] == [e.event_id for e in parsed.events]


def test_ses_complaint_delivery_and_delay() -> None:
    complaint = ses.parse_notification(
        sample("ses", "complaint-with-feedback-report.json"), payload=""
    ).events[0]
    assert (complaint.kind, complaint.recipient) == (FeedbackKind.COMPLAINT, "richard@example.com")
    assert "abuse" in complaint.diagnostic
    delivery = ses.parse_notification(sample("ses", "delivery.json"), payload="").events[0]
    assert delivery.kind is FeedbackKind.DELIVERED
    assert delivery.diagnostic.startswith("250 ok")
    delay = ses.parse_notification(sample("ses", "event-delivery-delay.json"), payload="").events[0]
    assert delay.kind is FeedbackKind.DEFERRED
    assert delay.occurred_at == datetime(2020, 6, 16, 0, 25, 40, 95000, tzinfo=UTC)
    assert "421 4.4.1" in delay.diagnostic


def test_ses_event_publishing_bounce_and_ignored_open() -> None:
    """eventType shapes parse like notificationType; an Open is counted, not an event."""
    bounce = ses.parse_notification(sample("ses", "event-bounce.json"), payload="").events[0]
    assert (bounce.kind, bounce.recipient) == (
        FeedbackKind.BOUNCE_PERMANENT,
        "recipient@example.com",
    )
    opened = ses.parse_notification(sample("ses", "event-open.json"), payload="")
    assert (opened.events, opened.ignored) == ((), 1)


def test_ses_message_id_from_the_original_headers() -> None:
    """commonHeaders.messageId is ours when SES was sent our Message-ID; else mail.headers."""
    value = sample("ses", "bounce-with-dsn.json")
    value["mail"]["commonHeaders"]["messageId"] = "<abc123@example.com>"
    assert ses.parse_notification(value, payload="").events[0].message_id == "<abc123@example.com>"
    del value["mail"]["commonHeaders"]
    value["mail"]["headers"][2]["value"] = "<def456@example.com>"
    assert ses.parse_notification(value, payload="").events[0].message_id == "<def456@example.com>"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda v: v.pop("notificationType"), "notificationType"),
        (lambda v: v.pop("mail"), "mail"),
        (lambda v: v["bounce"].update(bouncedRecipients=[]), "bouncedRecipients"),
        (lambda v: v["bounce"]["bouncedRecipients"][0].update(emailAddress="nobody"), "email"),
        (lambda v: v["bounce"].update(timestamp="yesterday"), "timestamp"),
    ],
)
def test_ses_malformed_notifications_say_what_is_wrong(change: Any, words: str) -> None:
    value = sample("ses", "bounce-with-dsn.json")
    change(value)
    with pytest.raises(PayloadInvalid, match=words):
        ses.parse_notification(value, payload="")


def test_postmark_records() -> None:
    bounce = postmark.parse_record(sample("postmark", "bounce.json"), payload="").events[0]
    assert (bounce.kind, bounce.recipient) == (FeedbackKind.BOUNCE_PERMANENT, "john@example.com")
    assert bounce.event_id == "bounce:4323372036854775807"
    assert bounce.occurred_at == datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=UTC)
    assert bounce.diagnostic.startswith("HardBounce: The server was unable")
    assert bounce.message_id is None  # the sample's Content is a placeholder
    complaint = postmark.parse_record(sample("postmark", "spam-complaint.json"), payload="")
    assert complaint.events[0].kind is FeedbackKind.COMPLAINT
    delivery = postmark.parse_record(sample("postmark", "delivery.json"), payload="").events[0]
    assert (delivery.kind, delivery.recipient) == (FeedbackKind.DELIVERED, "john@example.com")
    opened = postmark.parse_record(sample("postmark", "open.json"), payload="")
    assert (opened.events, opened.ignored) == ((), 1)


def test_postmark_bounce_dump_gives_the_original_message_id() -> None:
    """The returned headers' Message-ID, not the bounce message's own."""
    value = sample("postmark", "bounce.json")
    value["Content"] = (DATA / "postmark" / "bounce-dump.eml").read_text(encoding="utf-8")
    event = postmark.parse_record(value, payload="").events[0]
    assert event.message_id == "<0123456789abcdef0123456789abcdef@example.com>"


def test_postmark_types_map_to_kinds() -> None:
    value = sample("postmark", "bounce.json")
    for bounce_type, kind in [
        ("HardBounce", FeedbackKind.BOUNCE_PERMANENT),
        ("BadEmailAddress", FeedbackKind.BOUNCE_PERMANENT),
        ("SoftBounce", FeedbackKind.BOUNCE_TRANSIENT),
        ("Transient", FeedbackKind.BOUNCE_TRANSIENT),
        ("Blocked", FeedbackKind.BOUNCE_TRANSIENT),
    ]:
        value["Type"] = bounce_type
        assert postmark.parse_record(value, payload="").events[0].kind is kind
    value["Type"] = "AutoResponder"
    assert postmark.parse_record(value, payload="").ignored == 1
    with pytest.raises(PayloadInvalid, match="RecordType"):
        postmark.parse_record({"Type": "HardBounce"}, payload="")


def test_sendgrid_documented_events() -> None:
    """Each event of the documented example: the feedback ones parsed, the rest ignored."""
    parsed = sendgrid.parse_events(sample("sendgrid", "events.json"))
    kinds = [e.kind for e in parsed.events]
    assert kinds == [
        FeedbackKind.DEFERRED,
        FeedbackKind.DELIVERED,
        FeedbackKind.BOUNCE_PERMANENT,  # type bounce
        FeedbackKind.BOUNCE_TRANSIENT,  # type blocked
        FeedbackKind.BOUNCE_PERMANENT,  # dropped
        FeedbackKind.COMPLAINT,
    ]
    assert parsed.ignored == 5  # processed, open, click, unsubscribe, group_unsubscribe
    bounce = parsed.events[2]
    assert bounce.message_id == "<14c5d75ce93.dfd.64b469@ismtpd-555>"
    assert bounce.event_id == "6g4ZI7SA-xmRDv57GoPIPw=="
    assert bounce.diagnostic == "Invalid Address: 5.0.0 500 unknown recipient"
    assert bounce.occurred_at == datetime.fromtimestamp(1513299569, UTC)
    assert parsed.events[4].diagnostic.startswith("dropped: ")


def test_sendgrid_refuses_what_is_not_an_event_array() -> None:
    with pytest.raises(PayloadInvalid, match="array"):
        sendgrid.parse_events({"event": "bounce"})
    with pytest.raises(PayloadInvalid, match="#1"):
        sendgrid.parse_events([{"event": "processed"}, "bounce"])
    with pytest.raises(PayloadInvalid, match="timestamp"):
        sendgrid.parse_events([{"event": "bounce", "email": "a@example.com", "timestamp": "x"}])


def test_mailgun_events() -> None:
    """Mailgun's Message-ID comes without angle brackets; notifier's form has them."""
    failed = mailgun.parse_event(sample("mailgun", "failed-permanent.json"), payload="")
    (event,) = failed.events
    assert (event.kind, event.recipient) == (FeedbackKind.BOUNCE_PERMANENT, "alice@example.com")
    assert event.message_id == "<20130503192659.13651.20287@sandbox.mailgun.org>"
    assert event.event_id == "G9Bn5sl1TC6xUoYkbYmoQg"
    assert "Not delivering to previously bounced address" in event.diagnostic
    temporary = mailgun.parse_event(sample("mailgun", "failed-temporary.json"), payload="")
    assert temporary.events[0].kind is FeedbackKind.BOUNCE_TRANSIENT
    assert "over quota" in temporary.events[0].diagnostic
    complained = mailgun.parse_event(sample("mailgun", "complained.json"), payload="")
    assert complained.events[0].kind is FeedbackKind.COMPLAINT
    delivered = mailgun.parse_event(sample("mailgun", "delivered.json"), payload="")
    assert delivered.events[0].kind is FeedbackKind.DELIVERED
    opened = mailgun.parse_event(sample("mailgun", "opened.json"), payload="")
    assert (opened.events, opened.ignored) == ((), 1)


def test_mailgun_failed_without_severity_is_malformed() -> None:
    value = sample("mailgun", "failed-permanent.json")
    del value["event-data"]["severity"]
    with pytest.raises(PayloadInvalid, match="severity"):
        mailgun.parse_event(value, payload="")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2019-11-05T16:33:54.9070259Z", datetime(2019, 11, 5, 16, 33, 54, 907025, tzinfo=UTC)),
        ("2014-01-15T16:09:19.6421112-05:00", datetime(2014, 1, 15, 21, 9, 19, 642111, tzinfo=UTC)),
        ("2016-01-27T14:59:38Z", datetime(2016, 1, 27, 14, 59, 38, tzinfo=UTC)),
    ],
)
def test_provider_times(text: str, expected: datetime) -> None:
    """.NET's seven fraction digits (Postmark) and offsets, read as UTC."""
    assert iso_time(text, what="t") == expected
