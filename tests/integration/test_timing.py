"""Delays, max_age and quiet hours end to end: the real engine, store and SMTP sink."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.project import RULES, smtp_settings
from support.smtp_sink import SmtpSink

from notifier.engine import Engine
from notifier.models import NoticeStatus, Record
from notifier.records import parse_record
from notifier.settings import Settings
from notifier.wiring import open_engine
from notifier.worker import DeliveryWorker

UPS = "1Z999AA10123456784"
CHANGED = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # 10:00 in New York


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def rules_with(tmp_path: Path, extra: str) -> Path:
    """The shipped Tracking Number Assigned rule, plus `extra` TOML lines."""
    folder = tmp_path / "rules"
    folder.mkdir()
    rule = (RULES / "tracking_number_assigned.toml").read_text()
    (folder / "tracking_number_assigned.toml").write_text(rule + extra + "\n")
    return folder


def tracking(occurred_at: datetime, n: int = 1, **fields: Any) -> Record:
    data = {
        "order_id": f"O-{n}",
        "fulfillment_id": f"F-{n}",
        "status": "Pending Shipment",
        "tracking_number": UPS,
        "email": f"customer{n}@example.com",
        "occurred_at": occurred_at.isoformat(),
        **fields,
    }
    return parse_record(data, received_at=occurred_at)


def run_with_clock(settings: Settings, clock: Clock, scenario: Callable[[Engine], Any]) -> Any:
    async def main() -> Any:
        with open_engine(settings) as engine:
            engine.clock = clock
            try:
                return await scenario(engine)
            finally:
                await engine.transport.close()

    return asyncio.run(main())


def test_a_ten_minute_delay_sends_ten_minutes_after_the_change_not_before(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """delay = "10m": nothing at 9 min 59 s; sent at 10 min."""
    settings = smtp_settings(
        tmp_path, smtp_sink.host, smtp_sink.port, rules_dir=rules_with(tmp_path, 'delay = "10m"')
    )
    clock = Clock(CHANGED + timedelta(seconds=5))  # the change arrives 5 s after it happened

    async def scenario(engine: Engine) -> list[int]:
        engine.ingest([tracking(CHANGED)])
        sent = []
        for at in (timedelta(seconds=5), timedelta(minutes=9, seconds=59), timedelta(minutes=10)):
            clock.now = CHANGED + at
            report = await engine.deliver_due()
            sent.append(report.counts[NoticeStatus.SENT])
        return sent

    assert run_with_clock(settings, clock, scenario) == [0, 0, 1]
    assert len(smtp_sink.messages) == 1


def test_max_age_suppresses_old_changes_and_says_why(
    tmp_path: Path, smtp_sink: SmtpSink, caplog: pytest.LogCaptureFixture
) -> None:
    """max_age = "2d": a change three days old fires nothing (logged); a fresh one is sent."""
    caplog.set_level(logging.INFO, logger="notifier.engine")
    settings = smtp_settings(
        tmp_path, smtp_sink.host, smtp_sink.port, rules_dir=rules_with(tmp_path, 'max_age = "2d"')
    )
    clock = Clock(CHANGED)

    async def scenario(engine: Engine) -> int:
        report = engine.ingest(
            [tracking(CHANGED - timedelta(days=3), 1), tracking(CHANGED - timedelta(hours=1), 2)]
        )
        await engine.deliver_due()
        return report.notices_created

    assert run_with_clock(settings, clock, scenario) == 1
    assert [m["To"] for m in smtp_sink.messages] == ["customer2@example.com"]
    assert "fulfillment F-1: older than max_age 2 days" in caplog.text


def test_quiet_hours_hold_a_night_change_until_morning_per_campaign(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """21:00-08:00 New York: a 23:00 change waits until 08:00; campaign 15 opted out sends now."""
    config = tmp_path / "notifier.toml"
    config.write_text(
        "[quiet_hours]\n"
        'timezone = "America/New_York"\nstart = "21:00"\nend = "08:00"\n'
        "[quiet_hours.campaigns.15]\nenabled = false\n"
    )
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port, config=config)
    night = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)  # 23:00 New York
    morning = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)  # 08:00 New York
    clock = Clock(night)

    async def scenario(engine: Engine) -> list[list[str]]:
        engine.ingest([tracking(night, 1, campaign_id="12"), tracking(night, 2, campaign_id="15")])
        seen = []
        for at in (night, morning - timedelta(seconds=1), morning):
            clock.now = at
            await engine.deliver_due()
            seen.append(sorted(str(m["To"]) for m in smtp_sink.messages))
        return seen

    assert run_with_clock(settings, clock, scenario) == [
        ["customer2@example.com"],
        ["customer2@example.com"],
        ["customer1@example.com", "customer2@example.com"],
    ]


def test_the_worker_delivers_a_delayed_notice_on_time_in_real_time(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """delay = "2s" through the DeliveryWorker: not before 2 s, and within a few seconds after."""
    settings = smtp_settings(
        tmp_path, smtp_sink.host, smtp_sink.port, rules_dir=rules_with(tmp_path, 'delay = "2s"')
    )

    async def scenario() -> tuple[int, float]:
        with open_engine(settings) as engine:
            worker = DeliveryWorker(engine, poll_interval=30)  # only the due time may wake it
            worker.start()
            try:
                changed = time.monotonic()
                engine.ingest([tracking(datetime.now(UTC))])
                worker.wake()
                await asyncio.sleep(1.5)
                early = len(smtp_sink.messages)
                await asyncio.to_thread(smtp_sink.wait_for, 1, 10)
                return early, time.monotonic() - changed
            finally:
                await worker.stop()

    early, took = asyncio.run(scenario())
    assert early == 0
    assert 1.9 <= took < 5  # due at 2 s; "on time" is within a few seconds
