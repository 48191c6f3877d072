"""Ingest-and-decide throughput and peak memory for records that fire nothing.

    python -m bench.ingest [--records N] [--rounds R]

Baseline, on the same file: raw JSON parsing (`json.loads` of every line). Each side runs
in a fresh child process so its peak RSS is its own. Printed as ratios of wall time and of
the process's CPU time (steadier on a shared machine: SQLite runs in the process, and what
the wall adds is waiting for the disk and for other processes). Not a test.

The target's figure is the paired run: the ingest again, with the baseline interleaved in
its process (json.loads of the next 1,000 lines after every 1,000 records ingested, timed
apart), so both sides meet the machine at the same moments. This machine's speed was seen
to drift by a fifth and more between runs a minute apart (json.loads of the same file:
2.0 to 3.3 s), which moves a ratio of two separate runs as much as any change measured.

Also printed, as the first floor: reading alone -- notifier.core.records' reader, a frozen
Record per line (plain lines decoded and checked by msgspec, notifier.core.record_lines;
the rest by json.loads and the general parser), nothing stored.

And as the second floor: the ledger's writes alone -- `json.loads`, then the very rows
notifier keeps (the audit copy: one compressed batch of the records, framed by
notifier.store.audit, and an entry per order it holds; each fulfillment's state with its
record key) inserted with sqlite3 into the real schema, 1,000 records per transaction,
with no validation, no decision and no lookups. No ingest that keeps those rows on SQLite
can be faster.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from bench import ROOT, bench_settings

STATUSES = ("Hold", "Pending")
PAIRED_STEP = 1000  # records between the paired run's baseline steps


def write_batch(path: Path, count: int) -> None:
    """Realistic records (Konnektive-sized) that fire no rule: Hold and Pending only."""
    with path.open("w") as out:
        for n in range(count):
            order = n // 2
            out.write(
                json.dumps(
                    {
                        "event_id": f"evt-{n}",
                        "order_id": f"KN-{order}",
                        "fulfillment_id": f"F-{n}",
                        "status": STATUSES[n % 2],
                        "occurred_at": "2026-11-20T10:00:00Z",
                        "email": f"customer{order}@example.com",
                        "first_name": "Jane",
                        "last_name": "Doe",
                        "campaign_id": "12",
                    }
                )
                + "\n"
            )


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timer:
    """Wall and CPU seconds since it was made."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def result(self, records: int) -> dict[str, float]:
        return {
            "seconds": time.perf_counter() - self.wall,
            "cpu": time.process_time() - self.cpu,
            "records": records,
            "peak_mb": peak_rss_mb(),
        }


def child_baseline(path: Path) -> dict[str, float]:
    timer = Timer()
    count = 0
    with path.open() as f:
        for line in f:
            json.loads(line)
            count += 1
    return timer.result(count)


def child_parse(path: Path) -> dict[str, float]:
    from notifier.core.records import Record, read_path

    timer = Timer()
    received = datetime.now(UTC)
    count = sum(1 for r in read_path(path, received_at=received) if isinstance(r, Record))
    return timer.result(count)


def child_ingest(
    path: Path, workdir: Path, feed: Callable[[Iterator[Any]], Iterator[Any]] | None = None
) -> dict[str, float]:
    """The file's records ingested by a real engine, timed; `feed`, if given, passes them on
    (the paired run's interleaving)."""
    from notifier.core.records import Record, read_path
    from notifier.processes.wiring import open_engine

    settings = bench_settings(workdir)
    with open_engine(settings) as engine:
        timer = Timer()
        records = (
            r for r in read_path(path, received_at=datetime.now(UTC)) if isinstance(r, Record)
        )
        report = engine.ingest(records if feed is None else feed(records))
        result = timer.result(report.accepted)
    assert report.notices_created == 0, "the benchmark's records must fire nothing"
    return result


def child_paired(path: Path, workdir: Path) -> dict[str, float]:
    """The ingest, with the baseline interleaved in the same process: after each 1,000
    records the ingest has taken, json.loads of the next 1,000 lines of the file (its own
    handle), timed apart and taken out of the ingest's time. Both sides then run through
    the same moments of the machine: on a shared one, whose speed drifts by a fifth from
    one minute to the next, a ratio of two runs made apart swings with it."""
    loads = json.loads
    spent = {"seconds": 0.0, "cpu": 0.0}

    def baseline(lines: Iterator[str], count: int) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        for line in islice(lines, count):
            loads(line)
        spent["seconds"] += time.perf_counter() - wall
        spent["cpu"] += time.process_time() - cpu

    with path.open() as lines:

        def interleaved(records: Iterator[Any]) -> Iterator[Any]:
            taken = 0
            for taken, record in enumerate(records, start=1):
                yield record
                if taken % PAIRED_STEP == 0:
                    baseline(lines, PAIRED_STEP)
            baseline(lines, taken % PAIRED_STEP)

        total = child_ingest(path, workdir, interleaved)
    return {
        **total,
        "seconds": total["seconds"] - spent["seconds"],
        "cpu": total["cpu"] - spent["cpu"],
        "baseline_seconds": spent["seconds"],
        "baseline_cpu": spent["cpu"],
    }


