"""The enrollment ledger and its neighbours (processed events, event counts), in our own DB.

Keyword-only functions over an async session factory. The ledger row of an enrollment is
written (status ``pending``) and committed before its Temporal workflow is started; the unique
enrollment number makes a second concurrent enrollment of the same record impossible.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from crmflow.model.criteria import CURRENT, PAST, enrollment_property
from enrollment.tables import (
    ActiveRevision,
    EnrollmentFact,
    EnrollmentRow,
    EventOccurrence,
    ProcessedEvent,
    TimeRecheck,
)

ACTIVE = ("pending", "running")

Sessions = async_sessionmaker[AsyncSession]


class Ledger:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        bind = sessions.kw.get("bind")
        sqlite = bind is not None and bind.dialect.name == "sqlite"
        # SQLite has one writer; concurrent writers wait in its busy handler, which sleeps in
        # growing steps (tens of ms). One in-process writer at a time keeps latency flat.
        self._writing: Any = asyncio.Lock() if sqlite else contextlib.nullcontext()

    def writing(self) -> Any:
        """Hold around a write transaction (a no-op on PostgreSQL)."""
        return self._writing

    # Active revisions -------------------------------------------------------------------
    async def save_revision(self, row: ActiveRevision) -> None:
        async with self.writing(), self.sessions() as s:
            await s.merge(row)
            await s.commit()

    async def set_enabled(
        self, tenant_id: str, workflow_id: str, enabled: bool, now: datetime
    ) -> bool:
        async with self.writing(), self.sessions() as s:
            res = await s.execute(
                update(ActiveRevision)
                .where(
                    col(ActiveRevision.tenant_id) == tenant_id,
                    col(ActiveRevision.workflow_id) == workflow_id,
                )
                .values(enabled=enabled, updated_at=now)
            )
            await s.commit()
            return bool(res.rowcount)  # type: ignore[attr-defined]

    async def revisions(self) -> Sequence[ActiveRevision]:
        async with self.sessions() as s:
            return (await s.exec(select(ActiveRevision))).all()

    # Enrollments ------------------------------------------------------------------------
    async def current(
        self, *, tenant_id: str, workflow_id: str, object_type: str, record_id: str
    ) -> EnrollmentRow | None:
        """The record's active (pending or running) enrollment in the workflow, if any."""
        async with self.sessions() as s:
            q = (
                select(EnrollmentRow)
                .where(
                    EnrollmentRow.tenant_id == tenant_id,
                    EnrollmentRow.workflow_id == workflow_id,
                    EnrollmentRow.object_type == object_type,
                    EnrollmentRow.record_id == record_id,
                    col(EnrollmentRow.status).in_(ACTIVE),
                )
                .order_by(col(EnrollmentRow.enrollment_number).desc())
            )
            return (await s.exec(q)).first()

    async def enroll_state(
        self,
        *,
        tenant_id: str,
        workflow_id: str,
        object_type: str,
        record_id: str,
        event_id: str = "",
    ) -> tuple[EnrollmentRow | None, EnrollmentRow | None, EnrollmentFact | None]:
        """(row enrolled by this event, active row, fact) in one session: what the rules read.

        One query finds both the active row and a row this event created (a redelivery after
        a crash), since both are rows of the same record in the same workflow."""
        async with self.sessions() as s:
            wanted: Any = col(EnrollmentRow.status).in_(ACTIVE)
            if event_id:
                wanted = or_(wanted, col(EnrollmentRow.trigger_event_id) == event_id)
            rows = (
                await s.exec(
                    select(EnrollmentRow)
                    .where(
                        EnrollmentRow.tenant_id == tenant_id,
                        EnrollmentRow.workflow_id == workflow_id,
                        EnrollmentRow.object_type == object_type,
                        EnrollmentRow.record_id == record_id,
                        wanted,
                    )
                    .order_by(col(EnrollmentRow.enrollment_number).desc())
                )
            ).all()
            prior = next((r for r in rows if event_id and r.trigger_event_id == event_id), None)
            current = next((r for r in rows if r.status in ACTIVE), None)
            fact = await s.get(EnrollmentFact, (tenant_id, workflow_id, object_type, record_id))
            return prior, current, fact

    async def fact(
        self, *, tenant_id: str, workflow_id: str, object_type: str, record_id: str
    ) -> EnrollmentFact | None:
        async with self.sessions() as s:
            return await s.get(EnrollmentFact, (tenant_id, workflow_id, object_type, record_id))

    async def by_trigger_event(
        self, *, tenant_id: str, workflow_id: str, record_id: str, event_id: str
    ) -> EnrollmentRow | None:
        async with self.sessions() as s:
            q = select(EnrollmentRow).where(
                EnrollmentRow.tenant_id == tenant_id,
                EnrollmentRow.workflow_id == workflow_id,
                EnrollmentRow.record_id == record_id,
                EnrollmentRow.trigger_event_id == event_id,
            )
            return (await s.exec(q)).first()

    async def reserve(
        self,
        *,
        tenant_id: str,
        workflow_id: str,
        revision: int,
        object_type: str,
        record_id: str,
        trigger: str,
        event_id: str,
        now: datetime,
        run_id_for: Any,
    ) -> EnrollmentRow | None:
        """Write the next enrollment (status pending) and bump the fact, atomically.

        Returns None when another enrollment took that number first (never twice at once).
        ``run_id_for(number)`` gives the deterministic Temporal workflow id.
        """
        async with self.writing(), self.sessions() as s:
            fact = await s.get(EnrollmentFact, (tenant_id, workflow_id, object_type, record_id))
            number = (fact.last_number if fact else 0) + 1
            row = EnrollmentRow(
                tenant_id=tenant_id,
                workflow_id=workflow_id,
                revision=revision,
                object_type=object_type,
                record_id=record_id,
                enrollment_number=number,
                enrolled_at=now,
                trigger=trigger,
                trigger_event_id=event_id,
                run_workflow_id=run_id_for(number),
                status="pending",
            )
            s.add(row)
            if fact is None:
                s.add(
                    EnrollmentFact(
                        tenant_id=tenant_id,
                        workflow_id=workflow_id,
                        object_type=object_type,
                        record_id=record_id,
                        first_enrolled_at=now,
                        last_enrolled_at=now,
                        enrollment_count=1,
                        last_number=number,
                    )
                )
            else:
                fact.last_enrolled_at = now
                fact.enrollment_count += 1
                fact.last_number = number
                s.add(fact)
            try:
                await s.commit()
            except IntegrityError:
                await s.rollback()
                return None
            return row

    async def set_status(
        self, row_id: int, status: str, *, now: datetime | None = None, reason: str = ""
    ) -> None:
        values: dict[str, Any] = {"status": status}
        if status in ("ended", "unenrolled"):
            values["ended_at"] = now
        if reason:
            values["unenroll_reason"] = reason
        async with self.writing(), self.sessions() as s:
            await s.execute(
                update(EnrollmentRow).where(col(EnrollmentRow.id) == row_id).values(**values)
            )
            await s.commit()

    async def active_for_record(
        self, *, tenant_id: str, object_type: str, record_id: str
    ) -> Sequence[EnrollmentRow]:
        async with self.sessions() as s:
            q = select(EnrollmentRow).where(
                EnrollmentRow.tenant_id == tenant_id,
                EnrollmentRow.object_type == object_type,
                EnrollmentRow.record_id == record_id,
                col(EnrollmentRow.status).in_(ACTIVE),
            )
            return (await s.exec(q)).all()

    async def active_in_workflow(
        self, *, tenant_id: str, workflow_id: str, limit: int = 1000, after_id: int = 0
    ) -> Sequence[EnrollmentRow]:
        """Active rows of a workflow by id, from ``after_id`` on (a cursor for paging)."""
        async with self.sessions() as s:
            q = (
                select(EnrollmentRow)
                .where(
                    EnrollmentRow.tenant_id == tenant_id,
                    EnrollmentRow.workflow_id == workflow_id,
                    col(EnrollmentRow.status).in_(ACTIVE),
                    col(EnrollmentRow.id) > after_id,
                )
                .order_by(col(EnrollmentRow.id))
                .limit(limit)
            )
            return (await s.exec(q)).all()

    async def pending_before(self, before: datetime, limit: int = 500) -> Sequence[EnrollmentRow]:
        """Ledger rows whose workflow start may have been lost (crash between write and start)."""
        async with self.sessions() as s:
            q = (
                select(EnrollmentRow)
                .where(EnrollmentRow.status == "pending", col(EnrollmentRow.enrolled_at) < before)
                .order_by(col(EnrollmentRow.id))
                .limit(limit)
            )
            return (await s.exec(q)).all()

    async def history(
        self, *, tenant_id: str, workflow_id: str, record_id: str
    ) -> Sequence[EnrollmentRow]:
        async with self.sessions() as s:
            q = (
                select(EnrollmentRow)
                .where(
                    EnrollmentRow.tenant_id == tenant_id,
                    EnrollmentRow.workflow_id == workflow_id,
                    EnrollmentRow.record_id == record_id,
                )
                .order_by(col(EnrollmentRow.enrollment_number))
            )
            return (await s.exec(q)).all()

    async def event_state(
        self, *, tenant_id: str, event_id: str, object_type: str, record_id: str
    ) -> tuple[list[dict[str, Any]] | None, list[EnrollmentRow]]:
        """(outcomes if the event was processed, the record's active enrollments) at once."""
        async with self.sessions() as s:
            done = await s.get(ProcessedEvent, (tenant_id, event_id))
            if done is not None:
                return list(done.outcomes), []
            rows = (
                await s.exec(
                    select(EnrollmentRow).where(
                        EnrollmentRow.tenant_id == tenant_id,
                        EnrollmentRow.object_type == object_type,
                        EnrollmentRow.record_id == record_id,
                        col(EnrollmentRow.status).in_(ACTIVE),
                    )
                )
            ).all()
            return None, list(rows)

    # Enrollment facts as virtual properties ("has been enrolled in workflow X") -----------
    async def record_facts(
        self,
        *,
        tenant_id: str,
        object_type: str,
        record_ids: Sequence[str],
        workflow_ids: Sequence[str] = (),
    ) -> tuple[dict[str, list[EnrollmentFact]], dict[str, list[EnrollmentRow]]]:
        """(facts, active rows) per record id, in one session (optionally of some workflows)."""
        facts: dict[str, list[EnrollmentFact]] = {r: [] for r in record_ids}
        active: dict[str, list[EnrollmentRow]] = {r: [] for r in record_ids}
        if not record_ids:
            return facts, active
        async with self.sessions() as s:
            fq = select(EnrollmentFact).where(
                EnrollmentFact.tenant_id == tenant_id,
                EnrollmentFact.object_type == object_type,
                col(EnrollmentFact.record_id).in_(list(record_ids)),
            )
            aq = select(EnrollmentRow).where(
                EnrollmentRow.tenant_id == tenant_id,
                EnrollmentRow.object_type == object_type,
                col(EnrollmentRow.record_id).in_(list(record_ids)),
                col(EnrollmentRow.status).in_(ACTIVE),
            )
            if workflow_ids:
                fq = fq.where(col(EnrollmentFact.workflow_id).in_(list(workflow_ids)))
                aq = aq.where(col(EnrollmentRow.workflow_id).in_(list(workflow_ids)))
            for f in (await s.exec(fq.order_by(col(EnrollmentFact.workflow_id)))).all():
                if f.enrollment_count > 0:
                    facts[f.record_id].append(f)
            for r in (await s.exec(aq)).all():
                active[r.record_id].append(r)
        return facts, active

    async def fact_properties(
        self, *, tenant_id: str, object_type: str, record_ids: Sequence[str]
    ) -> dict[str, dict[str, str]]:
        """Per record: ``@enrollment:<workflow>`` -> "current" (pending/running enrollment) or
        "past" (enrolled before, within the facts' retention); never enrolled: absent."""
        facts, active = await self.record_facts(
            tenant_id=tenant_id, object_type=object_type, record_ids=record_ids
        )
        return {rid: virtual_properties(facts[rid], active[rid]) for rid in record_ids}

    # Time-relative criteria re-check watermark ----------------------------------------------
    async def recheck_watermark(
        self, *, tenant_id: str, workflow_id: str, revision: int
    ) -> datetime | None:
        """Through when this revision's time-relative criteria were re-checked (None: never)."""
        async with self.sessions() as s:
            row = await s.get(TimeRecheck, (tenant_id, workflow_id))
            if row is None or row.revision != revision:
                return None
            at = row.checked_until  # SQLite hands back naive datetimes; we store UTC
            return at if at.tzinfo else at.replace(tzinfo=UTC)

    async def set_recheck_watermark(
        self, *, tenant_id: str, workflow_id: str, revision: int, checked_until: datetime
    ) -> None:
        async with self.writing(), self.sessions() as s:
            row = await s.get(TimeRecheck, (tenant_id, workflow_id))
            if row is None:
                row = TimeRecheck(
                    tenant_id=tenant_id,
                    workflow_id=workflow_id,
                    revision=revision,
                    checked_until=checked_until,
                )
            else:
                row.revision = revision
                row.checked_until = checked_until
            s.add(row)
            await s.commit()

    # Processed events ---------------------------------------------------------------------
    async def processed(self, tenant_id: str, event_id: str) -> list[dict[str, Any]] | None:
        async with self.sessions() as s:
            row = await s.get(ProcessedEvent, (tenant_id, event_id))
            return None if row is None else list(row.outcomes)

    async def mark_processed(
        self,
        tenant_id: str,
        event_id: str,
        outcomes: list[dict[str, Any]],
        now: datetime,
        *,
        running_ids: Sequence[int] = (),
    ) -> None:
        """Remember the event, and in the same transaction mark the enrollments it started as
        running (one write per event instead of one per start; a crash in between leaves them
        pending, which the recovery sweep resolves without a duplicate)."""
        async with self.writing(), self.sessions() as s:
            if running_ids:
                await s.execute(
                    update(EnrollmentRow)
                    .where(
                        col(EnrollmentRow.id).in_(list(running_ids)),
                        col(EnrollmentRow.status) == "pending",
                    )
                    .values(status="running")
                )
            s.add(
                ProcessedEvent(
                    tenant_id=tenant_id, event_id=event_id, processed_at=now, outcomes=outcomes
                )
            )
            try:
                await s.commit()
            except IntegrityError:  # a concurrent redelivery finished first: same effect
                await s.rollback()
                if running_ids:
                    await self.set_many_running(running_ids)

    async def set_many_running(self, ids: Sequence[int]) -> None:
        async with self.writing(), self.sessions() as s:
            await s.execute(
                update(EnrollmentRow)
                .where(col(EnrollmentRow.id).in_(list(ids)), col(EnrollmentRow.status) == "pending")
                .values(status="running")
            )
            await s.commit()

    # Event counts (refinements) -------------------------------------------------------------
    async def count_occurrence(
        self,
        *,
        tenant_id: str,
        object_type: str,
        record_id: str,
        event_key: str,
        event_id: str,
        occurred_at: datetime,
        window_start: datetime | None,
        window_end: datetime | None,
    ) -> int:
        """Record this occurrence (idempotent by event id) and count them in the window."""
        async with self.writing(), self.sessions() as s:
            if await s.get(EventOccurrence, (tenant_id, event_id, event_key)) is None:
                s.add(
                    EventOccurrence(
                        tenant_id=tenant_id,
                        event_id=event_id,
                        event_key=event_key,
                        object_type=object_type,
                        record_id=record_id,
                        occurred_at=occurred_at,
                    )
                )
                try:
                    await s.commit()
                except IntegrityError:
                    await s.rollback()
            q = (
                select(func.count())
                .select_from(EventOccurrence)
                .where(
                    EventOccurrence.tenant_id == tenant_id,
                    EventOccurrence.object_type == object_type,
                    EventOccurrence.record_id == record_id,
                    EventOccurrence.event_key == event_key,
                )
            )
            if window_start is not None:
                q = q.where(col(EventOccurrence.occurred_at) >= window_start)
            if window_end is not None:
                q = q.where(col(EventOccurrence.occurred_at) <= window_end)
            return int((await s.exec(q)).one())

    # Retention ---------------------------------------------------------------------------
    async def prune(
        self, *, history_before: datetime, facts_before: datetime, events_before: datetime
    ) -> dict[str, int]:
        """Drop ended history, stale facts and old dedupe/occurrence rows."""
        async with self.writing(), self.sessions() as s:
            h = await s.execute(
                delete(EnrollmentRow).where(
                    col(EnrollmentRow.status).in_(("ended", "unenrolled")),
                    or_(
                        col(EnrollmentRow.ended_at) < history_before,
                        col(EnrollmentRow.ended_at).is_(None)
                        & (col(EnrollmentRow.enrolled_at) < history_before),
                    ),
                )
            )
            f = await s.execute(
                delete(EnrollmentFact).where(col(EnrollmentFact.last_enrolled_at) < facts_before)
            )
            p = await s.execute(
                delete(ProcessedEvent).where(col(ProcessedEvent.processed_at) < events_before)
            )
            o = await s.execute(
                delete(EventOccurrence).where(col(EventOccurrence.occurred_at) < facts_before)
            )
            await s.commit()
            return {
                "history": h.rowcount,  # type: ignore[attr-defined]
                "facts": f.rowcount,  # type: ignore[attr-defined]
                "processed_events": p.rowcount,  # type: ignore[attr-defined]
                "occurrences": o.rowcount,  # type: ignore[attr-defined]
            }


def virtual_properties(
    facts: Sequence[EnrollmentFact], active: Sequence[EnrollmentRow]
) -> dict[str, str]:
    """The ``@enrollment:<workflow>`` properties of one record (see crmflow.model.criteria)."""
    out = {enrollment_property(f.workflow_id): PAST for f in facts if f.enrollment_count > 0}
    for r in active:
        out[enrollment_property(r.workflow_id)] = CURRENT
    return out
