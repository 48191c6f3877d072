"""Quiet hours: notices that fall due inside a store's quiet window wait until it ends. Pure.

A window is a local time-of-day range in the store's time zone ("21:00"-"08:00" wraps past
midnight). It is applied once, when a notice's due time is decided; the window's end is
computed on the local calendar and converted back to UTC, so it stays at 08:00 local time
across daylight-saving changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo


@dataclass(frozen=True, slots=True)
class QuietWindow:
    """Local times [start, end) in `tz` during which no notice goes out."""

    tz: ZoneInfo
    start: time
    end: time

    def __post_init__(self) -> None:
        if self.start == self.end:
            raise ValueError("quiet hours need different start and end times")

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.tz.key}"

    def contains(self, local: time) -> bool:
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # wraps past midnight

    def release(self, due_at: datetime) -> datetime:
        """`due_at` itself, or the end of the quiet window it falls in (UTC)."""
        local = due_at.astimezone(self.tz)
        if not self.contains(local.time()):
            return due_at
        day = local.date()
        if self.start > self.end and local.time() >= self.start:
            day += timedelta(days=1)  # evening part of a window that wraps: ends tomorrow
        # fold=0 and zoneinfo: an end inside a spring-forward gap lands just after the gap.
        end = datetime.combine(day, self.end, tzinfo=self.tz)
        released = end.astimezone(UTC)
        return max(released, due_at)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A default window (or none) and per-campaign windows (None: no quiet hours there)."""

    default: QuietWindow | None = None
    campaigns: Mapping[str, QuietWindow | None] = field(default_factory=dict)

    def window_for(self, campaign_id: str | None) -> QuietWindow | None:
        if campaign_id is not None and campaign_id in self.campaigns:
            return self.campaigns[campaign_id]
        return self.default

    def __call__(self, due_at: datetime, campaign_id: str | None) -> datetime:
        """The due-time adjuster handed to the engine: push out of the campaign's window."""
        window = self.window_for(campaign_id)
        return due_at if window is None else window.release(due_at)

    def describe(self) -> str:
        """One line for operators: the default window and each campaign's."""
        parts = [f"default {self.default or 'none'}"]
        parts += [f"campaign {c} {w or 'none'}" for c, w in sorted(self.campaigns.items())]
        return "; ".join(parts)

    @property
    def enabled(self) -> bool:
        return self.default is not None or any(w is not None for w in self.campaigns.values())


def parse_time_of_day(text: str) -> time:
    """ "21:00" or "21:00:30" -> time; ValueError naming the text otherwise."""
    try:
        parsed = time.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not a time of day: {text!r} (write e.g. '21:00')") from None
    if parsed.tzinfo is not None:
        raise ValueError(f"a quiet-hours time takes no offset (set timezone): {text!r}")
    return parsed
