"""association label index for paged list_associations

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 19:50:00

``list_associations`` pages by the associated record id (keyset). Without a label the primary
key (tenant, from_type, from_id, to_type, to_id, label) serves that order; with a label it
would scan every other label's rows as well, so (tenant, from_type, from_id, to_type, label,
to_id) serves a label's page as a range scan.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crm_association", schema=None) as batch_op:
        batch_op.create_index(
            "ix_crm_association_label",
            ["tenant_id", "from_type", "from_id", "to_type", "label", "to_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("crm_association", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_association_label")
