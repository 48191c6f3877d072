"""`notifier serve` end to end: a real child process, real HTTP, a real SMTP server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from support.project import smtp_settings
from support.server import ServeProcess
from support.smtp_sink import SmtpSink
from support.webhook import SECRET, TOKEN, body_of, shipment, signed

from notifier.cli.root import deliver_and_close
from notifier.core.models import NoticeStatus
from notifier.processes.wiring import open_engine
from notifier.settings import Settings
from notifier.store.sql import SqlStore

URL = "/v1/status-changes"


@pytest.fixture
def settings(tmp_path: Path, smtp_sink: SmtpSink) -> Settings:
    return smtp_settings(
        tmp_path, smtp_sink.host, smtp_sink.port, webhook_secret=SECRET, postback_token=TOKEN
    )


def recipients(sink: SmtpSink) -> Counter[str]:
    return Counter(rcpt for delivery in sink.deliveries for rcpt in delivery.rcpt_tos)


def test_signed_post_reaches_the_smtp_server_within_two_seconds(
    settings: Settings, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    """202, email at the SMTP server < 2 s later; a resend is a duplicate with no 2nd email."""
    with ServeProcess(settings, cwd=tmp_path) as server, httpx.Client(base_url=server.url) as http:
        body = body_of(shipment(1))
        response = http.post(URL, content=body, headers=signed(body))
        answered = time.monotonic()
        assert response.status_code == 202, response.text
        assert response.json() == {"accepted": 1, "duplicates": 0, "stale": 0}
        assert smtp_sink.wait_for(1, timeout=2.0), server.output
        assert time.monotonic() - answered < 2.0
        assert smtp_sink.deliveries[0].rcpt_tos == ("customer1@example.com",)

        again = http.post(URL, content=body, headers=signed(body))
        assert again.json() == {"accepted": 0, "duplicates": 1, "stale": 0}

        konnektive = {
            "token": TOKEN,
            "orderId": "KN-2",
            "fulfillmentId": "KF-2",
            "fulfillmentStatus": "Shipped",
            "emailAddress": "bob@example.com",
            "trackingNumber": "1Z999AA10123456784",
        }
        assert http.get("/v1/postbacks/konnektive", params=konnektive).status_code == 200
        assert smtp_sink.wait_for(2, timeout=2.0)
        assert http.get("/v1/postbacks/konnektive", params={"token": "nope"}).status_code == 401

        assert http.get("/healthz").status_code == 200
        assert 'notifier_deliveries_total{status="sent"}' in http.get("/metrics").text
        assert http.get("/docs").status_code == 200
        time.sleep(0.3)  # a second email for the duplicate would have arrived by now
        assert recipients(smtp_sink) == {"customer1@example.com": 1, "bob@example.com": 1}
        assert server.terminate() == 0
    assert "customer1@example.com" not in server.output


def test_serve_refuses_to_start_without_a_secret(tmp_path: Path, settings: Settings) -> None:
    """No NOTIFIER_WEBHOOK_SECRET: exit 2 naming the setting; --insecure starts, loudly."""
    unsigned = settings.model_copy(update={"webhook_secret": None})
    server = ServeProcess(unsigned, cwd=tmp_path)
    try:
        with pytest.raises(RuntimeError, match="NOTIFIER_WEBHOOK_SECRET"):
            server.start()
    finally:
        server.close()
    assert server.proc is not None and server.proc.returncode == 2

    with ServeProcess(unsigned, "--insecure", cwd=tmp_path) as insecure:
        assert "WARNING: --insecure" in insecure.output
        body = body_of(shipment(5))
        response = httpx.post(
            insecure.url + URL, content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 202
        assert insecure.terminate() == 0


def test_sigterm_under_load_loses_nothing_and_sends_nothing_twice(
    settings: Settings, smtp_sink: SmtpSink, tmp_path: Path
) -> None:
    """SIGTERM mid-load: exit 0; after a restart every 202'd record is emailed exactly once."""
    accepted: list[str] = []
    unknown: list[str] = []  # sent, but no answer: may or may not have been stored
    stop = threading.Event()
    counter = iter(range(1_000_000))
    lock = threading.Lock()

    def load(base_url: str) -> None:
        with httpx.Client(base_url=base_url, timeout=10) as http:
            while not stop.is_set():
                with lock:
                    n = next(counter)
                body = body_of(shipment(n))
                try:
                    response = http.post(URL, content=body, headers=signed(body))
                except httpx.HTTPError:
                    unknown.append(f"customer{n}@example.com")
                    time.sleep(0.01)
                    continue
                if response.status_code == 202:
                    accepted.append(f"customer{n}@example.com")

    with ServeProcess(settings, cwd=tmp_path) as server:
        threads = [threading.Thread(target=load, args=(server.url,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(accepted) < 150 and time.monotonic() < deadline:
            time.sleep(0.01)
        smtp_sink.wait_for(1, timeout=5)  # delivery runs during the load: sends are in flight
        code = server.terminate()
        stop.set()
        for thread in threads:
            thread.join()
    assert code == 0, server.output
    assert len(accepted) >= 150

    store = SqlStore(settings.database_url)
    try:
        assert store.notices(status=NoticeStatus.SENDING) == [], "a claim was left behind"
    finally:
        store.close()

    # Restart: whatever was committed but not yet sent goes out now.
    with open_engine(settings) as engine:
        asyncio.run(deliver_and_close(engine))
        counts = engine.store.notice_counts()
    assert set(counts) == {NoticeStatus.SENT}

    sent = recipients(smtp_sink)
    missing = [address for address in accepted if sent[address] != 1]
    assert missing == [], f"accepted but not sent exactly once: {missing[:5]}"
    assert max(sent.values()) == 1
    assert set(sent) <= set(accepted) | set(unknown)
