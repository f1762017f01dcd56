"""The ledger's per-event operations, each one read or one write transaction (LedgerConn), and
the ingest batch processed record by record concurrently: the guarantees they carry."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from enrollment.ledger import ROW
from enrollment.servicer import EnrollmentServicer

from crmflow.api.crm.v1 import records_pb2
from crmflow.api.enrollment.v1 import enrollment_service_pb2 as pb
from crmflow.model.convert import to_proto
from crmflow.model.enrollment import EnrollmentInput
from tests.unit.enrollment.conftest import Core
from tests.unit.enrollment.test_rules import TRIG, to_lead


async def _reserve(core: Core, record_id: str, expect: int | None, **extra: Any) -> Any:
    """A manual reservation of workflow "wf" for ``record_id`` (``extra``: more arguments)."""
    return await core.ledger.reserve(
        tenant_id=core.tenant,
        workflow_id="wf",
        revision=1,
        object_type="contact",
        record_id=record_id,
        trigger="manual",
        event_id="",
        now=core.clock[0],
        run_id_for=lambda n: f"x/{record_id}/{n}",
        expect_last_number=expect,
        **extra,
    )


async def _history(core: Core, record_id: str) -> list[tuple[int, str]]:
    rows = await core.ledger.history(tenant_id=core.tenant, workflow_id="wf", record_id=record_id)
    return [(r.enrollment_number, r.status) for r in rows]


async def test_reserve_refuses_when_the_fact_moved_since_the_rules_read_it(core: Core) -> None:
    first = await _reserve(core, "r1", 0)
    assert first is not None and first.enrollment_number == 1 and first.id is not None
    assert await _reserve(core, "r1", 0) is None  # another enrollment came in between
    assert await _history(core, "r1") == [(1, "pending")]  # nothing half-written
    fact = await core.ledger.fact(
        tenant_id=core.tenant, workflow_id="wf", object_type="contact", record_id="r1"
    )
    assert fact is not None and (fact.enrollment_count, fact.last_number) == (1, 1)
    second = await _reserve(core, "r1", 1)
    assert second is not None and second.enrollment_number == 2


async def test_reserve_writes_the_enrollment_change_to_the_outbox_with_the_row(
    core: Core,
) -> None:
    """With ``change`` (some workflow reads the fact), the reservation writes the outbox row,
    named after the new row's run id, in its transaction; a refused one writes neither."""
    from datetime import timedelta

    from enrollment.fact_change import FactChange

    from crmflow.model.criteria import CURRENT

    async def reserve(record_id: str, expect: int) -> Any:
        change = FactChange(core.tenant, "contact", record_id, "wf", None, CURRENT, "")
        at = core.clock[0] + timedelta(microseconds=1)
        return await _reserve(core, record_id, expect, change=change, change_at=at)

    async def outbox() -> list[tuple[str, str, Any]]:
        rows = await core.ledger.pending_fact_changes(core.clock[0] + timedelta(days=1))
        return [(c.change_id, c.run_workflow_id, c.new) for c in rows if c.tenant_id == core.tenant]

    assert await reserve("r1", 0) is not None
    assert await outbox() == [("enrollment:x/r1/1:current", "x/r1/1", CURRENT)]
    assert await reserve("r1", 0) is None  # the fact moved: no row, no change
    assert await _history(core, "r1") == [(1, "pending")]
    assert len(await outbox()) == 1
    # created at ``change_at``: not older than the given time (replay order)
    older = await core.ledger.pending_fact_changes(core.clock[0] + timedelta(microseconds=1))
    assert [c for c in older if c.tenant_id == core.tenant] == []
    await core.ledger.fact_change_done(core.tenant, "enrollment:x/r1/1:current")
    assert await outbox() == []


