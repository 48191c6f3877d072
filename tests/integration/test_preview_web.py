"""The preview page over real HTTP: a uvicorn server on 127.0.0.1, an httpx client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from support.live_uvicorn import LiveServer
from support.project import settings_for

from notifier.core.rules import load_rules
from notifier.http.preview import (
    COOKIE,
    include_preview,
    include_preview_from_settings,
    preview_router,
)
from notifier.rendering.setup import make_composer

TOKEN = "preview-token-3f9c2a"
RECORD = {
    "order_id": "KN-5521",
    "fulfillment_id": "F-77",
    "status": "Pending Shipment",
    "email": "olga.petrova@example.com",
    "first_name": "Olga",
    "last_name": "Petrova",
    "tracking_number": "1Z 999AA1 0123456784",
}


def preview_app(tmp_path: Path, token: str | None = TOKEN) -> FastAPI:
    settings = settings_for(tmp_path)
    app = FastAPI()
    include_preview(
        app,
        composer=make_composer(settings),
        rules=load_rules(settings.rules_dir),
        token=token,
    )
    return app


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(preview_app(tmp_path)) as live:
        yield live


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    """A client that has presented the token once (and so holds the cookie)."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        first = http.get("/preview", params={"token": TOKEN}, follow_redirects=True)
        assert first.status_code == 200, first.text
        yield http


def test_without_a_token_the_page_is_refused(server: LiveServer) -> None:
    """No token: 401; a wrong token anywhere: 403; nothing of the page is shown."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        missing = http.get("/preview")
        wrong_query = http.get("/preview", params={"token": "nope"}, follow_redirects=False)
        wrong_header = http.get("/preview/all_fulfillments", headers={"X-Preview-Token": "x"})
        wrong_cookie = http.get("/preview", headers={"Cookie": f"{COOKIE}=forged"})
        wrong_post = http.post("/preview/all_fulfillments", data={"records": "{}"})
    assert missing.status_code == 401
    assert "Token required" in missing.text
    assert [r.status_code for r in (wrong_query, wrong_header, wrong_cookie)] == [403, 403, 403]
    assert wrong_post.status_code == 401
    for response in (missing, wrong_query, wrong_header, wrong_cookie, wrong_post):
        assert "tracking_number_assigned" not in response.text


def test_query_token_becomes_a_cookie_and_leaves_the_address(server: LiveServer) -> None:
    """?token= answers with a redirect to the same page without it, setting a strict cookie."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        response = http.get(
            "/preview/all_fulfillments",
            params={"token": TOKEN, "campaign": "12"},
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/preview/all_fulfillments?campaign=12"
        cookie = response.headers["set-cookie"]
        assert TOKEN not in cookie
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/preview" in cookie
        after = http.get(response.headers["location"])
    assert after.status_code == 200
    assert "Your order is on its way" in after.text


def test_bearer_and_header_tokens_work_without_a_cookie(server: LiveServer) -> None:
    """Scripts can send the token as Authorization: Bearer or X-Preview-Token."""
    with httpx.Client(base_url=server.url, timeout=10) as http:
        bearer = http.get("/preview", headers={"Authorization": f"Bearer {TOKEN}"})
        header = http.get("/preview", headers={"X-Preview-Token": TOKEN})
    assert bearer.status_code == header.status_code == 200
    assert "tracking_number_assigned" in bearer.text


def test_no_token_configured_means_no_page(tmp_path: Path) -> None:
    """Without NOTIFIER_PREVIEW_TOKEN nothing is mounted: /preview is a plain 404."""
    app = preview_app(tmp_path, token=None)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as http:
        assert http.get("/preview", params={"token": ""}).status_code == 404
    with pytest.raises(ValueError, match="token"):
        preview_router(composer=make_composer(settings_for(tmp_path)), rules=(), token="")


def test_rule_list_links_every_rule(client: httpx.Client) -> None:
    """/preview lists each rule with its status, scope and a link to its page."""
    page = client.get("/preview")
    assert page.status_code == 200
    for rule_id in ("all_fulfillments", "tracking_number_assigned"):
        assert f'href="/preview/{rule_id}"' in page.text
    assert "Pending Shipment" in page.text and "order" in page.text


def test_sample_page_shows_headers_text_and_sandboxed_html(client: httpx.Client) -> None:
    """A rule's page renders its sample: headers, the text part, and the HTML in a sandbox."""
    page = client.get("/preview/all_fulfillments")
    assert page.status_code == 200
    text = page.text
    assert "From the built-in sample order." in text
    assert "Subject</th><td>Your Example Store order KN-10482 has shipped (2 parcels)" in text
    assert "Message-ID" in text and "Auto-Submitted" in text
    assert '<iframe id="html-part"' in text and 'sandbox="allow-popups' in text
    assert "allow-scripts" not in text and "allow-same-origin" not in text
    # The HTML travels escaped inside srcdoc, never as live markup of the page.
    assert 'srcdoc="&lt;!DOCTYPE html&gt;' in text
    assert "https://www.ups.com/track?tracknum=1Z999AA10123456784" in text
    links = text[text.index('<ul id="links">') :]
    assert 'href="mailto:support@example.com" target="_blank" rel="noopener noreferrer"' in links
    assert 'href="https://tools.usps.com/go/TrackConfirmAction?tLabels=9400' in links
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"


