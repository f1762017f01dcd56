"""The embedded CRM store (SQLite and PostgreSQL) with a controllable clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crmflow.db import create_engine
from crmflow.model.records import Record
from crmflow.records.migrations import migrate
from crmflow.records.port import Association
from crmflow.records.sql import SqlRecordStore

_MIGRATED: set[str] = set()


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def tick(self, minutes: int = 1) -> None:
        self.now += timedelta(minutes=minutes)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2025, 1, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
async def store(db_url: str, clock: Clock) -> AsyncIterator[SqlRecordStore]:
    if db_url not in _MIGRATED:  # PostgreSQL: one database per session
        await migrate(db_url)
        _MIGRATED.add(db_url)
    s = SqlRecordStore(create_engine(db_url), clock=clock)
    try:
        yield s
    finally:
        await s.close()


class Seeder:
    """Creates records one clock tick apart, so creation order is unambiguous."""

    def __init__(self, store: SqlRecordStore, tenant_id: str, clock: Clock) -> None:
        self.store, self.tenant_id, self.clock = store, tenant_id, clock

    async def create(self, object_type: str, **props: Any) -> Record:
        self.clock.tick()
        return await self.store.create(self.tenant_id, object_type, props)

    async def update(self, rec: Record, **props: Any) -> Record:
        self.clock.tick()
        return await self.store.update(self.tenant_id, rec.object_type, rec.record_id, props)

    async def link(self, a: Record, b: Record, label: str = "") -> None:
        self.clock.tick()
        await self.store.associate(
            self.tenant_id,
            Association(
                from_object_type=a.object_type,
                from_record_id=a.record_id,
                to_object_type=b.object_type,
                to_record_id=b.record_id,
                label=label,
            ),
        )


@pytest.fixture
def seed(store: SqlRecordStore, tenant_id: str, clock: Clock) -> Seeder:
    return Seeder(store, tenant_id, clock)
