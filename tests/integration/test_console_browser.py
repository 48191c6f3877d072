"""The operator console in a real headless Chromium (Debian's), driven by Playwright, over
a real `notifier serve` with a SQLite ledger, sending to a real SMTP server.

The ledger starts as `make run` leaves it: the example batch, delivered. Each test logs
in as an operator would (the token in the address once) and looks, clicks and checks
what the ledger and the SMTP server say afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from support.browser import chromium, colour_stats
from support.cli import notifier
from support.project import ROOT, smtp_settings
from support.server import ServeProcess
from support.smtp_sink import SmtpSink
from support.waiting import wait_until

from notifier.core.models import NoticeStatus
from notifier.settings import Settings
from notifier.store.sql import SqlStore

TOKEN = "console-browser-token-5c1e"
VIEWER = "console-viewer-token-77ab"
ALL_FULFILLMENTS_KN_1002 = "all_fulfillments:order:KN-1002"
HOSTILE = "<script>alert(1)</script>"


@dataclass
class Console:
    url: str
    settings: Settings
    sink: SmtpSink
    server: ServeProcess

    def notice_url(self, key: str) -> str:
        return f"{self.url}/console/notices/{quote(key, safe='')}"

    def status_of(self, key: str) -> NoticeStatus | None:
        store = SqlStore(self.settings.database_url, migrate_schema=False)
        try:
            notice = store.notice(key)
        finally:
            store.close()
        return None if notice is None else notice.status

    def post_record(self, record: dict[str, Any]) -> None:
        """One status change through the webhook (the server runs --insecure: unsigned)."""
        answer = httpx.post(f"{self.url}/v1/status-changes", json=record, timeout=10)
        assert answer.status_code == 202, answer.text


@pytest.fixture
def console(tmp_path: Path, smtp_sink: SmtpSink) -> Iterator[Console]:
    settings = smtp_settings(
        tmp_path,
        smtp_sink.host,
        smtp_sink.port,
        console_token=TOKEN,
        console_viewer_token=VIEWER,
    )
    ran = notifier(settings, "run", str(ROOT / "examples" / "batch.jsonl"))
    assert ran.exit_code == 1, ran.stderr  # the batch's two broken lines are rejected
    assert len(smtp_sink.wait_for(9)) == 9
    with ServeProcess(settings, "--insecure", cwd=tmp_path) as server:
        yield Console(server.url, settings, smtp_sink, server)
        assert server.terminate() == 0, server.output


@dataclass
class Watched:
    """A browser page, and what went wrong on it: console errors (CSP violations are
    reported there), uncaught page errors and dialogs (an alert() that ran)."""

    page: Any
    errors: list[str]
    dialogs: list[str]


def _watched(context: Any) -> Watched:
    page = context.new_page()
    watched = Watched(page, [], [])
    page.on(
        "console",
        lambda message: watched.errors.append(message.text) if message.type == "error" else None,
    )
    page.on("pageerror", lambda error: watched.errors.append(str(error)))

    def dialog(d: Any) -> None:
        watched.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    return watched


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch, console: Console) -> Iterator[Any]:
    """Chromium, started after the console's ledger is filled (Playwright's sync API runs an
    event loop in this thread, and `notifier run` in process starts its own)."""
    with chromium(monkeypatch) as launched:
        yield launched


@pytest.fixture
def desk(browser: Any) -> Iterator[Watched]:
    """A desktop-sized page."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    yield _watched(context)
    context.close()


def _log_in(watched: Watched, console: Console, token: str = TOKEN) -> None:
    page = watched.page
    page.goto(f"{console.url}/console?token={token}")
    assert page.url == f"{console.url}/console", "the token is dropped from the address"


