"""Shutdown: sends that outlive the grace period are cut off and their claims given back."""

from __future__ import annotations

import asyncio
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

from support.project import smtp_settings
from support.webhook import shipment

from notifier.models import NoticeStatus
from notifier.records import parse_record
from notifier.webhook import stop_worker
from notifier.wiring import open_engine
from notifier.worker import DeliveryWorker


def test_a_hung_send_is_cancelled_after_the_grace_and_its_claim_released(tmp_path: Path) -> None:
    """An SMTP server that never greets: stop waits `grace`, then the notice is pending again."""
    silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
    try:
        port = silent.getsockname()[1]
        settings = smtp_settings(tmp_path, "127.0.0.1", port, smtp_timeout=30.0)
        with open_engine(settings) as engine:
            engine.ingest([parse_record(shipment(1), received_at=datetime.now(UTC))])

            async def main() -> float:
                worker = DeliveryWorker(engine, poll_interval=0.1)
                worker.start()
                deadline = time.monotonic() + 5
                while not engine.store.notices(status=NoticeStatus.SENDING):
                    assert time.monotonic() < deadline, "the worker never claimed the notice"
                    await asyncio.sleep(0.02)
                started = time.monotonic()
                await stop_worker(worker, engine, grace=0.3)
                return time.monotonic() - started

            took = asyncio.run(main())
            (notice,) = engine.store.notices()
    finally:
        silent.close()
    assert took < 5, "stop must not wait for the 30 s SMTP timeout"
    assert notice.status is NoticeStatus.PENDING
    assert notice.claim_token is None
    assert notice.attempts == 0
