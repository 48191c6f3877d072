"""Stalled rules end to end (docs/design.md §3): the built-in Awaiting carrier pickup rule,
switched on, through the wired engine, a real store and a real SMTP server, on an
injected clock. The engine's own handling: tests/unit/test_stalled_rules.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.memory_engine import Clock
from support.project import smtp_settings, switched_on
from support.smtp_sink import SmtpSink

from notifier.core.models import Notice, NoticeStatus, Record
from notifier.core.records import parse_record
from notifier.processes.wiring import open_engine

START = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
UPS = "1Z999AA10123456784"


def change(n: int, status: str, at: datetime) -> Record:
    return parse_record(
        {
            "order_id": f"O{n}",
            "fulfillment_id": f"F{n}",
            "status": status,
            "tracking_number": UPS,
            "email": f"customer{n}@example.com",
            "occurred_at": at.isoformat(),
        },
        received_at=at,
    )


def test_a_stalled_parcel_gets_one_email_and_one_that_shipped_gets_none(
    tmp_path: Path, smtp_sink: SmtpSink, store_url: str
) -> None:
    """F1 stays in Pending Shipment: one email after 3 days, none before. F2 ships on day 1:
    no email, and its notice says it was cancelled because F2 moved on to Shipped."""
    settings = smtp_settings(
        tmp_path,
        smtp_sink.host,
        smtp_sink.port,
        rules_dir=switched_on(tmp_path, "awaiting_carrier_pickup", others=False),
        database_url=store_url,
    )
    clock = Clock(START)

    async def scenario() -> tuple[int, dict[str, Notice]]:
        with open_engine(settings, clock=clock) as engine:
            try:
                engine.ingest([change(1, "Pending Shipment", START)])
                engine.ingest([change(2, "Pending Shipment", START)])
                clock.now = START + timedelta(days=1)
                engine.ingest([change(2, "Shipped", clock.now)])
                clock.now = START + timedelta(days=3) - timedelta(seconds=1)
                early = (await engine.deliver_due()).total
                clock.now = START + timedelta(days=3)
                await engine.deliver_due()
                clock.now = START + timedelta(days=4)
                await engine.deliver_due()
                return early, {n.order_id: n for n in engine.store.notices()}
            finally:
                await engine.transport.close()

    early, by_order = asyncio.run(scenario())
    assert early == 0
    assert [m["To"] for m in smtp_sink.messages] == ["customer1@example.com"]
    assert "waiting for the carrier" in str(smtp_sink.messages[0]["Subject"])
    assert by_order["O1"].status is NoticeStatus.SENT
    assert by_order["O2"].status is NoticeStatus.CANCELLED
    assert by_order["O2"].reason == "fulfillment F2 moved on to Shipped"
