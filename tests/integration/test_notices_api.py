"""The notices API through httpx (TestClient) on a real SQLite ledger holding the example
batch, delivered to the outbox, beside the providers' feedback webhooks (Postmark's, with
its Basic credentials); then `notifier serve` as a real process with a real SMTP server for
the retry that ends sent."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from support.feedback_providers import (
    POSTMARK_PASSWORD,
    POSTMARK_USER,
    postmark_auth,
    postmark_bounce,
)
from support.live_uvicorn import LiveServer
from support.project import ROOT, settings_for, smtp_settings
from support.server import ServeProcess
from support.smtp_sink import SmtpSink
from support.waiting import wait_until
from support.webhook import body_of, shipment

from notifier.core.feedback import (
    FeedbackEvent,
    FeedbackKind,
    MatchedBy,
    StoredFeedback,
    SuppressionPolicy,
)
from notifier.core.models import Record
from notifier.core.records import parse_record, read_path
from notifier.engine import Engine
from notifier.http.notices_api import RENDERED_HEADER, notices_api_from_settings
from notifier.http.operator_auth import COOKIE, CSRF_HEADER, OperatorTokens
from notifier.http.webhook import create_app
from notifier.processes.serve import feedback_router_for
from notifier.processes.wiring import feedback_intake, open_engine
from notifier.store.sql import SqlStore

FULL = "console-token-5b1f7e"
VIEWER = "viewer-token-c2a9d4"
BATCH = ROOT / "examples" / "batch.jsonl"


@dataclass
class Api:
    client: TestClient
    engine: Engine
    woken: list[int]

    def get(self, path: str, token: str = FULL, **kwargs: object) -> httpx.Response:
        return self.client.get(path, headers=bearer(token), **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, token: str = FULL, **kwargs: object) -> httpx.Response:
        return self.client.post(path, headers=bearer(token), **kwargs)  # type: ignore[arg-type]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def path_of(key: str, suffix: str = "") -> str:
    return f"/v1/notices/{quote(key, safe='')}{suffix}"


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = settings_for(
        tmp_path,
        console_token=SecretStr(FULL),
        console_viewer_token=SecretStr(VIEWER),
        postmark_webhook_user=POSTMARK_USER,
        postmark_webhook_password=POSTMARK_PASSWORD,
    )
    with open_engine(settings) as engine:
        items = read_path(BATCH, received_at=datetime.now(UTC))
        engine.ingest([item for item in items if isinstance(item, Record)])
        asyncio.run(engine.deliver_due())
        woken: list[int] = []
        router = notices_api_from_settings(engine, settings, wake=lambda: woken.append(1))
        assert router is not None
        routers = [router, feedback_router_for(settings, engine, feedback_intake(settings, engine))]
        app = create_app(settings=settings, engine=engine, routers=routers, insecure=True)
        with TestClient(app) as client:
            yield Api(client, engine, woken)


def kn1002(api: Api) -> list[dict[str, object]]:
    answer = api.get("/v1/notices", params={"q": "KN-1002"})
    assert answer.status_code == 200, answer.text
    notices: list[dict[str, object]] = answer.json()["notices"]
    return notices


# --- reading ----------------------------------------------------------------------------


def test_searching_kn_1002_gives_its_three_notices(api: Api) -> None:
    """The issue's check: the example batch's KN-1002 has three notices."""
    answer = api.get("/v1/notices", params={"q": "KN-1002"}).json()
    assert answer["total"] == 3 and len(answer["notices"]) == 3
    assert {n["order_id"] for n in answer["notices"]} == {"KN-1002"}
    everything = api.get("/v1/notices").json()
    assert everything["total"] == 9  # the example batch's nine notices


def test_the_same_search_as_csv(api: Api) -> None:
    """format=csv and /v1/notices.csv give the same rows, with a header."""
    for answer in (
        api.get("/v1/notices", params={"q": "KN-1002", "format": "csv"}),
        api.get("/v1/notices.csv", params={"q": "KN-1002"}),
    ):
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        assert len(rows) == 3 and {r["order_id"] for r in rows} == {"KN-1002"}


def test_filters_are_checked(api: Api) -> None:
    """An unknown status or a naive date is refused with a clear answer, not a 500."""
    assert api.get("/v1/notices", params={"status": "lost"}).status_code == 422
    naive = api.get("/v1/notices", params={"from": "2026-11-20T00:00:00"})
    assert naive.status_code == 400 and "time zone" in naive.json()["detail"]
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    assert api.get("/v1/notices", params={"from": since}).json()["total"] == 9


def test_a_notice_has_its_timeline_and_trigger_record(api: Api) -> None:
    """Its records, creation and send in order; the key survives URL-encoding."""
    key = str(kn1002(api)[0]["key"])
    answer = api.get(path_of(key))
    assert answer.status_code == 200, answer.text
    detail = answer.json()
    assert detail["notice"]["key"] == key and detail["copy_kept"] is True
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds[0] == "record" and "created" in kinds and kinds[-1] == "attempt"
    assert detail["timeline"][-1]["outcome"] == "sent"
    assert detail["trigger_record"]["order_id"] == "KN-1002"
    assert api.get(path_of("no:such#key")).status_code == 404


def test_the_message_is_the_sent_copy_or_a_marked_re_render(api: Api) -> None:
    """Kept: the exact bytes. Pruned: re-rendered from today's templates, and it says so."""
    key = str(kn1002(api)[0]["key"])
    kept = api.get(path_of(key, "/message"))
    assert kept.status_code == 200 and kept.headers["content-type"] == "message/rfc822"
    assert kept.content == api.engine.store.sent_copy(key)
    assert RENDERED_HEADER not in kept.headers
    api.engine.store.prune_sent_copies(before=datetime.now(UTC) + timedelta(days=1), limit=100)
    again = api.get(path_of(key, "/message"))
    assert again.status_code == 200 and "re-rendered" in again.headers[RENDERED_HEADER]
    original, rendered = message_from_bytes(kept.content), message_from_bytes(again.content)
    assert rendered["Subject"] == original["Subject"] and rendered["To"] == original["To"]


