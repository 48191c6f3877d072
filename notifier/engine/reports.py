"""What the engine tells its callers: run reports, the observer hooks for metrics, the clock.

Kept apart from the engine so that metrics, the CLI and the HTTP edge can name them
without importing the orchestrator.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from notifier.core.future_dated import FutureDated, merge_into
from notifier.core.models import NoticeStatus

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Observer(Protocol):
    """Hooks for metrics; every method is optional in spirit (NullObserver does nothing)."""

    def ingested(self, report: IngestReport) -> None: ...

    def completed(self, status: NoticeStatus, *, seconds: float, ambiguous: bool) -> None: ...


class NullObserver:
    def ingested(self, report: IngestReport) -> None:
        pass

    def completed(self, status: NoticeStatus, *, seconds: float, ambiguous: bool) -> None:
        pass


@dataclass(slots=True)
class IngestReport:
    accepted: int = 0
    duplicates: int = 0
    stale: int = 0
    repeats: int = 0
    notices_created: int = 0
    notices_cancelled: int = 0  # created cancelled: missing data the rule requires
    created_keys: list[str] = field(default_factory=list)
    # Accepted records dated past their receipt by more than the tolerance, by source name.
    future_dated: dict[str, FutureDated] = field(default_factory=dict)

    @property
    def future_dated_count(self) -> int:
        return sum(counted.count for counted in self.future_dated.values())

    def add(self, other: IngestReport) -> None:
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.stale += other.stale
        self.repeats += other.repeats
        self.notices_created += other.notices_created
        self.notices_cancelled += other.notices_cancelled
        self.created_keys += other.created_keys
        merge_into(self.future_dated, other.future_dated)


@dataclass(slots=True)
class DeliveryReport:
    counts: Counter[NoticeStatus] = field(default_factory=Counter)
    ambiguous: int = 0
    lost_claims: int = 0

    def add(self, other: DeliveryReport) -> None:
        self.counts.update(other.counts)
        self.ambiguous += other.ambiguous
        self.lost_claims += other.lost_claims

    @property
    def total(self) -> int:
        return sum(self.counts.values())
