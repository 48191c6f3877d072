"""`notifier serve` with everything on: the /preview page and a drop-folder job, in one process."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from support.project import smtp_settings
from support.server import ServeProcess
from support.smtp_sink import SmtpSink
from support.webhook import SECRET, shipment


def test_serve_runs_the_preview_page_and_the_scheduler(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """A file dropped while serve runs is mailed and moved; /preview needs its token."""
    drop = tmp_path / "drop"
    drop.mkdir()
    settings = smtp_settings(
        tmp_path,
        smtp_sink.host,
        smtp_sink.port,
        webhook_secret=SECRET,
        preview_token="let-me-see",
        drop_dir=drop,
        drop_interval="1s",
    )
    with ServeProcess(settings, cwd=tmp_path) as server:
        assert httpx.get(f"{server.url}/preview").status_code == 401
        page = httpx.get(f"{server.url}/preview", headers={"X-Preview-Token": "let-me-see"})
        assert page.status_code == 200 and "tracking_number_assigned" in page.text

        staged = drop / ".incoming.jsonl.tmp"
        staged.write_text(json.dumps(shipment(1)) + "\n")
        staged.rename(drop / "orders.jsonl")  # the documented convention: write, then rename
        (message,) = smtp_sink.wait_for(1, timeout=20)
        deadline = time.monotonic() + 10
        while (drop / "orders.jsonl").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (drop / "orders.jsonl").exists()
        assert list((drop / "processed").iterdir())
        assert server.terminate() == 0, server.output
    assert "tracking number" in message["Subject"]
