"""covering index for undo/redo look-ups

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 13:45:00
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_editor_changes_state",
        "editor_changes",
        ["tenant_id", "workflow_id", "undone", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_editor_changes_state", table_name="editor_changes")
