"""A long-running process folds SQLite's log in on a timer of its own, never in a commit.

Real SQLite files in WAL mode, written through the store's own pooled connections.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from notifier.processes.checkpoints import LogCheckpoints
from notifier.store.memory import MemoryStore
from notifier.store.sql import SqlStore

# Commits of about a page each: well past SQLite's automatic checkpoint at 1,000 pages.
COMMITS = 3000


def _commit_pages(store: SqlStore, count: int = COMMITS) -> None:
    connection = store.engine.raw_connection()
    try:
        driver = connection.driver_connection
        assert driver is not None
        driver.execute("CREATE TABLE IF NOT EXISTS scratch (body BLOB)")
        for _ in range(count):  # the driver is in autocommit: a commit each
            driver.execute("INSERT INTO scratch VALUES (?)", (bytes(3000),))
    finally:
        connection.close()


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    return SqlStore(f"sqlite:///{tmp_path / 'notifier.db'}")


def test_by_default_a_commit_checkpoints_the_log(store: SqlStore) -> None:
    """What holding them changes: SQLite folds the log in once it passes 1,000 pages, and
    the next writer starts it afresh, so it never holds every commit's pages."""
    _commit_pages(store)
    frames, folded = store.checkpoint()
    assert frames < COMMITS
    assert folded == frames


def test_held_checkpoints_leave_every_page_in_the_log_until_asked(store: SqlStore) -> None:
    assert store.hold_checkpoints() is True
    _commit_pages(store)
    frames, folded = store.checkpoint()
    assert frames >= COMMITS  # no commit folded anything in
    assert folded == frames  # a passive checkpoint with nobody reading folds in all


def test_the_service_folds_the_log_in_while_running_and_as_it_stops(store: SqlStore) -> None:
    async def scenario() -> LogCheckpoints:
        checkpoints = LogCheckpoints(store, every=0.01)
        await checkpoints.start()
        await asyncio.to_thread(_commit_pages, store)
        for _ in range(1000):  # the timer's own, before any stop (10 s at most)
            if checkpoints.runs:
                break
            await asyncio.sleep(0.01)
        await checkpoints.stop()
        return checkpoints

    checkpoints = asyncio.run(scenario())
    assert checkpoints.runs >= 2  # one on the timer at least, and the last as it stopped
    frames, folded = store.checkpoint()
    assert folded == frames  # nothing left behind


def test_a_store_without_a_log_runs_nothing() -> None:
    async def scenario() -> LogCheckpoints:
        checkpoints = LogCheckpoints(MemoryStore(), every=0.01)
        await checkpoints.start()
        await asyncio.sleep(0.05)
        await checkpoints.stop()
        return checkpoints

    assert asyncio.run(scenario()).runs == 0


@pytest.mark.postgres
def test_postgresql_has_no_log_to_hold(pg_url: str) -> None:
    store = SqlStore(pg_url)
    try:
        assert store.hold_checkpoints() is False
        assert store.checkpoint() == (0, 0)
    finally:
        store.close()
