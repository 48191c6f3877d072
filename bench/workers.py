"""Delivery throughput with 1, 2 and 4 `notifier worker` processes on PostgreSQL, beside
one worker on SQLite, as ratios measured in the same run.

    python -m bench.workers [--notices 1000] [--rounds 3] [--workers 1,2,4] [--smtp-connections 4]

Each scenario gets a fresh ledger holding the same N notices, parked until tomorrow; K
real `notifier worker` processes start and go idle; then one `make_due` (on PostgreSQL:
one NOTIFY) releases them all, and the workers deliver over SMTP to a black-hole server
running in its own process (bench/blackhole.py: a minimal responder, so the machine's
CPUs go to the workers being measured rather than to a Python SMTP server's parsing).
Throughput = N / (last `sent_at` - first `first_attempt_at`) from the ledger itself;
"wall" is from the release until the bench saw all N sent.
Needs the PostgreSQL server (127.0.0.1:5432, user postgres; override with
NOTIFIER_BENCH_POSTGRES_URL). Not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import func, select, update

from bench import ROOT, bench_settings, blackhole
from notifier.core.models import NoticeStatus, Record
from notifier.core.records import parse_record
from notifier.processes.wiring import open_engine
from notifier.store.schema import notices
from notifier.store.sql import SqlStore

_TOMORROW = datetime.now(UTC) + timedelta(days=1)
ADMIN_URL = os.environ.get(
    "NOTIFIER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# --- the SMTP server, in its own process ------------------------------------------------


def start_blackhole() -> tuple[multiprocessing.Process, int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    process = multiprocessing.Process(target=blackhole.run, args=(port,), daemon=True)
    process.start()
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process, port
        except OSError:
            if not process.is_alive() or time.monotonic() > deadline:
                raise SystemExit("the SMTP sink process did not start") from None
            time.sleep(0.05)


# --- ledgers ------------------------------------------------------------------------------


def records(count: int) -> Iterator[Record]:
    received = datetime.now(UTC)
    for n in range(count):
        yield parse_record(
            {
                "order_id": f"B{n}",
                "fulfillment_id": f"B{n}-F1",
                "status": "Pending Shipment",
                "email": f"customer{n}@example.com",
                "first_name": "Jane",
                "tracking_number": "1Z999AA10123456784",
                "occurred_at": "2026-11-20T10:00:00+00:00",
            },
            received_at=received,
        )


def admin(statement: sql.Composed) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(statement)


@dataclass(frozen=True)
class Result:
    label: str
    workers: int
    notices: int
    seconds: float
    wall: float
    worker_cpu: float  # CPU seconds the worker processes spent delivering
    sink_cpu: float  # CPU seconds the SMTP server spent receiving
    machine_busy: float  # share of all CPUs busy (anyone's work) during the run

    @property
    def rate(self) -> float:
        return self.notices / self.seconds


def run_scenario(
    label: str, url: str, workers: int, count: int, port: int, smtp_connections: int, sink_pid: int
) -> Result:
    settings = bench_settings(
        database_url=url,
        transport="smtp",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_connections=smtp_connections,
    )
    with open_engine(settings) as engine:
        created = engine.ingest(records(count)).notices_created
        asyncio.run(engine.transport.close())
    assert created == count, f"{label}: expected {count} new notices, got {created}"
    # Park the notices (due tomorrow) so every worker is started and idle before the race.
    store = SqlStore(url)
    with store.engine.begin() as connection:
        connection.execute(
            update(notices).values(status=NoticeStatus.RETRY.value, due_at=_TOMORROW)
        )
    env = {
        **os.environ,
        "NOTIFIER_DATABASE_URL": url,
        "NOTIFIER_TRANSPORT": "smtp",
        "NOTIFIER_SMTP_HOST": "127.0.0.1",
        "NOTIFIER_SMTP_PORT": str(port),
        "NOTIFIER_SMTP_CONNECTIONS": str(smtp_connections),
        "NOTIFIER_RULES_DIR": str(ROOT / "rules"),
        "NOTIFIER_TEMPLATES_DIR": str(ROOT / "templates"),
        # PostgreSQL workers are woken by NOTIFY; SQLite ones must poll.
        "NOTIFIER_POLL_SECONDS": "60" if url.startswith("postgresql") else "0.1",
    }
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "notifier", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    try:
        for process in processes:
            assert process.stderr is not None
            banner = process.stderr.readline()
            if not banner.startswith("notifier worker"):
                raise SystemExit(f"{label}: a worker did not start: {banner}")
        time.sleep(1.5)  # listeners connected, start-up CPU spent
        cpu_before = sum(_cpu_seconds(p.pid) for p in processes)
        sink_before = _cpu_seconds(sink_pid)
        machine_before = _machine_busy_idle()
        started = time.perf_counter()
        store.make_due(None, now=datetime.now(UTC))  # one UPDATE, one NOTIFY: go
        while store.notice_counts().get(NoticeStatus.SENT, 0) < count:
            if any(p.poll() is not None for p in processes):
                raise SystemExit(f"{label}: a worker died")
            time.sleep(0.2)
        wall = time.perf_counter() - started
        cpu = sum(_cpu_seconds(p.pid) for p in processes) - cpu_before
        sink_cpu = _cpu_seconds(sink_pid) - sink_before
        busy, idle = (a - b for a, b in zip(_machine_busy_idle(), machine_before, strict=True))
        machine_busy = busy / (busy + idle) if busy + idle else 0.0
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.communicate(timeout=60)
    try:
        counts = store.notice_counts()
        assert counts == {NoticeStatus.SENT: count}, f"{label}: ledger ended {dict(counts)}"
        with store.engine.connect() as connection:
            first, last = connection.execute(
                select(func.min(notices.c.first_attempt_at), func.max(notices.c.sent_at))
            ).one()
    finally:
        store.close()
    seconds = (_aware(last) - _aware(first)).total_seconds()
    return Result(label, workers, count, seconds, wall, cpu, sink_cpu, machine_busy)


def _machine_busy_idle() -> tuple[int, int]:
    """Busy and idle jiffies of all CPUs together (Linux /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values[:8]) - idle, idle


