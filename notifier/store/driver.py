"""Statements straight to the database driver, for the store's hot paths.

SQLAlchemy's work around each statement (execution context, events, result metadata) costs
more than SQLite itself takes for a small ingest: measured here, an empty write transaction
~100 µs and each statement ~80 µs through SQLAlchemy, against ~10 µs and ~5 µs on the
DB-API connection. A webhook group commit runs five or more statements, so ingestion
(webhook and batch alike) speaks SQL to the pooled DB-API connection through this class;
the rest of the store stays on SQLAlchemy Core. Connections still come from (and go back
to) the engine's pool, and errors are still translated by SqlStore.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def param_mark(dialect: str) -> str:
    """The driver's parameter marker: sqlite3's `?`, psycopg's `%s`."""
    return "?" if dialect == "sqlite" else "%s"


class DriverTx:
    """One open transaction on a DB-API cursor. `mark` is the dialect's parameter marker."""

    def __init__(self, cursor: Any, dialect: str) -> None:
        self._cursor = cursor
        self.dialect = dialect
        self.mark = param_mark(dialect)

    def marks(self, count: int) -> str:
        """`count` parameter markers, comma-separated (for VALUES lists)."""
        return ", ".join([self.mark] * count)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self._cursor.execute(sql, params)
        return list(self._cursor.fetchall())

    def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        self._cursor.execute(sql, params)
        return int(self._cursor.rowcount)

    def run_many(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._cursor.executemany(sql, rows)

    def where_in(
        self, select_sql: str, column: str, values: Sequence[Any]
    ) -> list[tuple[Any, ...]]:
        """`select_sql WHERE column IN values` (PostgreSQL: `= ANY(array)`, one parameter)."""
        if not values:
            return []
        if self.dialect == "sqlite":
            return self.rows(f"{select_sql} WHERE {column} IN ({self.marks(len(values))})", values)
        return self.rows(f"{select_sql} WHERE {column} = ANY(%s)", (list(values),))
