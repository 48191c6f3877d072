"""APScheduler wiring: the jobs of notifier.toml on an asyncio loop, beside the delivery worker.

Each job runs in a thread (sources are blocking: files, SQL, HTTP) under the store's
cluster-wide job lock, so two instances never import the same batch twice. Every job has
`coalesce=True`, `max_instances=1` and a `misfire_grace_time`: runs missed while the loop
was busy collapse into one. Runs missed while the process was down are caught up by one
run at start (each job's last run is kept in the store). A job that created notices wakes
the delivery worker, which then delivers them as soon as they are due.

`notifier serve` and `notifier schedule` run the jobs as a `ScheduledJobs` service under
notifier.lifecycle, which stops it (running jobs finish their file or page) with the rest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from notifier.core.durations import format_duration
from notifier.engine import Engine
from notifier.engine.feedback import FeedbackIntake
from notifier.errors import ConfigError, NotifierError
from notifier.processes.lifecycle import run_until_stopped
from notifier.processes.project_file import JobSpec, ProjectFile
from notifier.processes.wiring import feedback_intake, open_engine
from notifier.processes.worker import delivery_worker_for
from notifier.settings import Settings
from notifier.sources.bounces.mailbox import BounceMailbox, MailboxOptions
from notifier.sources.dropfolder import DropFolder, DropFolderOptions
from notifier.sources.konnektive import KonnektiveOptions, KonnektivePoller
from notifier.store.base import Store

log = logging.getLogger("notifier.processes.scheduler")

SWEEP_JOB = "sweep"


def last_run_cursor(name: str) -> str:
    return f"schedule:{name}:last_run"


def make_trigger(spec: JobSpec, config: ProjectFile) -> IntervalTrigger | CronTrigger:
    if spec.interval is not None:
        return IntervalTrigger(seconds=spec.interval.total_seconds(), timezone=config.timezone)
    assert spec.cron is not None
    return CronTrigger.from_crontab(spec.cron, timezone=config.timezone)


def catch_up_run(
    spec: JobSpec, config: ProjectFile, last_run: datetime | None, now: datetime
) -> datetime | None:
    """`now` if a run is owed (missed while down, or an interval job that never ran), else None.

    However many runs were missed, one is owed: downtime is coalesced, never replayed.
    """
    if last_run is None:
        return now if spec.interval is not None else None
    if spec.interval is not None:
        return now if last_run + spec.interval <= now else None
    due = make_trigger(spec, config).get_next_fire_time(None, last_run)
    return now if due is not None and due <= now else None


@dataclass(frozen=True, slots=True)
class JobRow:
    """One line of `notifier schedule list`."""

    name: str
    kind: str
    when: str
    last_run: datetime | None
    next_run: datetime | None


def job_table(config: ProjectFile, store: Store, *, now: datetime) -> list[JobRow]:
    """Each job with its last and next run, as a started scheduler would run them."""
    rows = []
    for spec in config.jobs:
        saved = store.cursor(last_run_cursor(spec.name))
        last = datetime.fromisoformat(saved) if saved else None
        upcoming = catch_up_run(spec, config, last, now)
        if upcoming is None and spec.interval is not None and last is not None:
            upcoming = last + spec.interval  # where a running scheduler has it
        elif upcoming is None:
            upcoming = make_trigger(spec, config).get_next_fire_time(None, now)
        rows.append(JobRow(spec.name, spec.kind, spec.when, last, upcoming))
    rows.append(
        JobRow(
            SWEEP_JOB,
            "delivery",
            f"every {format_duration(config.sweep_interval)}",
            None,
            now + config.sweep_interval,
        )
    )
    return rows


class NotifierScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """An AsyncIOScheduler that knows its jobs' threads and waits for them when closing."""

    def __init__(
        self,
        config: ProjectFile,
        *,
        engine: Engine,
        wake: Callable[[], None],
        feedback: FeedbackIntake | None = None,
    ) -> None:
        super().__init__(
            timezone=config.timezone,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": max(1, int(config.misfire_grace.total_seconds())),
            },
        )
        self.config = config
        self.engine = engine
        self.wake = wake
        # Where `mailbox` jobs hand their bounces (processes.wiring.feedback_intake).
        self.feedback = feedback
        self.runs: dict[str, int] = {}
        # What a job's last run did, in words, where its kind says more than a count.
        self.summaries: dict[str, str] = {}
        self._stopping = False
        self._in_flight: set[asyncio.Future[int]] = set()
        self._pollers: dict[str, KonnektivePoller] = {}

    @property
    def store(self) -> Store:
        return self.engine.store

    def add_jobs(self) -> None:
        now = self.engine.clock()
        for spec in self.config.jobs:
            saved = self.store.cursor(last_run_cursor(spec.name))
            last = datetime.fromisoformat(saved) if saved else None
            first = catch_up_run(spec, self.config, last, now)
            extra: dict[str, Any] = {"next_run_time": first} if first is not None else {}
            self.add_job(
                self._fire,
                make_trigger(spec, self.config),
                args=[spec],
                id=spec.name,
                name=f"{spec.kind}: {spec.name}",
                **extra,
            )
            if first is not None:
                log.info("job %s: a run is owed (last run %s): running now", spec.name, last)
        self.add_job(
            self._sweep,
            IntervalTrigger(seconds=self.config.sweep_interval.total_seconds()),
            id=SWEEP_JOB,
            name="delivery sweep",
        )

    async def _sweep(self) -> None:
        self.wake()

    async def _fire(self, spec: JobSpec) -> None:
        # The thread is shielded: a scheduler shutdown must not abandon a half-read batch.
        inner = asyncio.ensure_future(asyncio.to_thread(self.run_job, spec))
        self._in_flight.add(inner)
        inner.add_done_callback(self._in_flight.discard)
        try:
            created = await asyncio.shield(inner)
        except NotifierError as exc:
            log.error("job %s failed: %s", spec.name, exc)
            return
        except Exception:
            log.exception("job %s failed", spec.name)
            return
        if created:
            self.wake()

    def run_job(self, spec: JobSpec) -> int:
        """Run one job now, under its cluster-wide lock; the number of notices created."""
        with self.store.job_lock(f"job:{spec.name}") as held:
            if not held:
                log.info("job %s: already running on another instance; skipped", spec.name)
                return 0
            try:
                created = self._run_source(spec)
            finally:
                now = self.engine.clock()
                self.store.set_cursor(last_run_cursor(spec.name), now.isoformat(), now=now)
            self.runs[spec.name] = self.runs.get(spec.name, 0) + 1
            return created

    def _run_source(self, spec: JobSpec) -> int:
        if isinstance(spec.options, DropFolderOptions):
            folder = DropFolder(spec.options, clock=self.engine.clock, name=spec.name)
            outcomes = folder.run(self.engine, stopping=lambda: self._stopping)
            return sum(outcome.notices_created for outcome in outcomes)
        if isinstance(spec.options, MailboxOptions):
            if self.feedback is None:
                raise ConfigError(f"job {spec.name}: a mailbox job needs the feedback intake")
            mailbox = BounceMailbox(spec.options, clock=self.engine.clock, name=spec.name)
            run = mailbox.run(self.feedback, stopping=lambda: self._stopping)
            self.summaries[spec.name] = run.describe()
            return 0  # suppressions cancel notices when they fall due; nothing to wake
        assert isinstance(spec.options, KonnektiveOptions)
        poller = self._pollers.get(spec.name)
        if poller is None:
            poller = KonnektivePoller(spec.options, name=spec.name, clock=self.engine.clock)
            self._pollers[spec.name] = poller
        report = poller.poll(self.engine, self.store)
        if report.skipped:
            log.info("job %s: %s", spec.name, report.skipped)
        return report.notices_created

    async def aclose(self) -> None:
        """Stop firing, let running jobs finish their current file or page, then shut down."""
        self._stopping = True
        if self.running:
            self.pause()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        if self.running:
            self.shutdown(wait=False)
            await asyncio.sleep(0)  # AsyncIOScheduler shuts down on its loop's next turn
        self.close_sources()

    def close_sources(self) -> None:
        """Close the pollers' HTTP clients (`aclose` does this; call it after bare run_job)."""
        for poller in self._pollers.values():
            poller.close()
        self._pollers.clear()


