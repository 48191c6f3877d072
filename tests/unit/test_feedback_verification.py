"""The webhooks' verification logic that needs no server: freshness, Basic credentials, the
Mailgun token memory, the SendGrid key setting, the SNS string-to-sign."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from notifier.errors import ConfigError
from notifier.http.feedback import FeedbackConfig
from notifier.http.feedback.common import Unverified, check_fresh
from notifier.http.feedback.mailgun import TokenLedger
from notifier.http.feedback.postmark import check_basic_auth
from notifier.http.feedback.sendgrid import load_public_key
from notifier.http.feedback.sns import SnsMessage
from notifier.settings import Settings

NOW = datetime.now(UTC)


def test_freshness_is_five_minutes_either_way() -> None:
    check_fresh(NOW - timedelta(seconds=299), NOW, what="t")
    check_fresh(NOW + timedelta(seconds=299), NOW, what="t")
    with pytest.raises(Unverified, match="old"):
        check_fresh(NOW - timedelta(seconds=301), NOW, what="t")
    with pytest.raises(Unverified, match="ahead"):
        check_fresh(NOW + timedelta(seconds=301), NOW, what="t")


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer x",
        "Basic",
        "Basic !!!",
        _basic("user"),
        _basic("user:wrong"),
        _basic("other:pw"),
    ],
)
def test_basic_credentials_other_than_the_configured_ones_are_refused(header: str | None) -> None:
    with pytest.raises(Unverified):
        check_basic_auth(header, user="user", password="pw")


def test_basic_credentials_may_hold_colons_in_the_password() -> None:
    check_basic_auth(_basic("user:p:w"), user="user", password="p:w")
    check_basic_auth("basic " + _basic("user:p:w")[6:], user="user", password="p:w")


def test_a_mailgun_token_is_good_once_and_the_memory_is_bounded() -> None:
    tokens = TokenLedger(limit=3)
    assert tokens.first_use("a", NOW)
    assert not tokens.first_use("a", NOW)
    for name in "bcd":
        assert tokens.first_use(name, NOW)
    assert tokens.first_use("a", NOW)  # forgotten once past the bound (its time has run out)


def test_mailgun_tokens_past_the_window_are_forgotten() -> None:
    tokens = TokenLedger()
    tokens.first_use("old", NOW - timedelta(minutes=20))
    tokens.first_use("new", NOW)
    assert tokens.first_use("old", NOW - timedelta(minutes=20))


def test_the_sendgrid_key_setting_must_be_a_p256_public_key() -> None:
    good = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = good.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert load_public_key(base64.b64encode(der).decode()).curve.name == "secp256r1"
    rsa_der = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    for bad in (
        "not base64!",
        base64.b64encode(b"junk").decode(),
        base64.b64encode(rsa_der).decode(),
    ):
        with pytest.raises(ConfigError, match="NOTIFIER_SENDGRID_WEBHOOK_PUBLIC_KEY"):
            load_public_key(bad)


def test_a_bad_sendgrid_key_stops_start_up(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, sendgrid_webhook_public_key="nope")  # type: ignore[call-arg]
    with pytest.raises(ConfigError):
        FeedbackConfig.from_settings(settings)


def test_providers_without_settings_are_off() -> None:
    config = FeedbackConfig.from_settings(Settings(_env_file=None))  # type: ignore[call-arg]
    assert (config.ses, config.postmark, config.sendgrid_key, config.mailgun_key) == (
        None,
        None,
        None,
        None,
    )


def _sns(**fields: str) -> bytes:
    message = {
        "Type": "Notification",
        "MessageId": "m-1",
        "TopicArn": "arn:t",
        "Message": "hello\nworld",
        "Timestamp": "2026-01-02T03:04:05.678Z",
        "SignatureVersion": "1",
        "Signature": base64.b64encode(b"sig").decode(),
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/x.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
    }
    message.update(fields)
    return json.dumps(message).encode()


def test_the_sns_string_to_sign_is_the_documented_fields_in_order() -> None:
    plain = SnsMessage.from_body(_sns()).string_to_sign()
    assert plain == (
        b"Message\nhello\nworld\nMessageId\nm-1\nTimestamp\n2026-01-02T03:04:05.678Z\n"
        b"TopicArn\narn:t\nType\nNotification\n"
    )
    with_subject = SnsMessage.from_body(_sns(Subject="Hi")).string_to_sign()
    assert b"MessageId\nm-1\nSubject\nHi\nTimestamp\n" in with_subject


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"[]", _sns(Type="Other"), _sns(Signature="***"), _sns(Timestamp="soon")],
)
def test_what_is_not_an_sns_message_cannot_be_verified(body: bytes) -> None:
    with pytest.raises(Unverified):
        SnsMessage.from_body(body)
