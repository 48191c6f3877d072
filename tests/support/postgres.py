"""Throwaway PostgreSQL databases for tests: one migrated database per run, emptied per test.

TRUNCATE between tests takes milliseconds; a fresh database per test would cost a CREATE
(fast, from a template) and a DROP (slow: each DROP DATABASE forces a checkpoint).
"""

from __future__ import annotations

import itertools
import os
import uuid

import psycopg
from psycopg import sql

from notifier.store.schema import metadata
from notifier.store.sql import SqlStore

# The CI server (`.ci/run` starts it); override to point the tests at another one.
ADMIN_URL = os.environ.get(
    "NOTIFIER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def unreachable_reason() -> str | None:
    """None when the server answers; otherwise why the PostgreSQL tests are skipped."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"PostgreSQL not reachable at {ADMIN_URL} ({first_line});"
            " start it (e.g. .ci/run does) or set NOTIFIER_TEST_POSTGRES_URL"
        )


def database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


class PgDatabases:
    """Databases named notifier_test_<run>[_<n>], so concurrent runs never see each other's rows."""

    def __init__(self) -> None:
        self.prefix = f"notifier_test_{uuid.uuid4().hex[:10]}"
        self._numbers = itertools.count(1)
        self._created: list[str] = []
        self._execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.prefix)))
        self._created.append(self.prefix)
        self.shared_url = database_url(self.prefix)
        store = SqlStore(self.shared_url)  # migrated once for the whole run
        store.close()

    def emptied(self) -> str:
        """The run's migrated database with every ledger table emptied."""
        tables = sql.SQL(", ").join(sql.Identifier(table.name) for table in metadata.sorted_tables)
        with psycopg.connect(self.shared_url, autocommit=True) as connection:
            connection.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY").format(tables))
        return self.shared_url

    def fresh(self) -> str:
        """The URL of a new, empty database (no schema), dropped at the end of the run."""
        name = f"{self.prefix}_{next(self._numbers)}"
        self._execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._created.append(name)
        return database_url(name)

    def drop(self, url: str) -> None:
        name = url.rpartition("/")[2]
        # FORCE: a killed worker process may still hold a connection for a moment.
        self._execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        if name in self._created:
            self._created.remove(name)

    def drop_all(self) -> None:
        for name in list(reversed(self._created)):
            self.drop(database_url(name))

    def _execute(self, statement: sql.Composed) -> None:
        with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
            connection.execute(statement)
