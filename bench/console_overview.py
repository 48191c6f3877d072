"""The console overview's reads on a 100,000-notice ledger: median and p95.

    python -m bench.console_overview [--notices N] [--rounds R] [--database-url URL]

Builds the ledger bench.console_search builds (one order per notice, a tenth failed),
marks the others sent today, spread over the hours so far, then times
`notifier.store.overview.read_overview` — the counts by status for today and the week, the
sent-per-hour and per-day charts, and the four attention lists — against the search's
300 ms target. Baseline beside it, in the same process and on the same ledger: the bare
primary-key lookup of one notice. Not a test.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.console_search import TARGET_MS, build, timed


def mark_sent(url: str) -> None:
    """Every notice not failed: sent at some moment of today so far (UTC)."""
    from sqlalchemy import bindparam, select, update

    from notifier.store.schema import notices
    from notifier.store.sql import SqlStore

    now = datetime.now(UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    span = max((now - midnight).total_seconds(), 1.0)
    pick = random.Random(15).random
    store = SqlStore(url)
    with store.engine.begin() as conn:
        keys = conn.scalars(select(notices.c.key).where(notices.c.status == "pending")).all()
        rows = [
            {"k": key, "at": midnight + timedelta(seconds=pick() * span), "s": "sent"}
            for key in keys
        ]
        conn.execute(
            update(notices)
            .where(notices.c.key == bindparam("k"))
            .values(status=bindparam("s"), sent_at=bindparam("at")),
            rows,
        )
    store.close()


def measure(url: str, rounds: int) -> bool:
    from notifier.store.overview import read_overview
    from notifier.store.sql import SqlStore

    store = SqlStore(url)
    baseline, _ = timed(lambda: store.notice("tracking_number_assigned:fulfillment:F-7"), rounds)
    overview = read_overview(store, now=datetime.now(UTC))
    median, p95 = timed(lambda: read_overview(store, now=datetime.now(UTC)), rounds)
    store.close()
    sent = sum(bucket.sent for bucket in overview.hourly)
    print(f"  baseline: one notice by primary key {baseline:8.2f} ms (median)")
    print(
        f"  overview: median {median:.1f} ms, p95 {p95:.1f} ms ({median / baseline:.0f}x the"
        f" baseline); {sent:,} sent today, {overview.attention.failed.total:,} failed"
    )
    verdict = "under" if p95 < TARGET_MS else "OVER"
    print(f"  p95 {p95:.1f} ms, {verdict} the {TARGET_MS:.0f} ms target")
    return p95 < TARGET_MS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--notices", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--database-url", help="an empty database (default: a SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'overview.db'}"
        print(f"console overview, {args.notices:,} notices, {url.split(':')[0]}:")
        build(url, args.notices)
        mark_sent(url)
        ok = measure(url, args.rounds)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
