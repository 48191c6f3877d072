"""Bounce messages from files into the feedback intake (`notifier feedback import`).

Events go to the intake in chunks, each chunk one transaction: a crash or an unavailable
ledger part-way leaves the chunks before it stored, and importing the same files again
stores nothing twice (event ids are derived from the bounces themselves).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from notifier.core.feedback import FeedbackEvent
from notifier.engine.feedback import FeedbackIntake, FeedbackReport
from notifier.sources.bounces.files import Found
from notifier.sources.bounces.reading import NotUnderstood, read_bounce

# Events per intake transaction: large enough to import a day's bounces in a few, small
# enough that one transaction never holds the ledger for long.
CHUNK_EVENTS = 500


@dataclass(slots=True)
class ImportReport:
    """What an import read and what the intake made of it."""

    messages: int = 0
    events: int = 0
    not_understood: list[tuple[str, str]] = field(default_factory=list)  # (where, why)
    feedback: FeedbackReport = field(default_factory=FeedbackReport)


def import_bounces(
    found: Iterable[Found],
    intake: FeedbackIntake,
    *,
    received_at: datetime,
    bounce_address: str | None,
) -> ImportReport:
    """Read every message, hand the events to the intake; each message not understood is
    reported, where it is and why, never dropped."""
    report = ImportReport()
    pending: list[FeedbackEvent] = []
    for item in found:
        if item.message is None:
            report.not_understood.append((item.where, item.problem or "cannot read it"))
            continue
        report.messages += 1
        reading = read_bounce(item.message, received_at=received_at, bounce_address=bounce_address)
        if isinstance(reading, NotUnderstood):
            report.not_understood.append((item.where, reading.reason))
            continue
        report.events += len(reading)
        pending += reading
        if len(pending) >= CHUNK_EVENTS:
            report.feedback = report.feedback.plus(intake.take(pending))
            pending = []
    if pending:
        report.feedback = report.feedback.plus(intake.take(pending))
    return report