def test_done_when_the_example_batch_is_on_the_console(desk: Watched, console: Console) -> None:
    """The issue's check: nine notices; KN-1002's three; its All Fulfillments page with both
    parcels' records on the timeline and the email as sent."""
    page = desk.page
    denied = page.goto(f"{console.url}/console")
    assert denied is not None and denied.status == 401
    assert page.locator("#login-form").is_visible()
    desk.errors.clear()  # the browser logs that 401, as it should
    _log_in(desk, console)
    assert page.inner_text("#today-total") == "9"

    page.click("nav >> text=Notices")
    assert page.locator("#notices tbody tr").count() == 9
    assert "9 notices" in page.inner_text("#result-count")

    page.fill("#q", "KN-1002")
    page.click("#search-form button[type=submit]")
    page.wait_for_url("**/console/notices?q=KN-1002**")
    keys = sorted(page.locator("#notices tbody tr a.key").all_inner_texts())
    assert keys == [
        ALL_FULFILLMENTS_KN_1002,
        "tracking_number_assigned:fulfillment:F-2001",
        "tracking_number_assigned:fulfillment:F-2002",
    ]

    page.click(f"text={ALL_FULFILLMENTS_KN_1002}")
    page.wait_for_selector("#timeline")
    assert page.inner_text("#notice-key") == ALL_FULFILLMENTS_KN_1002
    timeline = page.inner_text("#timeline")
    assert "F-2001" in timeline and "F-2002" in timeline, timeline
    assert "sent" in timeline
    assert "As sent" in page.inner_text("#email-source")
    headers = page.inner_text("#email-headers")
    assert "Your Example Store order KN-1002 has shipped" in headers
    assert "Parcel 2 of 2" in page.inner_text("#email-text")
    frame = page.frame_locator("#email-html")
    assert "KN-1002" in frame.locator("body").inner_text()
    # Painted with its inlined styles (the frame's policy allows them, and no script).
    assert frame.locator("a.button").count() == 2
    # The sandboxed frame paints on its own schedule: look again until it has.
    shots: list[tuple[int, int]] = []

    def painted() -> bool:
        shots.append(colour_stats(page.locator("#email-html").screenshot()))
        distinct, blue = shots[-1]
        return distinct > 40 and blue > 300

    assert wait_until(painted, timeout=10, interval=0.2), shots[-1]
    assert desk.errors == [] and desk.dialogs == []


def test_retry_and_resend_from_the_notice_page(desk: Watched, console: Console) -> None:
    """A failed notice retried once the server takes mail again ends sent; a resend asks
    first, then makes a new notice that is sent as a second copy."""
    console.sink.reply_with("554 5.6.0 message refused", stage="data", recipient="ida@example.com")
    console.post_record(
        {
            "order_id": "KN-2001",
            "fulfillment_id": "F-9001",
            "status": "Pending Shipment",
            "tracking_number": "1Z999AA10123456784",
            "email": "ida@example.com",
            "first_name": "Ida",
        }
    )
    key = "tracking_number_assigned:fulfillment:F-9001"
    assert wait_until(lambda: console.status_of(key) is NoticeStatus.FAILED, timeout=20)
    received = len(console.sink.messages)

    page = desk.page
    _log_in(desk, console)
    page.goto(console.notice_url(key))
    assert "failed" in page.inner_text("#notice-status")
    page.click("#retry")
    page.wait_for_selector("#flash")
    assert wait_until(lambda: console.status_of(key) is NoticeStatus.SENT, timeout=20)
    assert len(console.sink.wait_for(received + 1, timeout=10)) == received + 1
    page.reload()
    assert "sent" in page.inner_text("#notice-status")
    timeline = page.inner_text("#timeline")
    assert "554 5.6.0 message refused" in timeline and "Retry requested" in timeline
    assert "console-token" in timeline, "the action names who did it"

    page.click("#resend")
    page.wait_for_selector("#confirm-resend")
    assert "new copy" in page.inner_text("#confirm-resend")
    assert console.status_of(f"{key}#resend-1") is None, "nothing is sent before confirming"
    page.click("#confirm")
    page.wait_for_selector("#flash")
    assert page.url == console.notice_url(f"{key}#resend-1")
    assert wait_until(lambda: console.status_of(f"{key}#resend-1") is NoticeStatus.SENT, timeout=20)
    copies = [
        m for m in console.sink.wait_for(received + 2) if m["To"].endswith("ida@example.com>")
    ]
    assert len(copies) == 2 and copies[0]["Message-ID"] != copies[1]["Message-ID"]
    assert desk.errors == [] and desk.dialogs == []


