"""The outbox dispatcher: at-least-once, in order, marks delivered, backs off on failure."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from crmflow.model.records import ChangeEvent, ChangeEventType
from crmflow.records.outbox import OutboxDispatcher
from crmflow.records.sql import SqlRecordStore
from tests.helpers import eventually


async def test_failed_delivery_keeps_events_and_retries_in_order(sql_store: SqlRecordStore) -> None:
    c = await sql_store.create("t1", "contact", {"email": "a@x.test"})
    await sql_store.update("t1", "contact", c.record_id, {"firstname": "A"})
    calls: list[list[str]] = []
    fail = True

    async def deliver(events: list[ChangeEvent]) -> None:
        calls.append([e.event_id for e in events])
        if fail:
            raise ConnectionError("enrollment down")

    d = OutboxDispatcher(sql_store, deliver, batch_size=10, min_backoff=0.5, max_backoff=4)
    with pytest.raises(ConnectionError):
        await d.dispatch_once()
    with pytest.raises(ConnectionError):
        await d.dispatch_once()
    assert d.failures == 2 and d.backoff() == 1.0
    pending = await d.pending("t1")
    assert [e.event_type for e in pending] == [
        ChangeEventType.RECORD_CREATED,
        ChangeEventType.RECORD_UPDATED,
    ]
    # created / updated events carry the whole record after the change
    assert pending[0].properties["email"] == "a@x.test"
    assert "firstname" not in pending[0].properties
    assert pending[1].properties["email"] == "a@x.test"
    assert pending[1].properties["firstname"] == "A"
    assert pending[1].properties["lastmodifieddate"]
    fail = False
    assert await d.dispatch_once() == 2
    assert calls[0] == calls[1] == calls[2] == [e.event_id for e in pending]  # same batch again
    assert await d.pending() == [] and await d.dispatch_once() == 0 and d.failures == 0
    assert await d.purge_delivered(datetime.now(UTC) + timedelta(seconds=1)) == 2


async def test_running_dispatcher_delivers_new_changes(sql_store: SqlRecordStore) -> None:
    got: list[ChangeEvent] = []

    async def deliver(events: list[ChangeEvent]) -> None:
        got.extend(events)

    d = OutboxDispatcher(sql_store, deliver, poll_interval=0.05)
    d.start()
    try:
        made = await sql_store.batch_create("t1", "deal", [{"dealname": f"d{i}"} for i in range(3)])

        async def all_delivered() -> bool:
            return len(got) == 3

        await eventually(all_delivered, timeout=5)
        assert [e.record_id for e in got] == [r.record_id for r in made]
        assert got[0].changes[0].old_value is None
    finally:
        await asyncio.wait_for(d.stop(), 5)
    assert await d.pending() == []
