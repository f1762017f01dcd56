"""Enrollment facts by record ("which workflows has R been enrolled in") and the time re-check
watermark per workflow.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_fact_record", "enrollment_fact", ["tenant_id", "object_type", "record_id"])
    op.create_table(
        "time_recheck",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("workflow_id", sa.String(128), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("checked_until", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("time_recheck")
    op.drop_index("ix_fact_record", table_name="enrollment_fact")
