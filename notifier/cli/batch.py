"""`notifier run`: a batch of status changes in, the notices that are due out, a summary."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from notifier.cli.root import (
    EXIT_REJECTED,
    app,
    deliver_and_close,
    err,
    open_records,
    out,
    settings,
)
from notifier.core.future_dated import batch_source, describe_skew
from notifier.core.models import NoticeStatus, Record
from notifier.core.records import Rejection
from notifier.engine.ingesting import REJECTIONS_NOTED
from notifier.engine.reports import Clock, DeliveryReport, IngestReport, utc_now


class BatchReader:
    """Records from files (or `-` for stdin), reporting each rejection on stderr as it goes."""

    def __init__(self, sources: list[str], *, clock: Clock) -> None:
        self.sources = sources
        self.clock = clock
        self.read = 0
        self.rejected = 0
        self.rejections: list[Rejection] = []  # the first few, noted in the ledger

    def __iter__(self) -> Iterator[Record]:
        received_at = self.clock()
        for source in self.sources:
            yield from self._accept(open_records(source, received_at=received_at))

    def _accept(self, items: Iterable[Record | Rejection]) -> Iterator[Record]:
        for item in items:
            self.read += 1
            if isinstance(item, Rejection):
                self.rejected += 1
                if len(self.rejections) < REJECTIONS_NOTED:
                    self.rejections.append(item)
                err.print(f"rejected: {item}", highlight=False, markup=False, soft_wrap=True)
            else:
                yield item


@app.command()
def run(
    files: Annotated[
        list[str], typer.Argument(help="Record files (.jsonl, .json, .csv), or - for stdin.")
    ],
) -> None:
    """Ingest status changes, deliver the notices that are due, print a summary."""
    from notifier.processes.gc_tuning import settle_after_startup
    from notifier.processes.wiring import open_engine

    config = settings()
    reader = BatchReader(files, clock=utc_now)
    with open_engine(config, clock=reader.clock) as engine:
        settle_after_startup()  # a batch's records are many small objects, freed as they go
        ingest = engine.ingest(_with_progress(reader), source=batch_source(files))
        engine.note_rejections(reader.rejections)
        delivery = asyncio.run(deliver_and_close(engine))
    print_summary(reader, ingest, delivery)
    if waiting := delivery.counts[NoticeStatus.RETRY]:
        # The summary counts them; the ledger says why (an SMTP outage, a full outbox...).
        out.print(
            f"{waiting:,} notice(s) wait to be retried: `notifier notices --status retry` says why",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    if reader.rejected:
        raise typer.Exit(EXIT_REJECTED)


def _with_progress(reader: BatchReader) -> Iterator[Record]:
    if not err.is_terminal:
        yield from reader
        return
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), console=err, transient=True
    ) as progress:
        task = progress.add_task("reading records", total=None)
        for count, record in enumerate(reader, start=1):
            if count % 1000 == 0:
                progress.update(task, description=f"{count:,} records ingested")
            yield record


def print_summary(reader: BatchReader, ingest: IngestReport, delivery: DeliveryReport) -> None:
    table = Table(title="notifier run", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="bold")
    table.add_column(justify="right")
    counts = delivery.counts
    rows = [
        ("records read", reader.read, "notices created", ingest.notices_created),
        ("accepted", ingest.accepted, "sent", counts[NoticeStatus.SENT]),
        ("duplicate", ingest.duplicates, "retry", counts[NoticeStatus.RETRY]),
        ("stale", ingest.stale, "failed", counts[NoticeStatus.FAILED]),
        (
            "rejected",
            reader.rejected,
            "cancelled",
            counts[NoticeStatus.CANCELLED] + ingest.notices_cancelled,
        ),
    ]
    for left, left_n, right, right_n in rows:
        table.add_row(left, f"{left_n:,}", right, f"{right_n:,}")
    out.print(table)
    for source, counted in ingest.future_dated.items():
        # Said here as well as in the log: these records' notices went out on our clock.
        out.print(
            f"future-dated: {counted.count:,} record(s) from {source} dated up to"
            f" {describe_skew(counted.largest)} after they were received, taken as received now:"
            f" {counted.hint}",
            highlight=False,
            markup=False,
        )
