"""The operator console: each notice's history, the sent copies, and search indexes.

`notice_history` gets a row for every attempt's outcome (in the completion's transaction)
and every operator action; `sent_copies` keeps the exact bytes of sent messages, zlib
compressed, pruned after NOTIFIER_SENT_COPY_RETENTION. The indexes serve the console's
search by fulfillment, tracking number, status and creation time (by address: 0006's
ix_notices_recipient).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notice_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("notice_key", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text()),
        sa.Column("actor", sa.String(255)),
    )
    op.create_index("ix_notice_history_key", "notice_history", ["notice_key"])
    op.create_table(
        "sent_copies",
        sa.Column("notice_key", sa.Text(), primary_key=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
    )
    op.create_index("ix_sent_copies_sent_at", "sent_copies", ["sent_at"])
    op.create_index("ix_notices_fulfillment", "notices", ["fulfillment_id"])
    op.create_index("ix_notices_created", "notices", ["created_at"])
    op.create_index("ix_notices_status_created", "notices", ["status", "created_at"])
    op.create_index("ix_fulfillments_tracking", "fulfillments", ["tracking_number"])


def downgrade() -> None:
    op.drop_index("ix_fulfillments_tracking", table_name="fulfillments")
    op.drop_index("ix_notices_status_created", table_name="notices")
    op.drop_index("ix_notices_created", table_name="notices")
    op.drop_index("ix_notices_fulfillment", table_name="notices")
    op.drop_index("ix_sent_copies_sent_at", table_name="sent_copies")
    op.drop_table("sent_copies")
    op.drop_index("ix_notice_history_key", table_name="notice_history")
    op.drop_table("notice_history")
