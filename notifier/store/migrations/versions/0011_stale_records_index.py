"""Stale records by receipt, for the console's "needs attention" without a scan.

The overview lists the stale records received in the last day; `records` holds every record
ever accepted, and its one index is by order. A partial index on `received_at` for the
stale rows only: the overview counts and lists on it, and ingesting every other record (the
applied, repeat and duplicate 99%) writes no index entry more than before.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 07:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# notifier.store.schema.STALE_RECORD when this was written (a migration stays as it was).
_STALE = sa.text("outcome = 'stale'")


def upgrade() -> None:
    op.create_index(
        "ix_records_stale_received",
        "records",
        ["received_at"],
        sqlite_where=_STALE,
        postgresql_where=_STALE,
    )


def downgrade() -> None:
    op.drop_index("ix_records_stale_received", table_name="records")
