"""Notice keys unbounded: a rule's key_fields can make keys longer than 512 characters.

SQLite never enforced the length; PostgreSQL refused such a notice and with it the whole
batch. TEXT costs nothing there (same storage as VARCHAR), and the primary key stays.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 12:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Only where the length is enforced; on SQLite a batch rebuild of the ledger's
    # largest table would change nothing.
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("notices", "key", type_=sa.Text(), existing_type=sa.String(512))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("notices", "key", type_=sa.String(512), existing_type=sa.Text())