async def test_an_enrollment_by_another_replica_between_rules_and_reservation(
    core: Core, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-record lock is in-process: a replica may reserve after our rules read the
    ledger. The reservation then fails instead of enrolling the record a second time."""
    await core.publish("wf", {"triggers": [{"manual": {}}], "reenrollment": {"enabled": True}})
    cw = core.workflows.get(core.tenant, "wf")
    read = core.ledger.enroll_state

    async def stale(**kw: Any) -> Any:
        state = await read(**kw)
        assert await _reserve(core, "r1", None) is not None  # the replica, just after
        return state

    monkeypatch.setattr(core.ledger, "enroll_state", stale)
    out = await core.enroller.enroll(cw, "r1", trigger="manual", record={}, reenroll_ok=True)
    assert out.outcome == "already_enrolled"
    assert core.starter.runs == {}
    assert await _history(core, "r1") == [(1, "pending")]


async def test_mark_processed_keeps_the_first_answer_and_still_marks_running(core: Core) -> None:
    row = await _reserve(core, "r1", 0)
    await core.ledger.mark_processed(core.tenant, "e1", [{"outcome": "first"}], core.clock[0])
    # a concurrent redelivery finishing second: its outcomes are dropped, its starts recorded
    await core.ledger.mark_processed(
        core.tenant, "e1", [{"outcome": "second"}], core.clock[0], running_ids=[row.id]
    )
    assert await core.ledger.processed(core.tenant, "e1") == [{"outcome": "first"}]
    assert await _history(core, "r1") == [(1, "running")]
    state = await core.ledger.event_state(
        tenant_id=core.tenant, event_id="e1", object_type="contact", record_id="r1"
    )
    assert state == ([{"outcome": "first"}], [])


async def test_an_occurrence_counts_once_per_event(core: Core) -> None:
    async def count(event_id: str) -> int:
        return await core.ledger.count_occurrence(
            tenant_id=core.tenant,
            object_type="contact",
            record_id="r1",
            event_key="form:f1",
            event_id=event_id,
            occurred_at=core.clock[0],
            window_start=None,
            window_end=None,
        )

    assert [await count("a"), await count("a"), await count("b")] == [1, 1, 2]


async def test_a_write_that_fails_half_way_leaves_nothing(core: Core) -> None:
    row = await _reserve(core, "r1", 0)

    def half(c: Any) -> None:
        c.execute(sa.update(ROW).where(ROW.c.id == row.id).values(status="running"))
        raise RuntimeError("crash half-way")

    with pytest.raises(RuntimeError):
        await core.ledger.conn.write(half)
    assert await _history(core, "r1") == [(1, "pending")]


def _servicer(core: Core) -> EnrollmentServicer:
    return EnrollmentServicer(
        workflows=core.workflows,
        enroller=core.enroller,
        ingestor=core.ingestor,
        clock=lambda: core.clock[0],
    )


async def test_a_batch_runs_records_concurrently_and_each_record_in_order(core: Core) -> None:
    await core.publish("wf", {"triggers": [TRIG]})
    in_flight, most = 0, 0
    start = core.starter.start

    async def slow_start(run_id: str, inp: EnrollmentInput) -> bool:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.05)  # a Temporal round trip
        in_flight -= 1
        return await start(run_id, inp)

    core.starter.start = slow_start  # type: ignore[method-assign]
    # per record: the first event enrolls, the second finds it enrolled (order matters)
    evs = [to_lead(core, f"c{i % 4}") for i in range(8)]
    req = pb.IngestEventsRequest(
        tenant_id=core.tenant, events=[to_proto(e, records_pb2.ChangeEvent) for e in evs]
    )
    res = await _servicer(core).IngestEvents(req, None)
    assert [r.event_id for r in res.results] == [e.event_id for e in evs]
    assert [r.outcomes[0].outcome for r in res.results] == ["enrolled"] * 4 + [
        "already_enrolled"
    ] * 4
    assert most > 1, "the records' workflow starts did not overlap"
    assert len(core.starter.runs) == 4


async def test_a_batch_repeating_an_event_id_answers_the_copy_as_a_duplicate(
    core: Core,
) -> None:
    await core.publish("wf", {"triggers": [TRIG]})
    ev = to_lead(core, "c1")
    other = to_lead(core, "c2")
    msgs = [to_proto(e, records_pb2.ChangeEvent) for e in (ev, other, ev)]
    res = await _servicer(core).IngestEvents(
        pb.IngestEventsRequest(tenant_id=core.tenant, events=msgs), None
    )
    assert [r.duplicate for r in res.results] == [False, False, True]
    assert res.results[2].outcomes[0].run_workflow_id == res.results[0].outcomes[0].run_workflow_id
    assert len(core.starter.runs) == 2


async def test_a_read_held_up_by_a_lock_waits_on_the_thread_not_on_the_event_loop(
    tmp_path: Path,
) -> None:
    """SQLite reads run on the event loop (a WAL reader does not wait for writers); when the
    file is locked after all, the read moves to the ledger's thread instead of stalling."""
    from enrollment.db import migrate
    from enrollment.ledger import Ledger
    from enrollment.ledger_conn import READ_BUSY_S

    from crmflow.db import create_engine, session_factory

    path = tmp_path / "enrollment.db"
    await migrate(f"sqlite+aiosqlite:///{path}")
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    ledger = Ledger(session_factory(engine))
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("PRAGMA locking_mode=EXCLUSIVE")  # holds the file until it closes
    blocker.execute("BEGIN EXCLUSIVE")
    blocker.execute("DELETE FROM processed_event")
    blocker.execute("COMMIT")
    loop = asyncio.get_running_loop()
    loop.call_later(1.0, blocker.close)
    gaps: list[float] = []

    async def ticker() -> None:
        last = loop.time()
        while True:
            await asyncio.sleep(0.01)
            gaps.append(loop.time() - last)
            last = loop.time()

    tick = asyncio.create_task(ticker())
    try:
        t0 = loop.time()
        state = await ledger.event_state(
            tenant_id="t", event_id="e", object_type="contact", record_id="r"
        )
        waited = loop.time() - t0
    finally:
        tick.cancel()
        await ledger.close()
        await engine.dispose()
    assert state == (None, [])
    assert waited >= 0.9  # it did wait for the lock...
    assert max(gaps) < READ_BUSY_S + 0.5  # ...but not on the event loop (1 s)
