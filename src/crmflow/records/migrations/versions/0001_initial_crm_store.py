"""initial CRM store

Revision ID: 0001
Revises:
Create Date: 2026-11-29 13:29:14.702119
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "crm_association",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("from_type", sa.String(length=64), nullable=False),
        sa.Column("from_id", sa.String(length=64), nullable=False),
        sa.Column("to_type", sa.String(length=64), nullable=False),
        sa.Column("to_id", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "from_type", "from_id", "to_type", "to_id", "label"),
    )
    op.create_table(
        "crm_idempotency",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("record_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "key"),
    )
    op.create_table(
        "crm_list",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("list_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "list_id"),
    )
    op.create_table(
        "crm_list_member",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("list_id", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "list_id", "record_id"),
    )
    with op.batch_alter_table("crm_list_member", schema=None) as batch_op:
        batch_op.create_index("ix_crm_list_member_record", ["tenant_id", "record_id"], unique=False)

    op.create_table(
        "crm_object_type",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("primary_property", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "name"),
    )
    op.create_table(
        "crm_outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("event_id"),
    )
    with op.batch_alter_table("crm_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_crm_outbox_pending", ["delivered_at", "next_attempt_at"], unique=False
        )

    op.create_table(
        "crm_owner",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("email", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("member_ids", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "owner_id"),
    )
    op.create_table(
        "crm_property",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "object_type", "name"),
    )
    op.create_table(
        "crm_property_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("property", sa.String(length=64), nullable=False),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("crm_property_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_crm_history_record",
            ["tenant_id", "object_type", "record_id", "property"],
            unique=False,
        )

    op.create_table(
        "crm_record",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "object_type", "record_id"),
    )
    with op.batch_alter_table("crm_record", schema=None) as batch_op:
        batch_op.create_index(
            "ix_crm_record_created", ["tenant_id", "object_type", "created_at"], unique=False
        )

    op.create_table(
        "crm_subscription",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "contact_id"),
    )
    op.create_table(
        "crm_value",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=64), nullable=False),
        sa.Column("property", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=False),
        sa.Column("value_text", sa.String(length=1024), nullable=True),
        sa.Column("value_num", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("crm_value", schema=None) as batch_op:
        batch_op.create_index(
            "ix_crm_value_num",
            ["tenant_id", "object_type", "property", "value_num", "record_id"],
            unique=False,
        )
        batch_op.create_index(
            "ix_crm_value_record",
            ["tenant_id", "object_type", "record_id", "property"],
            unique=False,
        )
        batch_op.create_index(
            "ix_crm_value_text",
            ["tenant_id", "object_type", "property", "value_text", "record_id"],
            unique=False,
        )


def downgrade() -> None:

    with op.batch_alter_table("crm_value", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_value_text")
        batch_op.drop_index("ix_crm_value_record")
        batch_op.drop_index("ix_crm_value_num")

    op.drop_table("crm_value")
    op.drop_table("crm_subscription")
    with op.batch_alter_table("crm_record", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_record_created")

    op.drop_table("crm_record")
    with op.batch_alter_table("crm_property_history", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_history_record")

    op.drop_table("crm_property_history")
    op.drop_table("crm_property")
    op.drop_table("crm_owner")
    with op.batch_alter_table("crm_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_outbox_pending")

    op.drop_table("crm_outbox")
    op.drop_table("crm_object_type")
    with op.batch_alter_table("crm_list_member", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_list_member_record")

    op.drop_table("crm_list_member")
    op.drop_table("crm_list")
    op.drop_table("crm_idempotency")
    op.drop_table("crm_association")
