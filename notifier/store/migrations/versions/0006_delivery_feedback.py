"""Delivery feedback: what the providers reported after the handoff, tied to each notice.

`feedback_events` holds each provider event once (provider, event_id); `notices.feedback` the
strongest verdict so far, so a listing needs no join. Matching an event looks a notice up by
its Message-ID, or the latest one sent to the address: both get an index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("notices", sa.Column("feedback", sa.String(24)))
    op.create_index("ix_notices_message_id", "notices", ["message_id"])
    op.create_index("ix_notices_recipient", "notices", ["recipient", "sent_at"])
    op.create_table(
        "feedback_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("notice_key", sa.Text()),
        sa.Column("matched_by", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(24), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recipient", sa.String(255)),
        sa.Column("message_id", sa.String(255)),
        sa.Column("diagnostic", sa.Text(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.UniqueConstraint("provider", "event_id", name="uq_feedback_events_provider_event"),
    )
    op.create_index("ix_feedback_events_notice", "feedback_events", ["notice_key"])
    op.create_index(
        "ix_feedback_events_recipient", "feedback_events", ["recipient", "kind", "occurred_at"]
    )
    op.create_index("ix_feedback_events_occurred", "feedback_events", ["occurred_at"])


def downgrade() -> None:
    op.drop_table("feedback_events")
    op.drop_index("ix_notices_recipient", table_name="notices")
    op.drop_index("ix_notices_message_id", table_name="notices")
    with op.batch_alter_table("notices") as batch_op:
        batch_op.drop_column("feedback")
