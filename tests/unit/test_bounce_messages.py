"""Bounce messages -> feedback events: real bounces written by real MTAs (tests/data/bounces)
each read to the expected kind and recipient; the standards' fields read leniently; what is
no bounce is said so, with the reason, never raised."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.bounces import SAMPLES, dsn, sample, sample_names
from support.reliability import EXAMPLES

from notifier.core.feedback import FeedbackEvent, FeedbackKind, verp_address
from notifier.sources.bounces import NotUnderstood, read_bounce

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
PERMANENT, TRANSIENT = FeedbackKind.BOUNCE_PERMANENT, FeedbackKind.BOUNCE_TRANSIENT
DEFERRED, COMPLAINT = FeedbackKind.DEFERRED, FeedbackKind.COMPLAINT

# sample -> (provider, {(recipient, kind)}, the original's Message-ID or None)
EXPECTED = {
    # RFC 3464 DSNs
    "dsn_01.eml": (
        "dsn",
        {("userx@example.com", PERMANENT)},
        "<F1218V8zDv60gxapzha000001ae@hotmail.com>",
    ),
    "dsn_05.eml": ("dsn", {("userx@example.cz", DEFERRED)}, None),
    "dsn_10.eml": (
        "dsn",
        {("anne.person@dom.ain", PERMANENT)},
        "<200210211625.12753.b.a.dude@example.com>",
    ),
    "dsn_11.eml": (
        "dsn",
        {("joem@example.com", PERMANENT)},
        "<mailman.0.1035637201.19036.mailman-developers@python.org>",
    ),
    "dsn_13.eml": (
        "dsn",
        {("userx@example.com", PERMANENT)},
        "<mailman.8262.1143060203.1568.wed_ride@grizz.org>",
    ),
    "dsn_14.eml": (
        "dsn",
        {("userx@example.com.dk", PERMANENT)},
        "<mailman.2721.1143482819.1567.gpc-talk@grizz.org>",
    ),
    "dsn_16.eml": ("dsn", {("userx@example.com", PERMANENT)}, None),
    "dsn_17.eml": (
        "dsn",
        {("userx@example.fi", DEFERRED)},
        "<mailman.150418.1209869464.31038.pray4-team@strategicnetwork.org>",
    ),
    "simple_42.eml": ("dsn", {("david...@gmail.com", PERMANENT)}, None),
    # RFC 5965 abuse report
    "arf_rfc5965.eml": (
        "arf",
        {("user@example.com", COMPLAINT)},
        "<8787KJKJ3K4J3K4J3K4J3.mail@example.net>",
    ),
    # the non-standard rest, by flufl.bounce's detectors
    "exim_01.eml": (
        "bounce",
        {("userx@its.example.nl", PERMANENT)},
        "<19990920022322.A19735@stereo.rotzorg.org>",
    ),
    "postfix_01.eml": ("bounce", {("xxxxx@local.ie", PERMANENT)}, None),
    "postfix_02.eml": (
        "bounce",
        {("yyyyy@digicool.com", PERMANENT)},
        "<14915.64162.965657.699956@anthem.concentric.net>",
    ),
    "qmail_01.eml": ("bounce", {("userx@example.de", PERMANENT)}, None),
    "qmail_06.eml": ("bounce", {("ntl@xxx.com", PERMANENT)}, None),
    "sendmail_01.eml": (
        "bounce",
        {("zzzzz@nfg.nl", PERMANENT), ("zzzzz@shaft.coal.nl", PERMANENT)},
        None,
    ),
    "simple_03.eml": ("bounce", {("userx@example.za", DEFERRED)}, None),
    "simple_17.eml": ("bounce", {("userx@example.com", PERMANENT)}, None),
    "simple_28.eml": ("bounce", {("userx@example.com", DEFERRED)}, None),
    "yahoo_01.eml": ("bounce", {("userx@example.com", PERMANENT)}, None),
    "yahoo_13.eml": (
        "bounce",
        {("bogus-address@example.net", PERMANENT)},
        "<130907fb-848c-d154-8e59-ed1e08319fcf@yahoo.com>",
    ),
    "microsoft_01.eml": ("bounce", {("userx@example.COM", PERMANENT)}, None),
    "groupwise_01.eml": (
        "bounce",
        {("userx@example.EDU", PERMANENT)},
        "<20010720085308.H17468@magic.example.org>",
    ),
    "smtp32_01.eml": ("bounce", {("userx@example.ph", PERMANENT)}, None),
    "netscape_01.eml": (
        "bounce",
        {("aaaaa@corel.com", PERMANENT), ("bbbbb@corel.com", PERMANENT)},
        None,
    ),
    "llnl_01.eml": ("bounce", {("user1@example.gov", PERMANENT)}, None),
    "aol_01.eml": ("bounce", {("screenname@aol.com", PERMANENT)}, None),
}
NOT_BOUNCES = ("dumbass_01.eml", "groupwise_03.eml", "qmail_08.eml")


def events_of(raw: bytes | email.message.Message, **options: object) -> list[FeedbackEvent]:
    message = raw if isinstance(raw, email.message.Message) else email.message_from_bytes(raw)
    reading = read_bounce(message, received_at=NOW, **options)  # type: ignore[arg-type]
    assert isinstance(reading, list), reading
    return reading


def test_every_sample_is_accounted_for() -> None:
    assert set(sample_names()) == set(EXPECTED) | set(NOT_BOUNCES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_real_bounce_reads_to_its_kind_recipient_and_original(name: str) -> None:
    provider, outcomes, message_id = EXPECTED[name]

    events = events_of(sample(name))

    assert {(e.recipient, e.kind) for e in events} == outcomes
    assert {e.provider for e in events} == {provider}
    assert {e.message_id for e in events} == {message_id}
    assert all(e.occurred_at <= NOW and e.diagnostic for e in events)
    assert len({e.event_id for e in events}) == len(events)


@pytest.mark.parametrize("name", NOT_BOUNCES)
def test_a_message_that_is_no_bounce_is_not_understood_with_the_reason(name: str) -> None:
    reading = read_bounce(sample(name), received_at=NOW)

    assert isinstance(reading, NotUnderstood)
    assert str(reading).startswith("no bounce or complaint report found; From: ")


def test_reading_the_same_bounce_twice_gives_the_same_event_ids() -> None:
    first = events_of(sample("sendmail_01.eml"))
    again = events_of(sample("sendmail_01.eml"))

    assert [e.event_id for e in first] == [e.event_id for e in again]


def test_a_report_listing_one_recipient_many_times_is_one_event() -> None:
    # dsn_11 repeats the same recipient block eleven times.
    assert len(events_of(sample("dsn_11.eml"))) == 1


def test_the_bounce_is_dated_by_its_date_header() -> None:
    [event] = events_of(sample("dsn_10.eml"))

    assert event.occurred_at == datetime(
        2002, 10, 21, 15, 20, 58, tzinfo=UTC
    )  # "21 Oct 2002 15:20:58 GMT"


def test_a_date_in_the_future_is_taken_as_received() -> None:
    raw = dsn(to="x@shop.example", recipient="jane@example.com", when=NOW + timedelta(days=3))

    [event] = events_of(raw)

    assert event.occurred_at == NOW


# --- DSN fields -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "status", "kind"),
    [
        ("failed", "5.1.1", PERMANENT),
        ("failed", "4.2.2", TRANSIENT),
        ("failure", "5.0.0", PERMANENT),  # what some MTAs write
        ("delayed", "4.4.1", DEFERRED),
        ("delivered", "2.0.0", FeedbackKind.DELIVERED),
        ("relayed", "2.0.0", FeedbackKind.DELIVERED),
        ("x-unknown", "5.2.1", PERMANENT),  # no Action the RFC names: the status decides
    ],
)
def test_a_dsn_kind_comes_from_action_and_status(
    action: str, status: str, kind: FeedbackKind
) -> None:
    [event] = events_of(
        dsn(to="x@shop.example", recipient="jane@example.com", action=action, status=status)
    )

    assert (event.kind, event.recipient, event.provider) == (kind, "jane@example.com", "dsn")


def test_the_diagnostic_is_the_remote_server_words_unfolded() -> None:
    [event] = events_of(dsn(to="x@shop.example", recipient="jane@example.com"))

    assert event.diagnostic == (
        "550 5.1.1 <jane@example.com>: Recipient address rejected:"
        " User unknown in virtual mailbox table"
    )


ORIGINAL = (
    b"From: Example Store <orders@example.com>\r\nTo: jane@example.com\r\n"
    b"Subject: Your parcel\r\nMessage-ID: <0d9a9f2df44f11a4047acf8bd6f3711d@example.com>\r\n"
    b"\r\nHello Jane\r\n"
)


@pytest.mark.parametrize("headers_only", [False, True])
def test_the_original_message_id_comes_from_the_returned_message_or_headers(
    headers_only: bool,
) -> None:
    raw = dsn(
        to="x@shop.example",
        recipient="jane@example.com",
        returned=ORIGINAL,
        headers_only=headers_only,
    )

    [event] = events_of(raw)

    assert event.message_id == "<0d9a9f2df44f11a4047acf8bd6f3711d@example.com>"


def test_the_verp_token_comes_from_the_address_the_bounce_was_sent_to() -> None:
    to = verp_address("bounces@shop.example", "<0d9a9f2df44f11a4047acf8bd6f3711d@example.com>")

    [event] = events_of(
        dsn(to=to, recipient="jane@example.com"), bounce_address="Bounces@Shop.example"
    )

    assert event.verp_token == "0d9a9f2df44f11a4047acf8bd6f3711d"
    assert event.message_id is None


def test_without_a_bounce_address_no_verp_token_is_read() -> None:
    to = verp_address("bounces@shop.example", "<0d9a9f2df44f11a4047acf8bd6f3711d@example.com>")

    [event] = events_of(dsn(to=to, recipient="jane@example.com"))

    assert event.verp_token is None


def test_a_delivered_to_header_carries_the_token_when_to_does_not() -> None:
    raw = dsn(to="postmaster@shop.example", recipient="jane@example.com")
    token_to = verp_address("bounces@shop.example", "<00112233445566778899aabbccddeeff@x>")
    raw = f"Delivered-To: {token_to}\n".encode() + raw

    [event] = events_of(raw, bounce_address="bounces@shop.example")

    assert event.verp_token == "00112233445566778899aabbccddeeff"


# --- ARF ------------------------------------------------------------------------------------


def arf(feedback_type: str, *, rcpt: str | None) -> bytes:
    rcpt_line = f"Original-Rcpt-To: <{rcpt}>\n" if rcpt else ""
    return (
        "From: <staff@hotmail.example>\nTo: <fbl@shop.example>\nSubject: complaint\n"
        "Date: Thu, 26 Nov 2026 10:00:00 +0000\nMessage-ID: <fbl-1@hotmail.example>\n"
        "MIME-Version: 1.0\nContent-Type: multipart/report; report-type=feedback-report;\n"
        ' boundary="B"\n\n--B\nContent-Type: text/plain\n\nThis is an email abuse report.\n'
        f"--B\nContent-Type: message/feedback-report\n\nFeedback-Type: {feedback_type}\n"
        f"User-Agent: Hotmail FBL\nVersion: 1\n{rcpt_line}\n"
        "--B\nContent-Type: text/rfc822-headers\n\nFrom: orders@example.com\n"
        "To: redacted@hotmail.example\n"
        "Message-ID: <0d9a9f2df44f11a4047acf8bd6f3711d@example.com>\n\n--B--\n"
    ).encode()


def test_an_abuse_report_is_a_complaint_about_the_returned_message() -> None:
    [event] = events_of(arf("abuse", rcpt="jane@example.com"))

    assert (event.provider, event.kind, event.recipient) == ("arf", COMPLAINT, "jane@example.com")
    assert event.message_id == "<0d9a9f2df44f11a4047acf8bd6f3711d@example.com>"
    assert event.diagnostic == "abuse report from Hotmail FBL"


def test_without_original_rcpt_to_the_returned_to_names_the_recipient() -> None:
    [event] = events_of(arf("abuse", rcpt=None))

    assert event.recipient == "redacted@hotmail.example"


@pytest.mark.parametrize("feedback_type", ["not-spam", "auth-failure"])
def test_a_report_that_is_no_complaint_records_nothing(feedback_type: str) -> None:
    assert events_of(arf(feedback_type, rcpt="jane@example.com")) == []


# --- hostile input --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage without headers",
        b"Content-Type: multipart/report; report-type=delivery-status\n\nno boundary at all\n",
        b'Content-Type: multipart/report; boundary="x"\n\n--x\nContent-Type: '
        b"message/delivery-status\n\nAction: failed\n--x--\n",
        b"Content-Type: message/rfc822\n\n\xff\xfe\x00\n",
    ],
)
def test_broken_input_is_not_understood_never_raised(raw: bytes) -> None:
    reading = read_bounce(email.message_from_bytes(raw), received_at=NOW)

    assert isinstance(reading, NotUnderstood | list)
    if isinstance(reading, NotUnderstood):
        assert reading.reason


# --- any input: events or a reason, never an exception ------------------------------------

_PROPERTY = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@_PROPERTY
@given(st.binary(max_size=2_000))
def test_any_bytes_read_to_events_or_a_reason(raw: bytes) -> None:
    reading = read_bounce(email.message_from_bytes(raw), received_at=NOW)

    assert isinstance(reading, NotUnderstood | list)


@_PROPERTY
@given(
    name=st.sampled_from(sorted(EXPECTED)),
    cut=st.floats(min_value=0.0, max_value=1.0),
    noise=st.binary(max_size=200),
)
def test_a_real_bounce_cut_short_or_garbled_still_reads_without_raising(
    name: str, cut: float, noise: bytes
) -> None:
    """A truncated mailbox, a broken download: what is left is read, or said not to be."""
    raw = (SAMPLES / name).read_bytes()
    damaged = raw[: int(len(raw) * cut)] + noise

    reading = read_bounce(
        email.message_from_bytes(damaged), received_at=NOW, bounce_address="bounces@shop.example"
    )

    assert isinstance(reading, NotUnderstood | list)
    if isinstance(reading, list):
        assert all(e.occurred_at <= NOW and e.event_id for e in reading)
