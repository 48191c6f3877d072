"""The preview page in a real headless Chromium (Debian's), driven by Playwright.

Playwright never downloads a browser here: it launches /usr/bin/chromium (support.browser).
Without that browser (or the playwright package) the test skips and says why; `.ci/run`
installs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from support.browser import chromium, colour_stats
from support.live_uvicorn import LiveServer
from support.project import RULES, settings_for

from notifier.core.rules import load_rules
from notifier.http.preview import include_preview
from notifier.rendering.setup import make_composer

TOKEN = "browser-test-token-81d0"
RECORD = {
    "order_id": "KN-8841",
    "fulfillment_id": "F-3",
    "status": "Pending Shipment",
    "email": "olga.petrova@example.com",
    "first_name": "Olga",
    "last_name": "Petrova",
    "tracking_number": "1Z999AA10123456784",
}


@pytest.fixture
def browser_page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A page in headless Debian Chromium; skips with the reason when it cannot be had."""
    with chromium(monkeypatch) as browser:
        context = browser.new_context(viewport={"width": 1200, "height": 1000})
        yield context.new_page()
        context.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = settings_for(tmp_path)
    app = FastAPI()
    include_preview(
        app, composer=make_composer(settings), rules=load_rules(settings.rules_dir), token=TOKEN
    )
    with LiveServer(app) as live:
        yield live


def test_preview_page_in_headless_chromium(browser_page: Any, server: LiveServer) -> None:
    """Needs the token; lists the rules; renders pasted JSON; the HTML iframe visibly renders."""
    page = browser_page
    denied = page.goto(f"{server.url}/preview")
    assert denied is not None and denied.status == 401
    assert "Token required" in page.content()

    page.goto(f"{server.url}/preview?token={TOKEN}")
    assert page.url == f"{server.url}/preview", "the token is dropped from the address"
    rule_links = page.locator("#rules a").all_inner_texts()
    # Every shipped rule, by id (more built-in rules ship over time).
    assert rule_links == sorted(rule.id for rule in load_rules(RULES))
    assert {"all_fulfillments", "tracking_number_assigned"} <= set(rule_links)

    page.click("text=tracking_number_assigned")
    page.wait_for_selector("#html-part")
    assert "From the built-in sample order." in page.inner_text("#source")

    page.fill("textarea[name=records]", json.dumps(RECORD, indent=2))
    page.click("button[type=submit]")
    page.wait_for_selector("#source")
    assert page.inner_text("#source") == "From the pasted record(s)."
    assert "Your Example Store order KN-8841 has a tracking number" in page.inner_text("#headers")
    assert "Hi Olga," in page.inner_text("#text-part")

    frame = page.frame_locator("#html-part")
    assert frame.locator("h1").inner_text() == "Your order has a tracking number"
    button = frame.locator("a.button")
    assert button.get_attribute("href") == "https://www.ups.com/track?tracknum=1Z999AA10123456784"

    shot = page.locator("#html-part").screenshot()
    distinct, blue = colour_stats(shot)
    blank_distinct, blank_blue = colour_stats(page.locator("#records-form").screenshot())
    assert distinct > 40, f"the iframe screenshot looks blank ({distinct} colours)"
    assert blue > 300, f"the button's blue is missing ({blue} px): CSS not applied?"
    assert blank_blue == 0 and blank_distinct < distinct
