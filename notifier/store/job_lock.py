"""Cluster-once locks for scheduled jobs: two instances never import the same batch twice.

PostgreSQL: a session-level `pg_try_advisory_lock` on a connection held for the whole job;
if the process dies the session ends and the lock with it. The two-integer key form is
used, whose key space is separate from the single-bigint keys ingestion and migrations lock.

SQLite (one host by nature): an OS file lock (`flock`) on a file beside the database,
released by the kernel when the process dies. In-memory databases use a process-local lock.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

# Any fixed number: the namespace (first key) of notifier's job locks.
_JOB_LOCK_SPACE = 7_302_007
_local_locks: dict[str, threading.Lock] = {}
_local_guard = threading.Lock()


def job_key(name: str) -> int:
    """A stable signed 32-bit key for a job name."""
    return zlib.crc32(name.encode()) - 2**31


@contextmanager
def pg_job_lock(engine: Engine, name: str) -> Iterator[bool]:
    """Yield True holding the job's advisory lock, or False if another session holds it."""
    params = {"space": _JOB_LOCK_SPACE, "key": job_key(name)}
    connection = engine.connect()
    try:
        held = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:space, :key)"), params))
        connection.commit()  # a session-level lock outlives the transaction that took it
        try:
            yield held
        finally:
            if held:
                try:
                    connection.scalar(text("SELECT pg_advisory_unlock(:space, :key)"), params)
                    connection.commit()
                except Exception:
                    # Never hand a connection that may still hold the lock back to the pool.
                    connection.invalidate()
                    raise
    finally:
        connection.close()


def lock_file_for(database: str, name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return Path(f"{database}.{safe}.joblock")


@contextmanager
def file_job_lock(path: Path) -> Iterator[bool]:
    """Yield True holding an exclusive flock on `path`, or False if someone else holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def local_job_lock(name: str) -> Iterator[bool]:
    with _local_guard:
        lock = _local_locks.setdefault(name, threading.Lock())
    if not lock.acquire(blocking=False):
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
