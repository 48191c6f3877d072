"""Group commit: concurrent requests share transactions, each gets its own exact counts."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event
from support.ledger import audit_rows, commit_after
from support.project import settings_for
from support.server import ServeProcess
from support.webhook import SECRET, body_of, shipment, signed

from notifier.core.models import Record
from notifier.core.records import parse_record
from notifier.engine import IngestReport
from notifier.engine.group_commit import GroupCommitter
from notifier.processes.wiring import open_engine
from notifier.store.memory import MemoryStore
from notifier.store.sql import SqlStore, inline_writer

NOW = datetime.now(UTC)
URL = "/v1/status-changes"


def record(n: int, **fields: str) -> Record:
    return parse_record(shipment(n, **fields), received_at=NOW)


def test_concurrent_callers_share_transactions_and_all_commit(tmp_path: Path) -> None:
    """50 concurrent requests commit in fewer transactions; every record is stored, each
    change taken once (the other 50 are stored as duplicates)."""
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
        assert store.record_count() == 100
        outcomes = [row.outcome for row in audit_rows(store)]
        assert sorted(outcomes) == ["applied"] * 50 + ["duplicate"] * 50
    finally:
        store.close()


# --- writing on the event loop's thread when the write lock is free ----------------------


def test_inline_writer_writes_at_once_when_free_and_writes_nothing_when_locked(
    tmp_path: Path,
) -> None:
    """SQLite: a free write lock means the work runs here; a taken one means None at once
    (not after the 30 s busy timeout), nothing written, and later writes wait as before."""
    settings = settings_for(tmp_path)
    path = tmp_path / "notifier.db"
    with open_engine(settings) as engine:
        store = engine.store
        assert isinstance(store, SqlStore)
        write_now = engine.inline_writer
        assert write_now is not None
        assert write_now(lambda: engine.ingest_groups([[record(1)]])[0].accepted) == 1

        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # The connection the inline write left (its timeout then 0) waits again for others.
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Thread(target=commit_after, args=(holder, 0.3))
        release.start()
        assert engine.ingest([record(4)]).accepted == 1
        release.join()

        holder.execute("BEGIN IMMEDIATE")  # another process's writer, mid-transaction
        started = time.monotonic()
        assert write_now(lambda: engine.ingest_groups([[record(2)]])[0].accepted) is None
        assert time.monotonic() - started < 1.0
        holder.execute("COMMIT")

        # The normal (waiting) path is unchanged: it waits out a short-held lock.
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Thread(target=commit_after, args=(holder, 0.3))
        release.start()
        assert engine.ingest([record(3)]).accepted == 1
        release.join()
        holder.close()
        kept = {row.fulfillment_id for row in audit_rows(store)}
    assert kept == {"F-1", "F-3", "F-4"}


def test_inline_writes_keep_one_connection_and_let_it_go_when_it_may_be_spoilt(
    tmp_path: Path,
) -> None:
    """Inline writes reuse one connection, checked out once; other writes take the pool's
    as before; a failed inline write (here: the lock taken) gives it back to the pool, and
    so does closing the store."""
    with open_engine(settings_for(tmp_path)) as engine:
        store = engine.store
        assert isinstance(store, SqlStore)
        write_now = engine.inline_writer
        assert write_now is not None
        checkouts: list[object] = []
        event.listen(store.engine, "checkout", lambda *args: checkouts.append(args[0]))

        for n in range(1, 4):
            assert write_now(lambda n=n: engine.ingest_groups([[record(n)]])[0].accepted) == 1
        assert len(checkouts) == 1  # three inline writes, one connection
        assert store.engine.pool.checkedout() == 1  # kept for the next

        assert engine.ingest([record(4)]).accepted == 1  # not inline: from the pool, returned
        assert len(checkouts) == 2
        assert checkouts[1] is not checkouts[0]
        assert store.engine.pool.checkedout() == 1

        holder = sqlite3.connect(tmp_path / "notifier.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        assert write_now(lambda: engine.ingest_groups([[record(5)]])[0].accepted) is None
        holder.execute("COMMIT")
        holder.close()
        assert store.engine.pool.checkedout() == 0  # the failed write's connection went back
        assert write_now(lambda: engine.ingest_groups([[record(5)]])[0].accepted) == 1
        assert store.engine.pool.checkedout() == 1
        kept = {row.fulfillment_id for row in audit_rows(store)}
        assert kept == {f"F-{n}" for n in range(1, 6)}
        store.close()
        assert store.engine.pool.checkedout() == 0


def test_holding_checkpoints_lets_the_inline_connection_go_for_one_without_them(
    tmp_path: Path,
) -> None:
    """The connection inline writes keep was made with SQLite's automatic checkpoints on:
    once they are held, the next inline write must run on one made without."""
    with open_engine(settings_for(tmp_path)) as engine:
        store = engine.store
        assert isinstance(store, SqlStore)
        write_now = engine.inline_writer
        assert write_now is not None
        assert write_now(lambda: engine.ingest_groups([[record(0)]])[0].accepted) == 1
        store.checkpoint()  # the log folded in and, at the next write, started afresh
        assert store.hold_checkpoints() is True
        writes = 1500  # each commits at least a page: past the automatic checkpoint's 1,000
        for n in range(1, writes + 1):
            assert write_now(lambda n=n: engine.ingest_groups([[record(n)]])[0].accepted) == 1
        frames, folded = store.checkpoint()
        assert frames >= writes  # no inline commit folded the log in
        assert folded == frames


@pytest.mark.postgres
def test_no_inline_writer_on_postgresql(pg_url: str) -> None:
    """PostgreSQL writes are network round trips: they stay on a thread."""
    store = SqlStore(pg_url)
    try:
        assert inline_writer(store) is None
    finally:
        store.close()


def test_no_inline_writer_for_the_memory_store() -> None:
    """Only SQLite gets an inline writer: any other store is left to the thread."""
    assert inline_writer(MemoryStore()) is None


def test_committer_writes_inline_when_it_can_and_on_its_thread_when_it_cannot() -> None:
    """try_inline's answer is used as is; a None falls back to the thread, same answers."""
    threads: list[str] = []

    def write(items: Sequence[int]) -> list[int]:
        threads.append(threading.current_thread().name)
        return [item * 2 for item in items]

    free = True
    committer: GroupCommitter[int, int] = GroupCommitter(
        write, own_thread="commit", try_inline=lambda work: work() if free else None
    )

    async def main() -> list[int]:
        nonlocal free
        first = await asyncio.gather(*(committer.submit(n) for n in range(3)))
        free = False
        second = await asyncio.gather(*(committer.submit(n) for n in range(3, 5)))
        return [*first, *second]

    try:
        assert asyncio.run(main()) == [0, 2, 4, 6, 8]
    finally:
        committer.close()
    assert threads[0] == "MainThread"
    assert threads[-1].startswith("commit")


