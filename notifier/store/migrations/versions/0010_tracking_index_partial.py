"""The tracking-number index holds only fulfillments that have one.

Most records arrive before a parcel has a tracking number (Hold, Pending): each one's new
fulfillment state also wrote a NULL entry into this index, which no lookup ever reads (a
lookup by tracking number compares it, so it never matches NULL). Partial, the index costs
those records nothing.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 07:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_HAS_ONE = sa.text("tracking_number IS NOT NULL")


def upgrade() -> None:
    op.drop_index("ix_fulfillments_tracking", table_name="fulfillments")
    op.create_index(
        "ix_fulfillments_tracking",
        "fulfillments",
        ["tracking_number"],
        sqlite_where=_HAS_ONE,
        postgresql_where=_HAS_ONE,
    )


def downgrade() -> None:
    op.drop_index("ix_fulfillments_tracking", table_name="fulfillments")
    op.create_index("ix_fulfillments_tracking", "fulfillments", ["tracking_number"])
