"""Screenshots of the operator console for docs/console.md, after `make run`'s example batch.

    python tests/support/console_screenshots.py docs/console

In a scratch folder: the example batch through `notifier run` on the embedded defaults
(SQLite ledger, file transport), then `notifier serve --insecure` with a console token,
then headless Debian Chromium (as the browser tests launch it) saves `overview.png` and
`notice.png` (the All Fulfillments notice of KN-1002) into the folder given.
`make console-screenshots` runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "screenshot-token"
NOTICE = "all_fulfillments:order:KN-1002"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _env(scratch: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOTIFIER_")}
    env.pop("LD_PRELOAD", None)
    env.update(
        {
            "NOTIFIER_DATABASE_URL": f"sqlite:///{scratch / 'notifier.db'}",
            "NOTIFIER_OUTBOX_DIR": str(scratch / "outbox"),
            "NOTIFIER_RULES_DIR": str(ROOT / "rules"),
            "NOTIFIER_TEMPLATES_DIR": str(ROOT / "templates"),
            "NOTIFIER_CONSOLE_TOKEN": TOKEN,
        }
    )
    return env


def main(out: Path) -> int:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="notifier-console-") as folder:
        scratch = Path(folder)
        env = _env(scratch)
        # As `make run` names it (the page shows where a rejected line came from).
        (scratch / "examples").mkdir()
        shutil.copy(ROOT / "examples" / "batch.jsonl", scratch / "examples" / "batch.jsonl")
        run = [sys.executable, "-m", "notifier", "run", "examples/batch.jsonl"]
        subprocess.run(run, env=env, cwd=scratch, capture_output=True, check=False, timeout=120)
        serve = subprocess.Popen(
            [sys.executable, "-m", "notifier", "serve", "--insecure", "--port", "0"],
            env=env,
            cwd=scratch,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = _listening(serve)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=os.environ.get("NOTIFIER_TEST_CHROMIUM", "/usr/bin/chromium"),
                    args=CHROMIUM_ARGS,
                )
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"{url}/console?token={TOKEN}")
                page.screenshot(path=str(out / "overview.png"), full_page=True)
                page.goto(f"{url}/console/notices/{quote(NOTICE, safe='')}")
                page.frame_locator("#email-html").locator("body").wait_for()
                # A full-page capture leaves the sandboxed frame blank: grow the window to
                # the page's height instead, and let the frame paint.
                height = page.evaluate("document.documentElement.scrollHeight")
                page.set_viewport_size({"width": 1280, "height": height})
                time.sleep(0.5)
                page.screenshot(path=str(out / "notice.png"))
                browser.close()
        finally:
            serve.terminate()
            serve.wait(30)
    print(f"wrote {out / 'overview.png'} and {out / 'notice.png'}")
    return 0


def _listening(serve: subprocess.Popen[str]) -> str:
    assert serve.stderr is not None
    deadline = time.monotonic() + 30
    for line in serve.stderr:
        found = re.match(r"notifier serve listening on (\S+)", line)
        if found:
            return found.group(1)
        if time.monotonic() > deadline:
            break
    raise SystemExit("notifier serve did not start")


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "console"))
