"""outbox pending index in delivery order

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 13:55:00

The dispatcher reads ``WHERE delivered_at IS NULL ORDER BY seq``; an index on
(delivered_at, seq) serves it without sorting the pending rows.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crm_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_outbox_pending")
        batch_op.create_index("ix_crm_outbox_pending", ["delivered_at", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("crm_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_outbox_pending")
        batch_op.create_index(
            "ix_crm_outbox_pending", ["delivered_at", "next_attempt_at"], unique=False
        )
