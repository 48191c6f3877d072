"""The console's pages over HTTP: off without a token, login, headers, keys, refusals.

One real `notifier serve` (SQLite ledger, the example batch delivered to a real SMTP
server) for the module; each test asks it what a browser or a script would.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from support.cli import notifier
from support.project import ROOT, smtp_settings
from support.server import ServeProcess
from support.smtp_sink import SmtpSink
from support.waiting import wait_until

from notifier.core.feedback import FeedbackEvent, FeedbackKind, SuppressionPolicy
from notifier.core.models import NoticeStatus
from notifier.engine.feedback import FeedbackIntake
from notifier.http.operator_auth import COOKIE
from notifier.settings import Settings
from notifier.store.sql import SqlStore

TOKEN = "console-pages-token-3f9a"
VIEWER = "console-pages-viewer-0b72"
KEY = "all_fulfillments:order:KN-1002"
# A fulfillment id with every character a path or a query could mistake for its own.
ODD_FULFILLMENT = "F/7#x:y?z=1&w%20 é"
ODD_KEY = f"tracking_number_assigned:fulfillment:{ODD_FULFILLMENT}"


@dataclass
class Served:
    url: str
    settings: Settings
    sink: SmtpSink

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def status_of(self, key: str) -> NoticeStatus | None:
        store = SqlStore(self.settings.database_url, migrate_schema=False)
        try:
            notice = store.notice(key)
        finally:
            store.close()
        return None if notice is None else notice.status


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp_path = tmp_path_factory.mktemp("console")
    with SmtpSink() as sink:
        settings = smtp_settings(
            tmp_path, sink.host, sink.port, console_token=TOKEN, console_viewer_token=VIEWER
        )
        assert notifier(settings, "run", str(ROOT / "examples" / "batch.jsonl")).exit_code == 1
        with ServeProcess(settings, "--insecure", cwd=tmp_path) as server:
            record = {
                "order_id": "KN-ODD",
                "fulfillment_id": ODD_FULFILLMENT,
                "status": "Pending Shipment",
                "tracking_number": "1Z999AA10123456784",
                "email": "odd@example.com",
            }
            assert httpx.post(f"{server.url}/v1/status-changes", json=record).status_code == 202
            yield Served(server.url, settings, sink)
            assert server.terminate() == 0, server.output


def _secured(answer: httpx.Response) -> None:
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'none'" in policy
    assert "style-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "no-referrer"


def test_without_a_console_token_there_is_no_console(tmp_path: Path) -> None:
    settings = smtp_settings(tmp_path, "127.0.0.1", 2525)
    with ServeProcess(settings, "--insecure", cwd=tmp_path) as server:
        for path in ("/console", "/console/notices", "/console/static/console.css"):
            assert httpx.get(server.url + path).status_code == 404, path
        answer = httpx.post(
            f"{server.url}/console/login", data={"token": "anything"}, follow_redirects=False
        )
        assert answer.status_code == 404
        assert server.terminate() == 0


def test_the_token_in_the_address_becomes_a_cookie_and_leaves(served: Served) -> None:
    answer = httpx.get(
        f"{served.url}/console/notices?token={TOKEN}&q=KN-1002", follow_redirects=True
    )
    assert answer.history and answer.history[0].status_code == 303
    assert answer.history[0].headers["location"] == "/console/notices?q=KN-1002"
    cookie = answer.history[0].headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and TOKEN not in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert answer.status_code == 200 and "3 notices" in answer.text
    wrong = httpx.get(f"{served.url}/console?token=not-the-token")
    assert wrong.status_code == 403 and "Wrong token" in wrong.text
    _secured(wrong)


def test_the_login_form_logs_in_and_never_sends_you_elsewhere(served: Served) -> None:
    with httpx.Client(base_url=served.url) as browser:
        first = browser.get("/console/suppressions")
        assert (
            first.status_code == 401 and 'name="next" value="/console/suppressions"' in first.text
        )
        for target, lands in (
            ("/console/suppressions", "/console/suppressions"),
            ("https://evil.example/", "/console"),
            ("//evil.example/console", "/console"),
            ("/consolex", "/console"),
        ):
            answer = browser.post(
                "/console/login", data={"token": TOKEN, "next": target}, follow_redirects=False
            )
            assert answer.status_code == 303 and answer.headers["location"] == lands, target
        assert browser.get("/console").status_code == 200
        wrong = browser.post(
            "/console/login", data={"token": "nope", "next": "/console/suppressions"}
        )
        assert wrong.status_code == 403
        assert 'name="next" value="/console/suppressions"' in wrong.text, "kept for the retry"
        page = browser.get("/console").text
        csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
        out = browser.post("/console/logout", data={"csrf_token": csrf}, follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/console"
        assert browser.get("/console").status_code == 401


def test_every_console_page_carries_the_security_headers(served: Served) -> None:
    with served.client() as client:
        for path in (
            "/console",
            "/console/notices",
            "/console/notices?q=KN-1002&status=sent",
            f"/console/notices/{quote(KEY, safe='')}",
            f"/console/resend?key={quote(KEY, safe='')}",
            "/console/suppressions",
            "/console/notices/no-such-key",
        ):
            answer = client.get(path)
            assert answer.status_code in (200, 404), path
            assert answer.headers["content-type"].startswith("text/html"), path
            _secured(answer)
            assert "<script" not in answer.text and " style=" not in answer.text, path
        css = client.get("/console/static/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    _secured(httpx.get(f"{served.url}/console"))


def test_the_email_frame_is_a_sandbox(served: Served) -> None:
    with served.client() as client:
        page = client.get(f"/console/notices/{quote(KEY, safe='')}")
        assert f'src="/console/email/{quote(KEY, safe="")}"' in page.text
        assert "<iframe" in page.text and " sandbox " in page.text
        html = client.get(f"/console/email/{quote(KEY, safe='')}")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    policy = html.headers["content-security-policy"]
    assert policy.startswith("sandbox;") and "script-src" not in policy
    assert "default-src 'none'" in policy and "frame-ancestors 'self'" in policy
    assert "KN-1002" in html.text
    assert httpx.get(f"{served.url}/console/email/{quote(KEY, safe='')}").status_code == 401


def test_keys_with_any_characters_round_trip(served: Served) -> None:
    assert wait_until(lambda: served.status_of(ODD_KEY) is NoticeStatus.SENT, timeout=20)
    with served.client() as client:
        listed = client.get("/console/notices", params={"q": "KN-ODD"})
        assert f'href="/console/notices/{quote(ODD_KEY, safe="")}"' in listed.text
        page = client.get(f"/console/notices/{quote(ODD_KEY, safe='')}")
        assert page.status_code == 200
        assert "F/7#x:y?z=1&amp;w%20 é" in page.text
        email = client.get(f"/console/email/{quote(ODD_KEY, safe='')}")
        assert email.status_code == 200
        # A key that is a prefix of another is its own notice, not the other's.
        assert client.get(f"/console/notices/{quote(ODD_KEY[:-1], safe='')}").status_code == 404


def test_bad_search_fields_are_named_not_a_500(served: Served) -> None:
    with served.client() as client:
        for params, named in (
            ({"status": "lost"}, "status 'lost'"),
            ({"from": "yesterday"}, "from 'yesterday'"),
            ({"to": "2026-13-01"}, "to '2026-13-01'"),
            ({"page": "0"}, "page '0'"),
            ({"page": "9" * 30}, "is not a page number"),
            ({"q": "KN-1002\x00"}, "q holds a NUL character"),
        ):
            answer = client.get("/console/notices", params=params)
            assert answer.status_code == 400, params
            assert named in answer.text.replace("&#39;", "'"), params


def test_search_filters_and_pages(served: Served) -> None:
    with served.client() as client:
        by_rule = client.get("/console/notices", params={"rule": "all_fulfillments"})
        assert "5 notices" in by_rule.text
        by_campaign = client.get("/console/notices", params={"campaign": "12", "q": "KN-1002"})
        assert "3 notices" in by_campaign.text
        future = client.get("/console/notices", params={"from": "2999-01-01"})
        assert "No notice matches." in future.text
        csv_link = client.get("/console/notices", params={"q": "KN-1002", "status": "sent"})
        assert 'href="/v1/notices.csv?q=KN-1002&amp;status=sent"' in csv_link.text


def test_scripts_may_act_by_bearer_token_without_csrf(served: Served) -> None:
    with served.client() as client:
        answer = client.post(
            "/console/actions/suppress",
            data={"address": "nobody@example.com", "back": "/console/suppressions"},
            follow_redirects=False,
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/suppressions"
        listed = client.get("/console/suppressions")
        assert "nobody@example.com" in listed.text and 'id="flash"' in listed.text
        assert 'id="flash"' not in client.get("/console/suppressions").text, "shown once"
        undone = client.post(
            "/console/actions/unsuppress",
            data={"address": "nobody@example.com", "back": "/console/suppressions"},
            follow_redirects=True,
        )
        assert "nobody@example.com" not in undone.text.split('id="suppressions"')[1]


def test_the_viewer_and_the_anonymous_are_refused_every_action(served: Served) -> None:
    actions = {
        "retry": {"key": KEY},
        "resend": {"key": KEY},
        "suppress": {"address": "sam.okafor@example.com"},
        "unsuppress": {"address": "sam.okafor@example.com"},
    }
    with served.client(VIEWER) as viewer, served.client(None) as nobody:
        for action, form in actions.items():
            assert viewer.post(f"/console/actions/{action}", data=form).status_code == 403
            assert nobody.post(f"/console/actions/{action}", data=form).status_code == 401
        assert viewer.get(f"/console/resend?key={quote(KEY)}").status_code == 403
        page = viewer.get(f"/console/notices/{quote(KEY, safe='')}")
        assert page.status_code == 200 and "<button" not in page.text.split("</header>")[1]
    assert served.status_of(f"{KEY}#resend-1") is None


def test_a_cookie_post_needs_the_csrf_token(served: Served) -> None:
    with httpx.Client(base_url=served.url) as browser:
        browser.get(f"/console?token={TOKEN}")
        assert browser.cookies.get(COOKIE)
        refused = browser.post("/console/actions/resend", data={"key": KEY})
        assert refused.status_code == 403 and "CSRF" in refused.text
        forged = browser.post("/console/actions/resend", data={"key": KEY, "csrf_token": "x"})
        assert forged.status_code == 403
        not_a_form = browser.post("/console/actions/resend", json={"key": KEY})
        assert not_a_form.status_code == 415
    assert served.status_of(f"{KEY}#resend-1") is None


def test_provider_feedback_shows_on_the_timeline_and_beside_the_status(served: Served) -> None:
    """A delivery report tied to the notice by its Message-ID: on its timeline, with the
    provider's words, and its verdict beside `sent`."""
    store = SqlStore(served.settings.database_url, migrate_schema=False)
    try:
        notice = store.notice(KEY)
        assert notice is not None and notice.message_id is not None
        intake = FeedbackIntake(
            store,
            policy=SuppressionPolicy(),
            match_window=timedelta(days=7),
            message_id_domain="example.com",
            clock=lambda: datetime.now(UTC),
        )
        event = FeedbackEvent(
            provider="ses",
            event_id="console-test-delivery-1",
            kind=FeedbackKind.DELIVERED,
            occurred_at=datetime.now(UTC),
            recipient=notice.recipient,
            message_id=notice.message_id,
            diagnostic="250 2.0.0 OK <script>x</script>",
        )
        assert intake.take([event]).stored == 1
    finally:
        store.close()
    with served.client() as client:
        page = client.get(f"/console/notices/{quote(KEY, safe='')}").text
        listed = client.get("/console/notices", params={"q": "KN-1002"}).text
    timeline = page.split('id="timeline"')[1].split("</section>")[0]
    assert "ses: delivered" in timeline and "kind-feedback" in timeline
    assert "250 2.0.0 OK &lt;script&gt;x&lt;/script&gt;" in timeline
    assert 'id="notice-verdict">delivered<' in page
    assert "status-feedback" in listed


