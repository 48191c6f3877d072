"""The webhook app through httpx (TestClient): real SQLite ledger, the real rules/templates."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from support.ledger import audit_rows
from support.project import settings_for
from support.webhook import SECRET, TOKEN, body_of, shipment, signed

from notifier.engine import Engine
from notifier.engine.worker import DeliveryWorker
from notifier.errors import StoreError
from notifier.http.metrics import Metrics
from notifier.http.signing import sign
from notifier.http.webhook import create_app
from notifier.processes.wiring import open_engine
from notifier.settings import Settings
from notifier.store.overview import read_overview
from notifier.store.sql import SqlStore

URL = "/v1/status-changes"
POSTBACK = "/v1/postbacks/konnektive"


@contextmanager
def client_for(settings: Settings, **app_options: Any) -> Iterator[tuple[TestClient, Engine]]:
    """The app (with its delivery worker, started and stopped by the lifespan) on a fresh
    ledger, lifespan running."""
    metrics = Metrics()
    with open_engine(settings, observer=metrics) as engine:
        worker = DeliveryWorker(engine, poll_interval=0.5)

        async def start_worker() -> None:
            worker.start()

        app = create_app(
            settings=settings,
            engine=engine,
            wake=worker.wake,
            metrics=metrics,
            on_startup=[start_worker, *app_options.pop("on_startup", ())],
            on_shutdown=[worker.stop, *app_options.pop("on_shutdown", ())],
            **app_options,
        )
        with TestClient(app) as client:
            yield client, engine


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return settings_for(tmp_path, webhook_secret=SECRET, postback_token=TOKEN)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with client_for(settings) as (client, _):
        yield client


@pytest.fixture
def store(settings: Settings, client: TestClient) -> Iterator[SqlStore]:
    store = SqlStore(settings.database_url)
    yield store
    store.close()


def outbox(settings: Settings, count: int, timeout: float = 2.0) -> list[Path]:
    """The .eml files written, waiting up to `timeout` for `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        files = sorted(settings.outbox_dir.glob("*.eml")) if settings.outbox_dir.is_dir() else []
        if len(files) >= count or time.monotonic() > deadline:
            return files
        time.sleep(0.02)


# --- ingestion --------------------------------------------------------------------------


def test_signed_post_is_accepted_and_a_repeat_is_a_duplicate(
    client: TestClient, settings: Settings
) -> None:
    """202 with counts; the same body again is 202 duplicates: 1; one email in all."""
    body = body_of(shipment(1))
    first = client.post(URL, content=body, headers=signed(body))
    assert first.status_code == 202, first.text
    assert first.json() == {"accepted": 1, "duplicates": 0, "stale": 0}
    assert len(outbox(settings, 1)) == 1
    again = client.post(URL, content=body, headers=signed(body))
    assert again.json() == {"accepted": 0, "duplicates": 1, "stale": 0}
    time.sleep(0.3)
    assert len(outbox(settings, 1)) == 1


def test_a_one_record_body_is_kept_for_audit_exactly_as_received(
    client: TestClient, store: SqlStore
) -> None:
    """Spacing, key order and escapes as the sender wrote them (a "\\u" escape included)."""
    body = (
        b'  {"status": "Pending",  "orderId": "O-7", "fulfillmentId": "F-7",'
        b' "email": "c7@example.com", "note": "caf\\u00e9"}\n'
    )
    response = client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 202, response.text
    assert [row.payload for row in audit_rows(store)] == [body.decode().strip()]


def test_a_plain_body_and_one_for_the_general_parser_are_stored_alike(
    client: TestClient, store: SqlStore
) -> None:
    """A plain one-record body is decoded straight into its record, any other by the general
    parser: the same answer, state and audit copy either way; and what surrounds the JSON
    must be JSON's own whitespace on both ways (a form feed is not)."""
    plain = b' {"order_id": "O-1", "fulfillment_id": "F-1", "status": "Pending"}\r\n'
    general = b'{"order_id": "O-2", "fulfillment_id": "F-2", "status": "Pending", "note": "x"}'
    for body in (plain, general):
        response = client.post(URL, content=body, headers=signed(body))
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": 1, "duplicates": 0, "stale": 0}
    payloads = [row.payload for row in audit_rows(store)]
    assert payloads == [plain.decode().strip(), general.decode()]
    with store.engine.connect() as conn:
        states = conn.exec_driver_sql(
            "SELECT fulfillment_id, order_id, status FROM fulfillments ORDER BY 1"
        ).all()
    assert [tuple(row) for row in states] == [("F-1", "O-1", "Pending"), ("F-2", "O-2", "Pending")]
    again = client.post(URL, content=plain, headers=signed(plain))
    assert again.json() == {"accepted": 0, "duplicates": 1, "stale": 0}
    fed = b'\x0c{"order_id": "O-3", "fulfillment_id": "F-3", "status": "Pending"}'
    refused = client.post(URL, content=fed, headers=signed(fed))
    assert refused.status_code == 422, refused.text
    assert "broken JSON" in refused.json()["detail"]


@pytest.mark.parametrize(
    "wrap",
    [lambda rs: rs, lambda rs: {"records": rs}],
    ids=["array", "records-object"],
)
def test_arrays_and_records_objects_are_accepted(client: TestClient, wrap: Any) -> None:
    """Both batch shapes of docs/design.md §2 work; a stale record is counted as stale."""
    records = [
        shipment(1, status="Shipped", occurred_at="2026-11-20T10:00:00Z"),
        shipment(1, status="Pending", occurred_at="2026-11-19T10:00:00Z"),
    ]
    body = body_of(wrap(records))
    response = client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 2, "duplicates": 0, "stale": 1}


def test_one_bad_record_rejects_the_whole_request(client: TestClient, store: SqlStore) -> None:
    """422 names every bad record by index and reason; nothing of the request is stored."""
    records = [shipment(1), shipment(2, status="Teleported"), shipment(3, email="a\r\nb@x.com")]
    body = body_of(records)
    response = client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [e["index"] for e in errors] == [1, 2]
    assert "Teleported" in errors[0]["reason"]
    assert "CR or LF" in errors[1]["reason"]
    assert store.record_count() == 0
    assert store.notices() == []
    # Noted for the console's "needs attention": where and why, not as records.
    rejected = read_overview(store, now=datetime.now(UTC)).attention.rejected
    assert [(r.source, r.location) for r in rejected.items[::-1]] == [
        ("webhook", "#1"),
        ("webhook", "#2"),
    ]
    assert "Teleported" in rejected.items[-1].reason


def test_a_body_that_is_not_json_is_noted_for_the_console(
    client: TestClient, store: SqlStore
) -> None:
    body = b'{"order_id": "O1",'
    response = client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 422
    (noted,) = read_overview(store, now=datetime.now(UTC)).attention.rejected.items
    assert (noted.source, noted.location) == ("webhook", "body")
    assert "JSON" in noted.reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"order_id": ', "broken JSON"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper"),
        (b'[{"order_id": "1", "x": ' + b"[" * 40 + b"]" * 40 + b"}]", "nested deeper"),
        (b"[" + b"9" * 5000 + b"]", "broken JSON"),
        (b'[{"order_id": NaN}]', "broken JSON"),
        (b"", "empty"),
        (b'"just a string"', "rejected"),
        (b"[1, null, []]", "rejected"),
    ],
    ids=[
        "truncated",
        "bad-utf8",
        "deep",
        "deep-extra",
        "huge-int",
        "nan",
        "empty",
        "scalar",
        "non-objects",
    ],
)
def test_hostile_bodies_are_422_never_500(client: TestClient, body: bytes, reason: str) -> None:
    """Anything a client can send that is not valid JSON records is a 422 naming why."""
    response = client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 422, response.text
    assert reason in response.text


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Notifier-Signature": "t=1,v1=zz"},
        {"X-Notifier-Signature": sign(b"{}", SECRET, int(time.time()))},  # another body
        {"X-Notifier-Signature": sign(b"BODY", "not-the-secret", int(time.time()))},
        {"X-Notifier-Signature": sign(b"BODY", SECRET, int(time.time()) - 3600)},
    ],
    ids=["unsigned", "malformed", "tampered", "wrong-secret", "expired"],
)
def test_bad_signatures_are_401_and_store_nothing(
    client: TestClient, store: SqlStore, headers: dict[str, str]
) -> None:
    """Unsigned, malformed, tampered, wrongly signed or expired: 401, nothing stored."""
    body = body_of(shipment(1))
    headers = {**headers, "Content-Type": "application/json"}
    if "BODY" in str(headers):  # sign the real body where the case is about secret/time
        sig = headers["X-Notifier-Signature"]
        t = int(sig.split(",")[0][2:])
        secret = "not-the-secret" if "wrong" in str(headers) else SECRET
        headers["X-Notifier-Signature"] = sign(body, secret, t)
    response = client.post(URL, content=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["detail"]
    assert store.record_count() == 0


def test_rotated_secrets_both_verify(tmp_path: Path) -> None:
    """NOTIFIER_WEBHOOK_SECRET="new,old": requests signed with either are accepted."""
    settings = settings_for(tmp_path, webhook_secret="new-secret,old-secret")
    with client_for(settings) as (client, _):
        for n, secret in enumerate(["old-secret", "new-secret"]):
            body = body_of(shipment(n))
            assert client.post(URL, content=body, headers=signed(body, secret)).status_code == 202
        body = body_of(shipment(9))
        assert client.post(URL, content=body, headers=signed(body, "gone")).status_code == 401


def test_oversized_bodies_are_413_declared_or_streamed(client: TestClient) -> None:
    """2 MiB: 413 from Content-Length, and also when streamed chunked without a length."""
    big = b"[" + b" " * (2 * 1024 * 1024) + b"]"
    response = client.post(URL, content=big, headers=signed(big))
    assert response.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b" " * 32 * 1024

    headers = signed(b"")
    response = client.post(URL, content=chunks(), headers=headers)
    assert response.status_code == 413
    assert "over the limit" in response.json()["detail"]


def test_a_full_size_batch_commits_and_a_larger_one_is_413(
    client: TestClient, store: SqlStore
) -> None:
    """5000 records in one request commit together; 5001 are refused, asking to split."""
    batch = [
        {"order_id": f"O{n}", "fulfillment_id": f"F{n}", "status": "Hold"} for n in range(5001)
    ]
    body = body_of(batch[:5000])
    response = client.post(URL, content=body, headers=signed(body))
    assert response.json()["accepted"] == 5000
    body = body_of(batch)
    response = client.post(URL, content=body, headers=signed(body))
    assert response.status_code == 413
    assert "at most 5000" in response.json()["detail"]
    assert store.record_count() == 5000


def test_non_json_content_type_is_415(client: TestClient) -> None:
    """text/plain or form bodies are refused with 415 before anything is parsed."""
    body = body_of(shipment(1))
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        headers = {**signed(body), "Content-Type": content_type}
        assert client.post(URL, content=body, headers=headers).status_code == 415
    headers = {**signed(body), "Content-Type": "application/json; charset=utf-8"}
    assert client.post(URL, content=body, headers=headers).status_code == 202


def test_store_failure_is_503_with_retry_after(settings: Settings) -> None:
    """When the ledger cannot commit, the sender is told to retry (503), never 500."""

    class BrokenStore(SqlStore):
        def ingest(self, *args: Any, **kwargs: Any) -> Any:
            raise StoreError("store sqlite:///x: ingesting records: disk I/O error")

    with client_for(settings) as (client, engine):
        engine.store = BrokenStore(settings.database_url)
        body = body_of(shipment(1))
        response = client.post(URL, content=body, headers=signed(body))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"


# --- Konnektive postbacks ---------------------------------------------------------------


KONNEKTIVE = {
    "orderId": "KN-7",
    "fulfillmentId": "KF-7",
    "fulfillmentStatus": "SHIPPED",
    "emailAddress": "bob@example.com",
    "firstName": "Bob",
    "trackingNumber": "1Z999AA10123456784",
}


def test_konnektive_get_postback_with_token_creates_the_record(
    client: TestClient, store: SqlStore, settings: Settings
) -> None:
    """GET ?token=...&orderId=... (an Export Profile) stores the record and sends the email."""
    response = client.get(POSTBACK, params={"token": TOKEN, **KONNEKTIVE})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0, "stale": 0}
    state = store.fulfillment("KF-7")
    assert state is not None and state.status.value == "Shipped"
    assert len(outbox(settings, 1)) == 1
    # the CRM calls again with the same data: a duplicate
    assert client.get(POSTBACK, params={"token": TOKEN, **KONNEKTIVE}).json()["duplicates"] == 1


@pytest.mark.parametrize("token", [None, "wrong", "", "tökén"])
def test_konnektive_wrong_or_missing_token_is_401(
    client: TestClient, store: SqlStore, token: str | None
) -> None:
    """No token, a wrong one, or a non-ASCII one: 401 and nothing stored."""
    params = dict(KONNEKTIVE) if token is None else {"token": token, **KONNEKTIVE}
    assert client.get(POSTBACK, params=params).status_code == 401
    assert store.record_count() == 0


def test_konnektive_post_with_header_token_and_form_body(client: TestClient) -> None:
    """POST with the token as a header and the fields form-encoded or as JSON works too."""
    response = client.post(POSTBACK, data=KONNEKTIVE, headers={"X-Notifier-Token": TOKEN})
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1
    as_json = {**KONNEKTIVE, "fulfillmentId": "KF-8"}
    response = client.post(POSTBACK, json=as_json, headers={"X-Notifier-Token": TOKEN})
    assert response.json()["accepted"] == 1
    bad = client.post(POSTBACK, content=b"x", headers={"X-Notifier-Token": TOKEN})
    assert bad.status_code == 415


def test_konnektive_bad_record_is_422_naming_the_field(client: TestClient) -> None:
    """A postback missing the order id says so."""
    params = {"token": TOKEN, **KONNEKTIVE}
    del params["orderId"]
    response = client.get(POSTBACK, params=params)
    assert response.status_code == 422
    assert "order_id" in response.json()["errors"][0]["reason"]


def test_konnektive_field_remapping_from_settings(tmp_path: Path) -> None:
    """An Export Profile with its own field names works via NOTIFIER_POSTBACK_FIELDS."""
    settings = settings_for(
        tmp_path,
        webhook_secret=SECRET,
        postback_token=TOKEN,
        postback_fields={"order": "orderId", "ff": "fulfillment_id", "st": "status"},
    )
    with client_for(settings) as (client, engine):
        params = {"token": TOKEN, "order": "9", "ff": "F9", "st": "Pending"}
        assert client.get(POSTBACK, params=params).status_code == 200
        assert engine.store.fulfillment("F9") is not None


# --- operations -------------------------------------------------------------------------


def test_healthz_metrics_and_docs_answer(client: TestClient) -> None:
    """/healthz is ok, /metrics has the ingest counters and queue gauges, /docs renders."""
    body = body_of([shipment(1), shipment(2)])
    client.post(URL, content=body, headers=signed(body))
    bad = body_of([{"status": "x"}])
    client.post(URL, content=bad, headers=signed(bad))
    assert client.get("/healthz").json() == {"status": "ok"}
    text = client.get("/metrics").text
    assert 'notifier_records_total{outcome="accepted"} 2.0' in text
    assert 'notifier_records_total{outcome="rejected"} 1.0' in text
    assert "notifier_due_notices " in text
    assert 'notifier_notices{status="pending"}' in text
    assert "notifier_send_seconds_bucket" in text
    assert 'notifier_http_requests_total{code="202",route="/v1/status-changes"} 1.0' in text
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/status-changes", "/v1/postbacks/konnektive", "/healthz", "/metrics"} <= set(paths)


def test_logs_never_show_a_full_customer_address(
    client: TestClient, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Request, rejection and delivery logs mask addresses (j***@example.com)."""
    caplog.set_level(logging.INFO)
    body = body_of([shipment(1, email="jane.doe@example.com")])
    client.post(URL, content=body, headers=signed(body))
    outbox(settings, 1)
    bad = body_of([shipment(2, email="john.smith@example.com;x")])
    client.post(URL, content=bad, headers=signed(bad))
    client.get(POSTBACK, params={"token": TOKEN, **KONNEKTIVE, "emailAddress": "bob.jones@x.io"})
    logged = caplog.text
    assert "j***@example.com" in logged
    for address in ("jane.doe@example.com", "john.smith@example.com", "bob.jones@x.io"):
        assert address not in logged


def test_lifespan_runs_hooks_and_mounts_extra_routers(settings: Settings) -> None:
    """Other features plug in: routers are served, startup/shutdown hooks run in order."""
    events: list[str] = []
    router = APIRouter()

    @router.get("/preview/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    async def started() -> None:
        events.append("started")

    async def stopping() -> None:
        events.append("stopping")

    with client_for(settings, routers=[router], on_startup=[started], on_shutdown=[stopping]) as (
        client,
        _,
    ):
        assert events == ["started"]
        assert client.get("/preview/ping").json() == {"pong": "yes"}
    assert events == ["started", "stopping"]


def test_app_refuses_to_build_without_a_secret(tmp_path: Path) -> None:
    """No NOTIFIER_WEBHOOK_SECRET and not insecure: a ConfigError, not an open door."""
    from notifier.errors import ConfigError

    with (
        pytest.raises(ConfigError, match="NOTIFIER_WEBHOOK_SECRET"),
        client_for(settings_for(tmp_path)),
    ):
        pass
