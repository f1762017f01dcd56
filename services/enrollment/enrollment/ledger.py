"""The enrollment ledger and its neighbours (processed events, event counts), in our own DB.

Keyword-only functions over an async session factory. The ledger row of an enrollment is
written (status ``pending``) and committed before its Temporal workflow is started; the unique
enrollment number makes a second concurrent enrollment of the same record impossible.

The operations on an ingested event's path (``event_state``, ``enroll_state``, ``reserve``,
``mark_processed``, ``set_status``, ``count_occurrence``, ``current``, ``record_facts``...) are
SQLAlchemy Core functions run by ``LedgerConn`` as ONE read or ONE write transaction each (one
trip to the database thread on SQLite); the rest (revisions, history, retention) uses ORM
sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import delete, func, or_, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from crmflow.model.criteria import CURRENT, PAST, enrollment_property
from enrollment.fact_change import FactChange
from enrollment.ledger_conn import LedgerConn
from enrollment.tables import (
    ActiveRevision,
    EnrollmentFact,
    EnrollmentRow,
    EventOccurrence,
    PendingFactChange,
    ProcessedEvent,
    SweepWatermark,
    TimeRecheck,
)

ACTIVE = ("pending", "running")

Sessions = async_sessionmaker[AsyncSession]

ROW = EnrollmentRow.__table__  # type: ignore[attr-defined]
FACT = EnrollmentFact.__table__  # type: ignore[attr-defined]
DONE = ProcessedEvent.__table__  # type: ignore[attr-defined]
OCCURRENCE = EventOccurrence.__table__  # type: ignore[attr-defined]
OUTBOX = PendingFactChange.__table__  # type: ignore[attr-defined]
WATERMARK = SweepWatermark.__table__  # type: ignore[attr-defined]

# The hot statements, built once with bindparams (no per-call statement building or cache keys).
_RECORD = (
    ROW.c.tenant_id == sa.bindparam("t"),
    ROW.c.object_type == sa.bindparam("ot"),
    ROW.c.record_id == sa.bindparam("rid"),
)
_IN_WORKFLOW = (*_RECORD, ROW.c.workflow_id == sa.bindparam("wf"))
PROCESSED_BY_ID = sa.select(DONE.c.outcomes).where(
    DONE.c.tenant_id == sa.bindparam("t"), DONE.c.event_id == sa.bindparam("e")
)
ACTIVE_OF_RECORD = sa.select(ROW).where(*_RECORD, ROW.c.status.in_(ACTIVE))
ACTIVE_IN_WORKFLOW = (
    sa.select(ROW)
    .where(*_IN_WORKFLOW, ROW.c.status.in_(ACTIVE))
    .order_by(ROW.c.enrollment_number.desc())
)
ACTIVE_OR_BY_EVENT = (
    sa.select(ROW)
    .where(
        *_IN_WORKFLOW,
        or_(ROW.c.status.in_(ACTIVE), ROW.c.trigger_event_id == sa.bindparam("e")),
    )
    .order_by(ROW.c.enrollment_number.desc())
)
FACT_BY_KEY = sa.select(FACT).where(
    FACT.c.tenant_id == sa.bindparam("t"),
    FACT.c.workflow_id == sa.bindparam("wf"),
    FACT.c.object_type == sa.bindparam("ot"),
    FACT.c.record_id == sa.bindparam("rid"),
)


def _enrollment(r: Any) -> EnrollmentRow:
    return EnrollmentRow(**r._mapping)


def _fact(r: Any) -> EnrollmentFact | None:
    return None if r is None else EnrollmentFact(**r._mapping)


def _insert_or_ignore(c: Connection, table: Any, values: dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING (SQLite and PostgreSQL spell it alike)."""
    ins = postgresql.insert if c.dialect.name == "postgresql" else sqlite_dialect.insert
    c.execute(ins(table).values(**values).on_conflict_do_nothing())


class _Conflict(Exception):
    """Another enrollment of the record moved its fact first (raised to roll back)."""