# --- acting -----------------------------------------------------------------------------


def test_resend_creates_a_new_notice_whose_key_round_trips(api: Api) -> None:
    """202 with the new key (with '#'); it is pending, due now, and the worker is woken."""
    key = str(kn1002(api)[0]["key"])
    answer = api.post(path_of(key, "/resend"))
    assert answer.status_code == 202, answer.text
    new_key = answer.json()["key"]
    assert new_key == f"{key}#resend-1" and api.woken
    copy = api.get(path_of(new_key)).json()
    assert copy["notice"]["status"] == "pending"
    assert copy["timeline"][-1]["kind"] == "action"
    assert copy["timeline"][-1]["actor"].startswith("console-token:")
    assert api.get("/v1/notices", params={"q": key}).json()["total"] == 2  # prefix finds both


def test_retry_of_a_sent_notice_is_a_conflict(api: Api) -> None:
    """Retry is for failed or waiting notices: a sent one gets 409 saying to resend."""
    key = str(kn1002(api)[0]["key"])
    answer = api.post(path_of(key, "/retry"))
    assert answer.status_code == 409 and "resend" in answer.json()["detail"]
    assert api.post(path_of("no:such:key", "/retry")).status_code == 404


def test_suppressions_list_add_remove(api: Api) -> None:
    """Added from a notice's page (its timeline shows it), listed, removed, 404 the second time."""
    key = str(kn1002(api)[0]["key"])
    body = {"address": "Sam.Okafor@example.com", "reason": "asked us", "notice_key": key}
    added = api.post("/v1/suppressions", json=body)
    assert added.status_code == 200 and added.json()["suppressed"] is True
    listed = api.get("/v1/suppressions").json()
    assert [(s["address"], s["reason"]) for s in listed] == [("sam.okafor@example.com", "asked us")]
    gone = api.client.delete(
        f"/v1/suppressions/{quote('sam.okafor@example.com')}",
        params={"notice_key": key},
        headers=bearer(FULL),
    )
    assert gone.status_code == 200 and gone.json()["suppressed"] is False
    again = api.client.delete("/v1/suppressions/sam.okafor@example.com", headers=bearer(FULL))
    assert again.status_code == 404
    actions = [
        e["outcome"] for e in api.get(path_of(key)).json()["timeline"] if e["kind"] == "action"
    ]
    assert actions == ["suppress", "unsuppress"]
    bad = api.post("/v1/suppressions", json={"address": "not an address"})
    assert bad.status_code == 422


