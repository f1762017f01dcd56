"""The executor's own tables: run history, action log, dedupe keys, notifications, rotation."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, Text
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


def _ts(nullable: bool = False, index: bool = False) -> Any:
    return Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=nullable, index=index)
    )


class EnrollmentRun(SQLModel, table=True):
    __tablename__ = "executor_enrollment_runs"
    __table_args__ = (Index("ix_executor_runs_list", "tenant_id", "workflow_id", "enrolled_at"),)

    tenant_id: str = Field(primary_key=True)
    run_workflow_id: str = Field(primary_key=True)
    workflow_id: str
    revision: int
    object_type: str
    record_id: str
    enrollment_number: int = 1
    status: str = Field(index=True)
    current_step: str = ""
    reason: str = ""
    enrolled_at: datetime = _ts()
    updated_at: datetime = _ts()
    ended_at: datetime | None = _ts(nullable=True, index=True)


class ActionLog(SQLModel, table=True):
    """One action outcome (succeeded / failed / skipped) of one visit of one enrollment."""

    __tablename__ = "executor_action_log"
    __table_args__ = (Index("ix_executor_action_log_run", "tenant_id", "run_workflow_id"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    run_workflow_id: str
    action_id: str
    action_type: str
    visit: int = 1
    status: str
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    attempts: int = 1
    started_at: datetime | None = _ts(nullable=True)
    finished_at: datetime | None = _ts(nullable=True)
    outputs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    idempotency_key: str = ""
    created_at: datetime = _ts(index=True)


class AttemptError(SQLModel, table=True):
    """A failed attempt of an activity (the timeline shows retries, not just the last word)."""

    __tablename__ = "executor_attempt_errors"

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str
    idempotency_key: str = Field(index=True)
    attempt: int
    error: str = Field(sa_column=Column(Text, nullable=False))
    at: datetime = _ts(index=True)


class SideEffect(SQLModel, table=True):
    """A side effect that completed: a retry or a resumed worker returns this, never redoes it."""

    __tablename__ = "executor_side_effects"

    idempotency_key: str = Field(primary_key=True)
    tenant_id: str
    result: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = _ts(index=True)


class Notification(SQLModel, table=True):
    __tablename__ = "executor_notifications"
    __table_args__ = (
        Index("ix_executor_notifications_user", "tenant_id", "user_id", "created_at"),
    )

    notification_id: str = Field(primary_key=True)
    tenant_id: str
    user_id: str
    title: str
    body: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    link: str = ""
    workflow_id: str = ""
    record_id: str = ""
    object_type: str = ""
    idempotency_key: str = Field(unique=True)
    created_at: datetime = _ts(index=True)


class RotationCounter(SQLModel, table=True):
    """Round-robin position per (tenant, rotation key): persisted so every worker agrees."""

    __tablename__ = "executor_rotation_counters"

    tenant_id: str = Field(primary_key=True)
    rotation_key: str = Field(primary_key=True)
    next_index: int = 0


class RotationAssignment(SQLModel, table=True):
    __tablename__ = "executor_rotation_assignments"

    idempotency_key: str = Field(primary_key=True)
    tenant_id: str
    owner_id: str
    created_at: datetime = _ts(index=True)