def test_an_inline_write_is_made_by_its_first_caller_with_the_same_grace() -> None:
    """With nothing being written, the first caller writes inline itself: no writer task
    (two turns of the event loop fewer), yet callers of the same turn still share its
    transaction, and one arriving while it writes gets the next."""
    groups: list[list[int]] = []
    writers: list[asyncio.Task[object] | None] = []

    def write(items: Sequence[int]) -> list[int]:
        groups.append(list(items))
        writers.append(asyncio.current_task())
        return [item * 2 for item in items]

    committer: GroupCommitter[int, int] = GroupCommitter(write, try_inline=lambda work: work())

    async def main() -> list[int]:
        alone = await committer.submit(1)
        together = await asyncio.gather(*(committer.submit(n) for n in (2, 3, 4)))
        return [alone, *together]

    assert asyncio.run(main()) == [2, 4, 6, 8]
    assert groups == [[1], [2, 3, 4]] and committer.groups == 2
    # Written on the callers' own tasks (the test's, then the first of gather's), not the
    # writer task's.
    assert all(writer is not None for writer in writers)
    assert not any(w.get_name() == "notifier-group-commit" for w in writers if w is not None)


def test_a_first_callers_grace_is_its_turns_of_the_loop() -> None:
    """A caller arriving one turn after the first joins its group with two turns of grace
    (the default: webhook requests reach submit a few turns after they are read), and
    gets the next transaction with one (the send ledger's)."""

    def groups_with(grace_turns: int) -> list[list[int]]:
        groups: list[list[int]] = []

        def write(items: Sequence[int]) -> list[int]:
            groups.append(list(items))
            return list(items)

        committer: GroupCommitter[int, int] = GroupCommitter(
            write, try_inline=lambda work: work(), grace_turns=grace_turns
        )

        async def late() -> int:
            await asyncio.sleep(0)  # one turn after the first caller
            return await committer.submit(2)

        async def main() -> list[int]:
            return list(await asyncio.gather(committer.submit(1), late()))

        assert asyncio.run(main()) == [1, 2]
        return groups

    assert groups_with(2) == [[1, 2]]
    assert groups_with(1) == [[1], [2]]


