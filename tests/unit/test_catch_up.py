"""Runs missed while the process was down: one catch-up run, never a replay. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from notifier.processes.project_file import JobSpec, ProjectFile
from notifier.processes.scheduler import catch_up_run
from notifier.sources.dropfolder import DropFolderOptions

NOW = datetime(2026, 11, 27, 12, 7, tzinfo=UTC)
CONFIG = ProjectFile()


def job(interval: timedelta | None = None, cron: str | None = None) -> JobSpec:
    options = DropFolderOptions(path=Path("drop"))
    return JobSpec(name="j", kind="dropfolder", options=options, interval=interval, cron=cron)


def test_interval_job_that_never_ran_runs_at_start() -> None:
    """No last run: an interval job runs at once; a cron job waits for its time."""
    assert catch_up_run(job(interval=timedelta(minutes=5)), CONFIG, None, NOW) == NOW
    assert catch_up_run(job(cron="0 3 * * *"), CONFIG, None, NOW) is None


def test_interval_job_runs_once_however_long_it_was_down() -> None:
    """Down for 100 intervals or 1: one run now; within the interval: none."""
    every = timedelta(minutes=5)
    assert catch_up_run(job(interval=every), CONFIG, NOW - 100 * every, NOW) == NOW
    assert catch_up_run(job(interval=every), CONFIG, NOW - every, NOW) == NOW
    assert catch_up_run(job(interval=every), CONFIG, NOW - timedelta(minutes=4), NOW) is None


def test_cron_job_catches_up_only_if_a_fire_time_passed() -> None:
    """Hourly at :00: last run 11:00 and it is 12:07 -> owed; last run 12:00:02 -> not."""
    hourly = job(cron="0 * * * *")
    assert catch_up_run(hourly, CONFIG, datetime(2026, 11, 27, 11, 0, 1, tzinfo=UTC), NOW) == NOW
    assert catch_up_run(hourly, CONFIG, datetime(2026, 11, 27, 12, 0, 2, tzinfo=UTC), NOW) is None
