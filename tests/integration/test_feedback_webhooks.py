"""The provider feedback webhooks end to end: a notice sent through a real SMTP server, then
its provider's report of a bounce, signed with real keys made by the test (an RSA certificate
served over HTTP for SNS, ECDSA for SendGrid, HMAC for Mailgun, Basic auth for Postmark),
on a real SQLite ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from support.certificates import self_signed
from support.cli import notifier
from support.feedback_providers import (
    MAILGUN_KEY,
    POSTMARK_PASSWORD,
    POSTMARK_USER,
    SNS_COMMON_NAME,
    TOPIC,
    SendgridSide,
    SnsSide,
    mailgun_failure,
    mailgun_signed,
    postmark_auth,
    postmark_bounce,
    sendgrid_bounce,
    ses_bounce,
)
from support.project import settings_for, smtp_settings
from support.server import ServeProcess
from support.smtp_sink import SmtpSink
from support.waiting import wait_until
from support.webhook import SECRET, body_of, shipment, signed

from notifier.core.feedback import FeedbackKind
from notifier.core.models import NoticeStatus
from notifier.engine import Engine
from notifier.engine.worker import DeliveryWorker
from notifier.errors import StoreError
from notifier.http.webhook import create_app
from notifier.processes.serve import feedback_router_for
from notifier.processes.wiring import feedback_intake, open_engine
from notifier.settings import Settings
from notifier.store.sql import SqlStore

PROVIDERS = ["ses", "postmark", "sendgrid", "mailgun"]
TEN_MINUTES_AGO = timedelta(minutes=-10)


@dataclass(frozen=True)
class Post:
    path: str
    body: bytes
    headers: dict[str, str]


@pytest.fixture(scope="module")
def sns() -> Iterator[SnsSide]:
    with SnsSide() as side:
        yield side


@pytest.fixture(scope="module")
def sendgrid() -> SendgridSide:
    return SendgridSide()


@dataclass
class Providers:
    """Each provider's signed report of a permanent bounce, and ways to spoil one."""

    sns: SnsSide
    sendgrid: SendgridSide

    def bounce(
        self,
        provider: str,
        recipient: str,
        message_id: str | None,
        *,
        skew: timedelta = timedelta(),
    ) -> Post:
        at = datetime.now(UTC) + skew
        if provider == "ses":
            message = self.sns.notification(ses_bounce(recipient, message_id), at=at)
            return Post(
                "/v1/feedback/ses",
                json.dumps(message).encode(),
                {"Content-Type": "text/plain; charset=UTF-8"},
            )
        if provider == "postmark":
            body = json.dumps(postmark_bounce(recipient, message_id)).encode()
            return Post("/v1/feedback/postmark", body, _postmark_headers())
        if provider == "sendgrid":
            body = json.dumps(sendgrid_bounce(recipient, message_id)).encode()
            return Post("/v1/feedback/sendgrid", body, self.sendgrid.headers(body, at=at))
        body = json.dumps(mailgun_signed(mailgun_failure(recipient, message_id), at=at)).encode()
        return Post("/v1/feedback/mailgun", body, {"Content-Type": "application/json"})

    def redelivery(self, provider: str, post: Post) -> Post:
        """The provider sending the same event again (Mailgun signs each POST afresh)."""
        if provider != "mailgun":
            return post
        value = json.loads(post.body)
        return replace(post, body=json.dumps(mailgun_signed(value["event-data"])).encode())

    def spoiled(self, provider: str, how: str, recipient: str, message_id: str) -> Post:
        if how == "expired":
            return self.bounce(provider, recipient, message_id, skew=TEN_MINUTES_AGO)
        if how == "ahead":
            return self.bounce(provider, recipient, message_id, skew=-TEN_MINUTES_AGO)
        post = self.bounce(provider, recipient, message_id)
        if how == "one-byte-changed":
            return replace(post, body=_one_byte_changed(provider, post.body))
        if how == "cert-url-outside-pattern":
            message = json.loads(post.body)
            outside = message["SigningCertURL"].replace("127.0.0.1", "localhost")
            return replace(
                post,
                body=json.dumps(self.sns.signed({**message, "SigningCertURL": outside})).encode(),
            )
        if how == "topic-not-accepted":
            message = self.sns.notification(
                ses_bounce(recipient, message_id), topic=TOPIC + "-other"
            )
            return replace(post, body=json.dumps(message).encode())
        if how == "wrong-password":
            return replace(
                post, headers={**post.headers, "Authorization": postmark_auth(password="guess")}
            )
        if how == "no-credentials":
            return replace(post, headers={"Content-Type": "application/json"})
        if how == "another-key":
            return replace(post, headers=SendgridSide().headers(post.body))
        if how == "replayed-token":
            return post  # posted twice by the test: the second is the replay
        raise AssertionError(how)


