"""editor-api's own tables, and ``migrate(url)`` (Alembic, see ``migrations/``).

Every table is prefixed ``editor_`` and the Alembic version table is ``editor_alembic_version``:
with ``CRMFLOW_DATABASE_URL`` set, all services share one database and must not collide.
Definitions are stored as JSON text (the pydantic model's canonical JSON): the draft is edited
as a whole document, so a document column is the natural unit for optimistic concurrency.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Column, Index, Text, UniqueConstraint
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from crmflow.db import create_engine

VERSION_TABLE = "editor_alembic_version"
MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    return datetime.now(UTC)


class WorkflowRow(SQLModel, table=True):
    """One workflow: its editable draft plus status. ``draft_revision`` guards every edit."""

    __tablename__ = "editor_workflows"
    __table_args__ = (
        UniqueConstraint("tenant_id", "workflow_id", name="uq_editor_workflows_tenant_wf"),
        Index("ix_editor_workflows_tenant_status", "tenant_id", "status"),
    )

    pk: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(max_length=64)
    workflow_id: str = Field(max_length=64)
    name: str = Field(default="", max_length=512)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    folder: str = Field(default="", max_length=256)
    object_type: str = Field(max_length=128)
    status: str = Field(max_length=32)
    draft: str = Field(sa_column=Column(Text, nullable=False))
    draft_revision: int = 1
    published_revision: int = 0
    # draft_revision at the latest publish: tells whether the draft has unpublished changes.
    published_draft_revision: int = 0
    created_by: str = Field(default="", max_length=256)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class PublishedRevisionRow(SQLModel, table=True):
    """Immutable: written once at publish, never updated (enrollments pin these)."""

    __tablename__ = "editor_published_revisions"

    tenant_id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(primary_key=True, max_length=64)
    revision: int = Field(primary_key=True)
    published_at: datetime
    published_by: str = Field(default="", max_length=256)
    enroll_existing: bool = False
    definition: str = Field(sa_column=Column(Text, nullable=False))


class ChangeRow(SQLModel, table=True):
    """One draft change for undo/redo (30-day window). ``before``/``after`` hold the two
    halves of a patch (see ``editor_api.changes``), not whole drafts."""

    __tablename__ = "editor_changes"
    __table_args__ = (
        Index("ix_editor_changes_wf", "tenant_id", "workflow_id", "pk"),
        # Covers the undo/redo look-ups and counts: without it SQLite reads every change's
        # before/after documents (overflow pages) just to test created_at.
        Index("ix_editor_changes_state", "tenant_id", "workflow_id", "undone", "created_at"),
    )

    pk: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(max_length=64)
    workflow_id: str = Field(max_length=64)
    operation: str = Field(max_length=64)
    actor: str = Field(default="", max_length=256)
    before: str = Field(sa_column=Column(Text, nullable=False))
    after: str = Field(sa_column=Column(Text, nullable=False))
    # Why it cannot be undone/redone ("" = it can): custom-code actions.
    irreversible_reason: str = Field(default="", sa_column=Column(Text, nullable=False))
    undone: bool = False
    created_at: datetime = Field(default_factory=utcnow)


class AuditRow(SQLModel, table=True):
    """Who changed what, when. Kept when the workflow is deleted."""

    __tablename__ = "editor_audit_log"
    __table_args__ = (Index("ix_editor_audit_wf", "tenant_id", "workflow_id", "pk"),)

    pk: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(max_length=64)
    workflow_id: str = Field(max_length=64)
    actor: str = Field(default="", max_length=256)
    at: datetime = Field(default_factory=utcnow)
    operation: str = Field(max_length=64)
    summary: str = Field(default="", sa_column=Column(Text, nullable=False))
    draft_revision: int = 0


class TenantPlanRow(SQLModel, table=True):
    """A tenant's entitlements. No row = unrestricted (single-tenant installs)."""

    __tablename__ = "editor_tenant_plans"

    tenant_id: str = Field(primary_key=True, max_length=64)
    plan_name: str = Field(default="", max_length=128)
    # JSON arrays of strings.
    features: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    locked_action_types: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    locked_trigger_kinds: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    max_workflows: int = 0


class HandoffRow(SQLModel, table=True):
    """Outbox of hand-offs to enrollment (activate a revision / deactivate a workflow).

    Written in the same transaction as the status change, deleted once enrollment acknowledged
    it; a background task retries what is left. At most one row per workflow: the newest
    intent replaces an older undelivered one.
    """

    __tablename__ = "editor_handoffs"

    tenant_id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)  # "activate" | "deactivate"
    revision: int = 0
    # activate: enroll existing records; deactivate: unenroll the records enrolled now.
    enroll_existing: bool = False
    attempts: int = 0
    last_error: str = Field(default="", sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    next_attempt_at: datetime = Field(default_factory=utcnow)


def _alembic_upgrade(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def migrate(url: str) -> None:
    """Bring the database at ``url`` to the latest schema (idempotent)."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_alembic_upgrade)
    finally:
        await engine.dispose()


def migrate_sync(url: str) -> None:
    asyncio.run(migrate(url))
