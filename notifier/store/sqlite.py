"""SQLite-only parts of the ledger: connection set-up, BEGIN IMMEDIATE, the inline write.

Write transactions are BEGIN IMMEDIATE: one writer at a time, and no reader upgrading to a
writer deadlocks against another. A writer waits up to BUSY_MS for the lock. The inline
writer lets a caller on an event loop run a write on its own thread when the lock is free
this instant (a local transaction of a millisecond or two costs less than a hop to a
thread and back), and gives up at once, having written nothing, when it is not. All of it
is said to the DB-API driver directly, on the pooled connection SQLAlchemy hands out.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar, cast
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import PoolProxiedConnection

T = TypeVar("T")

# How long a writer waits for another to finish; read at each use (tests shorten it).
BUSY_MS = 30_000

# Set (only) while an inline write runs: SQLite write transactions then begin only if no
# other connection holds the write lock, instead of waiting for it.
_WRITE_NOW: ContextVar[bool] = ContextVar("notifier_sqlite_write_now", default=False)
# The busy timeout a pooled connection has now, in its pool entry's info.
_BUSY_SET = "notifier_busy_ms"


# sqlite3 looks up an adapter for every parameter that is not exactly an int, float, str or
# bytearray. For None, bool and bytes the lookup fails through two raised and caught
# AttributeErrors (`__adapt__`, then `__conform__`): some 3,000 instructions a parameter,
# and a fulfillment's state bound five Nones and a bool (callgrind: 139,819 → 129,391
# instructions to ingest a record, 7%; the ingest's state upsert now leaves most of them
# out: notifier.store.fast_paths._write_states). A registered adapter is one dict hit and
# a call in C, and binds what the default bound: None as NULL ({}.get of anything is
# None), a bool as its int, bytes as themselves.
# Process-wide, so SQLAlchemy's statements on sqlite3 gain the same.
_NOTHING: dict[None, None] = {}
sqlite3.register_adapter(type(None), cast("Callable[[None], None]", _NOTHING.get))
sqlite3.register_adapter(bool, int)
sqlite3.register_adapter(bytes, bytes)


class WouldWait(Exception):
    """An inline write found the SQLite write lock taken."""


def create_sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"timeout": BUSY_MS / 1000})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        # Take transaction control from the driver so we can say BEGIN IMMEDIATE ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL: readers never block the writer. NORMAL: durable across process crashes
        # (a power cut may lose the last commits; those notices are then re-sent, same Message-ID).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_MS}")
        if _CHECKPOINTS_HELD.get(engine):
            cursor.execute("PRAGMA wal_autocheckpoint=0")  # see hold_checkpoints
        cursor.close()
        record.info[_BUSY_SET] = BUSY_MS

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        write = not connection.get_execution_options().get("notifier_readonly", False)
        begin(connection.connection, write=write)

    return engine


def begin(connection: PoolProxiedConnection, *, write: bool) -> None:
    """BEGIN (IMMEDIATE, to write) on a pooled SQLite connection; under an inline write, a
    write begins only if the lock is free this instant. Said to the driver directly:
    SQLAlchemy's per-statement work cost as much as the inline write saved."""
    driver = connection.driver_connection
    assert driver is not None  # a checked-out connection always has one
    inline = write and _WRITE_NOW.get()
    # An inline write must not wait for the lock; every other transaction waits BUSY_MS.
    busy_ms = 0 if inline else BUSY_MS
    # Said only when it changes (the pool entry remembers it): a statement each way cost
    # about a tenth of a small inline write.
    if connection.info.get(_BUSY_SET) != busy_ms:
        driver.execute(f"PRAGMA busy_timeout={busy_ms}")
        connection.info[_BUSY_SET] = busy_ms
    driver.execute("BEGIN IMMEDIATE" if write else "BEGIN")


# Engines whose connections leave the WAL's checkpoints to `checkpoint` (hold_checkpoints).
_CHECKPOINTS_HELD: WeakKeyDictionary[Engine, bool] = WeakKeyDictionary()


def hold_checkpoints(engine: Engine) -> None:
    """Take the WAL's checkpoints off the commits of this engine's connections.

    SQLite runs a checkpoint inside whichever commit takes the log past 1,000 pages, and
    the checkpoint syncs the database file: on a loaded disk that sync took over 100 ms,
    and a long-running process's commit (on the event loop, for an inline write) held up
    every request meanwhile. A process that holds them calls `checkpoint` from a thread of
    its own instead (notifier.processes.checkpoints). Other processes on the same file keep
    SQLite's automatic checkpoints; the last connection to close folds the log in anyway."""
    _CHECKPOINTS_HELD[engine] = True
    engine.dispose()  # pooled connections were made without it: the next ones have it


def checkpoint(engine: Engine) -> tuple[int, int]:
    """A passive checkpoint (it never waits for, nor blocks, readers and the writer): the
    log's frames, and how many of them are now in the database file."""
    connection = engine.raw_connection()
    try:
        driver = connection.driver_connection
        assert driver is not None  # a checked-out connection always has one
        _busy, frames, folded = driver.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return int(frames), int(folded)
    finally:
        connection.close()


class InlineConnection:
    """The connection inline writes run on, kept checked out of the pool between them.

    An inline write is one short transaction on the event loop's thread, a few thousand a
    second under load (each delivery writes two: its send mark and its outcome). Checking a
    connection out of SQLAlchemy's pool for each, and back in with the pool's reset, cost
    about a twentieth of a delivery's CPU (bench/delivery.py), as much as the statements'
    own work. One transaction at a time has it: an inline write on another thread's loop
    meanwhile takes one from the pool, as every write outside an inline one does. A
    transaction that failed returns it to the pool (the next one checks out afresh), and
    `drop` does before the engine's connections are replaced (hold_checkpoints, close)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: PoolProxiedConnection | None = None
        self._lock = threading.Lock()

    def take(self) -> PoolProxiedConnection | None:
        """The held connection, this caller's until `give_back`; None outside an inline
        write, or while another transaction has it."""
        if not _WRITE_NOW.get() or not self._lock.acquire(blocking=False):
            return None
        if self._connection is None:
            try:
                self._connection = self._engine.raw_connection()
            except BaseException:
                self._lock.release()
                raise
        return self._connection

    def give_back(self, *, failed: bool) -> None:
        """End the taker's use; after a failed transaction, the connection goes back to the
        pool rather than being kept in whatever state the failure left it."""
        try:
            if failed:
                self._close()
        finally:
            self._lock.release()

    def drop(self) -> None:
        """Return the held connection to the pool (waiting for a transaction on it to end)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def lock_detail(exc: Exception, detail: str) -> str:
    """What a 'database is locked' error means here; under an inline write, WouldWait."""
    if _WRITE_NOW.get():
        raise WouldWait from exc
    return f"{detail} (another process held the store for over {BUSY_MS // 1000} s)"


def write_inline(work: Callable[[], T]) -> T | None:
    """Run `work` -- one write transaction on a SQLite store -- here if the write lock is
    free, else None, having written nothing."""
    token = _WRITE_NOW.set(True)
    try:
        return work()
    except WouldWait:
        return None  # nothing was written: the transaction rolled back, or never began
    finally:
        _WRITE_NOW.reset(token)
