"""The ingest half of the engine: records in, state and notices out, in one transaction.

A mixin of Engine (notifier.engine.engine), which holds the parts it uses; kept apart
because it shares nothing with delivery but the store.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import count, islice
from operator import itemgetter

from notifier.core.decide import Decision, OrderView, Outcome, decide
from notifier.core.future_dated import BATCH, FutureDated, Source, tally, warning
from notifier.core.models import NoticeStatus, Record
from notifier.core.records import Rejection
from notifier.core.rules import Rule
from notifier.engine.config import EngineConfig
from notifier.engine.reports import Clock, IngestReport, Observer
from notifier.errors import StoreError
from notifier.store.base import Store

log = logging.getLogger("notifier.engine")

# Refused records noted per batch or request (note_rejections): where a whole file is bad,
# its first lines say what is wrong, and the ledger does not fill up with the rest.
REJECTIONS_NOTED = 20


def _chunks(items: Iterable[Record], size: int) -> Iterator[list[Record]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Ingesting:
    """Engine.ingest and Engine.ingest_groups."""

    store: Store
    rules: tuple[Rule, ...]
    config: EngineConfig
    clock: Clock
    observer: Observer
    # Sources already warned about future-dated records: one warning each per engine.
    _warned_sources: set[str]

    def ingest(self, records: Iterable[Record], *, source: Source = BATCH) -> IngestReport:
        """Store records, update fulfillment state and create the notices they call for.

        `source` names where the records came from, for the future-dated count and warning.
        """
        report = IngestReport()
        for chunk in _chunks(records, self.config.ingest_chunk):
            report.add(self._ingest_decided(chunk, lambda _: source)[0])
        return report

    def note_rejections(self, rejections: Sequence[Rejection]) -> None:
        """Keep the first few refused records' where and why, for the console's "needs
        attention". Only a note: the caller has already told the sender, so a ledger that
        does not answer costs this note and nothing else."""
        if not rejections:
            return
        try:
            self.store.add_rejections(rejections[:REJECTIONS_NOTED], now=self.clock())
        except StoreError as exc:
            log.warning("could not note %d refused record(s): %s", len(rejections), exc)

    def ingest_groups(
        self, groups: Sequence[Sequence[Record]], *, sources: Sequence[Source] | None = None
    ) -> tuple[IngestReport, list[IngestReport]]:
        """Several requests' records in ONE store transaction (group commit): all or none.

        Returns the total and a report per group. Records are decided in order, so a record
        that an earlier group (or the ledger) already holds is a duplicate of its group.
        `sources` gives each group's source (default: batch).
        """
        records = [record for group in groups for record in group]
        if not records:
            return IngestReport(), [IngestReport() for _ in groups]
        group_sources = sources if sources is not None else [BATCH] * len(groups)
        source_of_record = {
            id(record): source
            for group, source in zip(groups, group_sources, strict=True)
            for record in group
        }
        total, decision = self._ingest_decided(records, lambda r: source_of_record[id(r)])
        # decide() gives every record its outcome, in order: a record is its position.
        outcomes = [outcome for _, outcome in decision.outcomes]
        skew_of = {id(record): skew for record, skew in decision.future_dated}
        created_by = Counter(decision.triggers[key] for key in total.created_keys)
        reports = []
        positions = count()
        for group, source in zip(groups, group_sources, strict=True):
            # One pass per group: a webhook group commit holds many one-record groups.
            report = IngestReport()
            for record in group:
                position = next(positions)
                outcome = outcomes[position]
                if outcome is Outcome.DUPLICATE:
                    report.duplicates += 1
                    continue
                report.accepted += 1
                report.stale += outcome is Outcome.STALE
                report.repeats += outcome is Outcome.REPEAT
                report.notices_created += created_by[position]
                if (skew := skew_of.get(id(record))) is not None:
                    counted = report.future_dated.setdefault(
                        source.name, FutureDated(hint=source.hint)
                    )
                    counted.add(skew)
            reports.append(report)
        return total, reports

    def _ingest_decided(
        self, chunk: Sequence[Record], source_of: Callable[[Record], Source]
    ) -> tuple[IngestReport, Decision]:
        now = self.clock()

        def decider(orders: dict[str, OrderView]) -> Decision:
            return decide(
                chunk,
                orders=orders,
                rules=self.rules,
                now=now,
                due_adjuster=self.config.due_adjuster,
                future_tolerance=self.config.future_tolerance,
                operator_email=self.config.operator_email,
            )

        result = self.store.ingest(chunk, decider)
        decision = result.decision
        outcomes = Counter(map(itemgetter(1), decision.outcomes))
        created = set(result.created)
        report = IngestReport(
            accepted=len(decision.outcomes) - decision.duplicates,
            duplicates=decision.duplicates,
            stale=outcomes[Outcome.STALE],
            repeats=outcomes[Outcome.REPEAT],
            notices_created=len(created),
            notices_cancelled=sum(
                1
                for n in decision.notices
                if n.key in created and n.status is NoticeStatus.CANCELLED
            ),
            created_keys=list(result.created),
        )
        if decision.future_dated:
            self._report_future_dated(decision, source_of, report)
        for notice in decision.notices:
            if notice.key in created and notice.status is NoticeStatus.CANCELLED:
                log.info("notice %s not sent: %s", notice.key, notice.reason)
        for rule_id, record, why in decision.skipped:
            log.info(
                "rule %s: no notice for fulfillment %s: %s", rule_id, record.fulfillment_id, why
            )
        self.observer.ingested(report)
        return report, decision

    def _report_future_dated(
        self, decision: Decision, source_of: Callable[[Record], Source], report: IngestReport
    ) -> None:
        report.future_dated = tally(
            (source_of(record), skew) for record, skew in decision.future_dated
        )
        for name, counted in report.future_dated.items():
            if name not in self._warned_sources:
                self._warned_sources.add(name)
                log.warning("%s", warning(name, counted))
