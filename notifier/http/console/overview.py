"""The overview page: counts by status, the sent-email charts, what needs attention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from markupsafe import Markup

from notifier.core.models import NoticeStatus
from notifier.http.console.chart import Bar, bar_chart
from notifier.store.overview import Overview, SentBucket

__all__ = ["overview_context"]


def overview_context(overview: Overview) -> dict[str, Any]:
    """What overview.html needs beyond the Overview itself."""
    today = overview.hourly[0].start
    week_start = overview.daily[0].start
    return {
        "overview": overview,
        "statuses": [status.value for status in NoticeStatus],
        "today": today.date().isoformat(),
        "week_start": week_start.date().isoformat(),
        "today_total": sum(overview.today.values()),
        "week_total": sum(overview.week.values()),
        "sent_today": sum(b.sent for b in overview.hourly),
        "sent_week": sum(b.sent for b in overview.daily),
        "hourly_chart": _hourly(overview.hourly),
        "daily_chart": _daily(overview.daily),
    }


def _hourly(buckets: tuple[SentBucket, ...]) -> Markup:
    bars = [
        Bar(
            label=f"{b.start.hour:02d}" if b.start.hour % 3 == 0 else "",
            value=b.sent,
            title=f"{b.start:%H}:00 to {(b.start + timedelta(hours=1)):%H}:00 UTC: {b.sent} sent",
        )
        for b in buckets
    ]
    return bar_chart(bars, caption="Emails sent today, per hour (UTC)")


def _daily(buckets: tuple[SentBucket, ...]) -> Markup:
    bars = [
        Bar(label=f"{b.start:%a %d}", value=b.sent, title=f"{b.start:%Y-%m-%d}: {b.sent} sent")
        for b in buckets
    ]
    return bar_chart(bars, caption="Emails sent in the last 7 days, per day (UTC)")
