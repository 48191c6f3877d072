"""The tables `notifier.store.schema` declares are exactly what the migrations create.

The store's SQL is written against schema.py; a ledger in production was built by the
Alembic migrations. Any column, index or constraint in one and not the other shows here
(on SQLite and PostgreSQL), not on an operator's first upgrade.
"""

from __future__ import annotations

from typing import Any

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


def test_fulfillments_live_in_their_key_on_sqlite_through_upgrade_and_downgrade(
    empty_store_url: str,
) -> None:
    """0012 rebuilds SQLite's fulfillments WITHOUT ROWID, keeping every row and both indexes;
    its downgrade rebuilds them with a rowid again. PostgreSQL's table is left as it was."""
    from alembic import command
    from sqlalchemy import text

    from notifier.store import migrate
    from notifier.store.sql import create_store_engine

    engine = create_store_engine(empty_store_url)
    config = migrate.alembic_config()
    rows = [
        {"fid": f"F{n}", "order": f"KN-{n // 2}", "t": f"1Z{n}" if n % 2 else None}
        for n in range(6)
    ]

    def table_sql(connection: Any) -> str:
        if engine.dialect.name != "sqlite":
            return ""
        found = connection.scalar(
            text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'fulfillments'")
        )
        return str(found)

    def indexes(connection: Any) -> set[str]:
        if engine.dialect.name == "sqlite":
            listed = connection.execute(text("PRAGMA index_list(fulfillments)"))
            return {row[1] for row in listed if row[3] == "c"}  # created, not the key's own
        listed = connection.execute(
            text("SELECT indexname FROM pg_indexes WHERE tablename = 'fulfillments'")
        )
        return {row[0] for row in listed} - {"fulfillments_pkey"}

    def kept(connection: Any) -> list[tuple[Any, ...]]:
        found = connection.execute(
            text("SELECT fulfillment_id, order_id, tracking_number FROM fulfillments ORDER BY 1")
        )
        return [tuple(row) for row in found]

    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0011")
            for row in rows:
                connection.execute(
                    text(
                        "INSERT INTO fulfillments (fulfillment_id, order_id, status, occurred_at,"
                        " tracking_number) VALUES (:fid, :order, 'Pending', '2026-01-02 03:04:05',"
                        " :t)"
                    ),
                    row,
                )
            before = kept(connection)
            assert "WITHOUT ROWID" not in table_sql(connection)
            command.upgrade(config, "0012")
            assert kept(connection) == before
            expected = {"ix_fulfillments_order", "ix_fulfillments_tracking"}
            assert indexes(connection) == expected
            if engine.dialect.name == "sqlite":
                assert "WITHOUT ROWID" in table_sql(connection)
            command.downgrade(config, "0011")
            assert kept(connection) == before
            assert indexes(connection) == expected
            assert "WITHOUT ROWID" not in table_sql(connection)
    finally:
        engine.dispose()
