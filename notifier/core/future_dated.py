"""Future-dated records as the operator sees them: per source, how many and how far ahead.

The core (models.ordering_time, decide) takes such a record as received now; this module
names where records came from and words the one warning per source that says what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

SENDER_CLOCK_HINT = "check the sender's clock"
# Konnektive's times carry no offset: the job's `timezone` setting is what dates them.
TIMEZONE_HINT = "check its `timezone`"


@dataclass(frozen=True, slots=True)
class Source:
    """Where records come from, named as the operator knows it, and what to check."""

    name: str
    hint: str = SENDER_CLOCK_HINT


BATCH = Source("batch")
WEBHOOK = Source("webhook")
POSTBACK = Source("postback")


def batch_source(files: Sequence[str]) -> Source:
    """`batch FILE` for one file, `batch` for several (or stdin)."""
    if len(files) == 1 and files[0] != "-":
        return Source(f"batch {files[0]}")
    return BATCH


def job_source(name: str, *, hint: str = SENDER_CLOCK_HINT) -> Source:
    return Source(f"job `{name}`", hint)


@dataclass(slots=True)
class FutureDated:
    """The future-dated records of one source: how many, and the largest skew."""

    count: int = 0
    largest: timedelta = timedelta(0)
    hint: str = SENDER_CLOCK_HINT

    def add(self, skew: timedelta, count: int = 1) -> None:
        self.count += count
        self.largest = max(self.largest, skew)


def tally(skews: Iterable[tuple[Source, timedelta]]) -> dict[str, FutureDated]:
    """Future-dated records by source name."""
    by_source: dict[str, FutureDated] = {}
    for source, skew in skews:
        by_source.setdefault(source.name, FutureDated(hint=source.hint)).add(skew)
    return by_source


def merge_into(total: dict[str, FutureDated], other: dict[str, FutureDated]) -> None:
    for name, counted in other.items():
        total.setdefault(name, FutureDated(hint=counted.hint)).add(counted.largest, counted.count)


def describe_skew(skew: timedelta) -> str:
    """A skew as an operator reads it: "5 h", "5 h 30 min", "12 min", "40 s".

    Rounded to the minute above one: a record is received a moment after it was dated.
    """
    seconds = round(skew.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    hours, minutes = divmod(round(seconds / 60), 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h" if not minutes else f"{hours} h {minutes} min"


def warning(source: str, counted: FutureDated) -> str:
    """The warning logged the first time a source sends future-dated records."""
    return (
        f"times from {source} are {describe_skew(counted.largest)} ahead of this clock:"
        f" {counted.hint} ({counted.count} record(s) taken as received now; further ones"
        " are counted in the run summary and /metrics, not logged)"
    )