def _one_byte_changed(provider: str, body: bytes) -> bytes:
    # Mailgun signs only its timestamp and token: a changed byte there is what it can catch.
    target = b'"token": "' if provider == "mailgun" else b"5.1.1"
    at = body.index(target) + len(target) + (0 if provider == "mailgun" else -1)
    changed = bytes([body[at] ^ 0x01])
    return body[:at] + changed + body[at + 1 :]


def _postmark_headers() -> dict[str, str]:
    return {"Content-Type": "application/json", "Authorization": postmark_auth()}


@dataclass
class Rig:
    client: TestClient
    engine: Engine
    store: SqlStore
    sink: SmtpSink
    providers: Providers

    def send_notice(self, n: int, **fields: Any) -> tuple[str, str, str]:
        """A Tracking Number Assigned notice sent through the SMTP server: its key, its
        Message-ID as the customer got it, and the recipient."""
        record = shipment(n, **fields)
        body = body_of(record)
        assert (
            self.client.post("/v1/status-changes", content=body, headers=signed(body)).status_code
            == 202
        )
        recipient = record["email"]
        assert wait_until(lambda: any(recipient in m["To"] for m in self.sink.messages), timeout=10)
        message = next(m for m in self.sink.messages if recipient in m["To"])
        message_id = str(message["Message-ID"])
        # The ledger records `sent` (with the Message-ID) just after the server's 250.
        assert wait_until(lambda: bool(self.store.notices_by_message_id([message_id])), timeout=10)
        key = self.store.notices_by_message_id([message_id])[message_id]
        return key, message_id, recipient

    def post(self, post: Post) -> Any:
        return self.client.post(post.path, content=post.body, headers=post.headers)

    def untouched(self, key: str, recipient: str) -> bool:
        notice = self.store.notice(key)
        assert notice is not None
        return (
            self.store.feedback_for(key) == []
            and notice.feedback is None
            and not self.store.suppressed([recipient])
        )


def feedback_settings(
    tmp_path: Path, sink: SmtpSink, sns: SnsSide, sendgrid: SendgridSide
) -> Settings:
    return smtp_settings(
        tmp_path,
        sink.host,
        sink.port,
        webhook_secret=SECRET,
        ses_topic_arns=f"{TOPIC}, arn:aws:sns:eu-west-1:123456789012:other",
        ses_cert_url_pattern=sns.url_pattern,
        postmark_webhook_user=POSTMARK_USER,
        postmark_webhook_password=POSTMARK_PASSWORD,
        sendgrid_webhook_public_key=sendgrid.public_key,
        mailgun_signing_key=MAILGUN_KEY,
    )


def app_for(settings: Settings, engine: Engine, worker: DeliveryWorker | None = None) -> Any:
    async def start() -> None:
        if worker is not None:
            worker.start()

    async def stop() -> None:
        if worker is not None:
            await worker.stop()

    return create_app(
        settings=settings,
        engine=engine,
        wake=worker.wake if worker is not None else None,
        routers=[feedback_router_for(settings, engine, feedback_intake(settings, engine))],
        on_startup=[start],
        on_shutdown=[stop],
    )


