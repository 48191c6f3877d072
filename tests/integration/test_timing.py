"""Quiet hours from the config file, and a delay kept in real time by the worker: end to end.

The engine's timing rules (delay, max_age, quiet hours per campaign) are unit tests:
tests/unit/test_engine_timing.py.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from support.memory_engine import Clock
from support.project import RULES, settings_for, smtp_settings
from support.smtp_sink import SmtpSink

from notifier.core.models import Record
from notifier.core.records import parse_record
from notifier.engine.worker import DeliveryWorker
from notifier.processes.wiring import open_engine

UPS = "1Z999AA10123456784"


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


def test_quiet_hours_from_the_config_file_reach_the_engine(tmp_path: Path) -> None:
    """notifier.toml's 21:00-08:00 New York: a 23:00 change is due at 08:00; campaign 15,
    opted out there, is due at once. (The engine's handling: tests/unit/test_engine_timing.)"""
    config = tmp_path / "notifier.toml"
    config.write_text(
        "[quiet_hours]\n"
        'timezone = "America/New_York"\nstart = "21:00"\nend = "08:00"\n'
        "[quiet_hours.campaigns.15]\nenabled = false\n"
    )
    night = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)  # 23:00 New York
    morning = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)  # 08:00 New York
    with open_engine(settings_for(tmp_path, config=config)) as engine:
        engine.clock = Clock(night)
        engine.ingest([tracking(night, 1, campaign_id="12"), tracking(night, 2, campaign_id="15")])
        due = {n.campaign_id: n.due_at for n in engine.store.notices()}
    assert due == {"12": morning, "15": night}


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
