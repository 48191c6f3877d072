"""The scheduler: coalesced misfires, catch-up after downtime, job locks, the CLI, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from support.project import env_for, settings_for, smtp_settings, write_jsonl
from support.smtp_sink import SmtpSink
from typer.testing import CliRunner

from notifier.cli import app
from notifier.processes.project_file import JobSpec, ProjectFile
from notifier.processes.scheduler import build_scheduler, last_run_cursor
from notifier.processes.wiring import open_engine
from notifier.sources.dropfolder import DropFolderOptions
from notifier.store.sql import SqlStore

RECORD = {
    "order_id": "O-1",
    "fulfillment_id": "F-1",
    "status": "Pending Shipment",
    "tracking_number": "1Z999AA10123456784",
    "email": "jane@example.com",
}


def drop_job(drop: Path, **when: object) -> JobSpec:
    return JobSpec(
        name="house",
        kind="dropfolder",
        options=DropFolderOptions(path=drop, min_age=timedelta(0)),
        **when,  # type: ignore[arg-type]
    )


def test_runs_missed_while_the_loop_was_blocked_collapse_into_one(tmp_path: Path) -> None:
    """coalesce + misfire grace: a 1.5 s stall of a 0.25 s job gives one catch-up run, not six."""
    (tmp_path / "drop").mkdir()
    spec = drop_job(tmp_path / "drop", interval=timedelta(seconds=0.25))

    async def scenario() -> tuple[int, int, dict[str, object]]:
        with open_engine(settings_for(tmp_path)) as engine:
            scheduler = build_scheduler(ProjectFile(jobs=(spec,)), engine=engine, wake=lambda: 0)
            try:
                await asyncio.sleep(0.15)
                before = scheduler.runs.get("house", 0)
                time.sleep(1.5)  # noqa: ASYNC251 - on purpose: the loop is stuck, six fire times pass
                await asyncio.sleep(0.3)
                after = scheduler.runs.get("house", 0)
                job = scheduler.get_job("house")
                settings = {
                    "coalesce": job.coalesce,
                    "max_instances": job.max_instances,
                    "misfire_grace_time": job.misfire_grace_time,
                }
            finally:
                await scheduler.aclose()
            return before, after, settings

    before, after, job_settings = asyncio.run(scenario())
    assert before == 1  # an interval job that never ran runs at start
    assert after - before in (1, 2)  # the coalesced run, plus at most one on schedule
    assert job_settings == {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}


def test_a_run_missed_while_down_is_made_up_once_at_start(tmp_path: Path) -> None:
    """A yearly cron job whose last run was two years ago runs once at start, then waits."""
    drop = tmp_path / "drop"
    drop.mkdir()
    write_jsonl(drop / "late.jsonl", [RECORD])
    spec = drop_job(drop, cron="0 0 1 1 *")

    async def scenario() -> int:
        with open_engine(settings_for(tmp_path)) as engine:
            long_ago = engine.clock() - timedelta(days=730)
            engine.store.set_cursor(last_run_cursor("house"), long_ago.isoformat(), now=long_ago)
            scheduler = build_scheduler(ProjectFile(jobs=(spec,)), engine=engine, wake=lambda: 0)
            try:
                await asyncio.sleep(0.8)
            finally:
                await scheduler.aclose()
            return scheduler.runs.get("house", 0)

    assert asyncio.run(scenario()) == 1
    assert not (drop / "late.jsonl").exists()


def test_sqlite_job_lock_is_held_by_one_store_at_a_time(tmp_path: Path) -> None:
    """Two stores on one SQLite file: the second is refused until the first lets go."""
    url = f"sqlite:///{tmp_path / 'notifier.db'}"
    first, second = SqlStore(url), SqlStore(url)
    try:
        with first.job_lock("job:house") as held:
            assert held
            with second.job_lock("job:house") as other, second.job_lock("job:crm") as unrelated:
                assert (other, unrelated) == (False, True)
        with second.job_lock("job:house") as again:
            assert again
    finally:
        first.close()
        second.close()


def test_a_job_locked_by_another_instance_is_skipped(tmp_path: Path) -> None:
    """While another instance holds the job's lock, this one imports nothing."""
    drop = tmp_path / "drop"
    drop.mkdir()
    write_jsonl(drop / "batch.jsonl", [RECORD])
    settings = settings_for(tmp_path)
    other = SqlStore(settings.database_url)
    spec = drop_job(drop, interval=timedelta(minutes=1))
    try:
        with open_engine(settings) as engine:
            scheduler = build_scheduler(
                ProjectFile(jobs=(spec,)), engine=engine, wake=lambda: 0, start=False
            )
            with other.job_lock("job:house"):
                assert scheduler.run_job(spec) == 0
                assert (drop / "batch.jsonl").exists()
            assert scheduler.run_job(spec) == 1
            assert not (drop / "batch.jsonl").exists()
    finally:
        other.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the local PostgreSQL, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    name = f"notifier_issue7_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
            autocommit=True,
            connect_timeout=3,
        )
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


