"""The batch run end to end: a real ledger (SQLite file and PostgreSQL database: every scenario
runs on both), a real SMTP server, the real rules and templates."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from support.project import smtp_settings
from support.smtp_sink import SmtpSink

from notifier.cli.root import deliver_and_close
from notifier.core.models import NoticeStatus
from notifier.core.records import parse_json_body
from notifier.engine import DeliveryReport, IngestReport
from notifier.processes.wiring import open_engine
from notifier.settings import Settings
from notifier.store.sql import SqlStore

UPS = "1Z999AA10123456784"
USPS = "9400111206206406260787"


def change(order: str, fid: str, status: str, at: str | None, **fields: Any) -> dict[str, Any]:
    record = {
        "order_id": order,
        "fulfillment_id": fid,
        "status": status,
        "email": "jane@example.com",
    }
    record["first_name"] = "Jane"
    if at is not None:
        record["occurred_at"] = f"2026-11-2{at}Z"
    record.update(fields)
    return record


def run_batch(
    settings: Settings, records: list[dict[str, Any]]
) -> tuple[IngestReport, DeliveryReport]:
    """What `notifier run` does, in process: ingest, then deliver what is due."""
    from datetime import UTC, datetime

    parsed = list(parse_json_body(records, source="test", received_at=datetime.now(UTC)))

    with open_engine(settings) as engine:
        ingest = engine.ingest(r for r in parsed if not hasattr(r, "reason"))
        return ingest, asyncio.run(deliver_and_close(engine))


def body_text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def html_text(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


@pytest.fixture
def settings(tmp_path: Path, smtp_sink: SmtpSink, store_url: str) -> Settings:
    return smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port, database_url=store_url)


def test_one_fulfillment_lifecycle_sends_two_emails(
    settings: Settings, smtp_sink: SmtpSink
) -> None:
    """Hold → Pending → Pending Shipment → Shipped → Delivered: one TNA and one All Fulfillments."""
    records = [
        change("O1", "F1", "Hold", "0T09:00:00"),
        change("O1", "F1", "Pending", "0T10:00:00"),
        change("O1", "F1", "Pending Shipment", "1T08:00:00", tracking_number=UPS),
        change("O1", "F1", "Shipped", "1T16:00:00", tracking_number=UPS),
        change("O1", "F1", "Delivered", "3T12:00:00", tracking_number=UPS),
    ]
    ingest, delivery = run_batch(settings, records)
    assert ingest.accepted == 5 and ingest.notices_created == 2
    assert delivery.counts[NoticeStatus.SENT] == 2
    messages = smtp_sink.messages
    assert len(messages) == 2
    subjects = sorted(m["Subject"] for m in messages)
    assert subjects == [
        "Your Example Store order O1 has a tracking number",
        "Your Example Store order O1 has shipped",
    ]
    for message in messages:
        text = body_text(message)
        assert "Hi Jane," in text and UPS in text
        assert f"https://www.ups.com/track?tracknum={UPS}" in text
        assert message.is_multipart() and message.get_content_type() == "multipart/alternative"
        assert message["Message-ID"] and message["Date"]
        assert message["To"] == "Jane <jane@example.com>"
    assert [d.rcpt_tos for d in smtp_sink.deliveries] == [("jane@example.com",)] * 2


def test_customer_data_cannot_inject_headers_and_html_is_escaped(
    settings: Settings, smtp_sink: SmtpSink
) -> None:
    """CR/LF in a name is rejected at parsing; markup in a name is escaped in the HTML part."""
    from datetime import UTC, datetime

    bad = list(
        parse_json_body(
            [change("O7", "F1", "Shipped", "1T10:00:00", first_name="Eve\r\nBcc: all@example.com")],
            source="t",
            received_at=datetime.now(UTC),
        )
    )
    assert hasattr(bad[0], "reason") and "control character" in bad[0].reason  # type: ignore[union-attr]
    run_batch(
        settings,
        [
            change(
                "O8",
                "F1",
                "Shipped",
                "1T10:00:00",
                tracking_number=UPS,
                first_name="<script>alert(1)</script>",
            )
        ],
    )
    (message,) = smtp_sink.messages
    html = html_text(message)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert message["Bcc"] is None


def test_transient_then_permanent_failures(settings: Settings, smtp_sink: SmtpSink) -> None:
    """4xx leaves the notice in retry with a next attempt; 5xx fails it with the server's reply."""
    smtp_sink.reply_with(
        "451 4.3.0 mailbox busy, try again later", stage="rcpt", recipient="busy@example.com"
    )
    smtp_sink.reply_with("550 5.1.1 no such user here", stage="rcpt", recipient="gone@example.com")
    run_batch(
        settings,
        [
            change(
                "O9", "F1", "Shipped", "1T10:00:00", tracking_number=UPS, email="busy@example.com"
            ),
            change(
                "O10", "F1b", "Shipped", "1T10:00:00", tracking_number=UPS, email="gone@example.com"
            ),
        ],
    )
    store = SqlStore(settings.database_url)
    try:
        (busy,) = store.notices(order_id="O9")
        (gone,) = store.notices(order_id="O10")
        assert busy.status is NoticeStatus.RETRY and "451" in (busy.reason or "")
        assert busy.due_at > busy.created_at
        assert gone.status is NoticeStatus.FAILED and "550 5.1.1 no such user here" in (
            gone.reason or ""
        )
        assert "gone@example.com" in store.suppressed(["GONE@example.com"])
    finally:
        store.close()
    assert smtp_sink.messages == []
