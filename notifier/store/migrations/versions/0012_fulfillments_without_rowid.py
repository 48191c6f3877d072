"""On SQLite, the fulfillments are stored in their primary key's own B-tree (WITHOUT ROWID).

A rowid table keyed by text keeps two B-trees: the rows by a hidden rowid, and the key's
index pointing into them. Every record of a new fulfillment inserted into both, and every
lookup by fulfillment id read both. Clustered on the key, the state is one B-tree: a
million-record ingest's raw writes went from ~8 to ~6.5 µs a record (bench/ingest.py's
floor). PostgreSQL has no rowid: nothing changes there.

SQLite cannot change this in place: the table is rebuilt, rows and indexes alike.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_COLUMNS = (
    "fulfillment_id, order_id, status, occurred_at, tracking_number, carrier, shipped_at,"
    " delivered_at, occurred_at_clamped, status_since, recent_keys"
)
_HAS_ONE = sa.text("tracking_number IS NOT NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(with_rowid=True)


def _rebuild(*, with_rowid: bool) -> None:
    op.create_table(
        "fulfillments_rebuilt",
        sa.Column("fulfillment_id", sa.String(length=255), nullable=False),
        sa.Column("order_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tracking_number", sa.String(length=255), nullable=True),
        sa.Column("carrier", sa.String(length=255), nullable=True),
        sa.Column("shipped_at", sa.String(length=255), nullable=True),
        sa.Column("delivered_at", sa.String(length=255), nullable=True),
        sa.Column("occurred_at_clamped", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("status_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recent_keys", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("fulfillment_id"),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(f"INSERT INTO fulfillments_rebuilt ({_COLUMNS}) SELECT {_COLUMNS} FROM fulfillments")
    op.drop_index("ix_fulfillments_tracking", table_name="fulfillments")
    op.drop_index("ix_fulfillments_order", table_name="fulfillments")
    op.drop_table("fulfillments")
    op.rename_table("fulfillments_rebuilt", "fulfillments")
    op.create_index("ix_fulfillments_order", "fulfillments", ["order_id"])
    op.create_index(
        "ix_fulfillments_tracking",
        "fulfillments",
        ["tracking_number"],
        sqlite_where=_HAS_ONE,
        postgresql_where=_HAS_ONE,
    )
