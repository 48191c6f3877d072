"""Records without a unique key each: a redelivery is told by its fulfillment's state.

Until now every record's audit row went under a unique `dedup_key` (a hash of its event id,
or of its change), and a redelivery was a conflict on it: one random insert into a unique
B-tree per record, forever, which was most of what ingesting a large batch cost. Now each
fulfillment keeps the keys of its latest records (`fulfillments.recent_keys`, written with
its state anyway) and a record whose key is there is a duplicate
(notifier.core.decide.is_duplicate). Filled here from the keys the records hold, so the
old records are still caught when redelivered; then the records lose the column and its
constraint, and keep every row and their order index.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 01:00:00
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import groupby, islice

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# notifier.core.decide.RECENT_KEYS when this was written (a migration stays as it was).
_RECENT_KEYS = 16
_BATCH = 1000  # fulfillments updated per statement batch


def upgrade() -> None:
    op.add_column("fulfillments", sa.Column("recent_keys", sa.Text()))
    connection = op.get_bind()
    for batch in _batches(_recent_keys(connection)):
        connection.execute(
            sa.text("UPDATE fulfillments SET recent_keys = :keys WHERE fulfillment_id = :fid"),
            batch,
        )
    # SQLite cannot drop a unique constraint in place: batch mode copies the table, rows
    # and ids kept, without the column and its constraint.
    with op.batch_alter_table("records") as batch_op:
        batch_op.drop_column("dedup_key")


def _recent_keys(connection: sa.Connection) -> Iterator[dict[str, str]]:
    """Each fulfillment's latest record keys, oldest first, as decide keeps them: the rows
    of stale records too (they were taken: their redelivery is a duplicate)."""
    rows = connection.execute(
        sa.text(
            "SELECT fulfillment_id, dedup_key FROM ("
            " SELECT fulfillment_id, dedup_key, id, ROW_NUMBER() OVER"
            " (PARTITION BY fulfillment_id ORDER BY id DESC) AS newness FROM records"
            f") latest WHERE newness <= {_RECENT_KEYS} ORDER BY fulfillment_id, id"
        )
    )
    for fulfillment_id, keyed in groupby(rows, key=lambda row: row[0]):
        yield {"fid": fulfillment_id, "keys": " ".join(key for _, key in keyed)}


def _batches(items: Iterator[dict[str, str]]) -> Iterator[list[dict[str, str]]]:
    while batch := list(islice(items, _BATCH)):
        yield batch


def downgrade() -> None:
    # The old keys cannot come back unique: duplicates are stored now, under the key of
    # the record they repeat. Each row gets a key of its own; a redelivery of an old record
    # is then new to the old code, and the notices' keys still keep every email to one.
    with op.batch_alter_table("records") as batch:
        batch.add_column(sa.Column("dedup_key", sa.String(length=64), nullable=True))
    op.execute("UPDATE records SET dedup_key = 'row-' || CAST(id AS VARCHAR(20))")
    with op.batch_alter_table("records") as batch:
        batch.alter_column("dedup_key", existing_type=sa.String(length=64), nullable=False)
        batch.create_unique_constraint("uq_records_dedup_key", ["dedup_key"])
    with op.batch_alter_table("fulfillments") as batch:
        batch.drop_column("recent_keys")
