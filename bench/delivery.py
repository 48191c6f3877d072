"""Delivered notices per second to a local SMTP sink, next to bare aiosmtplib.

    python -m bench.delivery [--notices N] [--connections C]

Baseline, in the same invocation and against the same sink (its own process): bare
aiosmtplib sending N pre-built messages over C connections. notifier: N due notices
(rendered at send time, claimed, sent, recorded in a SQLite ledger) over a pool of C.
Printed as a ratio; not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def sink_process(workdir: Path) -> Iterator[int]:
    port_file = workdir / "sink.port"
    proc = subprocess.Popen([sys.executable, "-m", "bench.sink", str(port_file)], cwd=ROOT)
    try:
        for _ in range(200):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        yield int(port_file.read_text())
    finally:
        proc.kill()
        proc.wait()


def prebuilt(count: int) -> list[EmailMessage]:
    messages = []
    for n in range(count):
        message = EmailMessage()
        message["From"] = "Example Store <orders@example.com>"
        message["To"] = f"customer{n}@example.com"
        message["Subject"] = f"Your order KN-{n} has shipped"
        message["Message-ID"] = f"<bench-{n}@example.com>"
        message.set_content("Your order is on its way.\n" * 20)
        message.add_alternative("<p>Your order is on its way.</p>" * 20, subtype="html")
        messages.append(message)
    return messages


async def bare_aiosmtplib(port: int, messages: list[EmailMessage], connections: int) -> float:
    queue: asyncio.Queue[EmailMessage] = asyncio.Queue()
    for message in messages:
        queue.put_nowait(message)

    async def worker() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await client.connect()
        while not queue.empty():
            await client.send_message(queue.get_nowait())
        await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - started


def notifier_delivery(port: int, count: int, connections: int, workdir: Path) -> float:
    from notifier.records import parse_json_body
    from notifier.settings import Settings
    from notifier.wiring import open_engine

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{workdir / 'bench.db'}",
        transport="smtp",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_connections=connections,
        rules_dir=ROOT / "rules",
        templates_dir=ROOT / "templates",
    )
    now = datetime.now(UTC)
    records = [
        {
            "order_id": f"KN-{n}",
            "fulfillment_id": f"F-{n}",
            "status": "Shipped",
            "occurred_at": now.isoformat(),
            "email": f"customer{n}@example.com",
            "first_name": "Jane",
            "tracking_number": "1Z999AA10123456784",
        }
        for n in range(count)
    ]
    parsed = list(parse_json_body(records, source="bench", received_at=now))
    with open_engine(settings) as engine:
        created = engine.ingest(parsed).notices_created  # type: ignore[arg-type]
        assert created == count, created

        async def deliver() -> float:
            started = time.perf_counter()
            report = await engine.deliver_due()
            seconds = time.perf_counter() - started
            await engine.transport.close()
            assert report.total == count, report
            return seconds

        return asyncio.run(deliver())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notices", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    baselines, runs = [], []
    # Rounds alternate the two sides and each side's best round counts: this shared machine
    # swings by tens of percent from one moment to the next.
    for _ in range(args.rounds):
        with (
            tempfile.TemporaryDirectory(prefix="notifier-bench-") as tmp,
            sink_process(Path(tmp)) as port,
        ):
            messages = prebuilt(args.notices)
            baselines.append(asyncio.run(bare_aiosmtplib(port, messages, args.connections)))
            runs.append(notifier_delivery(port, args.notices, args.connections, Path(tmp)))
    baseline, ours = min(baselines), min(runs)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"delivery benchmark: {args.notices:,} messages over {args.connections} connections,"
        f" best of {args.rounds} alternating rounds"
    )
    print(f"  bare aiosmtplib, pre-built messages: {args.notices / baseline:8,.0f} messages/s")
    print(f"  notifier (claim, render, send, record): {args.notices / ours:5,.0f} notices/s")
    print(f"  ratio (notifier / bare): {baseline / ours:.2f}x   (target: at least 0.8x)")
    print(f"  peak memory of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
