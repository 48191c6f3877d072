"""fulfillments.occurred_at_clamped: the state's time is a future-dated record's receipt.

A record dated hours ahead of its receipt (a wrong time zone at the sender) is ordered as
received now; the state must remember that its time is a receipt, so that a record received
later but dated a little earlier still applies (notifier.core.decide.apply_record).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A server default: existing states hold times their records gave, none clamped.
    op.add_column(
        "fulfillments",
        sa.Column("occurred_at_clamped", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    with op.batch_alter_table("fulfillments") as batch:
        batch.drop_column("occurred_at_clamped")
