"""The enrollment rules and their side effects (ledger, Temporal), for every trigger kind.

``enroll`` applies the rules in order, cheapest and most final first:

1. the workflow is on;
2. the record is not enrolled right now (never twice at once: a per-record lock in this process,
   the ledger's unique enrollment number across processes, Temporal's USE_EXISTING policy);
3. first enrollment only — unless re-enrollment is on, a re-enrollment trigger fired and the
   record meets the enrollment triggers at that moment;
4. not on a suppression list;
5. not already meeting the goal.

Then the ledger row is committed (status pending), the Temporal workflow is started with the
row's deterministic id, and the row becomes running. A crash in between leaves a pending row
that the recovery sweep starts later (same id: no duplicate). When some active workflow reads
"enrolled in <this workflow>", the enrollment's ``FactChange`` is written to the ledger's
outbox in the same transaction as the row and deleted once its cascade ran (``emit``), so a
crash before the cascade (a manual enrollment, a backfill page, a schedule tick: nothing
redelivers those) leaves it to the recovery loop's replay.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from crmflow.model.criteria import CURRENT, PAST
from crmflow.model.enrollment import EnrollmentInput, UnenrollReason, UnenrollSignal
from crmflow.model.records import ChangeEvent
from crmflow.records.port import RecordStore
from crmflow.temporal.ids import enrollment_workflow_id
from enrollment.compiled import EMPTY, CompiledWorkflow
from enrollment.fact_change import FactChange
from enrollment.ledger import Ledger
from enrollment.starter import StarterPort
from enrollment.tables import EnrollmentRow

log = logging.getLogger("crmflow.enrollment")


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time we store is UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass
class Outcome:
    workflow_id: str
    record_id: str
    outcome: str
    enrollment_number: int = 0
    run_workflow_id: str = ""
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


FactHook = Callable[[FactChange], Awaitable[list[Outcome]]]
# (tenant, object type, workflow) -> does an active workflow read "enrolled in <workflow>"?
FactReaders = Callable[[str, str, str], bool]
# Enrollment in A triggers B ("has been enrolled in A"), B triggers C...: a chain deeper than
# this is a loop between workflows' criteria, not a design; it stops (and is logged).
MAX_CASCADE = 8
_cascade_depth: contextvars.ContextVar[int] = contextvars.ContextVar("cascade", default=0)
# An enrollment's outbox row is stamped at least this much after the previous run's end
# (reconciled in the same call) so the recovery loop replays the end first.
_TICK = timedelta(microseconds=1)


class Enroller:
    def __init__(
        self,
        *,
        ledger: Ledger,
        starter: StarterPort,
        records: RecordStore | None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.ledger = ledger
        self.starter = starter
        self.records = records
        self.clock = clock
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        # Set by the Ingestor: evaluates a FactChange against the other workflows' triggers.
        self.on_fact_change: FactHook | None = None
        # Set by the Ingestor: which changes some workflow reads (those go to the outbox).
        self.reads_facts: FactReaders | None = None

    def _durable(self, change: FactChange) -> FactChange | None:
        """``change`` marked for the outbox when some active workflow reads it, else None."""
        if self.on_fact_change is None or self.reads_facts is None:
            return None
        if not self.reads_facts(change.tenant_id, change.object_type, change.workflow_id):
            return None
        return replace(change, durable=True)

    async def end_row(
        self, row: EnrollmentRow, status: str, *, reason: str = "", cascade: bool = True
    ) -> FactChange | None:
        """Mark an active row ended / unenrolled. When the "is currently enrolled" change is
        read by some workflow (and ``cascade``), it is written to the outbox in the same
        transaction and returned: the caller emits it (``emit``). None: nothing to emit (no
        reader, or another path ended the row first and owns its change)."""
        assert row.id is not None
        change = FactChange(
            row.tenant_id,
            row.object_type,
            row.record_id,
            row.workflow_id,
            CURRENT,
            PAST,
            row.run_workflow_id,
        )
        durable = self._durable(change) if cascade else None
        now = self.clock()
        if durable is None:
            await self.ledger.set_status(row.id, status, now=now, reason=reason)
            return change if cascade else None
        moved = await self.ledger.set_status(row.id, status, now=now, reason=reason, change=durable)
        return durable if moved else None

    async def emit(self, change: FactChange, follow: list[Outcome] | None) -> None:
        """Run the change's cascade; a durable change then leaves the outbox (a crash before
        that leaves it for the recovery loop, whose replay is idempotent by the change id)."""
        await self.fact_changed(change, follow)
        if change.durable:
            await self.ledger.fact_change_done(change.tenant_id, change.change_id)

    async def fact_changed(self, change: FactChange, follow: list[Outcome] | None) -> None:
        """Let the workflows that read "has been enrolled in X" react (enroll / unenroll)."""
        if self.on_fact_change is None:
            return
        depth = _cascade_depth.get()
        if depth >= MAX_CASCADE:
            log.warning(
                "enrollment cascade deeper than %d stopped at %s (%s -> %s)",
                MAX_CASCADE,
                change.workflow_id,
                change.old,
                change.new,
            )
            return
        token = _cascade_depth.set(depth + 1)
        try:
            outs = await self.on_fact_change(change)
        finally:
            _cascade_depth.reset(token)
        if follow is not None:
            follow.extend(outs)

    async def enrich(
        self, cw: CompiledWorkflow, records: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """The records with the virtual properties ``cw``'s criteria read: enrollment facts
        (``@enrollment:<workflow>``, one ledger query for the batch) and associated records
        (``@assoc:<type>``, through the CRM port per record)."""
        out = {rid: dict(p) for rid, p in records.items()}
        if not out:
            return out
        if cw.fact_workflows:
            facts = await self.ledger.fact_properties(
                tenant_id=cw.tenant_id, object_type=cw.object_type, record_ids=list(out)
            )
            for rid, props in out.items():
                props.update(facts.get(rid, {}))
        if cw.association_refs and self.records is not None:
            from enrollment import associated

            for rid, props in out.items():
                loaded = await associated.load(
                    self.records, cw.tenant_id, cw.object_type, rid, cw.association_refs
                )
                props.update(associated.properties(loaded))
        return out

    def _lock(self, tenant_id: str, workflow_id: str, record_id: str) -> asyncio.Lock:
        key = (tenant_id, workflow_id, record_id)
        lock = self._locks.get(key)
        if lock is None:
            if len(self._locks) > 10_000:  # drop idle locks now and then
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def is_current(self, row: EnrollmentRow) -> bool:
        """``_is_current`` outside the rules (read RPCs): an ended run's change is emitted."""
        redo: list[FactChange] = []
        current = await self._is_current(row, redo)
        for change in redo:
            await self.emit(change, None)
        return current

    async def _is_current(self, row: EnrollmentRow, redo: list[FactChange]) -> bool:
        """Is the ledger's active row really still enrolled? Reconciles ended runs lazily
        (their "no longer current" change goes to ``redo``, emitted outside the lock)."""
        if row.status == "pending":
            return True  # the recovery sweep will start it; it counts as enrolled
        running = await self.starter.is_running(row.run_workflow_id)
        if running:
            return True
        change = await self.end_row(row, "ended")
        if change is not None:
            redo.append(change)
        return False

    async def suppressed_by(self, cw: CompiledWorkflow, record_id: str) -> list[str]:
        ids = cw.definition.enrollment.suppression_list_ids
        if not ids or self.records is None:
            return []
        out = []
        for list_id in ids:
            if await self.records.is_member(cw.tenant_id, list_id, record_id):
                out.append(list_id)
        return out

    async def enroll(
        self,
        cw: CompiledWorkflow,
        record_id: str,
        *,
        trigger: str,
        record: Mapping[str, Any] | None,
        event: ChangeEvent | None = None,
        reenroll_ok: bool | None = None,
        reenrollment_only: bool = False,
        started: list[int] | None = None,
        follow: list[Outcome] | None = None,
        dedupe_id: str = "",
    ) -> Outcome:
        """Apply the rules and enroll. ``reenroll_ok``: may a previously enrolled record enter
        again (decided by the caller from the trigger); None = ask the workflow's settings
        with the initial triggers (used by schedules and backfills). ``follow`` collects what
        the enrollment did to workflows triggered by it ("has been enrolled in"). ``dedupe_id``
        stands in for the event id when there is no event (a time re-check of one record)."""
        redo: list[FactChange] = []
        out = await self._enroll(
            cw,
            record_id,
            trigger=trigger,
            record=record,
            event=event,
            reenroll_ok=reenroll_ok,
            reenrollment_only=reenrollment_only,
            started=started,
            follow=follow,
            dedupe_id=dedupe_id,
            redo=redo,
        )
        for change in redo:  # outside the per-record lock: the cascade may come back here
            await self.emit(change, follow)
        return out

    async def _enroll(
        self,
        cw: CompiledWorkflow,
        record_id: str,
        *,
        trigger: str,
        record: Mapping[str, Any] | None,
        event: ChangeEvent | None,
        reenroll_ok: bool | None,
        reenrollment_only: bool,
        started: list[int] | None,
        follow: list[Outcome] | None,
        dedupe_id: str,
        redo: list[FactChange],
    ) -> Outcome:
        wf, tenant = cw.workflow_id, cw.tenant_id
        if not cw.enabled:
            return Outcome(wf, record_id, "workflow_off", detail="the workflow is off")
        now = self.clock()
        async with self._lock(tenant, wf, record_id):
            prior, current, fact = await self.ledger.enroll_state(
                tenant_id=tenant,
                workflow_id=wf,
                object_type=cw.object_type,
                record_id=record_id,
                event_id=event.event_id if event is not None else dedupe_id,
            )
            for reserved in (prior, current):
                if reserved is not None and reserved.status == "pending":
                    # A crash (or an unreachable Temporal) left this enrollment reserved but
                    # not started. Whoever asks next finishes the start - idempotent through
                    # the deterministic id - instead of leaving it to the next sweep.
                    await self.start_row(reserved, cw, event, started=started)
                    break
            if prior is not None:
                # Same event again after a crash (before it was marked processed): same answer,
                # and the enrollment's consequences elsewhere are offered again (idempotent by
                # the change's id), in case the crash came before they were worked out. When
                # some workflow reads it, its outbox row (if still there) goes once it ran.
                again = FactChange(
                    tenant,
                    cw.object_type,
                    record_id,
                    wf,
                    PAST if prior.enrollment_number > 1 else None,
                    CURRENT,
                    prior.run_workflow_id,
                    record,
                )
                redo.append(self._durable(again) or again)
                return Outcome(
                    wf,
                    record_id,
                    "already_enrolled",
                    prior.enrollment_number,
                    prior.run_workflow_id,
                    "enrolled by this event before",
                )
            if current is not None and await self._is_current(current, redo):
                return Outcome(
                    wf,
                    record_id,
                    "already_enrolled",
                    current.enrollment_number,
                    current.run_workflow_id,
                    "the record is enrolled right now",
                )
            if reenrollment_only and (fact is None or fact.enrollment_count == 0):
                # a re-enrollment trigger alone never enrolls a record the first time
                return Outcome(
                    wf,
                    record_id,
                    "not_enrolled",
                    detail="a re-enrollment trigger fired, but the record was never enrolled",
                )
            if fact is not None and fact.enrollment_count > 0:
                if reenroll_ok is None:
                    reenroll_ok = cw.definition.enrollment.reenrollment.enabled and (
                        record is not None and cw.initial_triggers_match(event, record, now)
                    )
                if not reenroll_ok:
                    return Outcome(
                        wf,
                        record_id,
                        "reenrollment_off",
                        detail=f"enrolled {fact.enrollment_count} time(s) before; "
                        "re-enrollment is off or its trigger did not fire",
                    )
            lists = await self.suppressed_by(cw, record_id)
            if lists:
                return Outcome(
                    wf, record_id, "suppressed", detail=f"on suppression list(s) {', '.join(lists)}"
                )
            if cw.goal is not None and record is not None and cw.goal(record, now, EMPTY):
                return Outcome(
                    wf, record_id, "goal_met", detail="the record already meets the goal"
                )
            was = PAST if fact is not None and fact.enrollment_count > 0 else None
            entered = FactChange(tenant, cw.object_type, record_id, wf, was, CURRENT, "", record)
            # When some workflow reads it, the change goes to the outbox in the reservation's
            # transaction (a crash before its cascade ran leaves it to the recovery loop),
            # stamped after the previous run's end reconciled above (replayed in that order).
            durable = self._durable(entered)
            change_at = None
            if durable is not None:
                change_at = self.clock()
                if any(c.durable for c in redo):
                    change_at += _TICK
            row = await self.ledger.reserve(
                tenant_id=tenant,
                workflow_id=wf,
                revision=cw.revision.revision,
                object_type=cw.object_type,
                record_id=record_id,
                trigger=trigger,
                event_id=event.event_id if event else dedupe_id,
                now=now,
                run_id_for=lambda n: enrollment_workflow_id(
                    tenant, wf, cw.object_type, record_id, n
                ),
                # the rules above read this fact: another process enrolling the record since
                # (our per-record lock is in-process only) makes the reservation fail
                expect_last_number=fact.last_number if fact is not None else 0,
                change=durable,
                change_at=change_at,
            )
            if row is None:
                return Outcome(
                    wf,
                    record_id,
                    "already_enrolled",
                    detail="enrolled concurrently by another request",
                )
            ok = await self.start_row(row, cw, event, started=started)
        # the previous run's end (reconciled above) comes before this enrollment's change
        while redo:
            await self.emit(redo.pop(0), follow)
        for other in cw.definition.enrollment.unenroll_from_workflow_ids:
            if other != wf:
                await self.unenroll(
                    tenant,
                    other,
                    cw.object_type,
                    record_id,
                    UnenrollReason.ENROLLED_ELSEWHERE,
                    f"enrolled in {wf}",
                    follow=follow,
                )
        # last: the outbox row (if any) is deleted once this change's cascade ran
        await self.emit(replace(durable or entered, run_workflow_id=row.run_workflow_id), follow)
        return Outcome(
            wf,
            record_id,
            "enrolled",
            row.enrollment_number,
            row.run_workflow_id,
            f"trigger {trigger}"
            if ok
            else f"trigger {trigger}; recorded; its start is retried by the recovery sweep",
        )

    async def start_row(
        self,
        row: EnrollmentRow,
        cw: CompiledWorkflow,
        event: ChangeEvent | None = None,
        *,
        started: list[int] | None = None,
    ) -> bool:
        """Start the row's workflow and mark it running — or, with ``started``, leave the
        marking to the caller's next write (the ingest path batches it with the event)."""
        inp = EnrollmentInput(
            tenant_id=row.tenant_id,
            workflow_id=row.workflow_id,
            revision=cw.revision.revision,
            object_type=row.object_type,
            record_id=row.record_id,
            enrollment_number=row.enrollment_number,
            enrolled_at=aware(row.enrolled_at),
            trigger=row.trigger,
            triggering_event=event,
            definition=cw.definition,
        )
        try:
            await self.starter.start(row.run_workflow_id, inp)
        except Exception:  # Temporal unreachable: the row stays pending for the sweep
            log.exception("starting %s failed; left for the recovery sweep", row.run_workflow_id)
            return False
        assert row.id is not None
        if started is not None:
            started.append(row.id)
        else:
            await self.ledger.set_status(row.id, "running")
            row.status = "running"
        return True

    async def unenroll(
        self,
        tenant_id: str,
        workflow_id: str,
        object_type: str,
        record_id: str,
        reason: UnenrollReason,
        detail: str = "",
        *,
        follow: list[Outcome] | None = None,
    ) -> Outcome:
        row = await self.ledger.current(
            tenant_id=tenant_id,
            workflow_id=workflow_id,
            object_type=object_type,
            record_id=record_id,
        )
        if row is None:
            return Outcome(workflow_id, record_id, "not_enrolled")
        return await self.unenroll_row(row, reason, detail, follow=follow)

    async def unenroll_row(
        self,
        row: EnrollmentRow,
        reason: UnenrollReason,
        detail: str = "",
        *,
        follow: list[Outcome] | None = None,
        cascade: bool = True,
    ) -> Outcome:
        """``cascade=False``: other workflows are not told (the record was deleted)."""
        assert row.id is not None
        signalled = await self.starter.unenroll(
            row.run_workflow_id, UnenrollSignal(reason=reason, detail=detail)
        )
        # the status and (when some workflow reads it) the outbox row in one transaction:
        # a crash before the cascade below ran leaves it to the recovery loop
        change = await self.end_row(row, "unenrolled", reason=reason.value, cascade=cascade)
        if change is not None:
            await self.emit(change, follow)
        return Outcome(
            row.workflow_id,
            row.record_id,
            "unenrolled",
            row.enrollment_number,
            row.run_workflow_id,
            reason.value if signalled else f"{reason.value} (the run had already ended)",
        )