class Ledger:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        bind = sessions.kw.get("bind")
        assert bind is not None, "the session factory must be bound to the engine"
        self.conn = LedgerConn(bind)
        sqlite = bind is not None and bind.dialect.name == "sqlite"
        # SQLite has one writer; concurrent writers wait in its busy handler, which sleeps in
        # growing steps (tens of ms). One in-process writer at a time keeps latency flat.
        self._writing: Any = asyncio.Lock() if sqlite else contextlib.nullcontext()

    def writing(self) -> Any:
        """Hold around a write transaction (a no-op on PostgreSQL)."""
        return self._writing

    async def _write(self, fn: Any) -> Any:
        async with self.writing():
            return await self.conn.write(fn)

    async def close(self) -> None:
        """Release the ledger's own connection and thread (the engine is the caller's)."""
        await self.conn.close()

    # Active revisions -------------------------------------------------------------------
    async def save_revision(self, row: ActiveRevision) -> None:
        async with self.writing(), self.sessions() as s:
            await s.merge(row)
            await s.commit()

    async def set_enabled(
        self, tenant_id: str, workflow_id: str, enabled: bool, now: datetime
    ) -> bool:
        async with self.writing(), self.sessions() as s:
            res = await s.exec(
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
        p = {"t": tenant_id, "wf": workflow_id, "ot": object_type, "rid": record_id}

        def run(c: Connection) -> EnrollmentRow | None:
            r = c.execute(ACTIVE_IN_WORKFLOW, p).first()
            return None if r is None else _enrollment(r)

        return await self.conn.read(run)  # type: ignore[no-any-return]

    async def enroll_state(
        self,
        *,
        tenant_id: str,
        workflow_id: str,
        object_type: str,
        record_id: str,
        event_id: str = "",
    ) -> tuple[EnrollmentRow | None, EnrollmentRow | None, EnrollmentFact | None]:
        """(row enrolled by this event, active row, fact) in one trip: what the rules read.

        One query finds both the active row and a row this event created (a redelivery after
        a crash), since both are rows of the same record in the same workflow."""
        p = {"t": tenant_id, "wf": workflow_id, "ot": object_type, "rid": record_id, "e": event_id}

        def run(c: Connection) -> tuple[Any, Any, Any]:
            rows = [
                _enrollment(r)
                for r in c.execute(ACTIVE_OR_BY_EVENT if event_id else ACTIVE_IN_WORKFLOW, p)
            ]
            prior = next((r for r in rows if event_id and r.trigger_event_id == event_id), None)
            current = next((r for r in rows if r.status in ACTIVE), None)
            return prior, current, _fact(c.execute(FACT_BY_KEY, p).first())

        return await self.conn.read(run)  # type: ignore[no-any-return]

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
        expect_last_number: int | None = None,
        change: FactChange | None = None,
        change_at: datetime | None = None,
    ) -> EnrollmentRow | None:
        """Write the next enrollment (status pending) and bump the fact, in one transaction.

        Returns None when another enrollment took that number first (never twice at once),
        or, with ``expect_last_number`` (the fact's ``last_number`` the caller's rules read;
        0: no fact), when the record's fact moved since: an enrollment by another process
        came in between, and the rules would have to be read again.
        ``run_id_for(number)`` gives the deterministic Temporal workflow id.

        ``change``: the "enrolled in X" change this enrollment makes, when some workflow reads
        it; it goes to the fact-change outbox in the same transaction (with the new row's run
        id, created at ``change_at``, default ``now``). Without it, no extra statement.
        """
        key = {"t": tenant_id, "wf": workflow_id, "ot": object_type, "rid": record_id}

        def run(c: Connection) -> EnrollmentRow | None:
            # SQLite: inside BEGIN IMMEDIATE, so no other writer moves the fact before COMMIT.
            # PostgreSQL: the update below only applies to the number read (else _Conflict).
            fact = c.execute(FACT_BY_KEY, key).first()
            last = fact.last_number if fact is not None else 0
            if expect_last_number is not None and last != expect_last_number:
                return None
            number = last + 1
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
            values = row.model_dump(exclude={"id"})
            row.id = c.execute(sa.insert(ROW).values(**values)).inserted_primary_key[0]  # type: ignore[index]
            if fact is None:
                c.execute(
                    sa.insert(FACT).values(
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
                moved = c.execute(
                    sa.update(FACT)
                    .where(
                        FACT.c.tenant_id == tenant_id,
                        FACT.c.workflow_id == workflow_id,
                        FACT.c.object_type == object_type,
                        FACT.c.record_id == record_id,
                        FACT.c.last_number == last,
                    )
                    .values(
                        last_enrolled_at=now,
                        enrollment_count=FACT.c.enrollment_count + 1,
                        last_number=number,
                    )
                )
                if moved.rowcount != 1:
                    raise _Conflict
            if change is not None:
                done = replace(change, run_workflow_id=row.run_workflow_id)
                _insert_or_ignore(c, OUTBOX, done.outbox_values(change_at or now))
            return row

        try:
            return await self._write(run)  # type: ignore[no-any-return]
        except (IntegrityError, _Conflict):
            return None

    async def set_status(
        self,
        row_id: int,
        status: str,
        *,
        now: datetime | None = None,
        reason: str = "",
        change: FactChange | None = None,
    ) -> bool:
        """Set the row's status. With ``change`` (the "enrolled in X" change this status
        change makes, which other workflows read), the change goes to the outbox in the same
        transaction — only if the row was still active, so the end of one enrollment is
        recorded once. Returns whether the row was still active (always True without
        ``change``)."""
        values: dict[str, Any] = {"status": status}
        if status in ("ended", "unenrolled"):
            values["ended_at"] = now
        if reason:
            values["unenroll_reason"] = reason
        stmt = sa.update(ROW).where(ROW.c.id == row_id).values(**values)
        if change is None:
            await self._write(lambda c: c.execute(stmt))
            return True
        outbox = change.outbox_values(now or datetime.now(UTC))

        def run(c: Connection) -> bool:
            moved = c.execute(stmt.where(ROW.c.status.in_(ACTIVE)))
            if moved.rowcount != 1:
                return False
            _insert_or_ignore(c, OUTBOX, outbox)
            return True

        return await self._write(run)  # type: ignore[no-any-return]

    # The fact-change outbox ------------------------------------------------------------------
    async def pending_fact_changes(
        self, before: datetime, limit: int = 500, *, tenant_id: str | None = None
    ) -> list[FactChange]:
        """Outbox rows older than ``before``: changes whose cascade a crash may have lost (of
        one tenant, or of all)."""
        q = sa.select(OUTBOX).where(OUTBOX.c.created_at < before)
        if tenant_id is not None:
            q = q.where(OUTBOX.c.tenant_id == tenant_id)
        q = q.order_by(OUTBOX.c.created_at, OUTBOX.c.change_id).limit(limit)
        return await self.conn.read(  # type: ignore[no-any-return]
            lambda c: [FactChange.from_outbox(dict(r._mapping)) for r in c.execute(q)]
        )

    async def fact_change_done(self, tenant_id: str, change_id: str) -> None:
        """The change's cascade ran: drop it from the outbox."""
        stmt = sa.delete(OUTBOX).where(
            OUTBOX.c.tenant_id == tenant_id, OUTBOX.c.change_id == change_id
        )
        await self._write(lambda c: c.execute(stmt))

    async def active_for_record(
        self, *, tenant_id: str, object_type: str, record_id: str
    ) -> Sequence[EnrollmentRow]:
        p = {"t": tenant_id, "ot": object_type, "rid": record_id}
        return await self.conn.read(  # type: ignore[no-any-return]
            lambda c: [_enrollment(r) for r in c.execute(ACTIVE_OF_RECORD, p)]
        )

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
        """(outcomes if the event was processed, the record's active enrollments) in one trip."""
        p = {"t": tenant_id, "e": event_id, "ot": object_type, "rid": record_id}

        def run(c: Connection) -> tuple[list[dict[str, Any]] | None, list[EnrollmentRow]]:
            done = c.execute(PROCESSED_BY_ID, p).first()
            if done is not None:
                return list(done.outcomes), []
            return None, [_enrollment(r) for r in c.execute(ACTIVE_OF_RECORD, p)]

        return await self.conn.read(run)  # type: ignore[no-any-return]

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
        fq = sa.select(FACT).where(
            FACT.c.tenant_id == tenant_id,
            FACT.c.object_type == object_type,
            FACT.c.record_id.in_(list(record_ids)),
        )
        aq = sa.select(ROW).where(
            ROW.c.tenant_id == tenant_id,
            ROW.c.object_type == object_type,
            ROW.c.record_id.in_(list(record_ids)),
            ROW.c.status.in_(ACTIVE),
        )
        if workflow_ids:
            fq = fq.where(FACT.c.workflow_id.in_(list(workflow_ids)))
            aq = aq.where(ROW.c.workflow_id.in_(list(workflow_ids)))

        def run(c: Connection) -> None:
            for r in c.execute(fq.order_by(FACT.c.workflow_id)):
                if r.enrollment_count > 0:
                    facts[r.record_id].append(EnrollmentFact(**r._mapping))
            for r in c.execute(aq):
                active[r.record_id].append(_enrollment(r))

        await self.conn.read(run)
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

    # Background sweep watermarks (ended runs) ---------------------------------------------
    async def sweep_watermark(self, name: str) -> datetime | None:
        """Where the sweep ``name`` starts its next look (None: it never completed one)."""
        q = sa.select(WATERMARK.c.since).where(WATERMARK.c.name == name)
        at = await self.conn.read(lambda c: c.execute(q).scalar())
        return None if at is None else (at if at.tzinfo else at.replace(tzinfo=UTC))

    async def set_sweep_watermark(self, name: str, since: datetime) -> None:
        """Move the watermark forward (never back: a replica behind another, whose sweep
        covered more, does not undo that progress)."""

        def run(c: Connection) -> None:
            at = c.execute(sa.select(WATERMARK.c.since).where(WATERMARK.c.name == name)).scalar()
            if at is None:
                _insert_or_ignore(c, WATERMARK, {"name": name, "since": since})
            elif (at if at.tzinfo else at.replace(tzinfo=UTC)) < since:
                c.execute(sa.update(WATERMARK).where(WATERMARK.c.name == name).values(since=since))

        await self._write(run)

    async def oldest_active_enrolled_at(self) -> datetime | None:
        """When the oldest still active (pending / running) enrollment began."""
        q = sa.select(func.min(ROW.c.enrolled_at)).where(ROW.c.status.in_(ACTIVE))
        at = await self.conn.read(lambda c: c.execute(q).scalar())
        return None if at is None else (at if at.tzinfo else at.replace(tzinfo=UTC))

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
        pending, which the recovery sweep resolves without a duplicate). A concurrent
        redelivery that finished first keeps its outcomes (same effect)."""

        def run(c: Connection) -> None:
            if running_ids:
                _set_running(c, running_ids)
            _insert_or_ignore(
                c,
                DONE,
                {
                    "tenant_id": tenant_id,
                    "event_id": event_id,
                    "processed_at": now,
                    "outcomes": outcomes,
                },
            )

        await self._write(run)

    async def set_many_running(self, ids: Sequence[int]) -> None:
        await self._write(lambda c: _set_running(c, ids))

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
        q = (
            sa.select(func.count())
            .select_from(OCCURRENCE)
            .where(
                OCCURRENCE.c.tenant_id == tenant_id,
                OCCURRENCE.c.object_type == object_type,
                OCCURRENCE.c.record_id == record_id,
                OCCURRENCE.c.event_key == event_key,
            )
        )
        if window_start is not None:
            q = q.where(OCCURRENCE.c.occurred_at >= window_start)
        if window_end is not None:
            q = q.where(OCCURRENCE.c.occurred_at <= window_end)

        def run(c: Connection) -> int:
            _insert_or_ignore(
                c,
                OCCURRENCE,
                {
                    "tenant_id": tenant_id,
                    "event_id": event_id,
                    "event_key": event_key,
                    "object_type": object_type,
                    "record_id": record_id,
                    "occurred_at": occurred_at,
                },
            )
            return int(c.execute(q).scalar_one())

        return await self._write(run)  # type: ignore[no-any-return]

    # Retention ---------------------------------------------------------------------------
    async def prune(
        self, *, history_before: datetime, facts_before: datetime, events_before: datetime
    ) -> dict[str, int]:
        """Drop ended history, stale facts and old dedupe/occurrence rows."""
        async with self.writing(), self.sessions() as s:
            h = await s.exec(
                delete(EnrollmentRow).where(
                    col(EnrollmentRow.status).in_(("ended", "unenrolled")),
                    or_(
                        col(EnrollmentRow.ended_at) < history_before,
                        col(EnrollmentRow.ended_at).is_(None)
                        & (col(EnrollmentRow.enrolled_at) < history_before),
                    ),
                )
            )
            f = await s.exec(
                delete(EnrollmentFact).where(col(EnrollmentFact.last_enrolled_at) < facts_before)
            )
            p = await s.exec(
                delete(ProcessedEvent).where(col(ProcessedEvent.processed_at) < events_before)
            )
            o = await s.exec(
                delete(EventOccurrence).where(col(EventOccurrence.occurred_at) < facts_before)
            )
            await s.commit()
            return {
                "history": h.rowcount,  # type: ignore[attr-defined]
                "facts": f.rowcount,  # type: ignore[attr-defined]
                "processed_events": p.rowcount,  # type: ignore[attr-defined]
                "occurrences": o.rowcount,  # type: ignore[attr-defined]
            }


def _set_running(c: Connection, ids: Sequence[int]) -> None:
    c.execute(
        sa.update(ROW)
        .where(ROW.c.id.in_(list(ids)), ROW.c.status == "pending")
        .values(status="running")
    )


def virtual_properties(
    facts: Sequence[EnrollmentFact], active: Sequence[EnrollmentRow]
) -> dict[str, str]:
    """The ``@enrollment:<workflow>`` properties of one record (see crmflow.model.criteria)."""
    out = {enrollment_property(f.workflow_id): PAST for f in facts if f.enrollment_count > 0}
    for r in active:
        out[enrollment_property(r.workflow_id)] = CURRENT
    return out