def test_the_viewer_sees_no_buttons_and_a_forged_post_is_refused(
    desk: Watched, console: Console
) -> None:
    page = desk.page
    _log_in(desk, console, VIEWER)
    assert page.inner_text("#role") == "read-only"
    page.goto(console.notice_url(ALL_FULFILLMENTS_KN_1002))
    assert page.locator("#actions").count() == 0
    assert page.locator("main button, main a.button").count() == 0
    page.goto(f"{console.url}/console/suppressions")
    assert page.locator("main form, main button").count() == 0
    # A forged action with the viewer's own cookie and CSRF value (from its logout form).
    csrf = page.locator("header input[name=csrf_token]").get_attribute("value")
    for action, form in (
        ("retry", {"key": ALL_FULFILLMENTS_KN_1002}),
        ("resend", {"key": ALL_FULFILLMENTS_KN_1002}),
        ("suppress", {"address": "sam.okafor@example.com"}),
        ("unsuppress", {"address": "sam.okafor@example.com"}),
    ):
        answer = page.request.post(
            f"{console.url}/console/actions/{action}", form={**form, "csrf_token": csrf}
        )
        assert answer.status == 403, action
    assert console.status_of(f"{ALL_FULFILLMENTS_KN_1002}#resend-1") is None
    page.goto(f"{console.url}/console/resend?key={quote(ALL_FULFILLMENTS_KN_1002)}")
    assert "Read-only" in page.inner_text("h1")


def test_a_post_without_the_csrf_token_is_refused(desk: Watched, console: Console) -> None:
    page = desk.page
    _log_in(desk, console)
    sent_before = len(console.sink.messages)
    answer = page.request.post(
        f"{console.url}/console/actions/resend", form={"key": ALL_FULFILLMENTS_KN_1002}
    )
    assert answer.status == 403
    assert "CSRF" in answer.text()
    answer = page.request.post(
        f"{console.url}/console/actions/suppress",
        form={"address": "sam.okafor@example.com", "csrf_token": "0" * 64},
    )
    assert answer.status == 403
    assert console.status_of(f"{ALL_FULFILLMENTS_KN_1002}#resend-1") is None
    page.goto(f"{console.url}/console/suppressions")
    assert "sam.okafor@example.com" not in page.inner_text("#suppressions")
    assert len(console.sink.messages) == sent_before


def test_a_script_in_a_customers_name_is_shown_as_text(desk: Watched, console: Console) -> None:
    console.post_record(
        {
            "order_id": "KN-3001",
            "fulfillment_id": "F-3301",
            "status": "Pending Shipment",
            "tracking_number": "1Z999AA10123456784",
            "email": "mallory@example.com",
            "first_name": HOSTILE,
            "last_name": '"><img src=x onerror=alert(2)>',
        }
    )
    key = "tracking_number_assigned:fulfillment:F-3301"
    assert wait_until(lambda: console.status_of(key) is NoticeStatus.SENT, timeout=20)
    page = desk.page
    _log_in(desk, console)
    page.goto(f"{console.url}/console/notices?q=KN-3001")
    page.click(f"text={key}")
    page.wait_for_selector("#trigger")
    assert HOSTILE in page.inner_text("#trigger")
    assert HOSTILE in page.inner_text("#email-text")
    assert page.locator("script").count() == 0
    assert page.locator("main img").count() == 0
    frame = page.frame_locator("#email-html")
    assert HOSTILE in frame.locator("body").inner_text()
    assert desk.dialogs == []
    assert desk.errors == []


PAGES = (
    "/console",
    "/console/notices",
    "/console/notices?q=KN-1002",
    f"/console/notices/{quote(ALL_FULFILLMENTS_KN_1002, safe='')}",
    f"/console/resend?key={quote(ALL_FULFILLMENTS_KN_1002, safe='')}",
    "/console/suppressions",
)


def test_every_page_fits_a_phone_without_console_errors(browser: Any, console: Console) -> None:
    """At 375x800 no page scrolls sideways; no page logs an error (a CSP violation would)."""
    context = browser.new_context(viewport={"width": 375, "height": 800}, is_mobile=True)
    watched = _watched(context)
    page = watched.page
    _log_in(watched, console)
    for path in PAGES:
        answer = page.goto(console.url + path)
        assert answer is not None and answer.status == 200, path
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        page.wait_for_load_state("load")
        wide = page.evaluate("document.documentElement.scrollWidth")
        shown = page.evaluate("document.documentElement.clientWidth")
        assert wide <= shown, f"{path}: {wide} px of content in a {shown} px screen"
        assert page.locator("link[rel=stylesheet]").count() == 1
        # The stylesheet applied: the header is the console's dark bar, not the default.
        colour = page.eval_on_selector("header.top", "e => getComputedStyle(e).backgroundColor")
        assert colour == "rgb(31, 41, 51)", path
    assert watched.errors == [], json.dumps(watched.errors, indent=2)
    assert watched.dialogs == []
    context.close()
