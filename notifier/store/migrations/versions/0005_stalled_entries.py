"""Stalled rules and operator digests: entry times, and the window a notice is sent in.

A stalled notice is due once its status has stood for a while; when it falls due, the
engine cancels it if the fulfillment changed since that entry. A repeat of a status moves
`occurred_at` on, so the entry needs its own time: `fulfillments.status_since`, and the
notice's `entered_at` (notifier.core.stalled). A digest rule's notices share a
`digest_key` (the rule and the window) and are claimed and sent together.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable columns without defaults: SQLite adds them in place, no table rebuild. A
    # state stored before has no entry time; its last change stands in for it.
    op.add_column("fulfillments", sa.Column("status_since", sa.DateTime(timezone=True)))
    op.add_column("notices", sa.Column("entered_at", sa.DateTime(timezone=True)))
    # Operator digests: a window's notices are claimed together by this key.
    op.add_column("notices", sa.Column("digest_key", sa.Text()))
    op.create_index("ix_notices_digest", "notices", ["digest_key"])


def downgrade() -> None:
    op.drop_index("ix_notices_digest", table_name="notices")
    with op.batch_alter_table("notices") as batch_op:
        batch_op.drop_column("digest_key")
        batch_op.drop_column("entered_at")
    with op.batch_alter_table("fulfillments") as batch_op:
        batch_op.drop_column("status_since")
