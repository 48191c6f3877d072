"""What every provider's webhook shares: its two refusals, the freshness window, the parsed
result, and readers that take a provider's JSON apart without trusting its shape.

A provider module verifies a request (raising `Unverified`) and then parses it (raising
`PayloadInvalid`); the router turns those into 401 and 422 problem documents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from notifier.core.feedback import FeedbackEvent
from notifier.errors import NotifierError

# Where a provider signs a time: older (or further ahead) than this is refused as a replay.
FRESHNESS_SECONDS = 300


class Unverified(NotifierError):
    """The request's signature or credentials are missing, wrong or stale."""


class PayloadInvalid(NotifierError):
    """The request is authentic but its body is not what the provider sends."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """A request's events, and how many of the provider's records were not feedback (opens,
    clicks, "processed"…): answered and counted, never stored."""

    events: Sequence[FeedbackEvent]
    ignored: int = 0
    note: str | None = None  # e.g. "subscription confirmed"


@dataclass(slots=True)
class Collected:
    """Builds a Parsed one record at a time."""

    events: list[FeedbackEvent] = field(default_factory=list)
    ignored: int = 0

    def parsed(self, note: str | None = None) -> Parsed:
        return Parsed(tuple(self.events), self.ignored, note)


def check_fresh(signed_at: datetime, now: datetime, *, what: str) -> None:
    """Refuse a signed time more than FRESHNESS_SECONDS from now, either way."""
    skew = (now - signed_at).total_seconds()
    if abs(skew) > FRESHNESS_SECONDS:
        direction = "old" if skew > 0 else "ahead"
        raise Unverified(
            f"{what} is {abs(int(skew))} s {direction} (more than {FRESHNESS_SECONDS} s):"
            " a replay, or a clock to check"
        )


def unix_time(value: Any, *, what: str, error: type[NotifierError] = PayloadInvalid) -> datetime:
    """Unix seconds (int, float, or their text) as an aware UTC datetime."""
    if isinstance(value, bool):
        raise error(f"{what} is not a unix time")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise error(f"{what} is not a unix time: {value[:40]!r}") from None
    if not isinstance(value, int | float) or not math.isfinite(value) or not 0 <= value < 1e11:
        raise error(f"{what} is not a unix time")
    return datetime.fromtimestamp(value, UTC)


def iso_time(value: Any, *, what: str) -> datetime:
    """An ISO 8601 time ("2016-01-27T14:59:38.237Z", with 7 fraction digits from .NET) in UTC;
    a time without an offset is read as UTC."""
    if not isinstance(value, str) or not value.strip():
        raise PayloadInvalid(f"{what} is missing or not a time")
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:  # fromisoformat takes at most 6 fraction digits on Python 3.11
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadInvalid(f"{what} is not an ISO 8601 time: {value[:40]!r}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def obj(value: Any, *, what: str) -> Mapping[str, Any]:
    """A JSON object, or PayloadInvalid naming what was expected."""
    if not isinstance(value, dict):
        raise PayloadInvalid(f"{what} must be a JSON object")
    return value


def text(value: Any, *, what: str) -> str:
    """A non-empty string, or PayloadInvalid."""
    if not isinstance(value, str) or not value.strip():
        raise PayloadInvalid(f"{what} is missing or not a string")
    return value.strip()


def optional_text(value: Any) -> str | None:
    """A string if there is one (numbers as their text), else None: for fields that only
    help (diagnostics, ids) and must not refuse an event by their absence."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float):
        return str(value)
    return None


def address(value: Any, *, what: str) -> str:
    """A recipient address as the provider reports it (the intake compares case-insensitively)."""
    found = text(value, what=what)
    if "@" not in found or any(c.isspace() for c in found) or len(found) > 320:
        raise PayloadInvalid(f"{what} is not an email address")
    return found
