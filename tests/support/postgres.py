"""Throwaway PostgreSQL databases for tests: one migrated template per run, a clone per test."""

from __future__ import annotations

import itertools
import os
import uuid

import psycopg
from psycopg import sql

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
    """Databases named notifier_test_<run>_<n>, so concurrent runs never see each other's rows."""

    def __init__(self) -> None:
        self.prefix = f"notifier_test_{uuid.uuid4().hex[:10]}"
        self.template = f"{self.prefix}_template"
        self._numbers = itertools.count(1)
        self._created: list[str] = []
        self._execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.template)))
        self._created.append(self.template)
        store = SqlStore(database_url(self.template))  # migrate once; every clone inherits it
        store.close()

    def fresh(self, *, migrated: bool = True) -> str:
        """The URL of a new database: a clone of the migrated template, or empty."""
        name = f"{self.prefix}_{next(self._numbers)}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if migrated:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(self.template))
        self._execute(statement)
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