def test_a_first_caller_cancelled_in_its_grace_leaves_the_write_to_the_writer() -> None:
    """The caller that was to write inline goes away before it writes: everything waiting
    (its own item too: a caller cancels only its own answer, never the write) is written
    by the writer task, and the others get their answers."""
    groups: list[list[int]] = []

    def write(items: Sequence[int]) -> list[int]:
        groups.append(list(items))
        return [item * 2 for item in items]

    committer: GroupCommitter[int, int] = GroupCommitter(write, try_inline=lambda work: work())

    async def main() -> list[int]:
        first, *others = (asyncio.create_task(committer.submit(n)) for n in (1, 2, 3))
        await asyncio.sleep(0)  # the first caller is in its grace, the others wait on it
        first.cancel()
        for _ in range(5):  # a few turns of the loop: time for the writer task, no clock
            await asyncio.sleep(0)
        assert all(other.done() for other in others)
        with pytest.raises(asyncio.CancelledError):
            await first
        return [other.result() for other in others]

    assert asyncio.run(main()) == [4, 6]
    assert groups == [[1, 2, 3]]


def test_inline_writes_decline_groups_above_the_bound() -> None:
    """A group larger than inline_max goes to the commit thread even when inline is free."""
    threads: list[tuple[int, str]] = []

    def write(items: Sequence[Sequence[int]]) -> list[int]:
        threads.append((sum(len(item) for item in items), threading.current_thread().name))
        return [len(item) for item in items]

    committer: GroupCommitter[Sequence[int], int] = GroupCommitter(
        write, size=len, own_thread="commit", try_inline=lambda work: work(), inline_max=100
    )

    async def main() -> list[int]:
        small = await committer.submit([1] * 100)
        large = await committer.submit([1] * 101)
        return [small, large]

    try:
        assert asyncio.run(main()) == [100, 101]
    finally:
        committer.close()
    assert threads == [(100, "MainThread"), (101, "commit_0")]


def test_a_large_request_does_not_stall_the_requests_beside_it(tmp_path: Path) -> None:
    """A 5,000-record webhook request beside small ones and health checks (real server, real
    HTTP): its transaction goes to the commit thread, so the event loop keeps answering.
    Measured relative to the large request itself: no health check waits a third of it, and
    no small request waits much longer than it does (at most the one large transaction, plus
    its own small commit and the scheduling around it on a busy machine)."""
    settings = settings_for(tmp_path, webhook_secret=SECRET)
    large = body_of([shipment(f"L{n}") for n in range(5000)])
    small_waits: list[float] = []
    health_waits: list[float] = []
    large_took: list[float] = []
    large_done = threading.Event()

    with ServeProcess(settings, cwd=tmp_path) as server:

        def post_large() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                started = time.monotonic()
                response = http.post(URL, content=large, headers=signed(large))
                large_took.append(time.monotonic() - started)
                assert response.status_code == 202, response.text
            large_done.set()

        def post_small() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                n = 0
                while not large_done.is_set():
                    body = body_of(shipment(f"S{n}"))
                    started = time.monotonic()
                    response = http.post(URL, content=body, headers=signed(body))
                    small_waits.append(time.monotonic() - started)
                    assert response.status_code == 202, response.text
                    n += 1
                    time.sleep(0.01)

        def check_health() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as http:
                while not large_done.is_set():
                    started = time.monotonic()
                    assert http.get("/healthz").status_code == 200
                    health_waits.append(time.monotonic() - started)
                    time.sleep(0.01)

        beside = [threading.Thread(target=job) for job in (post_small, check_health)]
        for thread in beside:
            thread.start()
        time.sleep(0.2)  # the small requests and health checks are under way
        post_large()
        for thread in beside:
            thread.join(timeout=60)
        assert server.terminate() == 0
    (took,) = large_took
    assert small_waits and health_waits
    assert max(health_waits) < took / 3, (max(health_waits), took)
    assert max(small_waits) < took * 1.5, (max(small_waits), took)
    store = SqlStore(settings.database_url)
    try:
        assert store.record_count() == 5000 + len(small_waits)
    finally:
        store.close()
