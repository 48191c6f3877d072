"""Sent copies and attempt history through a real SMTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from support.cli import tna_key, tna_record
from support.memory_engine import Clock
from support.project import smtp_settings
from support.smtp_sink import SmtpSink

from notifier.core.models import NoticeStatus
from notifier.core.records import Record, parse_json_body
from notifier.engine import DeliveryReport, Engine
from notifier.processes.wiring import open_engine


def parsed(records: list[dict[str, object]], at: datetime) -> list[Record]:
    items = list(parse_json_body(records, source="test", received_at=at))
    assert all(isinstance(item, Record) for item in items), items
    return [item for item in items if isinstance(item, Record)]


def deliver(engine: Engine, *steps: Callable[[], object]) -> list[DeliveryReport]:
    """A delivery pass, then after each step another: all on one event loop, as a worker."""

    async def passes() -> list[DeliveryReport]:
        try:
            reports = [await engine.deliver_due()]
            for step in steps:
                step()
                reports.append(await engine.deliver_due())
            return reports
        finally:
            await engine.transport.close()

    return asyncio.run(passes())


def test_a_sent_notice_keeps_the_exact_bytes_the_server_received(
    tmp_path: Path, smtp_sink: SmtpSink, store_url: str
) -> None:
    """The copy is byte for byte what the SMTP server got; the history has its 250 reply."""
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port, database_url=store_url)
    with open_engine(settings) as engine:
        engine.ingest(parsed([tna_record(1, first_name="Zoë")], datetime.now(UTC)))
        assert deliver(engine)[0].counts[NoticeStatus.SENT] == 1
        (delivery,) = smtp_sink.deliveries
        copy = engine.store.sent_copy(tna_key(1))
        assert copy is not None
        assert copy.rstrip(b"\r\n") == delivery.data.rstrip(b"\r\n")
        (attempt,) = engine.store.history(tna_key(1))
        assert attempt.outcome == "sent" and attempt.kind == "attempt"
        assert attempt.detail is not None and attempt.detail.startswith("250")


def test_a_refused_attempt_records_the_servers_words_then_the_success(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """A 451 then a 250: two attempt rows, the refusal's text in the first."""
    clock = Clock(datetime.now(UTC))
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port)
    smtp_sink.reply_with("451 4.3.0 mailbox busy, try later", stage="rcpt")
    with open_engine(settings, clock=clock) as engine:
        engine.ingest(parsed([tna_record(2)], clock()))
        copies: list[bytes | None] = []

        def later() -> None:
            copies.append(engine.store.sent_copy(tna_key(2)))
            clock.advance(timedelta(hours=1))

        first_pass, second_pass = deliver(engine, later)
        assert first_pass.counts[NoticeStatus.RETRY] == 1 and copies == [None]
        assert second_pass.counts[NoticeStatus.SENT] == 1
        first, second = engine.store.history(tna_key(2))
    assert first.outcome == "retry" and "mailbox busy" in (first.detail or "")
    assert second.outcome == "sent"


def test_old_copies_are_pruned_after_the_retention(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """A delivery pass drops copies older than NOTIFIER_SENT_COPY_RETENTION, keeps the rest."""
    clock = Clock(datetime.now(UTC))
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port, sent_copy_retention="1d")
    with open_engine(settings, clock=clock) as engine:
        engine.ingest(parsed([tna_record(3)], clock()))

        def two_days_later() -> None:
            clock.advance(timedelta(days=2))
            engine.ingest(parsed([tna_record(4)], clock()))

        deliver(engine, two_days_later)
        assert engine.store.sent_copy(tna_key(3)) is None
        assert engine.store.sent_copy(tna_key(4)) is not None
