"""An operator digest end to end (docs/design.md §3): the example *Stalled parcels, for the
operator* rule switched on, through the wired engine, a real store and a real SMTP server,
on an injected clock. The engine's own handling: tests/unit/test_operator_digests.py."""

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


def pending_shipment(n: int) -> Record:
    return parse_record(
        {
            "order_id": f"O{n}",
            "fulfillment_id": f"F{n}",
            "status": "Pending Shipment",
            "tracking_number": UPS,
            "email": f"customer{n}@example.com",
            "occurred_at": (START + timedelta(minutes=n)).isoformat(),
        },
        received_at=START + timedelta(minutes=n),
    )


def test_an_operator_digest_sends_one_email_listing_three_stalled_fulfillments(
    tmp_path: Path, smtp_sink: SmtpSink, store_url: str
) -> None:
    """Three parcels stall in Pending Shipment: ONE email to NOTIFIER_OPERATOR_EMAIL lists
    all three, not three emails; the customers get nothing."""
    settings = smtp_settings(
        tmp_path,
        smtp_sink.host,
        smtp_sink.port,
        rules_dir=switched_on(tmp_path, "stalled_parcels_operator", others=False),
        database_url=store_url,
        operator_email="ops@example.com",
    )
    clock = Clock(START)

    async def scenario() -> list[Notice]:
        with open_engine(settings, clock=clock) as engine:
            try:
                for n in (1, 2, 3):
                    engine.ingest([pending_shipment(n)])
                clock.now = START + timedelta(days=5)
                await engine.deliver_due()
                await engine.deliver_due()
                return engine.store.notices()
            finally:
                await engine.transport.close()

    notices = asyncio.run(scenario())
    assert [d.rcpt_tos for d in smtp_sink.deliveries] == [("ops@example.com",)]
    (message,) = smtp_sink.messages
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content()  # type: ignore[attr-defined]
    assert all(f"order O{n}, fulfillment F{n}" in text for n in (1, 2, 3))
    assert [n.status for n in notices] == [NoticeStatus.SENT] * 3
    assert {n.message_id for n in notices} == {message["Message-ID"]}
