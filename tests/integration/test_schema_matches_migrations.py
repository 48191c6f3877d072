"""The tables `notifier.store.schema` declares are exactly what the migrations create.

The store's SQL is written against schema.py; a ledger in production was built by the
Alembic migrations. Any column, index or constraint in one and not the other shows here
(on SQLite and PostgreSQL), not on an operator's first upgrade.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from notifier.store.schema import metadata
from notifier.store.sql import SqlStore


def test_the_migrated_schema_is_the_declared_one(empty_store_url: str) -> None:
    store = SqlStore(empty_store_url)  # migrates the empty database to the head revision
    try:
        with store.engine.connect() as connection:
            # Types on PostgreSQL only: SQLite keeps type affinities, not declared types (0002
            # left SQLite's notices.key a VARCHAR(512), which it never enforces).
            compare_type = store.dialect == "postgresql"
            context = MigrationContext.configure(connection, opts={"compare_type": compare_type})
            differences = [
                diff
                for diff in compare_metadata(context, metadata)
                # Alembic's own bookkeeping table is not part of the ledger's schema.
                if "alembic_version" not in repr(diff)
            ]
    finally:
        store.close()
    assert differences == []