def test_pasted_record_renders(client: httpx.Client) -> None:
    """Record JSON posted from the form renders with the customer's name and tracking link."""
    page = client.post(
        "/preview/tracking_number_assigned", data={"records": json.dumps(RECORD), "campaign": ""}
    )
    assert page.status_code == 200, page.text
    assert "From the pasted record(s)." in page.text
    assert "Hi Olga," in page.text
    assert "olga.petrova@example.com" in page.text
    assert "KN-5521" in page.text
    assert "https://www.ups.com/track?tracknum=1Z999AA10123456784" in page.text


def test_pasted_order_lists_every_parcel(client: httpx.Client) -> None:
    """An order's fulfillments pasted as a list render as one All Fulfillments email."""
    ids = ["F-1", "F-2"]
    records = [
        {**RECORD, "status": "Shipped", "order_fulfillment_ids": ids},
        {
            **RECORD,
            "fulfillment_id": "F-2",
            "status": "Shipped",
            "tracking_number": "9400111899223197428497",
            "order_fulfillment_ids": ids,
        },
    ]
    records[0]["fulfillment_id"] = "F-1"
    page = client.post("/preview/all_fulfillments", data={"records": json.dumps(records)})
    assert page.status_code == 200, page.text
    assert "(2 parcels)" in page.text
    assert "tLabels=9400111899223197428497" in page.text


def test_bad_input_is_explained_on_the_page(client: httpx.Client) -> None:
    """Broken JSON and invalid records answer 400 with the reason; the form keeps the text."""
    broken = client.post("/preview/all_fulfillments", data={"records": '{"order_id": '})
    assert broken.status_code == 400
    assert "not JSON" in broken.text
    assert "{&#34;order_id&#34;: </textarea>" in broken.text
    invalid = client.post(
        "/preview/all_fulfillments", data={"records": json.dumps({**RECORD, "status": "Lost"})}
    )
    assert invalid.status_code == 400
    assert "index 0" in invalid.text and "Lost" in invalid.text


def test_unknown_rule_is_a_404_listing_the_known_ones(client: httpx.Client) -> None:
    """An unknown rule id answers 404 with the list of rules."""
    page = client.get("/preview/no_such_rule")
    assert page.status_code == 404
    assert "no rule &#39;no_such_rule&#39;" in page.text
    assert 'href="/preview/all_fulfillments"' in page.text


def test_form_must_be_urlencoded_and_small(client: httpx.Client) -> None:
    """Other content types are refused (415) and an oversized form too (413)."""
    as_json = client.post("/preview/all_fulfillments", json={"records": "[]"})
    assert as_json.status_code == 415
    huge = client.post("/preview/all_fulfillments", data={"records": "x" * (600 * 1024)})
    assert huge.status_code == 413


def test_template_error_shows_file_and_line(tmp_path: Path) -> None:
    """A broken template answers 422 naming the file, the line and the missing variable."""
    templates = tmp_path / "templates"
    source = settings_for(tmp_path).templates_dir
    for path in source.rglob("*"):
        if path.is_file():
            target = templates / path.relative_to(source)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    body = templates / "tracking_number_assigned" / "body.txt"
    body.write_text("Hi {{ customer.first_name }},\n{{ order.nickname }}\n", encoding="utf-8")
    settings = settings_for(tmp_path, templates_dir=templates)
    app = FastAPI()
    app.include_router(
        preview_router(
            composer=make_composer(settings), rules=load_rules(settings.rules_dir), token=TOKEN
        )
    )
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=10) as http:
        page = http.get("/preview/tracking_number_assigned", headers={"X-Preview-Token": TOKEN})
    assert page.status_code == 422
    assert f"{body}, line 2" in page.text
    assert "nickname" in page.text


def test_mounting_from_settings_follows_the_token(tmp_path: Path) -> None:
    """include_preview_from_settings mounts /preview only when NOTIFIER_PREVIEW_TOKEN is set."""
    off, on = FastAPI(), FastAPI()
    assert not include_preview_from_settings(off, settings_for(tmp_path))
    assert include_preview_from_settings(on, settings_for(tmp_path, preview_token=TOKEN))
    with LiveServer(on) as live, httpx.Client(base_url=live.url, timeout=10) as http:
        assert http.get("/preview", headers={"X-Preview-Token": TOKEN}).status_code == 200
        assert http.get("/preview").status_code == 401
    assert not any(getattr(route, "path", "").startswith("/preview") for route in off.routes)


def test_only_safe_links_are_listed() -> None:
    """The page lists the email's http(s) and mailto links, never script or data URLs."""
    from notifier.http.preview_pages import links

    html = (
        '<a href="https://www.ups.com/track?tracknum=1Z">t</a><a href="javascript:alert(1)">x</a>'
        '<a href=" JavaScript:alert(2)">y</a><a href="data:text/html,hi">z</a>'
        '<a href="mailto:help@example.com">m</a><a href="https://www.ups.com/track?tracknum=1Z">'
    )
    assert links(html) == ["https://www.ups.com/track?tracknum=1Z", "mailto:help@example.com"]