def _cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _aware(value: Any) -> datetime:
    # Aggregates bypass the column type: SQLite hands back text, PostgreSQL aware datetimes.
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notices", type=int, default=1000)
    parser.add_argument("--workers", default="1,2,4", help="worker counts on PostgreSQL")
    parser.add_argument("--smtp-connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]

    sink, port = start_blackhole()
    sink_pid = int(sink.pid or 0)
    scenarios = [("sqlite", 1)] + [("postgresql", n) for n in counts]
    runs: dict[tuple[str, int], list[Result]] = {scenario: [] for scenario in scenarios}
    try:
        # Rounds interleave the scenarios, so a burst of load from elsewhere on the machine
        # hits them alike; each scenario reports its median round.
        for round_number in range(1, args.rounds + 1):
            for label, workers in scenarios:
                result = run_one(
                    label, workers, args.notices, port, args.smtp_connections, sink_pid
                )
                runs[label, workers].append(result)
                print(
                    f"round {round_number}: {label} x{workers}: {result.rate:.0f} notices/s"
                    f" (machine {result.machine_busy:.0%} busy)",
                    flush=True,
                )
    finally:
        sink.terminate()
        sink.join()
    report(args.notices, args.rounds, runs)


def run_one(
    label: str, workers: int, count: int, port: int, smtp_connections: int, sink_pid: int
) -> Result:
    if label == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
            return run_scenario(label, url, workers, count, port, smtp_connections, sink_pid)
    name = f"notifier_bench_{uuid.uuid4().hex[:10]}"
    admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        url = f"{ADMIN_URL.rpartition('/')[0]}/{name}"
        return run_scenario(label, url, workers, count, port, smtp_connections, sink_pid)
    finally:
        admin(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def report(notices: int, rounds: int, runs: dict[tuple[str, int], list[Result]]) -> None:
    median = {key: statistics.median(r.rate for r in results) for key, results in runs.items()}
    sqlite_rate = median["sqlite", 1]
    pg_one = median.get(("postgresql", 1))
    print(
        f"\n{notices} notices per scenario, median of {rounds} round(s), {os.cpu_count()} CPU(s),"
        " SMTP sink in its own process"
    )
    print(
        f"{'store':<11} {'workers':>7} {'notices/s':>10} {'range':>11} {'vs sqlitex1':>12}"
        f" {'vs pgx1':>8} {'CPU ms/notice: workers':>23} {'sink':>5} {'machine busy':>13}"
    )
    for (label, workers), results in runs.items():
        rate = median[label, workers]
        spread = f"{min(r.rate for r in results):.0f}-{max(r.rate for r in results):.0f}"
        vs_pg = f"{rate / pg_one:.2f}x" if pg_one else "-"
        cpu = statistics.median(1000 * r.worker_cpu / r.notices for r in results)
        sink_cpu = statistics.median(1000 * r.sink_cpu / r.notices for r in results)
        busy = statistics.median(r.machine_busy for r in results)
        print(
            f"{label:<11} {workers:>7} {rate:>10.0f} {spread:>11} {rate / sqlite_rate:>11.2f}x"
            f" {vs_pg:>8} {cpu:>23.1f} {sink_cpu:>5.1f} {busy:>13.0%}"
        )
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


if __name__ == "__main__":
    main()
