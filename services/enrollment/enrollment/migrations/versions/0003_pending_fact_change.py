"""The fact-change outbox: an unenrollment's (or ended run's) "enrolled in X" change, written
with the status change and replayed by the recovery loop when a crash lost its cascade.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_fact_change",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("change_id", sa.String(200), primary_key=True),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("workflow_id", sa.String(128), nullable=False),
        sa.Column("old", sa.String(16), nullable=True),
        sa.Column("new", sa.String(16), nullable=True),
        sa.Column("run_workflow_id", sa.String(400), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pending_fact_change_created_at", "pending_fact_change", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_pending_fact_change_created_at", table_name="pending_fact_change")
    op.drop_table("pending_fact_change")
