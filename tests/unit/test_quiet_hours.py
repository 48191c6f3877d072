"""Quiet hours: due times inside a store's quiet window move to its end. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from notifier.core.decide import decide
from notifier.core.models import Record, Status
from notifier.core.quiet_hours import QuietHours, QuietWindow, parse_time_of_day
from notifier.core.rules import parse_rule

NY = ZoneInfo("America/New_York")
NIGHT = QuietWindow(tz=NY, start=time(21), end=time(8))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_evening_inside_a_window_that_wraps_waits_until_next_morning() -> None:
    """22:30 New York (EST) is quiet: released at 08:00 the next day."""
    assert NIGHT.release(utc(2026, 11, 27, 3, 30)) == utc(2026, 11, 27, 13, 0)


def test_early_morning_waits_until_the_same_morning() -> None:
    """06:00 local is quiet: released at 08:00 that day."""
    assert NIGHT.release(utc(2026, 11, 27, 11, 0)) == utc(2026, 11, 27, 13, 0)


def test_daytime_is_untouched_and_the_end_itself_is_not_quiet() -> None:
    """Outside the window (and at exactly its end) the due time stays as it is."""
    assert NIGHT.release(utc(2026, 11, 27, 18, 0)) == utc(2026, 11, 27, 18, 0)
    assert NIGHT.release(utc(2026, 11, 27, 13, 0)) == utc(2026, 11, 27, 13, 0)
    assert NIGHT.release(utc(2026, 11, 28, 1, 59)) == utc(2026, 11, 28, 1, 59)  # 20:59 local


def test_a_window_within_one_day() -> None:
    """12:00-13:30 (no midnight) holds 12:10 until 13:30 the same day."""
    lunch = QuietWindow(tz=ZoneInfo("Europe/Berlin"), start=time(12), end=time(13, 30))
    assert lunch.release(utc(2026, 6, 1, 10, 10)) == utc(2026, 6, 1, 11, 30)
    assert lunch.release(utc(2026, 6, 1, 12, 0)) == utc(2026, 6, 1, 12, 0)


def test_spring_forward_night_ends_at_local_eight_in_summer_time() -> None:
    """The night DST starts (2026-03-08), 01:30 EST waits until 08:00 EDT (12:00 UTC)."""
    assert NIGHT.release(utc(2026, 3, 8, 6, 30)) == utc(2026, 3, 8, 12, 0)


def test_fall_back_night_ends_at_local_eight_in_standard_time() -> None:
    """The night DST ends (2026-11-01), 23:00 EDT waits until 08:00 EST (13:00 UTC)."""
    assert NIGHT.release(utc(2026, 11, 1, 3, 0)) == utc(2026, 11, 1, 13, 0)


def test_an_end_inside_the_spring_forward_gap_lands_after_the_gap() -> None:
    """A window ending at 02:30, a time that does not exist on 2026-03-08, ends at 03:30 EDT."""
    window = QuietWindow(tz=NY, start=time(22), end=time(2, 30))
    released = window.release(utc(2026, 3, 8, 6, 0))  # 01:00 EST
    assert released == utc(2026, 3, 8, 7, 30)
    assert released.astimezone(NY).hour == 3


def test_campaign_override_and_opt_out() -> None:
    """A campaign's own window wins; a campaign mapped to None has no quiet hours."""
    late = QuietWindow(tz=NY, start=time(23), end=time(7))
    quiet = QuietHours(default=NIGHT, campaigns={"12": late, "15": None})
    due = utc(2026, 11, 27, 3, 30)  # 22:30 local
    assert quiet(due, None) == utc(2026, 11, 27, 13, 0)
    assert quiet(due, "12") == due
    assert quiet(due, "15") == due
    assert quiet(utc(2026, 11, 27, 11, 0), "12") == utc(2026, 11, 27, 12, 0)
    assert not QuietHours().enabled and quiet.enabled
    assert quiet.describe() == (
        "default 21:00-08:00 America/New_York; campaign 12 23:00-07:00 America/New_York;"
        " campaign 15 none"
    )


def test_start_equal_to_end_and_bad_times_are_refused() -> None:
    """An empty window and unreadable times are errors naming the value."""
    with pytest.raises(ValueError, match="different"):
        QuietWindow(tz=NY, start=time(8), end=time(8))
    with pytest.raises(ValueError, match="25:00"):
        parse_time_of_day("25:00")


def test_decide_pushes_new_notices_out_of_quiet_hours() -> None:
    """decide applies the adjuster after the rule's delay: 22:25 + 10 min waits until 08:00."""
    rule = parse_rule(
        'id = "r"\nname = "R"\non = "Shipped"\ntemplate = "t"\ndelay = "10m"\n', source="r.toml"
    )
    changed = utc(2026, 11, 27, 3, 25)  # 22:25 New York
    record = Record(
        order_id="O1",
        fulfillment_id="F1",
        status=Status.SHIPPED,
        received_at=changed,
        occurred_at=changed,
        email="c@example.com",
    )
    decision = decide(
        [record],
        orders={},
        rules=[rule],
        now=changed + timedelta(seconds=1),
        due_adjuster=QuietHours(default=NIGHT),
    )
    assert [n.due_at for n in decision.notices] == [utc(2026, 11, 27, 13, 0)]
    plain = decide([record], orders={}, rules=[rule], now=changed, due_adjuster=None)
    assert [n.due_at for n in plain.notices] == [changed + timedelta(minutes=10)]