def build_scheduler(
    config: ProjectFile,
    *,
    engine: Engine,
    wake: Callable[[], None],
    start: bool = True,
    feedback: FeedbackIntake | None = None,
) -> NotifierScheduler:
    """The scheduler with every configured job, started on the running loop unless start=False."""
    scheduler = NotifierScheduler(config, engine=engine, wake=wake, feedback=feedback)
    scheduler.add_jobs()
    if start:
        scheduler.start()
    return scheduler


class ScheduledJobs:
    """The configured jobs as a service of a long-running process (notifier.processes.lifecycle)."""

    def __init__(
        self,
        config: ProjectFile,
        *,
        engine: Engine,
        wake: Callable[[], None],
        feedback: FeedbackIntake | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.wake = wake
        self.feedback = feedback
        self.scheduler: NotifierScheduler | None = None

    async def start(self) -> None:
        self.scheduler = build_scheduler(
            self.config, engine=self.engine, wake=self.wake, feedback=self.feedback
        )
        jobs = ", ".join(f"{j.name} ({j.when})" for j in self.config.jobs) or "no jobs"
        log.info("scheduler started: %s", jobs)

    async def stop(self) -> None:
        if self.scheduler is not None:
            await self.scheduler.aclose()


async def run_schedule(config: ProjectFile, *, settings: Settings) -> None:
    """`notifier schedule`: the jobs and a delivery worker until SIGTERM/SIGINT."""
    with open_engine(settings, project_file=config) as engine:
        worker = delivery_worker_for(engine, settings)
        jobs = ScheduledJobs(
            config, engine=engine, wake=worker.wake, feedback=feedback_intake(settings, engine)
        )
        await run_until_stopped(engine, worker, grace=settings.shutdown_grace, services=[jobs])
