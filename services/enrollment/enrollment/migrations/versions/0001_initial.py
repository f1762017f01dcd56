"""Initial enrollment schema: active revisions, processed events, ledger, facts, occurrences.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "active_revision",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("workflow_id", sa.String(128), primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("published_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "processed_event",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("processed_at", TS, nullable=False, index=True),
        sa.Column("outcomes", sa.JSON, nullable=False),
    )
    op.create_table(
        "enrollment",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("workflow_id", sa.String(128), nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("enrollment_number", sa.Integer, nullable=False),
        sa.Column("enrolled_at", TS, nullable=False),
        sa.Column("trigger", sa.String(200), nullable=False),
        sa.Column("trigger_event_id", sa.String(200), nullable=False, index=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("run_workflow_id", sa.String(400), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("unenroll_reason", sa.String(64), nullable=False),
        sa.UniqueConstraint(
            "tenant_id", "workflow_id", "object_type", "record_id", "enrollment_number",
            name="uq_enrollment_number",
        ),
    )
    op.create_index(
        "ix_enrollment_record", "enrollment", ["tenant_id", "object_type", "record_id", "status"]
    )
    op.create_index("ix_enrollment_status", "enrollment", ["status", "enrolled_at"])
    op.create_table(
        "enrollment_fact",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("workflow_id", sa.String(128), primary_key=True),
        sa.Column("object_type", sa.String(64), primary_key=True),
        sa.Column("record_id", sa.String(128), primary_key=True),
        sa.Column("first_enrolled_at", TS, nullable=False),
        sa.Column("last_enrolled_at", TS, nullable=False, index=True),
        sa.Column("enrollment_count", sa.Integer, nullable=False),
        sa.Column("last_number", sa.Integer, nullable=False),
    )
    op.create_table(
        "event_occurrence",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("event_key", sa.String(300), primary_key=True),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(128), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
    )
    op.create_index(
        "ix_occurrence_key",
        "event_occurrence",
        ["tenant_id", "object_type", "record_id", "event_key"],
    )


def downgrade() -> None:
    for t in ("event_occurrence", "enrollment_fact", "enrollment", "processed_event",
              "active_revision"):
        op.drop_table(t)
