"""The audit copy in bulk: one row per ingest transaction, not one per record.

Until now every accepted record had a row of its own in `records`, under an order index:
at a million records, those rows and index entries were most of what ingesting wrote.
Now each ingest transaction appends one `record_batches` row holding all its records,
exactly as received, framed and compressed together (notifier.store.audit), and one
`record_orders` entry per order it holds. The existing rows move here, a thousand to a
batch in the order they were stored, every field kept; then `records` goes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

# The batch format is versioned by its kind byte (notifier.store.audit): what this writes,
# any later reader still reads.
from notifier.store.audit import decode_batch, encode_batch
from notifier.store.schema import as_utc, bind_stamp

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_BATCH = 1000  # records moved per batch
_RECORD_COLUMNS = "order_id, fulfillment_id, status, occurred_at, received_at, outcome, payload"
# schema.STALE_BATCH, and 0011's condition, when this was written.
_STALE_BATCH = sa.text("stale > 0")
_STALE_RECORD = sa.text("outcome = 'stale'")


def upgrade() -> None:
    op.create_table(
        "record_batches",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("stale", sa.Integer(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
    )
    op.create_index(
        "ix_record_batches_stale_received",
        "record_batches",
        ["received_at"],
        sqlite_where=_STALE_BATCH,
        postgresql_where=_STALE_BATCH,
    )
    op.create_table(
        "record_orders",
        sa.Column("order_id", sa.String(length=255), primary_key=True),
        sa.Column("batch_id", sa.Integer(), primary_key=True, autoincrement=False),
        sqlite_with_rowid=False,
    )
    connection = op.get_bind()
    last = 0
    # By id, a thousand at a time: the whole table is never held, on either database.
    while rows := connection.execute(
        sa.text(
            f"SELECT id, {_RECORD_COLUMNS} FROM records WHERE id > :last ORDER BY id LIMIT {_BATCH}"
        ),
        {"last": last},
    ).all():
        last = rows[-1][0]
        _write_batch(connection, [row[1:] for row in rows])
    op.drop_index("ix_records_stale_received", table_name="records")
    op.drop_index("ix_records_order", table_name="records")
    op.drop_table("records")


def _text(moment: datetime | str) -> str:
    return str(bind_stamp(as_utc(moment), "sqlite"))


def _write_batch(connection: sa.Connection, rows: Sequence[Sequence[Any]]) -> None:
    texts = [
        (order, fid, status, _text(occurred), _text(received), outcome, payload)
        for order, fid, status, occurred, received, outcome, payload in rows
    ]
    received = max(as_utc(row[4]) for row in rows)
    dialect = connection.dialect.name
    batch_id = connection.execute(
        sa.text(
            "INSERT INTO record_batches (received_at, records, stale, body)"
            " VALUES (:received, :records, :stale, :body) RETURNING id"
        ).bindparams(sa.bindparam("body", type_=sa.LargeBinary())),
        {
            "received": bind_stamp(received, dialect),
            "records": len(rows),
            "stale": sum(row[5] == "stale" for row in rows),
            "body": encode_batch(texts),
        },
    ).scalar_one()
    connection.execute(
        sa.text("INSERT INTO record_orders (order_id, batch_id) VALUES (:order, :batch)"),
        [{"order": order, "batch": batch_id} for order in dict.fromkeys(r[0] for r in rows)],
    )


def downgrade() -> None:
    op.create_table(
        "records",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(length=255), nullable=False),
        sa.Column("fulfillment_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
    )
    op.create_index("ix_records_order", "records", ["order_id"])
    op.create_index(
        "ix_records_stale_received",
        "records",
        ["received_at"],
        sqlite_where=_STALE_RECORD,
        postgresql_where=_STALE_RECORD,
    )
    connection = op.get_bind()
    dialect = connection.dialect.name
    names = [name.strip() for name in _RECORD_COLUMNS.split(",")]
    insert = sa.text(
        f"INSERT INTO records ({_RECORD_COLUMNS}) VALUES ({', '.join(':' + n for n in names)})"
    )
    last = 0
    while batches := connection.execute(
        sa.text("SELECT id, body FROM record_batches WHERE id > :last ORDER BY id LIMIT 10"),
        {"last": last},
    ).all():
        last = batches[-1][0]
        for _, body in batches:
            rows = [dict(zip(names, row, strict=True)) for row in decode_batch(body)]
            for row in rows:
                for stamp in ("occurred_at", "received_at"):
                    row[stamp] = bind_stamp(as_utc(row[stamp]), dialect)
            connection.execute(insert, rows)
    op.drop_table("record_orders")
    op.drop_index("ix_record_batches_stale_received", table_name="record_batches")
    op.drop_table("record_batches")
