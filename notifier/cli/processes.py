"""The long-running commands: serve (HTTP), worker (delivery only), schedule (jobs + delivery)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.table import Table

from notifier.cli.root import app, deliver_and_close, err, fail, out, settings
from notifier.engine import utc_now


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
    from notifier.http.signing import MISSING_SECRET

    config = settings()
    if config.webhook_secret is None and not insecure:
        raise fail(MISSING_SECRET)  # before loading the web stack: refusing is instant
    from notifier.processes.project_file import load_project_file
    from notifier.processes.serve import serve as run_server
    from notifier.processes.serve import standard_extras

    if insecure and config.webhook_secret is None:
        err.print(
            "[bold red]WARNING: --insecure: webhooks are accepted WITHOUT a signature."
            " Anyone who can reach this server can make it email your customers.[/]",
            highlight=False,
        )
    project_file = load_project_file(config)
    run_server(
        config,
        host=host or config.serve_host,
        port=config.serve_port if port is None else port,
        insecure=insecure,
        project_file=project_file,
        extras=standard_extras(config, project_file),
        announce=lambda url: err.print(
            f"notifier serve listening on {url}", highlight=False, soft_wrap=True
        ),
    )


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
    from notifier.processes.worker import WorkerStarted, run_worker

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

    report = asyncio.run(run_worker(config, until_idle=until_idle, announce=announce))
    counts = ", ".join(f"{n:,} {status.value}" for status, n in sorted(report.counts.items()))
    out.print(f"worker stopped: {counts or 'nothing delivered'}", highlight=False)


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
    from notifier.processes.project_file import load_project_file
    from notifier.processes.scheduler import run_schedule

    config = settings()
    jobs = load_project_file(config)
    names = ", ".join(f"{j.name} ({j.when})" for j in jobs.jobs) or "no jobs configured"
    err.print(f"scheduler running: {names}; SIGTERM or Ctrl-C stops", highlight=False)
    asyncio.run(run_schedule(jobs, settings=config))
    err.print("stopped: running jobs finished, nothing in flight", highlight=False)


@schedule_app.command("list")
def schedule_list() -> None:
    """Show each scheduled job, when it runs, its last run and its next run."""
    from notifier.processes.project_file import load_project_file
    from notifier.processes.scheduler import job_table
    from notifier.store.sql import SqlStore

    config = settings()
    jobs = load_project_file(config)
    store = SqlStore(config.database_url)
    try:
        rows = job_table(jobs, store, now=utc_now())
    finally:
        store.close()
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
    from notifier.processes.project_file import load_project_file
    from notifier.processes.scheduler import build_scheduler
    from notifier.processes.wiring import feedback_intake, open_engine

    config = settings()
    jobs = load_project_file(config)
    spec = next((j for j in jobs.jobs if j.name == job), None)
    if spec is None:
        known = ", ".join(j.name for j in jobs.jobs) or "none configured"
        raise fail(f"no job named {job!r} (jobs: {known})")
    with open_engine(config, project_file=jobs) as engine:
        scheduler = build_scheduler(
            jobs,
            engine=engine,
            wake=lambda: None,
            start=False,
            feedback=feedback_intake(config, engine),
        )
        try:
            created = scheduler.run_job(spec)
        finally:
            scheduler.close_sources()
        delivery = asyncio.run(deliver_and_close(engine))
    delivered = ", ".join(f"{n} {s.value}" for s, n in sorted(delivery.counts.items()))
    if summary := scheduler.summaries.get(job):
        out.print(f"job {job}: {summary}", highlight=False)
    out.print(f"job {job}: {created} notice(s) created; delivered: {delivered or 'nothing due'}")
