"""Shutdown: sends that outlive the grace period are cut off and their claims given back."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support.project import smtp_settings
from support.webhook import shipment

from notifier.core.models import NoticeStatus
from notifier.core.records import parse_record
from notifier.engine.worker import DeliveryWorker
from notifier.processes.lifecycle import run_until_stopped
from notifier.processes.wiring import open_engine


@pytest.fixture
def silent() -> Iterator[socket.socket]:
    """An SMTP server that accepts connections and never greets: every send hangs."""
    server = socket.create_server(("127.0.0.1", 0))
    try:
        yield server
    finally:
        server.close()


async def sending(silent: socket.socket, held: list[socket.socket]) -> None:
    """Return once the worker's send is in flight: it connected, and waits for a greeting."""
    connection, _ = await asyncio.to_thread(silent.accept)
    held.append(connection)  # closed by the test, once the send was cut off


def test_a_hung_send_is_cancelled_after_the_grace_and_its_claim_released(
    tmp_path: Path, silent: socket.socket
) -> None:
    """The work ends while a send hangs on a server that never greets: stop waits `grace`,
    then the notice is pending again, unmarked and its attempt given back: the send never
    reached DATA, so it cannot have arrived (a send cut off after DATA began keeps its mark:
    test_interrupted_sends)."""
    settings = smtp_settings(tmp_path, "127.0.0.1", silent.getsockname()[1], smtp_timeout=30.0)
    with open_engine(settings) as engine:
        engine.ingest([parse_record(shipment(1), received_at=datetime.now(UTC))])

        async def main() -> float:
            worker = DeliveryWorker(engine, poll_interval=0.1)
            started = time.monotonic()
            held: list[socket.socket] = []
            try:
                await run_until_stopped(
                    engine, worker, grace=0.3, until=lambda: sending(silent, held)
                )
            finally:
                for connection in held:
                    connection.close()
            return time.monotonic() - started

        took = asyncio.run(main())
        (notice,) = engine.store.notices()
    assert took < 5, "stop must not wait for the 30 s SMTP timeout"
    assert notice.status is NoticeStatus.PENDING
    assert notice.claim_token is None
    assert notice.attempts == 0
    assert notice.send_started_at is None


def test_a_second_signal_cuts_the_grace_short(tmp_path: Path, silent: socket.socket) -> None:
    """SIGTERM, then SIGINT during a 30 s grace: the hung send is cancelled at once and
    released; the helper returns normally and leaves no signal handler behind."""
    settings = smtp_settings(tmp_path, "127.0.0.1", silent.getsockname()[1], smtp_timeout=30.0)
    with open_engine(settings) as engine:
        engine.ingest([parse_record(shipment(1), received_at=datetime.now(UTC))])

        async def signal_twice() -> None:
            held: list[socket.socket] = []
            await sending(silent, held)
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.3)  # the grace has begun; the send still hangs
            os.kill(os.getpid(), signal.SIGINT)
            await asyncio.sleep(0.1)  # the cut-off send lets go of its connection first
            held[0].close()

        async def main() -> float:
            worker = DeliveryWorker(engine, poll_interval=0.1)
            started = time.monotonic()
            sender = asyncio.ensure_future(signal_twice())
            await run_until_stopped(engine, worker, grace=30)
            await sender
            return time.monotonic() - started

        took = asyncio.run(main())
        (notice,) = engine.store.notices()
    assert took < 10, "the second signal must not wait out the 30 s grace"
    assert notice.status is NoticeStatus.PENDING
    assert notice.claim_token is None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
