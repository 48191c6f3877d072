"""`notifier worker` and its wake-ups: real processes, a real ledger, a real SMTP server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from support.ledger import engine_on, tracking_records
from support.postgres import PgDatabases
from support.project import ROOT, env_for, settings_for, smtp_settings
from support.smtp_sink import SmtpSink

from notifier.core.models import NoticeStatus
from notifier.engine.claimant import Claimant
from notifier.engine.worker import DeliveryWorker
from notifier.store import migrate
from notifier.store.postgres import DueListener
from notifier.store.sql import SqlStore
from notifier.transports.memory import MemoryTransport


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "notifier", "worker", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def announced_worker_id(process: subprocess.Popen[str]) -> str:
    """The id (claim token) a worker prints when it starts."""
    assert process.stderr is not None
    line = process.stderr.readline()
    assert line.startswith("notifier worker "), line
    return line.split()[2]


def test_worker_delivers_new_notices_and_stops_cleanly_on_sigterm(
    tmp_path: Path, smtp_sink: SmtpSink, store_url: str
) -> None:
    """A running worker sends what another instance ingests; SIGTERM exits 0 with a summary."""
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port, database_url=store_url)
    # On PostgreSQL the worker is woken by NOTIFY, so its poll can be far longer than the test.
    poll = "60" if store_url.startswith("postgresql") else "0.2"
    worker = start_worker({**env_for(settings), "NOTIFIER_POLL_SECONDS": poll})
    try:
        worker_id = announced_worker_id(worker)
        time.sleep(0.5)  # let it go idle before the notices exist
        store = SqlStore(store_url)
        try:
            engine_on(store).ingest(tracking_records(3))
            smtp_sink.wait_for(3, timeout=10)
            for _ in range(50):  # the completion is recorded just after the SMTP reply
                if store.notice_counts() == {NoticeStatus.SENT: 3}:
                    break
                time.sleep(0.1)
            assert store.notice_counts() == {NoticeStatus.SENT: 3}
        finally:
            store.close()
        worker.send_signal(signal.SIGTERM)
        out, errors = worker.communicate(timeout=20)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, errors
    assert "worker stopped: 3 sent" in out
    # The id it announces is its claim token, naming this process (notifier.engine.claimant).
    claimant = Claimant.parse(worker_id)
    assert claimant is not None and claimant.pid == worker.pid


def test_until_idle_exits_once_everything_is_delivered(
    tmp_path: Path, smtp_sink: SmtpSink, store_url: str
) -> None:
    """`--until-idle` delivers the backlog and exits 0 on its own."""
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port, database_url=store_url)
    store = SqlStore(store_url)
    try:
        engine_on(store).ingest(tracking_records(20))
    finally:
        store.close()
    done = subprocess.run(
        [sys.executable, "-m", "notifier", "worker", "--until-idle"],
        cwd=ROOT,
        env={**os.environ, **env_for(settings)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "worker stopped: 20 sent" in done.stdout
    assert len(smtp_sink.deliveries) == 20


async def eventually(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise TimeoutError(f"not true within {seconds} s")


@pytest.mark.postgres
def test_listen_notify_wakes_an_idle_worker_at_once(pg_url: str) -> None:
    """An idle worker polling every 60 s delivers a notice ingested elsewhere within seconds."""
    transport = MemoryTransport()

    async def scenario() -> float:
        store = SqlStore(pg_url)
        other = SqlStore(pg_url)
        listener = DueListener(pg_url)
        worker = DeliveryWorker(engine_on(store, transport), poll_interval=60, waker=listener)
        try:
            worker.start()
            await asyncio.wait_for(listener.listening.wait(), timeout=10)
            # The pass at start, and the one the listener's on-connect wake asks for.
            await eventually(lambda: worker.passes >= 2)
            started = time.monotonic()
            await asyncio.to_thread(engine_on(other).ingest, tracking_records(1))
            await eventually(lambda: bool(transport.messages))
            return time.monotonic() - started
        finally:
            await worker.stop()
            store.close()
            other.close()

    seconds = asyncio.run(asyncio.wait_for(scenario(), timeout=20))
    assert len(transport.messages) == 1
    assert seconds < 10  # far below the 60 s poll: it was the notification


@pytest.mark.postgres
def test_listener_reconnects_after_losing_its_connection(pg_url: str) -> None:
    """The LISTEN session killed (as in a failover): the listener reconnects and wakes again."""
    woken: list[float] = []

    async def scenario() -> None:
        listener = DueListener(pg_url, reconnect_delay=0.1)
        listener.start(lambda: woken.append(time.monotonic()))
        try:
            await asyncio.wait_for(listener.listening.wait(), timeout=10)
            first_pid = listener.backend_pid
            assert first_pid is not None and len(woken) == 1  # the on-connect wake
            with psycopg.connect(pg_url, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (first_pid,))
            await eventually(lambda: listener.backend_pid != first_pid and len(woken) >= 2)
            await asyncio.wait_for(listener.listening.wait(), timeout=10)
            other = SqlStore(pg_url)
            try:
                await asyncio.to_thread(engine_on(other).ingest, tracking_records(1))
            finally:
                other.close()
            await eventually(lambda: listener.notifications >= 1)
        finally:
            await listener.stop()

    asyncio.run(asyncio.wait_for(scenario(), timeout=30))
    assert len(woken) >= 3  # connect, reconnect, notification


@pytest.mark.postgres
def test_db_upgrade_from_several_processes_at_once(pg_databases: PgDatabases) -> None:
    """Three `notifier db upgrade` processes on an empty database: all exit 0, schema at head."""
    url = pg_databases.fresh()
    env = {**os.environ, "NOTIFIER_DATABASE_URL": url}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "notifier", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [process.communicate(timeout=60) for process in processes]
    for process, (out, errors) in zip(processes, results, strict=True):
        assert process.returncode == 0, errors
        assert f"is at revision {migrate.head_revision()}" in " ".join(out.split())
    store = SqlStore(url, migrate_schema=False)
    try:
        with store.engine.connect() as connection:
            assert migrate.current_revision(connection) == migrate.head_revision()
        assert store.notices() == []
    finally:
        store.close()


@pytest.mark.postgres
def test_every_command_works_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    """`run`, `notices --json` and `check` against a PostgreSQL URL, as an operator runs them."""
    settings = settings_for(tmp_path, database_url=pg_url)
    env = {**os.environ, **env_for(settings)}

    def notifier(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "notifier", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    run = notifier("run", str(ROOT / "examples" / "batch.jsonl"))
    assert run.returncode == 1, run.stderr  # the example batch has two bad lines, on purpose
    assert "line 20" in run.stderr and "line 21" in run.stderr
    listed = notifier("notices", "--json")
    assert listed.returncode == 0, listed.stderr
    notices = json.loads(listed.stdout)
    assert len(notices) == 9 and {n["status"] for n in notices} == {"sent"}
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 9
    checked = notifier("check")
    assert checked.returncode == 0, checked.stderr


@pytest.mark.postgres
def test_sigterm_mid_batch_finishes_the_batch_in_flight(
    tmp_path: Path, smtp_sink: SmtpSink, pg_url: str
) -> None:
    """SIGTERM while sending: the claimed batch is finished and recorded, nothing left `sending`."""
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port, database_url=pg_url)
    store = SqlStore(pg_url)
    try:
        engine_on(store).ingest(tracking_records(400))
        worker = start_worker(env_for(settings))
        try:
            announced_worker_id(worker)
            smtp_sink.wait_for(1, timeout=30)
            worker.send_signal(signal.SIGTERM)
            out, errors = worker.communicate(timeout=60)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
        assert worker.returncode == 0, errors
        counts = store.notice_counts()
        assert NoticeStatus.SENDING not in counts
        # Every message the server accepted is recorded sent; the rest wait, unclaimed.
        assert counts[NoticeStatus.SENT] == len(smtp_sink.deliveries)
        assert counts[NoticeStatus.SENT] + counts.get(NoticeStatus.PENDING, 0) == 400
        assert f"worker stopped: {counts[NoticeStatus.SENT]} sent" in out
    finally:
        store.close()