# --- who may ----------------------------------------------------------------------------


def test_the_viewer_reads_but_every_action_is_refused(api: Api) -> None:
    """403 on every POST and DELETE; the ledger is unchanged."""
    key = str(kn1002(api)[0]["key"])
    assert api.get(path_of(key), token=VIEWER).status_code == 200
    before = api.get("/v1/notices").json()["total"]
    for answer in (
        api.post(path_of(key, "/retry"), token=VIEWER),
        api.post(path_of(key, "/resend"), token=VIEWER),
        api.post("/v1/suppressions", token=VIEWER, json={"address": "a@example.com"}),
        api.client.delete("/v1/suppressions/a@example.com", headers=bearer(VIEWER)),
    ):
        assert answer.status_code == 403, answer.text
    assert api.get("/v1/notices").json()["total"] == before
    assert api.engine.store.suppressions() == []


def test_without_a_token_401(api: Api) -> None:
    """No credentials or a wrong token: 401 with a Bearer challenge."""
    assert api.client.get("/v1/notices").status_code == 401
    wrong = api.get("/v1/notices", token="guess")
    assert wrong.status_code == 401 and "Bearer" in wrong.headers["www-authenticate"]


def test_a_cookie_post_without_the_csrf_token_is_refused(api: Api) -> None:
    """The console cookie reads; its POSTs need X-CSRF-Token (a forged form has none)."""
    tokens = OperatorTokens(FULL, VIEWER)
    operator = tokens.by_token(FULL)
    assert operator is not None
    api.client.cookies.set(COOKIE, tokens.cookie_value(operator))
    key = str(api.client.get("/v1/notices", params={"q": "KN-1002"}).json()["notices"][0]["key"])
    refused = api.client.post(path_of(key, "/resend"))
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert api.client.get(path_of(key + "#resend-1")).status_code == 404  # nothing was done
    allowed = api.client.post(path_of(key, "/resend"), headers={CSRF_HEADER: operator.csrf})
    assert allowed.status_code == 202


def test_a_store_that_does_not_answer_is_a_503(api: Api, tmp_path: Path) -> None:
    """The ledger file gone (and no tables where it was): 503 with Retry-After, never 500."""
    store = api.engine.store
    assert isinstance(store, SqlStore)
    store.engine.dispose()
    (tmp_path / "notifier.db").unlink()
    for answer in (api.get("/v1/notices"), api.get(path_of("a:b:c")), api.get("/v1/suppressions")):
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "5"


def test_no_console_token_means_no_api(tmp_path: Path) -> None:
    """Without NOTIFIER_CONSOLE_TOKEN nothing is mounted: serve answers 404."""
    with open_engine(settings_for(tmp_path)) as engine:
        assert notices_api_from_settings(engine, settings_for(tmp_path)) is None


# --- the real server --------------------------------------------------------------------