def test_odd_input_never_gets_a_500(served: Served) -> None:
    """Whatever is typed into the address bar or posted: an answer, never a server error."""
    with served.client() as client:
        for path in (
            "/console/notices?q=%ff%fe",
            "/console/notices?q=%ED%A0%80",
            "/console/notices?q=a:%ff",
            "/console/notices?to=9999-12-31&from=0001-01-01",
            "/console/notices?q=" + "a" * 20000,
            "/console/notices/%00",
            "/console/notices/%ff",
            "/console/email/%00",
            "/console/resend?key=%00",
        ):
            answer = client.get(path)
            assert answer.status_code < 500, (path, answer.status_code)
        whole_range = client.get("/console/notices?to=9999-12-31&from=0001-01-01")
        assert "notices, newest first" in whole_range.text
        for action, body in (
            ("retry", b"key=%00"),
            ("resend", b"key=%ff"),
            ("suppress", b"address=a@b%00"),
            ("unsuppress", b"\xff\xfe"),
            ("retry", b"&".join(b"f%d=1" % n for n in range(100))),
        ):
            answer = client.post(
                f"/console/actions/{action}",
                content=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert answer.status_code < 500, (action, body[:20], answer.status_code)


def test_the_csv_link_works_with_the_console_cookie(served: Served) -> None:
    with httpx.Client(base_url=served.url, follow_redirects=True) as browser:
        page = browser.get(f"/console/notices?token={TOKEN}&q=KN-1002").text
        link = page.split('id="csv"')[0].rsplit('href="', 1)[1].split('"')[0]
        csv = browser.get(link.replace("&amp;", "&"))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert len(lines) == 4 and all("KN-1002" in line for line in lines[1:])
