"""Outages: the SMTP server down mid-batch, a store that is locked or missing, odd addresses."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from support import reliability
from support.cli import notifier, tna_key, tna_record, write_records
from support.crash import notifier_command
from support.project import env_for, settings_for, smtp_settings
from support.smtp_sink import SmtpSink
from support.waiting import wait_until

from notifier.core.models import NoticeStatus, message_id_for
from notifier.core.records import Record, parse_json_body
from notifier.engine import DeliveryReport, Engine
from notifier.processes.wiring import open_engine
from notifier.settings import Settings
from notifier.store import sqlite
from notifier.store.sql import SqlStore
from notifier.transports import BeforeData, Transport


def parsed(records: list[dict[str, object]]) -> list[Record]:
    items = list(parse_json_body(records, source="test", received_at=datetime.now(UTC)))
    assert all(isinstance(item, Record) for item in items), items
    return [item for item in items if isinstance(item, Record)]


def deliver(engine: Engine, *, close: bool = True) -> DeliveryReport:
    async def once() -> DeliveryReport:
        try:
            return await engine.deliver_due()
        finally:
            if close:
                await engine.transport.close()

    return asyncio.run(once())


def copies(sink: SmtpSink) -> Counter[str]:
    return Counter(str(m["Message-ID"]) for m in sink.messages)


@contextmanager
def write_lock(database: Path, seconds: float | None = None) -> Iterator[threading.Event]:
    """Another process-like holder of the SQLite write lock (its own connection)."""
    release = threading.Event()
    held = threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(database, isolation_level=None, check_same_thread=False)
        connection.execute("BEGIN IMMEDIATE")
        held.set()
        if seconds is None:
            release.wait()
        else:
            wait_until(release.is_set, timeout=seconds)
        connection.execute("ROLLBACK")
        connection.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    wait_until(held.is_set, timeout=5)
    try:
        yield release
    finally:
        release.set()
        thread.join()


# --- SMTP outages -----------------------------------------------------------------------


def test_smtp_down_mid_batch_loses_nothing_and_deliver_sends_the_rest(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """Server stops mid-batch: nothing lost; back up, `retry --all` + `deliver` send each once."""
    total = 120
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port)
    batch = write_records(tmp_path / "batch.jsonl", [tna_record(n) for n in range(total)])
    env = {**env_for(settings), "NOTIFIER_LOG_LEVEL": "ERROR"}
    process = subprocess.Popen(
        notifier_command("run", str(batch)),
        env={**os.environ, **env},
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    smtp_sink.wait_for(30, timeout=60)
    smtp_sink.stop()  # the server goes away mid-batch, dropping its connections
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr.decode()
    during = copies(smtp_sink)

    store = SqlStore(settings.database_url)
    try:
        counts = store.notice_counts()
        assert set(counts) <= {NoticeStatus.SENT, NoticeStatus.RETRY}, counts
        assert sum(counts.values()) == total and counts[NoticeStatus.RETRY] > 0
        waiting = store.notices(status=NoticeStatus.RETRY)
        ambiguous = {n.key for n in store.notices() if n.ambiguous_attempts}
        assert all(n.due_at > datetime.now(UTC) for n in waiting)  # backing off
    finally:
        store.close()

    smtp_sink.start()
    assert notifier(settings, "deliver").exit_code == 0
    assert copies(smtp_sink) == during  # still backing off: nothing sent early
    assert f"{len(waiting)} notice(s) due now" in notifier(settings, "retry", "--all").stdout
    assert notifier(settings, "deliver").exit_code == 0

    domain = "example.com"
    received = copies(smtp_sink)
    per_notice = {tna_key(n): received[message_id_for(tna_key(n), domain)] for n in range(total)}
    lost = [key for key, count in per_notice.items() if count == 0]
    twice = {key for key, count in per_notice.items() if count > 1}
    assert not lost
    # Only a message whose connection died after its data went out may come twice.
    assert twice <= ambiguous
    assert max(per_notice.values()) <= 2
    final = notifier(settings, "notices", "--json").json()
    assert {n["status"] for n in final} == {"sent"}
    reliability.report(
        "SMTP server stopped mid-batch",
        injects=f"the SMTP server stops after 30 of {total} messages; back later",
        runs=1,
        notices=total,
        sent=total - len(lost),
        duplicated=len(twice),
        lost=len(lost),
        notes=f"{len(waiting)} waited in retry; {len(ambiguous)} ambiguous",
    )


def test_after_the_backoff_a_later_pass_sends_everything(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """Server down for the whole run: all retry; a pass after the backoff sends each once."""
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port)
    smtp_sink.stop()
    with open_engine(settings) as engine:
        engine.ingest(parsed([tna_record(n) for n in range(20)]))
        first = deliver(engine, close=False)
        assert first.counts == Counter({NoticeStatus.RETRY: 20})
        smtp_sink.start()
        assert deliver(engine, close=False).total == 0  # not due yet
        later = datetime.now(UTC) + timedelta(minutes=2)  # past ~1 min ± jitter
        engine.clock = lambda: later
        second = deliver(engine)
        assert second.counts == Counter({NoticeStatus.SENT: 20})
    assert len(smtp_sink.messages) == 20 and len(copies(smtp_sink)) == 20


def test_retry_after_hint_is_honoured(tmp_path: Path, smtp_sink: SmtpSink) -> None:
    """'try again in 10 minutes' in a 4xx reply: the next attempt is not sooner than that."""
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port)
    smtp_sink.reply_with("451 4.7.1 greylisted, try again in 10 minutes", stage="rcpt")
    with open_engine(settings) as engine:
        engine.ingest(parsed([tna_record(1)]))
        before = datetime.now(UTC)
        deliver(engine)
        notice = engine.store.notice(tna_key(1))
    assert notice is not None and notice.status is NoticeStatus.RETRY
    assert notice.due_at >= before + timedelta(minutes=10)


def test_internationalised_address_uses_smtputf8_or_fails_clearly(tmp_path: Path) -> None:
    """A non-ASCII address: sent with SMTPUTF8 when offered, else failed (not suppressed)."""
    address = "jörg@exämple.de"
    with SmtpSink(smtputf8=True) as modern:
        settings = smtp_settings(tmp_path / "a", modern.host, modern.port)
        (tmp_path / "a").mkdir()
        with open_engine(settings) as engine:
            engine.ingest(parsed([tna_record(1, email=address, first_name="Zoë")]))
            assert deliver(engine).counts == Counter({NoticeStatus.SENT: 1})
        (delivery,) = modern.deliveries
        assert delivery.rcpt_tos == (address,) and "SMTPUTF8" in delivery.mail_options
        assert delivery.message["To"] == f"Zoë <{address}>"
    with SmtpSink(smtputf8=False) as old:
        settings = smtp_settings(tmp_path / "b", old.host, old.port)
        (tmp_path / "b").mkdir()
        with open_engine(settings) as engine:
            engine.ingest(parsed([tna_record(1, email=address)]))
            assert deliver(engine).counts == Counter({NoticeStatus.FAILED: 1})
            notice = engine.store.notice(tna_key(1))
            assert notice is not None and notice.reason is not None
            assert "non-ASCII address" in notice.reason and "SMTPUTF8" in notice.reason
            assert engine.store.suppressed([address]) == {}  # the server's limit, not the address
        assert old.messages == []
    reliability.report(
        "internationalised address",
        injects="jörg@exämple.de to a server with SMTPUTF8, then to one without",
        runs=2,
        notices=2,
        sent=1,
        duplicated=0,
        lost=0,
        notes="sent with SMTPUTF8; without it failed with a clear reason, not suppressed",
    )


# --- the store ---------------------------------------------------------------------------


def test_locked_store_is_waited_for(tmp_path: Path) -> None:
    """Another process holding the write lock for a moment: the run waits, then completes."""
    settings = settings_for(tmp_path)
    batch = write_records(tmp_path / "batch.jsonl", [tna_record(n) for n in range(5)])
    assert notifier(settings, "db", "upgrade").exit_code == 0
    with write_lock(tmp_path / "notifier.db", seconds=1.0):
        started = time.monotonic()
        result = notifier(settings, "run", str(batch))
    assert result.exit_code == 0, result.stderr
    assert time.monotonic() - started >= 0.9
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 5


def test_store_locked_too_long_is_a_clear_error_and_nothing_half_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Locked past the busy timeout: exit 2 naming the store and the lock; the batch unwritten."""
    monkeypatch.setattr(sqlite, "BUSY_MS", 200)
    settings = settings_for(tmp_path)
    batch = write_records(tmp_path / "batch.jsonl", [tna_record(n) for n in range(5)])
    assert notifier(settings, "db", "upgrade").exit_code == 0
    with write_lock(tmp_path / "notifier.db"):
        result = notifier(settings, "run", str(batch))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: store sqlite:///")
    assert "database is locked (another process held the store for over 0 s)" in result.stderr
    store = SqlStore(settings.database_url)
    try:
        assert store.record_count() == 0 and store.notices() == []
    finally:
        store.close()
    again = notifier(settings, "run", str(batch))  # the lock is gone: the same batch goes in
    assert again.exit_code == 0
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 5