@pytest.fixture
def rig(tmp_path: Path, sns: SnsSide, sendgrid: SendgridSide) -> Iterator[Rig]:
    with SmtpSink() as sink:
        settings = feedback_settings(tmp_path, sink, sns, sendgrid)
        with open_engine(settings) as engine:
            worker = DeliveryWorker(engine, poll_interval=0.2)
            store = SqlStore(settings.database_url)
            try:
                with TestClient(app_for(settings, engine, worker)) as client:
                    yield Rig(client, engine, store, sink, Providers(sns, sendgrid))
            finally:
                store.close()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_signed_permanent_bounce_suppresses_the_address_and_cancels_the_next_notice(
    rig: Rig, provider: str
) -> None:
    """200; the notice's verdict is bounced; the address is suppressed, naming the bounce;
    the next notice to it is cancelled with that reason."""
    key, message_id, recipient = rig.send_notice(1)

    response = rig.post(rig.providers.bounce(provider, recipient, message_id))

    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["received"] == answer["stored"] == 1
    assert answer["matched"] == {"message-id": 1}
    assert answer["suppressed"] == 1
    (stored,) = rig.store.feedback_for(key)
    assert (stored.event.provider, stored.event.kind) == (provider, FeedbackKind.BOUNCE_PERMANENT)
    notice = rig.store.notice(key)
    assert notice is not None and notice.feedback is not None
    assert notice.feedback.verdict == "bounced"
    reason = rig.store.suppressed([recipient])[recipient]
    assert f"{provider} bounce-permanent" in reason

    body = body_of(shipment(2, email=recipient))
    assert (
        rig.client.post("/v1/status-changes", content=body, headers=signed(body)).status_code == 202
    )
    later = key.replace(":F-1", ":F-2")
    assert later != key
    assert wait_until(
        lambda: (n := rig.store.notice(later)) is not None and n.status is NoticeStatus.CANCELLED,
        timeout=10,
    )
    cancelled = rig.store.notice(later)
    assert cancelled is not None and cancelled.reason is not None
    assert f"{provider} bounce-permanent" in cancelled.reason
    assert len(rig.sink.messages) == 1  # nothing more was mailed to the bounced address


SPOILED = [
    ("ses", "one-byte-changed"),
    ("ses", "expired"),
    ("ses", "ahead"),
    ("ses", "cert-url-outside-pattern"),
    ("ses", "topic-not-accepted"),
    ("postmark", "wrong-password"),
    ("postmark", "no-credentials"),
    ("sendgrid", "one-byte-changed"),
    ("sendgrid", "expired"),
    ("sendgrid", "another-key"),
    ("mailgun", "one-byte-changed"),
    ("mailgun", "expired"),
    ("mailgun", "replayed-token"),
]


@pytest.mark.parametrize(("provider", "how"), SPOILED)
def test_an_unverified_report_is_401_and_changes_nothing(rig: Rig, provider: str, how: str) -> None:
    key, message_id, recipient = rig.send_notice(1)
    post = rig.providers.spoiled(provider, how, recipient, message_id)
    if how == "replayed-token":
        assert rig.post(post).status_code == 200
        rig.store.unsuppress(recipient)
        before = rig.store.feedback_for(key)
        response = rig.post(post)
        assert response.status_code == 401
        assert "replay" in response.json()["detail"]
        assert rig.store.feedback_for(key) == before and not rig.store.suppressed([recipient])
        return

    response = rig.post(post)

    assert response.status_code == 401, response.text
    assert response.json()["detail"]
    assert rig.untouched(key, recipient)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_redelivered_event_is_stored_once(rig: Rig, provider: str) -> None:
    key, message_id, recipient = rig.send_notice(1)
    first = rig.providers.bounce(provider, recipient, message_id)
    assert rig.post(first).json()["stored"] == 1

    again = rig.post(rig.providers.redelivery(provider, first))

    assert again.status_code == 200
    assert (again.json()["stored"], again.json()["duplicates"]) == (0, 1)
    assert len(rig.store.feedback_for(key)) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_report_about_an_unknown_message_is_200_and_unmatched(rig: Rig, provider: str) -> None:
    """Providers retry anything but 2xx: what notifier never sent is taken and counted."""
    response = rig.post(
        rig.providers.bounce(provider, "stranger@example.org", "<not-ours@elsewhere.example>")
    )
    assert response.status_code == 200
    assert response.json()["unmatched"] == 1
    assert response.json()["matched"] == {}


def test_without_the_original_message_id_the_address_ties_it(rig: Rig) -> None:
    """Postmark without the bounce dump: the latest notice sent to the address."""
    key, _, recipient = rig.send_notice(1)
    response = rig.post(rig.providers.bounce("postmark", recipient, None))
    assert response.json()["matched"] == {"address": 1}
    assert len(rig.store.feedback_for(key)) == 1


