"""The enrollment service's own tables (tenant_id on every row).

* ``active_revision`` — the published revision each workflow runs (and whether it is on); loaded
  into the trigger index at start-up.
* ``processed_event`` — event ids already handled (redelivery is harmless) with the outcome we
  reported, so a duplicate gets the same answer.
* ``enrollment`` — the ledger: one row per enrollment, written BEFORE its Temporal workflow is
  started (a recovery sweep starts rows left ``pending`` by a crash). History: pruned 6 months
  after it ended.
* ``enrollment_fact`` — "record R has been enrolled in workflow W" (first/last time, count, last
  enrollment number): decides first-enrollment-only and the next enrollment number, and outlives
  the history (2 years by default).
* ``event_occurrence`` — per-record event counts for "at least / at most N times" refinements.
* ``time_recheck`` — per workflow, the instant through which time-relative criteria were last
  re-checked (the next sweep enrolls records that crossed a boundary after it).
* ``pending_fact_change`` — an outbox: an unenrollment or an ended run whose "enrolled in X"
  change other workflows read, written in the same transaction as the status change and
  deleted once its cascade ran; the recovery loop replays what a crash left behind.
* ``sweep_watermark`` — per background sweep (``ended_runs``), the instant from which its next
  look starts, so a restart resumes where the last complete pass left off.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata


def _ts(**kw: Any) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), **kw))


class ActiveRevision(SQLModel, table=True):
    __tablename__ = "active_revision"

    tenant_id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(primary_key=True, max_length=128)
    revision: int
    object_type: str = Field(max_length=64)
    enabled: bool = True
    definition: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    published_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)


class ProcessedEvent(SQLModel, table=True):
    __tablename__ = "processed_event"

    tenant_id: str = Field(primary_key=True, max_length=64)
    event_id: str = Field(primary_key=True, max_length=200)
    processed_at: datetime = _ts(nullable=False, index=True)
    outcomes: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))


class EnrollmentRow(SQLModel, table=True):
    __tablename__ = "enrollment"
    __table_args__ = (
        # The same enrollment number twice is impossible: the guard against enrolling a record
        # twice at once across concurrent requests and replicas.
        UniqueConstraint(
            "tenant_id",
            "workflow_id",
            "object_type",
            "record_id",
            "enrollment_number",
            name="uq_enrollment_number",
        ),
        Index("ix_enrollment_record", "tenant_id", "object_type", "record_id", "status"),
        Index("ix_enrollment_status", "status", "enrolled_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(max_length=64)
    workflow_id: str = Field(max_length=128)
    revision: int
    object_type: str = Field(max_length=64)
    record_id: str = Field(max_length=128)
    enrollment_number: int
    enrolled_at: datetime = _ts(nullable=False)
    trigger: str = Field(default="", max_length=200)
    trigger_event_id: str = Field(default="", max_length=200, index=True)
    outcome: str = Field(default="enrolled", max_length=32)
    run_workflow_id: str = Field(max_length=400)
    # pending (ledger written, workflow not yet started) | running | ended | unenrolled
    status: str = Field(default="pending", max_length=16)
    ended_at: datetime | None = _ts(nullable=True)
    unenroll_reason: str = Field(default="", max_length=64)


class EnrollmentFact(SQLModel, table=True):
    __tablename__ = "enrollment_fact"
    # "which workflows has this record been enrolled in" (virtual @enrollment properties)
    __table_args__ = (Index("ix_fact_record", "tenant_id", "object_type", "record_id"),)

    tenant_id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(primary_key=True, max_length=128)
    object_type: str = Field(primary_key=True, max_length=64)
    record_id: str = Field(primary_key=True, max_length=128)
    first_enrolled_at: datetime = _ts(nullable=False)
    last_enrolled_at: datetime = _ts(nullable=False, index=True)
    enrollment_count: int = 0
    last_number: int = 0


class EventOccurrence(SQLModel, table=True):
    __tablename__ = "event_occurrence"
    __table_args__ = (
        Index("ix_occurrence_key", "tenant_id", "object_type", "record_id", "event_key"),
    )

    tenant_id: str = Field(primary_key=True, max_length=64)
    event_id: str = Field(primary_key=True, max_length=200)
    event_key: str = Field(primary_key=True, max_length=300)
    object_type: str = Field(max_length=64)
    record_id: str = Field(max_length=128)
    occurred_at: datetime = _ts(nullable=False)


class TimeRecheck(SQLModel, table=True):
    __tablename__ = "time_recheck"

    tenant_id: str = Field(primary_key=True, max_length=64)
    workflow_id: str = Field(primary_key=True, max_length=128)
    revision: int
    checked_until: datetime = _ts(nullable=False)


class PendingFactChange(SQLModel, table=True):
    __tablename__ = "pending_fact_change"

    tenant_id: str = Field(primary_key=True, max_length=64)
    # FactChange.change_id: the synthetic event's id, so a replay is deduplicated
    change_id: str = Field(primary_key=True, max_length=200)
    object_type: str = Field(max_length=64)
    record_id: str = Field(max_length=128)
    workflow_id: str = Field(max_length=128)
    old: str | None = Field(default=None, max_length=16)
    new: str | None = Field(default=None, max_length=16)
    run_workflow_id: str = Field(max_length=400)
    created_at: datetime = _ts(nullable=False, index=True)


class SweepWatermark(SQLModel, table=True):
    __tablename__ = "sweep_watermark"

    name: str = Field(primary_key=True, max_length=64)
    since: datetime = _ts(nullable=False)