def test_a_failed_notice_retried_through_serve_ends_sent(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """Refused for good once; the operator's retry (Bearer) sends it when the server is back."""
    settings = smtp_settings(
        tmp_path, smtp_sink.host, smtp_sink.port, console_token=SecretStr(FULL)
    )
    smtp_sink.reply_with("554 5.7.1 refused by policy", stage="data")
    key = "tracking_number_assigned:fulfillment:F-1"
    with (
        ServeProcess(settings, "--insecure", cwd=tmp_path) as server,
        httpx.Client(base_url=server.url, headers=bearer(FULL), timeout=10) as http,
    ):
        ingested = http.post(
            "/v1/status-changes",
            content=body_of(shipment(1)),
            headers={"content-type": "application/json"},
        )
        assert ingested.status_code == 202, ingested.text

        def status() -> str:
            return str(http.get(path_of(key)).json()["notice"]["status"])

        wait_until(lambda: status() == "failed", timeout=10)
        assert http.post(path_of(key, "/retry")).status_code == 200
        wait_until(lambda: status() == "sent", timeout=10)
        timeline = http.get(path_of(key)).json()["timeline"]
        outcomes = [(e["kind"], e["outcome"]) for e in timeline if e["kind"] != "record"]
        assert outcomes == [
            ("created", None),
            ("attempt", "failed"),
            ("action", "retry"),
            ("attempt", "sent"),
        ]
        failed = next(e for e in timeline if e["outcome"] == "failed")
        assert "554 5.7.1" in str(failed["detail"])
        assert str(timeline[-1]["detail"]).startswith("250")  # the server's reply to DATA
    assert len(smtp_sink.deliveries) == 1


def test_serve_without_a_console_token_answers_404(tmp_path: Path) -> None:
    """The API does not exist unless configured."""
    with (
        ServeProcess(settings_for(tmp_path), "--insecure", cwd=tmp_path) as server,
        httpx.Client(base_url=server.url, timeout=10) as http,
    ):
        assert http.get("/v1/notices", headers=bearer(FULL)).status_code == 404


def test_provider_feedback_shows_on_the_timeline(api: Api) -> None:
    """A bounce reported for a sent notice is the last entry of its timeline, with its words."""
    key = str(kn1002(api)[0]["key"])
    notice = api.engine.store.notice(key)
    assert notice is not None and notice.sent_at is not None
    later = notice.sent_at + timedelta(minutes=5)
    event = FeedbackEvent(
        provider="postmark",
        event_id="pm-1",
        kind=FeedbackKind.BOUNCE_PERMANENT,
        occurred_at=later,
        recipient=notice.recipient,
        message_id=notice.message_id,
        diagnostic="550 5.1.1 <sam.okafor@example.com>: user unknown",
    )
    api.engine.store.add_feedback(
        [StoredFeedback(event, key, MatchedBy.MESSAGE_ID, later)], policy=SuppressionPolicy()
    )
    last = api.get(path_of(key)).json()["timeline"][-1]
    assert last["kind"] == "feedback" and last["title"] == "postmark: bounced"
    assert "user unknown" in last["detail"]


def test_the_providers_verdict_is_in_the_search_and_the_notice(api: Api) -> None:
    """Postmark's hard bounce, posted to its webhook for one sent notice: that notice's
    `feedback` is "bounced" in the search and on its own; the others' stay null."""
    notices = kn1002(api)
    key, message_id = str(notices[0]["key"]), str(notices[0]["message_id"])
    recipient = str(notices[0]["recipient"])
    assert {n["feedback"] for n in notices} == {None}  # delivered to the outbox, no report

    reported = api.client.post(
        "/v1/feedback/postmark",
        json=postmark_bounce(recipient, message_id),
        headers={"Authorization": postmark_auth()},
    )

    assert reported.status_code == 200, reported.text
    assert reported.json()["matched"] == {"message-id": 1}
    verdicts = {n["key"]: n["feedback"] for n in kn1002(api)}
    assert verdicts.pop(key) == "bounced"
    assert set(verdicts.values()) == {None}
    assert api.get(path_of(key)).json()["notice"]["feedback"] == "bounced"


def test_the_openapi_document_says_what_feedback_means(api: Api) -> None:
    """The field is documented, naming every verdict it may hold."""
    schema = api.client.get("/openapi.json").json()
    feedback = schema["components"]["schemas"]["NoticeOut"]["properties"]["feedback"]
    for verdict in (kind.verdict for kind in FeedbackKind):
        assert verdict in feedback["description"]


def test_keys_with_slashes_and_percent_signs_round_trip(api: Api) -> None:
    """A fulfillment id with '/', '%', '#' and a space: its key is found in every route.

    Over a real uvicorn server: Starlette's TestClient decodes the path twice."""
    record = parse_record(
        shipment("x", order_id="KN/77", fulfillment_id="F/7 #a%2F"), received_at=datetime.now(UTC)
    )
    report = api.engine.ingest([record])
    (key,) = report.created_keys
    assert "/" in key and "%" in key and "#" in key
    with (
        LiveServer(api.client.app) as server,
        httpx.Client(base_url=server.url, headers=bearer(FULL), timeout=10) as http,
    ):
        got = http.get(path_of(key))
        assert got.status_code == 200, got.text
        assert got.json()["notice"]["key"] == key
        assert http.get(path_of(key, "/message")).status_code == 200  # not sent: re-rendered
        assert http.post(path_of(key, "/retry")).status_code == 409  # pending: not retried
        found = http.get("/v1/notices", params={"q": key}).json()["notices"]
        assert [n["key"] for n in found] == [key]