def test_unreachable_store_is_a_clear_error(tmp_path: Path) -> None:
    """A store that cannot be opened: exit 2 with the store's address and the reason."""
    settings = settings_for(tmp_path, database_url=f"sqlite:///{tmp_path}/missing/dir/n.db")
    result = notifier(settings, "deliver")
    assert result.exit_code == 2
    assert "error: store sqlite:///" in result.stderr and "unable to open database" in result.stderr


class LockAfterSend:
    """The real SMTP transport; after each accepted message, the store is locked for a while."""

    def __init__(self, inner: Transport, database: Path, seconds: float) -> None:
        self.inner = inner
        self.database = database
        self.seconds = seconds
        self.locks: list[threading.Thread] = []

    async def send(
        self, message: EmailMessage, /, *, before_data: BeforeData | None = None
    ) -> None:
        await self.inner.send(message, before_data=before_data)
        held = threading.Event()

        def hold() -> None:
            connection = sqlite3.connect(self.database, isolation_level=None)
            connection.execute("BEGIN IMMEDIATE")
            held.set()
            time.sleep(self.seconds)
            connection.execute("ROLLBACK")
            connection.close()

        thread = threading.Thread(target=hold, daemon=True)
        thread.start()
        self.locks.append(thread)
        await asyncio.to_thread(held.wait, 5)

    async def close(self) -> None:
        for thread in self.locks:
            thread.join()
        await self.inner.close()


