"""The `notifier` command: parse, wire, delegate. Errors are translated here, once."""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.table import Table

from notifier.engine import Clock, DeliveryReport, Engine, IngestReport, utc_now
from notifier.errors import NotifierError, TemplateError
from notifier.models import Notice, NoticeStatus, Record
from notifier.records import Rejection, read_path, read_records
from notifier.settings import Settings, load_settings

EXIT_REJECTED = 1
EXIT_USAGE = 2

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="The store's schema.")
app.add_typer(db_app, name="db")
out = Console()
if not out.is_terminal:
    # Piped output is read by scripts and people alike: do not fold keys at 80 columns.
    out = Console(width=200)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    # Escaped and never hard-wrapped: messages carry paths and template code to grep for.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
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
    # APScheduler narrates every run at INFO; our jobs log what they did themselves.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    return loaded


# --- run ----------------------------------------------------------------------------------


class BatchReader:
    """Records from files (or `-` for stdin), reporting each rejection on stderr as it goes."""

    def __init__(self, sources: list[str], *, clock: Clock) -> None:
        self.sources = sources
        self.clock = clock
        self.read = 0
        self.rejected = 0

    def __iter__(self) -> Iterator[Record]:
        received_at = self.clock()
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
    reader = BatchReader(files, clock=utc_now)
    try:
        with open_engine(config, clock=reader.clock) as engine:
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
        err.print(f"[red]✗[/] {escape(problem)}", highlight=False, soft_wrap=True)
    if problems:
        raise fail(f"{len(problems)} problem(s) found", code=1)
    out.print(f"[green]✓[/] {checked} rule/template combination(s) render cleanly")


# --- preview ------------------------------------------------------------------------------


class PreviewFormat(enum.StrEnum):
    TEXT = "text"
    HTML = "html"
    EML = "eml"
    ALL = "all"


@app.command()
def preview(
    rule_id: Annotated[str, typer.Argument(metavar="RULE", help="The rule's id.")],
    record: Annotated[
        str | None,
        typer.Option(
            "--record",
            help="Record file (.json, .jsonl, .csv; one record or an order's several), "
            "or - for stdin. Default: a built-in realistic order.",
        ),
    ] = None,
    campaign: Annotated[
        str | None, typer.Option("--campaign", help="Render as this campaign (templates, sender).")
    ] = None,
    output_format: Annotated[
        PreviewFormat, typer.Option("--format", help="What to print.")
    ] = PreviewFormat.TEXT,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write to this file instead of stdout.")
    ] = None,
    open_html: Annotated[
        bool, typer.Option("--open", help="Also open the HTML part in the web browser.")
    ] = False,
) -> None:
    """Render a rule's notice exactly as delivery would; sends nothing, writes no store."""
    from notifier import preview as previews
    from notifier.rules import load_rules
    from notifier.wiring import make_composer

    config = settings()
    try:
        rule = previews.find_rule(load_rules(config.rules_dir), rule_id)
        records = _preview_records(record) if record else None
        shown = previews.render_preview(make_composer(config), rule, records, campaign_id=campaign)
    except (previews.RecordsRejectedError, TemplateError) as exc:
        raise fail(str(exc), code=1) from None
    except NotifierError as exc:
        raise fail(str(exc)) from None
    for note in shown.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    text = previews.format_preview(shown, output_format.value)
    if out_path is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        out_path.write_text(text, encoding="utf-8")
        err.print(f"wrote {out_path}", highlight=False, markup=False, soft_wrap=True)
    if open_html:
        html_file, opened = previews.open_in_browser(
            shown, reuse=out_path, is_html=output_format == "html"
        )
        said = "opened" if opened else "no web browser found; the HTML is in"
        err.print(f"{said} {html_file}", highlight=False, markup=False, soft_wrap=True)


def _preview_records(source: str) -> list[Record]:
    from notifier.preview import accepted_records

    received_at = utc_now()
    if source == "-":
        return accepted_records(read_records(sys.stdin, source="<stdin>", received_at=received_at))
    path = Path(source)
    if not path.is_file():
        raise fail(f"{source}: no such file")
    return accepted_records(read_path(path, received_at=received_at))


# --- carrier ------------------------------------------------------------------------------


@app.command()
def carrier(
    number: Annotated[str, typer.Argument(help="The tracking number (spaces allowed).")],
    declared: Annotated[
        str | None,
        typer.Option("--carrier", help="The carrier the record names (it wins, as in delivery)."),
    ] = None,
) -> None:
    """Show which carrier a tracking number belongs to and its tracking link."""
    from notifier.carriers import identify

    found = identify(number, declared)
    for note in found.notes:
        err.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    if found.carrier is None:
        raise fail(f"{number!r}: {found.how}", code=1)
    for label, value in (
        ("carrier", f"{found.carrier.name}  ({found.how})"),
        ("number", found.carrier.number),
        ("tracking", found.carrier.tracking_url),
    ):
        out.print(f"{label:<9} {value}", highlight=False, markup=False, soft_wrap=True)


