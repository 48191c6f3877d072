"""Delays, max_age and quiet hours through the engine, on MemoryStore and a moved clock."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from support.memory_engine import Clock, rig, shipped_rule, tna_key, tracking

from notifier.core.models import NoticeStatus
from notifier.core.quiet_hours import QuietHours, QuietWindow

CHANGED = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)  # 10:00 in New York


def test_a_ten_minute_delay_sends_ten_minutes_after_the_change_not_before() -> None:
    """delay = "10m": nothing at 9 min 59 s; sent at 10 min."""
    clock = Clock(CHANGED + timedelta(seconds=5))  # the change arrives 5 s after it happened
    setup = rig(rules=[shipped_rule("tracking_number_assigned", 'delay = "10m"')], clock=clock)
    setup.engine.ingest([tracking(1, at=CHANGED, received=clock.now)])
    assert setup.notice(tna_key(1)).due_at == CHANGED + timedelta(minutes=10)
    sent = []
    for at in (timedelta(seconds=5), timedelta(minutes=9, seconds=59), timedelta(minutes=10)):
        clock.now = CHANGED + at
        sent.append(setup.deliver().counts[NoticeStatus.SENT])
    assert sent == [0, 0, 1]
    assert len(setup.sent) == 1


def test_max_age_suppresses_old_changes_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    """max_age = "2d": a change three days old fires nothing (logged); a fresh one is sent."""
    caplog.set_level(logging.INFO, logger="notifier.engine")
    rules = [shipped_rule("tracking_number_assigned", 'max_age = "2d"')]
    setup = rig(rules=rules, clock=Clock(CHANGED))
    report = setup.engine.ingest(
        [
            tracking(1, at=CHANGED - timedelta(days=3)),
            tracking(2, at=CHANGED - timedelta(hours=1)),
        ]
    )
    assert report.notices_created == 1 and report.accepted == 2
    setup.deliver()
    assert [str(m["To"]) for m in setup.sent] == ["Jane <customer2@example.com>"]
    assert list(setup.store.notices_by_key) == [tna_key(2)]
    assert "fulfillment F1: older than max_age 2 days" in caplog.text


def test_quiet_hours_hold_a_night_change_until_morning_per_campaign() -> None:
    """21:00-08:00 New York: a 23:00 change waits until 08:00; campaign 15 opted out sends now."""
    night = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)  # 23:00 New York
    morning = datetime(2026, 11, 28, 13, 0, tzinfo=UTC)  # 08:00 New York
    window = QuietWindow(ZoneInfo("America/New_York"), time(21, 0), time(8, 0))
    clock = Clock(night)
    setup = rig(clock=clock, due_adjuster=QuietHours(default=window, campaigns={"15": None}))
    setup.engine.ingest(
        [
            tracking(1, at=night, received=night, campaign_id="12"),
            tracking(2, at=night, received=night, campaign_id="15"),
        ]
    )
    assert setup.notice(tna_key(1)).due_at == morning
    seen = []
    for at in (night, morning - timedelta(seconds=1), morning):
        clock.now = at
        setup.deliver()
        seen.append(sorted(str(m["To"]) for m in setup.sent))
    assert seen == [
        ["Jane <customer2@example.com>"],
        ["Jane <customer2@example.com>"],
        ["Jane <customer1@example.com>", "Jane <customer2@example.com>"],
    ]