def test_recording_a_sent_notice_is_retried_while_the_store_is_locked(
    tmp_path: Path, smtp_sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Store locked right after the server took the message: the outcome is recorded, once."""
    monkeypatch.setattr(sqlite, "BUSY_MS", 100)
    settings: Settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port)
    with open_engine(settings) as engine:
        engine.ingest(parsed([tna_record(1)]))
        engine.transport = LockAfterSend(engine.transport, tmp_path / "notifier.db", 1.0)
        report = deliver(engine)
        notice = engine.store.notice(tna_key(1))
    assert report.counts == Counter({NoticeStatus.SENT: 1})
    assert notice is not None and notice.status is NoticeStatus.SENT
    assert len(smtp_sink.messages) == 1
    reliability.report(
        "store locked after a send",
        injects="another connection holds the SQLite write lock for 1 s right after the"
        " server accepted the message (busy timeout 0.1 s)",
        runs=1,
        notices=1,
        sent=1,
        duplicated=0,
        lost=0,
        notes="the outcome is written on a later try, before the lease could expire",
    )


def test_worker_keeps_going_while_the_store_is_locked(
    tmp_path: Path,
    smtp_sink: SmtpSink,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A delivery worker whose pass fails on a locked store logs it and delivers afterwards."""
    from notifier.engine.worker import DeliveryWorker

    monkeypatch.setattr(sqlite, "BUSY_MS", 100)
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port)
    with open_engine(settings) as engine:
        engine.ingest(parsed([tna_record(n) for n in range(3)]))

        async def main() -> None:
            worker = DeliveryWorker(engine, poll_interval=0.1)
            with write_lock(tmp_path / "notifier.db") as release:
                worker.start()
                await asyncio.sleep(0.5)  # passes fail meanwhile: the store stays locked
                assert smtp_sink.messages == []
                release.set()
            await asyncio.to_thread(smtp_sink.wait_for, 3, 10)
            await worker.stop()

        asyncio.run(main())
        assert engine.store.notice_counts() == {NoticeStatus.SENT: 3}
    assert "delivery pass failed; trying again" in caplog.text
    assert "database is locked" in caplog.text
