"""Notices remember that their send started, so a crash mid-send counts as an attempt.

A claim covers a batch, but only the few notices handed to the transport may have reached
the server when the process dies. `send_started_at` is set just before a notice is handed
over and cleared by its outcome: a notice claimed again with it still set was interrupted
in its send, an ambiguous attempt like a connection dropped after DATA.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A nullable column without a default: SQLite adds it in place, no table rebuild.
    op.add_column("notices", sa.Column("send_started_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    with op.batch_alter_table("notices") as batch_op:
        batch_op.drop_column("send_started_at")