# --- serve --------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on (default: NOTIFIER_SERVE_HOST, 127.0.0.1)."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help="Port; 0 picks a free one (default: NOTIFIER_SERVE_PORT, 8000)."),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Accept UNSIGNED webhooks (local trials only).")
    ] = False,
) -> None:
    """Receive status changes over HTTP (webhook, Konnektive postbacks); deliver at once."""
    from notifier.signing import MISSING_SECRET

    config = settings()
    if config.webhook_secret is None and not insecure:
        raise fail(MISSING_SECRET)  # before loading the web stack: refusing is instant
    from notifier.serve import serve as run_server
    from notifier.serve import standard_extras

    if insecure and config.webhook_secret is None:
        err.print(
            "[bold red]WARNING: --insecure: webhooks are accepted WITHOUT a signature."
            " Anyone who can reach this server can make it email your customers.[/]",
            highlight=False,
        )
    try:
        run_server(
            config,
            host=host or config.serve_host,
            port=config.serve_port if port is None else port,
            insecure=insecure,
            extras=standard_extras(config),
            announce=lambda url: err.print(
                f"notifier serve listening on {url}", highlight=False, soft_wrap=True
            ),
        )
    except NotifierError as exc:
        raise fail(str(exc)) from None


# --- worker -------------------------------------------------------------------------------


@app.command("worker")
def worker_command(
    until_idle: Annotated[
        bool,
        typer.Option(
            "--until-idle",
            help="Exit once no notice is due or being sent by any worker (tests, drains).",
        ),
    ] = False,
) -> None:
    """Deliver due notices until stopped; no HTTP. SIGTERM/SIGINT finish the batch in flight."""
    from notifier.worker_process import WorkerStarted, run_worker

    config = settings()

    def announce(started: WorkerStarted) -> None:
        how = "listening for new notices" if started.listening else "polling"
        err.print(
            f"notifier worker {started.worker_id} delivering from {started.store}"
            f" ({how}, every {started.poll_seconds:g} s at most)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )

    try:
        report = asyncio.run(run_worker(config, until_idle=until_idle, announce=announce))
    except NotifierError as exc:
        raise fail(str(exc)) from None
    counts = ", ".join(f"{n:,} {status.value}" for status, n in sorted(report.counts.items()))
    out.print(f"worker stopped: {counts or 'nothing delivered'}", highlight=False)


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


# --- schedule -------------------------------------------------------------------------------

schedule_app = typer.Typer(
    help="Scheduled jobs (notifier.toml): drop folders, the CRM's order query, delivery."
    " Without a command: run the jobs and the delivery worker until SIGTERM or Ctrl-C."
)
app.add_typer(schedule_app, name="schedule")


@schedule_app.callback(invoke_without_command=True)
def schedule(ctx: typer.Context) -> None:
    """Run the scheduled jobs and the delivery worker until SIGTERM or Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from notifier.config_file import load_config
    from notifier.scheduler import run_until_stopped
    from notifier.wiring import open_engine

    config = settings()
    try:
        jobs = load_config(config)
        with open_engine(config) as engine:
            names = ", ".join(f"{j.name} ({j.when})" for j in jobs.jobs) or "no jobs configured"
            err.print(f"scheduler running: {names}; SIGTERM or Ctrl-C stops", highlight=False)
            asyncio.run(run_until_stopped(jobs, engine=engine, settings=config))
    except NotifierError as exc:
        raise fail(str(exc)) from None
    err.print("stopped: running jobs finished, nothing in flight", highlight=False)


@schedule_app.command("list")
def schedule_list() -> None:
    """Show each scheduled job, when it runs, its last run and its next run."""
    from notifier.config_file import load_config
    from notifier.scheduler import job_table
    from notifier.store.sql import SqlStore

    config = settings()
    try:
        jobs = load_config(config)
        store = SqlStore(config.database_url)
        try:
            rows = job_table(jobs, store, now=utc_now())
        finally:
            store.close()
    except NotifierError as exc:
        raise fail(str(exc)) from None
    where = str(jobs.source) if jobs.source else "environment only (no notifier.toml)"
    table = Table(title=f"{len(rows)} job(s) from {where}", title_justify="left")
    for column in ("job", "kind", "when", "last run", "next run"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.name,
            row.kind,
            row.when,
            _when(row.last_run),
            _when(row.next_run),
        )
    out.print(table)
    quiet = jobs.quiet_hours
    out.print(f"quiet hours: {quiet.describe() if quiet.enabled else 'off'}", highlight=False)


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"


@schedule_app.command("run")
def schedule_run(
    job: Annotated[str, typer.Argument(help="The job's name in notifier.toml.")],
) -> None:
    """Run one job now (honouring its lock), deliver what is due, and exit: for cron or by hand."""
    from notifier.config_file import load_config
    from notifier.scheduler import build_scheduler
    from notifier.wiring import open_engine

    config = settings()
    try:
        jobs = load_config(config)
        spec = next((j for j in jobs.jobs if j.name == job), None)
        if spec is None:
            known = ", ".join(j.name for j in jobs.jobs) or "none configured"
            raise fail(f"no job named {job!r} (jobs: {known})")
        with open_engine(config) as engine:
            scheduler = build_scheduler(jobs, engine=engine, wake=lambda: None, start=False)
            try:
                created = scheduler.run_job(spec)
            finally:
                scheduler.close_sources()
            delivery = asyncio.run(deliver_and_close(engine))
    except NotifierError as exc:
        raise fail(str(exc)) from None
    delivered = ", ".join(f"{n} {s.value}" for s, n in sorted(delivery.counts.items()))
    out.print(f"job {job}: {created} notice(s) created; delivered: {delivered or 'nothing due'}")


def main() -> None:
    app()


# deliver, retry, resend, suppress: their own module, registered on `app` on import.
from notifier import cli_delivery as _cli_delivery  # noqa: E402, F401