HOLD_LOCK = """
import sys, time
from notifier.store.sql import SqlStore
with SqlStore(sys.argv[1]).job_lock("job:house") as held:
    print(held, flush=True)
    time.sleep(60)
"""


@pytest.mark.postgres
def test_postgres_job_lock_is_cluster_wide_and_dies_with_its_session(postgres_url: str) -> None:
    """pg_try_advisory_lock: one holder across stores; released on exit and on a lost session."""
    first, second = SqlStore(postgres_url), SqlStore(postgres_url)
    try:
        with first.job_lock("job:house") as held:
            assert held
            with second.job_lock("job:house") as other, second.job_lock("job:crm") as unrelated:
                assert (other, unrelated) == (False, True)
        with second.job_lock("job:house") as again:
            assert again
        first.close()
        # An instance killed while holding the lock: its session ends, and the lock with it.
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_LOCK, postgres_url],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout is not None
            assert holder.stdout.readline().strip() == "True"
            with second.job_lock("job:house") as while_held:
                assert not while_held
            holder.kill()
        finally:
            holder.communicate(timeout=10)
        deadline = time.monotonic() + 10
        while True:
            with second.job_lock("job:house") as after:
                if after:
                    break
            assert time.monotonic() < deadline, "the dead session's lock was never released"
            time.sleep(0.05)
    finally:
        second.close()


def test_schedule_list_shows_each_job_and_its_next_run(tmp_path: Path) -> None:
    """`notifier schedule list`: every job, how often, next run; unknown job names are errors."""
    config = tmp_path / "notifier.toml"
    config.write_text(
        '[jobs.house]\nkind = "dropfolder"\npath = "drop"\ninterval = "2m"\n'
        '[jobs.nightly]\nkind = "dropfolder"\npath = "drop"\ncron = "0 3 * * *"\n'
    )
    env = {**env_for(settings_for(tmp_path)), "NOTIFIER_CONFIG": str(config), "COLUMNS": "200"}
    runner = CliRunner()
    listed = runner.invoke(app, ["schedule", "list"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "house" in listed.output and "every 2m" in listed.output
    assert "nightly" in listed.output and "03:00:00 UTC" in listed.output
    assert "quiet hours: off" in listed.output
    unknown = runner.invoke(app, ["schedule", "run", "nope"], env=env)
    assert unknown.exit_code == 2
    assert "no job named 'nope'" in unknown.output


def test_notifier_schedule_mails_a_dropped_file_and_stops_cleanly_on_sigterm(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """The command alone: picks up the file, the worker mails it, SIGTERM exits 0."""
    drop = tmp_path / "drop"
    drop.mkdir()
    config = tmp_path / "notifier.toml"
    config.write_text(
        '[jobs.house]\nkind = "dropfolder"\npath = "drop"\ninterval = "1s"\nmin_age = "0s"\n'
    )
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port)
    env = {**os.environ, **env_for(settings), "NOTIFIER_CONFIG": str(config)}
    child = subprocess.Popen(
        [sys.executable, "-m", "notifier", "schedule"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        write_jsonl(drop / ".batch.tmp", [RECORD]).rename(drop / "batch.jsonl")
        smtp_sink.wait_for(1, timeout=30)
        child.send_signal(signal.SIGTERM)
        _, stderr = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, stderr
    assert "scheduler running: house (every 1s)" in stderr and "stopped" in stderr
    assert [p.name.split("-", 1)[1] for p in (drop / "processed").iterdir()] == ["batch.jsonl"]
    assert len(smtp_sink.messages) == 1
