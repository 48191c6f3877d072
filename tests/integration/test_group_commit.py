"""Group commit: concurrent requests share transactions, each gets its own exact counts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from support.project import settings_for
from support.webhook import shipment

from notifier.engine import IngestReport
from notifier.group_commit import GroupCommitter
from notifier.models import Record
from notifier.records import parse_record
from notifier.store.sql import SqlStore
from notifier.wiring import open_engine

NOW = datetime.now(UTC)


def record(n: int, **fields: str) -> Record:
    return parse_record(shipment(n, **fields), received_at=NOW)


def test_ingest_groups_reports_each_group_and_cross_group_duplicates(tmp_path: Path) -> None:
    """One transaction, a report per group; a record an earlier group holds is a duplicate."""
    with open_engine(settings_for(tmp_path)) as engine:
        engine.ingest([record(0)])
        total, reports = engine.ingest_groups(
            [[record(1), record(2)], [record(1), record(3), record(0)], []]
        )
    assert [(r.accepted, r.duplicates) for r in reports] == [(2, 0), (1, 2), (0, 0)]
    # Each group is credited with the notices its own records created.
    assert [r.notices_created for r in reports] == [2, 1, 0]
    assert (total.accepted, total.duplicates, total.notices_created) == (3, 2, 3)


def test_concurrent_callers_share_transactions_and_all_commit(tmp_path: Path) -> None:
    """50 concurrent requests commit in fewer transactions; every record is stored once."""
    settings = settings_for(tmp_path)
    woken: list[int] = []
    with open_engine(settings) as engine:
        committer: GroupCommitter[Sequence[Record], IngestReport] = GroupCommitter(
            lambda groups: engine.ingest_groups(groups)[1], max_size=2000, size=len, own_thread="t"
        )

        async def main() -> list[tuple[int, int]]:
            reports = await asyncio.gather(
                *(committer.submit([record(n), record(n % 5)]) for n in range(50))
            )
            woken.extend(1 for r in reports if r.notices_created)
            return [(r.accepted, r.duplicates) for r in reports]

        try:
            counts = asyncio.run(main())
        finally:
            committer.close()
    assert sum(accepted for accepted, _ in counts) == 50
    assert sum(duplicates for _, duplicates in counts) == 50
    assert 1 <= committer.groups < 50
    assert woken
    store = SqlStore(settings.database_url)
    try:
        assert store.record_count() == 50
    finally:
        store.close()
