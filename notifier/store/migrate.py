"""Schema migrations (Alembic), run on first use and by `notifier db upgrade`."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

_SCRIPTS = Path(__file__).parent / "migrations"
# Any fixed number: the cluster-wide lock PostgreSQL instances take while migrating.
_MIGRATION_LOCK = 7_302_001


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision; safe when several processes do it at once."""
    with _sqlite_first_use_lock(engine):
        _upgrade(engine)


@contextmanager
def _sqlite_first_use_lock(engine: Engine) -> Iterator[None]:
    """On SQLite, one process at a time opens the file to migrate it (an flock beside it).

    BEGIN IMMEDIATE alone is not enough on a new file: a connection still switching it to
    WAL (which needs the file to itself) and a migrator holding the write lock can wait on
    each other until the busy timeout, and one of them fails "database is locked". Taken
    before the first connection, the flock lets them go one after the other.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    try:
        fd = os.open(f"{database}.migrate-lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        yield  # e.g. a read-only folder: nothing will be migrated there anyway
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _upgrade(engine: Engine) -> None:
    config = alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.begin() as connection:  # on SQLite: BEGIN IMMEDIATE, so one migrator at a time
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        # Read the revision inside the locked transaction: a racing process may have just finished.
        if current_revision(connection) == head:
            return
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