def child_floor(path: Path, workdir: Path) -> dict[str, float]:
    import hashlib
    import sqlite3

    from notifier.store.audit import encode_batch
    from notifier.store.sql import SqlStore

    database = workdir / "floor.db"
    SqlStore(f"sqlite:///{database}").close()  # the real schema, by its migrations
    db = sqlite3.connect(database, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    insert_batch = (
        "INSERT INTO record_batches (received_at, records, stale, body) VALUES (?, ?, 0, ?)"
    )
    insert_order = "INSERT INTO record_orders (order_id, batch_id) VALUES (?, ?)"
    upsert_state = (
        "INSERT INTO fulfillments (fulfillment_id, order_id, status, occurred_at, recent_keys)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (fulfillment_id) DO UPDATE SET"
        " status = excluded.status, occurred_at = excluded.occurred_at,"
        " recent_keys = excluded.recent_keys"
    )
    timer = Timer()
    count = 0
    with path.open() as f:
        while chunk := list(islice(f, 1000)):
            rows, states = [], []
            for line in chunk:
                data = json.loads(line)
                basis = f"event\x1f{data['event_id']}".encode()
                key = hashlib.blake2b(basis, digest_size=16).hexdigest()
                moment = data["occurred_at"]
                ids = (data["order_id"], data["fulfillment_id"], data["status"])
                rows.append((*ids, moment, moment, "applied", line.rstrip("\n")))
                states.append((ids[1], ids[0], ids[2], moment, key))
            db.execute("BEGIN IMMEDIATE")
            batch = db.execute(insert_batch, (moment, len(rows), encode_batch(rows))).lastrowid
            orders = dict.fromkeys(row[0] for row in rows)
            db.executemany(insert_order, [(order, batch) for order in orders])
            db.executemany(upsert_state, states)
            db.execute("COMMIT")
            count += len(chunk)
    return timer.result(count)


def run_child(kind: str, path: Path, workdir: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.ingest",
            "--child",
            kind,
            "--file",
            str(path),
            "--workdir",
            str(workdir),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--child", choices=KINDS)
    parser.add_argument("--file", type=Path)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args()
    if args.child is not None:
        from notifier.processes.gc_tuning import settle_after_startup

        # Every side with the collector settings `notifier run` takes before its batch (so
        # the baseline's json.loads gains from them as well).
        settle_after_startup()
        print(json.dumps(CHILDREN[args.child](args.file, args.workdir)))
        return

    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    with tempfile.TemporaryDirectory(prefix="notifier-bench-") as tmp:
        workdir = Path(tmp)
        batch = workdir / "batch.jsonl"
        write_batch(batch, args.records)
        size_mb = os.path.getsize(batch) / 2**20
        # Rounds alternate the sides; each figure is the side's best round.
        for _ in range(args.rounds):
            for kind in KINDS:
                for stale in workdir.glob("*.db*"):
                    stale.unlink()
                runs[kind].append(run_child(kind, batch, workdir))
    best = {kind: min(results, key=lambda r: r["seconds"]) for kind, results in runs.items()}
    base = best["baseline"]

    def line(label: str, result: dict[str, float]) -> str:
        return (
            f"  {label:44} {result['seconds']:6.2f} s ({result['seconds'] / base['seconds']:5.2f}x)"
            f"  CPU {result['cpu']:6.2f} s ({result['cpu'] / base['cpu']:5.2f}x)"
            f"  peak {result['peak_mb']:4.0f} MB"
        )

    print(
        f"ingest benchmark: {args.records:,} records that fire nothing ({size_mb:.0f} MiB of"
        f" JSONL), best of {args.rounds} round(s); wall (x json.loads) and CPU (x json.loads)"
    )
    print(line("baseline: json.loads per line", base))
    print(line("floor 1: reading alone (decode + validate)", best["parse"]))
    print(line("floor 2: json.loads + the rows, executemany", best["floor"]))
    ingest = best["ingest"]
    print(line("notifier ingest + decide + store", ingest))
    print(f"  {args.records / ingest['seconds']:,.0f} records/s")
    apart = ingest["seconds"] / base["seconds"], ingest["cpu"] / base["cpu"]
    print(f"  time ratio, runs apart: {apart[0]:.2f}x wall, {apart[1]:.2f}x CPU")
    # Each round's paired run is a ratio of its own; the median of them is the figure.
    paired = sorted(runs["paired"], key=lambda r: r["cpu"] / r["baseline_cpu"])
    middle = paired[len(paired) // 2]
    print(
        f"  time ratio, interleaved in one process (median of {len(paired)}):"
        f" {middle['seconds'] / middle['baseline_seconds']:.2f}x wall,"
        f" {middle['cpu'] / middle['baseline_cpu']:.2f}x CPU   (target: within 5x)"
    )
    print(f"  peak memory: {ingest['peak_mb']:.0f} MB   (target: under 200 MB)")


def _parse(path: Path, _workdir: Path) -> dict[str, float]:
    return child_parse(path)


def _baseline(path: Path, _workdir: Path) -> dict[str, float]:
    return child_baseline(path)


CHILDREN = {
    "baseline": _baseline,
    "parse": _parse,
    "floor": child_floor,
    "ingest": child_ingest,
    "paired": child_paired,
}
KINDS = tuple(CHILDREN)


if __name__ == "__main__":
    main()
