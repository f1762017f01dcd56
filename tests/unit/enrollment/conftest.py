"""The enrollment core on a real SQLite ledger and a real embedded CRM store.

Temporal is replaced by a recording starter: these tests are about the rules, not about
Temporal (the integration tests start real workflows).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from enrollment.db import migrate
from enrollment.enroller import Enroller
from enrollment.ingest import Ingestor
from enrollment.ledger import Ledger
from enrollment.trigger_index import TriggerIndex
from enrollment.workflows import ActiveWorkflows

from crmflow.db import create_engine, session_factory
from crmflow.model.enrollment import EnrollmentInput, RecordEventSignal, UnenrollSignal
from crmflow.model.records import ChangeEvent, ChangeEventType, PropertyChange
from crmflow.model.workflow import PublishedRevision, WorkflowDefinition
from crmflow.records.sql import SqlRecordStore

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@dataclass
class RecordingStarter:
    """Stands in for Temporal: starts are idempotent by id, like USE_EXISTING/REJECT_DUPLICATE."""

    runs: dict[str, str] = field(default_factory=dict)  # id -> running | closed
    inputs: dict[str, EnrollmentInput] = field(default_factory=dict)
    starts: list[str] = field(default_factory=list)
    signals: list[tuple[str, str]] = field(default_factory=list)
    events: list[tuple[str, str]] = field(default_factory=list)
    fail: bool = False

    async def start(self, run_id: str, inp: EnrollmentInput) -> bool:
        if self.fail:
            raise ConnectionError("temporal is down")
        self.starts.append(run_id)
        if run_id not in self.runs:
            self.runs[run_id] = "running"
            self.inputs[run_id] = inp
        return True

    async def is_running(self, run_id: str) -> bool | None:
        state = self.runs.get(run_id)
        return None if state is None else state == "running"

    async def unenroll(self, run_id: str, signal: UnenrollSignal) -> bool:
        if self.runs.get(run_id) != "running":
            return False
        self.signals.append((run_id, signal.reason.value))
        self.runs[run_id] = "closed"
        return True

    async def record_event(self, run_id: str, signal: RecordEventSignal) -> None:
        self.events.append((run_id, signal.event.event_id))

    def finish_all(self) -> None:
        for k in self.runs:
            self.runs[k] = "closed"

    def started(self) -> list[str]:
        return sorted(self.runs)


@dataclass
class Core:
    tenant: str
    index: TriggerIndex
    ledger: Ledger
    starter: RecordingStarter
    enroller: Enroller
    ingestor: Ingestor
    workflows: ActiveWorkflows
    records: SqlRecordStore
    clock: list[datetime]

    async def publish(
        self,
        workflow_id: str,
        enrollment: dict[str, Any],
        *,
        revision: int = 1,
        object_type: str = "contact",
    ) -> None:
        d = WorkflowDefinition.model_validate(
            {
                "workflow_id": workflow_id,
                "tenant_id": self.tenant,
                "object_type": object_type,
                "enrollment": enrollment,
            }
        )
        rev = PublishedRevision(
            tenant_id=self.tenant,
            workflow_id=workflow_id,
            revision=revision,
            published_at=T0,
            definition=d,
        )
        await self.workflows.activate(rev, enroll_existing=False, now=self.clock[0])

    def event(
        self,
        record_id: str,
        changes: dict[str, tuple[Any, Any]] | None = None,
        *,
        kind: ChangeEventType = ChangeEventType.RECORD_UPDATED,
        snapshot: dict[str, Any] | None = None,
        event_id: str | None = None,
        occurred_at: datetime | None = None,
        **extra: Any,
    ) -> ChangeEvent:
        return ChangeEvent(
            event_id=event_id or uuid.uuid4().hex,
            tenant_id=self.tenant,
            event_type=kind,
            object_type=extra.pop("object_type", "contact"),
            record_id=record_id,
            occurred_at=occurred_at or self.clock[0],
            changes=[
                PropertyChange(property=p, old_value=o, new_value=n)
                for p, (o, n) in (changes or {}).items()
            ],
            properties=snapshot or {},
            **extra,
        )

    async def ingest(self, ev: ChangeEvent) -> list[tuple[str, str]]:
        _, outcomes = await self.ingestor.ingest(ev)
        return [(o.workflow_id, o.outcome) for o in outcomes]

    def tick(self, **delta: float) -> None:
        self.clock[0] += timedelta(**delta)


@pytest.fixture
async def core(tmp_path: Path, db_url: str) -> AsyncIterator[Core]:
    """Parametrised over SQLite and PostgreSQL for the ledger (the CRM store stays SQLite)."""
    url = db_url
    await migrate(url)
    engine = create_engine(url)
    records = await SqlRecordStore.open(f"sqlite+aiosqlite:///{tmp_path / 'crm.db'}")
    clock = [T0]
    ledger = Ledger(session_factory(engine))
    starter = RecordingStarter()
    index = TriggerIndex()
    enroller = Enroller(
        ledger=ledger,
        starter=starter,
        records=records,  # type: ignore[arg-type]
        clock=lambda: clock[0],
    )
    workflows = ActiveWorkflows(index=index, ledger=ledger, enroller=enroller)
    ingestor = Ingestor(index=index, enroller=enroller)
    try:
        yield Core(
            f"t{uuid.uuid4().hex[:6]}",
            index,
            ledger,
            starter,
            enroller,
            ingestor,
            workflows,
            records,
            clock,
        )
    finally:
        await records.close()
        await ledger.close()
        await engine.dispose()
