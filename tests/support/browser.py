"""Headless Debian Chromium under Playwright, for the tests of the server's pages.

Playwright never downloads a browser here: it launches /usr/bin/chromium (or
NOTIFIER_TEST_CHROMIUM). Without that browser, or without the playwright package, the
test skips and says why; `.ci/run` installs chromium.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("NOTIFIER_TEST_CHROMIUM") or shutil.which("chromium") or ""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def chromium(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A launched headless Chromium (playwright Browser); skips with the reason when it
    cannot be had."""
    # The browser and Playwright's driver are other programs: they run on the machine's own
    # clock, whatever library preloads (a moved clock, say) the test process carries.
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed (dev extra)"
    )
    if not CHROMIUM or not Path(CHROMIUM).is_file():
        pytest.skip(
            f"no chromium at {CHROMIUM!r} (install it: apt-get install chromium chromium-driver; "
            ".ci/run does; or point NOTIFIER_TEST_CHROMIUM at one)"
        )
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


# The email layout's button colour (#2563eb): present only if the inlined CSS was applied.
BUTTON_BLUE = (0x25, 0x63, 0xEB)


def colour_stats(png: bytes) -> tuple[int, int]:
    """(distinct colours, pixels within a few steps of the button blue) of a screenshot."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    colours = image.getcolors(maxcolors=1 << 20) or []
    blue = sum(
        count
        for count, rgb in colours
        if all(abs(c - b) <= 6 for c, b in zip(rgb, BUTTON_BLUE, strict=True))
    )
    return len(colours), blue
