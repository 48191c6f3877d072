"""The Message-ID index holds only notices that have one: those sent, or tried.

A notice gets its Message-ID when its send is recorded; until then its NULL entry sat in
this index, which no lookup reads (feedback is matched by comparing Message-IDs, which
never matches NULL). So each new notice wrote an entry no one reads, and each outcome
deleted it again on its own page of the index: a page more in the write-ahead log of
every delivery (bench/delivery.py). Partial, the index costs an unsent notice nothing.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 19:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

_HAS_ONE = sa.text("message_id IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_notices_message_id", table_name="notices")
    op.create_index(
        "ix_notices_message_id",
        "notices",
        ["message_id"],
        sqlite_where=_HAS_ONE,
        postgresql_where=_HAS_ONE,
    )


def downgrade() -> None:
    op.drop_index("ix_notices_message_id", table_name="notices")
    op.create_index("ix_notices_message_id", "notices", ["message_id"])
