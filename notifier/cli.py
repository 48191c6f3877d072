"""The `notifier` command: parse, wire, delegate. Errors are translated here, once."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from notifier.engine import DeliveryReport, Engine, IngestReport
from notifier.errors import NotifierError
from notifier.models import Notice, NoticeStatus, Record
from notifier.records import Rejection, read_path, read_records
from notifier.settings import Settings, load_settings

EXIT_REJECTED = 1
EXIT_USAGE = 2

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="The store's schema.")
app.add_typer(db_app, name="db")
out = Console()
err = Console(stderr=True)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


def settings() -> Settings:
    try:
        loaded = load_settings()
    except NotifierError as exc:
        raise fail(str(exc)) from None
    logging.basicConfig(
        level=loaded.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Migrations announce themselves at INFO on every first use; operators need not see that.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return loaded


# --- run ----------------------------------------------------------------------------------


class BatchReader:
    """Records from files (or `-` for stdin), reporting each rejection on stderr as it goes."""

    def __init__(self, sources: list[str]) -> None:
        self.sources = sources
        self.read = 0
        self.rejected = 0

    def __iter__(self) -> Iterator[Record]:
        received_at = datetime.now(UTC)
        for source in self.sources:
            yield from self._accept(self._open(source, received_at))

    def _open(self, source: str, received_at: datetime) -> Iterable[Record | Rejection]:
        if source == "-":
            return read_records(sys.stdin, source="<stdin>", received_at=received_at)
        path = Path(source)
        if not path.is_file():
            raise fail(f"{source}: no such file")
        return read_path(path, received_at=received_at)

    def _accept(self, items: Iterable[Record | Rejection]) -> Iterator[Record]:
        for item in items:
            self.read += 1
            if isinstance(item, Rejection):
                self.rejected += 1
                err.print(f"rejected: {item}", highlight=False, markup=False, soft_wrap=True)
            else:
                yield item


async def deliver_and_close(engine: Engine) -> DeliveryReport:
    try:
        return await engine.deliver_due()
    finally:
        await engine.transport.close()


@app.command()
def run(
    files: Annotated[
        list[str], typer.Argument(help="Record files (.jsonl, .json, .csv), or - for stdin.")
    ],
) -> None:
    """Ingest status changes, deliver the notices that are due, print a summary."""
    from notifier.wiring import open_engine

    config = settings()
    reader = BatchReader(files)
    try:
        with open_engine(config) as engine:
            ingest = engine.ingest(_with_progress(reader))
            delivery = asyncio.run(deliver_and_close(engine))
    except NotifierError as exc:
        raise fail(str(exc)) from None
    print_summary(reader, ingest, delivery)
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


# --- notices ------------------------------------------------------------------------------


def notice_json(notice: Notice) -> dict[str, Any]:
    return {
        "key": notice.key,
        "rule": notice.rule_id,
        "order_id": notice.order_id,
        "fulfillment_id": notice.fulfillment_id,
        "recipient": notice.recipient,
        "status": notice.status.value,
        "attempts": notice.attempts,
        "ambiguous_attempts": notice.ambiguous_attempts,
        "message_id": notice.message_id,
        "created_at": notice.created_at.isoformat(),
        "sent_at": notice.sent_at.isoformat() if notice.sent_at else None,
        "due_at": notice.due_at.isoformat(),
        "reason": notice.reason,
    }


@app.command()
def notices(
    as_json: Annotated[
        bool, typer.Option("--json", help="A JSON array instead of a table.")
    ] = False,
    status: Annotated[
        NoticeStatus | None, typer.Option(help="Only notices in this status.")
    ] = None,
    order: Annotated[str | None, typer.Option("--order", help="Only this order's notices.")] = None,
) -> None:
    """List the notices in the ledger."""
    from notifier.store.sql import SqlStore

    config = settings()
    try:
        store = SqlStore(config.database_url)
        try:
            found = store.notices(status=status, order_id=order)
        finally:
            store.close()
    except NotifierError as exc:
        raise fail(str(exc)) from None
    if as_json:
        sys.stdout.write(
            json.dumps([notice_json(n) for n in found], indent=2, ensure_ascii=False) + "\n"
        )
        return
    table = Table(title=f"{len(found)} notice(s)", title_justify="left")
    for column in ("key", "status", "recipient", "attempts", "created", "sent", "reason"):
        table.add_column(column, overflow="fold")
    styles = {NoticeStatus.SENT: "green", NoticeStatus.FAILED: "red", NoticeStatus.RETRY: "yellow"}
    for notice in found:
        # Ambiguous: a connection died after the message data went out; it may have arrived.
        ambiguous = f" [magenta]ambiguous x{notice.ambiguous_attempts}[/]"
        table.add_row(
            notice.key,
            f"[{styles.get(notice.status, 'default')}]{notice.status.value}[/]"
            + (ambiguous if notice.ambiguous_attempts else ""),
            notice.recipient or "-",
            str(notice.attempts),
            notice.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            notice.sent_at.strftime("%Y-%m-%d %H:%M:%S") if notice.sent_at else "-",
            notice.reason or "",
        )
    out.print(table)


# --- check --------------------------------------------------------------------------------


@app.command()
def check() -> None:
    """Load every rule and render every template against a sample record; report all problems."""
    from notifier.checks import check_all

    config = settings()
    problems, checked = check_all(config)
    for problem in problems:
        err.print(f"[red]✗[/] {problem}", highlight=False)
    if problems:
        raise fail(f"{len(problems)} problem(s) found", code=1)
    out.print(f"[green]✓[/] {checked} rule/template combination(s) render cleanly")


# --- db -----------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the store's schema to the newest revision."""
    from notifier.store import migrate
    from notifier.store.sql import SqlStore

    config = settings()
    try:
        store = SqlStore(config.database_url)
        store.close()
    except NotifierError as exc:
        raise fail(str(exc)) from None
    out.print(f"store {store.safe_url} is at revision {migrate.head_revision()}")


def main() -> None:
    app()


# deliver, retry, resend, suppress: their own module, registered on `app` on import.
from notifier import cli_delivery as _cli_delivery  # noqa: E402, F401
