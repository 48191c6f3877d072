"""The drop folder end to end: real files, a real SQLite store, the SMTP sink, a real crash."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from support.project import env_for, settings_for, smtp_settings, write_jsonl
from support.smtp_sink import SmtpSink

from notifier.core.models import NoticeStatus
from notifier.engine.worker import DeliveryWorker
from notifier.processes.project_file import JobSpec, ProjectFile
from notifier.processes.scheduler import build_scheduler
from notifier.processes.wiring import open_engine
from notifier.sources.dropfolder import DropFolder, DropFolderOptions
from notifier.store.audit import decode_batch

UPS = "1Z999AA10123456784"


def change(n: int, status: str = "Pending Shipment", **fields: Any) -> dict[str, Any]:
    record = {
        "order_id": f"O-{n}",
        "fulfillment_id": f"F-{n}",
        "status": status,
        "tracking_number": UPS,
        "email": f"customer{n}@example.com",
        "occurred_at": "2026-11-27T10:00:00Z",
    }
    record.update(fields)
    return record


def age(path: Path, seconds: float) -> Path:
    # Relative to the file's own time: file times are the file system's clock, which need
    # not be the test process's.
    then = path.stat().st_mtime - seconds
    os.utime(path, (then, then))
    return path


def test_only_complete_record_files_are_picked_up(tmp_path: Path) -> None:
    """Dotfiles, *.tmp/*.part, other types, folders and files younger than min_age wait."""
    drop = tmp_path / "drop"
    drop.mkdir()
    for name in ("a.jsonl", "b.CSV", "c.json", ".d.jsonl", "e.jsonl.tmp", "f.csv.part", "g.txt"):
        (drop / name).touch()
        age(drop / name, 60)
    (drop / "processed").mkdir()
    (drop / "young.jsonl").touch()  # just written
    folder = DropFolder(DropFolderOptions(path=drop, min_age=timedelta(seconds=5)))
    assert [p.name for p in folder.ready_files()] == ["a.jsonl", "b.CSV", "c.json"]
    age(drop / "young.jsonl", 6)  # as if six seconds had passed
    assert "young.jsonl" in [p.name for p in folder.ready_files()]


def test_file_age_is_read_on_the_file_systems_clock_not_the_engines(tmp_path: Path) -> None:
    """An engine clock years ahead or behind neither ripens a fresh file nor holds an old one."""
    drop = tmp_path / "drop"
    drop.mkdir()
    (drop / "fresh.jsonl").touch()
    (drop / "old.jsonl").touch()
    age(drop / "old.jsonl", 60)
    options = DropFolderOptions(path=drop, min_age=timedelta(seconds=5))
    for skew in (timedelta(days=730), -timedelta(days=730)):
        folder = DropFolder(options, clock=lambda skew=skew: datetime.now(UTC) + skew)
        assert [p.name for p in folder.ready_files()] == ["old.jsonl"]
    assert sorted(p.name for p in drop.iterdir()) == ["fresh.jsonl", "old.jsonl"]  # no probe left


def test_a_file_with_bad_lines_lands_in_rejected_with_a_report(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """Valid records are ingested and mailed; the file goes to rejected/ naming each bad line."""
    drop = tmp_path / "drop"
    drop.mkdir()
    path = drop / "export.jsonl"
    lines = [json.dumps(change(1)), "{broken", json.dumps(change(2, status="Teleported"))]
    path.write_text("\n".join([*lines, json.dumps(change(3))]) + "\n")
    clean = write_jsonl(drop / "clean.jsonl", [change(4)])
    for file in (path, clean):
        age(file, 60)
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port)

    async def run() -> list[Any]:
        with open_engine(settings) as engine:
            try:
                outcomes = await asyncio.to_thread(
                    DropFolder(DropFolderOptions(path=drop)).run, engine
                )
                await engine.deliver_due()
            finally:
                await engine.transport.close()
            return outcomes

    outcomes = asyncio.run(run())
    assert sorted(m["To"] for m in smtp_sink.messages) == [
        f"customer{n}@example.com" for n in (1, 3, 4)
    ]
    assert not list(drop.glob("*.jsonl"))
    bad = next(o for o in outcomes if o.name == "export.jsonl")
    assert bad.moved_to.parent == drop / "rejected" and bad.moved_to.exists()
    assert bad.moved_to.name.endswith("-export.jsonl")
    assert bad.report is not None
    report = bad.report.read_text()
    assert "2 record(s) rejected, 2 accepted" in report
    assert "line 2: broken JSON" in report
    assert "line 3: unknown status 'Teleported'" in report
    good = next(o for o in outcomes if o.name == "clean.jsonl")
    assert good.moved_to.parent == drop / "processed" and good.report is None


def test_the_same_name_dropped_again_is_processed_again_and_kept_apart(tmp_path: Path) -> None:
    """A daily orders.csv never overwrites yesterday's in processed/; repeated records dedup."""
    drop = tmp_path / "drop"
    drop.mkdir()
    header = "order_id,fulfillment_id,status,email,occurred_at\n"
    row = "O-1,F-1,Pending,c@example.com,2026-11-27T10:00:00Z\n"
    folder = DropFolder(DropFolderOptions(path=drop, min_age=timedelta(0)))
    reports = []
    with open_engine(settings_for(tmp_path)) as engine:
        for _ in range(2):
            (drop / "orders.csv").write_text(header + row)
            reports += folder.run(engine)
        asyncio.run(engine.transport.close())
    assert [(r.accepted, r.duplicates) for r in reports] == [(1, 0), (0, 1)]
    assert len(list((drop / "processed").iterdir())) == 2


def test_a_crash_mid_file_neither_repeats_nor_skips_a_record(tmp_path: Path) -> None:
    """A process killed mid-file leaves the file; the re-run stores each record once, mails once."""
    drop = tmp_path / "drop"
    drop.mkdir()
    total = 10_000
    # Every 250th change is a tracking number: 40 notices; the rest are Pending (no notice).
    records = (change(n, "Pending Shipment" if n % 250 == 0 else "Pending") for n in range(total))
    big = age(write_jsonl(drop / "big.jsonl", records), 60)
    config = tmp_path / "notifier.toml"
    config.write_text('[jobs.house]\nkind = "dropfolder"\npath = "drop"\ninterval = "1m"\n')
    settings = settings_for(tmp_path)
    env = {**os.environ, **env_for(settings), "NOTIFIER_CONFIG": str(config)}
    command = [sys.executable, "-m", "notifier", "schedule", "run", "house"]
    database = tmp_path / "notifier.db"

    def stored(*outcomes: str) -> int:
        """How many records the audit holds (of these outcomes, if any are named)."""
        try:
            with sqlite3.connect(database, timeout=5) as conn:
                bodies = conn.execute("SELECT body FROM record_batches").fetchall()
        except sqlite3.OperationalError:
            return 0  # not created yet
        rows = [row for (body,) in bodies for row in decode_batch(body)]
        return sum(1 for row in rows if not outcomes or row.outcome in outcomes)

    child = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not 0 < stored() < total // 2:
            assert child.poll() is None, "the run finished before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=10)
        assert child.stderr is not None
        child.stderr.close()
    before = stored()
    assert 0 < before < total
    assert big.exists()  # not moved: its ingest never finished

    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # Each record taken exactly once; the part read again is in the audit as duplicates.
    assert stored("applied", "repeat", "stale") == total
    assert stored("duplicate") == before
    assert not big.exists() and len(list((drop / "processed").iterdir())) == 1
    with open_engine(settings) as engine:
        notices = engine.store.notices()
    assert len(notices) == total // 250
    assert {n.status for n in notices} == {NoticeStatus.SENT}
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == total // 250


def test_a_dropped_file_is_mailed_within_one_interval_by_the_running_scheduler(
    tmp_path: Path, smtp_sink: SmtpSink
) -> None:
    """With the scheduler and worker running, a renamed-in file is mailed and moved promptly."""
    drop = tmp_path / "drop"
    drop.mkdir()
    settings = smtp_settings(tmp_path, smtp_sink.host, smtp_sink.port)
    spec = JobSpec(
        name="house",
        kind="dropfolder",
        options=DropFolderOptions(path=drop, min_age=timedelta(0)),
        interval=timedelta(seconds=0.5),
    )

    async def scenario() -> float:
        with open_engine(settings) as engine:
            worker = DeliveryWorker(engine, poll_interval=5)
            worker.start()
            scheduler = build_scheduler(ProjectFile(jobs=(spec,)), engine=engine, wake=worker.wake)
            try:
                await asyncio.sleep(0.2)
                # The convention: write under a temporary name, then rename.
                partial = write_jsonl(drop / ".incoming.jsonl.tmp", [change(7), change(8)])
                dropped = time.monotonic()
                partial.rename(drop / "incoming.jsonl")
                await asyncio.to_thread(smtp_sink.wait_for, 2, 10)
                return time.monotonic() - dropped
            finally:
                await scheduler.aclose()
                await worker.stop()

    took = asyncio.run(scenario())
    assert took < 5  # one 0.5 s interval plus delivery, with ample room for a slow machine
    assert sorted(m["To"] for m in smtp_sink.messages) == [
        "customer7@example.com",
        "customer8@example.com",
    ]
    assert [p.name.split("-", 1)[1] for p in (drop / "processed").iterdir()] == ["incoming.jsonl"]


def test_unreadable_files_do_not_block_the_others(tmp_path: Path) -> None:
    """A file in another encoding is rejected with a report; a vanished file is skipped."""
    drop = tmp_path / "drop"
    drop.mkdir()
    latin = drop / "latin.csv"
    latin.write_bytes(
        "order_id,fulfillment_id,status,first_name\nO-1,F-1,Pending,Jos\xe9\n".encode("latin-1")
    )
    good = write_jsonl(drop / "good.jsonl", [change(1)])

    class Racy(DropFolder):
        def ready_files(self) -> list[Path]:
            return [drop / "ghost.jsonl", *super().ready_files()]  # gone before it is read

    with open_engine(settings_for(tmp_path)) as engine:
        outcomes = Racy(DropFolderOptions(path=drop, min_age=timedelta(0))).run(engine)
        asyncio.run(engine.transport.close())
    assert sorted(o.name for o in outcomes) == ["good.jsonl", "latin.csv"]
    rejected = next(o for o in outcomes if o.name == "latin.csv")
    assert rejected.report is not None and "not UTF-8" in rejected.report.read_text()
    assert not good.exists() and not latin.exists()