def test_sns_signature_version_2_and_the_certificate_fetched_once(rig: Rig, sns: SnsSide) -> None:
    key, message_id, recipient = rig.send_notice(1)
    fetched = sns.certificate_fetches
    for version in ("2", "1"):
        message = sns.notification(ses_bounce(recipient, message_id), version=version)
        assert rig.client.post("/v1/feedback/ses", content=json.dumps(message)).status_code == 200
    assert len(rig.store.feedback_for(key)) == 2
    assert sns.certificate_fetches - fetched <= 1  # cached (the module's earlier tests may have)


def test_sns_subscription_confirmation_is_confirmed_for_an_accepted_topic(
    rig: Rig, sns: SnsSide
) -> None:
    before = len(sns.confirmations)
    response = rig.client.post(
        "/v1/feedback/ses", content=json.dumps(sns.subscription_confirmation())
    )
    assert response.status_code == 200, response.text
    assert TOPIC in response.json()["note"]
    assert len(sns.confirmations) == before + 1
    other = sns.subscription_confirmation(topic="arn:aws:sns:us-east-1:999999999999:x")
    assert rig.client.post("/v1/feedback/ses", content=json.dumps(other)).status_code == 401
    assert len(sns.confirmations) == before + 1


def test_an_expired_signing_certificate_is_refused(tmp_path: Path, sns: SnsSide) -> None:
    """A certificate outside its validity is no proof, whatever it signed."""
    stale = SnsSide()
    stale.pem = self_signed(
        stale.key, common_name=SNS_COMMON_NAME, starts=timedelta(days=-30), ends=timedelta(days=-1)
    )
    with stale, SmtpSink() as sink:
        settings = feedback_settings(tmp_path, sink, stale, SendgridSide())
        with open_engine(settings) as engine, TestClient(app_for(settings, engine)) as client:
            message = stale.notification(ses_bounce("a@example.com", None))
            response = client.post("/v1/feedback/ses", content=json.dumps(message))
    assert response.status_code == 401
    assert "not valid now" in response.json()["detail"]


def test_each_endpoint_is_404_until_its_provider_is_configured(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, webhook_secret=SECRET)
    with open_engine(settings) as engine, TestClient(app_for(settings, engine)) as client:
        for provider in PROVIDERS:
            response = client.post(f"/v1/feedback/{provider}", content=b"{}")
            assert response.status_code == 404
            assert "NOTIFIER_" in response.json()["detail"]


def test_an_oversized_body_is_413(rig: Rig) -> None:
    huge = b"[" + b" " * (2 * 1024 * 1024) + b"]"
    for provider in PROVIDERS:
        headers = _postmark_headers() if provider == "postmark" else {}
        response = rig.client.post(f"/v1/feedback/{provider}", content=huge, headers=headers)
        assert response.status_code == 413


def test_an_authentic_but_malformed_body_is_422(rig: Rig, sendgrid: SendgridSide) -> None:
    body = b'{"event": "bounce"}'
    response = rig.client.post(
        "/v1/feedback/sendgrid", content=body, headers=sendgrid.headers(body)
    )
    assert response.status_code == 422
    assert "array" in response.json()["detail"]
    response = rig.client.post(
        "/v1/feedback/postmark", content=b'{"RecordType": "Bounce"}', headers=_postmark_headers()
    )
    assert response.status_code == 422
    assert "Type" in response.json()["detail"]


def test_an_unavailable_ledger_is_503_with_retry_after(
    tmp_path: Path, sns: SnsSide, sendgrid: SendgridSide
) -> None:
    class BrokenStore(SqlStore):
        def add_feedback(self, *args: Any, **kwargs: Any) -> Any:
            raise StoreError("store sqlite:///x: storing feedback: disk I/O error")

    with SmtpSink() as sink:
        settings = feedback_settings(tmp_path, sink, sns, sendgrid)
        with open_engine(settings) as engine:
            engine.store = BrokenStore(settings.database_url)
            try:
                with TestClient(app_for(settings, engine)) as client:
                    post = Providers(sns, sendgrid).bounce("sendgrid", "a@example.com", None)
                    response = client.post(post.path, content=post.body, headers=post.headers)
            finally:
                engine.store.close()
    assert response.status_code == 503
    assert response.headers["retry-after"]


# --- authentic but arbitrary payloads ---------------------------------------------------------

DATA = Path(__file__).resolve().parents[1] / "data" / "feedback"
# JSON has no NaN or infinity (json.dumps would write them as the non-JSON `Infinity`, which
# Mailgun's signature check cannot read: a 401, rightly, and not what this test is about).
_FLOATS = st.floats(allow_nan=False, allow_infinity=False)
_SCALARS = st.none() | st.booleans() | st.integers() | _FLOATS | st.text()
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


def _samples(provider: str) -> list[Any]:
    files = sorted((DATA / provider).glob("*.json"))
    return [json.loads(f.read_text(encoding="utf-8")) for f in files]


@st.composite
def _mutated(draw: st.DrawFn, provider: str) -> Any:
    """A documented sample with one field (top level or one down) replaced by any JSON."""
    value = draw(st.sampled_from(_samples(provider)))
    value = json.loads(json.dumps(value))
    holder = value[0] if isinstance(value, list) else value
    if provider == "mailgun":
        holder = holder["event-data"]
    name = draw(st.sampled_from(sorted(holder)))
    inner = holder[name]
    if isinstance(inner, dict) and inner and draw(st.booleans()):
        holder, name = inner, draw(st.sampled_from(sorted(inner)))
    holder[name] = draw(_JSON)
    return value


def test_authentic_payloads_of_any_shape_are_answered_200_or_422(
    tmp_path: Path, sns: SnsSide, sendgrid: SendgridSide
) -> None:
    """Verified, then whatever the provider's JSON holds: stored, ignored or refused with a
    problem document — never a 500."""
    with SmtpSink() as sink:
        settings = feedback_settings(tmp_path, sink, sns, sendgrid)
        with open_engine(settings) as engine, TestClient(app_for(settings, engine)) as client:

            @given(data=st.data(), provider=st.sampled_from(PROVIDERS))
            @settings_(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
            def check(data: st.DataObject, provider: str) -> None:
                value = data.draw(_JSON | _mutated(provider), label="payload")
                if provider == "ses":
                    message = sns.notification(value if isinstance(value, dict) else {"x": value})
                    post = Post("/v1/feedback/ses", json.dumps(message).encode(), {})
                elif provider == "postmark":
                    post = Post(
                        "/v1/feedback/postmark", json.dumps(value).encode(), _postmark_headers()
                    )
                elif provider == "sendgrid":
                    body = json.dumps(value).encode()
                    post = Post("/v1/feedback/sendgrid", body, sendgrid.headers(body))
                else:
                    event = value.get("event-data") if isinstance(value, dict) else value
                    body = json.dumps(mailgun_signed(event)).encode()  # type: ignore[arg-type]
                    post = Post("/v1/feedback/mailgun", body, {})
                response = client.post(post.path, content=post.body, headers=post.headers)
                assert response.status_code in (200, 422), (provider, response.text)
                assert response.json()

            check()


def test_notifier_serve_answers_the_configured_feedback_webhooks(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """The real process: a notice sent, Mailgun's signed bounce for it matched and the address
    suppressed; a provider left unconfigured is 404."""
    settings = smtp_settings(
        tmp_path,
        smtp_sink.host,
        smtp_sink.port,
        webhook_secret=SECRET,
        mailgun_signing_key=MAILGUN_KEY,
    )
    with ServeProcess(settings, cwd=tmp_path) as server:
        body = body_of(shipment(1))
        assert (
            httpx.post(
                f"{server.url}/v1/status-changes", content=body, headers=signed(body)
            ).status_code
            == 202
        )
        (message,) = smtp_sink.wait_for(1, timeout=20)
        recipient = shipment(1)["email"]
        report = mailgun_signed(mailgun_failure(recipient, str(message["Message-ID"])))
        store = SqlStore(settings.database_url)
        try:
            # The ledger records `sent` (and its Message-ID) just after the server's 250.
            assert wait_until(
                lambda: bool(store.notices_by_message_id([str(message["Message-ID"])])), timeout=10
            )
            answer = httpx.post(f"{server.url}/v1/feedback/mailgun", json=report)
            assert answer.status_code == 200, answer.text
            assert answer.json()["matched"] == {"message-id": 1}
            assert store.suppressed([recipient])
        finally:
            store.close()
        # What the operator sees: the verdict beside `sent`.
        listing = notifier(settings, "notices")
        assert listing.exit_code == 0, listing.stderr
        assert "bounced" in listing.stdout
        assert httpx.post(f"{server.url}/v1/feedback/postmark", json={}).status_code == 404
        assert server.terminate() == 0, server.output
